// The speaker console's shared state (speakers.html): who is signed in, the speakers, groups and
// clips (REST), the two live state channels (store.js), the selection, and the warning log.
//
// Theory of operation:
// - The speaker list comes from GET /api/speakers (names, places, groups, the status at that time);
//   the `speakers` state channel then carries each speaker's status ({id, state, since}) keyed by
//   the id as a string. A row shows the channel's status when there is one, else the REST one.
// - The `warnings` channel holds the running warnings (id -> warning JSON) and drops one when it
//   ends. The log (GET /api/warnings, newest first) takes every version heard there, and when a
//   warning leaves the channel its final form is read back (GET /api/warnings/{id}); a terminal
//   state is never overwritten by an older "running" copy (a REST answer racing the channel).
// - The selection is speaker ids plus whole groups; the play, talk and schedule forms send both
//   (the server expands groups), `targetIds` is what the page shows as the reach of a selection.
import { api } from "./api.js";
import { createStateStore } from "./store.js";
import { batch, computed, effect, signal } from "./ui.js";

export const CONTROL_ROLES = new Set(["admin", "seat", "dispatcher"]);
export const READ_ROLES = new Set([...CONTROL_ROLES, "viewer"]);

export const STATUS_LABELS = { online: "在线", busy: "通话中", offline: "离线", unknown: "未知" };
export const OUTCOME_LABELS = {
  pending: "等待中",
  playing: "播放中",
  delivered: "已送达",
  busy: "占线",
  rejected: "被拒绝",
  no_answer: "无应答",
  unreachable: "无法连接",
  stopped: "已停止",
  failed: "失败",
};
export const WARNING_STATE_LABELS = { running: "进行中", done: "已完成", stopped: "已停止", failed: "失败" };
export const KIND_LABELS = { clip: "录音播放", live: "实时喊话" };
export const SOURCE_LABELS = { upload: "上传", tts: "文字合成" };
export const WEEKDAY_LABELS = ["一", "二", "三", "四", "五", "六", "日"]; // 1 = Monday .. 7

export const statusLabel = (s) => STATUS_LABELS[s] || STATUS_LABELS.unknown;
export const outcomeLabel = (o) => OUTCOME_LABELS[o] || o || "";

// ---- who is signed in --------------------------------------------------------------------------

/** The signed-in user ({id, username, display_name, role, ...}) once known. */
export const user = signal(null);
/** Seats, dispatchers and admins play, talk, manage clips and schedules; viewers only look. */
export const canControl = computed(() => !!user.value && CONTROL_ROLES.has(user.value.role));

// ---- reference data ----------------------------------------------------------------------------

export const speakers = signal([]);
export const speakersReady = signal(false);
export const groups = signal([]);
export const clips = signal([]);
export const clipsReady = signal(false);
export const schedules = signal([]);
export const schedulesReady = signal(false);

export const speakerById = computed(() => new Map(speakers.value.map((s) => [s.id, s])));
export const groupById = computed(() => new Map(groups.value.map((g) => [g.id, g])));
export const clipById = computed(() => new Map(clips.value.map((c) => [c.id, c])));

const byName = (a, b) => String(a.name).localeCompare(String(b.name), "zh-CN") || a.id - b.id;

export async function loadSpeakers() {
  const res = await api("/api/speakers");
  speakers.value = [...(res.items || [])].sort(byName);
  speakersReady.value = true;
}

export async function loadGroups() {
  const res = await api("/api/speaker-groups");
  groups.value = [...(res.items || [])].sort(byName);
}

export async function loadClips() {
  const res = await api("/api/clips");
  clips.value = res.items || [];
  clipsReady.value = true;
}

export async function loadSchedules() {
  const res = await api("/api/warning-schedules");
  schedules.value = res.items || [];
  schedulesReady.value = true;
}

// ---- live channels -----------------------------------------------------------------------------

/** speaker id (string) -> {id, state, since}. */
export const liveStatus = createStateStore("speakers");
/** warning id (string) -> the running warning. */
export const running = createStateStore("warnings");

/** A speaker's status: the channel's when it has one, else the list's. Reads signals. */
export function statusOf(sp) {
  liveStatus.keys.value; // re-render when a speaker's first status arrives
  const live = liveStatus.item(String(sp.id));
  const v = live ? live.value : null;
  return (v && v.state ? v : sp.status) || { state: "unknown", since: null };
}

// ---- the selection -----------------------------------------------------------------------------

export const selSpeakers = signal(new Set());
export const selGroups = signal(new Set());

function toggled(set, id) {
  const next = new Set(set);
  if (next.has(id)) next.delete(id);
  else next.add(id);
  return next;
}

export const toggleSpeaker = (id) => (selSpeakers.value = toggled(selSpeakers.peek(), id));
export const toggleGroup = (id) => (selGroups.value = toggled(selGroups.peek(), id));
export function clearSelection() {
  batch(() => {
    selSpeakers.value = new Set();
    selGroups.value = new Set();
  });
}

/** Every speaker the selection reaches (chosen ones and members of chosen groups). */
export const targetIds = computed(() => {
  const out = new Set(selSpeakers.value);
  const gs = groupById.value;
  for (const gid of selGroups.value) for (const sid of gs.get(gid)?.speaker_ids || []) out.add(sid);
  return out;
});

/** The selection as the API takes it. */
export function selectionBody() {
  return { speaker_ids: [...selSpeakers.peek()], group_ids: [...selGroups.peek()] };
}

// ---- the log -----------------------------------------------------------------------------------

const TERMINAL = new Set(["done", "stopped", "failed"]);
export const LOG_PAGE = 50;

/** The warnings shown in the log, newest first. */
export const log = signal([]);
export const logReady = signal(false);
export const logMore = signal(false);

/** Put a warning into the log (replace by id, else insert in id order, newest first). */
export function upsertLog(w) {
  if (!w || typeof w.id !== "number") return;
  const list = log.peek();
  const at = list.findIndex((x) => x.id === w.id);
  if (at >= 0) {
    if (TERMINAL.has(list[at].state) && !TERMINAL.has(w.state)) return; // an older copy
    const next = [...list];
    next[at] = w;
    log.value = next;
    return;
  }
  if (!logReady.peek()) return; // the first page brings it
  const next = [...list];
  const pos = next.findIndex((x) => x.id < w.id);
  if (pos < 0) {
    if (logMore.peek()) return; // older than the loaded page: the next page brings it
    next.push(w);
  } else next.splice(pos, 0, w);
  log.value = next;
}

export async function loadLog({ more = false } = {}) {
  const list = log.peek();
  const before = more && list.length ? list[list.length - 1].id : undefined;
  const res = await api("/api/warnings", { query: { limit: LOG_PAGE, before } });
  const items = res.items || [];
  batch(() => {
    if (more) {
      const seen = new Set(list.map((w) => w.id));
      log.value = [...list, ...items.filter((w) => !seen.has(w.id))];
    } else {
      // Keep what the channel told us meanwhile when it is further along.
      const known = new Map(list.map((w) => [w.id, w]));
      log.value = items.map((w) => {
        const k = known.get(w.id);
        return k && TERMINAL.has(k.state) && !TERMINAL.has(w.state) ? k : w;
      });
    }
    logMore.value = items.length >= LOG_PAGE;
    logReady.value = true;
  });
}

/** Follow the `warnings` channel into the log: every version heard, and the end of each. */
export function followRunning() {
  let before = new Set();
  return effect(() => {
    const keys = running.keys.value;
    const now = new Set(keys);
    for (const k of keys) upsertLog(running.item(k).value);
    for (const k of before) {
      if (!now.has(k)) {
        api(`/api/warnings/${encodeURIComponent(k)}`).then(upsertLog, () => {});
      }
    }
    before = now;
  });
}
