// The console's call: the 来电 banner while this agent's phone rings, answering in the browser over
// WebRTC, and the in-call panel (the caller's full number, the call timer, 保持/恢复, 静音, 转接,
// 挂断).
//
// Theory of operation: the banner shows when the `agents` channel says this agent is `offered`
// (with the masked number it carries). 接听 opens the
// microphone (getUserMedia audio; only secure pages get it: HTTPS or localhost), makes a sendrecv
// audio RTCPeerConnection, waits until its ICE candidates are gathered (the hub does not trickle),
// POSTs the offer to /api/hotline/live/{call}/answer and applies the answer; the caller's audio
// plays in the one <audio autoplay> element of the page (CallAudio, never rebuilt; the ring is
// hotline-ring.js). 拒接 is
// POST …/decline. The session ends (peer and microphone closed) as soon as the agent's state leaves
// that call: hung up by either side, transferred away, or a failed answer. 静音 only disables the
// local track; 保持 is POST …/hold (music to the caller); 转接 is blind (to a ready agent from the
// `agents` channel, or back to the queue) or attended (咨询转接: then 完成转接 / 取消 via
// …/transfer/end).
import { api } from "./api.js";
import {
  agentList,
  agentName,
  consoleError,
  current,
  fmtSeconds,
  loadMe,
  mine,
  myId,
  now,
  secondsSince,
} from "./hotline-state.js";
import { effect, html, signal, useEffect, useRef, useSignal } from "./ui.js";

const ICE_WAIT_MS = 3000;

/** {pc, stream, call} while this page has a call up (or is answering one). */
const session = signal(null);
export const callPhase = signal("idle"); // idle | answering | live
const peerState = signal("");
const remoteStream = signal(null);
const muted = signal(false);
const held = signal(false);
/** The pending attended transfer ({to}) or null. */
const consulting = signal(null);
const callError = signal("");

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

function teardown() {
  const s = session.peek();
  session.value = null;
  if (s) {
    try {
      s.pc?.close();
    } catch {
      // closed already
    }
    for (const t of s.stream?.getTracks() || []) t.stop();
  }
  remoteStream.value = null;
  callPhase.value = "idle";
  peerState.value = "";
  muted.value = held.value = false;
  consulting.value = null;
}

const live = (path, body) => api(`/api/hotline/live/${encodeURIComponent(mine.peek().call)}/${path}`, { method: "POST", body });

async function answer() {
  const call = mine.peek().call;
  if (!call || session.peek()) return;
  if (!(window.isSecureContext && navigator.mediaDevices?.getUserMedia)) {
    callError.value = "当前页面不是安全连接，浏览器不允许使用麦克风。请通过 https:// 地址（或在本机用 localhost）打开本页。";
    return;
  }
  const s = { pc: null, stream: null, call };
  session.value = s;
  callPhase.value = "answering";
  callError.value = "";
  try {
    s.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection({ iceServers: [] });
    s.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (session.peek() === s) peerState.value = pc.connectionState;
    });
    pc.addEventListener("track", (e) => {
      if (session.peek() === s) remoteStream.value = e.streams[0] || new MediaStream([e.track]);
    });
    for (const track of s.stream.getAudioTracks()) pc.addTransceiver(track, { direction: "sendrecv", streams: [s.stream] });
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    if (session.peek() !== s) return; // the offer went away meanwhile
    const res = await api(`/api/hotline/live/${encodeURIComponent(call)}/answer`, {
      method: "POST",
      body: { sdp: pc.localDescription.sdp },
    });
    await pc.setRemoteDescription({ type: "answer", sdp: res.sdp });
    callPhase.value = "live";
    await loadMe();
  } catch (err) {
    if (session.peek() === s) teardown();
    if (err.name === "NotAllowedError") callError.value = "麦克风权限被拒绝，请在浏览器中允许本页使用麦克风";
    else if (err.name === "NotFoundError") callError.value = "未检测到麦克风";
    else callError.value = `接听失败：${err.message}`;
  }
}

async function act(what, fn) {
  callError.value = "";
  try {
    await fn();
  } catch (err) {
    callError.value = `${what}失败：${err.message}`;
  }
}

// The session lives as long as the agent's state says it is in that call.
effect(() => {
  const m = mine.value;
  const s = session.peek();
  if (s && !(m.call === s.call && (m.state === "offered" || m.state === "talking"))) teardown();
});

// A call must not outlive its page (the hub hangs up when the agent's leg goes away anyway).
window.addEventListener("pagehide", teardown);

// ---- components --------------------------------------------------------------------------------

/** The page's one audio element for the caller's voice. */
export function CallAudio() {
  const ref = useRef(null);
  const stream = remoteStream.value;
  useEffect(() => {
    if (!ref.current) return;
    ref.current.srcObject = stream;
    if (stream) ref.current.play?.().catch(() => {});
  }, [stream]);
  return html`<audio ref=${ref} autoplay class="hl-call-audio" data-testid="call-audio"
                     data-playing=${String(!!stream)}></audio>`;
}

export function RingBanner() {
  const m = mine.value;
  if (m.state !== "offered" || !m.call) return null;
  const answering = callPhase.value === "answering";
  return html`<section class="hl-ring" role="alert" data-testid="ring-banner" data-call=${m.call}>
    <div class="hl-ring-text"><strong>来电</strong>
      <span class="hl-ring-number" data-testid="ring-number">${m.caller || current.value?.caller || "未知号码"}</span>
      <span class="muted">振铃 ${fmtSeconds(secondsSince(m.since, now.value))}</span></div>
    <div class="hl-ring-buttons">
      <button type="button" class="btn btn-primary hl-big-button" data-testid="answer" disabled=${answering}
              onClick=${answer}>${answering ? "正在接通…" : "接听"}</button>
      <button type="button" class="btn btn-danger-outline" data-testid="decline" disabled=${answering}
              onClick=${() => act("拒接", () => live("decline"))}>拒接</button>
    </div>
    ${callError.value && html`<div class="banner banner-error" role="alert" data-testid="call-error">${callError.value}</div>`}
  </section>`;
}

function TransferBox() {
  const targets = agentList().filter((a) => a.state === "ready" && a.id !== myId.value);
  const to = useSignal("queue");
  const attended = useSignal(false);
  if (consulting.value) {
    return html`<div class="hl-transfer" data-testid="transfer-pending">
      <span>正在咨询 ${agentName(consulting.value.to)}</span>
      <button type="button" class="btn btn-primary btn-small" data-testid="transfer-complete"
              onClick=${() => act("完成转接", async () => { await live("transfer/end", { action: "complete" }); consulting.value = null; })}>完成转接</button>
      <button type="button" class="btn btn-small" data-testid="transfer-cancel"
              onClick=${() => act("取消转接", async () => { await live("transfer/end", { action: "cancel" }); consulting.value = null; })}>取消</button>
    </div>`;
  }
  const go = () =>
    act("转接", async () => {
      const body = { to: to.peek(), attended: attended.peek() && to.peek() !== "queue" };
      await live("transfer", body);
      if (body.attended) consulting.value = { to: body.to };
    });
  return html`<div class="hl-transfer" data-testid="transfer-box">
    <select aria-label="转接目标" data-testid="transfer-target" onChange=${(e) => (to.value = e.currentTarget.value)}>
      <option value="queue">转回排队队列</option>
      ${targets.map((a) => html`<option key=${a.id} value=${a.id}>${agentName(a.id)}（示闲）</option>`)}
    </select>
    <label class="check-line"><input type="checkbox" data-testid="transfer-attended"
           onChange=${(e) => (attended.value = e.currentTarget.checked)} /> 咨询转接</label>
    <button type="button" class="btn btn-small" data-testid="transfer" onClick=${go}>转接</button>
  </div>`;
}

export function CallPanel() {
  const m = mine.value;
  if (m.state !== "talking" || !m.call) return null;
  const cur = current.value;
  const s = session.value;
  const status = consulting.value ? "咨询转接中" : held.value ? "保持中" : "通话中";
  const toggleMute = () => {
    const next = !muted.peek();
    for (const t of s?.stream?.getAudioTracks() || []) t.enabled = !next;
    muted.value = next;
  };
  return html`<section class="hl-panel hl-call" aria-label="当前通话" data-testid="call-panel" data-call=${m.call}
                       data-peer=${peerState.value} data-held=${String(held.value)} data-muted=${String(muted.value)}>
    <div class="hl-call-head">
      <span class="hl-call-status" data-testid="call-status">${status}</span>
      <strong class="hl-call-number" data-testid="call-number">${cur?.caller || m.caller || ""}</strong>
      <span class="hl-call-timer" data-testid="call-timer">${fmtSeconds(secondsSince(m.since, now.value))}</span>
      ${!s && html`<span class="banner banner-warn" data-testid="call-no-audio">本页没有该通话的音频（页面已刷新？）</span>`}
    </div>
    <div class="hl-call-buttons">
      <button type="button" class="btn btn-small" data-testid="hold" aria-pressed=${held.value}
              onClick=${() => act(held.peek() ? "恢复" : "保持", async () => { const r = await live("hold", { on: !held.peek() }); held.value = !!r.held; })}>
        ${held.value ? "恢复" : "保持"}</button>
      <button type="button" class="btn btn-small" data-testid="mute" aria-pressed=${muted.value} disabled=${!s}
              onClick=${toggleMute}>${muted.value ? "取消静音" : "静音"}</button>
      <button type="button" class="btn btn-danger btn-small" data-testid="hangup"
              onClick=${() => act("挂断", () => live("hangup"))}>挂断</button>
    </div>
    <${TransferBox} />
    ${callError.value && html`<div class="banner banner-error" role="alert" data-testid="call-error">${callError.value}</div>`}
    ${consoleError.value && html`<div class="banner banner-error" role="alert">${consoleError.value}</div>`}
  </section>`;
}
