#!/usr/bin/env bash
# The one test command (`npm test`): installs what the tests need, builds, lints, runs every test once.
# `npm test -- unit` (or store, wire, cli, client) runs one layer only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
npm run --silent build
npx biome check . >/dev/null || { npx biome check .; exit 1; }
layers=("${@:-unit store client wire cli}")
files=()
for layer in ${layers[@]}; do
  while IFS= read -r f; do files+=("$f"); done < <(find "dist/test/$layer" -name '*.test.js' 2>/dev/null | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "no test files found for: ${layers[*]}"; exit 1; }
exec node --test --test-reporter=spec --test-concurrency=2 "${files[@]}"
