#!/bin/sh
# `npm run bench -- <name>`: benchmarks on Node 24 from node_modules, one JSON line per figure.
set -eu
cd "$(dirname "$0")/.."
sh scripts/ensure.sh
PATH="$PWD/node_modules/.bin:$PATH"
export PATH
exec node bench/src/main.ts "$@"
