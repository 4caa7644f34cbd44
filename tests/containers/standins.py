"""Builds the stand-in images (tests/containers/README.md) with podman.

The tags come from the repository itself at build time: every ``image:`` of a
docker-compose.yml service that has no ``build:`` and every ``ARG *_IMAGE=`` default of the
Dockerfiles. Each stand-in folder's Containerfile names in its header the image repository
it replaces (``# Stand-in for: <repository>``); a pinned image without a stand-in, or a
stand-in nobody pins, stops the build.

All stand-ins share one base, Debian bookworm built by mmdebstrap and imported with
``podman import`` (no registry is reachable), which carries python3, the CA certificates
of this machine and apt's package lists, so a stand-in's apt-get needs no update.

An image is rebuilt only when its inputs changed: the hash of its build context (the
folder plus the files generated for it) and of its base is a label on the image.

    python -m tests.containers.standins            # build what is missing or stale
    python -m tests.containers.standins --plan     # print pinned ref -> stand-in, build nothing
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILES = (ROOT / "kong/Dockerfile", ROOT / "backend/Dockerfile")
CONTAINERS_CONF = HERE / "containers.conf"
CACHE = ROOT / "var/containers/apt-archives"

BASE_REF = "localhost/api-edge-standin-base:bookworm"
# What every stand-in needs: python3 (most stand-ins are small Python servers), venv (the
# python and kong stand-ins), wget (the compose healthchecks of the official images that
# ship busybox), the CA store (PyPI through this machine's TLS proxy).
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv", "wget")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# Like the official slim images: no manuals or docs.
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*")
# Raised when build_standin's podman flags change (the hash covers only the context).
STANDIN_RECIPE = 2
# Raised when build_base's commands change (the hash above covers only its inputs).
BASE_RECIPE = 3

LABEL = "io.api-edge.standin"  # the stand-in folder's name
LABEL_HASH = "io.api-edge.standin.hash"
LABEL_PINNED = "io.api-edge.standin.pinned"

HEADER_FOR = re.compile(r"^# Stand-in for: (?P<repos>.+)$", re.MULTILINE)
HEADER_CANNOT = re.compile(r"^# Cannot show: \S", re.MULTILINE)
ARG_IMAGE = re.compile(r"^ARG (?P<name>[A-Z0-9_]+_IMAGE)=(?P<ref>\S+)\s*$", re.MULTILINE)


def repository(ref: str) -> str:
    """``prom/prometheus:v2.55.1`` -> ``prom/prometheus`` (a digest or tag stripped)."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: -len(last)] + last.split(":", 1)[0]


def qualified(ref: str) -> str:
    """The name Docker gives a short reference: ``docker.io/library/postgres:16.4``.

    Podman keeps a short ``-t`` name under ``localhost/``, where Compose's lookup of
    ``postgres:16.4`` through the Docker API (normalized to docker.io) does not look.
    """
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def pinned_images(root: Path = ROOT) -> dict[str, list[str]]:
    """Every third-party image the repository pins -> where it is pinned."""
    pins: dict[str, list[str]] = {}
    compose = yaml.safe_load((root / COMPOSE_FILE.name).read_text())
    for name, service in compose["services"].items():
        if "build" not in service and "image" in service:
            pins.setdefault(service["image"], []).append(f"docker-compose.yml services.{name}")
    for dockerfile in DOCKERFILES:
        relative = dockerfile.relative_to(ROOT)
        for match in ARG_IMAGE.finditer((root / relative).read_text()):
            pins.setdefault(match["ref"], []).append(f"{relative} ARG {match['name']}")
    return pins


@dataclass(frozen=True)
class Standin:
    name: str
    folder: Path
    replaces: tuple[str, ...]

    @property
    def containerfile(self) -> Path:
        return self.folder / "Containerfile"


def header(containerfile: Path) -> str:
    """The Containerfile's leading comment block."""
    lines = []
    for line in containerfile.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def standins(folder: Path = STANDINS) -> list[Standin]:
    found = []
    for containerfile in sorted(folder.glob("*/Containerfile")):
        text = header(containerfile)
        match = HEADER_FOR.search(text)
        if not match:
            raise SystemExit(f"{containerfile}: no '# Stand-in for: <repository>' header line")
        if not HEADER_CANNOT.search(text):
            raise SystemExit(f"{containerfile}: no '# Cannot show: …' header line")
        replaces = tuple(r.strip() for r in match["repos"].split(","))
        found.append(Standin(containerfile.parent.name, containerfile.parent, replaces))
    return found


def plan(
    root: Path = ROOT, folder: Path = STANDINS, strict: bool = True
) -> list[tuple[str, Standin]]:
    """(pinned ref, its stand-in) for every pin; raises on a pin or stand-in left over
    (``strict=False``: pins without a stand-in are left out)."""
    by_repo: dict[str, Standin] = {}
    for standin in standins(folder):
        for repo in standin.replaces:
            if repo in by_repo:
                both = f"{by_repo[repo].name} and {standin.name}"
                raise SystemExit(f"{repo}: replaced by both {both}")
            by_repo[repo] = standin
    pins = pinned_images(root)
    missing = sorted(ref for ref in pins if repository(ref) not in by_repo)
    if missing and strict:
        raise SystemExit(f"pinned without a stand-in: {', '.join(missing)}")
    used = {by_repo[repository(ref)].name for ref in pins if repository(ref) in by_repo}
    unused = sorted(s.name for s in by_repo.values() if s.name not in used)
    if unused:
        raise SystemExit(f"stand-ins no file pins: {', '.join(sorted(set(unused)))}")
    ordered = sorted(pins, key=lambda ref: (ref.split(":")[0] != "python", ref))
    return [(ref, by_repo[repository(ref)]) for ref in ordered if repository(ref) in by_repo]


# --- podman ------------------------------------------------------------------------------


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
    return subprocess.run(
        ["podman", *args], env=env, check=check, text=True, capture_output=capture
    )


def image_labels(ref: str) -> dict[str, str] | None:
    done = podman("image", "inspect", "--format", "{{json .Labels}}", ref, check=False)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout) or {}


def standin_images() -> dict[str, dict[str, str]]:
    """Every tag of an image carrying LABEL_PINNED -> its labels: the stand-ins, and the
    images built FROM them (labels are inherited)."""
    listed = podman("images", "--format", "json", "--filter", f"label={LABEL_PINNED}").stdout
    images = json.loads(listed or "[]")
    return {name: image["Labels"] for image in images for name in image.get("Names") or []}


def image_id(ref: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def digest_files(paths: list[Path], base: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


# --- the base ----------------------------------------------------------------------------


def base_hash() -> str:
    """The base's inputs, and the day: its package lists age, so it is rebuilt daily before
    apt asks the mirror for a file it dropped."""
    cas = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
    recipe = [BASE_RECIPE, BASE_PACKAGES, DPKG_EXCLUDES, datetime.date.today().isoformat()]
    return digest_files(cas, HOST_CA_DIR, json.dumps(recipe))


def build_base() -> str:
    wanted = base_hash()
    labels = image_labels(BASE_REF)
    if labels and labels.get(LABEL_HASH) == wanted:
        return "cached"
    cache = CACHE / "base"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standin-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        archives = '"$1"/var/cache/apt/archives'
        hooks = [
            # apt's downloads kept on the host between runs (var/containers/apt-archives)
            f"--setup-hook=mkdir -p {archives} && cp -a {cache}/. {archives}/",
            f"--customize-hook=cp -a {archives}/. {cache}/ ; rm -rf {archives}/*.deb",
            # this machine's CA certificates (the TLS proxy in front of PyPI)
            f'--customize-hook=mkdir -p "$1"{HOST_CA_DIR}'
            f' && cp -a {HOST_CA_DIR}/. "$1"{HOST_CA_DIR}/'
            ' && chroot "$1" update-ca-certificates --fresh >/dev/null',
            # services installed by a stand-in's apt-get are not started at build time
            "--customize-hook=printf '#!/bin/sh\\nexit 101\\n' >\"$1\"/usr/sbin/policy-rc.d"
            ' && chmod 755 "$1"/usr/sbin/policy-rc.d',
        ]
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--quiet",
                f"--include={','.join(BASE_PACKAGES)}",
                "--components=main",
                "--skip=cleanup/apt/lists",
                # no translated package descriptions: fewer index downloads, here and in
                # every stand-in's apt-get (mmdebstrap keeps the option in the image)
                '--aptopt=Acquire::Languages "none"',
                *[f"--dpkgopt=path-exclude={path}" for path in DPKG_EXCLUDES],
                # the dpkg filters stay for the stand-ins' own apt-get installs
                *hooks,
                "bookworm",
                str(tarball),
                "deb http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian bookworm-updates main",
                "deb http://deb.debian.org/debian-security bookworm-security main",
            ],
            check=True,
        )
        podman(
            "import",
            "--change",
            f"LABEL {LABEL}=base",
            "--change",
            f"LABEL {LABEL_HASH}={wanted}",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
            "--change",
            'CMD ["bash"]',
            str(tarball),
            BASE_REF,
        )
    return "built"


# --- generated context files -------------------------------------------------------------


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools/bin/uv")
    if not Path(found).exists():
        raise SystemExit("uv not found (make setup installs it)")
    return found


def locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for entry in lock["package"]:
        if entry["name"] == package:
            return str(entry["version"])
    raise SystemExit(f"{package} is not in uv.lock")


def kong_context(context: Path) -> None:
    """The harness (kong/harness) as a wheel and its locked requirements: the stand-in's
    `kong` command runs it."""
    run = {"check": True, "cwd": ROOT, "capture_output": True}
    subprocess.run(
        [uv(), "build", "--wheel", "--package", "kong-harness", "--out-dir", str(context / "dist")],
        **run,
    )
    subprocess.run(
        [
            uv(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-workspace",
            "--package",
            "kong-harness",
            "--output-file",
            str(context / "dist/requirements.txt"),
        ],
        **run,
    )


def jaeger_context(context: Path) -> None:
    """The repository's OTLP decoder (tests/support/otlp_receiver.py) and the locked versions of the
    packages it and the stand-in import."""
    shutil.copy(ROOT / "tests/support/otlp_receiver.py", context / "otlp_receiver.py")
    (context / "requirements.txt").write_text(
        "".join(
            f"{p}=={locked_version(p)}\n" for p in ("opentelemetry-proto", "protobuf", "pyyaml")
        )
    )


# Files generated into a stand-in's context, and the repository files they come from (what
# the cache hash covers: a built wheel differs on every build by its timestamps).
CONTEXTS = {"kong": kong_context, "jaeger": jaeger_context}
CONTEXT_INPUTS = {
    "kong": ("kong/harness/pyproject.toml", "kong/harness/src", "uv.lock"),
    "jaeger": ("tests/support/otlp_receiver.py", "uv.lock"),
}


def input_files(standin: Standin) -> list[Path]:
    files = [p for p in standin.folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for name in CONTEXT_INPUTS.get(standin.name, ()):
        path = ROOT / name
        found = path.rglob("*") if path.is_dir() else [path]
        files += [p for p in found if p.is_file() and "__pycache__" not in p.parts]
    return files


def build_standin(ref: str, standin: Standin, base_id: str) -> str:
    target = qualified(ref)
    wanted = digest_files(input_files(standin), ROOT, f"{STANDIN_RECIPE}\0{ref}\0{base_id}")
    labels = image_labels(target)
    if labels and labels.get(LABEL_HASH) == wanted:
        return "cached"
    with tempfile.TemporaryDirectory(prefix=f"standin-{standin.name}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(standin.folder, context, ignore=shutil.ignore_patterns("__pycache__"))
        if standin.name in CONTEXTS:
            CONTEXTS[standin.name](context)
        # One apt cache per stand-in: builds run in parallel, and apt locks its archives.
        cache = CACHE / standin.name
        cache.mkdir(parents=True, exist_ok=True)
        tag = ref.split("@", 1)[0].rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else ""
        podman(
            "build",
            "--pull=never",
            # Docker's image format: OCI images carry no HEALTHCHECK
            "--format=docker",
            "--network=host",
            f"--volume={cache}:/var/cache/apt/archives",
            f"--build-arg=BASE={BASE_REF}",
            f"--build-arg=PINNED_TAG={tag}",
            f"--label={LABEL}={standin.name}",
            f"--label={LABEL_HASH}={wanted}",
            f"--label={LABEL_PINNED}={ref}",
            f"--tag={target}",
            "--file=Containerfile",
            str(context),
        )
    return "built"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", action="store_true", help="print the plan, build nothing")
    parser.add_argument("--jobs", type=int, default=3, help="stand-ins built at once")
    parser.add_argument("only", nargs="*", help="stand-in folder names (default: all)")
    args = parser.parse_args(argv)
    steps = plan(strict=not args.only)
    if args.only:
        steps = [(ref, s) for ref, s in steps if s.name in args.only]
    if args.plan:
        for ref, standin in steps:
            print(f"{qualified(ref):55} <- tests/containers/standins/{standin.name}")
        return 0
    if shutil.which("podman") is None:
        print("standins: podman is not installed (.ci/run installs it)", file=sys.stderr)
        return 1
    total = time.monotonic()
    started = time.monotonic()
    print(f"{BASE_REF:55} {build_base():7} {time.monotonic() - started:6.1f}s", flush=True)
    base_id = image_id(BASE_REF)

    def build(step: tuple[str, Standin]) -> str:
        ref, standin = step
        started = time.monotonic()
        try:
            outcome = build_standin(ref, standin, base_id)
        except subprocess.CalledProcessError as exc:
            print(exc.stdout, exc.stderr, sep="\n", file=sys.stderr, flush=True)
            outcome = "FAILED"
        print(f"{qualified(ref):55} {outcome:7} {time.monotonic() - started:6.1f}s", flush=True)
        return outcome

    # The builds wait on the network (apt, PyPI) as much as on the CPU: a few at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(build, steps))
    # the stand-ins' own images a rebuild left without a tag, nobody else's
    podman("image", "prune", "--force", f"--filter=label={LABEL}")
    print(f"{'total':55} {'':7} {time.monotonic() - total:6.1f}s")
    return 1 if "FAILED" in outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
