#!/usr/bin/env bash
# The one test command (`npm test`): installs what the tests need, builds, lints, runs every test once,
# the suites that run a real server once more with 4 workers (the multi-worker variant), and the wire
# suite once more over WebSocket (SWITCHBOARD_TEST_TRANSPORT=ws; the harness's default is TCP).
# `npm test -- unit` (or store, client, wire, cli, cluster, bench, browser) runs one layer only, with the default worker count.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
npm run --silent build
npx biome check . >/dev/null || { npx biome check .; exit 1; }
# What the tests start (Debian packages; skipped when present): the peer servers of the bench layer's
# driver tests, Redis for the store and many-node tests, Chromium for the browser tests.
bash scripts/ensure-packages.sh mosquitto nats-server redis-server chromium

files_of() {
  local layer
  for layer in "$@"; do find "dist/test/$layer" -name '*.test.js' 2>/dev/null | sort; done
}

run() {
  local files
  mapfile -t files < <(files_of "$@")
  [ ${#files[@]} -gt 0 ] || { echo "no test files found for: $*"; exit 1; }
  node --test --test-reporter=spec --test-concurrency=2 "${files[@]}"
}

if [ $# -gt 0 ]; then
  run "$@"
else
  echo "== every suite, one worker"
  SWITCHBOARD_TEST_WORKERS=1 run unit store client wire cli cluster bench browser
  echo "== the suites against a real server, four workers"
  SWITCHBOARD_TEST_WORKERS=4 run client wire cli cluster browser
  echo "== the wire suite over WebSocket, one worker"
  SWITCHBOARD_TEST_WORKERS=1 SWITCHBOARD_TEST_TRANSPORT=ws run wire
fi
