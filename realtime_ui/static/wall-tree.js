// The wall's camera list: a tree by street and grid (GET /api/cameras: `street`, `grid`), with a
// search over names, streets, grids and tags. A camera is dragged onto a tile (HTML5 drag and drop,
// the id under DRAG_TYPE and text/plain), or clicked after a tile was clicked.
import { DRAG_TYPE } from "./wall-tile.js";
import {
  assignTile,
  cameras,
  camerasReady,
  round,
  selectedTile,
  statusLabel,
  statusOf,
  wall,
} from "./wall-state.js";
import { computed, html, signal } from "./ui.js";

const query = signal("");
const NONE = "未划分";

function matches(c, q) {
  if (!q) return true;
  const hay = [c.name, c.street?.name, c.grid?.name, c.grid?.code, ...(c.tags || [])].join(" ");
  return hay.toLowerCase().includes(q);
}

/** [[street, [[grid, [camera...]]...]]...] sorted by name. */
const tree = computed(() => {
  const q = query.value.trim().toLowerCase();
  const streets = new Map();
  for (const c of cameras.value) {
    if (!matches(c, q)) continue;
    const s = c.street?.name || NONE;
    const g = c.grid?.name || NONE;
    if (!streets.has(s)) streets.set(s, new Map());
    const grids = streets.get(s);
    if (!grids.has(g)) grids.set(g, []);
    grids.get(g).push(c);
  }
  const byName = (a, b) => a[0].localeCompare(b[0], "zh-CN");
  return [...streets]
    .sort(byName)
    .map(([s, grids]) => [
      s,
      [...grids].sort(byName).map(([g, list]) => [g, list.sort((a, b) => a.name.localeCompare(b.name, "zh-CN"))]),
    ]);
});

function CameraItem({ cam }) {
  const st = statusOf(cam);
  const pick = () => {
    const t = selectedTile.peek();
    if (t === null || round.peek()) return;
    assignTile(t, cam.id);
    selectedTile.value = t + 1 < wall.peek().tiles ? t + 1 : null; // the next tile: fill a wall by clicks
  };
  return html`<li class="wall-cam" data-testid="camera-item" data-id=${cam.id} data-status=${st.state}
                  draggable="true" title=${st.message || st.reason || ""}
                  onDragStart=${(e) => {
                    e.dataTransfer.setData(DRAG_TYPE, String(cam.id));
                    e.dataTransfer.setData("text/plain", String(cam.id));
                    e.dataTransfer.effectAllowed = "copy";
                  }}
                  onClick=${pick}>
    <span class=${`wall-dot st-${st.state}`} aria-hidden="true"></span>
    <span class="wall-cam-name">${cam.name}</span>
    <span class="muted wall-cam-state">${statusLabel(st.state)}</span>
  </li>`;
}

export function CameraTree() {
  const t = tree.value;
  const q = query.value.trim();
  return html`<section class="wall-tree" aria-label="摄像头列表" data-testid="camera-tree">
    <input type="search" class="wall-search" placeholder="搜索摄像头、街道、网格" data-testid="camera-search"
           value=${query.value} onInput=${(e) => (query.value = e.currentTarget.value)} />
    <p class="muted wall-hint">${selectedTile.value !== null
      ? `已选第 ${selectedTile.value + 1} 格：点选摄像头放入`
      : "把摄像头拖到画面格，或先点画面格再点摄像头"}</p>
    ${!camerasReady.value
      ? html`<p class="loading">正在加载…</p>`
      : !t.length
        ? html`<p class="empty" data-testid="camera-tree-empty">${q ? "没有符合条件的摄像头" : "暂无摄像头"}</p>`
        : html`<ul class="wall-streets">
            ${t.map(([street, grids]) => html`<li key=${street}>
              <details open>
                <summary data-testid="tree-street">${street}
                  <span class="muted">（${grids.reduce((n, [, l]) => n + l.length, 0)}）</span></summary>
                <ul class="wall-grids">
                  ${grids.map(([grid, list]) => html`<li key=${grid}>
                    <details open>
                      <summary data-testid="tree-grid">${grid} <span class="muted">（${list.length}）</span></summary>
                      <ul class="wall-cams">${list.map((c) => html`<${CameraItem} key=${c.id} cam=${c} />`)}</ul>
                    </details></li>`)}
                </ul>
              </details></li>`)}
          </ul>`}
  </section>`;
}
