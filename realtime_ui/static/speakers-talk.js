// The speaker console's push-to-talk: hold the button to speak live through the chosen speakers.
//
// Theory of operation: pressing (pointer or Space/Enter) asks the browser for the microphone
// (getUserMedia({audio: true}); only secure pages get it: HTTPS, or http on localhost), opens an
// RTCPeerConnection that only sends audio, waits for its ICE candidates (the hub does not trickle),
// and sends the offer with the selection: POST /api/talk {sdp, speaker_ids, group_ids} answers
// {talk_id, warning_id, sdp}, which is applied as the remote answer. Releasing sends
// POST /api/talk/{talk_id}/stop and closes the peer and the microphone. A release during set-up is
// remembered and honoured as soon as the set-up finishes (or fails), so a short tap never leaves a
// live microphone behind. The talk is a warning of kind "live": its speakers' outcomes appear in the
// running list like any other.
import { api } from "./api.js";
import { canControl, selectionBody, targetIds, upsertLog } from "./speakers-state.js";
import { html, signal } from "./ui.js";

const ICE_WAIT_MS = 3000;
/** A talk request the hub does not answer in this time is given up (the button must come back). */
const REQUEST_MS = 15_000;

function timeoutSignal(ms) {
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), ms);
  return ctl.signal;
}

/** "idle" | "starting" | "live" | "stopping" */
export const talkState = signal("idle");
/** The peer connection's state while talking (RTCPeerConnection.connectionState), or "". */
const peerState = signal("");
const talkError = signal("");

/** Whether this page may use the microphone at all (a secure context with mediaDevices). */
export function micAllowed() {
  return Boolean(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

let session = null; // {pc, stream, talkId, released}

function waitIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ICE_WAIT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function teardown(s) {
  try {
    s.pc?.close();
  } catch {
    // closed already
  }
  for (const t of s.stream?.getTracks() || []) t.stop();
}

async function press() {
  if (session || !canControl.peek()) return;
  if (!micAllowed()) {
    talkError.value = "当前页面不是安全连接，浏览器不允许使用麦克风。请通过 https:// 地址（或在本机用 localhost）打开本页。";
    return;
  }
  if (targetIds.peek().size === 0) {
    talkError.value = "请先选择喇叭或分组";
    return;
  }
  const s = { pc: null, stream: null, talkId: null, released: false };
  session = s;
  talkError.value = "";
  talkState.value = "starting";
  try {
    s.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    if (s.released) throw new Error("released");
    s.pc = new RTCPeerConnection({ iceServers: [] });
    const pc = s.pc;
    pc.addEventListener("connectionstatechange", () => {
      if (session === s) peerState.value = pc.connectionState;
    });
    for (const track of s.stream.getAudioTracks()) {
      s.pc.addTransceiver(track, { direction: "sendonly", streams: [s.stream] });
    }
    await s.pc.setLocalDescription(await s.pc.createOffer());
    await waitIce(s.pc);
    if (s.released) throw new Error("released");
    const res = await api("/api/talk", {
      method: "POST",
      body: { sdp: s.pc.localDescription.sdp, ...selectionBody() },
      signal: timeoutSignal(REQUEST_MS),
    });
    s.talkId = res.talk_id;
    await s.pc.setRemoteDescription({ type: "answer", sdp: res.sdp });
    if (s.released) {
      await finish(s);
      return;
    }
    talkState.value = "live";
  } catch (err) {
    if (s.talkId !== null) {
      await finish(s);
      if (err.message !== "released") talkError.value = `实时喊话失败：${err.message}`;
      return;
    }
    teardown(s);
    if (session === s) session = null;
    talkState.value = "idle";
    if (err.message === "released") return;
    if (err.name === "AbortError") talkError.value = "服务器未响应，实时喊话未能接通";
    else if (err.name === "NotAllowedError") talkError.value = "麦克风权限被拒绝，请在浏览器中允许本页使用麦克风";
    else if (err.name === "NotFoundError") talkError.value = "未检测到麦克风";
    else talkError.value = err.message || "实时喊话失败";
  }
}

async function finish(s) {
  talkState.value = "stopping";
  try {
    if (s.talkId !== null) {
      const w = await api(`/api/talk/${encodeURIComponent(s.talkId)}/stop`, {
        method: "POST",
        signal: timeoutSignal(REQUEST_MS),
      });
      if (w && typeof w === "object" && typeof w.id === "number") upsertLog(w);
    }
  } catch (err) {
    talkError.value = err.name === "AbortError" ? "结束喊话时服务器未响应" : `结束喊话失败：${err.message}`;
  } finally {
    teardown(s);
    if (session === s) session = null;
    talkState.value = "idle";
    peerState.value = "";
  }
}

function release() {
  const s = session;
  if (!s || s.released) return;
  s.released = true;
  if (talkState.peek() === "live") finish(s);
  // during set-up: press() sees `released` and ends it
}

// A talk must not outlive its page.
window.addEventListener("pagehide", release);

const WORDS = { idle: "按住说话", starting: "正在接通…", live: "正在喊话，松开结束", stopping: "正在结束…" };

export function TalkPanel() {
  const state = talkState.value;
  const secure = micAllowed();
  const key = (down) => (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (e.repeat) return;
    if (down) press();
    else release();
  };
  return html`<section class="spk-panel talk-panel" aria-label="实时喊话" data-testid="talk-panel">
    <div class="spk-panel-head"><h2>实时喊话</h2>
      <span class="muted" data-testid="talk-target">${targetIds.value.size ? `${targetIds.value.size} 个喇叭` : "未选择喇叭"}</span></div>
    ${!secure &&
    html`<div class="banner banner-warn" role="note" data-testid="talk-insecure">
      当前页面不是安全连接（HTTPS），浏览器不允许使用麦克风，无法实时喊话。
      请通过 https:// 地址打开本页（在本机调试可用 http://localhost）。</div>`}
    ${talkError.value &&
    html`<div class="banner banner-error" role="alert" data-testid="talk-error">${talkError.value}</div>`}
    <button type="button" class=${`btn talk-button talk-${state}`} data-testid="talk-button" data-state=${state}
            data-peer=${peerState.value}
            disabled=${!secure || state === "stopping"} aria-pressed=${state === "live"}
            onPointerDown=${(e) => {
              e.currentTarget.setPointerCapture?.(e.pointerId);
              press();
            }}
            onPointerUp=${release} onPointerCancel=${release} onLostPointerCapture=${release}
            onKeyDown=${key(true)} onKeyUp=${key(false)} onBlur=${release}
            onContextMenu=${(e) => e.preventDefault()}>
      ${WORDS[state]}</button>
  </section>`;
}
