#!/usr/bin/env bash
# Builds a stand-in for python:3.11-slim from Debian packages, for machines that cannot pull it (no registry).
# Usage: scripts/image/base-image.sh [NAME:TAG]   (default python:3.11-slim; prints the name)
# SUITE (default bookworm) and PACKAGES (default python3,python3-venv,python3-pip,ca-certificates) make other
# Debian roots: scripts/dev/test-fresh.sh's bare Debian 12 and 13 machines.
#
# debootstrap's minimal Debian 12 with python3, python3-venv, python3-pip and ca-certificates, without apt's
# lists, docs and man pages: like python:3.11-slim, Python 3.11 with pip on Debian 12. On a machine whose HTTPS egress passes an
# intercepting proxy, that proxy's CA (/usr/local/share/ca-certificates) is trusted in this local-only base
# so the image build can reach PyPI; a normal machine has none to copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:-python:3.11-slim}
docker=${DOCKER:-docker}

if $docker image inspect "$name" >/dev/null 2>&1; then
  echo "$name"
  exit 0
fi
debootstrap=$(python3 -m scripts.dev.tools debootstrap)
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT

echo "building $name from $mirror (about 90 s)" >&2
suite=${SUITE:-bookworm}
"$debootstrap" --variant=minbase --include="${PACKAGES:-python3,python3-venv,python3-pip,ca-certificates}" "$suite" "$rootfs" "$mirror" >&2
if [ -x "$rootfs/usr/bin/python3" ]; then
  ln -sf python3 "$rootfs/usr/bin/python"
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED  # pip installs system-wide, as in python:3.11-slim
fi

if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >&2
fi
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/* \
  "$rootfs"/usr/share/locale/*/LC_MESSAGES  # translations: as in Debian's slim images

# The rootfs's own architecture, said: without --platform the CLI sends DOCKER_DEFAULT_PLATFORM, which newer
# engines (Debian 13's) honour, so a shell that defaults to arm64 would label this amd64 tree arm64, and an amd64
# build would then look for its base in a registry.
tar -C "$rootfs" -c . | $docker import --platform "linux/$(dpkg --print-architecture)" \
  --change 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' - "$name" >&2
echo "$name"
