#!/usr/bin/env bash
# `make image`: the same two commands a user types, `bentoml build` and `bentoml containerize TAG`, plus what a
# bare machine needs first (a container engine, the base image) and labels that say what the image holds.
# Builds for linux/amd64. Prints the image name (penguin-serve:<bento version>, also tagged penguin-serve:latest) on the last line.
#
#   PENGUIN_IMAGE        image name without tag (default penguin-serve)
#   BENTOML_HOME         model and bento store (default ~/bentoml)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.venv/bin
image_name=${PENGUIN_IMAGE:-penguin-serve}

# The Docker CLI that builds with BuildKit first on PATH, for bentoml containerize too.
docker_cli=$(scripts/image/container-engine.sh)
export PATH="$(dirname "$docker_cli"):$PATH"

$bin/python train.py --if-missing >&2
model_tag=$($bin/python -c 'import bentoml; from penguin_serve.settings import SETTINGS; print(bentoml.models.get(SETTINGS.model_tag).tag)')
bento_tag=$($bin/bentoml build --output tag | sed -n 's/^__tag__://p')
# The base image is the one service.py's IMAGE names (the bento's Dockerfile says which).
# (From Python: `bentoml get -o path` wraps a long path at the console's width.)
bento_path=$($bin/python -c 'import bentoml, sys; print(bentoml.bentos.get(sys.argv[1]).path)' "$bento_tag")
base=$(awk '/^FROM / {print $2; exit}' "$bento_path/env/docker/Dockerfile")
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull "$base" >/dev/null 2>&1; then
  echo "cannot pull $base: building a stand-in from Debian packages under that name" >&2
  scripts/image/base-image.sh "$base" >&2
fi
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image="$image_name:${bento_tag#*:}"
# linux/amd64 whatever the build machine (an Apple-silicon Mac builds arm64 by default): what Cloud Run runs.
$bin/bentoml containerize "$bento_tag" --platform linux/amd64 -t "$image" -t "$image_name:latest" \
  --opt "label=org.opencontainers.image.revision=$commit" \
  --opt "label=penguin-serve.model=$model_tag" \
  --opt "label=penguin-serve.bento=$bento_tag" >&2
echo "$image"
