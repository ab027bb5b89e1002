#!/usr/bin/env bash
# Tags a local image for Artifact Registry and pushes it; prints the pushed image by digest (the reference to
# deploy: a digest cannot be moved, a tag can).
#
#   scripts/image/push-image.sh [LOCAL_IMAGE]        default $PENGUIN_IMAGE:latest (what `make image` built last)
#
#   PENGUIN_IMAGE    local image name, as for `make image` (default penguin-serve)
#   GCP_PROJECT      Google Cloud project (required unless REGISTRY is set)
#   AR_REGION        Artifact Registry region (default europe-west1)
#   AR_REPOSITORY    Artifact Registry repository (default penguin-serve)
#   IMAGE_NAME       image name in the repository (default penguin-serve)
#   REGISTRY         overrides REGION-docker.pkg.dev/PROJECT/REPOSITORY (e.g. a local registry)
#
# The tag says what the image holds: model-<model version>-<12 characters of the source commit>, both read
# from the labels `make image` set. Authenticate once with `gcloud auth configure-docker REGION-docker.pkg.dev`.
set -euo pipefail
local_image=${1:-${PENGUIN_IMAGE:-penguin-serve}:latest}
registry=${REGISTRY:-${AR_REGION:-europe-west1}-docker.pkg.dev/${GCP_PROJECT:?set GCP_PROJECT or REGISTRY}/${AR_REPOSITORY:-penguin-serve}}
repository="$registry/${IMAGE_NAME:-penguin-serve}"

label() { docker image inspect --format "{{ index .Config.Labels \"$1\" }}" "$local_image"; }
model=$(label penguin-serve.model)
commit=$(label org.opencontainers.image.revision)
tag="model-${model#*:}-${commit:0:12}"

docker tag "$local_image" "$repository:$tag"
docker push "$repository:$tag" >&2
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$repository:$tag" | grep -m1 "^$repository@")
echo "pushed $repository:$tag" >&2
echo "$digest"
