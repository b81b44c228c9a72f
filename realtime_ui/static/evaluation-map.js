// The grid heat map of the evaluation page: the city's unit grids (gridmap.js geometry, the same
// SVG projection the report form and /ops use), each filled by its problems per km² (问题密度 from
// GET /api/evaluation/regions?level=grid), white to red on a square-root scale. A click on a grid
// opens its 问题数 cases (the drill-down of table=regions).
import { drill } from "./evaluation-state.js";
import { fetchGrids, gridGeometry } from "./gridmap.js";
import { html, signal } from "./ui.js";

const geometry = signal({ status: "idle", geo: null });

function loadGeometry() {
  if (geometry.peek().status !== "idle") return;
  geometry.value = { status: "loading", geo: null };
  fetchGrids()
    .then(({ level1, level2 }) => (geometry.value = { status: "ready", geo: gridGeometry(level1, level2) }))
    .catch(() => (geometry.value = { status: "failed", geo: null }));
}

/** A fill from white (0) to dark red (the densest grid). */
export function heat(value, max) {
  if (typeof value !== "number" || !(max > 0)) return "#f3f4f6";
  const t = Math.sqrt(Math.max(0, value) / max);
  const light = Math.round(96 - t * 58);
  return `hsl(${Math.round(40 - t * 40)} 85% ${light}%)`;
}

export function GridHeat({ rows }) {
  loadGeometry();
  const g = geometry.value;
  if (g.status !== "ready" || !g.geo) {
    return html`<p class="ev-empty">${g.status === "failed" ? "网格边界加载失败" : "正在加载网格…"}</p>`;
  }
  const byGrid = new Map(rows.filter((r) => r.grid_id != null).map((r) => [r.grid_id, r]));
  const max = rows.reduce((m, r) => (typeof r.per_km2 === "number" ? Math.max(m, r.per_km2) : m), 0);
  const open = (grid, r) =>
    (drill.value = {
      table: "regions",
      key: String(grid.id),
      figure: "reported",
      title: `${r.name || grid.name}·问题数`,
      params: { level: "grid" },
    });
  return html`<svg class="ev-heat" viewBox=${g.geo.viewBox} data-testid="ev-grid-heat" role="img" aria-label="网格问题密度">
    ${g.geo.cells.map((c) => {
      const r = byGrid.get(c.grid.id);
      const density = r ? r.per_km2 : null;
      return html`<polygon key=${c.grid.id} points=${c.points} fill=${heat(density, max)}
                           class=${r ? "ev-heat-cell has-data" : "ev-heat-cell"} data-grid-id=${c.grid.id}
                           data-per-km2=${density ?? ""} onClick=${r ? () => open(c.grid, r) : undefined}>
        <title>${c.grid.name || c.grid.code}：${typeof density === "number" ? `${density} 件/km²` : "无数据"}</title>
      </polygon>`;
    })}
    ${g.geo.streets.map(
      (s) => html`<polygon key=${`s${s.grid.id}`} points=${s.points} class="ev-heat-street" />`,
    )}
  </svg>`;
}
