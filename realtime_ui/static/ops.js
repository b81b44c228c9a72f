// The operations picture (指挥大屏, 1920x1080): the city's grids as an SVG map with today's cases
// as markers coloured by state, today's counters, the state breakdown and a ticker of the latest
// events - all following the live picture (live.js).
import { api, me } from "./api.js";
import { clear, el, fmtClock, setCityTimeZone, startOfCityDay, zonedParts } from "./dom.js";
import { ACTION_LABELS, STATE_LABELS, stateLabel } from "./labels.js";
import { drawGridMap, fetchGrids } from "./gridmap.js";
import { connectLive, createLiveIndicator, createVersionTracker } from "./live.js";
import { clearError, showError } from "./notify.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const PAGE = 200;
const MAX_CASES = 1000;
const TICKER_SIZE = 20;

/** Marker colour groups by state (rejected / voided cases are not drawn). */
const GROUP_OF = {
  reported: "pending",
  registered: "pending",
  returned: "pending",
  dispatched: "working",
  handling: "working",
  deferred: "working",
  quick_handling: "working",
  feedback: "checking",
  verifying: "checking",
  verified: "checking",
  closed: "closed",
};

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

const mapSvg = document.getElementById("ops-map");
const mapStatus = document.getElementById("map-status");
const tickerList = document.getElementById("ops-ticker");

/** Today's cases by id: { c: summary, flags: Set("register" | "dispatch" | "close") }. */
const cases = new Map();
const versions = createVersionTracker();
const gridsById = new Map();
let project = null; // (lon, lat) -> [x, y] once the map is drawn
let markerLayer = null;
let todayStart = null; // midnight of the city's today, once the city's zone is known
let loadSeq = 0;
let lastCounts = null;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- start-up ----------------------------------------------------------------------------------

async function start() {
  let who;
  try {
    who = await me();
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return;
  }
  setCityTimeZone(who.timezone);
  todayStart = startOfCityDay();
  startClock();
  const u = who.user;
  document.getElementById("ops-user").textContent = u.display_name || u.username;

  const live = connectLive({ onEvent, onResync: scheduleReload });
  document.getElementById("live-slot").replaceWith(createLiveIndicator(live));
  // Diagnostics for the operator's console (and the browser tests).
  window.cityhubLive = live;

  await Promise.all([loadGrids().catch(onGridError), loadCases()]);
  drawMarkers();
  setInterval(checkDayChange, 30_000);
}

function onGridError(err) {
  mapStatus.textContent = "网格加载失败";
  showError(`网格数据加载失败：${err.message}`);
}

// ---- the clock ---------------------------------------------------------------------------------

const WEEKDAYS = "日一二三四五六";

function startClock() {
  const node = document.getElementById("ops-clock");
  const pad = (n) => String(n).padStart(2, "0");
  const tick = () => {
    const d = new Date();
    const p = zonedParts(d);
    node.textContent =
      `${p.year}年${pad(p.month)}月${pad(p.day)}日 星期${WEEKDAYS[p.weekday]} ` +
      `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
    node.setAttribute("datetime", d.toISOString());
  };
  tick();
  setTimeout(() => {
    tick();
    setInterval(tick, 1000);
  }, 1000 - (Date.now() % 1000));
}

function checkDayChange() {
  const now = startOfCityDay();
  if (now.getTime() !== todayStart.getTime()) {
    todayStart = now;
    cases.clear();
    reloadCases();
  }
}

// ---- grids -------------------------------------------------------------------------------------

async function loadGrids() {
  const { level1, level2 } = await fetchGrids({ onProgress: (text) => (mapStatus.textContent = text) });
  for (const g of [...level1, ...level2]) gridsById.set(g.id, g);
  drawMap(level1, level2);
  mapStatus.textContent = `${level1.length} 个街道 · ${level2.length} 个单元网格`;
}

function drawMap(level1, level2) {
  const geo = drawGridMap(mapSvg, level1, level2);
  if (!geo) {
    mapStatus.textContent = "没有网格边界数据";
    return;
  }
  project = geo.project;
  markerLayer = svg("g", { class: "markers", "data-testid": "map-markers" });
  mapSvg.append(markerLayer);
}

// ---- cases -------------------------------------------------------------------------------------

async function loadCases() {
  const seq = ++loadSeq;
  const since = todayStart.toISOString();
  const items = [];
  let cursor = null;
  try {
    do {
      const res = await api("/api/cases", { query: { since, limit: PAGE, cursor } });
      if (seq !== loadSeq) return;
      items.push(...(res.items || []));
      cursor = res.next_cursor || null;
    } while (cursor && items.length < MAX_CASES);
  } catch (err) {
    if (seq === loadSeq) showError(`今日案件加载失败：${err.message}`);
    return;
  }
  clearError();
  const fresh = new Map();
  for (const c of items) {
    const old = cases.get(c.id);
    // Keep what events told us when it is newer than this answer (they may have raced it).
    if (old && old.c.version > c.version) fresh.set(c.id, old);
    else fresh.set(c.id, { c, flags: new Set(old ? old.flags : []) });
    versions.see(c.id, c.version);
  }
  for (const [id, entry] of cases) if (!fresh.has(id) && isToday(entry.c)) fresh.set(id, entry);
  cases.clear();
  for (const [id, entry] of fresh) cases.set(id, entry);
  if (tickerList.children.length === 0) seedTicker(items);
  renderCounts();
}

let reloadTimer = null;

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(reloadCases, 300);
}

async function reloadCases() {
  await loadCases();
  drawMarkers();
}

function isToday(c) {
  const t = new Date(c.reported_at).getTime();
  return Number.isFinite(t) && t >= todayStart.getTime();
}

function onEvent(env) {
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
  if (!isToday(c)) return;
  const entry = cases.get(c.id);
  const flags = new Set(entry ? entry.flags : []);
  if (ev.action === "register") flags.add("register");
  if (ev.action === "dispatch") flags.add("dispatch");
  if (ev.action === "close") flags.add("close");
  cases.set(c.id, { c, flags });
  drawMarker(c, { fresh: !entry || entry.c.state !== c.state });
  renderCounts();
}

// ---- counters ----------------------------------------------------------------------------------

function countsOf() {
  const n = { report: 0, register: 0, dispatch: 0, overdue: 0, close: 0 };
  const groups = { pending: 0, working: 0, checking: 0, closed: 0, gone: 0 };
  for (const { c, flags } of cases.values()) {
    n.report += 1;
    const quick = c.is_quick;
    if (REGISTERED_STATES.has(c.state) || (c.state === "closed" && !quick) || flags.has("register")) n.register += 1;
    if (DISPATCHED_STATES.has(c.state) || (c.state === "closed" && !quick) || flags.has("dispatch")) n.dispatch += 1;
    if (c.overdue && c.state !== "closed") n.overdue += 1;
    if (c.state === "closed" || flags.has("close")) n.close += 1;
    groups[GROUP_OF[c.state] || "gone"] += 1;
  }
  return { n, groups };
}

function renderCounts() {
  const { n, groups } = countsOf();
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

// ---- markers -----------------------------------------------------------------------------------

function drawMarkers() {
  if (!markerLayer || !project) return;
  clear(markerLayer);
  const list = [...cases.values()].map((e) => e.c);
  // Closed first, so open cases are drawn on top.
  list.sort((a, b) => (a.state === "closed") - (b.state === "closed") || a.id - b.id).reverse();
  for (const c of list) drawMarker(c);
  document.body.dataset.markers = String(markerLayer.childElementCount);
}

function drawMarker(c, { fresh = false } = {}) {
  if (!markerLayer || !project) return;
  const old = markerLayer.querySelector(`[data-case-id="${CSS.escape(String(c.id))}"]`);
  const group = GROUP_OF[c.state];
  if (!group || typeof c.lon !== "number" || typeof c.lat !== "number") {
    if (old) old.remove();
    document.body.dataset.markers = String(markerLayer.childElementCount);
    return;
  }
  const [x, y] = project(c.lon, c.lat);
  const overdue = c.overdue && c.state !== "closed";
  const node = svg(
    "g",
    {
      class: ["marker", `grp-${group}`, overdue && "is-overdue", fresh && "is-fresh"].filter(Boolean).join(" "),
      transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
      "data-testid": "map-marker",
      "data-case-id": c.id,
      "data-state": c.state,
    },
    svg("title", {}, `${c.case_no} · ${STATE_LABELS[c.state] || c.state_label || c.state}${overdue ? " · 超期" : ""}` +
      `${c.address ? `\n${c.address}` : ""}`),
    fresh ? svg("circle", { class: "marker-pulse", r: 9 }) : null,
    overdue ? svg("circle", { class: "marker-ring", r: 13 }) : null,
    svg("circle", { class: "marker-dot", r: c.state === "closed" ? 5.5 : 8 }),
  );
  if (old) old.replaceWith(node);
  else if (c.state === "closed") markerLayer.prepend(node);
  else markerLayer.append(node);
  if (fresh) setTimeout(() => node.classList.remove("is-fresh"), 4000);
  document.body.dataset.markers = String(markerLayer.childElementCount);
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

start();
