#!/bin/sh
# ctest serve_browser: the web page in headless Chromium.  Exit 77 (skipped) when a tool is missing.
dir=$(dirname "$0")
if [ ! -x /usr/bin/chromium ]; then
  echo "SKIPPED: /usr/bin/chromium is not installed (apt-get install -y chromium)"; exit 77
fi
if [ -z "$AVEMO_NODE" ] || [ ! -x "$AVEMO_NODE" ]; then
  echo "SKIPPED: node is not installed"; exit 77
fi
if [ ! -d "$dir/node_modules/playwright-core" ]; then
  echo "SKIPPED: $dir/node_modules is missing (cd tests/serve/browser && npm ci)"; exit 77
fi
if [ ! -f "${AVEMO_MODEL_DIR:-$AVEMO_SOURCE_DIR/models}/avemo-av.avm" ]; then
  echo "SKIPPED: ${AVEMO_MODEL_DIR:-models}/avemo-av.avm does not exist yet (the page test classifies a clip)"; exit 77
fi
exec "$AVEMO_NODE" "$dir/browser_test.js"
