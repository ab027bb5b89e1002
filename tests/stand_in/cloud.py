"""A local Cloud Run, Cloud Storage and Cloud Monitoring behind the `gcloud` commands this project's scripts and
docs run (tests/stand_in/gcloud calls main()). Its state is a folder ($GCLOUD_STAND_IN_STATE) that outlives
each command, as a project does:

- A service has immutable revisions named SERVICE-0000N-xyz. Each revision runs the deployed image as a
  container on Docker's bridge network (the deploy's env vars, PORT=8080, K_SERVICE/K_REVISION/K_CONFIGURATION, its CPU and memory
  limits) and becomes ready only when its startup probe passes; one that fails it, or whose container exits,
  never gets traffic and the deploy fails. Its liveness probe restarts a container that stops answering.
- Traffic is a list of targets as in Cloud Run: a target that follows the latest ready revision, or one that
  is pinned to a revision, each with a percent, plus tags. A pin or split persists across later deploys
  until `--to-latest`; `--no-traffic` pins what followed the latest to the revision it was bound to.
- The service URL is a local router (router.py) that sends each request to a revision drawn by the traffic
  percentages; each tag has its own router and URL. A private service answers 403 without
  `Authorization: Bearer <gcloud auth print-identity-token>` and 401 with another token.
- A job's execution runs its tasks as containers with CLOUD_RUN_TASK_INDEX/COUNT/ATTEMPT, retrying a failed
  task up to --max-retries times, at most --parallelism at once.
- Monitoring policies, dashboards and notification channels are named resources (list, describe, create,
  update, delete); `policies migrate` creates policies on every run, as its reference page says.
- `storage` commands act on the Cloud Storage emulator named by STORAGE_EMULATOR_HOST.

Of Google's APIs, containers reach only Cloud Storage (the emulator, through relay.py). What it does not
model is written once, in the README's "Deploy to Cloud Run".
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import secrets
import shlex
import string
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from scripts.dev.processes import free_port

HERE = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("GCLOUD_STAND_IN_STATE", "/nonexistent"))
DOCKER = os.environ.get("GCLOUD_STAND_IN_DOCKER", "docker")
PLATFORM = "linux/amd64"  # what Cloud Run runs, whatever the machine's default (DOCKER_DEFAULT_PLATFORM)
LABEL = "penguin-serve.cloud-stand-in"  # on every container it starts, valued with its state folder


class Failed(Exception):
    """A gcloud error: printed as gcloud prints them, exit status 1."""

    status = 1


class Refused(Failed):
    """An argument gcloud's parser refuses: exit status 2, before anything is sent."""

    status = 2


# --- state ------------------------------------------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@contextlib.contextmanager
def state(write: bool = True):
    """The project's state, locked for the command's read-modify-write; written back atomically."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / "state.json"
    with open(STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        for kind in ("services", "jobs", "policies", "dashboards", "channels", "iam", "secrets", "processes", "tokens"):
            data.setdefault(kind, {} if kind not in ("iam", "processes") else [])
        data.setdefault("ubla", [])  # buckets with uniform bucket-level access
        yield data
        if write:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1))
            os.replace(temporary, path)


def read_state() -> dict:
    with state(write=False) as data:
        return data


# --- arguments --------------------------------------------------------------------------------------------


def parse(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Positional arguments, and each flag's values in order (`--flag=value`, `--flag value`, `--switch`).
    Values follow gcloud's forms; a flag that takes no value is one of SWITCHES."""
    positional, flags = [], {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if not has_value and name not in SWITCHES:
                index += 1
                value = args[index]
            flags.setdefault(name, []).append(value if has_value or name not in SWITCHES else "")
        else:
            positional.append(arg)
        index += 1
    return positional, flags


SWITCHES = {
    "quiet", "no-traffic", "to-latest", "allow-unauthenticated", "no-allow-unauthenticated", "cpu-boost",
    "no-cpu-throttling", "wait", "async", "uniform-bucket-level-access", "recursive",
}  # fmt: skip


SWITCHES |= {"cpu-throttling", "no-cpu-boost", "include-email"}

# gcloud run deploy's per-container flags (surface/run/deploy.py, ContainerArgGroup): with a --container, they are
# taken only after one, and every other flag only before the first.
CONTAINER_FLAGS = {
    "port", "use-http2", "set-env-vars", "update-env-vars", "remove-env-vars", "clear-env-vars", "env-vars-file",
    "memory", "cpu", "args", "set-secrets", "update-secrets", "remove-secrets", "clear-secrets", "depends-on",
    "add-volume-mount", "remove-volume-mount", "clear-volume-mounts", "command", "function", "base-image",
    "automatic-updates", "image", "source", "startup-probe", "liveness-probe", "gpu",
}  # fmt: skip


def flag_name(arg: str) -> str | None:
    return arg[2:].partition("=")[0] if arg.startswith("--") else None


def container_blocks(args: list[str]) -> tuple[list[str], dict[str | None, list[str]]]:
    """A deploy's service arguments and each container's, as gcloud's parser splits them; refuses what it
    refuses. Without --container, the container flags are the primary container's (key None)."""
    starts = [i for i, arg in enumerate(args) if arg == "--container" or arg.startswith("--container=")]
    if not starts:
        return args, {None: args}
    head, blocks, misplaced = args[: starts[0]], {}, []
    misplaced += [arg for arg in head if flag_name(arg) in CONTAINER_FLAGS]
    for start, end in zip(starts, [*starts[1:], len(args)]):
        arg = args[start]
        name, body = (arg.partition("=")[2], args[start + 1 : end]) if "=" in arg else (args[start + 1], args[start + 2 : end])
        index = 0
        while index < len(body):
            flag = flag_name(body[index])
            if flag is not None and flag not in CONTAINER_FLAGS:
                misplaced.append(body[index])
            if flag is not None and "=" not in body[index] and flag not in SWITCHES:
                index += 1  # its value
            index += 1
        blocks[name] = body
    if misplaced:
        raise Refused(f"(gcloud.run.deploy) unrecognized arguments: {' '.join(misplaced)}")
    return head, blocks


def require_region(flags: dict, data: dict) -> None:
    """gcloud run commands need a region, from --region or the run/region property."""
    if "region" not in flags and "run/region" not in data.get("config", {}):
        raise Failed("(gcloud.run) You must specify a region. Either use the `--region` flag or set the run/region property.")


MIN_MEMORY_MIB = 128  # Cloud Run's minimum (first generation; 512 MiB on the second)


def memory_mib(text: str) -> float:
    for suffix, factor in (("Gi", 1024), ("Mi", 1), ("G", 1000**3 / 2**20), ("M", 1000**2 / 2**20)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text) / 2**20


def require_memory(text: str) -> None:
    """The API refuses a memory limit below its minimum before it creates anything."""
    if memory_mib(text) < MIN_MEMORY_MIB:
        raise Failed(
            f"spec.template.spec.containers[0].resources.limits.memory: Invalid value specified for memory. "
            f"Memory must be at least {MIN_MEMORY_MIB}Mi; {text} was given."
        )


def one(flags: dict, name: str, default: str | None = None) -> str | None:
    return flags.get(name, [default])[-1]


def key_values(text: str) -> dict[str, str]:
    """gcloud's KEY=VALUE,... lists, with its alternate delimiter form ^D^KEY=VALUE<D>..."""
    delimiter = ","
    if text.startswith("^"):
        delimiter, text = text[1:].split("^", 1)
    return dict(pair.split("=", 1) for pair in text.split(delimiter) if pair)


def probe_spec(text: str | None) -> dict | None:
    if not text:
        return None
    spec = key_values(text)
    return {
        "path": spec.get("httpGet.path", "/"),
        "period_s": float(spec.get("periodSeconds", 10)),
        "timeout_s": float(spec.get("timeoutSeconds", 1)),
        "failures": int(spec.get("failureThreshold", 3)),
        "initial_delay_s": float(spec.get("initialDelaySeconds", 0)),
    }


def value_format(document: dict, fmt: str) -> str:
    """gcloud's --format=json and --format=value(a.b.c,...) over one resource."""
    if fmt == "json":
        return json.dumps(document, indent=2)
    if fmt.startswith("value(") and fmt.endswith(")"):
        values = []
        for path in fmt[6:-1].split(","):
            value = document
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            values.append("" if value is None else str(value))
        return "\t".join(values)
    raise Failed(f"the stand-in does not model --format={fmt}")


def listed(items: list[dict], flags: dict) -> str:
    fmt = one(flags, "format", "json")
    if "sort-by" in flags:
        key = one(flags, "sort-by")
        reverse = key.startswith("~")
        items = sorted(items, key=lambda item: value_format(item, f"value({key.lstrip('~')})"), reverse=reverse)
    if "filter" in flags:
        field, _, wanted = one(flags, "filter").partition("=")
        items = [item for item in items if value_format(item, f"value({field})") == wanted.strip("'\"")]
    if "limit" in flags:
        items = items[: int(one(flags, "limit"))]
    if fmt == "json":
        return json.dumps(items, indent=2)
    return "\n".join(value_format(item, fmt) for item in items)


# --- containers and processes ------------------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise Failed(f"docker {args[0]}: {result.stderr.strip()}")
    return result


def env_options(variables: dict[str, str]) -> list[str]:
    """`docker run`'s -e options for these variables."""
    return [option for name, value in variables.items() for option in ("-e", f"{name}={value}")]


def memory_limit(text: str) -> str:
    """Cloud Run's 512Mi / 1Gi as Docker's 512m / 1g."""
    for suffix, docker_suffix in (("Gi", "g"), ("Mi", "m"), ("G", "g"), ("M", "m")):
        if text.endswith(suffix):
            return text[: -len(suffix)] + docker_suffix
    return text


def start_listener(data: dict, what: str, script: str, *args: str) -> tuple[int, str]:
    """A long-lived helper (a router, the relay) in its own session, recorded so that teardown ends it; it
    listens on a free port and writes it to the file named by its last argument. Its PID and port, once it
    listens."""
    port_file = STATE_DIR / f"{what}.port"
    port_file.unlink(missing_ok=True)
    log = open(STATE_DIR / "processes.log", "a")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        [sys.executable, str(HERE / script), *args, str(port_file)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    data["processes"].append(process.pid)
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline:
            raise Failed(f"{what} did not start: see {STATE_DIR / 'processes.log'}")
        time.sleep(0.05)
    return process.pid, port_file.read_text().strip()


def start_router(data: dict, service: str, tag: str | None = None) -> str:
    """A router for the service URL or a tag's URL; the URL once it answers."""
    pid, port = start_listener(data, f"router-{service}-{tag or ''}", "router.py", str(STATE_DIR), service, tag or "")
    data.setdefault("routers", {}).setdefault(service, []).append(pid)
    return f"http://127.0.0.1:{port}"


def google_apis(data: dict) -> dict[str, str]:
    """The environment that points a container's Cloud Storage client at the emulator (STORAGE_EMULATOR_HOST,
    when set here), reached through a relay on the Docker bridge's gateway: a container cannot reach the host's
    127.0.0.1."""
    target = os.environ.get("STORAGE_EMULATOR_HOST")
    if not target:
        return {}
    if "relay" not in data:
        gateway = bridge_address()
        _, port = start_listener(data, "relay", "relay.py", gateway, target.rsplit(":", 1)[1].strip("/"))
        data["relay"] = f"http://{gateway}:{port}"
    return {"STORAGE_EMULATOR_HOST": data["relay"]}


def bridge_address(ipam: list[dict] | None = None) -> str:
    """The host's address on Docker's default bridge, where its containers reach it: the gateway the engine
    reports, else the subnet's first host, which the engine gives the bridge (Debian's docker.io 20.10 reports
    the subnet alone)."""
    if ipam is None:
        ipam = json.loads(docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}").stdout)
    [config, *_] = ipam
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def container_of(state_dir: Path, revision: str) -> str:
    """The container that runs a revision (for tests that make its instance fail)."""
    return f"cloud-stand-in-{revision}"


def teardown(state_dir: Path) -> None:
    """Ends what a stand-in project started: its routers (by PID) and its containers (by label)."""
    global STATE_DIR
    STATE_DIR = state_dir
    if not (state_dir / "state.json").exists():
        return
    with state() as data:
        for pid in data["processes"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        data["processes"] = []
    names = docker("ps", "-aq", "--filter", f"label={LABEL}={state_dir}", check=False).stdout.split()
    if names:
        docker("rm", "-f", *names, check=False)


# --- identity tokens ---------------------------------------------------------------------------------------

TOKEN_LIFETIME_S = float(os.environ.get("GCLOUD_STAND_IN_TOKEN_LIFETIME_S", 3600))  # Google's ID tokens: an hour


def identity_token() -> str:
    """A new token, valid for TOKEN_LIFETIME_S; the private service's routers accept any unexpired one."""
    token = secrets.token_urlsafe(24)
    with state() as data:
        data["tokens"] = {t: expiry for t, expiry in data["tokens"].items() if expiry > time.time()}
        data["tokens"][token] = time.time() + TOKEN_LIFETIME_S
    return token


def access_token() -> str:
    """An OAuth access token's stand-in: the monitoring query endpoint takes it and does not check it."""
    return "ya29." + secrets.token_urlsafe(24)


def token_valid(data: dict, token: str) -> bool:
    return data["tokens"].get(token, 0) > time.time()


# --- Cloud Run services ------------------------------------------------------------------------------------


def revision_suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=3))


def resolved_traffic(service: dict) -> dict[str, int]:
    """Percent per revision name, LATEST resolved to the latest ready revision."""
    shares: dict[str, int] = {}
    for target in service["traffic"]:
        name = service["latestReadyRevisionName"] if target.get("latestRevision") else target.get("revisionName")
        if name and target["percent"]:
            shares[name] = shares.get(name, 0) + target["percent"]
    return shares


def describe_service(service: dict) -> dict:
    status_traffic = [
        {
            **({"latestRevision": True} if target.get("latestRevision") else {}),
            "revisionName": service["latestReadyRevisionName"] if target.get("latestRevision") else target["revisionName"],
            "percent": target["percent"],
        }
        for target in service["traffic"]
        if target["percent"]
    ]
    status_traffic += [
        {"revisionName": entry["revision"], "tag": tag, "url": entry["url"]} for tag, entry in service["tags"].items()
    ]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": service["name"], "annotations": {"run.googleapis.com/ingress": "all"}},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"run.googleapis.com/cpu-throttling": str(service["template"]["cpu_throttling"]).lower()}
                },
                "spec": {
                    "containers": [
                        {**({"name": name} if name else {}), "image": container["image"]}
                        for name, container in service["template"]["containers"].items()
                    ]
                },
            },
            "traffic": service["traffic"],
        },
        "status": {
            "url": service["url"],
            "latestReadyRevisionName": service["latestReadyRevisionName"],
            "latestCreatedRevisionName": service["latestCreatedRevisionName"],
            "traffic": status_traffic,
        },
    }


def next_template(previous: dict | None, args: list[str]) -> dict:
    """The revision template a deploy makes from the service's last one, as gcloud builds it: the containers by
    name (a name it has not seen adds a container; `--remove-containers` drops named ones, ignoring the
    absent), the flags of each container updating what it had, and the CPU throttling setting."""
    service_args, blocks = container_blocks(args)
    template = json.loads(json.dumps(previous or {"containers": {}, "cpu_throttling": True}))
    containers = template["containers"]
    _, service_flags = parse(service_args)
    for names in service_flags.get("remove-containers", []):
        for name in names.split(","):
            containers.pop(name, None)
    if "no-cpu-throttling" in service_flags or "cpu-throttling" in service_flags:
        template["cpu_throttling"] = "cpu-throttling" in service_flags
    for name, block in blocks.items():
        if name is None:  # the primary container: the one with a port, or an unnamed new one
            name = next((n for n, c in containers.items() if "port" in c), next(iter(containers), ""))
        _, block_flags = parse(block)
        containers[name] = {**containers.get(name, {}), **{flag: values[-1] for flag, values in block_flags.items()}}
    ingress = [name for name, container in containers.items() if "port" in container]
    if len(ingress) != 1:
        raise Failed(f"exactly one container must have a port (the ingress container); these have one: {ingress}")
    return template


def ingress_container(template: dict) -> dict:
    return next(c for c in template["containers"].values() if "port" in c)


def wait_ready(container: str, port: str, probe: dict | None) -> str | None:
    """Cloud Run's startup probe: None when it passed, else why the revision is not ready."""
    probe = probe or {"path": None, "period_s": 0.25, "timeout_s": 1, "failures": 960, "initial_delay_s": 0}  # TCP
    time.sleep(probe["initial_delay_s"])
    for _ in range(probe["failures"]):
        inspected = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
        if not inspected["Running"]:
            # Nothing but the kernel's OOM killer sends a starting instance SIGKILL (exit code 137). Debian 12's
            # engine (docker.io 20.10) on cgroup v2 often leaves OOMKilled false for it (hashicorp/nomad#13119).
            killed = inspected.get("OOMKilled") or inspected["ExitCode"] == 137
            reason = "out of memory" if killed else f"exit code {inspected['ExitCode']}"
            return f"The user-provided container failed to start and listen on the port defined by PORT=8080 ({reason})."
        try:
            if (
                probe["path"] is None
                or requests.get(f"http://127.0.0.1:{port}{probe['path']}", timeout=probe["timeout_s"]).status_code < 400
            ):
                return None
        except requests.RequestException:
            pass
        time.sleep(probe["period_s"])
    return "The user-provided container failed the configured startup probe checks."


def require_amd64(image: str) -> None:
    """Cloud Run runs linux/amd64 only, and refuses another image before it creates a revision. Engines differ on
    an image of another platform: Docker 20.10 pulls it anyway, 25 and later refuse ("does not match the
    specified platform"); both are that refusal."""
    pulled = docker("pull", "--platform", PLATFORM, image, check=False)
    if pulled.returncode != 0 and "does not match the specified platform" not in pulled.stderr:
        raise Failed(f"docker pull: {pulled.stderr.strip()}")
    wrong = pulled.returncode != 0
    if not wrong:
        wrong = docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip() != PLATFORM
    if wrong:
        raise Failed(
            f"Cloud Run does not support image '{image}': Container manifest type "
            "'application/vnd.docker.distribution.manifest.v2+json' must support amd64/linux."
        )


def deploy_service(positional: list[str], flags: dict) -> None:
    name = positional[0]
    previous = read_state()["services"].get(name)
    template = next_template(previous["template"] if previous else None, flags["_args"])
    app = ingress_container(template)
    image = app["image"]
    require_memory(app.get("memory", "512Mi"))
    require_amd64(image)
    with state() as data:
        service = data["services"].get(name)
        if service is None and "no-traffic" in flags:
            raise Failed("--no-traffic not supported when creating a new service.")
        if service is None:
            service = {
                "name": name, "revisions": [], "traffic": [{"latestRevision": True, "percent": 100}], "tags": {},
                "latestReadyRevisionName": None, "latestCreatedRevisionName": None, "public": False, "url": None,
            }  # fmt: skip
            data["services"][name] = service
            service["url"] = start_router(data, name)
        if "allow-unauthenticated" in flags:
            service["public"] = True
        if "no-allow-unauthenticated" in flags:
            service["public"] = False
        number = len(service["revisions"]) + 1
        service["template"] = template
        revision = {
            "name": f"{name}-{number:05d}-{revision_suffix()}",
            "image": image,
            "env": key_values(app.get("set-env-vars", "")),
            "startup": probe_spec(app.get("startup-probe")),
            "liveness": probe_spec(app.get("liveness-probe")),
            "cpu": app.get("cpu", "1"),
            "memory": app.get("memory", "512Mi"),
            "created": now(),
            "ready": False,
            "container": None,
            "port": None,
            "args": flags["_args"],
            "scrape": scrape_endpoint(data, template),
            "location": one(flags, "region") or data.get("config", {}).get("run/region", ""),
            "project": one(flags, "project", "stand-in-project"),
        }
        revision["env"].update(google_apis(data))
        service["revisions"].append(revision)
        service["latestCreatedRevisionName"] = revision["name"]
        if "no-traffic" in flags:  # what followed the latest is pinned to the revision it was bound to
            for target in service["traffic"]:
                if target.pop("latestRevision", False):
                    target["revisionName"] = service["latestReadyRevisionName"]
    print(f"Deploying container to Cloud Run service [{name}]", file=sys.stderr)
    container, port = container_of(STATE_DIR, revision["name"]), str(free_port())
    environment = {**revision["env"], "PORT": "8080", "K_SERVICE": name, "K_REVISION": revision["name"]}
    environment["K_CONFIGURATION"] = name
    docker(
        "run", "-d", "--name", container, "--label", f"{LABEL}={STATE_DIR}", "--platform", PLATFORM,
        "--cpus", revision["cpu"], "--memory", memory_limit(revision["memory"]),
        *env_options(environment),
        "-p", f"127.0.0.1:{port}:8080", image,
    )  # fmt: skip
    failure = wait_ready(container, port, revision["startup"])
    with state() as data:
        service = data["services"][name]
        stored = next(r for r in service["revisions"] if r["name"] == revision["name"])
        stored.update(container=container, port=port, ready=failure is None, failure=failure)
        if failure is None:
            service["latestReadyRevisionName"] = stored["name"]
            write_scrape_targets(data)
        for tag in flags.get("tag", []):
            if failure is None:
                entry = service["tags"].get(tag) or {"url": start_router(data, name, tag)}
                service["tags"][tag] = {**entry, "revision": stored["name"]}
        served = resolved_traffic(service).get(stored["name"], 0)
    if failure:
        docker("rm", "-f", container, check=False)
        raise Failed(f"Revision '{revision['name']}' is not ready and cannot serve traffic. {failure}")
    print(
        f"Service [{name}] revision [{revision['name']}] has been deployed and is serving {served} percent of traffic.\n"
        f"Service URL: {service['url']}",
        file=sys.stderr,
    )


def update_traffic(positional: list[str], flags: dict) -> None:
    with state() as data:
        service = data["services"].get(positional[0])
        if service is None:
            raise Failed(f"Service [{positional[0]}] could not be found.")
        if "to-latest" in flags:
            service["traffic"] = [{"latestRevision": True, "percent": 100}]
        else:
            if "to-tags" in flags:
                assigned = {service["tags"][tag]["revision"]: int(p) for tag, p in key_values(one(flags, "to-tags")).items()}
            else:
                assigned = {rev: int(p) for rev, p in key_values(one(flags, "to-revisions")).items()}
            known = {r["name"] for r in service["revisions"] if r["ready"]} | {"LATEST"}
            if unknown := set(assigned) - known:
                raise Failed(f"Revision(s) not found or not ready: {', '.join(sorted(unknown))}")
            service["traffic"] = reassigned(service, assigned)
        shares = resolved_traffic(service)
    print("Traffic:\n" + "\n".join(f"  {percent}% {name}" for name, percent in shares.items()), file=sys.stderr)


def reassigned(service: dict, assigned: dict[str, int]) -> list[dict]:
    """gcloud's rule: the named targets get their percents; when these sum to under 100, the targets now
    serving that were not named are scaled to the rest, in proportion to their current percents."""
    if sum(assigned.values()) > 100:
        raise Failed("Total traffic percentage must not exceed 100.")
    current = {("LATEST" if t.get("latestRevision") else t["revisionName"]): t["percent"] for t in service["traffic"]}
    others = {key: percent for key, percent in current.items() if key not in assigned and percent}
    rest = 100 - sum(assigned.values())
    if rest and not others:
        raise Failed("Traffic percentages must add up to 100 when no other revision serves.")
    total = sum(others.values())
    scaled = {key: rest * percent // total for key, percent in others.items()} if others else {}
    if scaled:  # the rounding remainder to the largest
        scaled[max(scaled, key=scaled.get)] += rest - sum(scaled.values())
    targets = {**scaled, **assigned}
    return [
        {"latestRevision": True, "percent": percent} if key == "LATEST" else {"revisionName": key, "percent": percent}
        for key, percent in targets.items()
        if percent
    ]


def run_services(positional: list[str], flags: dict) -> str | None:
    verb, rest = positional[0], positional[1:]
    if verb == "update-traffic":
        update_traffic(rest, flags)
        return None
    data = read_state()
    if verb == "describe":
        service = data["services"].get(rest[0])
        if service is None:
            raise Failed(f"Cannot find service [{rest[0]}]")
        return value_format(describe_service(service), one(flags, "format", "json"))
    if verb == "list":
        return listed([describe_service(s) for s in data["services"].values()], flags)
    if verb == "delete":
        delete_service(rest[0])
        return None
    raise Failed(f"the stand-in does not model `gcloud run services {verb}`")


def delete_service(name: str) -> None:
    """The service, its revisions' containers and its URLs (routers) go."""
    with state() as data:
        service = data["services"].pop(name, None)
        if service is None:
            raise Failed(f"Cannot find service [{name}]")
        routers = data.pop("routers", {}).get(name, [])
        for pid in routers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        data["processes"] = [pid for pid in data["processes"] if pid not in routers]
        write_scrape_targets(data)
    for revision in service["revisions"]:
        docker("rm", "-f", container_of(STATE_DIR, revision["name"]), check=False)
    print(f"Deleted service [{name}].", file=sys.stderr)


def run_revisions(positional: list[str], flags: dict) -> str:
    if positional[0] != "list":
        raise Failed(f"the stand-in does not model `gcloud run revisions {positional[0]}`")
    service = read_state()["services"].get(one(flags, "service"))
    revisions = [
        {
            "metadata": {"name": r["name"], "creationTimestamp": r["created"]},
            "spec": {"containers": [{"image": r["image"]}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if r["ready"] else "False"}]},
        }
        for r in (service["revisions"] if service else [])
    ]
    return listed(revisions, flags)


# --- Managed Service for Prometheus ------------------------------------------------------------------------

SCRAPE_TARGETS = "scrape-targets.json"
SCRAPE_INTERVAL = "1s"  # the RunMonitoring says 30 s: shortened, so that a test's traffic is seen at once


def scrape_endpoint(data: dict, template: dict) -> dict | None:
    """What the sidecar of a revision scrapes, from the RunMonitoring in the secret mounted into its collector
    container (the sidecar's own default where none is mounted); None without a collector."""
    collector = template["containers"].get("collector")
    if collector is None:
        return None
    name, endpoint = "run-gmp-sidecar", {"port": "8080", "path": "/metrics"}
    if mounted := collector.get("set-secrets"):
        secret = mounted.partition("=")[2].rpartition(":")[0]
        if versions := data["secrets"].get(secret):
            import yaml

            config = yaml.safe_load(versions[-1])
            name, endpoint = config["metadata"]["name"], {**endpoint, **config["spec"]["endpoints"][0]}
    return {"job": name, "path": endpoint["path"]}


def write_scrape_targets(data: dict) -> None:
    """Prometheus's file-based discovery: every ready revision that runs the collector, with the labels the
    sidecar adds to each of its metrics (run-gmp-sidecar's confgenerator: service_name, revision_name,
    configuration_name; cluster __run__, namespace the service, job the RunMonitoring's name), and location and
    project_id as Managed Service for Prometheus stores them."""
    targets = [
        {
            "targets": [f"127.0.0.1:{revision['port']}"],
            "labels": {
                "__metrics_path__": revision["scrape"]["path"],
                "job": revision["scrape"]["job"],
                "service_name": name,
                "revision_name": revision["name"],
                "configuration_name": name,
                "cluster": "__run__",
                "namespace": name,
                "location": revision["location"],
                "project_id": revision["project"],
            },
        }
        for name, service in data["services"].items()
        for revision in service["revisions"]
        if revision["ready"] and revision.get("scrape")
    ]
    temporary = STATE_DIR / f"{SCRAPE_TARGETS}.tmp"
    temporary.write_text(json.dumps(targets))
    os.replace(temporary, STATE_DIR / SCRAPE_TARGETS)


def start_prometheus(state_dir: Path) -> str:
    """The project's Managed Service for Prometheus query endpoint: a real Prometheus (Debian's) that scrapes
    what write_scrape_targets lists; started once per project and ended by teardown. Its URL."""
    global STATE_DIR
    STATE_DIR = state_dir
    from scripts.dev.tools import require

    with state() as data:
        if "prometheus" in data:
            return data["prometheus"]
        if not (STATE_DIR / SCRAPE_TARGETS).exists():
            write_scrape_targets(data)
        port = free_port()
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [
                {
                    "job_name": "cloud-run",
                    "file_sd_configs": [{"files": [str(STATE_DIR / SCRAPE_TARGETS)], "refresh_interval": "1s"}],
                }
            ],
        }
        (STATE_DIR / "prometheus.yml").write_text(json.dumps(config))
        log = open(STATE_DIR / "prometheus.log", "a")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [
                require("prometheus"), f"--config.file={STATE_DIR / 'prometheus.yml'}",
                f"--storage.tsdb.path={STATE_DIR / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        data["processes"].append(process.pid)
        data["prometheus"] = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{data['prometheus']}/-/ready", timeout=1).status_code == 200:
                return data["prometheus"]
        time.sleep(0.1)
    raise Failed(f"Prometheus did not start: see {STATE_DIR / 'prometheus.log'}")


# --- Cloud Run jobs ----------------------------------------------------------------------------------------


def deploy_job(positional: list[str], flags: dict) -> None:
    tasks, parallelism = int(one(flags, "tasks", "1")), int(one(flags, "parallelism", "0"))
    if parallelism > tasks:  # "an integer between 0 and ... that doesn't exceed the number of tasks"
        raise Failed(f"spec.template.parallelism: must not exceed the task count ({parallelism} > {tasks})")
    require_memory(one(flags, "memory", "512Mi"))
    require_amd64(one(flags, "image"))
    with state() as data:
        data["jobs"][positional[0]] = {
            "image": one(flags, "image"),
            "command": one(flags, "command"),
            "args": (one(flags, "args", "") or "").split(",") if one(flags, "args") else [],
            "tasks": int(one(flags, "tasks", "1")),
            "parallelism": int(one(flags, "parallelism", "0")),
            "max_retries": int(one(flags, "max-retries", "3")),
            "task_timeout_s": float(one(flags, "task-timeout", "600s").rstrip("s")),
            "memory": one(flags, "memory", "512Mi"),
            "cpu": one(flags, "cpu", "1"),
            "env": key_values(one(flags, "set-env-vars", "") or ""),
            "executions": 0,
        }
    print(f"Job [{positional[0]}] has successfully been deployed.", file=sys.stderr)


def run_task(job: dict, execution: str, index: int, count: int, env: dict) -> tuple[int, int]:
    """One task, retried up to max_retries times; (its last exit status, attempts)."""
    for attempt in range(job["max_retries"] + 1):
        container = f"cloud-stand-in-{execution}-task{index}-{attempt}"
        variables = {
            **env,
            "CLOUD_RUN_JOB": execution.rsplit("-", 1)[0],
            "CLOUD_RUN_EXECUTION": execution,
            "CLOUD_RUN_TASK_INDEX": str(index),
            "CLOUD_RUN_TASK_COUNT": str(count),
            "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
        }
        docker(
            "run", "-d", "--name", container, "--label", f"{LABEL}={STATE_DIR}", "--platform", PLATFORM,
            "--cpus", job["cpu"], "--memory", memory_limit(job["memory"]),
            *env_options(variables),
            *(["--entrypoint", job["command"]] if job["command"] else []), job["image"], *job["args"],
        )  # fmt: skip
        try:
            status = int(docker("wait", container, timeout=job["task_timeout_s"]).stdout.strip())
        except subprocess.TimeoutExpired:
            status = 124
        logs = docker("logs", container, check=False)
        (STATE_DIR / f"{container}.log").write_text(logs.stdout + logs.stderr)
        docker("rm", "-f", container, check=False)
        if status == 0:
            return 0, attempt + 1
    return status, job["max_retries"] + 1


def execute_job(positional: list[str], flags: dict) -> None:
    name = positional[0]
    with state() as data:
        job = data["jobs"].get(name)
        if job is None:
            raise Failed(f"Job [{name}] could not be found.")
        job["executions"] += 1
        execution = f"{name}-{secrets.token_hex(3)[:5]}"
        apis = google_apis(data)
    env = {**job["env"], **key_values(one(flags, "update-env-vars", "") or ""), **apis}
    count = int(one(flags, "tasks", str(job["tasks"])))
    print(f"Creating execution [{execution}] of job [{name}]", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=job["parallelism"] or count) as pool:
        results = list(pool.map(lambda index: run_task(job, execution, index, count, env), range(count)))
    failed = [index for index, (status, _) in enumerate(results) if status != 0]
    attempts = sum(tries for _, tries in results)
    if failed:
        last = f"cloud-stand-in-{execution}-task{failed[0]}-{job['max_retries']}.log"
        tail = "\n".join((STATE_DIR / last).read_text().splitlines()[-10:])
        raise Failed(
            f"Execution [{execution}] failed: tasks {failed} failed after their retries ({attempts} attempts). "
            f"The last lines of task {failed[0]}'s log:\n{tail}"
        )
    print(f"Execution [{execution}] has successfully completed: {count} tasks, {attempts} attempts.", file=sys.stderr)


# --- Cloud Monitoring --------------------------------------------------------------------------------------


def resources(kind: str, project: str, collection: str, positional: list[str], flags: dict) -> str | None:
    """list / describe / create / update / delete of a named resource, as in the Monitoring API."""
    verb, rest = positional[0], positional[1:]
    with state(write=verb in ("create", "update", "delete")) as data:
        items = data[kind]
        if verb == "list":
            return listed(list(items.values()), flags)
        if verb in ("describe", "delete", "update") and rest[0] not in items:
            raise Failed(f"NOT_FOUND: {rest[0]}")
        if verb == "describe":
            return value_format(items[rest[0]], one(flags, "format", "json"))
        if verb == "delete":
            del items[rest[0]]
            return None
        source = one(flags, "policy-from-file") or one(flags, "config-from-file") or one(flags, "channel-content-from-file")
        body = json.loads(Path(source).read_text()) if source else {}
        if kind == "channels" and not source:
            body = {"displayName": one(flags, "display-name"), "type": one(flags, "type"),
                    "labels": key_values(one(flags, "channel-labels", "") or "")}  # fmt: skip
        if verb == "create":
            name = f"projects/{project}/{collection}/{secrets.randbelow(10**16)}"
            items[name] = as_returned(kind, name, body, created=now())
            return value_format(items[name], one(flags, "format", "value(name)"))
        if verb == "update":
            if kind == "dashboards" and body.get("etag") != items[rest[0]]["etag"]:
                raise Failed("FAILED_PRECONDITION: the dashboard's etag does not match (read it, then update)")
            created = items[rest[0]].get("creationRecord", {}).get("mutateTime", now())
            items[rest[0]] = as_returned(kind, rest[0], body, created=created)
            return None
    raise Failed(f"the stand-in does not model `gcloud monitoring {kind} {verb}`")


def without_defaults(value: object) -> object:
    """proto3 JSON as the APIs write it: fields at their default (false, zero, empty) are left out."""
    if isinstance(value, dict):
        kept = {key: without_defaults(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, False, 0, "", [], {})}
    if isinstance(value, list):
        return [without_defaults(item) for item in value]
    return value


def as_returned(kind: str, name: str, body: dict, created: str) -> dict:
    """A Monitoring resource as the API answers for it: defaults omitted, its name and etag, for a policy each
    condition's name and the creation and mutation records."""
    body = {key: value for key, value in body.items() if key not in ("name", "etag")}
    resource = {**without_defaults(body), "name": name, "etag": secrets.token_hex(8)}
    if kind == "policies":
        for condition in resource.get("conditions", []):
            condition["name"] = f"{name}/conditions/{secrets.randbelow(10**16)}"
        resource["creationRecord"] = {"mutateTime": created, "mutatedBy": "stand-in@example.com"}
        resource["mutationRecord"] = {"mutateTime": now(), "mutatedBy": "stand-in@example.com"}
    return resource


def migrate_policies(project: str, flags: dict) -> None:
    """Creates a policy per alerting rule on every run (it does not update existing ones)."""
    import yaml

    rules = yaml.safe_load(Path(one(flags, "policies-from-prometheus-alert-rules-yaml")).read_text())
    with state() as data:
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    name = f"projects/{project}/alertPolicies/{secrets.randbelow(10**16)}"
                    data["policies"][name] = {"name": name, "displayName": rule["alert"], "updated": now()}


# --- Cloud Storage -----------------------------------------------------------------------------------------


def storage(positional: list[str], flags: dict) -> str | None:
    from google.api_core.exceptions import NotFound

    try:
        return storage_command(positional, flags)
    except NotFound as missing:  # a bucket that does not exist, in gcloud's words
        raise Failed(f"{next((p for p in positional if p.startswith('gs://')), 'the bucket')} not found: 404.") from missing


def storage_command(positional: list[str], flags: dict) -> str | None:
    from google.cloud import storage as gcs

    client = gcs.Client(project="stand-in")
    verb, rest = positional[0], positional[1:]

    def split(url: str) -> tuple[str, str]:
        bucket, _, name = url.removeprefix("gs://").partition("/")
        return bucket, name

    if rest[:1] == ["create"] and verb == "buckets":
        for url in rest[1:]:
            client.create_bucket(split(url)[0])
        if "uniform-bucket-level-access" in flags:
            with state() as data:
                data["ubla"] += [split(url)[0] for url in rest[1:]]
        return None
    if verb == "buckets" and rest[:1] == ["add-iam-policy-binding"]:
        if one(flags, "condition") and split(rest[1])[0] not in read_state()["ubla"]:
            raise Failed(f"HTTPError 400: IAM conditions can only be used on buckets with uniform bucket-level access: {rest[1]}")
        with state() as data:
            data["iam"].append({"resource": rest[1], **{k: one(flags, k) for k in ("member", "role", "condition")}})
        return None
    if verb == "cp":
        *sources, target = rest
        bucket, prefix = split(target)
        for source in sources:
            name = prefix + Path(source).name if prefix == "" or prefix.endswith("/") else prefix
            client.bucket(bucket).blob(name).upload_from_filename(source)
        return None
    if verb == "cat":
        import fnmatch

        bucket, pattern = split(rest[0])
        prefix = pattern.split("*", 1)[0]
        names = sorted(b.name for b in client.list_blobs(bucket, prefix=prefix) if fnmatch.fnmatch(b.name, pattern))
        if not names:
            raise Failed(f"The following URLs matched no objects or files: {rest[0]}")
        sys.stdout.write("".join(client.bucket(bucket).blob(n).download_as_text() for n in names))
        return None
    if verb == "rm" and "recursive" in flags:
        for url in rest:
            bucket, prefix = split(url)
            for blob in client.list_blobs(bucket, prefix=prefix or None):
                blob.delete()
            if not prefix:
                client.bucket(bucket).delete()
        return None
    if verb == "ls":
        bucket, prefix = split(rest[0])
        names = [f"gs://{bucket}/{b.name}" for b in client.list_blobs(bucket, prefix=prefix)]
        if not names:
            raise Failed("One or more URLs matched no objects.")
        return "\n".join(names)
    raise Failed(f"the stand-in does not model `gcloud storage {verb}`")


# --- the command line --------------------------------------------------------------------------------------

NO_OPS = {  # accepted and recorded: set-up with no effect on anything this stand-in models
    ("services", "enable"), ("artifacts", "repositories"), ("iam", "service-accounts"), ("projects", "add-iam-policy-binding"),
    ("auth", "configure-docker"), ("auth", "application-default"), ("auth", "login"),
}  # fmt: skip


def dispatch(args: list[str]) -> str | None:
    if args and args[0] in ("alpha", "beta"):
        args = args[1:]
    positional, flags = parse(args)
    flags["_args"] = args
    project = one(flags, "project", "stand-in-project")
    group = tuple(positional[:2])
    if positional[:1] == ["run"]:
        require_region(flags, read_state())
    if fault := os.environ.get("GCLOUD_STAND_IN_FAULT"):  # COMMAND PREFIX=MESSAGE: that command fails so
        prefix, _, message = fault.partition("=")
        if shlex.join(positional).startswith(prefix):
            raise Failed(message)
    if group == ("auth", "print-identity-token"):
        return identity_token()
    if group == ("auth", "print-access-token"):
        return access_token()
    if group == ("config", "set"):
        with state() as data:
            data.setdefault("config", {})[positional[2]] = positional[3]
        return None
    if group in NO_OPS:
        with state() as data:
            data["iam"].append({"command": shlex.join(args)})
        return None
    if group == ("run", "deploy"):
        deploy_service(positional[2:], flags)
        return None
    if group == ("run", "services"):
        return run_services(positional[2:], flags)
    if group == ("run", "revisions"):
        return run_revisions(positional[2:], flags)
    if group == ("run", "jobs"):
        verb = positional[2]
        if verb == "deploy":
            deploy_job(positional[3:], flags)
            return None
        if verb == "execute":
            execute_job(positional[3:], flags)
            return None
        if verb == "delete":
            with state() as data:
                if data["jobs"].pop(positional[3], None) is None:
                    raise Failed(f"Job [{positional[3]}] could not be found.")
            return None
    if group == ("secrets", "describe"):
        if positional[2] not in read_state()["secrets"]:
            raise Failed(f"NOT_FOUND: Secret [{positional[2]}] not found")
        return positional[2]
    if group == ("secrets", "create") or positional[:3] == ["secrets", "versions", "add"]:
        name = positional[2] if positional[1] == "create" else positional[3]
        with state() as data:
            versions = data["secrets"].setdefault(name, [])
            versions.append(Path(one(flags, "data-file")).read_text())
        return None
    if group == ("secrets", "delete"):
        with state() as data:
            if data["secrets"].pop(positional[2], None) is None:
                raise Failed(f"NOT_FOUND: Secret [{positional[2]}] not found")
        return None
    if group == ("secrets", "add-iam-policy-binding"):
        with state() as data:
            data["iam"].append({"resource": positional[2], "member": one(flags, "member"), "role": one(flags, "role")})
        return None
    if group == ("monitoring", "policies") and positional[2] == "migrate":
        migrate_policies(project, flags)
        return None
    for kind, collection in (("policies", "alertPolicies"), ("dashboards", "dashboards"), ("channels", "notificationChannels")):
        if group == ("monitoring", kind):
            return resources(kind, project, collection, positional[2:], flags)
    if positional[:1] == ["storage"]:
        return storage(positional[1:], flags)
    raise Failed(f"the stand-in does not model `gcloud {shlex.join(args)}`")


def main() -> int:
    with open(STATE_DIR / "calls.log", "a") if STATE_DIR.is_dir() else open(os.devnull, "w") as log:
        log.write(shlex.join(sys.argv[1:]) + "\n")
    try:
        output = dispatch(sys.argv[1:])
    except Failed as error:
        print(f"ERROR: {error}" if str(error).startswith("(gcloud.") else f"ERROR: (gcloud) {error}", file=sys.stderr)
        return error.status
    if output is not None:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
