#!/bin/sh
# `npm start`: install what is missing, then run the mesh on Node 24 from node_modules.
set -eu
cd "$(dirname "$0")/.."
sh scripts/ensure.sh
PATH="$PWD/node_modules/.bin:$PATH"
export PATH
exec node scripts/start/main.ts
