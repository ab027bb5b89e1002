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
echo "starting dockerd (log: $log)" >&2
setsid dockerd --pidfile /var/run/docker.pid >"$log" 2>&1 < /dev/null &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log" >&2
exit 1
