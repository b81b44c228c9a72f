#!/usr/bin/env bash
# Vendor the pages' front-end libraries from the npm registry into realtime_ui/static/vendor/:
# Preact (components), its hooks, htm (tagged templates instead of JSX: no build step) and
# @preact/signals (state), and Apache ECharts (the evaluation page's and the big screen's charts:
# its self-contained ES module build dist/echarts.esm.min.mjs, zrender and tslib bundled in, no bare
# imports, so it loads from the pages' modules with a plain relative import, copied unchanged).
# The other ES modules are copied as published, with their bare imports ("preact", "preact/hooks",
# "@preact/signals-core") rewritten to the vendored files, since the pages have no import map
# (the CSP allows no inline script). Versions, licences and hashes go to vendor/README.md.
# Run it only to change a version; the hub serves the committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
PREACT=11.2.0 HTM=3.1.1 SIGNALS=2.11.4 SIGNALS_CORE=1.14.5 ECHARTS=6.1.0
out=realtime_ui/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund --ignore-scripts "preact@$PREACT" "htm@$HTM" \
    "@preact/signals@$SIGNALS" "@preact/signals-core@$SIGNALS_CORE" "echarts@$ECHARTS" >/dev/null)
m=$work/node_modules
mkdir -p "$out"
rewrite() {  # bare specifiers -> relative files
  sed -e 's#from"preact/hooks"#from"./hooks.mjs"#g; s#from"preact"#from"./preact.mjs"#g' \
      -e 's#from"@preact/signals-core"#from"./signals-core.mjs"#g' "$1" > "$2"
}
rewrite "$m/preact/dist/preact.mjs" "$out/preact.mjs"
rewrite "$m/preact/hooks/dist/hooks.mjs" "$out/hooks.mjs"
rewrite "$m/htm/dist/htm.mjs" "$out/htm.mjs"
rewrite "$m/@preact/signals-core/dist/signals-core.mjs" "$out/signals-core.mjs"
rewrite "$m/@preact/signals/dist/signals.mjs" "$out/signals.mjs"
cp "$m/echarts/dist/echarts.esm.min.mjs" "$out/echarts.mjs"  # as published (already self-contained)
if grep -l 'from"[a-z@]' "$out"/*.mjs; then echo "a bare import is left" >&2; exit 1; fi
cp "$m/preact/LICENSE" "$out/LICENSE.preact"
cp "$m/htm/LICENSE" "$out/LICENSE.htm"
cp "$m/@preact/signals/LICENSE" "$out/LICENSE.signals" 2>/dev/null || cp "$m/preact/LICENSE" "$out/LICENSE.signals"
cp "$m/echarts/LICENSE" "$out/LICENSE.echarts"
cp "$m/echarts/NOTICE" "$out/NOTICE.echarts"
cp "$m/echarts/licenses/LICENSE-d3" "$out/LICENSE.echarts-d3"
cp "$m/zrender/LICENSE" "$out/LICENSE.zrender"
{
  echo "# Vendored front-end libraries"
  echo
  echo "Made by \`scripts/vendor-js.sh\` from the npm registry; served by the hub under"
  echo "\`/static/vendor/\` (no CDN). Bare imports are rewritten to these files; nothing else is changed."
  echo
  echo "| file | package | version | licence | sha256 |"
  echo "|---|---|---|---|---|"
  for row in "preact.mjs preact $PREACT MIT" "hooks.mjs preact/hooks $PREACT MIT" \
             "htm.mjs htm $HTM Apache-2.0" "signals-core.mjs @preact/signals-core $SIGNALS_CORE MIT" \
             "signals.mjs @preact/signals $SIGNALS MIT" \
             "echarts.mjs echarts $ECHARTS Apache-2.0"; do
    set -- $row
    echo "| \`$1\` | $2 | $3 | $4 | \`$(sha256sum "$out/$1" | cut -c1-16)…\` |"
  done
  echo
  echo "\`echarts.mjs\` is \`echarts/dist/echarts.esm.min.mjs\`: the full ECharts as one ES module with"
  echo "zrender (BSD-3-Clause, \`LICENSE.zrender\`) and tslib (0BSD) bundled; its licence is"
  echo "\`LICENSE.echarts\` with \`NOTICE.echarts\`, and d3 code it embeds is under \`LICENSE.echarts-d3\`."
  echo "The ES module build, not the UMD one: the pages are modules that import what they use, and"
  echo "the UMD file would need a classic <script> tag on every page and a global \`echarts\`."
  echo "Under the pages' CSP (\`style-src 'self'\`) give ECharts tooltips \`renderMode: \"richText\"\`:"
  echo "its HTML tooltips carry \`style=\` attributes, which the browser refuses (and logs)."
} > "$out/README.md"
echo "vendored into $out"
