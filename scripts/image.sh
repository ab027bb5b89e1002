#!/usr/bin/env bash
# `make image`: trains a model if the store has none, `bentoml build`, then `bentoml containerize`.
# Prints the image name (penguin-serve:<bento version>, also tagged penguin-serve:latest) on the last line.
#
#   PENGUIN_BASE_IMAGE   base image (default python:3.11-slim; built from Debian packages when it cannot
#                        be pulled, see scripts/base-image.sh)
#   PENGUIN_IMAGE        image name without tag (default penguin-serve)
#   BENTOML_HOME         model and bento store (default ~/bentoml)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
image_name=${PENGUIN_IMAGE:-penguin-serve}

scripts/container-engine.sh
# The docker 28 CLI without buildx cannot use BuildKit; Debian's 20.10 CLI has it built in.
if ! docker buildx version >/dev/null 2>&1; then
  if [ -x /usr/bin/docker ]; then export PATH=/usr/bin:$PATH; else export DOCKER_BUILDKIT=0; fi
fi

base=${PENGUIN_BASE_IMAGE:-python:3.11-slim}
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull "$base" >/dev/null 2>&1; then
  echo "cannot pull $base: building a Debian base image instead" >&2
  base=$(scripts/base-image.sh)
fi

$bin/python train.py --if-missing >&2
model_tag=$($bin/python -c 'import bentoml; from penguin_serve.settings import SETTINGS; print(bentoml.models.get(SETTINGS.model_tag).tag)')
bento_tag=$($bin/bentoml build --output tag | sed -n 's/^__tag__://p')
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image="$image_name:${bento_tag#*:}"
# BentoML 1.4.39 refuses a Dockerfile template outside the working directory and copies the bento to a
# temporary folder first: containerize from / so that folder counts as inside it.
(cd / && "$OLDPWD/$bin/bentoml" containerize "$bento_tag" -t "$image" -t "$image_name:latest" \
  --opt "build-arg=BASE_IMAGE=$base" \
  --opt "label=org.opencontainers.image.revision=$commit" \
  --opt "label=penguin-serve.model=$model_tag" \
  --opt "label=penguin-serve.bento=$bento_tag") >&2
echo "$image"
