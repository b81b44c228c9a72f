// The big screen's cases (ops.html): every open case of any day and today's cases (closed ones
// too) on the map, today's counters, the state breakdown, the overdue cases by department and the
// ticker of the latest events - all following the `cases` channel (live.js).
//
// Theory of operation: a load is GET /api/cases/markers (every open case of any day, one compact
// answer: place, state, category, department, countdown level) and a paged GET /api/cases `since=`
// the city's midnight (today's, whatever their state, as full summaries) - merged by id, the newer
// version winning over an event that raced the answer. Events (`case.updated`) update one entry;
// a case that is neither open nor today's leaves the map. A resync, a new day and the periodic
// refresh (ops.js) load again. `overdueByDept` is the open overdue cases per department and
// `heardAlarms` the deadline alarms (events of the case channel), read by ops-panels.js.
import { api } from "./api.js";
import { clear, el, fmtClock, startOfCityDay } from "./dom.js";
import { ACTION_LABELS, stateLabel } from "./labels.js";
import { createVersionTracker } from "./live.js";
import { clearError, showError } from "./notify.js";
import { GROUP_OF, drawCase, drawCases } from "./ops-map.js";
import { signal } from "./ui.js";

const PAGE = 200;
const MAX_TODAY = 2000;
const TICKER_SIZE = 20;

export const OPEN_STATES = [
  "reported", "confirming", "quick_handling", "registered", "dispatched", "returned", "handling",
  "deferred", "feedback", "verifying", "verified",
];
const OPEN = new Set(OPEN_STATES);

const STATE_BAR_ORDER = [
  ["pending", "待受理 / 待派遣"],
  ["working", "已派遣 / 处置中"],
  ["checking", "待核查 / 待结案"],
  ["closed", "已结案"],
  ["gone", "不予立案 / 作废"],
];

/** States past registration, and past dispatch (for the 立案 / 派遣 counters). */
const REGISTERED_STATES = new Set([
  "registered", "dispatched", "returned", "handling", "deferred", "feedback", "verifying", "verified",
]);
const DISPATCHED_STATES = new Set(["dispatched", "handling", "deferred", "feedback", "verifying", "verified"]);

const tickerList = document.getElementById("ops-ticker");

/** Cases by id: { c: summary, flags: Set("register" | "dispatch" | "close") }. */
const cases = new Map();
const versions = createVersionTracker();
let todayStart = startOfCityDay();
let loadSeq = 0;
let lastCounts = null;

/** [{name, count}] of the open overdue cases by department, most first. */
export const overdueByDept = signal([]);
/** How many open cases (all days) there are. */
export const openCount = signal(null);
/** The alarms heard on the case channel since the page opened (黄灯预警, 红灯超期), newest first. */
export const heardAlarms = signal([]);
const ALARM_ACTIONS = new Set(["deadline_warning", "overdue"]);

/** One alarm's key, as GET /api/alarms and the alarm's case event both give it. */
export function alarmKey(caseId, share, deadline) {
  const t = Date.parse(deadline || "");
  return caseId == null || share == null || Number.isNaN(t) ? null : `alarm:${caseId}:${share}:${t}`;
}
const ALARMS_KEPT = 50;

const isToday = (c) => {
  const t = new Date(c.reported_at).getTime();
  return Number.isFinite(t) && t >= todayStart.getTime();
};
const kept = (c) => OPEN.has(c.state) || isToday(c);

async function pages(query, max, seq) {
  const items = [];
  let cursor = null;
  do {
    const res = await api("/api/cases", { query: { ...query, limit: PAGE, cursor } });
    if (seq !== loadSeq) return null;
    items.push(...(res.items || []));
    cursor = res.next_cursor || null;
  } while (cursor && items.length < max);
  return items;
}

/** A marker of GET /api/cases/markers as the summary fields the map and the counters read. */
function fromMarker(m, names) {
  const cat = names.categories[String(m.category_id)];
  const dep = m.department_id == null ? null : names.departments[String(m.department_id)];
  return {
    id: m.id,
    case_no: m.case_no,
    version: m.version,
    lon: m.lon,
    lat: m.lat,
    state: m.state,
    category: { id: m.category_id, name: cat || "" },
    department: m.department_id == null ? null : { id: m.department_id, name: dep || "" },
    grid: null,
    is_urgent: m.urgent,
    overdue: m.overdue,
    countdown: m.level ? { level: m.level === "paused" ? "normal" : m.level, paused: m.level === "paused" } : null,
    reported_at: m.reported_at,
  };
}

/** Every open case (all days) the user may see, in one answer. */
async function openMarkers(seq) {
  const res = await api("/api/cases/markers");
  if (seq !== loadSeq) return null;
  return (res.items || []).map((m) => fromMarker(m, res));
}

/** Load (again) the open and today's cases and redraw the map. */
export async function loadCases() {
  const seq = ++loadSeq;
  todayStart = startOfCityDay();
  let open;
  let today;
  try {
    [open, today] = await Promise.all([
      openMarkers(seq),
      pages({ since: todayStart.toISOString() }, MAX_TODAY, seq),
    ]);
  } catch (err) {
    if (seq === loadSeq) showError(`案件加载失败：${err.message}`);
    return;
  }
  if (!open || !today) return;
  clearError();
  const fresh = new Map();
  for (const c of [...open, ...today]) {
    const old = cases.get(c.id);
    // Keep what events told us when it is newer than this answer (they may have raced it).
    if (old && old.c.version > c.version) fresh.set(c.id, old);
    else fresh.set(c.id, { c, flags: new Set(old ? old.flags : []) });
    versions.see(c.id, c.version);
  }
  cases.clear();
  for (const [id, entry] of fresh) if (kept(entry.c)) cases.set(id, entry);
  if (tickerList.children.length === 0) seedTicker(today);
  renderCounts();
  drawCases([...cases.values()].map((e) => e.c));
}

/** A `case.updated` envelope. */
export function onCaseEvent(env) {
  if (env.type !== "case.updated") return;
  const c = env.data;
  if (!c || typeof c.id !== "number") return;
  if (!versions.accept(c.id, c.version)) return;
  const ev = c.event || {};
  addTicker({
    at: ev.at || env.ts,
    caseNo: c.case_no,
    action: ev.action,
    label: ACTION_LABELS[ev.action] || ev.action_label || stateLabel(c.state),
    grid: c.grid ? c.grid.name || c.grid.code : "",
    state: c.state,
    fresh: true,
  });
  if (ALARM_ACTIONS.has(ev.action)) {
    const alarm = {
      key: alarmKey(c.id, ev.data?.share, ev.data?.deadline) || `case:${c.id}:${ev.seq ?? c.version}`,
      at: ev.at || env.ts,
      level: ev.action === "overdue" ? "critical" : "warn",
      text: `${ev.action_label || ev.action} ${c.case_no}${c.grid ? ` · ${c.grid.name || c.grid.code}` : ""}`,
    };
    heardAlarms.value = [alarm, ...heardAlarms.peek()].slice(0, ALARMS_KEPT);
  }
  const entry = cases.get(c.id);
  if (c.visible === false || !kept(c)) {
    cases.delete(c.id);
    drawCase(c, { hide: true });
  } else {
    const flags = new Set(entry ? entry.flags : []);
    if (ev.action === "register") flags.add("register");
    if (ev.action === "dispatch") flags.add("dispatch");
    if (ev.action === "close") flags.add("close");
    cases.set(c.id, { c, flags });
    drawCase(c, { fresh: !entry || entry.c.state !== c.state });
  }
  renderCounts();
}

/** True when the city's day has turned since the last load. */
export const dayChanged = () => startOfCityDay().getTime() !== todayStart.getTime();

// ---- counters ----------------------------------------------------------------------------------

function countsOf() {
  const n = { report: 0, register: 0, dispatch: 0, overdue: 0, close: 0, open: 0 };
  const groups = { pending: 0, working: 0, checking: 0, closed: 0, gone: 0 };
  const byDept = new Map();
  for (const { c, flags } of cases.values()) {
    if (OPEN.has(c.state)) {
      n.open += 1;
      if (c.overdue) {
        n.overdue += 1;
        const name = c.department ? c.department.name || `部门 ${c.department.id}` : "未派遣";
        byDept.set(name, (byDept.get(name) || 0) + 1);
      }
    }
    if (!isToday(c)) continue;
    n.report += 1;
    const quick = c.is_quick;
    if (REGISTERED_STATES.has(c.state) || (c.state === "closed" && !quick) || flags.has("register")) n.register += 1;
    if (DISPATCHED_STATES.has(c.state) || (c.state === "closed" && !quick) || flags.has("dispatch")) n.dispatch += 1;
    if (c.state === "closed" || flags.has("close")) n.close += 1;
    groups[GROUP_OF[c.state] || "gone"] += 1;
  }
  const depts = [...byDept].map(([name, count]) => ({ name, count }));
  depts.sort((a, b) => b.count - a.count || a.name.localeCompare(b.name, "zh-CN"));
  return { n, groups, depts };
}

function renderCounts() {
  const { n, groups, depts } = countsOf();
  overdueByDept.value = depts;
  openCount.value = n.open;
  for (const node of document.querySelectorAll(".counter")) {
    const key = node.dataset.key;
    const value = n[key] ?? 0;
    const out = node.querySelector(".counter-value");
    const before = lastCounts ? lastCounts[key] : null;
    out.textContent = String(value);
    out.dataset.value = String(value);
    if (before !== null && value !== before) {
      node.classList.remove("bump");
      void node.offsetWidth; // restart the animation
      node.classList.add("bump");
    }
  }
  lastCounts = n;

  const bars = document.getElementById("state-bars");
  const total = Math.max(1, Object.values(groups).reduce((a, b) => a + b, 0));
  clear(
    bars,
    STATE_BAR_ORDER.map(([key, label]) => {
      const fill = el("span", { class: `bar-fill grp-${key}` });
      fill.style.width = `${((groups[key] / total) * 100).toFixed(1)}%`;
      return el(
        "div",
        { class: "state-bar", "data-group": key },
        el("span", { class: "bar-label" }, label),
        el("span", { class: "bar-track" }, fill),
        el("span", { class: "bar-value" }, String(groups[key])),
      );
    }),
  );
}

// ---- the ticker --------------------------------------------------------------------------------

function seedTicker(items) {
  const newest = [...items]
    .sort((a, b) => new Date(b.reported_at) - new Date(a.reported_at))
    .slice(0, TICKER_SIZE)
    .reverse();
  for (const c of newest) {
    addTicker({
      at: c.reported_at,
      caseNo: c.case_no,
      action: c.is_quick ? "quick_report" : "report",
      label: c.is_quick ? ACTION_LABELS.quick_report : ACTION_LABELS.report,
      grid: c.grid ? c.grid.name || c.grid.code : "",
      state: c.state,
      fresh: false,
    });
  }
}

function addTicker({ at, caseNo, action, label, grid, state, fresh }) {
  const item = el(
    "li",
    {
      class: ["tick", fresh && "tick-fresh", `act-${action || "other"}`],
      "data-testid": "ticker-item",
      "data-action": action || "",
      "data-state": state || "",
    },
    el("time", { class: "tick-time", datetime: at || "" }, fmtClock(at)),
    el("span", { class: "tick-no" }, caseNo || ""),
    el("span", { class: "tick-action" }, label || ""),
    el("span", { class: "tick-grid", title: grid || "" }, grid || "—"),
  );
  tickerList.prepend(item);
  while (tickerList.children.length > TICKER_SIZE) tickerList.lastElementChild.remove();
  if (fresh) setTimeout(() => item.classList.remove("tick-fresh"), 3000);
}
