// Patrol (轮巡) on the wall: a round shows every camera once within its period, page by page.
//
// Theory of operation: POST /api/patrol/rounds {tiles, period_minutes} starts a round; the round
// ({id, page, pages, cameras_now, cameras_next, page_ends_at, shown, missed, ended}) is what the
// tiles show (wall-state.js screenCameras: this screen's slice of cameras_now). It is kept current
// from the `patrol` state channel (key: the seat's user id), from GET /api/patrol/rounds/current
// when a page's end has passed (and at start-up: a reload resumes the round), and from the seat's
// other windows (BroadcastChannel). Every REPORT_MS each window posts, for the cameras on its
// tiles, whether they had a fresh thumbnail while visible (POST /api/patrol/rounds/{id}/report);
// the hub counts them shown or missed. The 漏巡 list is GET /api/patrol/missed.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import {
  cameraById,
  canControl,
  freshness,
  now,
  patrolStore,
  round,
  screenCameras,
  setRound,
  user,
  wall,
} from "./wall-state.js";
import { effect, html, signal, useSignal } from "./ui.js";

const REPORT_MS = 3000;
/** A thumbnail answered within this time counts as fresh. */
const FRESH_MS = 5000;

const patrolError = signal("");
const missed = signal(null);

export async function loadCurrentRound() {
  try {
    const r = await api("/api/patrol/rounds/current", { redirectOn401: true });
    setRound(r);
  } catch (err) {
    if (err.status === 404) setRound(null);
    else throw err;
  }
}

let lastFetch = 0;
let hadKey = false;
/** Follow the round: the channel, the end of each page, and the reports. */
export function followPatrol() {
  effect(() => {
    const u = user.value;
    if (!u) return;
    patrolStore.keys.value;
    const item = patrolStore.item(String(u.id));
    if (!item) {
      // The hub drops the seat's key when its round ends or stops.
      if (hadKey) setRound(null);
      hadKey = false;
      return;
    }
    hadKey = true;
    const v = item.value;
    if (v && typeof v === "object" && "cameras_now" in v) setRound(v);
  });
  patrolStore.onResync = () => loadCurrentRound().catch(() => {});
  effect(() => {
    const r = round.value;
    const t = now.value;
    if (!r || !r.page_ends_at) return;
    if (t > Date.parse(r.page_ends_at) + 1000 && t - lastFetch > 5000) {
      lastFetch = t;
      loadCurrentRound().catch(() => {});
    }
  });
  setInterval(report, REPORT_MS);
}

async function report() {
  const r = round.peek();
  if (!r || !canControl.peek()) return;
  const t = Date.now();
  const reports = [];
  for (const id of screenCameras.peek()) {
    if (id === null) continue;
    const f = freshness.get(id);
    const visible = !!f && f.visible && !document.hidden && t - f.okAt < FRESH_MS;
    const item = { camera_id: id, visible };
    if (!visible) item.reason = document.hidden ? "窗口不可见" : f?.reason || "画面未更新";
    reports.push(item);
  }
  if (!reports.length) return;
  try {
    const out = await api(`/api/patrol/rounds/${encodeURIComponent(r.id)}/report`, {
      method: "POST",
      body: { reports },
    });
    // The answer is the round advanced to now (the next page when this one has ended).
    if (out && typeof out === "object" && "cameras_now" in out) setRound(out);
  } catch (err) {
    if (err.status === 404 || err.status === 409) loadCurrentRound().catch(() => {});
  }
}

function secondsLeft(iso, t) {
  const s = Math.max(0, Math.round((Date.parse(iso) - t) / 1000));
  if (Number.isNaN(s)) return "";
  return `${Math.floor(s / 60)} 分 ${String(s % 60).padStart(2, "0")} 秒`;
}

function Progress({ r }) {
  return html`<div class="wall-patrol-progress" data-testid="patrol-progress" data-round-id=${r.id}
                   data-page=${r.page} data-pages=${r.pages}>
    <progress max=${r.pages || 1} value=${Math.min(r.page + 1, r.pages || 1)}></progress>
    <span>第 <b data-testid="patrol-page">${r.page + 1}</b> / ${r.pages} 页</span>
    <span>已巡 <b data-testid="patrol-shown">${r.shown}</b></span>
    <span>漏巡 <b data-testid="patrol-missed">${r.missed}</b></span>
    <span class="muted" data-testid="patrol-next">${r.page_ends_at ? `下一页 ${secondsLeft(r.page_ends_at, now.value)}` : ""}</span>
    ${canControl.value &&
    html`<button type="button" class="btn btn-small btn-danger-outline" data-testid="patrol-stop"
                 onClick=${async () => {
                   try {
                     await api(`/api/patrol/rounds/${encodeURIComponent(r.id)}/stop`, { method: "POST" });
                     setRound(null);
                   } catch (err) {
                     patrolError.value = err.message;
                   }
                 }}>停止轮巡</button>`}
  </div>`;
}

const defaultTiles = () => String(Math.max(4, wall.value.tiles));

function StartForm() {
  const tiles = useSignal(""); // until edited: the wall's tile count
  const minutes = useSignal("30");
  const start = async (e) => {
    e.preventDefault();
    patrolError.value = "";
    try {
      const r = await api("/api/patrol/rounds", {
        method: "POST",
        body: { tiles: Number(tiles.peek() || defaultTiles()), period_minutes: Number(minutes.peek()) },
      });
      if (r && "cameras_now" in r) setRound(r);
      else await loadCurrentRound();
    } catch (err) {
      patrolError.value = err.message;
    }
  };
  return html`<form class="wall-patrol-form" data-testid="patrol-form" onSubmit=${start}>
    <label>每页 <input type="number" min="4" max="48" required data-testid="patrol-tiles" value=${tiles.value || defaultTiles()}
                      onInput=${(e) => (tiles.value = e.currentTarget.value)} /> 路</label>
    <label>周期 <input type="number" min="1" max="480" required data-testid="patrol-period" value=${minutes.value}
                      onInput=${(e) => (minutes.value = e.currentTarget.value)} /> 分钟</label>
    <button type="submit" class="btn btn-small btn-primary" data-testid="patrol-start">开始轮巡</button>
  </form>`;
}

function MissedList() {
  const list = missed.value;
  if (list === null) return null;
  const items = list;
  const cams = cameraById.value;
  return html`<div class="wall-missed" data-testid="patrol-missed-list">
    <div class="wall-missed-head"><strong>漏巡记录</strong>
      <button type="button" class="btn btn-small" onClick=${() => (missed.value = null)}>收起</button></div>
    ${!items.length
      ? html`<p class="empty">近期轮巡没有漏巡</p>`
      : html`<ul>${items.map((m, i) => {
          const id = m.camera_id;
          const name = m.camera_name || cams.get(id)?.name || `摄像头 ${id}`;
          return html`<li key=${i} data-testid="missed-item" data-camera-id=${id}>
            <span>${name}</span> <span class="muted">漏巡 ${m.times} 次</span>
            <span class="muted">${m.last_reason || ""}</span>
            <span class="muted">${m.last_at ? fmtTime(m.last_at, { short: true }) : ""}</span></li>`;
        })}</ul>`}
  </div>`;
}

async function showMissed() {
  try {
    const res = await api("/api/patrol/missed");
    missed.value = res.items || [];
  } catch (err) {
    patrolError.value = err.message;
  }
}

export function PatrolPanel() {
  const r = round.value;
  if (!canControl.value && !r) return null;
  return html`<section class="wall-patrol" aria-label="轮巡" data-testid="patrol-panel">
    <strong class="wall-patrol-title">轮巡</strong>
    ${r ? html`<${Progress} r=${r} />` : canControl.value && html`<${StartForm} />`}
    ${canControl.value &&
    html`<button type="button" class="btn btn-small" data-testid="patrol-missed-button" onClick=${showMissed}>漏巡</button>`}
    ${patrolError.value && html`<span class="banner banner-error" role="alert" data-testid="patrol-error">${patrolError.value}</span>`}
    <${MissedList} />
  </section>`;
}
