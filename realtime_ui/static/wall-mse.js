// The live view's fallback transport: fragmented MP4 over one HTTP response into Media Source
// Extensions, for when WebRTC cannot connect.
//
// Theory of operation: GET /api/cameras/{id}/live.mp4 streams an init segment and then one
// moof/mdat fragment per camera frame (H.264 as the camera sent it); the X-Codec header names the
// codec for the SourceBuffer. The body is read with a ReadableStream reader and each chunk is
// appended before the next is read, so the page never queues bytes of its own: a page that falls
// behind slows the hub's writes, and the hub drops to the next keyframe. The SourceBuffer runs in
// "sequence" mode (frames laid back to back; the hub's skips and the camera's clock jumps leave no
// gap to stall on). The buffer stays bounded: what lies more than KEEP_S behind the playhead is
// removed, and when playback lags the newest frame by more than MAX_LAG_S it jumps to the live
// edge. The returned function ends it all (the request is aborted: the hub releases the viewer).
// Note: the page's Content-Security-Policy must allow blob: media (media-src 'self' blob:), or the
// browser refuses the MediaSource; the video's error is then shown in the view.

const KEEP_S = 10;
const MAX_LAG_S = 1.0;
const EDGE_S = 0.15;

function waitUpdate(sb) {
  if (!sb.updating) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      sb.removeEventListener("updateend", done);
      sb.removeEventListener("error", fail);
      resolve();
    };
    const fail = () => {
      sb.removeEventListener("updateend", done);
      sb.removeEventListener("error", fail);
      reject(new Error("SourceBuffer error"));
    };
    sb.addEventListener("updateend", done);
    sb.addEventListener("error", fail);
  });
}

async function errorMessage(res) {
  try {
    return (await res.json()).error.message;
  } catch {
    return `实时视频打开失败（${res.status}）`;
  }
}

/** Keep the buffer short and the playhead near the newest frame. */
async function trim(sb, video) {
  const ranges = sb.buffered;
  if (!ranges.length) return;
  const end = ranges.end(ranges.length - 1);
  if (end - video.currentTime > MAX_LAG_S) video.currentTime = Math.max(0, end - EDGE_S);
  if (video.paused) video.play?.().catch(() => {});
  const start = ranges.start(0);
  if (video.currentTime - start > KEEP_S) {
    sb.remove(start, video.currentTime - KEEP_S / 2);
    await waitUpdate(sb);
  }
}

/** Play camera `cameraId` into `video` over MSE; `report(fields)` updates the view's state.
 *  Returns the function that ends it. */
export function openMse(cameraId, video, report) {
  const abort = new AbortController();
  let url = null;
  let closed = false;
  const end = () => {
    if (closed) return;
    closed = true;
    abort.abort();
    video.removeAttribute("src");
    video.load?.();
    if (url) URL.revokeObjectURL(url);
  };
  const fail = (message) => {
    if (!closed) report({ error: message, playing: false });
    end();
  };
  video.addEventListener("error", () => fail("实时视频无法播放（MSE）"), { once: true });
  (async () => {
    if (!window.MediaSource) return fail("浏览器不支持 MSE，无法播放实时视频");
    const res = await fetch(`/api/cameras/${cameraId}/live.mp4`, {
      signal: abort.signal,
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!res.ok) return fail(await errorMessage(res));
    const type = `video/mp4; codecs="${res.headers.get("X-Codec") || "avc1.42E01E"}"`;
    if (!MediaSource.isTypeSupported(type)) {
      return fail("浏览器不支持该摄像头的 H.264 编码");
    }
    report({ viewerId: res.headers.get("X-Viewer-Id") || "" });
    const ms = new MediaSource();
    const opened = new Promise((resolve) => {
      ms.addEventListener("sourceopen", resolve, { once: true });
    });
    url = URL.createObjectURL(ms);
    video.srcObject = null;
    video.src = url;
    await opened;
    const sb = ms.addSourceBuffer(type);
    sb.mode = "sequence";
    const reader = res.body.getReader();
    let bytes = 0;
    let playing = false;
    while (!closed) {
      const { value, done } = await reader.read();
      if (done) break;
      sb.appendBuffer(value);
      await waitUpdate(sb);
      bytes += value.byteLength;
      video.dataset.mseBytes = String(bytes);
      await trim(sb, video);
      if (!closed && !playing && video.currentTime > 0) {
        playing = true;
        report({ playing: true, error: "" });
      }
    }
    if (!closed) fail("实时视频已结束");
  })().catch((err) => {
    if (closed) return;
    const full = err.name === "QuotaExceededError";
    fail(full ? "实时视频缓冲已满" : "实时视频中断");
  });
  return end;
}
