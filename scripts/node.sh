#!/bin/sh
# Runs a repo script on Node 24 from node_modules (the machine's own node may be older).
set -eu
cd "$(dirname "$0")/.."
sh scripts/ensure.sh
PATH="$PWD/node_modules/.bin:$PATH"
export PATH
exec node "$@"
