// The operations picture (指挥大屏, 1920x1080, ops.html): the four flows on one screen - cases,
// video, voice warnings and the 12319 hotline - with this week's evaluation and the alarms. Built
// to run unattended for days: every part recovers from a dropped websocket on its own.
//
// Theory of operation: start() asks GET /api/auth/me who is signed in (and the city's time zone),
// then opens one websocket (live.js connectStores) for the channels this user may see among
// `cases`, `queue`, `agents`, `cameras`, `speakers`, `warnings` and `alarms`. After a reconnect the
// case stream resumes where it left off (or resyncs: the cases are loaded again), and the state
// channels send fresh snapshots, which replace what their stores held; a state channel's resync
// reloads its REST list. The evaluation widgets are read every minute, the cases again every
// RELOAD_MS (a safety net for days-long runs) and at the city's midnight. A role not in OPS_ROLES
// (the 12319 agents) gets a plain notice instead, and the page asks nothing more. The parts:
//   ops-map.js     the grid map with the case, camera and speaker markers
//   ops-cases.js   open and today's cases, counters, state bars, ticker, overdue by department
//   ops-panels.js  evaluation widgets, warnings now, alarms, the camera and speaker overlays
//   hotline-board.js (reused) the queue board; speakers-play.js (reused) the running warnings;
//   wall-live.js (reused) the live tile
import { me } from "./api.js";
import { setCityTimeZone, zonedParts } from "./dom.js";
import { QueueBoard } from "./hotline-board.js";
import { BOARD_ROLES, agents, loadBoard, queue } from "./hotline-state.js";
import { roleLabel } from "./labels.js";
import { connectStores, createLiveIndicator } from "./live.js";
import { showError } from "./notify.js";
import { dayChanged, loadCases, onCaseEvent } from "./ops-cases.js";
import { loadMap } from "./ops-map.js";
import {
  Alarms,
  CameraOverlay,
  EvalCity,
  OverdueByDept,
  REFRESH_MS,
  SpeakerDialog,
  WarningsNow,
  WorstDepartments,
  alarms,
  loadAlarms,
  loadEvaluation,
} from "./ops-panels.js";
import { liveStatus, loadSpeakers, running, speakers, user as speakerUser } from "./speakers-state.js";
import { html, render } from "./ui.js";
import { READ_ROLES, camStatus, cameras, loadCameras, user as wallUser } from "./wall-state.js";

/** Who may open the big screen: the roles GET /api/cases/markers serves (hub/web/routes/markers.py
 * MARKER_READERS). The 12319 agents are not among them (nor among the evaluation's and the alarms'
 * readers): they work the hotline console, which has its own queue board. */
export const OPS_ROLES = new Set(["admin", "seat", "dispatcher", "viewer", "department", "supervisor"]);
const RELOAD_MS = 15 * 60_000;
const WANTED = ["cases", "queue", "agents", "cameras", "speakers", "warnings", "alarms"];
const WEEKDAYS = "日一二三四五六";

function mount(id, component) {
  const node = document.getElementById(id);
  if (node) render(html`<${component} />`, node);
}

/** The REST list's statuses into a state store (a resync, or a store the channel has not filled). */
function statusSnapshot(store, items) {
  const data = {};
  for (const x of items) if (x.status) data[String(x.id)] = x.status;
  store.onEnvelope({ type: "snapshot", data });
}

async function reloadCameras() {
  await loadCameras();
  statusSnapshot(camStatus, cameras.peek());
}

async function reloadSpeakers() {
  await loadSpeakers();
  statusSnapshot(liveStatus, speakers.peek());
}

const failed = (what) => (err) => showError(`${what}加载失败：${err.message}`);

const NoAccess = ({ what }) => html`<section class="ops-panel"><div class="ops-panel-head"><h2>${what}</h2></div>
  <p class="ops-empty" data-testid="ops-no-access">您的账号无权查看${what}</p></section>`;

/** The notice a role that may not open the big screen gets, in place of the whole picture. */
function deny(u) {
  const main = document.querySelector(".ops-main");
  main.textContent = "";
  main.classList.add("ops-main-denied");
  const link = u.role === "agent"
    ? html` <a href="/hotline" data-testid="ops-denied-link">前往 12319 热线坐席控制台</a>`
    : "";
  render(html`<p class="banner banner-warn ops-denied" data-testid="ops-denied">
    您的账号（${u.role_label || roleLabel(u.role)}）没有查看运行态势大屏的权限。${link}</p>`, main);
}

let reloadTimer = null;
function scheduleCaseReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadCases(), 300);
}

async function start() {
  let who;
  try {
    who = await me();
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return;
  }
  setCityTimeZone(who.timezone);
  startClock();
  const u = who.user;
  wallUser.value = u;
  speakerUser.value = u;
  document.getElementById("ops-user").textContent = u.display_name || u.username;
  if (!OPS_ROLES.has(u.role)) {
    deny(u);
    return;
  }

  mount("eval-slot", EvalCity);
  mount("worst-slot", WorstDepartments);
  mount("overdue-slot", OverdueByDept);
  const hotline = BOARD_ROLES.has(u.role);
  const devices = READ_ROLES.has(u.role); // cameras and speakers: the same roles read both
  mount("board-slot", hotline ? QueueBoard : () => html`<${NoAccess} what="12319 排队看板" />`);
  mount("warnings-slot", devices ? WarningsNow : () => html`<${NoAccess} what="正在进行的喊话" />`);
  mount("alarms-slot", Alarms);
  mount("overlay-slot", () => html`<${CameraOverlay} /><${SpeakerDialog} />`);

  camStatus.onResync = () => reloadCameras().catch(failed("摄像头"));
  liveStatus.onResync = () => reloadSpeakers().catch(failed("喇叭"));
  queue.onResync = () => loadBoard({ force: true });
  agents.onResync = () => loadBoard({ force: true });
  const live = connectStores([queue, agents, camStatus, liveStatus, running, alarms], {
    channels: (info) => {
      const may = new Set([...(info.channels || []), ...(info.state_channels || [])]);
      // Without `cases` (department staff), the case channels this user may see (dept:N).
      const caseChannels = may.has("cases") ? [] : info.channels || [];
      return [...WANTED.filter((c) => may.has(c)), ...caseChannels];
    },
    onEvent: onCaseEvent,
    onResync: (channel) => channel === "cases" && scheduleCaseReload(),
  });
  document.getElementById("live-slot").replaceWith(createLiveIndicator(live));
  window.cityhubLive = live; // diagnostics for the operator's console (and the browser tests)

  const refresh = () => {
    loadEvaluation();
    loadAlarms();
  };
  refresh();
  setInterval(refresh, REFRESH_MS);
  if (hotline) loadBoard();
  if (devices) {
    loadCameras().catch(failed("摄像头"));
    loadSpeakers().catch(failed("喇叭"));
  }
  try {
    await loadMap();
  } catch (err) {
    showError(`网格数据加载失败：${err.message}`);
  }
  await loadCases();
  setInterval(() => dayChanged() && loadCases(), 30_000);
  // A safety net for days-long runs: lists that the channels do not carry (new cameras, speakers,
  // agents' names) and the cases, read again now and then.
  setInterval(() => {
    loadCases();
    if (hotline) loadBoard();
    if (devices) {
      loadCameras().catch(() => {});
      loadSpeakers().catch(() => {});
    }
  }, RELOAD_MS);
}

function startClock() {
  const node = document.getElementById("ops-clock");
  const pad = (n) => String(n).padStart(2, "0");
  const tick = () => {
    const d = new Date();
    const p = zonedParts(d);
    node.textContent =
      `${p.year}年${pad(p.month)}月${pad(p.day)}日 星期${WEEKDAYS[p.weekday]} ` +
      `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
    node.setAttribute("datetime", d.toISOString());
  };
  tick();
  setTimeout(() => {
    tick();
    setInterval(tick, 1000);
  }, 1000 - (Date.now() % 1000));
}

start();
