// The 12319 console's shared state (hotline.html): who is signed in, the two hotline state channels
// (`queue`: the waiting calls and the day's figures; `agents`: one entry per agent user id), this
// agent's own state, the call the agent is in, and the small formatting helpers the parts share.
//
// Theory of operation:
// - The channels come over the page's one websocket (hotline.js connectStores); before their
//   snapshot arrives the page shows GET /api/hotline/board (put into the stores as a snapshot, which
//   the websocket's own snapshot then replaces). A resync reloads the board the same way.
// - `mine` is this agent's state ({state, reason, call, since, caller}): the agents channel's entry
//   for the user id whenever it changes, and the answer of every POST /api/hotline/me/state (which
//   is at least as new as the channel at that moment).
// - `current` is GET /api/hotline/me's `current` (the caller's full number, the call record id, the
//   caller's open cases and earlier calls), read again whenever `mine.call` changes. `lastCall` keeps
//   it after the call ends, until the wrap-up (话后小结) is saved: the record id stays known.
import { api } from "./api.js";
import { createStateStore } from "./store.js";
import { computed, effect, signal } from "./ui.js";

export const AGENT_ROLES = new Set(["admin", "agent"]);
export const BOARD_ROLES = new Set([...AGENT_ROLES, "seat", "dispatcher", "viewer"]);

export const STATE_LABELS = {
  signed_out: "签出",
  not_ready: "示忙",
  ready: "示闲",
  offered: "振铃",
  talking: "通话中",
  wrap_up: "话后整理",
};
export const STATE_ORDER = ["ready", "offered", "talking", "wrap_up", "not_ready", "signed_out"];
export const NOT_READY_REASONS = ["休息", "培训", "会议", "其他"];
export const OUTCOME_LABELS = {
  answered: "已接听",
  abandoned: "放弃",
  callback: "预约回拨",
  overflow: "溢出",
  out_of_hours: "非服务时间",
  failed: "失败",
};

export const stateLabel = (s) => STATE_LABELS[s] || s || "";
export const outcomeLabel = (o) => (o ? OUTCOME_LABELS[o] || o : "进行中");

/** The signed-in user. */
export const user = signal(null);
export const myId = computed(() => (user.value ? String(user.value.id) : ""));

/** A clock ticking once a second (wait times, call timers, the wrap-up countdown). */
export const now = signal(Date.now());
setInterval(() => (now.value = Date.now()), 1000);

// ---- the channels ------------------------------------------------------------------------------

/** "calls" -> the waiting calls, "today" -> the day's figures. */
export const queue = createStateStore("queue");
/** agent user id -> {state, reason, call, since, caller}. */
export const agents = createStateStore("agents");
/** agent user id -> display name (GET /api/hotline/board agent_names). */
export const agentNames = signal({});
export const boardError = signal("");

export const agentName = (id) => agentNames.value[id] || `坐席 ${id}`;

/** GET /api/hotline/board into the stores (only where the channel has said nothing, unless `force`). */
export async function loadBoard({ force = false } = {}) {
  let res;
  try {
    res = await api("/api/hotline/board");
  } catch (err) {
    boardError.value = err.code === "no_hotline" ? err.message : `排队看板加载失败：${err.message}`;
    return;
  }
  boardError.value = "";
  agentNames.value = res.agent_names || {};
  if (force || !queue.ready.peek()) {
    queue.onEnvelope({ type: "snapshot", data: { calls: res.calls || [], today: res.today || {} } });
  }
  if (force || !agents.ready.peek()) {
    const data = {};
    for (const a of res.agents || []) data[String(a.agent)] = a;
    agents.onEnvelope({ type: "snapshot", data });
  }
}

/** Every agent's entry (reads signals). */
export function agentList() {
  return agents.keys.value.map((k) => ({ id: k, ...agents.item(k).value }));
}

// ---- this agent --------------------------------------------------------------------------------

export const mine = signal({ state: "signed_out", reason: "", call: null, since: null, caller: null });
/** The hub's wrap-up length in seconds (GET /api/hotline/me), or null. */
export const wrapupSeconds = signal(null);
/** GET /api/hotline/me `current`, or null. */
export const current = signal(null);
/** The last call's console view, kept until its wrap-up is saved. */
export const lastCall = signal(null);
export const consoleError = signal("");

function adopt(answer) {
  if (typeof answer.wrapup_seconds === "number") wrapupSeconds.value = answer.wrapup_seconds;
  const prev = mine.peek();
  mine.value = {
    state: answer.state,
    reason: answer.reason || "",
    call: answer.call || null,
    since: answer.since || (prev.state === answer.state ? prev.since : new Date().toISOString()),
    caller: prev.call === answer.call ? prev.caller : null,
  };
  if ("current" in answer && answer.current) {
    current.value = answer.current;
    lastCall.value = { ...(lastCall.peek()?.id === answer.current.id ? lastCall.peek() : {}), ...answer.current };
  } else if (!answer.call) {
    current.value = null;
  }
}

/** GET /api/hotline/me: the agent's state and the current call. */
export async function loadMe() {
  adopt(await api("/api/hotline/me"));
}

/** POST /api/hotline/me/state (signed_in, signed_out, ready, not_ready with a reason). */
export async function setState(state, reason) {
  const body = state === "not_ready" ? { state, reason } : { state };
  adopt(await api("/api/hotline/me/state", { method: "POST", body }));
}

/** Follow the agents channel's entry of this agent into `mine`, and re-read /me when the call changes. */
export function followMine() {
  effect(() => {
    agents.keys.value;
    const item = agents.item(myId.value);
    const v = item ? item.value : null;
    if (v) mine.value = { state: v.state, reason: v.reason || "", call: v.call || null, since: v.since, caller: v.caller };
  });
  let lastCallId = null;
  effect(() => {
    const callId = mine.value.call;
    if (callId && callId !== lastCallId) loadMe().catch((err) => (consoleError.value = err.message));
    if (!callId) current.value = null;
    lastCallId = callId;
  });
}

// ---- formatting --------------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

/** "1:05" or "1:02:05" for seconds. */
export function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "—";
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(t % 60)}` : `${m}:${pad(t % 60)}`;
}

/** Seconds from an ISO instant to `at` (ms). */
export function secondsSince(iso, at) {
  const t = Date.parse(iso || "");
  return Number.isNaN(t) ? null : Math.max(0, (at - t) / 1000);
}

/** "85.0%" for a fraction, "—" for none. */
export function fmtPercent(x) {
  return typeof x === "number" ? `${(x * 100).toFixed(1)}%` : "—";
}
