// Small pieces of UI shared by the board, the detail pane and the report dialog.
import { el } from "./dom.js";
import { stateLabel } from "./labels.js";

/** The coloured state badge of a case (or of a bare state name). */
export function stateBadge(c) {
  const state = typeof c === "string" ? c : c.state;
  const label = typeof c === "string" ? stateLabel(c) : c.state_label || stateLabel(c.state);
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
