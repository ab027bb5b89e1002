#!/usr/bin/env bash
# Makes sure a Docker engine answers, and prints the path of the Docker CLI to build with. Where none runs and
# we are root (CI, machines without systemd), Debian's docker.io comes from scripts/dev/tools.py and dockerd starts
# in the background; it keeps running for later builds. A normal developer machine already has its engine.
#
# The CLI printed builds with BuildKit, which BentoML's Dockerfile needs (it mounts uv's cache): the first
# `docker` on PATH when it has the buildx plugin, else Debian's docker.io CLI, which has BuildKit built in.
set -euo pipefail
cd "$(dirname "$0")/../.."

cli() {
  if docker buildx version >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then command -v docker; else echo /usr/bin/docker; fi
}

if docker info >/dev/null 2>&1; then cli; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "no Docker engine answers and this user cannot start one: start Docker, then retry" >&2
  exit 1
fi
dockerd=$(python3 -m scripts.dev.tools dockerd)
if docker info >/dev/null 2>&1; then cli; exit 0; fi  # the CLI was missing, not the engine (a socket from outside)
log=${DOCKERD_LOG:-/var/log/penguin-dockerd.log}

remove_stale_pidfile() {
  # A dockerd killed with its session leaves its pidfile; a new one refuses to start while that PID is alive
  # (or a zombie, or reused).
  [ -f /var/run/docker.pid ] || return 0
  local pid state
  pid=$(cat /var/run/docker.pid)
  state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
  if [ "$(ps -o comm= -p "$pid" 2>/dev/null || true)" != dockerd ] || [ "${state:0:1}" = Z ]; then
    rm -f /var/run/docker.pid
  fi
}

# Two attempts: right after an unclean stop, its containerd can still be going away and the first start
# times out waiting for it.
for attempt in 1 2; do
  remove_stale_pidfile
  echo "starting dockerd (log: $log)" >&2
  setsid "$dockerd" --pidfile /var/run/docker.pid >>"$log" 2>&1 < /dev/null &
  dockerd_pid=$!
  for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then cli; exit 0; fi
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$dockerd_pid" 2>/dev/null || true
  wait "$dockerd_pid" 2>/dev/null || true
  echo "dockerd did not start (attempt $attempt); see $log" >&2
done
exit 1
