// The board's filter panel (a Preact form over the `filters` signal), the filters <-> URL <-> query
// of GET /api/cases, and applying them (the URL is rewritten, the list reloaded).
import { debounce, fromCityInput } from "./dom.js";
import { SOURCES, STATES, sourceLabel, stateLabel } from "./labels.js";
import { loadList } from "./board-list.js";
import { queuesDefault } from "./board-queues.js";
import { ctx, groups, queues, refData, selected } from "./board-state.js";
import { clearError, showError } from "./notify.js";
import { html, render, signal } from "./ui.js";

export const SIMPLE_FIELDS = ["q", "category_id", "source", "department_id", "grid_id", "since", "until"];
export const NO_FILTERS = Object.freeze({
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
export const filters = signal(NO_FILTERS);
/** 上报时间 boxes that hold no date: {since, until}. */
const badTimes = signal({ since: false, until: false });

/** Whether the URL names any filter (or 全部): otherwise the board opens on the user's first queue. */
function urlHasFilters(p) {
  return p.has("all") || p.has("state") || p.has("overdue") || SIMPLE_FIELDS.some((n) => p.get(n));
}

/** Filters from the address; returns true when it named none and the default queue was taken. */
export function readUrlIntoForm() {
  const p = new URLSearchParams(location.search);
  const first = queues.value.find((q) => q.name === queuesDefault);
  const useDefault = !urlHasFilters(p) && !!first;
  const v = { ...NO_FILTERS, state: useDefault ? [...first.states] : p.getAll("state").filter((s) => STATES.includes(s)) };
  for (const name of SIMPLE_FIELDS) v[name] = p.get(name) || "";
  v.overdue = p.get("overdue") === "1" || p.get("overdue") === "true";
  filters.value = v;
  return useDefault;
}

export function formValues() {
  const f = filters.value;
  const v = { ...f, state: [...f.state] };
  for (const name of SIMPLE_FIELDS) v[name] = String(f[name] || "").trim();
  if (ctx.user && ctx.user.role === "department") v.department_id = "";
  return v;
}

export function writeUrl() {
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

export function apiQuery() {
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
export function applyFilters() {
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

export function renderFilters() {
  const box = document.getElementById("filter-panel");
  box.replaceChildren();
  // On a phone the filter box starts folded so the list is visible.
  const startOpen = !window.matchMedia("(max-width: 900px)").matches;
  render(html`<${FilterPanel} startOpen=${startOpen} />`, box);
}
