#!/usr/bin/env bash
# Main job: installs dependencies if needed, builds, runs the demo (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci; first run only, about a minute)"
  npm ci --no-audit --no-fund
fi
say "building (tsc; about 20 seconds)"
npx tsc -p .
chmod +x dist/src/cli/*.js
exec node scripts/demo.mjs
