// The tiles' actions for seats, dispatchers and admins: 截图立案 and 喊话.
//
// Theory of operation: one dialog at a time (`action`: {kind, cameraId}). 截图立案 takes a
// category (GET /api/categories, loaded once) and an optional description for a new case, or an
// existing case by its number or id (a number is looked up with GET /api/cases?q=), and
// optionally the last seconds as a video clip; then POST /api/cameras/{id}/snapshot saves the
// camera's current full-size picture (and clip) on the case and answers {case_id, case_created,
// attachment: {id, sha256, url}, clip, clip_error?, captured_at}. 喊话 plays a clip
// (GET /api/clips) at the camera's speaker (its `speaker_id`): POST /api/warnings
// {clip_id, speaker_ids}. Errors are the API's own message, shown in the dialog.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { toast } from "./notify.js";
import { cameraById } from "./wall-state.js";
import { html, signal, useEffect, useRef, useSignal } from "./ui.js";

/** The open dialog: {kind: "snapshot"|"warning", cameraId} or null. */
export const action = signal(null);
/** The last snapshot's answer (shown until the next one). */
export const lastSnapshot = signal(null);

const categories = signal(null);
const clips = signal(null);

export function openAction(kind, cameraId) {
  action.value = { kind, cameraId };
  if (kind === "snapshot" && categories.peek() === null) {
    api("/api/categories").then((r) => (categories.value = r.items || []), () => (categories.value = []));
  }
  if (kind === "warning" && clips.peek() === null) {
    api("/api/clips").then((r) => (clips.value = r.items || []), () => (clips.value = []));
  }
}

/** A case number (or id) typed by a person -> the case id. */
async function resolveCase(text) {
  const t = text.trim();
  const res = await api("/api/cases", { query: { q: t, limit: 10 } });
  const hit = (res.items || []).find((c) => c.case_no === t);
  if (hit) return hit.id;
  if (/^\d+$/.test(t) && t.length < 10) return Number(t);
  throw new Error(`未找到案件“${t}”`);
}

function Dialog({ title, testid, children, onSubmit, busy }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const close = () => (action.value = null);
    d.addEventListener("close", close);
    return () => d.removeEventListener("close", close);
  }, []);
  return html`<dialog ref=${ref} class="wall-dialog" data-testid=${testid}>
    <form method="dialog" onSubmit=${(e) => {
      e.preventDefault();
      onSubmit();
    }}>
      <div class="dialog-head"><h2>${title}</h2></div>
      ${children}
      <div class="dialog-foot">
        <button type="button" class="btn" onClick=${() => (action.value = null)}>取消</button>
        <button type="submit" class="btn btn-primary" data-testid="dialog-submit" disabled=${busy}>
          ${busy ? "正在提交…" : "确定"}</button>
      </div>
    </form>
  </dialog>`;
}

function SnapshotDialog({ cameraId }) {
  const cam = cameraById.value.get(cameraId);
  const mode = useSignal("new");
  const cat = useSignal("");
  const desc = useSignal("");
  const caseRef = useSignal("");
  const clipSeconds = useSignal("0");
  const busy = useSignal(false);
  const error = useSignal("");
  const cats = (categories.value || []).filter((c) => c.kind !== "component");
  const submit = async () => {
    error.value = "";
    const body = {};
    if (mode.peek() === "new") {
      if (!cat.peek()) {
        error.value = "请选择案件类别";
        return;
      }
      body.category_id = Number(cat.peek());
      if (desc.peek().trim()) body.description = desc.peek().trim();
    } else if (!caseRef.peek().trim()) {
      error.value = "请填写案件号";
      return;
    }
    if (Number(clipSeconds.peek()) > 0) body.clip_seconds = Number(clipSeconds.peek());
    busy.value = true;
    try {
      if (mode.peek() === "existing") {
        body.case_id = await resolveCase(caseRef.peek());
        if (desc.peek().trim()) body.description = desc.peek().trim();
      }
      const res = await api(`/api/cameras/${cameraId}/snapshot`, { method: "POST", body });
      lastSnapshot.value = { ...res, camera_id: cameraId };
      const what = res.clip ? "截图和视频片段" : "截图";
      const done = res.case_created ? `已${what}并新建案件（编号 ${res.case_id}）` : `${what}已加入案件（编号 ${res.case_id}）`;
      toast(res.clip_error ? `${done}；视频片段未保存：${res.clip_error}` : done, res.clip_error ? 6000 : 3000);
      action.value = null;
    } catch (err) {
      error.value = err.message;
    } finally {
      busy.value = false;
    }
  };
  return html`<${Dialog} title=${`截图立案 · ${cam ? cam.name : cameraId}`} testid="snapshot-dialog"
                         onSubmit=${submit} busy=${busy.value}>
    ${error.value && html`<div class="banner banner-error" role="alert" data-testid="dialog-error">${error.value}</div>`}
    <div class="wall-radio">
      <label><input type="radio" name="snap-mode" data-testid="snapshot-new" checked=${mode.value === "new"}
                    onChange=${() => (mode.value = "new")} /> 新建案件</label>
      <label><input type="radio" name="snap-mode" data-testid="snapshot-existing"
                    checked=${mode.value === "existing"} onChange=${() => (mode.value = "existing")} /> 加入已有案件</label>
    </div>
    ${mode.value === "new"
      ? html`<label class="field">案件类别
          <select data-testid="snapshot-category" value=${cat.value} onChange=${(e) => (cat.value = e.currentTarget.value)}>
            <option value="">${categories.value === null ? "正在加载…" : "请选择"}</option>
            ${cats.map((c) => html`<option key=${c.id} value=${c.id}>${c.major_name ? `${c.major_name} · ` : ""}${c.name}</option>`)}
          </select></label>
        <label class="field">问题描述（可选）
          <textarea data-testid="snapshot-description" rows="3" maxlength="1000" value=${desc.value}
                    onInput=${(e) => (desc.value = e.currentTarget.value)}></textarea></label>`
      : html`<label class="field">案件号或编号
          <input type="text" data-testid="snapshot-case" value=${caseRef.value}
                 onInput=${(e) => (caseRef.value = e.currentTarget.value)} /></label>
        <label class="field">补充说明（可选）
          <textarea data-testid="snapshot-note" rows="2" maxlength="1000" value=${desc.value}
                    onInput=${(e) => (desc.value = e.currentTarget.value)}></textarea></label>`}
    <label class="field">附带视频片段
      <select data-testid="snapshot-clip" value=${clipSeconds.value}
              onChange=${(e) => (clipSeconds.value = e.currentTarget.value)}>
        <option value="0">不附带</option>
        <option value="5">最近 5 秒</option>
        <option value="10">最近 10 秒</option>
      </select></label>
  <//>`;
}

function WarningDialog({ cameraId }) {
  const cam = cameraById.value.get(cameraId);
  const clip = useSignal("");
  const busy = useSignal(false);
  const error = useSignal("");
  const list = clips.value || [];
  const submit = async () => {
    error.value = "";
    if (!cam || !cam.speaker_id) {
      error.value = "该摄像头附近没有喇叭";
      return;
    }
    if (!clip.peek()) {
      error.value = "请选择录音";
      return;
    }
    busy.value = true;
    try {
      await api("/api/warnings", {
        method: "POST",
        body: { clip_id: Number(clip.peek()), speaker_ids: [cam.speaker_id] },
      });
      toast("已开始喊话");
      action.value = null;
    } catch (err) {
      error.value = err.message;
    } finally {
      busy.value = false;
    }
  };
  return html`<${Dialog} title=${`喊话 · ${cam ? cam.name : cameraId}`} testid="warning-dialog"
                         onSubmit=${submit} busy=${busy.value}>
    ${error.value && html`<div class="banner banner-error" role="alert" data-testid="dialog-error">${error.value}</div>`}
    <label class="field">录音
      <select data-testid="warning-clip" value=${clip.value} onChange=${(e) => (clip.value = e.currentTarget.value)}>
        <option value="">${clips.value === null ? "正在加载…" : list.length ? "请选择" : "暂无录音"}</option>
        ${list.map((c) => html`<option key=${c.id} value=${c.id}>${c.name}</option>`)}
      </select></label>
  <//>`;
}

export function ActionDialog() {
  const a = action.value;
  if (!a) return null;
  if (a.kind === "snapshot") return html`<${SnapshotDialog} key=${`s${a.cameraId}`} cameraId=${a.cameraId} />`;
  return html`<${WarningDialog} key=${`w${a.cameraId}`} cameraId=${a.cameraId} />`;
}

/** The last snapshot's result (case id, SHA-256), for the seat to follow up. */
export function SnapshotResult() {
  const s = lastSnapshot.value;
  if (!s) return null;
  return html`<p class="wall-snap-result" data-testid="snapshot-result" data-case-id=${s.case_id}
                 data-sha256=${s.attachment?.sha256 || ""}>
    截图${s.clip ? "和视频片段" : ""}${s.case_created ? "已新建案件" : "已加入案件"}
    <a href=${`/board?case=${s.case_id}`} target="_blank" rel="noopener">编号 ${s.case_id}</a>
    <span class="muted">${fmtTime(s.captured_at, { seconds: true })}</span></p>`;
}
