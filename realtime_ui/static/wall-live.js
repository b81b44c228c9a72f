// The wall's enlarged view: one camera's live video over WebRTC (MSE as the fallback), for as long
// as the view is open.
//
// Theory of operation: opening the view (a double click on a tile) creates an RTCPeerConnection
// with one recvonly video transceiver (H.264 preferred where the browser lets us say so), makes
// the offer, waits for ICE gathering to complete (the hub does not trickle) and posts it:
// POST /api/cameras/{id}/live {sdp} answers {viewer_id, sdp}. The answer is applied and the
// incoming track shown in a <video muted autoplay playsinline> that lives as long as the view.
// Closing the view (or leaving the page) sends POST /api/live/{viewer_id}/stop and closes the
// peer. The hub allows a seat 4 live views at once; its 409 message is shown in the view.
//
// The fallback (wall-mse.js: fragmented MP4 from GET /api/cameras/{id}/live.mp4 into Media Source
// Extensions): when the browser has no RTCPeerConnection, when the POST fails with anything but a
// 409 (the hub's limit is shown, not worked around), or when the peer is not connected
// CONNECT_WAIT_MS after the answer (or fails), the peer is closed and its viewer stopped on the hub
// (so it does not count against the limit) before the MSE stream starts. `?live=mse` in the page's
// URL forces MSE (tests, troubleshooting). The view says which transport plays: data-transport
// ("webrtc" | "mse") and the label 实时(WebRTC) / 实时(MSE).
import { api } from "./api.js";
import { openMse } from "./wall-mse.js";
import { cameraById, statusLabel, statusOf } from "./wall-state.js";
import { html, signal, useEffect, useRef, useSignal } from "./ui.js";

const ICE_WAIT_MS = 3000;
const CONNECT_WAIT_MS = 4000;

/** The camera id shown enlarged in this window, or null. */
export const enlarged = signal(null);

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

function forcedMse() {
  return new URLSearchParams(location.search).get("live") === "mse";
}

/** Open a live view into `video`; returns the function that ends it. */
function openLive(cameraId, video, state) {
  let closed = false;
  let stopMse = null;
  const report = (fields) => {
    if (!closed) state.value = { ...state.peek(), ...fields };
  };
  const toMse = () => {
    if (closed || stopMse) return;
    report({ transport: "mse", viewerId: null, error: "" });
    stopMse = openMse(cameraId, video, report);
  };
  let endWebrtc = null;
  if (forcedMse() || typeof window.RTCPeerConnection !== "function") toMse();
  else endWebrtc = openWebrtc(cameraId, video, report, toMse);
  const end = () => {
    if (closed) return;
    closed = true;
    window.removeEventListener("pagehide", end);
    endWebrtc?.();
    stopMse?.();
  };
  window.addEventListener("pagehide", end);
  return end;
}

/** WebRTC into `video`; `fallback()` is called (once, after the peer is closed and its viewer
 *  stopped) when it cannot connect. Returns the function that ends it. */
function openWebrtc(cameraId, video, report, fallback) {
  let closed = false;
  let viewerId = null;
  let timer = null;
  const pc = new RTCPeerConnection({ iceServers: [] });
  const end = () => {
    if (closed) return Promise.resolve();
    closed = true;
    clearTimeout(timer);
    const stopped =
      viewerId === null
        ? Promise.resolve()
        : api(`/api/live/${encodeURIComponent(viewerId)}/stop`, { method: "POST" }).catch(() => {});
    try {
      pc.close();
    } catch {
      // closed already
    }
    video.srcObject = null;
    return stopped;
  };
  const giveUp = () => {
    if (closed) return;
    end().then(fallback);
  };
  pc.addEventListener("connectionstatechange", () => {
    if (closed) return;
    report({ peer: pc.connectionState });
    if (pc.connectionState === "connected") clearTimeout(timer);
    if (pc.connectionState === "failed") giveUp();
  });
  pc.addEventListener("track", (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play?.().catch(() => {});
  });
  (async () => {
    try {
      const tr = pc.addTransceiver("video", { direction: "recvonly" });
      const caps = window.RTCRtpReceiver?.getCapabilities?.("video");
      const h264 = (caps?.codecs || []).filter((c) => /h264/i.test(c.mimeType));
      if (h264.length && tr.setCodecPreferences) tr.setCodecPreferences(h264);
      await pc.setLocalDescription(await pc.createOffer());
      await waitIce(pc);
      if (closed) return;
      const res = await api(`/api/cameras/${cameraId}/live`, {
        method: "POST",
        body: { sdp: pc.localDescription.sdp },
      });
      viewerId = res.viewer_id;
      if (closed) {
        api(`/api/live/${encodeURIComponent(viewerId)}/stop`, { method: "POST" }).catch(() => {});
        return;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: res.sdp });
      report({ viewerId, error: "" });
      if (pc.connectionState !== "connected") timer = setTimeout(giveUp, CONNECT_WAIT_MS);
    } catch (err) {
      if (closed) return;
      if (err.status === 409) report({ error: err.message || "实时视频打开失败" });
      else giveUp();
    }
  })();
  return () => {
    end();
  };
}

export function LiveView() {
  const id = enlarged.value;
  if (id === null) return null;
  return html`<${LiveBox} key=${id} cameraId=${id} />`;
}

function LiveBox({ cameraId }) {
  const ref = useRef(null);
  const state = useSignal({
    transport: "webrtc",
    peer: "new",
    viewerId: null,
    error: "",
    playing: false,
  });
  useEffect(() => openLive(cameraId, ref.current, state), [cameraId]);
  useEffect(() => {
    const key = (e) => e.key === "Escape" && (enlarged.value = null);
    document.addEventListener("keydown", key);
    return () => document.removeEventListener("keydown", key);
  }, []);
  const cam = cameraById.value.get(cameraId);
  const st = statusOf(cam);
  const s = state.value;
  const live = s.transport === "mse" ? s.playing : s.peer === "connected";
  const name = s.transport === "mse" ? "MSE" : "WebRTC";
  const label = live ? `实时(${name})` : s.error ? "" : "正在连接…";
  return html`<div class="wall-live" data-testid="live-view" data-camera-id=${cameraId}
                   data-transport=${s.transport} data-peer=${s.peer}
                   data-viewer-id=${s.viewerId || ""}>
    <div class="wall-live-head">
      <strong data-testid="live-name">${cam ? cam.name : `摄像头 ${cameraId}`}</strong>
      <span class=${`wall-status st-${st.state}`}>${statusLabel(st.state)}</span>
      <span class="muted" data-testid="live-transport">${label}</span>
      <button type="button" class="btn btn-small" data-testid="live-close"
              onClick=${() => (enlarged.value = null)}>关闭</button>
    </div>
    ${s.error && html`<div class="banner banner-error" role="alert" data-testid="live-error">${s.error}</div>`}
    <video ref=${ref} class="wall-live-video" data-testid="live-video" muted autoplay playsinline></video>
  </div>`;
}
