// The speaker console's clip library: the clips with a preview player, upload (a WAV, MP3 or
// AAC/M4A file with a name and a category), making one from Chinese text (TTS on the hub), delete,
// and the choice of the clip the play panel sends.
//
// Theory of operation: the list is GET /api/clips (clipsReady / clips in speakers-state.js); each
// write goes to the API and the list is read again on success, so what is shown is what the hub
// stored (its duration, its name). Errors are the API's own message, shown by the form that caused
// them. The preview is a plain <audio> on the clip's preview_url (same origin, so the page's CSP
// allows it), with preload="none" so a long library does not fetch every file.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { toast } from "./notify.js";
import { SOURCE_LABELS, canControl, clips, clipsReady, loadClips } from "./speakers-state.js";
import { html, signal, useRef, useState } from "./ui.js";

/** The clip the play panel and the schedule form start from (an id, or null). */
export const chosenClip = signal(null);

/** "12.3 秒" / "1 分 5 秒" */
export function fmtDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} 秒`;
  return `${Math.floor(s / 60)} 分 ${Math.round(s % 60)} 秒`;
}

function ClipRow({ clip }) {
  const [busy, setBusy] = useState(false);
  const chosen = chosenClip.value === clip.id;
  const remove = async () => {
    if (!window.confirm(`确定删除录音“${clip.name}”吗？`)) return;
    setBusy(true);
    try {
      await api(`/api/clips/${encodeURIComponent(clip.id)}`, { method: "DELETE" });
      if (chosenClip.peek() === clip.id) chosenClip.value = null;
      toast("录音已删除");
      await loadClips();
    } catch (err) {
      clipError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  return html`<li class=${`clip-row${chosen ? " is-chosen" : ""}`} data-testid="clip-row" data-id=${clip.id}>
    <div class="clip-main">
      <label class="clip-pick">
        <input type="radio" name="clip-choice" data-testid="clip-choose" checked=${chosen}
               onChange=${() => (chosenClip.value = clip.id)} />
        <strong class="clip-name" data-testid="clip-name">${clip.name}</strong>
      </label>
      <span class="tag">${clip.category || "未分类"}</span>
      <span class="muted" data-testid="clip-duration">${fmtDuration(clip.duration_ms)}</span>
    </div>
    <div class="clip-meta muted">
      ${SOURCE_LABELS[clip.source] || clip.source}
      ${clip.created_by ? ` · ${clip.created_by.name}` : ""} · ${fmtTime(clip.created_at, { short: true })}
    </div>
    ${clip.text && html`<p class="clip-text" data-testid="clip-text">${clip.text}</p>`}
    <div class="clip-tools">
      <audio controls preload="none" src=${clip.preview_url || `/api/clips/${clip.id}/audio`}
             data-testid="clip-preview"></audio>
      ${canControl.value &&
      html`<button type="button" class="btn btn-small btn-danger-outline" data-testid="clip-delete"
                   disabled=${busy} onClick=${remove}>删除</button>`}
    </div>
  </li>`;
}

/** The error of the last clip action (upload, TTS, delete), or "". */
const clipError = signal("");

function UploadForm() {
  const fileRef = useRef(null);
  const [name, setName] = useState("");
  const [category, setCategory] = useState("");
  const [fileText, setFileText] = useState("未选择文件");
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    const file = fileRef.current.files[0];
    if (!file) return (clipError.value = "请选择要上传的音频文件");
    if (!name.trim()) return (clipError.value = "请填写录音名称");
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("name", name.trim());
    form.append("category", category.trim());
    setBusy(true);
    clipError.value = "";
    try {
      const clip = await api("/api/clips", { method: "POST", form });
      toast("录音已上传");
      setName("");
      setCategory("");
      fileRef.current.value = "";
      setFileText("未选择文件");
      await loadClips();
      if (clip && typeof clip.id === "number") chosenClip.value = clip.id;
    } catch (err) {
      clipError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="clip-form" data-testid="clip-upload-form" onSubmit=${submit}>
    <h3>上传录音</h3>
    <div class="file-picker">
      <input id="clip-file" type="file" class="visually-hidden" data-testid="clip-file"
             accept="audio/wav,audio/x-wav,audio/mpeg,audio/mp4,audio/aac,audio/x-m4a,.wav,.mp3,.m4a,.aac"
             ref=${fileRef} onChange=${(e) => setFileText(e.currentTarget.files[0]?.name || "未选择文件")} />
      <label for="clip-file" class="btn btn-small">选择音频文件</label>
      <span class="muted file-status" data-testid="clip-file-status">${fileText}</span>
    </div>
    <div class="inline-row">
      <label class="field"><span>名称</span>
        <input data-testid="clip-upload-name" value=${name} maxlength="100"
               onInput=${(e) => setName(e.currentTarget.value)} /></label>
      <label class="field"><span>分类</span>
        <input data-testid="clip-upload-category" value=${category} maxlength="50" placeholder="如：占道经营"
               onInput=${(e) => setCategory(e.currentTarget.value)} /></label>
    </div>
    <p class="muted hint">支持 WAV、MP3、AAC/M4A，上传后转为喇叭使用的格式。</p>
    <button type="submit" class="btn btn-primary btn-small" data-testid="clip-upload-submit" disabled=${busy}>
      ${busy ? "正在上传…" : "上传"}</button>
  </form>`;
}

function TtsForm() {
  const [name, setName] = useState("");
  const [category, setCategory] = useState("");
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    if (!name.trim()) return (clipError.value = "请填写录音名称");
    if (!text.trim()) return (clipError.value = "请填写要合成的文字");
    setBusy(true);
    clipError.value = "";
    try {
      const clip = await api("/api/clips/tts", {
        method: "POST",
        body: { name: name.trim(), category: category.trim(), text: text.trim() },
      });
      toast("语音已合成");
      setName("");
      setCategory("");
      setText("");
      await loadClips();
      if (clip && typeof clip.id === "number") chosenClip.value = clip.id;
    } catch (err) {
      clipError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="clip-form" data-testid="clip-tts-form" onSubmit=${submit}>
    <h3>文字转语音</h3>
    <div class="inline-row">
      <label class="field"><span>名称</span>
        <input data-testid="clip-tts-name" value=${name} maxlength="100"
               onInput=${(e) => setName(e.currentTarget.value)} /></label>
      <label class="field"><span>分类</span>
        <input data-testid="clip-tts-category" value=${category} maxlength="50"
               onInput=${(e) => setCategory(e.currentTarget.value)} /></label>
    </div>
    <label class="field"><span>文字内容</span>
      <textarea data-testid="clip-tts-text" rows="3" maxlength="500" value=${text}
                placeholder="如：请勿占道经营，请将摊位移至规定区域。"
                onInput=${(e) => setText(e.currentTarget.value)}></textarea></label>
    <button type="submit" class="btn btn-primary btn-small" data-testid="clip-tts-submit" disabled=${busy}>
      ${busy ? "正在合成…" : "合成语音"}</button>
  </form>`;
}

export function ClipLibrary() {
  const list = clips.value;
  return html`<div class="clip-library" data-testid="clip-library">
    ${clipError.value &&
    html`<div class="banner banner-error" role="alert" data-testid="clip-error">${clipError.value}</div>`}
    ${!clipsReady.value
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="clip-empty">录音库为空</p>`
        : html`<ul class="clip-list" data-testid="clip-list">
            ${list.map((c) => html`<${ClipRow} key=${c.id} clip=${c} />`)}</ul>`}
    ${canControl.value && html`<div class="clip-forms"><${UploadForm} /><${TtsForm} /></div>`}
  </div>`;
}
