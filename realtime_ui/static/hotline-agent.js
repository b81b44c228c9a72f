// The console's agent bar: this agent's state (签出 / 示忙 / 示闲 / 振铃 / 通话中 / 话后整理) since
// when, the buttons 签入 / 签出 and 示闲 / 示忙 (with a reason: 休息, 培训, 会议, 其他), and the
// wrap-up countdown.
//
// Theory of operation: every button is one POST /api/hotline/me/state (hotline-state.js setState);
// its answer and the `agents` channel both move `mine`. The wrap-up countdown is the state's
// `since` plus the hub's wrap-up length (GET /api/hotline/me `wrapup_seconds`) minus now; the hub
// itself makes the agent ready when it runs out (示闲 ends it early). Without a known length the bar
// shows the time spent in wrap-up instead. The hub's refusals (409 in the wrong state) are shown as
// its own message.
import { fmtClock } from "./dom.js";
import {
  NOT_READY_REASONS,
  mine,
  now,
  secondsSince,
  setState,
  stateLabel,
  wrapupSeconds,
  fmtSeconds,
} from "./hotline-state.js";
import { html, signal } from "./ui.js";

const busy = signal(false);
const barError = signal("");
const reason = signal(NOT_READY_REASONS[0]);

async function run(state, why) {
  busy.value = true;
  barError.value = "";
  try {
    await setState(state, why);
  } catch (err) {
    barError.value = err.message;
  } finally {
    busy.value = false;
  }
}

/** "剩余 0:25" (or "已用 0:05" when the hub's wrap-up length is unknown). */
export function WrapUpClock() {
  const m = mine.value;
  if (m.state !== "wrap_up") return null;
  const spent = secondsSince(m.since, now.value);
  const total = wrapupSeconds.value;
  if (typeof total === "number" && spent !== null) {
    const left = Math.max(0, total - spent);
    return html`<span class="hl-wrap-clock" data-testid="wrapup-countdown" data-left=${Math.round(left)}>
      话后整理 剩余 ${fmtSeconds(left)}</span>`;
  }
  return html`<span class="hl-wrap-clock" data-testid="wrapup-countdown">话后整理 已用 ${fmtSeconds(spent)}</span>`;
}

export function AgentBar() {
  const m = mine.value;
  const s = m.state;
  const signedIn = s !== "signed_out";
  const dis = busy.value;
  return html`<section class="hl-panel hl-agent-bar" aria-label="坐席状态" data-testid="agent-bar" data-state=${s}>
    <div class="hl-agent-state">
      <span class=${`hl-state-tag hl-state-${s}`} data-testid="agent-state">${stateLabel(s)}</span>
      ${s === "not_ready" && m.reason && html`<span class="muted" data-testid="agent-reason">（${m.reason}）</span>`}
      ${m.since && signedIn && html`<span class="muted">自 ${fmtClock(m.since)} · ${fmtSeconds(secondsSince(m.since, now.value))}</span>`}
      <${WrapUpClock} />
    </div>
    <div class="hl-agent-buttons">
      ${signedIn
        ? html`<button type="button" class="btn btn-small" data-testid="sign-out" disabled=${dis || s === "talking" || s === "offered"}
                       onClick=${() => run("signed_out")}>签出</button>`
        : html`<button type="button" class="btn btn-primary" data-testid="sign-in" disabled=${dis}
                       onClick=${() => run("signed_in")}>签入</button>`}
      ${signedIn &&
      html`<button type="button" class="btn btn-primary btn-small" data-testid="set-ready"
                   disabled=${dis || !["not_ready", "wrap_up"].includes(s)} onClick=${() => run("ready")}>示闲</button>
        <select class="hl-reason" aria-label="示忙原因" data-testid="not-ready-reason" value=${reason.value}
                onChange=${(e) => (reason.value = e.currentTarget.value)}>
          ${NOT_READY_REASONS.map((r) => html`<option key=${r} value=${r}>${r}</option>`)}
        </select>
        <button type="button" class="btn btn-small" data-testid="set-not-ready"
                disabled=${dis || !["ready", "not_ready", "wrap_up"].includes(s)}
                onClick=${() => run("not_ready", reason.peek())}>示忙</button>`}
    </div>
    ${barError.value && html`<div class="banner banner-error" role="alert" data-testid="agent-error">${barError.value}</div>`}
  </section>`;
}
