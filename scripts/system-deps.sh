#!/usr/bin/env bash
# Debian packages the test suite needs: Chromium for the browser tests (driven by Playwright through
# executable_path=/usr/bin/chromium; no browser is ever downloaded), CJK fonts so pages render, and
# redis-server for the multi-process tests (started by the tests themselves), and sipp (Debian package
# sip-tester) as the SIP peer of the telephony tests, and espeak-ng (Mandarin text to speech for
# warning clips).
# With --run: only what `make run` needs (espeak-ng, so the demo city has its warning clips).
# Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
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
