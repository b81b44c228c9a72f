// The video wall (视频墙, wall.html): camera thumbnails on 1 … 48 tiles, a camera tree, live video
// for an enlarged tile, snapshots to cases, voice warnings at a camera's speaker, named layouts,
// several windows as one wall, and patrol rounds.
//
// Theory of operation: start() asks GET /api/auth/me who is signed in (and the city's time zone);
// a role that may not read cameras gets a plain notice, a viewer the wall without the snapshot,
// warning and patrol controls (the API refuses those anyway). The cameras come from
// GET /api/cameras; one websocket (live.js connectStores) feeds the `cameras` state channel
// (status per camera) and the `patrol` channel (the seat's round). A resync of `cameras` reloads
// the list and puts its statuses into the store. The parts:
//   wall-state.js    shared signals, the layout shared across windows (BroadcastChannel)
//   wall-tile.js     the grid and the tiles' thumbnail polling
//   wall-tree.js     the camera tree and search (drag and drop, click to place)
//   wall-live.js     the enlarged live view (WebRTC)
//   wall-actions.js  截图立案 and 喊话
//   wall-layouts.js  the toolbar: tile counts, named layouts, 新窗口
//   wall-patrol.js   patrol rounds, reports and the 漏巡 list
import { connectStores, createLiveIndicator } from "./live.js";
import { showError } from "./notify.js";
import { ActionDialog, SnapshotResult } from "./wall-actions.js";
import { Toolbar, loadLayouts } from "./wall-layouts.js";
import { LiveView } from "./wall-live.js";
import { PatrolPanel, followPatrol, loadCurrentRound } from "./wall-patrol.js";
import {
  READ_ROLES,
  camStatus,
  cameraById,
  camerasReady,
  canControl,
  cameras,
  joinWindows,
  loadCameras,
  patrolStore,
  screenNo,
  user,
} from "./wall-state.js";
import { WallGrid } from "./wall-tile.js";
import { CameraTree } from "./wall-tree.js";
import { signIn } from "./page.js";
import { effect, html, render, signal } from "./ui.js";

const treeOpen = signal(screenNo === 1);

function Wall() {
  return html`<div class=${`wall-layout${treeOpen.value ? "" : " tree-closed"}`} data-testid="video-wall"
                   data-can-control=${String(canControl.value)} data-screen=${screenNo}>
    <aside class="wall-side">${treeOpen.value && html`<${CameraTree} />`}</aside>
    <div class="wall-main">
      <div class="wall-bar">
        <button type="button" class="btn btn-small" data-testid="tree-toggle"
                onClick=${() => (treeOpen.value = !treeOpen.value)}>${treeOpen.value ? "收起列表" : "摄像头列表"}</button>
        <${Toolbar} />
        <${PatrolPanel} />
        <${SnapshotResult} />
      </div>
      ${!canControl.value &&
      html`<p class="banner banner-warn wall-readonly" data-testid="read-only-note">
        只读账号：可以查看视频墙，不能截图立案、喊话或轮巡。</p>`}
      <div class="wall-stage">
        <${WallGrid} />
        <${LiveView} />
      </div>
    </div>
    <${ActionDialog} />
  </div>`;
}

async function resyncCameras() {
  try {
    await loadCameras();
  } catch (err) {
    showError(`摄像头列表加载失败：${err.message}`);
    return;
  }
  const data = {};
  for (const c of cameras.peek()) if (c.status) data[String(c.id)] = c.status;
  camStatus.onEnvelope({ type: "snapshot", data });
}

/** A status for a camera the list does not have (one added meanwhile): read the list again. */
function followNewCameras() {
  let pending = null;
  effect(() => {
    const keys = camStatus.keys.value;
    const known = cameraById.value;
    if (!camerasReady.value || pending) return;
    if (keys.some((k) => !known.has(Number(k)))) {
      pending = setTimeout(() => {
        loadCameras().catch(() => {}).finally(() => (pending = null));
      }, 1000);
    }
  });
}

async function start() {
  const who = await signIn();
  if (!who) return;
  const app = document.getElementById("app");
  if (!READ_ROLES.has(who.user.role)) {
    render(html`<p class="banner banner-warn wall-denied" data-testid="wall-denied">
      您的账号没有使用视频墙的权限。</p>`, app);
    return;
  }
  user.value = who.user;
  if (screenNo > 1) document.title = `视频墙 第 ${screenNo} 屏 · 数字城管监督指挥平台`;
  joinWindows();
  render(html`<${Wall} />`, app);

  camStatus.onResync = resyncCameras;
  const channels = canControl.peek() ? ["cameras", "patrol"] : ["cameras"];
  const live = connectStores([camStatus, patrolStore], { channels });
  document.getElementById("live-slot").replaceWith(createLiveIndicator(live));
  window.cityhubLive = live; // diagnostics (and the browser tests)
  followPatrol();
  followNewCameras();

  const parts = [
    ["摄像头列表", loadCameras()],
    ["已存布局", loadLayouts()],
  ];
  if (canControl.peek()) parts.push(["轮巡", loadCurrentRound()]);
  const results = await Promise.allSettled(parts.map(([, p]) => p));
  const failed = results
    .map((r, i) => (r.status === "rejected" ? `${parts[i][0]}：${r.reason.message}` : null))
    .filter(Boolean);
  if (failed.length) showError(`加载失败：${failed.join("；")}`);
}

start();
