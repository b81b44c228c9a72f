// The speaker console (喊话 / 广播喇叭, speakers.html): the street loudspeakers on a list and a map
// with their live status, the clip library, play and stop, push-to-talk, schedules and the log.
//
// Theory of operation: start() asks GET /api/auth/me who is signed in (and the city's time zone);
// a role that may not read speakers gets a plain notice, a viewer gets the page without the
// controls (no play, talk, clip or schedule writes: the API refuses those anyway). The reference
// data come over REST (speakers-state.js); one websocket (live.js connectStores) feeds the two
// state channels, `speakers` (status per speaker) and `warnings` (the running ones). A resync of
// either reloads over REST and puts that answer into the channel's store, so the page never shows
// a status older than the hub's. The parts:
//   speakers-list.js       list, filters, group choice, the map (gridmap.js)
//   speakers-clips.js      the clip library (preview, upload, TTS, delete)
//   speakers-play.js       play panel and the running warnings (per-speaker outcomes, 停止)
//   speakers-talk.js       push-to-talk over WebRTC
//   speakers-schedules.js  schedules
//   speakers-log.js        the log
import { connectStores, createLiveIndicator } from "./live.js";
import { showError } from "./notify.js";
import { ClipLibrary } from "./speakers-clips.js";
import { SpeakerList, SpeakerMap, loadMap } from "./speakers-list.js";
import { LogList, reloadLog } from "./speakers-log.js";
import { PlayPanel, RunningList } from "./speakers-play.js";
import { ScheduleList } from "./speakers-schedules.js";
import {
  READ_ROLES,
  canControl,
  followRunning,
  liveStatus,
  loadClips,
  loadGroups,
  loadSchedules,
  loadSpeakers,
  log,
  running,
  speakers,
  user,
} from "./speakers-state.js";
import { TalkPanel } from "./speakers-talk.js";
import { signIn } from "./page.js";
import { html, render, signal } from "./ui.js";

const TABS = [
  ["clips", "录音库"],
  ["schedules", "定时播放"],
  ["log", "播放记录"],
];
const tab = signal(new URLSearchParams(location.search).get("tab") || "clips");

function Tabs() {
  const current = TABS.some(([k]) => k === tab.value) ? tab.value : "clips";
  return html`<section class="spk-panel spk-tabs-panel">
    <div class="spk-tabs" role="tablist">
      ${TABS.map(
        ([key, label]) => html`<button type="button" key=${key} role="tab" data-testid=${`tab-${key}`}
                                       class=${`spk-tab${key === current ? " active" : ""}`}
                                       aria-selected=${key === current} onClick=${() => (tab.value = key)}>
          ${label}</button>`,
      )}
    </div>
    <div class="spk-tab-body" role="tabpanel">
      ${current === "clips" && html`<${ClipLibrary} />`}
      ${current === "schedules" && html`<${ScheduleList} />`}
      ${current === "log" && html`<${LogList} />`}
    </div>
  </section>`;
}

function Console() {
  return html`<div class="spk-layout" data-testid="speaker-console" data-can-control=${String(canControl.value)}>
    <div class="spk-col spk-col-left"><${SpeakerList} /></div>
    <div class="spk-col spk-col-mid">
      <${SpeakerMap} />
      ${canControl.value
        ? html`<${PlayPanel} /><${TalkPanel} />`
        : html`<p class="banner banner-warn" data-testid="read-only-note">
            只读账号：可以查看喇叭状态、录音和播放记录，不能播放、喊话或修改。</p>`}
      <${RunningList} />
    </div>
    <div class="spk-col spk-col-right"><${Tabs} /></div>
  </div>`;
}

// ---- resyncs: the REST answer goes into the channel's store ------------------------------------

async function resyncSpeakers() {
  try {
    await loadSpeakers();
  } catch (err) {
    showError(`喇叭列表加载失败：${err.message}`);
    return;
  }
  const data = {};
  for (const s of speakers.peek()) if (s.status) data[String(s.id)] = { ...s.status, id: s.id };
  liveStatus.onEnvelope({ type: "snapshot", data });
}

async function resyncWarnings() {
  await reloadLog();
  const data = {};
  for (const w of log.peek()) if (w.state === "running") data[String(w.id)] = w;
  running.onEnvelope({ type: "snapshot", data });
}

// ---- start-up ----------------------------------------------------------------------------------

async function start() {
  const who = await signIn();
  if (!who) return;
  const app = document.getElementById("app");
  if (!READ_ROLES.has(who.user.role)) {
    render(html`<p class="banner banner-warn spk-denied" data-testid="speakers-denied">
      您的账号没有使用喊话控制台的权限。</p>`, app);
    return;
  }
  user.value = who.user;
  render(html`<${Console} />`, app);

  liveStatus.onResync = resyncSpeakers;
  running.onResync = resyncWarnings;
  const live = connectStores([liveStatus, running], { channels: ["speakers", "warnings"] });
  document.getElementById("live-slot").replaceWith(createLiveIndicator(live));
  window.cityhubLive = live; // diagnostics (and the browser tests)
  followRunning();
  loadMap();

  const parts = [
    ["喇叭列表", loadSpeakers()],
    ["喇叭分组", loadGroups()],
    ["录音库", loadClips()],
    ["定时播放", loadSchedules()],
  ];
  // The running list starts from the log's running entries when the channel has said nothing yet
  // (its snapshot, when it comes, replaces them).
  reloadLog().then(() => {
    if (running.ready.peek()) return;
    const data = {};
    for (const w of log.peek()) if (w.state === "running") data[String(w.id)] = w;
    running.onEnvelope({ type: "snapshot", data });
  });
  const results = await Promise.allSettled(parts.map(([, p]) => p));
  const failed = results
    .map((r, i) => (r.status === "rejected" ? `${parts[i][0]}：${r.reason.message}` : null))
    .filter(Boolean);
  if (failed.length) showError(`加载失败：${failed.join("；")}`);
}

start();
