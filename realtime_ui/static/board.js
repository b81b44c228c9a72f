// The case board: who is signed in, the work queues (我的待办), the filters, the case list with keyset
// paging, and the wiring to the detail pane (detail.js) and the new-case dialog (report.js).
//
// The list is a Preact component over a case store (store.js) fed by the live picture (live.js):
// the REST snapshot (GET /api/cases with the filters), then case.updated events: a row updates in
// place, a case that starts matching the filters is inserted where it belongs, one that stops
// matching (or leaves the user's scope) is dropped; a resync reloads the snapshot, filters kept.
// The queues and the state groups come from GET /api/queues, the working-time calendar of the
// countdowns from GET /api/calendar (countdown.js).
import { api, logout, me } from "./api.js";
import { Countdown, limitSecondsFor, loadCalendar } from "./countdown.js";
import { createDetail } from "./detail.js";
import { debounce, fmtTime, fromCityInput, setCityTimeZone } from "./dom.js";
import { REPORT_ROLES, SOURCES, STATES, STATE_LABELS, roleLabel, sourceLabel, stateLabel } from "./labels.js";
import { connectStores, createLiveIndicator } from "./live.js";
import { clearError, showError } from "./notify.js";
import { createReport } from "./report.js";
import { createCaseStore } from "./store.js";
import { html, render, signal } from "./ui.js";

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

let listSeq = 0;
let listAbort = null;
let live = null;

/** The selected case id (null: none). */
const selected = signal(null);
/** A list request is in flight (true until the first answer). */
const listLoading = signal(true);
/** The server's state groups (open, deadline, terminal) from GET /api/queues. */
const groups = signal({ open: [], deadline: [], terminal: [] });
/** This user's queues with counts ({name, label, states, count, fresh}). */
const queues = signal([]);
/** The latest announcement of new work (text), or "". */
const queueNotice = signal("");
/** Rows to flash: id -> "new" | "changed". */
const flashes = signal(new Map());

/** The shown cases: the list query's answer, then live changes (store.js). */
const cases = createCaseStore({
  matches: (c) => matchesFilters(c),
  mayShow: (c) => mayShow(c),
  onChange: (kind, c) => {
    if (kind === "inserted") flash(c.id, "new");
    else if (kind === "updated") flash(c.id, "changed");
  },
});

const detail = createDetail({
  ctx,
  pane: document.getElementById("detail-pane"),
  onChanged: (c) => {
    if (c && c.visible === false) ctx.onCaseGone(c.id, c.message);
    else cases.apply(c);
  },
  onClose: () => selectCase(null),
});

/**
 * The agreed way for the detail pane to say a case left this user's scope (a department returned
 * it): the row and its count go; the detail says what happened.
 */
ctx.onCaseGone = (caseId, _message) => {
  cases.remove(caseId);
  refreshQueues();
};

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

// ---- filters <-> URL <-> query -----------------------------------------------------------------

const SIMPLE_FIELDS = ["q", "category_id", "source", "department_id", "grid_id", "since", "until"];
const NO_FILTERS = Object.freeze({
  state: [],
  overdue: false,
  q: "",
  category_id: "",
  source: "",
  department_id: "",
  grid_id: "",
  since: "",
  until: "",
});

/** What the filter panel shows (the form is a component over this signal). */
const filters = signal(NO_FILTERS);
/** 上报时间 boxes that hold no date: {since, until}. */
const badTimes = signal({ since: false, until: false });
/** The reference data the selects offer (loaded once). */
const refData = signal({ categories: [], departments: [], grids: [] });

/** Whether the URL names any filter (or 全部): otherwise the board opens on the user's first queue. */
function urlHasFilters(p) {
  return p.has("all") || p.has("state") || p.has("overdue") || SIMPLE_FIELDS.some((n) => p.get(n));
}

/** Filters from the address; returns true when it named none and the default queue was taken. */
function readUrlIntoForm() {
  const p = new URLSearchParams(location.search);
  const first = queues.value.find((q) => q.name === queuesDefault);
  const useDefault = !urlHasFilters(p) && !!first;
  const v = { ...NO_FILTERS, state: useDefault ? [...first.states] : p.getAll("state").filter((s) => STATES.includes(s)) };
  for (const name of SIMPLE_FIELDS) v[name] = p.get(name) || "";
  v.overdue = p.get("overdue") === "1" || p.get("overdue") === "true";
  filters.value = v;
  return useDefault;
}

function formValues() {
  const f = filters.value;
  const v = { ...f, state: [...f.state] };
  for (const name of SIMPLE_FIELDS) v[name] = String(f[name] || "").trim();
  if (ctx.user && ctx.user.role === "department") v.department_id = "";
  return v;
}

function writeUrl() {
  const v = formValues();
  const p = new URLSearchParams();
  for (const s of v.state) p.append("state", s);
  for (const name of SIMPLE_FIELDS) if (v[name]) p.set(name, v[name]);
  if (v.overdue) p.set("overdue", "1");
  if (![...p.keys()].length && queues.value.length) p.set("all", "1"); // 全部, not the default queue
  if (selected.value !== null) p.set("case", String(selected.value));
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
  const v = formValues();
  const bad = {
    since: v.since !== "" && !fromCityInput(v.since),
    until: v.until !== "" && !fromCityInput(v.until),
  };
  badTimes.value = bad;
  const ok = !bad.since && !bad.until;
  if (ok) clearError();
  else showError("上报时间格式有误，请按“年-月-日 时:分”填写，如 2026-12-01 08:30");
  return ok;
}

function filterCount(v) {
  let n = v.state.length ? 1 : 0;
  for (const name of SIMPLE_FIELDS) if (v[name]) n += 1;
  if (v.overdue) n += 1;
  return n;
}

/** Re-read the filters, write the URL and reload the list. */
function applyFilters() {
  if (!checkTimeFields()) return;
  writeUrl();
  loadList();
}

const applySoon = debounce(applyFilters, 400);

function setFilter(patch, { apply = true } = {}) {
  filters.value = { ...filters.value, ...patch };
  if (apply) applyFilters();
}

function categoryGroups(categories) {
  const groups = new Map();
  for (const c of categories) {
    const key = `${c.kind || ""}|${c.major_name || "其他"}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const kinds = new Set(categories.map((c) => c.kind));
  return [...groups].map(([key, list]) => {
    const [kind, major] = key.split("|");
    return { label: kinds.size > 1 ? `${kind === "component" ? "部件" : "事件"} · ${major}` : major, list };
  });
}

const TIME_HINT = "城市时间，如 2026-12-01 08:30；只填日期也可以";

function TimeField({ name, label }) {
  const bad = badTimes.value[name];
  return html`<label class="sub-field"
    ><span>${label}</span>
    <input
      type="text"
      name=${name}
      id=${`filter-${name}`}
      data-testid=${`filter-${name}`}
      inputmode="numeric"
      placeholder="年-月-日 时:分"
      title=${TIME_HINT}
      maxlength="25"
      class=${bad ? "invalid" : ""}
      aria-invalid=${bad ? "true" : "false"}
      value=${filters.value[name]}
      onInput=${(ev) => setFilter({ [name]: ev.currentTarget.value }, { apply: false })}
      onChange=${applyFilters}
  /></label>`;
}

/** The filter panel: a form over `filters`; every change reloads the list (the text box after a pause). */
function FilterPanel({ startOpen }) {
  const f = filters.value;
  const ref = refData.value;
  const n = filterCount(formValues());
  const isDept = ctx.user && ctx.user.role === "department";
  const toggleState = (s, on) => setFilter({ state: on ? [...f.state, s] : f.state.filter((x) => x !== s) });
  return html`<details id="filter-box" open=${startOpen}>
    <summary>筛选条件 <span class="filter-count" id="filter-count" data-testid="filter-count">${n ? `（${n} 项）` : ""}</span></summary>
    <form
      id="filter-form"
      data-testid="filter-form"
      autocomplete="off"
      onSubmit=${(ev) => {
        ev.preventDefault();
        applyFilters();
      }}
      onReset=${(ev) => {
        ev.preventDefault();
        filters.value = NO_FILTERS;
        applyFilters();
      }}
    >
      <label class="field">
        <span>关键词</span>
        <input
          type="search"
          name="q"
          id="filter-q"
          data-testid="filter-q"
          placeholder="案件编号、描述、地址"
          maxlength="100"
          value=${f.q}
          onInput=${(ev) => {
            setFilter({ q: ev.currentTarget.value }, { apply: false });
            applySoon();
          }}
        />
      </label>

      <fieldset class="field state-boxes" data-testid="filter-state">
        <legend>案件状态</legend>
        <div class="checks" id="filter-states">
          ${STATES.map(
            (s) => html`<label class="check-chip" key=${s}>
              <input
                type="checkbox"
                name="state"
                value=${s}
                data-testid=${`filter-state-${s}`}
                checked=${f.state.includes(s)}
                onChange=${(ev) => toggleState(s, ev.currentTarget.checked)}
              />
              <span class=${`dot state-${s}`}></span>
              <span>${stateLabel(s)}</span>
            </label>`,
          )}
        </div>
        <div class="quick-links">
          <button type="button" class="link" id="states-open" data-testid="filter-state-open" onClick=${() => setFilter({ state: [...groups.value.open] })}>在办</button>
          <button type="button" class="link" id="states-none" data-testid="filter-state-clear" onClick=${() => setFilter({ state: [] })}>全部</button>
        </div>
      </fieldset>

      <label class="field">
        <span>案件类别</span>
        <select name="category_id" id="filter-category" data-testid="filter-category" value=${f.category_id} onChange=${(ev) => setFilter({ category_id: ev.currentTarget.value })}>
          <option value="">全部类别</option>
          ${categoryGroups(ref.categories).map(
            (g) => html`<optgroup label=${g.label} key=${g.label}>
              ${g.list.map((c) => html`<option value=${String(c.id)} key=${c.id}>${`${c.name}（${c.code}）`}</option>`)}
            </optgroup>`,
          )}
        </select>
      </label>

      <label class="field">
        <span>案件来源</span>
        <select name="source" id="filter-source" data-testid="filter-source" value=${f.source} onChange=${(ev) => setFilter({ source: ev.currentTarget.value })}>
          <option value="">全部来源</option>
          ${SOURCES.map((s) => html`<option value=${s} key=${s}>${sourceLabel(s)}</option>`)}
        </select>
      </label>

      ${isDept
        ? null
        : html`<label class="field" id="filter-department-field">
            <span>处置部门</span>
            <select name="department_id" id="filter-department" data-testid="filter-department" value=${f.department_id} onChange=${(ev) => setFilter({ department_id: ev.currentTarget.value })}>
              <option value="">全部部门</option>
              ${ref.departments.map((d) => html`<option value=${String(d.id)} key=${d.id}>${d.name}</option>`)}
            </select>
          </label>`}

      <label class="field">
        <span>所属网格</span>
        <select name="grid_id" id="filter-grid" data-testid="filter-grid" value=${f.grid_id} onChange=${(ev) => setFilter({ grid_id: ev.currentTarget.value })}>
          <option value="">全部网格</option>
          ${ref.grids.map((g) => html`<option value=${String(g.id)} key=${g.id}>${g.name || g.code}</option>`)}
        </select>
      </label>

      <label class="check-line">
        <input type="checkbox" name="overdue" id="filter-overdue" data-testid="filter-overdue" value="true" checked=${f.overdue} onChange=${(ev) => setFilter({ overdue: ev.currentTarget.checked })} />
        <span>只看超时案件</span>
      </label>

      <fieldset class="field">
        <legend>上报时间</legend>
        <${TimeField} name="since" label="从" />
        <${TimeField} name="until" label="至" />
      </fieldset>

      <div class="filter-buttons">
        <button type="submit" class="btn btn-primary" data-testid="filter-apply">查询</button>
        <button type="reset" class="btn" data-testid="filter-reset">重置</button>
      </div>
    </form>
  </details>`;
}

function renderFilters() {
  const box = document.getElementById("filter-panel");
  box.replaceChildren();
  // On a phone the filter box starts folded so the list is visible.
  const startOpen = !window.matchMedia("(max-width: 900px)").matches;
  render(html`<${FilterPanel} startOpen=${startOpen} />`, box);
}

// ---- the work queues ---------------------------------------------------------------------------

let queuesDefault = null;
let queuesSeq = 0;

/** Load the queues and their counts; a count that grew since the last answer is announced. */
async function refreshQueues({ announce = false } = {}) {
  const seq = ++queuesSeq;
  let res;
  try {
    res = await api("/api/queues");
  } catch (err) {
    if (seq === queuesSeq) showError(`待办加载失败：${err.message}`);
    return;
  }
  if (seq !== queuesSeq) return;
  if (res.state_groups) groups.value = res.state_groups;
  queuesDefault = res.default || null;
  const before = new Map(queues.value.map((q) => [q.name, q]));
  const grown = [];
  queues.value = (res.items || []).map((q) => {
    const old = before.get(q.name);
    const more = old && typeof old.count === "number" ? q.count - old.count : 0;
    if (announce && more > 0) grown.push(`${q.label} +${more}`);
    return { ...q, fresh: (old && old.fresh) || (announce && more > 0) };
  });
  if (grown.length) queueNotice.value = `新的待办：${grown.join("，")}`;
}

const refreshQueuesSoon = debounce(() => refreshQueues({ announce: true }), 400);

/** The queue the current state filter is (exactly its states, no other filter), or null. */
function activeQueue() {
  const v = formValues();
  if (SIMPLE_FIELDS.some((n) => v[n]) || v.overdue) return null;
  const want = [...v.state].sort().join(",");
  return queues.value.find((q) => [...q.states].sort().join(",") === want) || null;
}

function showQueue(q) {
  filters.value = q ? { ...NO_FILTERS, state: [...q.states] } : { ...filters.value, state: [] };
  if (q) queues.value = queues.value.map((x) => (x.name === q.name ? { ...x, fresh: false } : x));
  queueNotice.value = "";
  applyFilters();
}

function QueueBar() {
  const list = queues.value;
  if (!list.length) return null;
  const active = activeQueue();
  const all = !active && !formValues().state.length;
  return html`<nav class="queue-bar" aria-label="我的待办" data-testid="queue-bar">
    <span class="queue-title">我的待办</span>
    ${list.map(
      (q) => html`<button
        type="button"
        key=${q.name}
        class=${["queue-tab", active && active.name === q.name && "active", q.fresh && "fresh"].filter(Boolean).join(" ")}
        data-testid="queue-tab"
        data-queue=${q.name}
        aria-pressed=${active && active.name === q.name ? "true" : "false"}
        onClick=${() => showQueue(q)}
      >
        <span class="queue-label">${q.label}</span>
        <span class="queue-count" data-testid="queue-count">${q.count}</span>
      </button>`,
    )}
    <button
      type="button"
      class=${["queue-tab", "queue-all", all && "active"].filter(Boolean).join(" ")}
      data-testid="queue-all"
      aria-pressed=${all ? "true" : "false"}
      onClick=${() => showQueue(null)}
    >
      全部案件
    </button>
    ${queueNotice.value
      ? html`<span class="queue-notice" data-testid="queue-notice" role="status">${queueNotice.value}</span>`
      : null}
  </nav>`;
}

// ---- the list ----------------------------------------------------------------------------------

async function loadList({ more = false } = {}) {
  const seq = ++listSeq;
  if (listAbort) listAbort.abort();
  listAbort = new AbortController();
  const query = { ...apiQuery(), limit: PAGE_SIZE };
  if (more) query.cursor = cases.nextCursor.peek();
  listLoading.value = true;
  if (!more) cases.loading();
  try {
    const res = await api("/api/cases", { query, signal: listAbort.signal });
    if (seq !== listSeq) return;
    clearError();
    cases.reset(res.items || [], res.next_cursor, { append: more });
  } catch (err) {
    if (err.name === "AbortError" || seq !== listSeq) return;
    showError(`案件列表加载失败：${err.message}`);
  } finally {
    if (seq === listSeq) listLoading.value = false;
  }
}

function flash(id, kind) {
  const next = new Map(flashes.peek());
  next.set(id, kind);
  flashes.value = next;
  setTimeout(() => {
    if (flashes.peek().get(id) !== kind) return;
    const after = new Map(flashes.peek());
    after.delete(id);
    flashes.value = after;
  }, kind === "new" ? 2600 : 2200);
}

function selectOnKey(ev, id) {
  if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    selectCase(id);
  }
}

function DeadlineCell({ c }) {
  const running = groups.value.deadline.includes(c.state);
  const limit = c.category ? ctx.categoryById.get(c.category.id)?.time_limit : null;
  return html`<td class=${c.overdue ? "col-deadline overdue" : "col-deadline"} data-label="处置时限">
    ${c.deadline
      ? html`<span class="deadline-time" title=${fmtTime(c.deadline)}>${fmtTime(c.deadline, { short: true })}</span>
          ${running && !c.countdown?.paused
            ? html`<${Countdown} deadline=${c.deadline} limitSeconds=${c.countdown?.limit_s ?? limitSecondsFor(limit)} />`
            : null}`
      : html`<span class="muted">—</span>`}
    ${c.pending_extension_until ? html`<span class="tag tag-pending">延期待批</span>` : null}
    <${DeadlineBadge} c=${c} />
  </td>`;
}

/** The server's countdown level (黄灯 at the warning share, 红灯 overdue, or paused), as of the
 * last summary: an alarm arrives live as a case event, so the badge turns when it fires. */
function DeadlineBadge({ c }) {
  const cd = c.countdown;
  const urgent = c.is_urgent ? html`<span class="tag tag-overdue" data-testid="urgent-badge">紧急</span>` : null;
  if (!cd || (cd.level === "normal" && !cd.paused)) return urgent;
  const text = cd.paused ? "计时暂停" : cd.level === "overdue" ? "红灯" : "黄灯";
  const cls = cd.paused ? "tag" : cd.level === "overdue" ? "tag tag-overdue" : "tag tag-pending";
  return html`${urgent}<span class=${cls} data-testid="deadline-badge" data-level=${cd.level} data-paused=${cd.paused ? "1" : "0"}
    title=${cd.level_label || ""}>${text}</span>`;
}

/** One case row: reads its own signal, so a change to the case re-renders this row alone. */
function CaseRow({ item }) {
  const c = item.value;
  const cat = c.category || {};
  const isSel = selected.value === c.id;
  const fl = flashes.value.get(c.id);
  const cls = ["case-row", c.overdue && "is-overdue", isSel && "selected", fl === "new" && "row-new", fl === "changed" && "row-changed"];
  return html`<tr
    data-testid="case-row"
    data-case-id=${c.id}
    data-state=${c.state}
    data-version=${c.version}
    data-reported-at=${c.reported_at}
    class=${cls.filter(Boolean).join(" ")}
    tabindex="0"
    aria-selected=${isSel ? "true" : "false"}
    onClick=${() => selectCase(c.id)}
    onKeyDown=${(ev) => selectOnKey(ev, c.id)}
  >
    <td class="col-no" data-label="案件编号"><span class="case-no">${c.case_no}</span></td>
    <td class="col-cat" data-label="案件类别">
      <span class="muted">${cat.major_name ? `${cat.major_name} / ` : ""}</span>${cat.name || ""}
    </td>
    <td class="col-addr" data-label="地址" title=${c.address || ""}>${c.address || "—"}</td>
    <td class="col-state" data-label="状态">
      <span class=${`badge state-${c.state}`} data-testid="state-badge" data-state=${c.state}
        >${STATE_LABELS[c.state] || c.state_label || c.state}</span
      >
      ${c.is_quick ? html`<span class="tag tag-quick" title="快速处置">快</span>` : null}
      ${c.escalation_count > 0
        ? html`<span class="tag tag-escalate" title="督办次数">督办${c.escalation_count}</span>`
        : null}
    </td>
    <td class="col-dept" data-label="处置部门">${(c.department && c.department.name) || "—"}</td>
    <${DeadlineCell} c=${c} />
    <td class="col-time" data-label="上报时间" title=${fmtTime(c.reported_at)}>
      ${fmtTime(c.reported_at, { short: true })}
    </td>
  </tr>`;
}

function ListPane() {
  const ids = cases.ids.value;
  const shown = ids.length;
  const more = cases.nextCursor.value;
  const loading = listLoading.value;
  const ready = cases.ready.value;
  return html`
    <div class="pane-head">
      <h2>案件列表</h2>
      <span class="muted" id="list-count" data-testid="list-count"
        >${shown ? `已显示 ${shown} 件${more ? "，还有更多" : ""}` : ""}</span
      >
      <span class="spacer"></span>
      <button type="button" class="btn btn-small" id="refresh-button" data-testid="refresh-button" onClick=${refresh}>
        刷新
      </button>
    </div>
    <${QueueBar} />
    <div class="table-wrap">
      <table class="case-table" data-testid="case-table">
        <thead>
          <tr>
            <th scope="col">案件编号</th>
            <th scope="col">案件类别</th>
            <th scope="col">地址</th>
            <th scope="col">状态</th>
            <th scope="col">处置部门</th>
            <th scope="col">处置时限</th>
            <th scope="col">上报时间</th>
          </tr>
        </thead>
        <tbody id="case-rows" data-testid="case-rows">
          ${ids.map((id) => html`<${CaseRow} key=${id} item=${cases.item(id)} />`)}
        </tbody>
      </table>
      <p class="empty" id="list-empty" data-testid="list-empty" hidden=${!ready || shown > 0}>没有符合条件的案件</p>
      <p class="loading" id="list-loading" data-testid="list-loading" hidden=${!loading}>正在加载…</p>
    </div>
    <div class="list-foot">
      <button
        type="button"
        class="btn"
        id="load-more"
        data-testid="load-more"
        hidden=${!more}
        disabled=${loading}
        onClick=${() => loadList({ more: true })}
      >
        加载更多
      </button>
    </div>
  `;
}

function refresh() {
  loadList();
  refreshQueues();
  if (selected.value !== null) detail.reload();
}

function renderList() {
  const pane = document.getElementById("list-pane");
  pane.replaceChildren();
  render(html`<${ListPane} />`, pane);
}

function selectCase(id, { fromUrl = false } = {}) {
  selected.value = id;
  document.body.classList.toggle("detail-open", id !== null);
  if (id === null) detail.close();
  else detail.open(id);
  if (!fromUrl) writeUrl();
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

/** What the server lets this user see anyway (it checks too; this is for cases leaving scope). */
function mayShow(c) {
  const u = ctx.user;
  if (u && u.role === "department") return !!c.department && c.department.id === u.department_id;
  if (u && u.role === "supervisor" && Array.isArray(u.grid_ids) && u.grid_ids.length) {
    // A supervisor's grids may be first-level ones: a case in a child grid is theirs too.
    if (!c.grid) return false;
    return u.grid_ids.includes(c.grid.id) || u.grid_ids.includes(parentGridOf(c.grid));
  }
  return true;
}

function parentGridOf(grid) {
  if (!grid) return null;
  if (typeof grid.parent_id === "number") return grid.parent_id;
  const code = String(grid.code || "");
  const parent = ctx.grids.find((g) => g.code && code.length > g.code.length && code.startsWith(g.code));
  return parent ? parent.id : null;
}

/**
 * Whether a case belongs in the list under the current filters: the rules of GET /api/cases
 * (storage/cases.py list_cases), checked against it in tests/ui/test_ui_board.py.
 */
export function matchesFilters(c, v = formValues()) {
  if (v.state.length && !v.state.includes(c.state)) return false;
  if (v.category_id && String(c.category?.id) !== v.category_id) return false;
  if (v.source && c.source !== v.source) return false;
  if (v.department_id && String(c.department?.id) !== v.department_id) return false;
  if (v.grid_id) {
    if (!c.grid) return false;
    if (String(c.grid.id) !== v.grid_id && String(parentGridOf(c.grid)) !== v.grid_id) return false;
  }
  // overdue: a deadline state past its deadline (the server's `overdue` flag of the summary).
  if (v.overdue && !c.overdue) return false;
  const reported = new Date(c.reported_at).getTime();
  const since = fromCityInput(v.since);
  const until = fromCityInput(v.until, { endOfDay: true });
  if (since && !(reported >= new Date(since).getTime())) return false;
  if (until && !(reported < new Date(until).getTime())) return false; // the server: reported_at < until
  if (v.q && !textMatches(v.q, [c.case_no, c.description, c.address])) return false;
  return true;
}

// The server's text search (storage/search.py): the character bigrams of each run of letters or
// digits (ASCII runs also whole); a query matches when the text holds all of its bigrams (a
// one-character run: any term starting with it). Tested against GET /api/cases?q=.
const SEARCH_RUN = /[0-9a-z]+|(?:(?![0-9a-z_])[\p{L}\p{N}])+|[\u3400-\u9fff\uf900-\ufaff]+/gu;
const SEARCH_MAX_TEXT = 4000;
const SEARCH_MAX_TERMS = 32;

function searchRuns(text) {
  return String(text || "").toLowerCase().slice(0, SEARCH_MAX_TEXT).match(SEARCH_RUN) || [];
}

function bigrams(run) {
  const chars = [...run];
  if (chars.length === 1) return chars;
  const out = [];
  for (let i = 0; i < chars.length - 1; i += 1) out.push(chars[i] + chars[i + 1]);
  return out;
}

/** Whether texts (case number, description, address) match the search text q as the server does. */
export function textMatches(q, texts) {
  const terms = new Set();
  for (const t of texts) {
    for (const run of searchRuns(t)) {
      for (const b of bigrams(run)) terms.add(b);
      if (/^[\x00-\x7f]*$/.test(run)) terms.add(run);
    }
  }
  const wanted = [];
  for (const run of searchRuns(q)) {
    if ([...run].length === 1) wanted.push({ prefix: run });
    else for (const b of bigrams(run)) wanted.push({ term: b });
  }
  if (!wanted.length) return false; // nothing searchable: the server lists nothing
  const seen = new Set();
  const uniq = wanted.filter((w) => {
    const k = w.prefix !== undefined ? `${w.prefix}:*` : w.term;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return uniq.slice(0, SEARCH_MAX_TERMS).every((w) =>
    w.prefix !== undefined ? [...terms].some((t) => t.startsWith(w.prefix)) : terms.has(w.term),
  );
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

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && selected.peek() !== null && !document.querySelector("dialog[open]")) {
    selectCase(null);
  }
});

start();
