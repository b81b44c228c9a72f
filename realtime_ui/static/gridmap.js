// The city's grids as a map: fetching their boundaries (once per tab), a flat projection, point →
// grid lookup against the polygons, and the SVG drawing the operations picture (ops.js) uses. The
// report form (report.js) renders the same geometry with components (gridGeometry).
import { api } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const GRID_CACHE_KEY = "cityhub.ops.grids.v1";
const BOUNDARY_BATCH = 20;
export const MAP_WIDTH = 1000; // SVG user units across the city
export const MAP_PAD = 16;

function readGridCache() {
  try {
    const raw = sessionStorage.getItem(GRID_CACHE_KEY);
    const data = raw ? JSON.parse(raw) : null;
    return data && Array.isArray(data.level1) && Array.isArray(data.level2) ? data : null;
  } catch {
    return null;
  }
}

function writeGridCache(data) {
  try {
    sessionStorage.setItem(GRID_CACHE_KEY, JSON.stringify(data));
  } catch {
    // too big or storage disabled: fetch again next time
  }
}

const hasRings = (items) => items.length > 0 && items.every((g) => Array.isArray(g.boundary));

function slim(g) {
  const ring = (g.boundary || []).map(([x, y]) => [Math.round(x * 1e6) / 1e6, Math.round(y * 1e6) / 1e6]);
  return { id: g.id, code: g.code, name: g.name, level: g.level, parent_id: g.parent_id, boundary: ring };
}

/** Boundaries of every grid: one request per level when the server offers ?with_boundary=1, else
 *  level-1 one by one and level-2 in parallel batches of 20 - once per tab (sessionStorage).
 *  → {level1, level2}; `onProgress(text)` hears how far the slow path is. */
export async function fetchGrids({ onProgress = () => {} } = {}) {
  const cached = readGridCache();
  if (cached) return cached;
  // A server without ?with_boundary ignores it (no rings in the answer) or refuses it (400).
  const list = (level) =>
    api("/api/grids", { query: { level, with_boundary: true } }).catch((err) => {
      if (err.status === 400) return api("/api/grids", { query: { level } });
      throw err;
    });
  const [l1, l2] = await Promise.all([list(1), list(2)]);
  let level1 = l1.items || [];
  let level2 = l2.items || [];
  if (!hasRings(level1)) level1 = await withBoundaries(level1, onProgress);
  if (!hasRings(level2)) level2 = await withBoundaries(level2, onProgress);
  const data = { level1: level1.map(slim), level2: level2.map(slim) };
  writeGridCache(data);
  return data;
}

async function withBoundaries(items, onProgress) {
  const out = [];
  for (let i = 0; i < items.length; i += BOUNDARY_BATCH) {
    const batch = items.slice(i, i + BOUNDARY_BATCH);
    onProgress(`正在加载网格边界 ${Math.min(i + BOUNDARY_BATCH, items.length)} / ${items.length}…`);
    const got = await Promise.all(
      batch.map((g) => api(`/api/grids/${encodeURIComponent(g.id)}`).catch(() => ({ ...g, boundary: [] }))),
    );
    out.push(...got);
  }
  return out;
}

const drawable = (g) => Array.isArray(g.boundary) && g.boundary.length >= 3;

/**
 * The map's geometry: a linear projection of a small city (longitude shortened by cos(latitude) so
 * squares stay square) and each grid's polygon in SVG user units. Null when no grid has a boundary.
 * → {project(lon, lat) → [x, y], unproject(x, y) → [lon, lat], viewBox, width, height,
 *    cells: [{grid, points, tone}], streets: [{grid, points, labelX, labelY}]}
 */
export function gridGeometry(level1, level2) {
  const rings = [...level1, ...level2].filter(drawable).map((g) => g.boundary);
  if (rings.length === 0) return null;
  let minLon = Infinity;
  let maxLon = -Infinity;
  let minLat = Infinity;
  let maxLat = -Infinity;
  for (const ring of rings) {
    for (const [lon, lat] of ring) {
      if (lon < minLon) minLon = lon;
      if (lon > maxLon) maxLon = lon;
      if (lat < minLat) minLat = lat;
      if (lat > maxLat) maxLat = lat;
    }
  }
  const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const spanX = (maxLon - minLon) * kx || 1e-6;
  const spanY = maxLat - minLat || 1e-6;
  const scale = MAP_WIDTH / spanX;
  const width = MAP_WIDTH;
  const height = spanY * scale;
  const project = (lon, lat) => [(lon - minLon) * kx * scale, (maxLat - lat) * scale];
  const unproject = (x, y) => [minLon + x / (kx * scale), maxLat - y / scale];
  const points = (ring) => ring.map(([lon, lat]) => project(lon, lat).map((v) => v.toFixed(1)).join(",")).join(" ");
  const streetIndex = new Map(level1.map((g, i) => [g.id, i]));
  const cells = level2.filter(drawable).map((g) => ({
    grid: g,
    points: points(g.boundary),
    tone: (streetIndex.get(g.parent_id) ?? 0) % 5,
  }));
  const streets = level1.filter(drawable).map((g) => {
    const xs = g.boundary.map(([lon, lat]) => project(lon, lat));
    return {
      grid: g,
      points: points(g.boundary),
      labelX: xs.reduce((s, p) => s + p[0], 0) / xs.length,
      labelY: Math.min(...xs.map((p) => p[1])) + 26,
    };
  });
  const viewBox = `${-MAP_PAD} ${-MAP_PAD} ${width + 2 * MAP_PAD} ${height + 2 * MAP_PAD}`;
  return { project, unproject, viewBox, width, height, cells, streets };
}

/** Whether (lon, lat) is inside or on the edge of a ring [[lon, lat], ...] (PostgreSQL's `@>`). */
export function ringContains(ring, lon, lat) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    // On an edge counts as inside.
    const cross = (xj - xi) * (lat - yi) - (yj - yi) * (lon - xi);
    if (
      Math.abs(cross) < 1e-12 &&
      lon >= Math.min(xi, xj) - 1e-12 &&
      lon <= Math.max(xi, xj) + 1e-12 &&
      lat >= Math.min(yi, yj) - 1e-12 &&
      lat <= Math.max(yi, yj) + 1e-12
    ) {
      return true;
    }
    if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The first grid of `grids` whose boundary holds (lon, lat), or null. */
export function gridAt(grids, lon, lat) {
  for (const g of grids) if (drawable(g) && ringContains(g.boundary, lon, lat)) return g;
  return null;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Draw the grids into an <svg> (its content replaced): unit grids (`.cell.tone-N`), streets
 * (`.street`) and street names (`.street-label`). Returns the geometry (gridGeometry), or null
 * when there is nothing to draw (the <svg> is then left as it was).
 */
export function drawGridMap(mapSvg, level1, level2) {
  const geo = gridGeometry(level1, level2);
  if (!geo) return null;
  mapSvg.setAttribute("viewBox", geo.viewBox);
  const cellLayer = svg("g", { class: "cells" });
  for (const c of geo.cells) {
    cellLayer.append(
      svg(
        "polygon",
        { class: `cell tone-${c.tone}`, points: c.points, "data-grid-id": c.grid.id },
        svg("title", {}, c.grid.name || c.grid.code),
      ),
    );
  }
  const streetLayer = svg("g", { class: "streets" });
  const labelLayer = svg("g", { class: "street-labels" });
  for (const s of geo.streets) {
    streetLayer.append(svg("polygon", { class: "street", points: s.points, "data-grid-id": s.grid.id }));
    labelLayer.append(
      svg("text", { class: "street-label", x: s.labelX.toFixed(1), y: s.labelY.toFixed(1) }, s.grid.name),
    );
  }
  mapSvg.replaceChildren(cellLayer, streetLayer, labelLayer);
  return geo;
}

// ---- the city's base map under the grids (CITYHUB_MAP_TILES) -----------------------------------

/** At most this many tiles across the visible box: the zoom level follows from it. */
export const MAX_TILES_ACROSS = 6;
const MAX_TILE_ZOOM = 19;

/**
 * The base map's tiles (Web Mercator, a `{z}/{x}/{y}` URL template) covering the visible `box`
 * ("x y width height" in map units; default the whole map), each placed in map units:
 * [{key, href, x, y, width, height}]. The zoom is the deepest at which the box is still at most
 * MAX_TILES_ACROSS tiles wide, so zooming the map in loads sharper tiles. A tile's true edges are
 * projected; within one tile (about a kilometre at street zoom) the stretch is linear.
 */
export function baseTiles(geo, template, box = geo?.viewBox) {
  if (!geo || !template || !box) return [];
  const [bx, by, bw, bh] = box.split(" ").map(Number);
  const [west, north] = geo.unproject(bx, by);
  const [east, south] = geo.unproject(bx + bw, by + bh);
  let z = 0;
  while (z < MAX_TILE_ZOOM && ((east - west) / 360) * 2 ** (z + 1) <= MAX_TILES_ACROSS) z += 1;
  const n = 2 ** z;
  const tileX = (lon) => Math.floor(((lon + 180) / 360) * n);
  const tileY = (lat) => {
    const r = (lat * Math.PI) / 180;
    return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n);
  };
  const lonOf = (x) => (x / n) * 360 - 180;
  const latOf = (y) => (180 / Math.PI) * Math.atan(Math.sinh(Math.PI - (2 * Math.PI * y) / n));
  const tiles = [];
  for (let x = tileX(west); x <= tileX(east); x++) {
    for (let y = tileY(north); y <= tileY(south) && tiles.length < 4 * MAX_TILES_ACROSS ** 2; y++) {
      const [x0, y0] = geo.project(lonOf(x), latOf(y));
      const [x1, y1] = geo.project(lonOf(x + 1), latOf(y + 1));
      const href = template.replaceAll("{z}", z).replaceAll("{x}", x).replaceAll("{y}", y);
      tiles.push({ key: `${z}/${x}/${y}`, href, x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
    }
  }
  return tiles;
}
