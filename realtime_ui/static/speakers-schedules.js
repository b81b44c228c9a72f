// The speaker console's schedules: a clip at speakers or groups every N minutes between two times
// of day on chosen weekdays (the city's clock, kept by the hub), and the list with enable/disable
// and delete.
//
// Theory of operation: GET /api/warning-schedules is the list; the form sends POST with the clip,
// the current selection (speaker ids and groups, as the play panel does), every_minutes, from_time /
// until_time ("HH:MM", the city's wall clock: the hub fires them, not the browser), weekdays
// (1 = Monday .. 7) and repeat. 启用 / 停用 is PATCH {active}; 删除 is DELETE. After each write the
// list is read again, so it shows what the hub stored; errors are the API's message.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { toast } from "./notify.js";
import { chosenClip } from "./speakers-clips.js";
import { MAX_REPEAT } from "./speakers-play.js";
import {
  WEEKDAY_LABELS,
  canControl,
  clipById,
  clips,
  groupById,
  loadSchedules,
  schedules,
  schedulesReady,
  selectionBody,
  speakerById,
  targetIds,
} from "./speakers-state.js";
import { html, signal, useState } from "./ui.js";

const scheduleError = signal("");

const hm = (t) => (typeof t === "string" ? t.slice(0, 5) : "");

function weekdaysText(days) {
  const list = [...(days || [])].sort((a, b) => a - b);
  if (list.length === 7) return "每天";
  if (list.join(",") === "1,2,3,4,5") return "工作日（周一至周五）";
  if (list.join(",") === "6,7") return "周末";
  return list.map((d) => `周${WEEKDAY_LABELS[d - 1] || d}`).join("、");
}

function targetsText(s) {
  const sp = (s.speaker_ids || []).map((id) => speakerById.value.get(id)?.name || `喇叭 ${id}`);
  const gs = (s.group_ids || []).map((id) => `${groupById.value.get(id)?.name || `分组 ${id}`}（整组）`);
  return [...gs, ...sp].join("、") || "无";
}

function ScheduleRow({ s }) {
  const [busy, setBusy] = useState(false);
  const clipName = s.clip?.name || clipById.value.get(s.clip_id)?.name || `录音 ${s.clip_id}`;
  const write = async (fn, ok) => {
    setBusy(true);
    scheduleError.value = "";
    try {
      await fn();
      toast(ok);
      await loadSchedules();
    } catch (err) {
      scheduleError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  const path = `/api/warning-schedules/${encodeURIComponent(s.id)}`;
  const toggle = () =>
    write(() => api(path, { method: "PATCH", body: { active: !s.active } }), s.active ? "定时播放已停用" : "定时播放已启用");
  const remove = () => {
    if (!window.confirm(`确定删除定时播放“${s.name}”吗？`)) return;
    write(() => api(path, { method: "DELETE" }), "定时播放已删除");
  };
  return html`<li class=${`sched-row${s.active ? "" : " is-off"}`} data-testid="schedule-row" data-id=${s.id}
                  data-active=${String(!!s.active)}>
    <div class="sched-head">
      <strong>${s.name}</strong>
      <span class=${`tag ${s.active ? "tag-on" : ""}`} data-testid="schedule-state">${s.active ? "已启用" : "已停用"}</span>
      <span class="spacer"></span>
      ${canControl.value &&
      html`<button type="button" class="btn btn-small" data-testid="schedule-toggle" disabled=${busy}
                   onClick=${toggle}>${s.active ? "停用" : "启用"}</button>
        <button type="button" class="btn btn-small btn-danger-outline" data-testid="schedule-delete"
                disabled=${busy} onClick=${remove}>删除</button>`}
    </div>
    <div class="sched-meta">
      <span>录音：${clipName}${s.repeat > 1 ? `，每次重复 ${s.repeat} 遍` : ""}</span>
      <span data-testid="schedule-when">时间：${s.description ||
        `${weekdaysText(s.weekdays)} ${hm(s.from_time)}–${hm(s.until_time)}，每 ${s.every_minutes} 分钟`}</span>
      <span>喇叭：${targetsText(s)}</span>
      ${s.last_fire_at && html`<span class="muted">上次播放：${fmtTime(s.last_fire_at, { short: true })}</span>`}
    </div>
  </li>`;
}

const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d$/;

function ScheduleForm() {
  const [name, setName] = useState("");
  const [clipId, setClipId] = useState("");
  const [every, setEvery] = useState(15);
  const [from, setFrom] = useState("08:00");
  const [until, setUntil] = useState("20:00");
  const [days, setDays] = useState(new Set([1, 2, 3, 4, 5]));
  const [repeat, setRepeat] = useState(1);
  const [busy, setBusy] = useState(false);
  const clip = clipId || (chosenClip.value === null ? "" : String(chosenClip.value));
  const n = targetIds.value.size;
  const flip = (d) => {
    const next = new Set(days);
    if (next.has(d)) next.delete(d);
    else next.add(d);
    setDays(next);
  };
  const submit = async (ev) => {
    ev.preventDefault();
    const problems = [];
    if (!name.trim()) problems.push("请填写名称");
    if (!clip) problems.push("请选择录音");
    if (n === 0) problems.push("请先在左侧选择喇叭或分组");
    const minutes = Number(every);
    if (!Number.isInteger(minutes) || minutes < 1) problems.push("间隔应为正整数分钟");
    if (!TIME_RE.test(from) || !TIME_RE.test(until)) problems.push("时间格式应为 时:分，如 08:00");
    if (days.size === 0) problems.push("请至少选择一天");
    const r = Number(repeat);
    if (!Number.isInteger(r) || r < 1 || r > MAX_REPEAT) problems.push(`重复次数应为 1 到 ${MAX_REPEAT} 次`);
    if (problems.length) return (scheduleError.value = problems.join("；"));
    setBusy(true);
    scheduleError.value = "";
    try {
      await api("/api/warning-schedules", {
        method: "POST",
        body: {
          name: name.trim(),
          clip_id: Number(clip),
          ...selectionBody(),
          every_minutes: minutes,
          from_time: from,
          until_time: until,
          weekdays: [...days].sort((a, b) => a - b),
          repeat: r,
          active: true,
        },
      });
      toast("定时播放已创建");
      setName("");
      await loadSchedules();
    } catch (err) {
      scheduleError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="sched-form" data-testid="schedule-form" onSubmit=${submit}>
    <h3>新建定时播放</h3>
    <label class="field"><span>名称</span>
      <input data-testid="schedule-name" value=${name} maxlength="100" placeholder="如：农贸市场门口提醒"
             onInput=${(e) => setName(e.currentTarget.value)} /></label>
    <label class="field"><span>录音</span>
      <select data-testid="schedule-clip" value=${clip} onChange=${(e) => setClipId(e.currentTarget.value)}>
        <option value="">请选择录音</option>
        ${clips.value.map((c) => html`<option key=${c.id} value=${String(c.id)}>${c.name}</option>`)}
      </select></label>
    <p class="muted hint" data-testid="schedule-target">
      ${n ? `播放到左侧已选的 ${n} 个喇叭（整组按分组保存）` : "请先在左侧选择喇叭或分组"}</p>
    <div class="inline-row">
      <label class="field"><span>每隔（分钟）</span>
        <input type="number" min="1" step="1" data-testid="schedule-every" value=${every}
               onInput=${(e) => setEvery(e.currentTarget.value)} /></label>
      <label class="field"><span>开始</span>
        <input data-testid="schedule-from" value=${from} placeholder="08:00" maxlength="5"
               onInput=${(e) => setFrom(e.currentTarget.value.trim())} /></label>
      <label class="field"><span>结束</span>
        <input data-testid="schedule-until" value=${until} placeholder="20:00" maxlength="5"
               onInput=${(e) => setUntil(e.currentTarget.value.trim())} /></label>
      <label class="field"><span>重复次数</span>
        <input type="number" min="1" max=${MAX_REPEAT} step="1" data-testid="schedule-repeat" value=${repeat}
               onInput=${(e) => setRepeat(e.currentTarget.value)} /></label>
    </div>
    <fieldset class="field"><legend>星期</legend>
      <div class="checks">
        ${WEEKDAY_LABELS.map(
          (label, i) => html`<label key=${i} class="check-chip">
            <input type="checkbox" data-testid="schedule-weekday" value=${i + 1} checked=${days.has(i + 1)}
                   onChange=${() => flip(i + 1)} />周${label}</label>`,
        )}
      </div></fieldset>
    <button type="submit" class="btn btn-primary btn-small" data-testid="schedule-submit" disabled=${busy}>
      ${busy ? "正在保存…" : "创建"}</button>
  </form>`;
}

export function ScheduleList() {
  const list = schedules.value;
  return html`<div class="schedules" data-testid="schedules">
    ${scheduleError.value &&
    html`<div class="banner banner-error" role="alert" data-testid="schedule-error">${scheduleError.value}</div>`}
    ${!schedulesReady.value
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="schedule-empty">暂无定时播放</p>`
        : html`<ul class="sched-list" data-testid="schedule-list">
            ${list.map((s) => html`<${ScheduleRow} key=${s.id} s=${s} />`)}</ul>`}
    ${canControl.value && html`<${ScheduleForm} />`}
  </div>`;
}
