// The board's work queues (我的待办): their counts from GET /api/queues, the announcement of new
// work, and the tab bar that shows one queue (its states as the state filter) or 全部案件.
import { api } from "./api.js";
import { NO_FILTERS, SIMPLE_FIELDS, applyFilters, filters, formValues } from "./board-filters.js";
import { groups, queueNotice, queues } from "./board-state.js";
import { debounce } from "./dom.js";
import { showError } from "./notify.js";
import { html } from "./ui.js";

export let queuesDefault = null;
let queuesSeq = 0;

/** Load the queues and their counts; a count that grew since the last answer is announced. */
export async function refreshQueues({ announce = false } = {}) {
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

export const refreshQueuesSoon = debounce(() => refreshQueues({ announce: true }), 400);

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

export function QueueBar() {
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
