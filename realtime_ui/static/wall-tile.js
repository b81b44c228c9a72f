// The wall's tiles: a CSS grid of 1 … 48 tiles filling the window, each showing its camera's
// thumbnail, name, status and the capture age.
//
// Theory of operation: a tile with a camera runs one polling loop. Each turn is a single
// GET /api/cameras/{id}/thumbnail with If-None-Match (the last ETag): 200 brings a new JPEG (shown
// through an object URL, the previous one revoked) and its X-Captured-At, 304 means nothing new,
// 409 means no picture yet. The next turn starts a second after the previous one started, and only
// after it ended: never more than one request in flight per tile. A tile that cannot be seen (the
// window hidden, or the tile scrolled off: IntersectionObserver) stops after its current request
// and starts again when it is seen; so do all tiles while the enlarged view covers them. Each answer is written into `freshness` for patrol reports.
// Drag a camera from the tree onto a tile (HTML5 drag and drop), or click a tile and then a camera;
// a double click enlarges the tile to live video (wall-live.js).
import { openAction } from "./wall-actions.js";
import { enlarged } from "./wall-live.js";
import {
  ageText,
  assignTile,
  cameraById,
  canControl,
  freshness,
  now,
  round,
  screenCameras,
  selectedTile,
  statusLabel,
  statusOf,
  wall,
} from "./wall-state.js";
import { html, useEffect, useRef, useSignal } from "./ui.js";

const PERIOD_MS = 1000;
export const DRAG_TYPE = "application/x-cityhub-camera";

/** The polling loop of one tile; `pic` receives {url, capturedAt, error}. */
function pollThumbnail(cameraId, node, pic) {
  let stopped = false;
  let timer = null;
  let inFlight = false;
  let onScreen = true;
  let etag = null;
  let url = null;
  const ctl = new AbortController();
  // Seen: the window shown, the tile on screen and not covered by the enlarged view.
  const seen = () => onScreen && !document.hidden && enlarged.peek() === null;
  const why = () => (document.hidden ? "窗口不可见" : enlarged.peek() !== null ? "正在放大查看" : "不在屏幕内");

  function note(ok, reason) {
    const prev = freshness.get(cameraId) || { okAt: 0 };
    freshness.set(cameraId, {
      okAt: ok ? Date.now() : prev.okAt,
      visible: seen(),
      reason: ok ? null : reason,
    });
  }

  function schedule(ms) {
    if (stopped || timer !== null || inFlight) return;
    timer = setTimeout(turn, ms);
  }

  async function turn() {
    timer = null;
    if (stopped) return;
    if (!seen()) {
      note(false, why());
      return; // woken by visibility
    }
    inFlight = true;
    const started = performance.now();
    try {
      const resp = await fetch(`/api/cameras/${cameraId}/thumbnail`, {
        headers: etag ? { "If-None-Match": etag } : {},
        cache: "no-store",
        credentials: "same-origin",
        signal: ctl.signal,
      });
      if (resp.status === 200) {
        const blob = await resp.blob();
        if (stopped) return;
        const next = URL.createObjectURL(blob);
        if (url) URL.revokeObjectURL(url);
        url = next;
        etag = resp.headers.get("ETag");
        pic.value = { url, capturedAt: resp.headers.get("X-Captured-At"), error: null };
        note(true);
      } else if (resp.status === 304) {
        note(true);
      } else if (resp.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      } else {
        let msg = resp.status === 409 ? "暂无画面" : `画面获取失败（${resp.status}）`;
        try {
          const body = await resp.json();
          msg = body?.error?.message || msg;
        } catch {
          // not JSON
        }
        if (url) URL.revokeObjectURL(url);
        url = null;
        etag = null;
        pic.value = { url: null, capturedAt: null, error: msg };
        note(false, msg);
      }
    } catch (err) {
      if (stopped) return;
      note(false, "网络连接失败");
      pic.value = { ...pic.peek(), error: pic.peek().url ? null : "网络连接失败" };
    } finally {
      inFlight = false;
    }
    schedule(Math.max(0, PERIOD_MS - (performance.now() - started)));
  }

  const wake = () => {
    if (seen()) schedule(0);
    else note(false, why());
  };
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) onScreen = e.isIntersecting;
    wake();
  });
  io.observe(node);
  document.addEventListener("visibilitychange", wake);
  const unsubscribe = enlarged.subscribe(wake);
  schedule(0);
  return () => {
    stopped = true;
    ctl.abort();
    clearTimeout(timer);
    io.disconnect();
    document.removeEventListener("visibilitychange", wake);
    unsubscribe();
    if (url) URL.revokeObjectURL(url);
    freshness.delete(cameraId);
  };
}

function Tile({ index, cameraId }) {
  const ref = useRef(null);
  const pic = useSignal({ url: null, capturedAt: null, error: null });
  useEffect(() => {
    pic.value = { url: null, capturedAt: null, error: null };
    if (cameraId === null) return undefined;
    return pollThumbnail(cameraId, ref.current, pic);
  }, [cameraId]);

  const cam = cameraId === null ? null : cameraById.value.get(cameraId);
  const st = statusOf(cam);
  const p = pic.value;
  const patrol = !!round.value;
  const chosen = selectedTile.value === index;
  const drop = (e) => {
    e.preventDefault();
    const id = Number(e.dataTransfer.getData(DRAG_TYPE) || e.dataTransfer.getData("text/plain"));
    if (Number.isInteger(id) && id > 0 && !patrol) assignTile(index, id);
  };
  return html`<div ref=${ref} class=${`wall-tile${chosen ? " chosen" : ""}${cameraId === null ? " empty" : ""}`}
      data-testid="wall-tile" data-index=${index} data-camera-id=${cameraId ?? ""}
      data-status=${cam ? st.state : ""} data-captured-at=${p.capturedAt || ""}
      onClick=${() => (selectedTile.value = chosen ? null : index)}
      onDblClick=${() => cameraId !== null && (enlarged.value = cameraId)}
      onDragOver=${(e) => !patrol && e.preventDefault()} onDrop=${drop}>
    ${p.url
      ? html`<img class="wall-thumb" data-testid="tile-thumb" src=${p.url} alt=${cam ? cam.name : ""} draggable="false" />`
      : html`<div class="wall-nopic" data-testid="tile-nopic">
          ${cameraId === null ? (chosen ? "请在左侧点选摄像头" : "拖入摄像头") : p.error || "正在加载…"}</div>`}
    ${cameraId !== null &&
    html`<div class="wall-caption">
      <span class="wall-name" data-testid="tile-name">${cam ? cam.name : `摄像头 ${cameraId}`}</span>
      <span class=${`wall-status st-${st.state}`} data-testid="tile-status" title=${st.message || st.reason || ""}>
        ${statusLabel(st.state)}${st.state === "offline" && (st.message || st.reason) ? `（${st.message || st.reason}）` : ""}</span>
      <span class="wall-age" data-testid="tile-age">${ageText(p.capturedAt, now.value)}</span>
    </div>
    <div class="wall-tile-tools" onClick=${(e) => e.stopPropagation()}>
      ${canControl.value &&
      html`<button type="button" class="btn btn-small" data-testid="tile-snapshot"
                   onClick=${() => openAction("snapshot", cameraId)}>截图立案</button>
        <button type="button" class="btn btn-small" data-testid="tile-warning"
                disabled=${!cam || !cam.speaker_id} title=${cam && !cam.speaker_id ? "附近没有喇叭" : ""}
                onClick=${() => openAction("warning", cameraId)}>喊话</button>`}
      <button type="button" class="btn btn-small" data-testid="tile-enlarge"
              onClick=${() => (enlarged.value = cameraId)}>放大</button>
      ${!patrol &&
      html`<button type="button" class="btn btn-small" data-testid="tile-clear"
                   onClick=${() => assignTile(index, null)}>移除</button>`}
    </div>`}
  </div>`;
}

/** The grid of this window's tiles. */
export function WallGrid() {
  const ids = screenCameras.value;
  return html`<div class=${`wall-grid wall-n-${wall.value.tiles}`} data-testid="wall-grid"
                   data-tiles=${wall.value.tiles}>
    ${ids.map((id, i) => html`<${Tile} key=${i} index=${i} cameraId=${id} />`)}
  </div>`;
}
