// The console's records: this agent's calls today (each with its recording to play) and the
// callback list (来电人按键预约的回拨, with 已回拨).
//
// Theory of operation: the calls are GET /api/hotline/calls (an agent gets their own, newest
// first), kept to those that arrived since the city's midnight (dom.js startOfCityDay); the list is
// read again when one of the agent's calls ends and after a wrap-up is saved — no polling. Each
// recording is an <audio controls preload="none"> on GET /api/hotline/calls/{id}/recording (the
// session cookie authorises it). The callbacks are GET /api/hotline/callbacks, read again when the
// day's `callbacks` figure on the `queue` channel changes; 已回拨 is POST …/callbacks/{id}/done.
import { api } from "./api.js";
import { fmtClock, fmtTime, startOfCityDay } from "./dom.js";
import { fmtSeconds, mine, outcomeLabel, queue } from "./hotline-state.js";
import { effect, html, signal } from "./ui.js";

const calls = signal(null);
const callsError = signal("");
const callbacks = signal(null);
const callbacksError = signal("");

export async function reloadCalls() {
  try {
    const res = await api("/api/hotline/calls", { query: { limit: 100 } });
    const since = startOfCityDay().getTime();
    calls.value = (res.items || []).filter((c) => Date.parse(c.arrived_at) >= since);
    callsError.value = "";
  } catch (err) {
    callsError.value = `通话记录加载失败：${err.message}`;
  }
}

/** The agent's newest call when it is answered and has no wrap-up yet (a page reloaded in 话后整理). */
export function lastUndisposed() {
  const c = (calls.peek() || [])[0];
  return c && c.outcome === "answered" && !c.disposition ? c : null;
}

export async function reloadCallbacks() {
  try {
    callbacks.value = (await api("/api/hotline/callbacks")).items || [];
    callbacksError.value = "";
  } catch (err) {
    callbacksError.value = `回拨列表加载失败：${err.message}`;
  }
}

/** Reload the day's calls when a call of this agent ends, the callbacks when the day's count moves. */
export function followRecords() {
  let wasInCall = false;
  effect(() => {
    const s = mine.value.state;
    const inCall = s === "talking";
    if (wasInCall && !inCall) setTimeout(reloadCalls, 500); // the record's end is written meanwhile
    wasInCall = inCall;
  });
  let lastCount = null;
  effect(() => {
    queue.keys.value;
    const n = queue.item("today")?.value?.callbacks ?? null;
    if (n !== lastCount && lastCount !== null) reloadCallbacks();
    lastCount = n;
  });
}

function CallRow({ c }) {
  return html`<li class="hl-record" data-testid="my-call" data-id=${c.id} data-outcome=${c.outcome || ""}>
    <div class="hl-record-head">
      <time datetime=${c.arrived_at}>${fmtClock(c.arrived_at)}</time>
      <strong>${c.caller}</strong>
      <span class="tag">${outcomeLabel(c.outcome)}</span>
      ${c.talk_seconds !== null && html`<span class="muted">通话 ${fmtSeconds(c.talk_seconds)}</span>`}
      ${c.disposition_label && html`<span data-testid="my-call-disposition">${c.disposition_label}</span>`}
      ${c.case && html`<a href=${`/board?case=${c.case.id}`} target="_blank" rel="noopener" data-testid="my-call-case">案件 ${c.case.case_no || c.case.id}</a>`}
    </div>
    ${c.note && html`<div class="muted">${c.note}</div>`}
    ${c.recording && html`<audio controls preload="none" src=${c.recording} data-testid="my-call-recording"></audio>`}
  </li>`;
}

export function MyCalls() {
  const list = calls.value;
  return html`<section class="hl-panel hl-records" aria-label="今日通话" data-testid="my-calls">
    <div class="hl-panel-head"><h2>我的今日通话</h2><span class="muted">${list ? `${list.length} 通` : ""}</span></div>
    ${callsError.value && html`<div class="banner banner-error" role="alert">${callsError.value}</div>`}
    ${list === null
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="my-calls-empty">今天还没有通话</p>`
        : html`<ul class="hl-record-list">${list.map((c) => html`<${CallRow} key=${c.id} c=${c} />`)}</ul>`}
  </section>`;
}

async function done(cb) {
  try {
    await api(`/api/hotline/callbacks/${cb.id}/done`, { method: "POST" });
    callbacks.value = (callbacks.peek() || []).filter((x) => x.id !== cb.id);
  } catch (err) {
    callbacksError.value = `操作失败：${err.message}`;
  }
}

export function Callbacks() {
  const list = callbacks.value;
  return html`<section class="hl-panel hl-callbacks" aria-label="待回拨" data-testid="callbacks">
    <div class="hl-panel-head"><h2>待回拨</h2><span class="muted">${list ? `${list.length} 个` : ""}</span></div>
    ${callbacksError.value && html`<div class="banner banner-error" role="alert">${callbacksError.value}</div>`}
    ${list === null
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="callbacks-empty">没有待回拨的号码</p>`
        : html`<ul class="hl-record-list">${list.map((cb) => html`
            <li key=${cb.id} class="hl-record" data-testid="callback" data-id=${cb.id}>
              <strong>${cb.number}</strong> <span class="muted">${fmtTime(cb.requested_at, { short: true, seconds: true })}</span>
              <button type="button" class="btn btn-small" data-testid="callback-done" onClick=${() => done(cb)}>已回拨</button>
            </li>`)}</ul>`}
  </section>`;
}
