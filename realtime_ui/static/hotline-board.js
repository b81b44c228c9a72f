// The 12319 queue board: the waiting calls with their live-ticking waits, the longest wait, the
// agents by state (counts and a list), and the day's figures (offered, answered, abandoned, both
// service levels, average speed of answer, abandon rate). A panel of the console, and on its own
// the big screen (/hotline?view=board) for agents, seats, dispatchers and the viewer account.
//
// Theory of operation: everything is read from the two state-channel stores (hotline-state.js
// `queue` and `agents`), seeded once by GET /api/hotline/board and then kept by the websocket —
// no polling. The waits tick from each call's `waiting_since` with the page's one-second clock; the
// longest wait is the day's figure or the longest current wait, whichever is longer. Service levels
// are shown as percentages: answered within the threshold ÷ answered, and ÷ (answered + abandoned).
import { fmtClock } from "./dom.js";
import {
  STATE_ORDER,
  agentList,
  agentName,
  boardError,
  fmtPercent,
  fmtSeconds,
  now,
  queue,
  secondsSince,
  stateLabel,
} from "./hotline-state.js";
import { html } from "./ui.js";

const CALL_STATE_LABELS = { queued: "排队中", offered: "振铃" };

function Figure({ label, value, testid, raw }) {
  return html`<div class="hl-figure" data-testid=${testid} data-value=${raw ?? ""}>
    <span class="hl-figure-value">${value}</span><span class="hl-figure-label">${label}</span></div>`;
}

function Waiting({ calls, at }) {
  if (!calls.length) return html`<p class="empty muted" data-testid="board-no-waiting">当前无排队来电</p>`;
  return html`<ol class="hl-waiting" data-testid="board-waiting">
    ${calls.map((c) => {
      const wait = secondsSince(c.waiting_since, at);
      return html`<li key=${c.call} class=${`hl-waiting-call hl-call-${c.state}`} data-testid="waiting-call"
                      data-call=${c.call} data-state=${c.state} data-wait=${Math.floor(wait ?? 0)}>
        <span class="hl-pos">${c.position}</span>
        <span class="hl-caller-masked">${c.caller}</span>
        <span class="hl-wait-state">${CALL_STATE_LABELS[c.state] || c.state}${c.agent ? ` · ${agentName(c.agent)}` : ""}</span>
        <span class="hl-wait" data-testid="waiting-wait">${fmtSeconds(wait)}</span>
      </li>`;
    })}
  </ol>`;
}

function Agents({ at }) {
  const list = agentList();
  const counts = Object.fromEntries(STATE_ORDER.map((s) => [s, 0]));
  for (const a of list) counts[a.state] = (counts[a.state] || 0) + 1;
  const shown = list
    .filter((a) => a.state !== "signed_out")
    .sort((a, b) => STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state) || a.id.localeCompare(b.id));
  return html`<div class="hl-agents" data-testid="board-agents">
    <div class="hl-agent-counts">
      ${STATE_ORDER.filter((s) => s !== "signed_out").map(
        (s) => html`<span key=${s} class=${`hl-count hl-state-${s}`} data-testid=${`agents-${s}`} data-value=${counts[s]}>
          ${stateLabel(s)} <strong>${counts[s]}</strong></span>`,
      )}
    </div>
    ${shown.length === 0
      ? html`<p class="empty muted">没有签入的坐席</p>`
      : html`<ul class="hl-agent-list">${shown.map(
          (a) => html`<li key=${a.id} class=${`hl-agent hl-state-${a.state}`} data-testid="board-agent" data-agent=${a.id} data-state=${a.state}>
            <span class="hl-agent-name">${agentName(a.id)}</span>
            <span class="hl-agent-st">${stateLabel(a.state)}${a.state === "not_ready" && a.reason ? `（${a.reason}）` : ""}</span>
            <span class="hl-agent-for">${fmtSeconds(secondsSince(a.since, at))}</span>
          </li>`,
        )}</ul>`}
  </div>`;
}

/** The board: `big` for the big screen (one screen, large type), else the console's panel. */
export function QueueBoard({ big = false }) {
  const calls = queue.item("calls")?.value || [];
  const t = queue.item("today")?.value || {};
  queue.keys.value;
  const at = now.value;
  const live = Math.max(0, ...calls.map((c) => secondsSince(c.waiting_since, at) || 0));
  const longest = Math.max(live, typeof t.longest_wait === "number" ? t.longest_wait : 0);
  const threshold = typeof t.threshold === "number" ? Math.round(t.threshold) : 20;
  return html`<section class=${`hl-panel hl-board${big ? " hl-board-big" : ""}`} aria-label="12319 排队看板"
                       data-testid="queue-board" data-ready=${String(queue.ready.value)}>
    <div class="hl-panel-head"><h2>${big ? "12319 热线排队看板" : "排队看板"}</h2>
      <span class="muted">${fmtClock(new Date(at).toISOString())}</span></div>
    ${boardError.value && html`<div class="banner banner-error" role="alert" data-testid="board-error">${boardError.value}</div>`}
    <div class="hl-figures hl-figures-now">
      <${Figure} label="排队" value=${calls.filter((c) => c.state === "queued").length} testid="board-waiting-count"
                 raw=${calls.filter((c) => c.state === "queued").length} />
      <${Figure} label="今日最长等待" value=${fmtSeconds(longest)} testid="board-longest-wait" raw=${Math.floor(longest)} />
    </div>
    <div class="hl-board-cols">
      <div class="hl-board-col"><h3>排队来电</h3><${Waiting} calls=${calls} at=${at} /></div>
      <div class="hl-board-col"><h3>坐席</h3><${Agents} at=${at} /></div>
    </div>
    <h3>今日</h3>
    <div class="hl-figures">
      <${Figure} label="呼入" value=${t.arrived ?? 0} testid="today-arrived" raw=${t.arrived ?? 0} />
      <${Figure} label="分配" value=${t.offered ?? 0} testid="today-offered" raw=${t.offered ?? 0} />
      <${Figure} label="接听" value=${t.answered ?? 0} testid="today-answered" raw=${t.answered ?? 0} />
      <${Figure} label="放弃" value=${t.abandoned ?? 0} testid="today-abandoned" raw=${t.abandoned ?? 0} />
      <${Figure} label=${`服务水平（${threshold} 秒内接听÷接听）`} value=${fmtPercent(t.service_level)} testid="today-service-level" />
      <${Figure} label=${`服务水平（含放弃）`} value=${fmtPercent(t.service_level_abandoned)} testid="today-service-level-abandoned" />
      <${Figure} label="平均应答时间" value=${typeof t.average_speed_of_answer === "number" ? `${t.average_speed_of_answer.toFixed(1)} 秒` : "—"}
                 testid="today-asa" />
      <${Figure} label="放弃率" value=${fmtPercent(t.abandon_rate)} testid="today-abandon-rate" />
    </div>
  </section>`;
}
