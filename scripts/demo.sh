#!/usr/bin/env bash
# Main job: installs dependencies if needed, builds, runs the demo (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -p .
chmod +x dist/src/cli/*.js
exec node scripts/demo.mjs
