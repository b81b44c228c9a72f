// Small pieces of UI shared by the board, the detail pane and the report dialog.
import { el, fmtSize } from "./dom.js";
import { STATE_LABELS } from "./labels.js";

/** The coloured state badge of a case (or of a bare state name). */
export function stateBadge(c) {
  const state = typeof c === "string" ? c : c.state;
  // The local map wins: it is keyed by state alone (the server's LABELS_ZH shares keys between
  // states and actions, e.g. "feedback"), the server's label covers states we do not know yet.
  const label = STATE_LABELS[state] || (typeof c === "string" ? c : c.state_label || state);
  return el(
    "span",
    { class: `badge state-${state}`, "data-testid": "state-badge", "data-state": state },
    label,
  );
}

/** Fill a <select> with categories as <optgroup>s by major_name (事件 / 部件 kept apart). */
export function fillCategorySelect(select, categories) {
  const groups = new Map();
  for (const c of categories) {
    const key = `${c.kind || ""}|${c.major_name || "其他"}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const kinds = new Set(categories.map((c) => c.kind));
  for (const [key, list] of groups) {
    const [kind, major] = key.split("|");
    const label = kinds.size > 1 ? `${kind === "component" ? "部件" : "事件"} · ${major}` : major;
    const group = el("optgroup", { label });
    for (const c of list) group.append(el("option", { value: c.id }, `${c.name}（${c.code}）`));
    select.append(group);
  }
}

/** The URL of an attachment's bytes. */
export function attachmentUrl(a) {
  return `/api/attachments/${encodeURIComponent(a.id)}`;
}

/** A thumbnail (photos), a player (audio) or a link (anything else), opening the bytes. */
export function attachmentThumb(a) {
  const url = attachmentUrl(a);
  const name = a.original_name || `附件 ${a.id}`;
  const type = a.media_type || "";
  if (type.startsWith("image/")) {
    return el(
      "a",
      { href: url, target: "_blank", rel: "noopener", class: "thumb", title: name, "data-testid": "attachment" },
      el("img", { src: url, alt: name, loading: "lazy", decoding: "async" }),
    );
  }
  if (type.startsWith("audio/")) {
    return el(
      "div",
      { class: "audio-att", "data-testid": "attachment" },
      el("audio", { src: url, controls: true, preload: "none" }),
      el("a", { href: url, target: "_blank", rel: "noopener" }, name),
    );
  }
  return el("a", { href: url, target: "_blank", rel: "noopener", class: "file-att", "data-testid": "attachment" }, name);
}

let pickerSeq = 0;

/** The text under a photo picker: what was chosen. */
export function describeFiles(input) {
  const files = Array.from(input.files || []);
  if (files.length === 0) return "未选择照片";
  return `已选择 ${files.length} 张：${files.map((f) => `${f.name}（${fmtSize(f.size)}）`).join("、")}`;
}

/** A photo picker with a Chinese button (the native one speaks the browser's language). */
export function photoPicker({ testid, name = "photos" }) {
  const id = `photo-picker-${++pickerSeq}`;
  const input = el("input", {
    id,
    type: "file",
    name,
    multiple: true,
    accept: "image/jpeg,image/png,image/webp",
    class: "visually-hidden",
    "data-testid": testid,
  });
  const status = el("span", { class: "muted file-status", "data-testid": `${testid}-status` }, "未选择照片");
  input.addEventListener("change", () => {
    status.textContent = describeFiles(input);
  });
  const node = el(
    "div",
    { class: "file-picker" },
    input,
    el("label", { for: id, class: "btn btn-small" }, "选择照片"),
    status,
  );
  return { node, input };
}
