// The big screen's map (ops.html): the city's grids as SVG (gridmap.js), the open cases as markers
// coloured by state, and the cameras (squares) and loudspeakers (triangles) coloured by their live
// status. A click on a camera opens its live tile (wall-live.js `enlarged`), a click on a speaker
// its warning dialog (ops-panels.js `chosenSpeaker`).
//
// Theory of operation: three layers over the grid drawing - devices under cases, closed cases under
// open ones. Case markers are replaced one by one as events arrive (drawCase); device markers are
// redrawn by an effect whenever the camera or speaker lists or one of their status stores change
// (a few hundred nodes at most, cheap next to the grids).
import { drawGridMap, fetchGrids } from "./gridmap.js";
import { STATE_LABELS } from "./labels.js";
import { effect, signal } from "./ui.js";
import { enlarged } from "./wall-live.js";
import { cameras, statusLabel as camLabel, statusOf as camStatusOf } from "./wall-state.js";
import { speakers, statusLabel as spkLabel, statusOf as spkStatusOf } from "./speakers-state.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** Marker colour groups by state (rejected / voided cases are not drawn). */
export const GROUP_OF = {
  reported: "pending",
  confirming: "pending",
  registered: "pending",
  returned: "pending",
  dispatched: "working",
  handling: "working",
  deferred: "working",
  quick_handling: "working",
  feedback: "checking",
  verifying: "checking",
  verified: "checking",
  closed: "closed",
};

/** The speaker whose warning dialog is open (an id), or null. */
export const chosenSpeaker = signal(null);

const mapSvg = document.getElementById("ops-map");
const mapStatus = document.getElementById("map-status");
let project = null; // (lon, lat) -> [x, y] once the map is drawn
let deviceLayer = null;
let caseLayer = null;

export function svg(tag, attrs = {}, ...children) {
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

/** Fetch and draw the grids; the layers exist from then on. */
export async function loadMap() {
  let level1;
  let level2;
  try {
    ({ level1, level2 } = await fetchGrids({ onProgress: (text) => (mapStatus.textContent = text) }));
  } catch (err) {
    mapStatus.textContent = "网格加载失败";
    throw err;
  }
  const geo = drawGridMap(mapSvg, level1, level2);
  if (!geo) {
    mapStatus.textContent = "没有网格边界数据";
    return;
  }
  project = geo.project;
  deviceLayer = svg("g", { class: "devices", "data-testid": "map-devices" });
  caseLayer = svg("g", { class: "markers", "data-testid": "map-markers" });
  mapSvg.append(deviceLayer, caseLayer);
  mapStatus.textContent = `${level1.length} 个街道 · ${level2.length} 个单元网格`;
  effect(drawDevices);
}

function countMarkers() {
  document.body.dataset.markers = String(caseLayer ? caseLayer.childElementCount : 0);
}

/** Redraw every case marker from `list` (case summaries). */
export function drawCases(list) {
  if (!caseLayer) return;
  caseLayer.replaceChildren();
  // Closed first, so open cases are drawn on top.
  const sorted = [...list].sort((a, b) => (b.state === "closed") - (a.state === "closed") || b.id - a.id);
  for (const c of sorted) drawCase(c);
  countMarkers();
}

/** Put (or replace, or remove when `hide` or not drawable) one case's marker. */
export function drawCase(c, { fresh = false, hide = false } = {}) {
  if (!caseLayer || !project) return;
  const old = caseLayer.querySelector(`[data-case-id="${CSS.escape(String(c.id))}"]`);
  const group = GROUP_OF[c.state];
  if (hide || !group || typeof c.lon !== "number" || typeof c.lat !== "number") {
    if (old) old.remove();
    countMarkers();
    return;
  }
  const [x, y] = project(c.lon, c.lat);
  const overdue = c.overdue && c.state !== "closed";
  const node = svg(
    "g",
    {
      class: ["marker", `grp-${group}`, overdue && "is-overdue", fresh && "is-fresh"].filter(Boolean).join(" "),
      transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
      "data-testid": "map-marker",
      "data-case-id": c.id,
      "data-state": c.state,
    },
    svg("title", {}, `${c.case_no} · ${STATE_LABELS[c.state] || c.state_label || c.state}${overdue ? " · 超期" : ""}` +
      `${c.address ? `\n${c.address}` : ""}`),
    fresh ? svg("circle", { class: "marker-pulse", r: 9 }) : null,
    overdue ? svg("circle", { class: "marker-ring", r: 13 }) : null,
    svg("circle", { class: "marker-dot", r: c.state === "closed" ? 5.5 : 8 }),
  );
  if (old) old.replaceWith(node);
  else if (c.state === "closed") caseLayer.prepend(node);
  else caseLayer.append(node);
  if (fresh) setTimeout(() => node.classList.remove("is-fresh"), 4000);
  countMarkers();
}

// ---- cameras and speakers ----------------------------------------------------------------------

/** Cameras sit just left of their place and speakers just right: the demo (and many cities) put
 *  a camera's speaker on the same pole. */
const NUDGE = { camera: -8, speaker: 8 };

function deviceNode({ kind, id, name, state, label, lon, lat, onClick }) {
  const [px, y] = project(lon, lat);
  const x = px + NUDGE[kind];
  const shape =
    kind === "camera"
      ? svg("rect", { class: "device-shape", x: -7, y: -7, width: 14, height: 14, rx: 2 })
      : svg("path", { class: "device-shape", d: "M0 -9 L8 6 L-8 6 Z" });
  const node = svg(
    "g",
    {
      class: `device device-${kind} st-${state}`,
      transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
      "data-testid": `map-${kind}`,
      [`data-${kind}-id`]: id,
      "data-status": state,
      role: "button",
      tabindex: 0,
    },
    svg("title", {}, `${kind === "camera" ? "摄像头" : "喇叭"} ${name} · ${label}`),
    shape,
  );
  node.addEventListener("click", onClick);
  node.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && onClick());
  return node;
}

/** Every camera and speaker with a location (reads their signals: run inside an effect). */
function drawDevices() {
  const cams = cameras.value;
  const spks = speakers.value;
  const nodes = [];
  for (const c of cams) {
    if (!c.location) continue;
    const st = camStatusOf(c).state || "unknown";
    nodes.push(deviceNode({
      kind: "camera", id: c.id, name: c.name, state: st, label: camLabel(st),
      lon: c.location.lon, lat: c.location.lat,
      onClick: () => (enlarged.value = c.id),
    }));
  }
  for (const s of spks) {
    if (!s.location || s.active === false) continue;
    const st = spkStatusOf(s).state || "unknown";
    nodes.push(deviceNode({
      kind: "speaker", id: s.id, name: s.name, state: st, label: spkLabel(st),
      lon: s.location.lon, lat: s.location.lat,
      onClick: () => (chosenSpeaker.value = s.id),
    }));
  }
  if (!deviceLayer) return;
  deviceLayer.replaceChildren(...nodes);
  document.body.dataset.devices = String(nodes.length);
}
