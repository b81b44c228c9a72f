// The evaluation page's figures: the city's counts and rates, the league tables (departments,
// streets, posts, sources) with colour-graded cells, the composite score and its arithmetic.
// Every count is a button: a click opens the list of the cases behind it (evaluation-cases.js).
import { drill } from "./evaluation-state.js";
import { html } from "./ui.js";

const fmtNum = (n) => (typeof n === "number" ? n.toLocaleString("zh-CN") : "—");

/** A clickable count: opens the drill-down of (table, key, figure). */
export function CountButton({ table, rowKey, figure, value, title, params }) {
  if (typeof value !== "number") return html`<span class="ev-none">—</span>`;
  const open = () => (drill.value = { table, key: rowKey, figure, title, params });
  return html`<button type="button" class="ev-count" data-testid="ev-count" data-table=${table}
                      data-key=${rowKey ?? ""} data-figure=${figure} data-value=${value}
                      title=${`查看${title}的案件`} onClick=${open}>${fmtNum(value)}</button>`;
}

export function Empty({ slot: s }) {
  if (s.status === "loading") return html`<p class="ev-empty">正在加载…</p>`;
  const why = s.status === "error" ? `（${s.message}）` : "";
  return html`<p class="ev-empty" data-testid="ev-empty">暂无数据${why}</p>`;
}

/** The city's figures (and the urgent cases' when the API gives them). */
export function CityFigures({ s }) {
  if (s.status !== "ok") return html`<${Empty} slot=${s} />`;
  const u = s.data.urgent;
  return html`<${Figures} table="city" counts=${s.data.counts} labels=${s.data.labels}
                          rates=${s.data.rates} testid="ev-city" />
    ${u && html`<h3 class="ev-sub">紧急案件${u.average_handling_text
      ? html` <span class="muted">平均处置用时 ${u.average_handling_text}</span>` : ""}</h3>
      <${Figures} table="urgent" counts=${u.counts} labels=${{ ...s.data.labels, ...u.labels }}
                  rates=${u.rates} testid="ev-urgent" />`}`;
}

/** Each count as a tile, the rates with their arithmetic. */
function Figures({ table, counts, labels, rates, testid }) {
  return html`<div class="ev-city" data-testid=${testid}>
    <div class="ev-tiles">
      ${Object.entries(counts).map(
        ([k, v]) => html`<div class="ev-tile" key=${k}>
          <span class="ev-tile-label">${labels[k] || k}</span>
          <${CountButton} table=${table} figure=${k} value=${v}
                          title=${`${table === "urgent" ? "紧急案件·" : ""}${labels[k] || k}`} />
        </div>`,
      )}
    </div>
    <div class="ev-tiles ev-rates">
      ${Object.entries(rates).map(
        ([k, r]) => html`<div class="ev-tile" key=${k} data-testid="ev-rate" data-key=${k}>
          <span class="ev-tile-label">${labels[k] || k}</span>
          <strong class="ev-rate" style=${grade(r.value, k)}>${r.text}</strong>
          <span class="muted ev-frac">${fmtNum(r.num)} / ${fmtNum(r.den)}</span>
        </div>`,
      )}
    </div>
  </div>`;
}

/** The composite score and its terms' sentences. */
export function ScoreCard({ s }) {
  if (s.status !== "ok" || !s.data.score) return html`<${Empty} slot=${s} />`;
  const sc = s.data.score;
  return html`<div class="ev-score" data-testid="ev-score">
    <p class="ev-score-total">综合得分 <strong data-testid="ev-score-total">${sc.total_text ?? sc.total}</strong>
      <span class="muted"> / ${sc.max}</span></p>
    <table class="ev-table ev-terms">
      <thead><tr><th>项目</th><th>数值</th><th>得分</th><th>满分</th><th>计算</th></tr></thead>
      <tbody>
        ${(sc.terms || []).map(
          (t, i) => html`<tr key=${i} data-testid="ev-term">
            <td>${t.label}</td><td>${t.value_text}</td><td>${t.earned}</td><td>${t.max}</td>
            <td class="ev-term-text">${t.text}</td></tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

// Rates where lower is better (overdue, rework, extension) are graded the other way round.
const LOWER_IS_BETTER = /overdue|rework|extension/;

/** A background from red (poor) to green (good) for a rate in [0, 1]; none for null. */
export function grade(value, key) {
  if (typeof value !== "number") return "";
  let good = Math.max(0, Math.min(1, value));
  if (LOWER_IS_BETTER.test(key)) good = 1 - Math.min(1, good * 10); // 10% rework is as bad as it gets
  const hue = Math.round(good * 120);
  return `background-color: hsl(${hue} 70% 88%)`;
}

function gradeScore(total, max) {
  if (typeof total !== "number" || !max) return "";
  return grade(total / max, "score");
}

/** One league table: rows with counts, rates and (for departments) score and rank. */
export function LeagueTable({ s, table, rowKey, nameLabel, title, params }) {
  if (s.status !== "ok" || !s.data.rows || s.data.rows.length === 0) {
    return html`<${Empty} slot=${s.status === "ok" ? { status: "empty" } : s} />`;
  }
  const { rows, columns } = s.data;
  const hasRank = rows.some((r) => r.rank !== undefined);
  return html`<div class="ev-table-wrap">
    <table class="ev-table ev-league" data-testid=${`ev-table-${table}`}>
      <caption class="sr-only">${title}</caption>
      <thead><tr>
        ${hasRank && html`<th>名次</th>`}
        <th>${nameLabel}</th>
        ${columns.map((c) => html`<th key=${c.key} data-kind=${c.kind}>${c.label}</th>`)}
      </tr></thead>
      <tbody>
        ${rows.map((r) => {
          const key = String(r[rowKey]);
          return html`<tr key=${key} data-testid="ev-row" data-key=${key}>
            ${hasRank && html`<td class="ev-rank">${r.rank}</td>`}
            <th scope="row">${r.name || r.label || key}</th>
            ${columns.map((c) => cell(table, key, r, c, params))}
          </tr>`;
        })}
      </tbody>
    </table>
  </div>`;
}

function cell(table, key, r, c, params) {
  if (c.kind === "rate") {
    const rate = (r.rates || {})[c.key] || (r[c.key] && typeof r[c.key] === "object" ? r[c.key] : null);
    if (!rate) return html`<td key=${c.key}>—</td>`;
    return html`<td key=${c.key} class="ev-rate-cell" data-testid="ev-rate-cell" data-key=${c.key}
                    style=${grade(rate.value, c.key)}
                    title=${`${rate.num} / ${rate.den}`}>${rate.text}</td>`;
  }
  if (c.kind === "score") {
    const sc = r.score || {};
    return html`<td key=${c.key} class="ev-score-cell" style=${gradeScore(sc.total, sc.max)}>
      ${sc.total_text ?? sc.total ?? "—"}</td>`;
  }
  // Counts are buttons; anything else a row carries at the top level (per_km2, area_km2) is text.
  const inCounts = c.key in (r.counts || {});
  const v = inCounts ? r.counts[c.key] : r[c.key];
  if (!inCounts || c.kind !== "count") {
    return html`<td key=${c.key}>${typeof v === "object" && v ? v.text ?? "—" : v ?? "—"}</td>`;
  }
  return html`<td key=${c.key}><${CountButton} table=${table} rowKey=${key} figure=${c.key} params=${params}
                                  value=${v} title=${`${r.name || r.label || key}·${c.label}`} /></td>`;
}
