// The speaker console's play panel and the running warnings.
//
// Theory of operation: 播放 sends POST /api/warnings with the chosen clip, the repeat count and
// the selection (speaker ids and whole groups); the hub answers 202 with the warning and calls every
// speaker at once. From then on the warning lives on the `warnings` state channel (speakers-state.js
// `running`): each running warning is a card that reads its own signal, so every speaker's outcome
// (等待中 → 播放中 → 已送达 / 占线 / 无应答 ...) changes in place, and the card goes when the hub
// drops the warning from the channel (the log keeps it). 停止 is POST /api/warnings/{id}/stop.
import { api } from "./api.js";
import { fmtClock } from "./dom.js";
import { toast } from "./notify.js";
import { chosenClip, fmtDuration } from "./speakers-clips.js";
import {
  KIND_LABELS,
  WARNING_STATE_LABELS,
  canControl,
  clipById,
  clips,
  outcomeLabel,
  running,
  selectionBody,
  targetIds,
  upsertLog,
} from "./speakers-state.js";
import { html, signal, useState } from "./ui.js";

export const MAX_REPEAT = 10;

/** Outcome lists for a warning: what each speaker got. */
export function Targets({ targets, testid = "warning-target" }) {
  if (!targets || !targets.length) return html`<p class="muted">无目标喇叭</p>`;
  return html`<ul class="wt-list">
    ${targets.map(
      (t) => html`<li key=${t.speaker_id} class=${`wt wt-${t.outcome}`} data-testid=${testid}
                      data-speaker-id=${t.speaker_id} data-outcome=${t.outcome}>
        <span class="wt-name">${t.speaker_name || `喇叭 ${t.speaker_id}`}</span>
        <span class="wt-outcome">${outcomeLabel(t.outcome)}${t.status ? `（${t.status}）` : ""}</span>
        ${t.attempts > 1 && html`<span class="muted">第 ${t.attempts} 次</span>`}
      </li>`,
    )}
  </ul>`;
}

const playError = signal("");

export function PlayPanel() {
  const [repeat, setRepeat] = useState(1);
  const [busy, setBusy] = useState(false);
  const clip = chosenClip.value === null ? null : clipById.value.get(chosenClip.value);
  const n = targetIds.value.size;
  const play = async () => {
    if (!clip) return (playError.value = "请先在录音库中选择一段录音");
    if (n === 0) return (playError.value = "请先选择喇叭或分组");
    const r = Number(repeat);
    if (!Number.isInteger(r) || r < 1 || r > MAX_REPEAT) {
      return (playError.value = `重复次数应为 1 到 ${MAX_REPEAT} 次`);
    }
    setBusy(true);
    playError.value = "";
    try {
      const w = await api("/api/warnings", {
        method: "POST",
        body: { clip_id: clip.id, repeat: r, ...selectionBody() },
      });
      upsertLog(w);
      toast(`已开始播放“${clip.name}”`);
    } catch (err) {
      playError.value = err.message;
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="spk-panel play-panel" aria-label="播放录音" data-testid="play-panel">
    <div class="spk-panel-head"><h2>播放录音</h2></div>
    ${playError.value &&
    html`<div class="banner banner-error" role="alert" data-testid="play-error">${playError.value}</div>`}
    <div class="play-row">
      <label class="field"><span>录音</span>
        <select data-testid="play-clip" value=${chosenClip.value === null ? "" : String(chosenClip.value)}
                onChange=${(e) => (chosenClip.value = e.currentTarget.value ? Number(e.currentTarget.value) : null)}>
          <option value="">请选择录音</option>
          ${clips.value.map(
            (c) => html`<option key=${c.id} value=${String(c.id)}>${c.name}（${fmtDuration(c.duration_ms)}）</option>`,
          )}
        </select></label>
      <label class="field play-repeat"><span>重复次数</span>
        <input type="number" min="1" max=${MAX_REPEAT} step="1" data-testid="play-repeat" value=${repeat}
               onInput=${(e) => setRepeat(e.currentTarget.value)} /></label>
    </div>
    <div class="play-foot">
      <span class="muted" data-testid="play-target">${n ? `将播放到 ${n} 个喇叭` : "未选择喇叭"}</span>
      <button type="button" class="btn btn-primary" data-testid="play-button" disabled=${busy} onClick=${play}>
        ${busy ? "正在发起…" : "播放"}</button>
    </div>
  </section>`;
}

function RunningCard({ item }) {
  const w = item.value;
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const stop = async () => {
    setBusy(true);
    setErr("");
    try {
      upsertLog(await api(`/api/warnings/${encodeURIComponent(w.id)}/stop`, { method: "POST" }));
    } catch (e) {
      setErr(e.message);
    } finally {
      setBusy(false);
    }
  };
  const done = (w.targets || []).filter((t) => !["pending", "playing"].includes(t.outcome)).length;
  return html`<li class="run-card" data-testid="running-warning" data-id=${w.id} data-state=${w.state}
                  data-kind=${w.kind}>
    <div class="run-head">
      <strong>${w.clip ? w.clip.name : KIND_LABELS[w.kind] || w.kind}</strong>
      <span class="tag">${WARNING_STATE_LABELS[w.state] || w.state}</span>
      ${w.repeat > 1 && html`<span class="muted">重复 ${w.repeat} 次</span>`}
      <span class="muted">${w.started_by ? w.started_by.name : ""} · ${fmtClock(w.started_at)}</span>
      <span class="muted" data-testid="running-progress">${done} / ${(w.targets || []).length}</span>
      <span class="spacer"></span>
      ${canControl.value &&
      html`<button type="button" class="btn btn-small btn-danger" data-testid="warning-stop"
                   disabled=${busy || w.state !== "running"} onClick=${stop}>停止</button>`}
    </div>
    ${err && html`<div class="banner banner-error" role="alert">${err}</div>`}
    <${Targets} targets=${w.targets} />
  </li>`;
}

export function RunningList() {
  const keys = running.keys.value;
  return html`<section class="spk-panel run-panel" aria-label="正在进行的喊话" data-testid="running-panel">
    <div class="spk-panel-head"><h2>正在进行</h2>
      <span class="muted" data-testid="running-count">${keys.length} 个</span></div>
    ${!running.ready.value
      ? html`<p class="loading">正在连接…</p>`
      : keys.length === 0
        ? html`<p class="empty muted" data-testid="running-empty">当前没有正在播放的喊话</p>`
        : html`<ul class="run-list">
            ${[...keys].reverse().map((k) => html`<${RunningCard} key=${k} item=${running.item(k)} />`)}</ul>`}
  </section>`;
}
