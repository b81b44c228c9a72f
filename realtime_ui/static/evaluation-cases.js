// The drill-down: the cases behind one figure (GET /api/evaluation/cases, the same SQL as the
// figure, so its `count` is the number clicked). Each row links to the case on the board.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { drill, periodParams } from "./evaluation-state.js";
import { html, useEffect, useState } from "./ui.js";

const PAGE = 200;

export function CaseList() {
  const d = drill.value;
  // The answer is kept with the drill-down it answers, so a stale list never shows under a new title.
  const [state, setState] = useState({ for: null, status: "loading", data: null, message: "" });
  const [offset, setOffset] = useState(0);
  useEffect(() => setOffset(0), [d]);
  useEffect(() => {
    if (!d) return undefined;
    const ctl = new AbortController();
    setState({ for: d, status: "loading", data: null, message: "" });
    const query = { ...periodParams(), table: d.table, figure: d.figure, limit: PAGE, offset };
    if (d.key) query.key = d.key;
    Object.assign(query, d.params || {}); // level (regions), post (posts)
    api("/api/evaluation/cases", { query, signal: ctl.signal })
      .then((data) => setState({ for: d, status: "ok", data, message: "" }))
      .catch((err) => {
        if (err.name !== "AbortError") setState({ for: d, status: "error", data: null, message: err.message });
      });
    return () => ctl.abort();
  }, [d, offset]);
  if (!d) return null;
  const current = state.for === d ? state : { status: "loading", data: null };
  const data = current.data;
  return html`<section class="ev-drill" data-testid="ev-drill" role="dialog" aria-label="案件清单">
    <header class="ev-drill-head">
      <h2>${d.title}${data && html` · <span data-testid="ev-drill-count">${data.count}</span> 件`}</h2>
      ${data && html`<span class="muted">${data.period.label}</span>`}
      <button type="button" class="btn" data-testid="ev-drill-close" onClick=${() => (drill.value = null)}>关闭</button>
    </header>
    ${current.status === "loading" && html`<p class="ev-empty">正在加载…</p>`}
    ${current.status === "error" && html`<p class="ev-empty" data-testid="ev-empty">暂无数据（${current.message}）</p>`}
    ${data && data.calls && data.calls.length > 0 && html`<p data-testid="ev-drill-calls">通话记录编号：
      ${data.calls.join("、")}</p>`}
    ${data && data.cases.length === 0 && !(data.calls && data.calls.length) && html`<p class="ev-empty">没有案件</p>`}
    ${data && data.cases.length > 0 && html`<div class="ev-table-wrap"><table class="ev-table">
      <thead><tr><th>编号</th><th>类别</th><th>状态</th><th>责任部门</th><th>上报时间</th><th>处置时限</th></tr></thead>
      <tbody>
        ${data.cases.map(
          (c) => html`<tr key=${c.id} data-testid="ev-drill-row" data-case-id=${c.id}>
            <td><a href=${`/board?case=${c.id}`} target="_blank" rel="noopener">${c.number || c.id}</a></td>
            <td>${c.category || "—"}</td><td>${c.state_label || c.state}</td>
            <td>${c.department || "—"}</td>
            <td>${c.reported_at ? fmtTime(c.reported_at) : "—"}</td>
            <td>${c.deadline ? fmtTime(c.deadline) : "—"}</td></tr>`,
        )}
      </tbody></table></div>`}
    ${data && data.count > PAGE && html`<p class="ev-pager">
      <button type="button" class="btn" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>上一页</button>
      <span>${offset + 1}–${Math.min(offset + PAGE, data.count)} / ${data.count}</span>
      <button type="button" class="btn" disabled=${offset + PAGE >= data.count} onClick=${() => setOffset(offset + PAGE)}>下一页</button></p>`}
  </section>`;
}
