// The board's case list: the case store (store.js) with keyset paging of GET /api/cases, the table
// of rows (each re-renders alone), the deadline cell with its countdown and 黄灯/红灯 badge.
import { api } from "./api.js";
import { detail, selectCase } from "./board-detail.js";
import { apiQuery } from "./board-filters.js";
import { matchesFilters, mayShow } from "./board-match.js";
import { QueueBar, refreshQueues } from "./board-queues.js";
import { ctx, flashes, groups, listLoading, selected } from "./board-state.js";
import { Countdown, limitSecondsFor } from "./countdown.js";
import { fmtTime } from "./dom.js";
import { STATE_LABELS } from "./labels.js";
import { clearError, showError } from "./notify.js";
import { createCaseStore } from "./store.js";
import { html, render } from "./ui.js";

const PAGE_SIZE = 50;

let listSeq = 0;
let listAbort = null;

/** The shown cases: the list query's answer, then live changes (store.js). */
export const cases = createCaseStore({
  matches: (c) => matchesFilters(c),
  mayShow: (c) => mayShow(c),
  onChange: (kind, c) => {
    if (kind === "inserted") flash(c.id, "new");
    else if (kind === "updated") flash(c.id, "changed");
  },
});

export async function loadList({ more = false } = {}) {
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

export function renderList() {
  const pane = document.getElementById("list-pane");
  pane.replaceChildren();
  render(html`<${ListPane} />`, pane);
}
