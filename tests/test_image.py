"""The OCI image, built by BentoML's own commands exactly as a user types them (`bentoml build`, then
`bentoml containerize` with the tag it printed), and run the way Cloud Run runs it: PORT=8080, read-only root
with a tmpfs /tmp, 1 CPU, 1 GiB. `make image` (scripts/image/image.sh) wraps the same two commands.
"""

import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import BENTOML_HOME, KNOWN_RECORDS, REPO_ROOT
from containers import (
    NO_DOCKER_23,
    SERVICE_UID,
    Container,
    build_image,
    docker,
    docker_cli,
    engine_unavailable_reason,
    user_environment,
)
from readme import commands, ran, troubleshooting

from scripts.dev.processes import free_port

# Goals for the parts the project adds beyond the locked packages and uv (docs/image.json measures them): the
# bento holds code and one model, no data or tests; the rest (directories, metadata, uv's interpreter cache) is
# overhead, and a compiler, a package cache or a wheel left in a layer is megabytes.
MAX_BENTO_BYTES = 1_000_000
MAX_REST_BYTES = 256_000
IMAGE_PAGE = REPO_ROOT / "docs" / "image.md"


def documented_run_options() -> list[str]:
    """The options of docs/image.md's `docker run` line (Cloud Run's contract: read-only root with a tmpfs /tmp,
    1 CPU, 1 GiB, PORT=8080), without --rm (a test removes its container itself)."""
    [line] = [c.text for c in commands(IMAGE_PAGE.read_text()) if c.text.startswith("docker run ")]
    return [option for option in shlex.split(line)[2:-1] if option != "--rm"]


CLOUD_RUN_LIKE = tuple(documented_run_options()[: documented_run_options().index("-p")])


@pytest.fixture(scope="module")
def image(exported_model):
    """`bentoml build`, then `bentoml containerize` with the tag `bentoml build` printed, as typed."""
    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = user_environment(BENTOML_HOME)

    def as_typed(command: str, timeout: int) -> subprocess.CompletedProcess:
        ran(command)
        return subprocess.run(
            command.split(),
            cwd=REPO_ROOT,
            # A machine that builds arm64 by default, as an Apple-silicon Mac does.
            env={**env, "PATH": f"{BIN}:{env['PATH']}", "DOCKER_DEFAULT_PLATFORM": "linux/arm64"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    built = as_typed("bentoml build", timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    printed = re.search(r"\$ (bentoml containerize (\S+))", built.stdout)
    assert printed, built.stdout[-2000:]
    # docs/image.md's line: the tag bentoml build printed, then the README's options (--platform linux/amd64).
    [documented] = [c.text for c in commands(IMAGE_PAGE.read_text()) if c.text.startswith("bentoml containerize ")]
    ran(documented)  # with the tag that `bentoml build` printed
    containerized = as_typed(" ".join([printed.group(1), *documented.split()[3:]]), timeout=1800)
    assert containerized.returncode == 0, containerized.stdout[-3000:] + containerized.stderr[-3000:]
    yield printed.group(2)
    docker("rmi", printed.group(2), check=False)


@pytest.fixture(scope="module")
def make_image(image):
    """`make image`'s script on the same machine, after the plain commands."""
    built = build_image(BENTOML_HOME)
    yield built
    docker("rmi", built, built.split(":")[0] + ":latest", check=False)


@pytest.fixture
def cloud_run_container(image):
    """docs/image.md's `docker run` line, on a free host port, detached."""
    port = free_port()
    [line] = [c.text for c in commands(IMAGE_PAGE.read_text()) if c.text.startswith("docker run ")]
    ran(line)  # on a free host port, detached
    options = [option.replace("127.0.0.1:8080:", f"127.0.0.1:{port}:") for option in documented_run_options()]
    container = Container(image, *options)
    container.url = f"http://127.0.0.1:{port}"
    try:
        container.startup_s = container.wait_ready(container.url)
        yield container
    finally:
        container.remove()


BIN = Path(sys.executable).parent


def in_image(image, script):
    return docker("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", script).stdout  # root: sees every file


def test_the_image_holds_its_base_packages_uv_and_bento_and_nothing_else(image, monkeypatch):
    from scripts.image.image_breakdown import breakdown

    monkeypatch.setenv("DOCKER", docker_cli())
    parts = breakdown(image)
    print(json.dumps(parts))
    assert 0 <= parts["rest_bytes"] <= MAX_REST_BYTES, parts
    assert 0 < parts["bento_bytes"] <= MAX_BENTO_BYTES, parts
    # docs/image.json, which the README quotes, is this image's breakdown: the same locked packages and uv.
    committed = json.loads((REPO_ROOT / "docs" / "image.json").read_text())
    assert abs(parts["packages_bytes"] - committed["packages_bytes"]) <= 0.001 * committed["packages_bytes"], parts
    assert parts["uv_bytes"] == committed["uv_bytes"]
    find = "find / -xdev \\( -name '*.whl' -o -path '*/.cache/pip' -o -path '*/.cache/uv/wheels*' \\) 2>/dev/null; true"
    base = docker("run", "--rm", "--entrypoint", "sh", "python:3.11-slim", "-c", find).stdout.split()
    assert set(in_image(image, find).split()) == set(base)  # no wheel or package cache beyond the base image's


def test_the_documented_line_builds_for_cloud_run_on_a_machine_that_defaults_to_arm64(image):
    assert docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip() == "linux/amd64"


def test_make_image_builds_the_same_image_through_the_same_commands(image, make_image):
    """Same Dockerfile, same layers: base, uv, venv are identical; only the copy of the bento (a new build, so
    a new version) with the entrypoint's chmod after it, and the labels differ."""
    plain, made = (
        json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", name).stdout) for name in (image, make_image)
    )
    assert len(plain) == len(made) and plain[:-2] == made[:-2] and plain[-2] != made[-2]
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", make_image).stdout)
    assert labels["penguin-serve.model"].startswith("penguin_classifier:") and labels["org.opencontainers.image.revision"]


def test_no_compilers_cuda_or_training_code_and_data(image):
    found = in_image(
        image,
        """
        for tool in gcc cc g++ make git; do command -v $tool; done
        site=/app/.venv/lib/python3.11/site-packages
        # CUDA wheels install under site-packages/nvidia/ (nvidia_ml_py, a small NVML binding BentoML needs, is fine)
        ls $site | grep -iE '^(nvidia|pandas|sklearn|scikit_learn|palmerpenguins|pytest|locust)$' || true
        find / -xdev \\( -name 'libcud*' -o -name 'libnccl*' -o -name 'libcublas*' -o -name 'penguins*.csv' \\
            -o -path '/home/bentoml/bento/src/tests' -o -path '/home/bentoml/bento/src/penguin_serve/training' \\) 2>/dev/null
    """,
    )
    assert found.strip() == ""


def test_installed_packages_are_not_writable_by_the_service_even_on_a_writable_root(image):
    """Without --read-only (Cloud Run's root is writable): the packages the service runs belong to root."""
    result = docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "id -u; touch /app/.venv/lib/python3.11/site-packages/x.pth /app/.venv/bin/x 2>&1; true",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == str(SERVICE_UID) and len(lines) == 3 and all("Permission denied" in line for line in lines[1:]), lines


def test_no_credentials_in_environment_or_files(image):
    env = json.loads(docker("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout)
    secret_names = [
        e for e in env if any(w in e.split("=")[0].upper() for w in ("SECRET", "TOKEN", "PASSWORD", "CREDENTIAL", "KEY"))
    ]
    assert secret_names == []
    # Key material, not code that handles keys: PEM private keys where our build writes (the bento, home,
    # /etc, /tmp), and credential files anywhere.
    found = in_image(
        image,
        r"""
        grep -rlE -e '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----' -e '"private_key"' /home /root /tmp /etc 2>/dev/null
        find / -xdev -name '*.json' -size -64k -exec grep -l '"private_key"' {} + 2>/dev/null
        find / -xdev \( -name 'application_default_credentials.json' -o -name '*.p12' -o -name '.netrc' \) 2>/dev/null
        true
    """,
    )
    assert found.strip() == ""


def test_no_credentials_in_any_layer(image, tmp_path):
    """Each layer on its own: a key added in one layer and deleted in a later one still ships in the image."""
    import tarfile

    from test_repository import KEY_MATERIAL

    archive = tmp_path / "image.tar"
    docker("save", "-o", str(archive), image, timeout=300)
    suspicious_names = re.compile(r"(application_default_credentials\.json|\.p12|\.netrc|id_rsa|id_ed25519)$")
    findings = []
    with tarfile.open(archive) as saved:
        # manifest.json names the layers in both of the engines' formats (Docker 20.10's <id>/layer.tar, and
        # 25 and later's OCI blobs/sha256/<digest>).
        [manifest] = json.load(saved.extractfile("manifest.json"))
        layers = len(manifest["Layers"])
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=saved.extractfile(name)) as layer:
                for entry in layer:
                    if suspicious_names.search(entry.name):
                        findings.append(entry.name)
                    elif entry.isfile() and entry.size < 256 * 1024 and not entry.name.startswith(("usr/", "app/.venv/")):
                        if KEY_MATERIAL.search(layer.extractfile(entry).read().decode("latin-1")):
                            findings.append(entry.name)
    assert layers >= 3 and findings == []


def test_runs_as_non_root_and_answers_like_cloud_run(cloud_run_container):
    print(f"container start to ready: {cloud_run_container.startup_s:.1f} s")
    assert docker("exec", cloud_run_container.name, "id", "-u").stdout.strip() == str(SERVICE_UID)
    for record, species in KNOWN_RECORDS:
        answer = requests.post(cloud_run_container.url + "/predict", json=record, timeout=10).json()
        assert answer["prediction"] == species
    assert requests.get(cloud_run_container.url + "/model", timeout=5).json()["source"] == "bento"


def test_root_filesystem_is_read_only_for_the_service(cloud_run_container):
    result = docker(
        "exec", cloud_run_container.name, "sh", "-c", "touch /home/bentoml/bento/x /app/x 2>&1; echo rc=$?", check=False
    )
    assert "Read-only file system" in result.stdout


def test_loads_the_model_from_the_gcs_emulator_on_the_host(image, exported_model, gcs_emulator, bucket):
    from penguin_serve.contract import MODEL_NAME
    from penguin_serve.storage import make_client
    from penguin_serve.training.publish import push_model

    version = push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    port = free_port()
    # Host networking: the emulator listens on the host's 127.0.0.1 only.
    container = Container(
        image,
        "--network",
        "host",
        *CLOUD_RUN_LIKE[:-2],
        "-e",
        f"PORT={port}",
        "-e",
        f"GCS_BUCKET_NAME={bucket}",
        "-e",
        f"STORAGE_EMULATOR_HOST={gcs_emulator.url}",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        container.wait_ready(url)
        info = requests.get(url + "/model", timeout=5).json()
        assert (info["source"], info["version"]) == ("gcs", version)
    finally:
        container.remove()


def test_sigterm_drains_requests_provably_in_flight(cloud_run_container):
    """Requests the server has begun (headers and half a body received) when SIGTERM lands, finished only
    after it: each is answered 200 with its species, then the container exits 0 within Cloud Run's 10 s."""
    import socket

    port = int(cloud_run_container.url.rsplit(":", 1)[1])
    held = []
    for record, species in KNOWN_RECORDS:
        body = json.dumps(record).encode()
        connection = socket.create_connection(("127.0.0.1", port), timeout=15)
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:20]
        )
        held.append((connection, body, species))
    time.sleep(1)  # the server has read their headers: each request is in the app, waiting for its body
    docker("kill", "--signal", "TERM", cloud_run_container.name)
    signalled = time.monotonic()
    time.sleep(1)  # the signal has landed and the server is draining
    assert cloud_run_container.state()["Running"]  # still running: it waits for them
    answers = []
    for connection, body, species in held:
        with connection:
            connection.sendall(body[20:])
            response = http.client.HTTPResponse(connection)
            response.begin()
            answers.append((response.status, json.loads(response.read())["prediction"], species))
    exit_code = int(docker("wait", cloud_run_container.name, timeout=15).stdout)
    exited_after_s = time.monotonic() - signalled
    assert [(status, predicted) for status, predicted, _ in answers] == [(200, species) for _, _, species in answers]
    assert exit_code == 0 and exited_after_s < 10, (exit_code, exited_after_s)


def docker_major(cli: str) -> int:
    version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
    return int(version.stdout.split(".")[0]) if version.stdout[:1].isdigit() else 0


def buildx_less_docker(empty: Path) -> tuple[str, list[str]] | str:
    """A Docker 23+ CLI that has no buildx plugin, and what to put before a command so that it runs without one:
    nothing where the CLI has none (the machine of troubleshooting 11), else, as root, a private mount namespace
    whose plugin folder is `empty` (a fresh Debian 13: its docker.io brings buildx). Or why there is none."""
    import shutil

    candidates = [cli for cli in sorted({shutil.which("docker"), "/usr/local/bin/docker"} - {None}) if Path(cli).exists()]
    recent = [cli for cli in candidates if docker_major(cli) >= 23]
    if not recent:
        return NO_DOCKER_23
    for cli in recent:
        if subprocess.run([cli, "buildx", "version"], capture_output=True).returncode != 0:
            return cli, []
    if os.geteuid() != 0:
        return "every Docker CLI 23+ here has buildx, and hiding it (a mount namespace) needs root"
    cli = recent[0]
    listed = subprocess.run(
        [cli, "info", "--format", "{{range .ClientInfo.Plugins}}{{.Name}} {{.Path}}{{println}}{{end}}"],
        capture_output=True,
        text=True,
    ).stdout
    plugin = next(line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("buildx "))
    hidden = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"']
    hidden += ["hide-buildx", str(empty), os.path.dirname(plugin)]
    assert subprocess.run([*hidden, cli, "buildx", "version"], capture_output=True).returncode != 0, "buildx still found"
    return cli, hidden


def test_buildkit_without_buildx_fails_as_troubleshooting_says_and_its_fix_builds(image, tmp_path):
    found = buildx_less_docker(tmp_path)
    if isinstance(found, str):
        pytest.skip(found)
    cli, prefix = found
    env = {**os.environ, "PATH": f"{os.path.dirname(cli)}:{BIN}:{os.environ['PATH']}"}
    command = [*prefix, "bentoml", "containerize", image, "--platform", "linux/amd64", "-t", "penguin-legacy-builder:test"]
    failed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and troubleshooting(11).search(failed.stdout + failed.stderr), failed.stderr[-2000:]
    fixed = subprocess.run(
        command, cwd=REPO_ROOT, env={**env, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=1200
    )
    try:
        assert fixed.returncode == 0, fixed.stderr[-3000:]
    finally:
        docker("rmi", "penguin-legacy-builder:test", check=False)
