#!/bin/sh
# The image's entrypoint: the first argument names the service to run (gateway, report-worker,
# url-checker, system, autoscaler, clock); anything else is run as a command (e.g. `sh`).
# `exec` makes Node PID 1, so SIGTERM from Docker or Kubernetes reaches the service's own handler.
set -eu
case "${1:-}" in
  gateway | report-worker | url-checker | system | autoscaler | clock)
    service=$1
    shift
    # The services' V8 flags, as in lib/src/service/node-flags.ts (npm start uses that file).
    case "$service" in
      report-worker) flags="--max-semi-space-size=8" ;;
      url-checker) flags="--max-semi-space-size=16" ;;
      *) flags="" ;;
    esac
    # shellcheck disable=SC2086 # flags is a word list on purpose
    exec node $flags "/app/services/$service/src/main.ts" "$@"
    ;;
  "")
    echo "usage: <gateway|report-worker|url-checker|system|autoscaler|clock> | <command>" >&2
    exit 2
    ;;
  *)
    exec "$@"
    ;;
esac
