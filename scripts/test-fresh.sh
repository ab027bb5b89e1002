#!/usr/bin/env bash
# `make test-fresh`: `make test` on a clean clone of HEAD, in a fresh Debian 12 container that starts with only
# Python 3.11 and then installs what the README's set-up names, nothing else. What the tests need beyond that
# they must install themselves. The container shares this machine's network (tests bind 127.0.0.1) and its
# Docker engine, through the socket (the image tests build and run images there).
#
# Needs a Docker engine (scripts/container-engine.sh starts one where it can). Commits only: stash or commit
# your changes first. CI=true is passed on, so that a skipped test fails there too.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker_cli=$(scripts/container-engine.sh); then
  echo "make test-fresh cannot run here: no Docker engine answers (see above)" >&2
  exit 1
fi
export PATH="$(dirname "$docker_cli"):$PATH"
socket=/var/run/docker.sock
[ -S "$socket" ] || { echo "make test-fresh cannot run here: the engine has no socket at $socket to share" >&2; exit 1; }

# Debian 12 with Python 3.11: python:3.11-slim, or its stand-in where no registry answers.
base=python:3.11-slim
docker image inspect "$base" >/dev/null 2>&1 || docker pull "$base" >/dev/null 2>&1 || scripts/base-image.sh "$base" >/dev/null

# The README's set-up, as a root shell types it on that machine.
setup=$(sed -n 's/^\$ sudo \(apt-get install .*\)$/\1/p' README.md | head -n 1)
[ -n "$setup" ] || { echo "the README's set-up names no 'sudo apt-get install' line" >&2; exit 1; }

work=$(mktemp -d)
name="penguin-test-fresh-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git clone --quiet --no-local . "$work/penguin-serve"
echo "make test-fresh: $(git rev-parse --short HEAD) in $base; set-up: $setup" >&2
docker run --name "$name" --rm --network host -v "$socket:$socket" -v "$work:/fresh" -w /fresh/penguin-serve \
  -e CI="${CI:-}" "$base" bash -c "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; $setup -y -qq; make test"
