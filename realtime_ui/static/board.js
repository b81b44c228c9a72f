// The case board: who is signed in, the filters, the case list with keyset paging, and the wiring
// to the detail pane (detail.js) and the new-case dialog (report.js). The list follows the live
// picture (live.js): a case.updated event updates its row in place, or inserts the case where it
// belongs when it matches the filters; a resync reloads the list over REST, filters kept.
import { api, logout, me } from "./api.js";
import { createDetail } from "./detail.js";
import { clear, debounce, el, fmtTime, fromCityInput, setCityTimeZone } from "./dom.js";
import {
  OPEN_STATES,
  REPORT_ROLES,
  SOURCES,
  STATES,
  roleLabel,
  sourceLabel,
  stateLabel,
} from "./labels.js";
import { connectLive, createLiveIndicator, createVersionTracker } from "./live.js";
import { clearError, showError } from "./notify.js";
import { createReport } from "./report.js";
import { fillCategorySelect, stateBadge } from "./widgets.js";

const PAGE_SIZE = 50;

/** Shared by the modules: the signed-in user and the reference data. */
const ctx = {
  user: null,
  categories: [],
  departments: [],
  grids: [],
  categoryById: new Map(),
  departmentById: new Map(),
};

const form = document.getElementById("filter-form");
const rowsBody = document.getElementById("case-rows");
const loadMoreBtn = document.getElementById("load-more");
const emptyMsg = document.getElementById("list-empty");
const loadingMsg = document.getElementById("list-loading");
const countMsg = document.getElementById("list-count");

let listSeq = 0;
let listAbort = null;
let nextCursor = null;
let shown = 0;
let selectedId = null;
let listReady = false;

/** The newest version of each case this page has shown or heard of. */
const versions = createVersionTracker();
/** The latest summaries heard live, so a list answer that raced an event does not undo it. */
const liveCases = new Map();
const LIVE_CASES_KEPT = 500;
let live = null;
/** Cases heard live while a list request was in flight (it may have missed them). */
let raced = [];
let listInFlight = false;

const detail = createDetail({
  ctx,
  pane: document.getElementById("detail-pane"),
  onChanged: (c) => {
    versions.see(c.id, c.version);
    updateRow(c);
  },
  onClose: () => selectCase(null),
});

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
  startLive();
  buildStateBoxes();
  buildSourceOptions();
  await loadReferenceData();
  readUrlIntoForm();
  wireFilters();
  await loadList();
  const wanted = new URLSearchParams(location.search).get("case");
  if (wanted && /^\d+$/.test(wanted)) selectCase(Number(wanted), { fromUrl: true });
}

function renderUser() {
  const u = ctx.user;
  document.getElementById("user-name").textContent = u.display_name || u.username;
  document.getElementById("user-role").textContent = u.role_label || roleLabel(u.role);
  const newBtn = document.getElementById("new-case-button");
  newBtn.hidden = !REPORT_ROLES.has(u.role);
  newBtn.addEventListener("click", () => report.open());
  document.getElementById("logout-button").addEventListener("click", async () => {
    try {
      await logout();
    } catch {
      // signed out anyway as far as this page is concerned
    }
    location.replace("/login");
  });
  // Department staff only ever see their own department's cases: the filter would be noise.
  if (u.role === "department") document.getElementById("filter-department-field").hidden = true;
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

  fillCategorySelect(document.getElementById("filter-category"), ctx.categories);
  const deptSel = document.getElementById("filter-department");
  for (const d of ctx.departments) deptSel.append(el("option", { value: d.id }, d.name));
  const gridSel = document.getElementById("filter-grid");
  for (const g of ctx.grids) gridSel.append(el("option", { value: g.id }, g.name || g.code));
}

function buildStateBoxes() {
  const box = document.getElementById("filter-states");
  for (const s of STATES) {
    box.append(
      el(
        "label",
        { class: "check-chip" },
        el("input", {
          type: "checkbox",
          name: "state",
          value: s,
          "data-testid": `filter-state-${s}`,
        }),
        el("span", { class: `dot state-${s}` }),
        el("span", {}, stateLabel(s)),
      ),
    );
  }
}

function buildSourceOptions() {
  const sel = document.getElementById("filter-source");
  for (const s of SOURCES) sel.append(el("option", { value: s }, sourceLabel(s)));
}

// ---- filters <-> URL <-> query -----------------------------------------------------------------

const SIMPLE_FIELDS = ["q", "category_id", "source", "department_id", "grid_id", "since", "until"];

function readUrlIntoForm() {
  const p = new URLSearchParams(location.search);
  const states = new Set(p.getAll("state"));
  for (const box of form.querySelectorAll('input[name="state"]')) box.checked = states.has(box.value);
  for (const name of SIMPLE_FIELDS) {
    const v = p.get(name);
    if (v !== null && form.elements[name]) form.elements[name].value = v;
  }
  form.elements.overdue.checked = p.get("overdue") === "1" || p.get("overdue") === "true";
}

function formValues() {
  const v = {
    state: [...form.querySelectorAll('input[name="state"]:checked')].map((b) => b.value),
    overdue: form.elements.overdue.checked,
  };
  for (const name of SIMPLE_FIELDS) v[name] = form.elements[name].value.trim();
  if (ctx.user && ctx.user.role === "department") v.department_id = "";
  return v;
}

function writeUrl() {
  const v = formValues();
  const p = new URLSearchParams();
  for (const s of v.state) p.append("state", s);
  for (const name of SIMPLE_FIELDS) if (v[name]) p.set(name, v[name]);
  if (v.overdue) p.set("overdue", "1");
  if (selectedId !== null) p.set("case", String(selectedId));
  const qs = p.toString();
  history.replaceState(null, "", qs ? `${location.pathname}?${qs}` : location.pathname);
}

function apiQuery() {
  const v = formValues();
  return {
    state: v.state,
    category_id: v.category_id,
    source: v.source,
    department_id: v.department_id,
    grid_id: v.grid_id,
    overdue: v.overdue ? "true" : "",
    q: v.q,
    since: fromCityInput(v.since),
    until: fromCityInput(v.until, { endOfDay: true }),
  };
}

/** Mark a 上报时间 box that holds no date (it is then left out of the query); true when both are fine. */
function checkTimeFields() {
  let ok = true;
  for (const name of ["since", "until"]) {
    const input = form.elements[name];
    const bad = input.value.trim() !== "" && !fromCityInput(input.value);
    input.classList.toggle("invalid", bad);
    input.setAttribute("aria-invalid", bad ? "true" : "false");
    if (bad) ok = false;
  }
  if (ok) clearError();
  else showError("上报时间格式有误，请按“年-月-日 时:分”填写，如 2026-12-01 08:30");
  return ok;
}

function updateFilterCount() {
  const v = formValues();
  let n = v.state.length ? 1 : 0;
  for (const name of SIMPLE_FIELDS) if (v[name]) n += 1;
  if (v.overdue) n += 1;
  document.getElementById("filter-count").textContent = n ? `（${n} 项）` : "";
}

function wireFilters() {
  const apply = () => {
    if (!checkTimeFields()) return;
    writeUrl();
    updateFilterCount();
    loadList();
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  form.addEventListener("change", (ev) => {
    if (ev.target.name === "q") return; // the text box has its own timer
    apply();
  });
  form.elements.q.addEventListener("input", debounce(apply, 400));
  form.addEventListener("reset", () => setTimeout(apply, 0));
  document.getElementById("states-open").addEventListener("click", () => {
    for (const b of form.querySelectorAll('input[name="state"]')) b.checked = OPEN_STATES.has(b.value);
    apply();
  });
  document.getElementById("states-none").addEventListener("click", () => {
    for (const b of form.querySelectorAll('input[name="state"]')) b.checked = false;
    apply();
  });
  document.getElementById("refresh-button").addEventListener("click", () => {
    loadList();
    if (selectedId !== null) detail.reload();
  });
  loadMoreBtn.addEventListener("click", () => loadList({ more: true }));
  updateFilterCount();
  // On a phone the filter box starts folded so the list is visible.
  if (window.matchMedia("(max-width: 900px)").matches) {
    document.getElementById("filter-box").open = false;
  }
}

// ---- the list ----------------------------------------------------------------------------------

async function loadList({ more = false } = {}) {
  const seq = ++listSeq;
  if (listAbort) listAbort.abort();
  listAbort = new AbortController();
  const query = { ...apiQuery(), limit: PAGE_SIZE };
  if (more) query.cursor = nextCursor;
  loadingMsg.hidden = false;
  loadMoreBtn.disabled = true;
  if (!more) raced = [];
  listInFlight = true;
  try {
    const res = await api("/api/cases", { query, signal: listAbort.signal });
    if (seq !== listSeq) return;
    clearError();
    if (!more) {
      clear(rowsBody);
      shown = 0;
    }
    for (const item of res.items || []) {
      // An event may have overtaken this answer: show whichever is newer.
      const heard = liveCases.get(item.id);
      const c = heard && heard.version > item.version ? heard : item;
      versions.see(c.id, c.version);
      if (rowsBody.querySelector(rowSelector(c.id))) continue; // inserted live meanwhile (paging)
      rowsBody.append(rowFor(c));
      shown += 1;
    }
    listReady = true;
    if (!more) {
      for (const id of new Set(raced.map((x) => x.id))) {
        const c = liveCases.get(id); // the latest heard, not the first
        if (c && !rowsBody.querySelector(rowSelector(id)) && mayShow(c) && matchesFilters(c)) insertRow(c);
      }
      raced = [];
    }
    nextCursor = res.next_cursor || null;
    loadMoreBtn.hidden = !nextCursor;
    emptyMsg.hidden = shown > 0;
    updateCount();
    markSelected();
  } catch (err) {
    if (err.name === "AbortError" || seq !== listSeq) return;
    showError(`案件列表加载失败：${err.message}`);
  } finally {
    if (seq === listSeq) {
      listInFlight = false;
      loadingMsg.hidden = true;
      loadMoreBtn.disabled = false;
    }
  }
}

function rowFor(c) {
  const cat = c.category || {};
  const tags = [];
  if (c.is_quick) tags.push(el("span", { class: "tag tag-quick", title: "快速处置" }, "快"));
  if (c.escalation_count > 0) {
    tags.push(el("span", { class: "tag tag-escalate", title: "督办次数" }, `督办${c.escalation_count}`));
  }
  const deadlineCell = el("td", { class: ["col-deadline", c.overdue && "overdue"], "data-label": "处置时限" });
  if (c.deadline) {
    deadlineCell.append(el("span", { title: fmtTime(c.deadline) }, fmtTime(c.deadline, { short: true })));
    if (c.overdue) deadlineCell.append(el("span", { class: "tag tag-overdue" }, "已超时"));
  } else {
    deadlineCell.append(el("span", { class: "muted" }, "—"));
  }
  if (c.pending_extension_until) {
    deadlineCell.append(el("span", { class: "tag tag-pending" }, "延期待批"));
  }
  const tr = el(
    "tr",
    {
      "data-testid": "case-row",
      "data-case-id": c.id,
      "data-state": c.state,
      "data-version": c.version,
      "data-reported-at": c.reported_at,
      class: ["case-row", c.overdue && "is-overdue"],
      tabindex: 0,
      on: {
        click: () => selectCase(c.id),
        keydown: (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            selectCase(c.id);
          }
        },
      },
    },
    el("td", { class: "col-no", "data-label": "案件编号" }, el("span", { class: "case-no" }, c.case_no)),
    el(
      "td",
      { class: "col-cat", "data-label": "案件类别" },
      el("span", { class: "muted" }, cat.major_name ? `${cat.major_name} / ` : ""),
      cat.name || "",
    ),
    el("td", { class: "col-addr", "data-label": "地址", title: c.address || "" }, c.address || "—"),
    el("td", { class: "col-state", "data-label": "状态" }, stateBadge(c), tags),
    el("td", { class: "col-dept", "data-label": "处置部门" }, (c.department && c.department.name) || "—"),
    deadlineCell,
    el(
      "td",
      { class: "col-time", "data-label": "上报时间", title: fmtTime(c.reported_at) },
      fmtTime(c.reported_at, { short: true }),
    ),
  );
  return tr;
}

function rowSelector(id) {
  return `tr[data-case-id="${CSS.escape(String(id))}"]`;
}

function updateCount() {
  countMsg.textContent = shown ? `已显示 ${shown} 件${nextCursor ? "，还有更多" : ""}` : "";
  emptyMsg.hidden = shown > 0;
}

/** Replace the row of a case (if shown); returns the new row. */
function updateRow(c, { flash = null } = {}) {
  const old = rowsBody.querySelector(rowSelector(c.id));
  if (!old) return null;
  if (typeof c.version === "number" && Number(old.dataset.version) > c.version) return old;
  const tr = rowFor(c);
  old.replaceWith(tr);
  markSelected();
  if (flash) flashRow(tr, flash);
  return tr;
}

function flashRow(tr, kind) {
  const cls = kind === "new" ? "row-new" : "row-changed";
  tr.classList.add(cls);
  setTimeout(() => tr.classList.remove(cls), 2600);
}

function markSelected() {
  for (const tr of rowsBody.querySelectorAll("tr[data-case-id]")) {
    const on = selectedId !== null && tr.dataset.caseId === String(selectedId);
    tr.classList.toggle("selected", on);
    tr.setAttribute("aria-selected", on ? "true" : "false");
  }
}

function selectCase(id, { fromUrl = false } = {}) {
  selectedId = id;
  markSelected();
  document.body.classList.toggle("detail-open", id !== null);
  if (id === null) detail.close();
  else detail.open(id);
  if (!fromUrl) writeUrl();
}

// ---- live updates ------------------------------------------------------------------------------

function startLive() {
  live = connectLive({
    onEvent: onLiveEvent,
    onResync: scheduleResync,
  });
  const box = document.querySelector(".user-box");
  box.prepend(createLiveIndicator(live));
  // Diagnostics for the browser console (and the browser tests).
  window.cityhubLive = live;
}

function onLiveEvent(env) {
  if (env.type !== "case.updated") return;
  const c = env.data;
  if (!c || typeof c !== "object" || typeof c.id !== "number") return;
  if (!versions.accept(c.id, c.version)) return; // not newer than what we show
  liveCases.delete(c.id);
  liveCases.set(c.id, c);
  if (liveCases.size > LIVE_CASES_KEPT) liveCases.delete(liveCases.keys().next().value);
  if (listInFlight) raced.push(c);

  if (!mayShow(c)) {
    // It left this user's scope (a department's case returned or sent elsewhere).
    const gone = rowsBody.querySelector(rowSelector(c.id));
    if (gone) {
      gone.remove();
      shown -= 1;
      updateCount();
    }
    if (selectedId === c.id) detail.externalUpdate(c);
    return;
  }
  if (!updateRow(c, { flash: "changed" }) && listReady && matchesFilters(c)) insertRow(c);
  if (selectedId === c.id) detail.externalUpdate(c);
}

/** What the server lets this user see anyway (it checks too; this is for cases leaving scope). */
function mayShow(c) {
  const u = ctx.user;
  if (u && u.role === "department") return !!c.department && c.department.id === u.department_id;
  return true;
}

function parentGridOf(grid) {
  if (!grid) return null;
  if (typeof grid.parent_id === "number") return grid.parent_id;
  const code = String(grid.code || "");
  const parent = ctx.grids.find((g) => g.code && code.length > g.code.length && code.startsWith(g.code));
  return parent ? parent.id : null;
}

/** Whether a case belongs in the list under the current filters (mirrors GET /api/cases). */
function matchesFilters(c) {
  const v = formValues();
  if (v.state.length && !v.state.includes(c.state)) return false;
  if (v.category_id && String(c.category?.id) !== v.category_id) return false;
  if (v.source && c.source !== v.source) return false;
  if (v.department_id && String(c.department?.id) !== v.department_id) return false;
  if (v.grid_id) {
    if (!c.grid) return false;
    if (String(c.grid.id) !== v.grid_id && String(parentGridOf(c.grid)) !== v.grid_id) return false;
  }
  if (v.overdue && !c.overdue) return false;
  const reported = new Date(c.reported_at).getTime();
  const since = fromCityInput(v.since);
  const until = fromCityInput(v.until, { endOfDay: true });
  if (since && !(reported >= new Date(since).getTime())) return false;
  if (until && !(reported <= new Date(until).getTime())) return false;
  if (v.q) {
    const needle = v.q.toLowerCase();
    const hay = [c.case_no, c.description, c.address].map((x) => String(x || "").toLowerCase());
    if (!hay.some((h) => h.includes(needle))) return false;
  }
  return true;
}

/** Insert a case at its place in the newest-first list (not past the loaded page). */
function insertRow(c) {
  const at = new Date(c.reported_at).getTime();
  let before = null;
  for (const tr of rowsBody.querySelectorAll("tr[data-case-id]")) {
    const t = new Date(tr.dataset.reportedAt).getTime();
    if (t < at || (t === at && Number(tr.dataset.caseId) < c.id)) {
      before = tr;
      break;
    }
  }
  if (!before && nextCursor) return; // it sorts after the loaded page: "加载更多" will bring it
  const tr = rowFor(c);
  rowsBody.insertBefore(tr, before);
  shown += 1;
  updateCount();
  markSelected();
  flashRow(tr, "new");
}

let resyncTimer = null;

function scheduleResync() {
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(() => {
    loadList();
    const cur = detail.current;
    if (cur && selectedId === cur.id) detail.externalUpdate(null, { resync: true });
  }, 250);
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && selectedId !== null && !document.querySelector("dialog[open]")) {
    selectCase(null);
  }
});

start();
