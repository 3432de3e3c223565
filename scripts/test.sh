#!/bin/sh
# `npm test`: typecheck, lint, then vitest (which starts its own nats-server and PostgreSQL).
# Ends with the plain line `N passed, N failed`.
set -u
cd "$(dirname "$0")/.."
sh scripts/ensure.sh || exit 1
PATH="$PWD/node_modules/.bin:$PATH"
export PATH

echo "== typecheck (tsc --noEmit)"
tsc --noEmit -p tsconfig.json || { echo "0 passed, 1 failed (typecheck)"; exit 1; }
echo "== lint (biome)"
biome lint . || { echo "0 passed, 1 failed (lint)"; exit 1; }
echo "== vitest"
results=$(mktemp)
vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node -e '
const fs = require("node:fs");
let r;
try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { console.log("0 passed, 1 failed (vitest wrote no results)"); process.exit(0); }
const failed = r.numFailedTests + (r.numFailedTestSuites > 0 && r.numFailedTests === 0 ? r.numFailedTestSuites : 0);
console.log(`${r.numPassedTests} passed, ${failed} failed`);
' "$results"
rm -f "$results"
exit $status
