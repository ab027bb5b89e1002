#!/usr/bin/env bash
# `make test-fresh [DISTRO=bookworm|trixie]`: `make test` on a clean clone of HEAD, on a fresh Debian 12
# (bookworm, the default) or 13 (trixie) machine: a container of debootstrap's minimal Debian that starts with
# nothing but apt, installs what the README's set-up names as root types it, then runs `make test`. What the
# tests need beyond that they must install themselves, the container engine included: the machine has its own
# Docker engine (Debian's docker.io, which scripts/image/container-engine.sh installs and starts there, as on any
# fresh machine), not this one's. So the container gets what an engine needs: every capability this machine's
# engine may grant (--privileged asks for all, and where the engine itself lacks one, as CAP_SYS_RESOURCE in
# some VMs, runc refuses: "unable to apply caps"), no seccomp or AppArmor filter, the cgroup tree writable, and
# its engine's storage in a folder of this machine's disk (an overlay cannot sit on an overlay).
#
# Needs a Docker engine here (scripts/image/container-engine.sh starts one where it can). Commits only: stash or
# commit your changes first. CI=true is passed on, so that a skipped test fails there too.
set -euo pipefail
cd "$(dirname "$0")/../.."
distro=${DISTRO:-bookworm}

if ! docker_cli=$(scripts/image/container-engine.sh); then
  echo "make test-fresh cannot run here: no Docker engine answers (see above)" >&2
  exit 1
fi
export PATH="$(dirname "$docker_cli"):$PATH"

base="penguin-fresh-debian:$distro"
SUITE=$distro PACKAGES=ca-certificates scripts/image/base-image.sh "$base" >/dev/null

# The README's set-up, as a root shell types it on that machine.
setup=$(sed -n 's/^\$ sudo \(apt-get install .*\)$/\1/p' README.md | head -n 1)
[ -n "$setup" ] || { echo "the README's set-up names no 'sudo apt-get install' line" >&2; exit 1; }

work=$(mktemp -d)
name="penguin-test-fresh-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git clone --quiet --no-local . "$work/penguin-serve"
mkdir "$work/engine"
echo "make test-fresh: $(git rev-parse --short HEAD) on Debian $distro with its own engine; set-up: $setup" >&2
granted=(--cap-add ALL)
(( 0x$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24 & 1 )) || granted+=(--cap-drop SYS_RESOURCE)  # bit 24
docker run --name "$name" --rm "${granted[@]}" --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  -v "$work/engine:/var/lib/docker" \
  -v "$work:/fresh" -w /fresh/penguin-serve -e CI="${CI:-}" "$base" \
  bash -c "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; $setup -y -qq; make test"
