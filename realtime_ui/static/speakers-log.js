// The speaker console's log: every warning (who, which speakers, clip or live talk, start, end and
// the outcome per speaker), newest first, in the city's time zone.
//
// Theory of operation: the first page is GET /api/warnings?limit=50, more pages with before=<the
// oldest id shown>; the `warnings` channel keeps the entries current (speakers-state.js
// followRunning/upsertLog), so a warning started anywhere appears at the top while it runs and
// shows its final outcomes when it ends, without a reload.
import { fmtTime } from "./dom.js";
import { Targets } from "./speakers-play.js";
import { KIND_LABELS, WARNING_STATE_LABELS, loadLog, log, logMore, logReady } from "./speakers-state.js";
import { html, signal, useState } from "./ui.js";

const logError = signal("");

export async function reloadLog(opts) {
  try {
    await loadLog(opts);
    logError.value = "";
  } catch (err) {
    logError.value = `播放记录加载失败：${err.message}`;
  }
}

function LogRow({ w }) {
  const targets = w.targets || [];
  const delivered = targets.filter((t) => t.outcome === "delivered").length;
  return html`<li class=${`log-row log-${w.state}`} data-testid="log-row" data-id=${w.id} data-state=${w.state}
                  data-kind=${w.kind}>
    <div class="log-head">
      <time class="log-time" datetime=${w.started_at || ""} data-testid="log-time">${fmtTime(w.started_at, { seconds: true })}</time>
      <strong>${w.clip ? w.clip.name : KIND_LABELS[w.kind] || w.kind}</strong>
      <span class="tag" data-testid="log-state">${WARNING_STATE_LABELS[w.state] || w.state}</span>
      ${w.schedule_id && html`<span class="tag">定时</span>`}
      ${w.case_id && html`<span class="tag">案件 ${w.case_id}</span>`}
    </div>
    <div class="log-meta muted">
      ${KIND_LABELS[w.kind] || w.kind}${w.repeat > 1 ? ` · 重复 ${w.repeat} 次` : ""}
      · ${w.started_by ? w.started_by.name : "系统"}
      ${w.ended_at ? ` · 结束于 ${fmtTime(w.ended_at, { seconds: true })}` : ""}
      · 送达 ${delivered} / ${targets.length}
    </div>
    <${Targets} targets=${targets} testid="log-target" />
  </li>`;
}

export function LogList() {
  const [busy, setBusy] = useState(false);
  const list = log.value;
  const more = async () => {
    setBusy(true);
    await reloadLog({ more: true });
    setBusy(false);
  };
  return html`<div class="warning-log" data-testid="warning-log">
    ${logError.value && html`<div class="banner banner-error" role="alert">${logError.value}</div>`}
    ${!logReady.value
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="log-empty">暂无播放记录</p>`
        : html`<ul class="log-list" data-testid="log-list">${list.map((w) => html`<${LogRow} key=${w.id} w=${w} />`)}</ul>`}
    ${logMore.value &&
    html`<button type="button" class="btn btn-small" data-testid="log-more" disabled=${busy} onClick=${more}>
      ${busy ? "正在加载…" : "加载更多"}</button>`}
  </div>`;
}
