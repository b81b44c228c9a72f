#!/usr/bin/env bash
# Debian packages the test suite needs: Chromium for the browser tests (driven by Playwright through
# executable_path=/usr/bin/chromium; no browser is ever downloaded), CJK fonts so pages render, and
# redis-server for the multi-process tests (started by the tests themselves), and sipp (Debian package
# sip-tester) as the SIP peer of the telephony tests, and espeak-ng (Mandarin text to speech for
# warning clips), and GStreamer's RTSP server for Debian's /usr/bin/python3 (the camera simulator,
# video/simulator: gi + GstRtspServer, h264parse/rtph264pay, x264enc and the clock overlays).
# With --run: only what `make run` needs (espeak-ng, so the demo city has its warning clips, and the
# camera simulator's GStreamer packages). With --bench: also ffmpeg (bench/video.py's reference)
# and baresip (the reference of bench/warnings.py and bench/hotline.py).
# Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1 \
  || ! command -v gst-inspect-1.0 >/dev/null 2>&1 \
  || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 h264parse >/dev/null 2>&1 \
  || ! gst-inspect-1.0 rtph264pay >/dev/null 2>&1 || ! gst-inspect-1.0 clockoverlay >/dev/null 2>&1; then
  need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-x)
fi
if [ "${1:-}" = "--bench" ]; then
  command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
  command -v baresip >/dev/null 2>&1 || need+=(baresip)
fi
if [ "${1:-}" != "--run" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
  [ -n "$(fc-list :lang=zh 2>/dev/null | head -1)" ] || need+=(fonts-noto-cjk)
fi
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" != 0 ] && [ "${1:-}" = "--run" ]; then
  echo "not root: skipping Debian packages ${need[*]} (the demo has no warning clips without espeak-ng)"
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
