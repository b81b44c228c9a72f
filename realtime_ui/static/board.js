// The case board: who is signed in, the work queues (我的待办), the filters, the case list with keyset
// paging, and the wiring to the detail pane (detail.js) and the new-case dialog (report.js).
//
// The list is a Preact component over a case store (store.js) fed by the live picture (live.js):
// the REST snapshot (GET /api/cases with the filters), then case.updated events: a row updates in
// place, a case that starts matching the filters is inserted where it belongs, one that stops
// matching (or leaves the user's scope) is dropped; a resync reloads the snapshot, filters kept.
// The queues and the state groups come from GET /api/queues, the working-time calendar of the
// countdowns from GET /api/calendar (countdown.js).
//
// The modules: board-state.js (the shared signals), board-filters.js (the filter panel and the URL),
// board-queues.js (我的待办), board-list.js (the store and the table), board-detail.js (the detail
// pane), board-match.js (the filters' rules in the browser); this one starts the page, loads the
// reference data and wires the live picture.
import { api, logout, me } from "./api.js";
import { cases, loadList, renderList } from "./board-list.js";
import { detail, selectCase } from "./board-detail.js";
import { readUrlIntoForm, renderFilters, writeUrl } from "./board-filters.js";
import { refreshQueues, refreshQueuesSoon } from "./board-queues.js";
import { ctx, refData, selected } from "./board-state.js";
import { loadCalendar } from "./countdown.js";
import { setCityTimeZone } from "./dom.js";
import { REPORT_ROLES, roleLabel } from "./labels.js";
import { connectStores, createLiveIndicator } from "./live.js";
import { showError } from "./notify.js";
import { createReport } from "./report.js";

export { matchesFilters, textMatches } from "./board-match.js";

let live = null;

const report = createReport({
  ctx,
  dialog: document.getElementById("report-dialog"),
  onCreated: async (c) => {
    await loadList();
    selectCase(c.id);
  },
});

// ---- start-up ----------------------------------------------------------------------------------

async function start() {
  let who;
  try {
    who = await me();
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return;
  }
  ctx.user = who.user;
  setCityTimeZone(who.timezone);
  renderUser();
  renderList();
  startLive();
  loadCalendar().catch((err) => showError(`工作日历加载失败：${err.message}`));
  await Promise.all([loadReferenceData(), refreshQueues()]);
  const wanted = new URLSearchParams(location.search).get("case");
  if (wanted && /^\d+$/.test(wanted)) selected.value = Number(wanted);
  const usedDefault = readUrlIntoForm();
  renderFilters();
  if (usedDefault) writeUrl(); // the address says what the list shows (the default queue)
  await loadList();
  if (selected.value !== null) selectCase(selected.value, { fromUrl: true });
}

function renderUser() {
  const u = ctx.user;
  document.getElementById("user-name").textContent = u.display_name || u.username;
  document.getElementById("user-role").textContent = u.role_label || roleLabel(u.role);
  const newBtn = document.getElementById("new-case-button");
  newBtn.hidden = !REPORT_ROLES.has(u.role);
  document.getElementById("speakers-link").hidden = !["admin", "seat", "dispatcher", "viewer"].includes(u.role);
  document.getElementById("wall-link").hidden = !["admin", "seat", "dispatcher", "viewer"].includes(u.role);
  document.getElementById("hotline-link").hidden = !["admin", "agent"].includes(u.role);
  document.getElementById("hotline-board-link").hidden = !["seat", "dispatcher", "viewer"].includes(u.role);
  newBtn.addEventListener("click", () => report.open());
  document.getElementById("logout-button").addEventListener("click", async () => {
    try {
      await logout();
    } catch {
      // signed out anyway as far as this page is concerned
    }
    location.replace("/login");
  });
}

async function loadReferenceData() {
  const [cats, depts, grids] = await Promise.allSettled([
    api("/api/categories"),
    api("/api/departments"),
    api("/api/grids", { query: { level: 1 } }),
  ]);
  const failed = [cats, depts, grids].find((r) => r.status === "rejected");
  if (failed) showError(`基础数据加载失败：${failed.reason.message}`);

  ctx.categories = cats.status === "fulfilled" ? cats.value.items || [] : [];
  ctx.departments = depts.status === "fulfilled" ? depts.value.items || [] : [];
  ctx.grids = grids.status === "fulfilled" ? grids.value.items || [] : [];
  ctx.categoryById = new Map(ctx.categories.map((c) => [c.id, c]));
  ctx.departmentById = new Map(ctx.departments.map((d) => [d.id, d]));

  refData.value = { categories: ctx.categories, departments: ctx.departments, grids: ctx.grids };
}

// ---- live updates ------------------------------------------------------------------------------

function startLive() {
  cases.onResync = scheduleResync;
  live = connectStores([cases], { onEvent: onLiveEvent });
  const box = document.querySelector(".user-box");
  box.prepend(createLiveIndicator(live));
  // Diagnostics for the browser console (and the browser tests).
  window.cityhubLive = live;
  window.cityhubCases = cases;
}

function onLiveEvent(env) {
  if (env.type !== "case.updated") return;
  const c = env.data;
  if (!c || typeof c !== "object" || typeof c.id !== "number") return;
  refreshQueuesSoon();
  if (selected.peek() === c.id) detail.externalUpdate(c);
}

let resyncTimer = null;

function scheduleResync() {
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(() => {
    loadList();
    refreshQueues();
    const cur = detail.current;
    if (cur && selected.peek() === cur.id) detail.externalUpdate(null, { resync: true });
  }, 250);
}

start();
