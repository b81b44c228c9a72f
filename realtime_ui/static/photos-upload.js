// Photos chosen for an upload: checked in the browser (type, size), large ones compressed
// (canvas → JPEG, longest side 1920 px, quality 0.85), previewed before anything is sent.
import { fmtSize } from "./dom.js";
import { html, useEffect, useRef } from "./ui.js";

export const PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
export const DEFAULT_LIMITS = { maxBytes: 20 * 1024 * 1024, maxFiles: 9, types: PHOTO_TYPES };
const MAX_SIDE = 1920;
const QUALITY = 0.85;
/** Photos above this size are re-encoded even when small enough in pixels. */
const COMPRESS_ABOVE = 2 * 1024 * 1024;
const EXT_TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };

/** "20 MB", "1.5 MB", "300 KB": as people say it (the server's messages use the same). */
export function humanSize(n) {
  const units = [
    ["GB", 1 << 30],
    ["MB", 1 << 20],
    ["KB", 1 << 10],
  ];
  for (const [unit, size] of units) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} 字节`;
}

/** The upload limits the hub announces in GET /api/auth/me (`uploads`), with defaults. */
export function limitsFrom(me) {
  const u = (me && me.uploads) || {};
  return {
    maxBytes: Number(u.max_bytes) || DEFAULT_LIMITS.maxBytes,
    maxFiles: Number(u.max_files) || DEFAULT_LIMITS.maxFiles,
    types: Array.isArray(u.photo_types) && u.photo_types.length ? u.photo_types : PHOTO_TYPES,
  };
}

function typeOf(file, types) {
  if (file.type) return types.includes(file.type) ? file.type : null;
  const ext = (/\.([a-z0-9]+)$/i.exec(file.name || "") || [])[1];
  const t = ext ? EXT_TYPES[ext.toLowerCase()] : null;
  return t && types.includes(t) ? t : null;
}

async function decode(file) {
  if (typeof createImageBitmap === "function") {
    return createImageBitmap(file, { imageOrientation: "from-image" });
  }
  const url = URL.createObjectURL(file);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } finally {
    URL.revokeObjectURL(url);
  }
}

function toJpeg(image, maxSide) {
  const w = image.width;
  const h = image.height;
  const k = Math.min(1, maxSide / Math.max(w, h));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(w * k));
  canvas.height = Math.max(1, Math.round(h * k));
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff"; // transparent PNG areas become white, not black
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.drawImage(image, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
}

/**
 * Check one chosen file and compress it when large. → {file, original, compressed, width, height}
 * or {error: "plain Chinese"}.
 */
export async function preparePhoto(file, limits = DEFAULT_LIMITS) {
  const name = file.name || "照片";
  if (!typeOf(file, limits.types)) return { error: `“${name}”不是 JPEG、PNG 或 WebP 格式的照片` };
  if (file.size === 0) return { error: `“${name}”是空文件` };
  let image;
  try {
    image = await decode(file);
  } catch {
    if (file.size > limits.maxBytes) return { error: `“${name}”超过 ${humanSize(limits.maxBytes)}` };
    return { error: `“${name}”无法识别为照片，请换一张` };
  }
  const width = image.width;
  const height = image.height;
  const big = Math.max(width, height) > MAX_SIDE || file.size > COMPRESS_ABOVE || file.size > limits.maxBytes;
  let out = file;
  let compressed = false;
  if (big) {
    const blob = await toJpeg(image, MAX_SIDE);
    if (blob && (blob.size < file.size || file.size > limits.maxBytes)) {
      const base = name.replace(/\.[^.]*$/, "") || "照片";
      out = new File([blob], `${base}.jpg`, { type: "image/jpeg", lastModified: file.lastModified });
      compressed = true;
    }
  }
  if (typeof image.close === "function") image.close();
  if (out.size > limits.maxBytes) {
    return { error: `“${name}”压缩后仍超过 ${humanSize(limits.maxBytes)}，请换一张` };
  }
  return { file: out, original: file, compressed, width, height };
}

let photoSeq = 0;

/**
 * Add chosen files to `photos` (a signal holding [{key, file, original, compressed, url}]):
 * previews at once, checks and compression in the background; problems go to `problems` (a signal
 * of strings). `busy` (a signal) counts files still being prepared.
 */
export async function addPhotos(fileList, { photos, problems, busy, limits }) {
  const files = Array.from(fileList || []);
  const room = limits.maxFiles - photos.value.length;
  const out = [];
  if (files.length > room) {
    out.push(`最多 ${limits.maxFiles} 张照片，已忽略多出的 ${files.length - Math.max(room, 0)} 张`);
  }
  busy.value += 1;
  try {
    for (const file of files.slice(0, Math.max(room, 0))) {
      const got = await preparePhoto(file, limits);
      if (got.error) {
        out.push(got.error);
        continue;
      }
      photos.value = [...photos.value, { key: ++photoSeq, ...got, url: URL.createObjectURL(got.file) }];
    }
  } finally {
    busy.value -= 1;
  }
  problems.value = out;
}

export function removePhoto(photos, key) {
  const gone = photos.value.find((p) => p.key === key);
  if (gone) URL.revokeObjectURL(gone.url);
  photos.value = photos.value.filter((p) => p.key !== key);
}

export function releasePhotos(photos) {
  for (const p of photos.value) URL.revokeObjectURL(p.url);
  photos.value = [];
}

/** The picker: a Chinese button, the previews (keyed, so a thumbnail is never rebuilt), problems. */
export function PhotoPicker({ id, testid, photos, problems, busy, limits, hint = "" }) {
  const input = useRef(null);
  useEffect(() => () => releasePhotos(photos), []);
  const onChange = async (ev) => {
    const chosen = Array.from(ev.currentTarget.files || []);
    ev.currentTarget.value = ""; // choosing the same file again fires change again
    await addPhotos(chosen, { photos, problems, busy, limits });
  };
  const list = photos.value;
  return html`
    <div class="photo-picker">
      <div class="file-picker">
        <input ref=${input} id=${id} type="file" class="visually-hidden" multiple
               accept=${limits.types.join(",")} data-testid=${testid} onChange=${onChange} />
        <label for=${id} class="btn btn-small">选择照片</label>
        <span class="muted file-status" data-testid=${`${testid}-status`}>
          ${busy.value > 0 ? "正在处理照片…" : list.length ? `已选择 ${list.length} 张` : "未选择照片"}
        </span>
      </div>
      ${hint && html`<small class="muted">${hint}</small>`}
      ${problems.value.length > 0 &&
      html`<ul class="photo-problems" role="alert">
        ${problems.value.map((p) => html`<li key=${p} data-testid=${`${testid}-problem`}>${p}</li>`)}
      </ul>`}
      ${list.length > 0 &&
      html`<ul class="photo-previews">
        ${list.map(
          (p) => html`<li key=${p.key} class="photo-preview" data-testid=${`${testid}-preview`}
                          data-compressed=${p.compressed ? "true" : "false"}>
            <img src=${p.url} alt=${p.original.name || "照片"} />
            <span class="photo-size">${p.compressed
              ? `已压缩 ${fmtSize(p.original.size)} → ${fmtSize(p.file.size)}`
              : fmtSize(p.file.size)}</span>
            <button type="button" class="btn btn-ghost btn-small" data-testid=${`${testid}-remove`}
                    aria-label="移除这张照片" onClick=${() => removePhoto(photos, p.key)}>移除</button>
          </li>`,
        )}
      </ul>`}
    </div>
  `;
}
