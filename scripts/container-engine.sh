#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where none runs and we are root (CI, these dev machines: no systemd),
# installs Debian's docker.io if needed and starts dockerd in the background; it keeps running for later
# builds. A normal developer machine already has its engine and this does nothing.
set -euo pipefail

docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "no Docker engine answers and this user cannot start one: start Docker, then retry" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "installing Debian's docker.io (about 35 s)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
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
  setsid dockerd --pidfile /var/run/docker.pid >>"$log" 2>&1 < /dev/null &
  dockerd_pid=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && exit 0
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$dockerd_pid" 2>/dev/null || true
  wait "$dockerd_pid" 2>/dev/null || true
  echo "dockerd did not start (attempt $attempt); see $log" >&2
done
exit 1
