// The 12319 hotline agent console (坐席控制台, hotline.html) and its queue board; with ?view=board the
// board alone, for the big screen.
//
// Theory of operation: start() asks GET /api/auth/me who is signed in (and the city's time zone).
// Agents and admins get the console; seats, dispatchers and the viewer account are sent to the
// board view (they may watch the queue, not take calls); other roles get a plain notice. One
// websocket (live.js connectStores) feeds the `queue` and `agents` state channels; GET
// /api/hotline/board seeds them before their snapshots and reloads them on a resync. The parts:
//   hotline-state.js    shared signals: the channel stores, this agent's state, the current call
//   hotline-agent.js    the agent bar: 签入/签出, 示闲/示忙 (reason), the wrap-up countdown
//   hotline-call.js     the 来电 banner, answering over WebRTC, the in-call panel
//   hotline-ring.js     the ring (WebAudio) while the phone rings
//   hotline-caller.js   the caller's open cases and earlier calls, 新建案件, 关联案件
//   hotline-wrapup.js   话后小结 (disposition, note, 咨询), 保存 / 保存并示闲
//   hotline-records.js  my calls today with their recordings, the callback list
//   hotline-board.js    the queue board (panel and big screen)
import { AgentBar } from "./hotline-agent.js";
import { CallAudio, CallPanel, RingBanner } from "./hotline-call.js";
import { CallerPanel } from "./hotline-caller.js";
import { followRing } from "./hotline-ring.js";
import { QueueBoard } from "./hotline-board.js";
import { Callbacks, MyCalls, followRecords, lastUndisposed, reloadCallbacks, reloadCalls } from "./hotline-records.js";
import {
  AGENT_ROLES,
  BOARD_ROLES,
  agents,
  consoleError,
  followMine,
  lastCall,
  loadBoard,
  loadMe,
  mine,
  queue,
  user,
} from "./hotline-state.js";
import { WrapUpPanel } from "./hotline-wrapup.js";
import { connectStores, createLiveIndicator } from "./live.js";
import { showError } from "./notify.js";
import { signIn } from "./page.js";
import { html, render } from "./ui.js";

const params = new URLSearchParams(location.search);

function Console() {
  return html`<div class="hl-layout" data-testid="hotline-console">
    <${CallAudio} />
    <div class="hl-col hl-col-main">
      <${AgentBar} />
      <${RingBanner} />
      <${CallPanel} />
      <${WrapUpPanel} />
      <${CallerPanel} />
    </div>
    <div class="hl-col hl-col-side">
      <${QueueBoard} />
      <${MyCalls} />
      <${Callbacks} />
    </div>
  </div>`;
}

async function start() {
  const who = await signIn();
  if (!who) return;
  const app = document.getElementById("app");
  app.textContent = ""; // the 正在加载… placeholder goes; Preact draws into an empty <main>
  const role = who.user.role;
  if (!BOARD_ROLES.has(role)) {
    render(html`<p class="banner banner-warn hl-denied" data-testid="hotline-denied">
      您的账号没有使用 12319 热线坐席控制台和排队看板的权限。</p>`, app);
    return;
  }
  user.value = who.user;
  const agent = AGENT_ROLES.has(role);
  const boardOnly = !agent || params.get("view") === "board";
  if (boardOnly && params.get("view") !== "board") history.replaceState(null, "", "/hotline?view=board");
  document.getElementById("nav-console").hidden = !agent || !boardOnly;
  document.getElementById("nav-big-board").hidden = boardOnly;
  document.body.classList.toggle("hotline-big", boardOnly);
  if (boardOnly) document.title = "12319 排队看板 · 数字城管监督指挥平台";

  queue.onResync = () => loadBoard({ force: true });
  agents.onResync = () => loadBoard({ force: true });
  const live = connectStores([queue, agents], { channels: ["queue", "agents"] });
  document.getElementById("live-slot").replaceWith(createLiveIndicator(live));
  window.cityhubLive = live; // diagnostics (and the browser tests)

  if (boardOnly) {
    render(html`<div class="hl-big-wrap" data-testid="hotline-board-view"><${QueueBoard} big=${true} /></div>`, app);
    await loadBoard();
    return;
  }
  render(html`<${Console} />`, app);
  followMine();
  followRing();
  followRecords();
  const parts = [
    ["坐席状态", loadMe()],
    ["排队看板", loadBoard()],
    ["今日通话", reloadCalls()],
    ["待回拨", reloadCallbacks()],
  ];
  const results = await Promise.allSettled(parts.map(([, p]) => p));
  const failed = results
    .map((r, i) => (r.status === "rejected" ? `${parts[i][0]}：${r.reason.message}` : null))
    .filter(Boolean);
  if (failed.length) showError(`加载失败：${failed.join("；")}`);
  if (results[0].status === "rejected") consoleError.value = results[0].reason.message;
  // Reloaded during 话后整理: the wrap-up form is for the newest call still without one.
  const pending = lastUndisposed();
  if (pending && !lastCall.peek() && mine.peek().state === "wrap_up") {
    lastCall.value = { id: pending.id, call: null, caller: pending.caller, case: pending.case };
  }
}

start();
