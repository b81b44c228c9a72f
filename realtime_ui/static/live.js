// The browser side of the live picture (docs/live.md): one websocket per page, resumable channels,
// reconnects with backoff, a dead-socket watchdog, the header's connection indicator, and a
// version tracker for case updates.
//
//   const live = connectLive({ onEvent, onResync, onState });
//   header.append(createLiveIndicator(live));
//
// - GET /api/live says where the websocket is, the epoch and the channels this user may see
//   (`channels` defaults to those). The session cookie authenticates the handshake.
// - The last (epoch, offset) seen per channel is kept in memory and in sessionStorage (per tab and
//   page), so a reconnect - or a reload of the same tab - resumes where it left off.
// - Envelopes reach onEvent in order, exactly once: an offset not above the last one seen is a
//   duplicate and dropped; one more than a step ahead is a gap and handled as a resync.
// - A `resync` (or a gap) calls onResync(channel, reason): reload over REST, the stream continues
//   from the offset the server gave.
// - Reconnects back off exponentially with full jitter (0.5 s .. 15 s, reset after a minute
//   connected), and try at once when the browser comes back online or the tab becomes visible.
// - The browser answers the server's websocket pings by itself, but a silently dead socket (a
//   sleeping laptop, a dropped NAT entry) never says so: the page sends a protocol `ping` when it has
//   heard nothing for a heartbeat, and gives the socket up when nothing at all arrives for two.
import { ApiError, api } from "./api.js";
import { el } from "./dom.js";

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
const STABLE_MS = 60_000;
const OPEN_TIMEOUT_MS = 10_000; // a handshake lost in a black hole would otherwise hang for minutes
const DEFAULT_HEARTBEAT_S = 20;
/** After this many failed attempts in a row the indicator says 已断开 (retries go on). */
const OFFLINE_AFTER = 6;
const STORAGE_PREFIX = "cityhub.live.";

function storageKey() {
  return `${STORAGE_PREFIX}${location.pathname}`;
}

function loadPositions() {
  try {
    const raw = sessionStorage.getItem(storageKey());
    const obj = raw ? JSON.parse(raw) : null;
    const out = new Map();
    if (obj && typeof obj === "object") {
      for (const [ch, pos] of Object.entries(obj)) {
        if (pos && typeof pos.epoch === "string" && Number.isInteger(pos.offset)) {
          out.set(ch, { epoch: pos.epoch, offset: pos.offset });
        }
      }
    }
    return out;
  } catch {
    return new Map();
  }
}

function savePositions(map) {
  try {
    sessionStorage.setItem(storageKey(), JSON.stringify(Object.fromEntries(map)));
  } catch {
    // storage may be full or disabled: memory is enough for this page's life
  }
}

/** A backoff delay in ms for the n-th attempt (1, 2, ...): full jitter, clamped to [min, max]. */
export function backoffDelay(attempt, { min = MIN_DELAY_MS, max = MAX_DELAY_MS, random = Math.random } = {}) {
  const cap = Math.min(max, min * 2 ** Math.max(0, attempt - 1));
  return Math.max(min, Math.round(random() * cap));
}

/**
 * Open the live connection.
 * @param {{
 *   channels?: string[] | ((info: object) => string[]),
 *   onEvent?: (envelope: object) => void,
 *   onResync?: (channel: string, reason: string) => void,
 *   onState?: (state: {state: string, attempt: number, reason: string|null}) => void,
 *   onHello?: (hello: object, info: object) => void,
 *   heartbeat?: number,
 * }} opts
 */
export function connectLive(opts = {}) {
  const { onEvent = () => {}, onResync = () => {}, onHello = () => {} } = opts;
  const stateListeners = new Set();
  if (opts.onState) stateListeners.add(opts.onState);

  const positions = loadPositions();
  let info = null;
  let ws = null;
  let wanted = [];
  let attempt = 0; // failed attempts since the last good connection
  let timer = null;
  let watchdog = null;
  let stableTimer = null;
  let lastRx = 0;
  let heartbeatMs = (opts.heartbeat || DEFAULT_HEARTBEAT_S) * 1000;
  let pingId = 0;
  let closed = false;
  let connecting = false;
  let firstConnect = true;
  let state = { state: "connecting", attempt: 0, reason: null };

  function setState(next, reason = null) {
    state = { state: next, attempt, reason };
    for (const fn of stateListeners) {
      try {
        fn(state);
      } catch (err) {
        console.error(err);
      }
    }
  }

  function remember(channel, epoch, offset) {
    positions.set(channel, { epoch, offset });
    savePositions(positions);
  }

  function resync(channel, reason) {
    try {
      onResync(channel, reason);
    } catch (err) {
      console.error(err);
    }
  }

  // ---- connecting ------------------------------------------------------------------------------

  async function connect() {
    if (closed || connecting || (ws && ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(timer);
    timer = null;
    connecting = true;
    setState(attempt >= OFFLINE_AFTER || navigator.onLine === false ? "offline" : "connecting",
      navigator.onLine === false ? "offline" : null);
    try {
      info = await api("/api/live");
    } catch (err) {
      connecting = false;
      if (err instanceof ApiError && err.status === 401) return; // api() is taking us to /login
      if (err instanceof ApiError && err.code === "live_disabled") {
        setState("offline", "disabled");
        return; // nothing to reconnect to
      }
      scheduleReconnect(err.message);
      return;
    }
    if (closed) {
      connecting = false;
      return;
    }
    if (Number(info.heartbeat) > 0 && !opts.heartbeat) heartbeatMs = Number(info.heartbeat) * 1000;
    const chans = typeof opts.channels === "function" ? opts.channels(info) : opts.channels || info.channels || [];
    wanted = [...new Set(chans)];
    if (firstConnect) {
      // A page that has just loaded its data over REST does not want yesterday's epoch replayed at
      // it: positions from another epoch are dropped (within the page's life they are kept, and the
      // server answers them with a resync).
      for (const [ch, pos] of positions) if (pos.epoch !== info.epoch) positions.delete(ch);
      savePositions(positions);
    }

    let sock;
    try {
      sock = new WebSocket(info.url);
    } catch (err) {
      connecting = false;
      scheduleReconnect(String(err && err.message));
      return;
    }
    ws = sock;
    connecting = false;
    let opened = false;
    const openTimer = setTimeout(() => {
      if (ws === sock && !opened) dropSocket("timeout");
    }, OPEN_TIMEOUT_MS);

    sock.addEventListener("open", () => {
      clearTimeout(openTimer);
      if (ws !== sock) return;
      opened = true;
      lastRx = Date.now();
      startWatchdog();
    });
    sock.addEventListener("message", (ev) => {
      if (ws !== sock) return;
      lastRx = Date.now();
      handleFrame(ev.data);
    });
    sock.addEventListener("close", (ev) => {
      clearTimeout(openTimer);
      if (ws !== sock) return;
      ws = null;
      stopWatchdog();
      clearTimeout(stableTimer);
      if (closed) return;
      if (ev.code === 4001) {
        // The sign-in ended: api() sends us to /login if so; otherwise a new session exists.
        api("/api/auth/me").then(() => scheduleReconnect("session"), () => {});
        return;
      }
      scheduleReconnect(opened ? `closed ${ev.code}` : "refused");
    });
    sock.addEventListener("error", () => {
      // a close event follows
    });
  }

  function scheduleReconnect(reason) {
    if (closed) return;
    clearTimeout(timer);
    attempt += 1;
    const delay = backoffDelay(attempt);
    const offline = attempt >= OFFLINE_AFTER || navigator.onLine === false;
    setState(offline ? "offline" : "connecting", reason);
    timer = setTimeout(() => {
      timer = null;
      connect();
    }, delay);
  }

  function subscribe() {
    const channels = wanted.map((ch) => {
      const pos = positions.get(ch);
      return pos ? { channel: ch, epoch: pos.epoch, offset: pos.offset } : { channel: ch };
    });
    if (channels.length) send({ type: "subscribe", channels });
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      try {
        ws.send(JSON.stringify(obj));
        return true;
      } catch {
        return false;
      }
    }
    return false;
  }

  // ---- messages --------------------------------------------------------------------------------

  function handleFrame(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (typeof msg.channel === "string" && Number.isInteger(msg.offset) && "data" in msg && msg.type !== "snapshot") {
      handleEnvelope(msg);
      return;
    }
    switch (msg.type) {
      case "hello":
        if (Number(msg.heartbeat) > 0 && !opts.heartbeat) heartbeatMs = Number(msg.heartbeat) * 1000;
        if (!wanted.length && Array.isArray(msg.channels)) wanted = msg.channels;
        subscribe();
        // Good: a working connection. The backoff starts over once it has lasted a minute.
        clearTimeout(stableTimer);
        stableTimer = setTimeout(() => {
          attempt = 0;
          if (state.state === "live") setState("live");
        }, STABLE_MS);
        firstConnect = false;
        setState("live");
        try {
          onHello(msg, info);
        } catch (err) {
          console.error(err);
        }
        break;
      case "subscribed": {
        const pos = positions.get(msg.channel);
        if (!pos || pos.epoch !== msg.epoch) {
          remember(msg.channel, msg.epoch, msg.offset);
        } else if (msg.offset > pos.offset) {
          // The server is ahead of us without having replayed the difference: a hole.
          remember(msg.channel, msg.epoch, msg.offset);
          resync(msg.channel, "gap");
        }
        break;
      }
      case "resync":
        if (typeof msg.channel !== "string") break;
        remember(msg.channel, msg.epoch, Number.isInteger(msg.offset) ? msg.offset : 0);
        resync(msg.channel, msg.reason || "resync");
        break;
      case "snapshot":
        if (typeof msg.channel === "string" && Number.isInteger(msg.offset)) {
          remember(msg.channel, msg.epoch, msg.offset);
        }
        deliver(msg);
        break;
      case "pong":
        break;
      case "error":
        console.warn("live:", msg.code, msg.message, msg.channel || "");
        break;
      default:
        break;
    }
  }

  function handleEnvelope(env) {
    const pos = positions.get(env.channel);
    if (pos && pos.epoch === env.epoch) {
      if (env.offset <= pos.offset) return; // a duplicate (replay overlap)
      if (env.offset > pos.offset + 1) {
        remember(env.channel, env.epoch, env.offset);
        resync(env.channel, "gap");
        deliver(env);
        return;
      }
    } else if (pos && pos.epoch !== env.epoch) {
      remember(env.channel, env.epoch, env.offset);
      resync(env.channel, "epoch");
      deliver(env);
      return;
    }
    remember(env.channel, env.epoch, env.offset);
    deliver(env);
  }

  function deliver(env) {
    try {
      onEvent(env);
    } catch (err) {
      console.error(err);
    }
  }

  // ---- liveness --------------------------------------------------------------------------------

  function startWatchdog() {
    stopWatchdog();
    watchdog = setInterval(checkAlive, Math.min(1000, heartbeatMs / 4));
  }

  function stopWatchdog() {
    clearInterval(watchdog);
    watchdog = null;
  }

  let lastPing = 0; // when the outstanding protocol ping was sent (0: none)

  // Silent for a heartbeat: ask (a `ping` the server answers with `pong`). Still silent a heartbeat
  // after asking: the socket is dead. Asking first keeps a throttled background tab (timers run
  // once a minute there) from mistaking its own late check for a dead socket.
  function checkAlive() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (lastPing > lastRx) {
      if (now - lastPing > heartbeatMs && now - lastRx > 2 * heartbeatMs) dropSocket("silent");
      return;
    }
    if (now - lastRx > heartbeatMs) {
      lastPing = now;
      send({ type: "ping", id: ++pingId });
    }
  }

  /** Give up the current socket (it is dead or we were told to) and reconnect. */
  function dropSocket(reason) {
    const sock = ws;
    ws = null;
    stopWatchdog();
    clearTimeout(stableTimer);
    if (sock) {
      try {
        sock.close(4000, reason);
      } catch {
        // already closing
      }
    }
    scheduleReconnect(reason);
  }

  /** Try now (the indicator's click, the browser coming back online, a woken tab). */
  function retryNow() {
    if (closed) return;
    if (ws && ws.readyState === WebSocket.OPEN) {
      // Possibly a zombie after a sleep: ask, and give it a few seconds to answer.
      const askedAt = Date.now();
      lastPing = askedAt;
      send({ type: "ping", id: ++pingId });
      const sock = ws;
      setTimeout(() => {
        if (ws === sock && lastRx < askedAt) dropSocket("no answer");
      }, 5000);
      return;
    }
    if (ws && ws.readyState === WebSocket.CONNECTING) return;
    clearTimeout(timer);
    timer = null;
    connect();
  }

  const onOnline = () => retryNow();
  const onOffline = () => {
    if (state.state !== "live") setState("offline", "offline");
  };
  const onVisible = () => {
    if (document.visibilityState === "visible") retryNow();
  };
  window.addEventListener("online", onOnline);
  window.addEventListener("offline", onOffline);
  document.addEventListener("visibilitychange", onVisible);

  function close() {
    closed = true;
    clearTimeout(timer);
    clearTimeout(stableTimer);
    stopWatchdog();
    window.removeEventListener("online", onOnline);
    window.removeEventListener("offline", onOffline);
    document.removeEventListener("visibilitychange", onVisible);
    if (ws) {
      const sock = ws;
      ws = null;
      sock.close(1000, "bye");
    }
    setState("offline", "closed");
  }

  connect();

  return {
    get state() {
      return state;
    },
    get info() {
      return info;
    },
    /** The current WebSocket (for diagnostics and tests), or null. */
    get socket() {
      return ws;
    },
    /** The (epoch, offset) last seen per channel. */
    positions() {
      return Object.fromEntries(positions);
    },
    addStateListener(fn) {
      stateListeners.add(fn);
      fn(state);
      return () => stateListeners.delete(fn);
    },
    retryNow,
    close,
  };
}

// ---- the indicator -----------------------------------------------------------------------------

const INDICATOR_TEXT = {
  live: "实时",
  connecting: "连接中…",
  offline: "已断开",
};

/**
 * The connection indicator for a page header: a button with a dot and a word.
 * green 实时 / amber 重连中…（第 n 次） / red 已断开 (click: retry now).
 */
export function createLiveIndicator(conn) {
  const dot = el("span", { class: "live-dot", "aria-hidden": "true" });
  const label = el("span", { class: "live-label" });
  const extra = el("span", { class: "live-extra" });
  const node = el(
    "button",
    {
      type: "button",
      class: "live-indicator",
      "data-testid": "live-indicator",
      "data-state": "connecting",
      "aria-live": "polite",
      on: { click: () => conn.retryNow() },
    },
    dot,
    label,
    extra,
  );
  const update = (s) => {
    node.dataset.state = s.state;
    node.dataset.attempt = String(s.attempt || 0);
    let text = INDICATOR_TEXT[s.state] || s.state;
    let more = "";
    let title = "";
    if (s.state === "connecting" && s.attempt > 0) {
      text = "重连中…";
      more = `（第 ${s.attempt} 次）`;
    }
    if (s.state === "live") title = "实时推送已连接";
    else if (s.state === "offline") {
      title = s.reason === "disabled" ? "服务器未启用实时推送" : "实时推送已断开，点击立即重试";
      if (s.reason === "offline") more = "（网络离线）";
    } else title = "正在连接实时推送，点击立即重试";
    label.textContent = text;
    extra.textContent = more;
    node.title = title;
    node.setAttribute("aria-label", `实时推送：${text}${more}`);
  };
  conn.addStateListener(update);
  return node;
}

// ---- case versions -----------------------------------------------------------------------------

/**
 * caseId -> the newest version shown. `accept(id, v)` records v and says true when it is newer than
 * what was known (or the case is unknown); `isNewer` only asks.
 */
export function createVersionTracker() {
  const versions = new Map();
  return {
    isNewer(id, version) {
      if (typeof version !== "number") return false;
      const known = versions.get(id);
      return known === undefined || version > known;
    },
    accept(id, version) {
      if (!this.isNewer(id, version)) return false;
      versions.set(id, version);
      return true;
    },
    /** Record what a REST answer showed (never moves backwards). */
    see(id, version) {
      if (typeof version !== "number") return;
      const known = versions.get(id);
      if (known === undefined || version > known) versions.set(id, version);
    },
    get(id) {
      return versions.get(id);
    },
    delete(id) {
      versions.delete(id);
    },
    clear() {
      versions.clear();
    },
    get size() {
      return versions.size;
    },
  };
}

// ---- stores ------------------------------------------------------------------------------------

/**
 * Open the live connection for a set of stores (store.js): every envelope or snapshot goes to the
 * stores that handle it (`store.handles(env)`, then `store.onEnvelope(env)`), a resync of a channel to
 * the stores of that channel (`store.resync(channel, reason)`). Other options as connectLive;
 * `onEvent` still sees every envelope.
 */
export function connectStores(stores, opts = {}) {
  const { onEvent = () => {}, onResync = () => {} } = opts;
  return connectLive({
    ...opts,
    onEvent(env) {
      for (const s of stores) if (s.handles(env)) s.onEnvelope(env);
      onEvent(env);
    },
    onResync(channel, reason) {
      for (const s of stores) if (!s.channel || s.channel === channel) s.resync(channel, reason);
      onResync(channel, reason);
    },
  });
}
