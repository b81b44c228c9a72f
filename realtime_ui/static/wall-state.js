// The video wall's shared state (wall.html): who is signed in, the cameras (REST) and their live
// status (the `cameras` state channel), the wall's layout shared by the seat's windows, and the
// freshness of every tile's picture (what patrol reports say).
//
// Theory of operation:
// - The wall is the seat's: a tile count and, per screen, a list of camera ids (or null); window
//   `?screen=N` shows screen N's list on its tiles. Every change is put into localStorage (a reload keeps it) and sent
//   on a BroadcastChannel("cityhub-wall") to the seat's other windows, which adopt it; a window that
//   opens says "hello" and the others answer with the wall and the patrol round they know.
// - While a patrol round runs, the tiles show the round's current page (its slice for this screen)
//   instead of the layout: window N shows the slice [(N-1)*tiles, N*tiles) of the page.
// - A camera's status is the channel's value when there is one, else the REST list's.
// - Each tile writes how fresh its picture is into `freshness` (camera id -> {okAt, visible, reason}),
//   which the patrol module reads every few seconds for its report.
import { api } from "./api.js";
import { createStateStore } from "./store.js";
import { computed, signal } from "./ui.js";

export const CONTROL_ROLES = new Set(["admin", "seat", "dispatcher"]);
export const READ_ROLES = new Set([...CONTROL_ROLES, "viewer"]);
export const LAYOUTS = [1, 4, 9, 16, 25, 36, 48];
export const STATUS_LABELS = { online: "在线", connecting: "连接中", offline: "离线", unknown: "未知" };

/** This window's screen number (1 = the first monitor). */
export const screenNo = Math.max(1, Math.min(16, Number(new URLSearchParams(location.search).get("screen")) || 1));

export const user = signal(null);
/** Seats, dispatchers and admins snapshot, warn and patrol; viewers only look. */
export const canControl = computed(() => !!user.value && CONTROL_ROLES.has(user.value.role));

/** A clock ticking once a second (capture ages, countdowns). */
export const now = signal(Date.now());
setInterval(() => (now.value = Date.now()), 1000);

// ---- cameras -----------------------------------------------------------------------------------

export const cameras = signal([]);
export const camerasReady = signal(false);
export const cameraById = computed(() => new Map(cameras.value.map((c) => [c.id, c])));
/** camera id (string) -> {state, reason, since}. */
export const camStatus = createStateStore("cameras");
/** seat user id (string) -> the seat's running patrol round. */
export const patrolStore = createStateStore("patrol");

export async function loadCameras() {
  const res = await api("/api/cameras");
  cameras.value = (res.items || []).filter((c) => c.active !== false);
  camerasReady.value = true;
}

/** A camera's status: the channel's when it has one, else the list's. Reads signals. */
export function statusOf(cam) {
  if (!cam) return { state: "unknown", reason: null, since: null };
  camStatus.keys.value;
  const live = camStatus.item(String(cam.id));
  const v = live ? live.value : null;
  return (v && v.state ? v : cam.status) || { state: "unknown", reason: null, since: null };
}

export const statusLabel = (s) => STATUS_LABELS[s] || STATUS_LABELS.unknown;

// ---- the wall (shared by the seat's windows) ---------------------------------------------------

/** {tiles, screens: {"1": [id|null, ...], "2": [...]}} */
export const wall = signal({ tiles: 16, screens: {} });
/** The tile chosen by a click (an index on this screen), waiting for a camera click. */
export const selectedTile = signal(null);
/** The running patrol round (GET /api/patrol/rounds/current or the channel), or null. */
export const round = signal(null);

const storageKey = () => `cityhub.wall.${user.peek()?.id ?? "anon"}`;
let channel = null;

function post(msg) {
  try {
    channel?.postMessage({ ...msg, user: user.peek()?.id });
  } catch {
    // a closed channel: this window only
  }
}

function normalise(w) {
  const tiles = LAYOUTS.includes(Number(w?.tiles)) ? Number(w.tiles) : 16;
  const screens = {};
  for (const [k, list] of Object.entries(w?.screens || {})) {
    if (Array.isArray(list)) screens[k] = list.map((x) => (Number.isInteger(x) ? x : null));
  }
  return { tiles, screens };
}

/** Set the wall here, keep it across reloads and tell the other windows. */
export function setWall(w, { broadcast = true } = {}) {
  const next = normalise(w);
  wall.value = next;
  try {
    localStorage.setItem(storageKey(), JSON.stringify(next));
  } catch {
    // storage disabled
  }
  if (broadcast) post({ type: "wall", wall: next });
}

export function setRound(r, { broadcast = true } = {}) {
  round.value = r && !r.ended ? r : null;
  if (broadcast) post({ type: "round", round: round.peek() });
}

/** Restore the wall from storage and join the seat's other windows. */
export function joinWindows() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey()) || "null");
    if (saved) wall.value = normalise(saved);
  } catch {
    // a broken entry: start empty
  }
  if (typeof BroadcastChannel !== "function") return;
  channel = new BroadcastChannel("cityhub-wall");
  channel.onmessage = (e) => {
    const m = e.data || {};
    if (m.user !== user.peek()?.id) return; // another seat signed in on this browser
    if (m.type === "wall") setWall(m.wall, { broadcast: false });
    else if (m.type === "round") round.value = m.round && !m.round.ended ? m.round : null;
    else if (m.type === "hello") {
      post({ type: "wall", wall: wall.peek() });
      if (round.peek()) post({ type: "round", round: round.peek() });
    }
  };
  post({ type: "hello" });
}

/** The camera ids on this window's tiles (the layout, or the patrol page's slice). */
export const screenCameras = computed(() => {
  const { tiles, screens } = wall.value;
  const r = round.value;
  const from = r ? (screenNo - 1) * tiles : 0;
  const src = r ? r.cameras_now || [] : screens[String(screenNo)] || [];
  const out = [];
  for (let i = 0; i < tiles; i += 1) out.push(src[from + i] ?? null);
  return out;
});

/** Put a camera on a tile of this screen (null clears it). */
export function assignTile(index, cameraId) {
  setScreen({ ...Object.fromEntries(myList().map((x, i) => [i, x])), [index]: cameraId });
}

/** This screen's camera list. */
export const myList = () => wall.peek().screens[String(screenNo)] || [];

/** Replace this screen's cameras ({index: id|null} or an array). */
export function setScreen(cams, tiles = wall.peek().tiles) {
  const list = [];
  for (const [k, v] of Object.entries(cams)) {
    const i = Number(k);
    if (i >= 0 && i < 48) {
      while (list.length <= i) list.push(null);
      list[i] = v ?? null;
    }
  }
  setWall({ tiles, screens: { ...wall.peek().screens, [String(screenNo)]: list } });
}

export function setTiles(tiles) {
  setWall({ tiles, screens: wall.peek().screens });
}

// ---- picture freshness (for patrol reports) ----------------------------------------------------

/** camera id -> {okAt: ms of the last good answer, visible: bool, reason: string|null} */
export const freshness = new Map();

/** "3 秒前" for a capture time. */
export function ageText(iso, at) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((at - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return "";
  if (s < 60) return `${s} 秒前`;
  if (s < 3600) return `${Math.floor(s / 60)} 分钟前`;
  return `${Math.floor(s / 3600)} 小时前`;
}
