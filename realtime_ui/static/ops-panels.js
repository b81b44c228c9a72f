// The big screen's panels (ops.html) besides the map: this week's evaluation (rates and score),
// the worst departments, the open overdue cases by department, the warnings playing now, the
// alarms, and two overlays - a camera's live tile and a speaker's warning dialog.
//
// Theory of operation: the evaluation widgets read GET /api/evaluation/city and /departments
// (period `week`, the city's configured choice on deferrals) at start and every REFRESH_MS, keeping
// the last good answer on screen when a refresh fails (the failure is shown in small type). The
// warnings and alarms come from their state channels (speakers-state.js `running`, `alarms` here):
// the websocket's snapshot after every (re)connect replaces what the stores held. The queue board
// is hotline-board.js's, the running warnings speakers-play.js's, the live tile wall-live.js's.
// Playing a warning is offered only to the roles POST /api/warnings declares (admin, seat,
// dispatcher: speakers-state.js `canControl`); a viewer sees the speaker's status and a note.
import { api } from "./api.js";
import { fmtClock } from "./dom.js";
import { toast } from "./notify.js";
import { alarmKey, heardAlarms, overdueByDept } from "./ops-cases.js";
import { chosenSpeaker } from "./ops-map.js";
import { fmtDuration } from "./speakers-clips.js";
import { RunningList } from "./speakers-play.js";
import { canControl, clips, loadClips, speakerById, statusLabel, statusOf } from "./speakers-state.js";
import { createStateStore } from "./store.js";
import { html, signal, useEffect, useState } from "./ui.js";
import { LiveView, enlarged } from "./wall-live.js";

export const REFRESH_MS = 60_000;
const WORST = 5;
const RATE_KEYS = ["register_rate", "dispatch_rate", "close_rate", "on_time_rate", "rework_rate", "extension_rate"];

/** alarm id -> the alarm (the `alarms` state channel). */
export const alarms = createStateStore("alarms");

const evalCity = signal(null);
const evalDepts = signal(null);
const evalError = signal("");

/** GET the week's city figures and department table (the previous answer stays on failure). */
export async function loadEvaluation() {
  const [city, depts] = await Promise.allSettled([
    api("/api/evaluation/city", { query: { period: "week" } }),
    api("/api/evaluation/departments", { query: { period: "week" } }),
  ]);
  if (city.status === "fulfilled") evalCity.value = city.value;
  if (depts.status === "fulfilled") evalDepts.value = depts.value;
  const failed = [city, depts].find((r) => r.status === "rejected");
  evalError.value = failed ? `考核数据刷新失败：${failed.reason.message}` : "";
}

export function EvalCity() {
  const c = evalCity.value;
  return html`<section class="ops-panel ops-eval" aria-label="本周考核" data-testid="eval-city">
    <div class="ops-panel-head"><h2>本周考核</h2>
      <span class="ops-muted" data-testid="eval-period">${c ? c.period.label : ""}</span></div>
    ${!c
      ? html`<p class="ops-empty">${evalError.value || "正在加载…"}</p>`
      : html`<div class="eval-score" data-testid="eval-score" data-value=${c.score?.total ?? ""}>
            <span class="eval-score-label">综合得分</span>
            <strong>${c.score ? c.score.total_text ?? String(c.score.total) : "—"}</strong>
            <span class="ops-muted">满分 ${c.score ? c.score.max : "—"}</span></div>
          <ul class="eval-rates">
            ${RATE_KEYS.filter((k) => c.rates && c.rates[k]).map(
              (k) => html`<li key=${k} data-testid="eval-rate" data-key=${k} data-value=${c.rates[k].value ?? ""}
                              title=${`${c.rates[k].num} / ${c.rates[k].den}`}>
                <span>${(c.labels && c.labels[k]) || k}</span><strong>${c.rates[k].text}</strong></li>`,
            )}
          </ul>`}
    ${c && evalError.value && html`<p class="ops-stale" data-testid="eval-error">${evalError.value}</p>`}
  </section>`;
}

export function WorstDepartments() {
  const d = evalDepts.value;
  // Rows come sorted by score, best first: the worst are the last ones.
  const rows = d ? [...(d.rows || [])].reverse().slice(0, WORST) : [];
  return html`<section class="ops-panel ops-worst" aria-label="得分最低的部门" data-testid="eval-worst">
    <div class="ops-panel-head"><h2>得分最低部门</h2><span class="ops-muted">本周</span></div>
    ${!d
      ? html`<p class="ops-empty">${evalError.value || "正在加载…"}</p>`
      : rows.length === 0
        ? html`<p class="ops-empty">暂无</p>`
        : html`<ol class="ops-rank">${rows.map(
            (r) => html`<li key=${r.department_id} data-testid="worst-dept" data-department-id=${r.department_id}>
              <span class="rank-no">${r.rank}</span><span class="rank-name">${r.name}</span>
              <span class="rank-extra">按期 ${r.rates?.on_time_rate?.text ?? "—"}</span>
              <strong class="rank-value">${r.score ? r.score.total_text ?? r.score.total : "—"}</strong></li>`,
          )}</ol>`}
  </section>`;
}

export function OverdueByDept() {
  const rows = overdueByDept.value;
  return html`<section class="ops-panel ops-overdue" aria-label="超期案件（按部门）" data-testid="overdue-by-dept">
    <div class="ops-panel-head"><h2>超期案件（按部门）</h2><span class="ops-muted">在办</span></div>
    ${rows.length === 0
      ? html`<p class="ops-empty">暂无超期案件</p>`
      : html`<ol class="ops-rank">${rows.slice(0, 6).map(
          (r) => html`<li key=${r.name} data-testid="overdue-dept" data-count=${r.count}>
            <span class="rank-name">${r.name}</span><strong class="rank-value danger">${r.count}</strong></li>`,
        )}</ol>`}
  </section>`;
}

/** GET /api/alarms's items (helper A's API), or null while the hub has none (404). */
const listedAlarms = signal(null);
let alarmsApi = true;

/** Read the alarm list, if the hub has one (a 404 stops asking). */
export async function loadAlarms() {
  if (!alarmsApi) return;
  try {
    const res = await api("/api/alarms");
    listedAlarms.value = res.items || [];
  } catch (err) {
    if (err.status === 404) alarmsApi = false;
  }
}

const alarmAt = (a) => a.at || a.fired_at || a.raised_at || a.since || "";
const alarmText = (a) =>
  a.text || [a.label || a.title || a.message || a.kind_label || a.kind || "告警", a.case_no].filter(Boolean).join(" ");

/** The alarms channel's entries, the listed alarms and those heard on the case channel (one
 * entry per case, share and deadline: an alarm heard live and listed later is shown once). */
function alarmList() {
  const keys = alarms.keys.value;
  const out = new Map();
  for (const a of listedAlarms.value || []) {
    const key = alarmKey(a.case_id, a.share, a.deadline) || `list:${a.id}`;
    out.set(key, { key, level: a.kind === "overdue" ? "critical" : "warn", ...a });
  }
  for (const k of keys) out.set(`state:${k}`, { key: `state:${k}`, ...(alarms.item(k).value || {}) });
  for (const a of heardAlarms.value) out.set(a.key, a);
  return [...out.values()].sort((a, b) => Date.parse(alarmAt(b)) - Date.parse(alarmAt(a)));
}

export function Alarms() {
  const list = alarmList();
  return html`<section class="ops-panel ops-alarms" aria-label="告警" data-testid="alarms-panel"
                       data-count=${list.length}>
    <div class="ops-panel-head"><h2>告警</h2><span class="ops-muted">${list.length ? `${list.length} 条` : ""}</span></div>
    ${list.length === 0
      ? html`<p class="ops-empty" data-testid="alarms-empty">暂无</p>`
      : html`<ul class="ops-alarm-list">${list.slice(0, 8).map(
          (a) => html`<li key=${a.key} class=${`alarm alarm-${a.level || a.severity || "info"}`} data-testid="alarm">
            <time>${fmtClock(alarmAt(a))}</time><span>${alarmText(a)}</span></li>`,
        )}</ul>`}
  </section>`;
}

export function WarningsNow() {
  return html`<div class="ops-warnings" data-testid="ops-warnings"><${RunningList} /></div>`;
}

// ---- overlays ----------------------------------------------------------------------------------

export function CameraOverlay() {
  if (enlarged.value === null) return null;
  return html`<div class="ops-overlay" data-testid="camera-overlay"
                   onClick=${(e) => e.target === e.currentTarget && (enlarged.value = null)}>
    <div class="ops-overlay-box ops-live-box"><${LiveView} /></div>
  </div>`;
}

function PlayClip({ speakerId, clip }) {
  const [busy, setBusy] = useState(false);
  const play = async () => {
    setBusy(true);
    try {
      await api("/api/warnings", { method: "POST", body: { clip_id: clip.id, speaker_ids: [speakerId], repeat: 1 } });
      toast(`已开始播放“${clip.name}”`);
      chosenSpeaker.value = null;
    } catch (err) {
      toast(`播放失败：${err.message}`, 6000);
    } finally {
      setBusy(false);
    }
  };
  return html`<li class="ops-clip" data-testid="speaker-clip" data-clip-id=${clip.id}>
    <span>${clip.name}</span><span class="ops-muted">${fmtDuration(clip.duration_ms)}</span>
    <button type="button" class="btn btn-small btn-primary" data-testid="speaker-play" disabled=${busy}
            onClick=${play}>${busy ? "正在发起…" : "播放"}</button></li>`;
}

function closeOnEscape(e) {
  if (e.key === "Escape") chosenSpeaker.value = null;
}

export function SpeakerDialog() {
  const id = chosenSpeaker.value;
  useEffect(() => {
    if (id === null) return undefined;
    document.addEventListener("keydown", closeOnEscape);
    return () => document.removeEventListener("keydown", closeOnEscape);
  }, [id]);
  if (id === null) return null;
  const sp = speakerById.value.get(id);
  const st = sp ? statusOf(sp) : { state: "unknown" };
  const may = canControl.value;
  if (may && clips.peek().length === 0) loadClips().catch((err) => toast(`录音库加载失败：${err.message}`, 6000));
  const close = () => (chosenSpeaker.value = null);
  return html`<div class="ops-overlay" data-testid="speaker-dialog" data-speaker-id=${id}
                   onClick=${(e) => e.target === e.currentTarget && close()}>
    <div class="ops-overlay-box ops-speaker-box">
      <div class="ops-panel-head">
        <h2>${sp ? sp.name : `喇叭 ${id}`}</h2>
        <span class=${`ops-status st-${st.state}`} data-testid="speaker-status">${statusLabel(st.state)}</span>
        <button type="button" class="btn btn-small" data-testid="speaker-close" onClick=${close}>关闭</button>
      </div>
      ${may
        ? html`<p class="ops-muted">选择一段录音在此喇叭播放：</p>
            <ul class="ops-clips">${clips.value.map((c) => html`<${PlayClip} key=${c.id} speakerId=${id} clip=${c} />`)}</ul>
            ${clips.value.length === 0 && html`<p class="ops-empty">录音库为空</p>`}`
        : html`<p class="ops-empty" data-testid="speaker-readonly">只读账号：可以查看喇叭状态，不能播放警示录音。</p>`}
    </div>
  </div>`;
}
