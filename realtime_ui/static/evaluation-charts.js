// The evaluation page's charts, drawn by Apache ECharts (vendor/echarts.mjs, scripts/vendor-js.sh):
// the trend over periods (counts as bars, rates as lines on a percent axis) and the grids' problems
// per km² as a bar ranking. One chart instance per element, disposed when the element goes.
// Tooltips are drawn on the canvas (renderMode "richText"): the HTML ones carry style="…"
// attributes, which the pages' CSP (style-src 'self') refuses.
import * as echarts from "./vendor/echarts.mjs";
import { html, useEffect, useRef } from "./ui.js";

const TREND_COUNTS = ["accepted", "registered", "closed"];
const TREND_RATES = ["register_rate", "close_rate", "on_time_rate"];

function useChart(option) {
  const ref = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = echarts.init(ref.current, null, { renderer: "canvas", locale: "ZH" });
    const resize = () => chart.current && chart.current.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.current.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    if (chart.current && option) chart.current.setOption(option, true);
  }, [option]);
  return ref;
}

export function trendOption(data, labels) {
  const points = data.points || [];
  const x = points.map((p) => p.period.label.replace(/ \(.*\)$/, ""));
  const counts = TREND_COUNTS.filter((k) => points.some((p) => k in (p.counts || {})));
  const rates = TREND_RATES.filter((k) => points.some((p) => k in (p.rates || {})));
  return {
    animation: false,
    tooltip: { trigger: "axis", renderMode: "richText" },
    legend: { top: 0 },
    grid: { left: 50, right: 50, top: 36, bottom: 40 },
    xAxis: { type: "category", data: x },
    yAxis: [
      { type: "value", name: "件" },
      { type: "value", name: "%", min: 0, max: 100 },
    ],
    series: [
      ...counts.map((k) => ({
        name: labels[k] || k,
        type: "bar",
        data: points.map((p) => p.counts[k]),
      })),
      ...rates.map((k) => ({
        name: labels[k] || k,
        type: "line",
        yAxisIndex: 1,
        data: points.map((p) => {
          const v = p.rates[k] && p.rates[k].value;
          return typeof v === "number" ? Math.round(v * 10000) / 100 : null;
        }),
      })),
    ],
  };
}

export function TrendChart({ data, labels }) {
  const ref = useChart(data ? trendOption(data, labels || {}) : null);
  const n = data && data.points ? data.points.length : 0;
  return html`<div class="ev-chart" ref=${ref} data-testid="ev-trend-chart" data-points=${n}></div>`;
}

export function gridOption(rows) {
  const top = [...rows]
    .filter((r) => typeof r.per_km2 === "number")
    .sort((a, b) => b.per_km2 - a.per_km2)
    .slice(0, 30)
    .reverse();
  const max = top.reduce((m, r) => Math.max(m, r.per_km2), 0) || 1;
  return {
    animation: false,
    tooltip: { trigger: "item", renderMode: "richText" },
    grid: { left: 120, right: 30, top: 10, bottom: 30 },
    visualMap: { show: false, min: 0, max, inRange: { color: ["#fde7c8", "#c0392b"] } },
    xAxis: { type: "value", name: "件/km²" },
    yAxis: { type: "category", data: top.map((r) => r.name || r.code) },
    series: [{ type: "bar", data: top.map((r) => r.per_km2), name: "问题密度" }],
  };
}

export function GridChart({ rows }) {
  const ref = useChart(rows ? gridOption(rows) : null);
  return html`<div class="ev-chart ev-chart-tall" ref=${ref} data-testid="ev-grid-chart"></div>`;
}
