// The evaluation page (综合评价, evaluation.html): a period (日/周/月/季/年 or a range of local
// dates), the city's figures and rates, league tables of departments, streets, posts and sources,
// the trend over periods, the grids' problems per km², and the composite score with its
// arithmetic. Any count opens the list of its cases; exports (xlsx, csv) and the weekly report.
//
// Theory of operation: start() asks GET /api/auth/me who is signed in (and the city's time zone);
// the period is a signal, and every change reloads each endpoint into its own slot
// (evaluation-state.js), so a table whose endpoint is missing or failing says "暂无数据" alone.
//   evaluation-state.js   period, API calls, export and weekly links, the drill-down signal
//   evaluation-tables.js  city figures, league tables, score
//   evaluation-charts.js  ECharts trend and grid charts
//   evaluation-cases.js   the cases behind a figure
import { CaseList } from "./evaluation-cases.js";
import { GridChart, TrendChart } from "./evaluation-charts.js";
import { GridHeat } from "./evaluation-map.js";
import {
  OWN_ROW_ROLES,
  PERIOD_KINDS,
  READ_ROLES,
  cityToday,
  exportUrl,
  loadInto,
  period,
  slot,
  weeklyUrl,
} from "./evaluation-state.js";
import { CityFigures, Empty, LeagueTable, ScoreCard } from "./evaluation-tables.js";
import { signIn } from "./page.js";
import { html, render, signal } from "./ui.js";

const city = slot();
const trend = slot();
const departments = slot();
const streets = slot();
const grids = slot();
const posts = slot();
const sources = slot();
const post = signal("seat");

const TABS = [
  ["departments", "部门"],
  ["streets", "街道"],
  ["posts", "岗位"],
  ["sources", "来源"],
];
const tab = signal(new URLSearchParams(location.search).get("tab") || "departments");
const POSTS = [
  ["seat", "受理员"],
  ["dispatcher", "派遣员"],
  ["supervisor", "监督员"],
  ["agent", "热线坐席"],
];

const ownRow = signal(false); // a supervisor or agent: their own post row only

function reload() {
  if (ownRow.peek()) {
    loadInto(posts, "/api/evaluation/posts", { post: post.peek() });
    return;
  }
  loadInto(city, "/api/evaluation/city");
  // A range's trend is by day (up to 31 days) or by week, as the API splits it; else 8 periods.
  loadInto(trend, "/api/evaluation/trend", period.peek().kind === "range" ? {} : { count: 8 });
  loadInto(departments, "/api/evaluation/departments");
  loadInto(streets, "/api/evaluation/regions", { level: "street" });
  loadInto(grids, "/api/evaluation/regions", { level: "grid" });
  loadInto(posts, "/api/evaluation/posts", { post: post.peek() });
  loadInto(sources, "/api/evaluation/sources");
}

function setPeriod(change) {
  period.value = { ...period.peek(), ...change };
  const p = period.peek();
  if (p.kind === "range" && !(p.start && p.end && p.end > p.start)) return; // wait for both dates
  const qs = new URLSearchParams(p.kind === "range" ? { start: p.start, end: p.end } : { period: p.kind });
  if (p.kind !== "range" && p.day) qs.set("day", p.day);
  history.replaceState(null, "", `?${qs}`);
  reload();
}

/** The table the export buttons give: the open tab's (the API's table name and its parameters). */
function exportTable() {
  switch (tab.value) {
    case "streets":
      return ["regions", { level: "street" }];
    case "posts":
      return ["posts", { post: post.value }];
    case "sources":
      return ["sources", {}];
    default:
      return ["departments", {}];
  }
}

function PeriodPicker() {
  const p = period.value;
  const answered = ownRow.value ? posts.value : city.value;
  const label = answered.data && answered.data.period ? answered.data.period.label : "";
  return html`<section class="ev-panel ev-period" data-testid="ev-period">
    <div class="ev-kinds" role="group" aria-label="统计周期">
      ${PERIOD_KINDS.map(
        ([k, text]) => html`<button type="button" key=${k} data-testid=${`ev-kind-${k}`}
                                    class=${`btn${p.kind === k ? " btn-primary" : ""}`}
                                    aria-pressed=${p.kind === k} onClick=${() => setPeriod({ kind: k })}>${text}</button>`,
      )}
    </div>
    ${p.kind === "range"
      ? html`<label>自 <input type="date" value=${p.start} data-testid="ev-start"
                               onChange=${(e) => setPeriod({ start: e.target.value })} /></label>
             <label>至（不含） <input type="date" value=${p.end} data-testid="ev-end"
                               onChange=${(e) => setPeriod({ end: e.target.value })} /></label>`
      : html`<label>日期 <input type="date" value=${p.day || cityToday()} data-testid="ev-day"
                               onChange=${(e) => setPeriod({ day: e.target.value })} /></label>`}
    <strong class="ev-period-label" data-testid="ev-period-label">${label}</strong>
    ${!ownRow.value && html`<span class="ev-links">
      <a class="btn" href=${exportUrl("xlsx", ...exportTable())} data-testid="ev-export-xlsx">导出 Excel</a>
      <a class="btn" href=${exportUrl("csv", ...exportTable())} data-testid="ev-export-csv">导出 CSV</a>
      <a class="btn" href=${weeklyUrl()} target="_blank" rel="noopener" data-testid="ev-weekly">周报（打印）</a>
    </span>`}
  </section>`;
}

function Tabs() {
  const current = TABS.some(([k]) => k === tab.value) ? tab.value : "departments";
  let body;
  if (current === "departments") {
    body = html`<${LeagueTable} s=${departments.value} table="departments" rowKey="department_id" nameLabel="部门" title="部门排名" />`;
  } else if (current === "streets") {
    body = html`<${LeagueTable} s=${streets.value} table="regions" rowKey="grid_id" nameLabel="街道" title="街道评价"
                            params=${{ level: "street" }} />`;
  } else if (current === "posts") {
    body = html`<div class="ev-kinds" role="group" aria-label="岗位">
        ${POSTS.map(
          ([k, text]) => html`<button type="button" key=${k} class=${`btn${post.value === k ? " btn-primary" : ""}`}
              onClick=${() => { post.value = k; loadInto(posts, "/api/evaluation/posts", { post: k }); }}>${text}</button>`,
        )}
      </div>
      <${LeagueTable} s=${posts.value} table="posts" rowKey="user_id" nameLabel="人员" title="岗位评价"
                      params=${{ post: post.value }} />`;
  } else {
    body = html`<${LeagueTable} s=${sources.value} table="sources" rowKey="source" nameLabel="来源" title="来源评价" />`;
  }
  return html`<section class="ev-panel">
    <div class="ev-tabs" role="tablist">
      ${TABS.map(
        ([key, label]) => html`<button type="button" key=${key} role="tab" data-testid=${`ev-tab-${key}`}
                                       class=${`ev-tab${key === current ? " active" : ""}`}
                                       aria-selected=${key === current} onClick=${() => (tab.value = key)}>${label}</button>`,
      )}
    </div>
    <div role="tabpanel" data-testid="ev-tab-body" data-tab=${current}>${body}</div>
  </section>`;
}

function Trend() {
  const s = trend.value;
  const labels = (city.value.data && city.value.data.labels) || {};
  const byRange = period.value.kind === "range";
  const bucket = s.status === "ok" && s.data.bucket === "week" ? "按周" : "按日";
  return html`<section class="ev-panel"><h2 data-testid="ev-trend-title">${byRange ? `趋势（所选时段，${bucket}）` : "趋势（最近 8 个周期）"}</h2>
    ${s.status === "ok" && s.data.points && s.data.points.length
      ? html`<${TrendChart} data=${s.data} labels=${labels} />`
      : html`<${Empty} slot=${s} />`}
  </section>`;
}

function Grids() {
  const s = grids.value;
  return html`<section class="ev-panel"><h2>网格问题密度（件/km²）</h2>
    ${s.status === "ok" && s.data.rows && s.data.rows.length
      ? html`<div class="ev-heat-row"><${GridHeat} rows=${s.data.rows} /><${GridChart} rows=${s.data.rows} /></div>`
      : html`<${Empty} slot=${s} />`}
  </section>`;
}

/** A supervisor's or agent's page: the period and their own row of their post's table. */
function OwnRow() {
  return html`<div class="ev-layout" data-testid="evaluation-page" data-own-row="true">
    <${PeriodPicker} />
    <section class="ev-panel"><h2>我的岗位评价</h2>
      <${LeagueTable} s=${posts.value} table="posts" rowKey="user_id" nameLabel="人员" title="岗位评价"
                      params=${{ post: post.value }} />
    </section>
    <${CaseList} />
  </div>`;
}

function Page() {
  return html`<div class="ev-layout" data-testid="evaluation-page">
    <${PeriodPicker} />
    <section class="ev-panel"><h2>全市指标</h2><${CityFigures} s=${city.value} /></section>
    <div class="ev-row">
      <section class="ev-panel ev-grow"><h2>综合得分</h2><${ScoreCard} s=${city.value} /></section>
      <${Trend} />
    </div>
    <${Tabs} />
    <${Grids} />
    <${CaseList} />
  </div>`;
}

async function start() {
  const who = await signIn();
  if (!who) return;
  const app = document.getElementById("app");
  if (OWN_ROW_ROLES.has(who.user.role)) {
    ownRow.value = true;
    post.value = who.user.role;
    app.replaceChildren();
    render(html`<${OwnRow} />`, app);
    reload();
    return;
  }
  if (!READ_ROLES.has(who.user.role)) {
    app.replaceChildren();
    render(html`<p class="banner banner-warn" data-testid="evaluation-denied">您的账号没有查看综合评价的权限。</p>`, app);
    return;
  }
  app.replaceChildren(); // the "正在加载…" placeholder (Preact 11 renders beside what is there)
  render(html`<${Page} />`, app);
  reload();
}

start();
