#!/bin/sh
# Fresh-machine set-up shared by `npm start`, `npm test` and `npm run bench`:
# npm packages (which bring Node 24) and nats-server. Idempotent and quiet when all is there.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/node ] || [ ! -d node_modules/@nats-io/jetstream ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ppc-robot: installing npm packages..." >&2
  # npm ci rejects this lock (npm 11 leaves other platforms' optional binaries out of it), so install from the lock.
  npm install --no-audit --no-fund >&2
fi

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/bin/nats-server ] && [ ! -x /usr/sbin/nats-server ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "ppc-robot: nats-server is not installed and we are not root, so it cannot be installed with apt." >&2
    echo "           Install it (sudo apt-get install -y nats-server) or put a nats-server binary on PATH." >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ppc-robot: nats-server is not installed and this machine has no apt-get." >&2
    echo "           Install nats-server (https://docs.nats.io) and put it on PATH." >&2
    exit 1
  fi
  echo "ppc-robot: installing nats-server with apt..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  if ! apt-get install -y -qq nats-server >&2; then
    echo "ppc-robot: apt-get install nats-server failed." >&2
    exit 1
  fi
  # The Debian package starts a system service on 4222; ours runs its own server under .data/.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nats-server >/dev/null 2>&1 || true; fi
  pkill -x nats-server >/dev/null 2>&1 || true
fi
