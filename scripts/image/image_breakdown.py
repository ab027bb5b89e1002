"""What an image built by `bentoml containerize` is made of, measured in the image itself.

    python -m scripts.image.image_breakdown IMAGE [--base python:3.11-slim] [--out docs/image.json]

The parts: the base image (its own size), the installed runtime packages (/app/.venv, largest first), uv
(BentoML's single-stage Dockerfile installs it to build the venv, and it stays), the bento (code and model),
and what is left: directories, file metadata and the like. tests/test_image.py holds the rest to a small
overhead, so a compiler, a package cache or a stray wheel in a new layer shows up there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

VENV = "/app/.venv"
BENTO = "/home/bentoml/bento"
SITE_PACKAGES = f"{VENV}/lib/python3.11/site-packages"
# Bytes of regular files and links under a folder; per top-level entry of site-packages; uv's own files.
MEASURE = f"""
total() {{ find "$@" \\( -type f -o -type l \\) -printf '%s\\n' | awk '{{s+=$1}} END {{print s+0}}'; }}
echo "packages $(total {VENV})"
echo "bento $(total {BENTO})"
uv_files=$(pip show -f uv 2>/dev/null | sed -n '/^Files:/,$p' | tail -n +2 | sed "s|^ *|$(pip show uv | sed -n 's/^Location: //p')/|")
echo "uv $( [ -n "$uv_files" ] && echo "$uv_files" | tr '\\n' '\\0' | xargs -0 stat -c %s | awk '{{s+=$1}} END {{print s+0}}' || echo 0)"
for entry in {SITE_PACKAGES}/*; do echo "package:$(basename "$entry") $(total "$entry")"; done
"""


def docker(*args: str) -> str:
    return subprocess.run([os.environ.get("DOCKER", "docker"), *args], capture_output=True, text=True, check=True).stdout


def layers(image: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image))


def breakdown(image: str, base: str = "python:3.11-slim") -> dict:
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
    base_layers = layers(base)
    if layers(image)[: len(base_layers)] != base_layers:
        raise ValueError(f"{image} was not built FROM {base}")
    base_size = int(docker("image", "inspect", "--format", "{{.Size}}", base))
    measured: dict[str, int] = {}
    packages: dict[str, int] = {}
    for line in docker("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", MEASURE).splitlines():
        name, value = line.rsplit(" ", 1)
        if name.startswith("package:"):
            packages[name.removeprefix("package:")] = int(value)
        else:
            measured[name] = int(value)
    largest = dict(sorted(packages.items(), key=lambda item: -item[1])[:5])
    parts = {"base": base_size, "packages": measured["packages"], "uv": measured["uv"], "bento": measured["bento"]}
    return {
        "image_bytes": size,
        **{f"{part}_bytes": value for part, value in parts.items()},
        "rest_bytes": size - sum(parts.values()),
        "largest_packages_bytes": largest,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--base", default="python:3.11-slim", help="the image it was built FROM (service.py's IMAGE)")
    parser.add_argument("--out", type=Path, help="also write the breakdown as JSON here")
    args = parser.parse_args(argv)
    figures = breakdown(args.image, args.base)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
