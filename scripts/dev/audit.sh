#!/usr/bin/env bash
# Dependency vulnerability audit of the pinned locks with pip-audit (PyPA), in a throw-away virtual
# environment so the project's own does not change. Exit status 1 when a known vulnerability is found.
#   scripts/dev/audit.sh                 the serving runtime (requirements.txt: what the image contains)
#   scripts/dev/audit.sh --dev           also training, test and tooling dependencies
# Needs PyPI's JSON API (pypi.org) or OSV (--vulnerability-service osv); the sandbox these scripts were
# written in reaches only PyPI's package index, where every package reports "could not be audited".
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check pip-audit
locks=(-r requirements.txt)
[ "${1:-}" = "--dev" ] && locks+=(-r requirements-dev.txt)
"$tools/bin/pip-audit" "${locks[@]}" --no-deps --disable-pip --strict --progress-spinner off
