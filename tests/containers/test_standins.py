"""The stand-in images (tests/containers/README.md): every Containerfile says what it
replaces and what it cannot show, every image the repository pins has a stand-in, and the
tags built are the tags pinned, read from docker-compose.yml and the Dockerfiles (never a
second list). The last test builds (cached) with podman: it skips locally without podman
and fails under CI=true (tests/support/services.py `require`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.containers import standins
from tests.support.services import require

FOLDERS = sorted(p for p in standins.STANDINS.iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_containerfile_header_says_what_it_replaces_and_cannot_show(folder: Path) -> None:
    containerfile = folder / "Containerfile"
    assert containerfile.is_file(), f"{folder} has no Containerfile"
    lines = containerfile.read_text().splitlines()
    assert lines[0].startswith("# Stand-in for: "), "first line names the replaced repository"
    header = standins.header(containerfile)
    cannot = re.search(r"^# Cannot show: (.+)$", header, re.MULTILINE)
    assert cannot and len(cannot[1].strip()) > 10, "the header says what it cannot show"
    # One shared base (the mmdebstrap import): the build passes it as BASE.
    assert "ARG BASE\nFROM ${BASE}\n" in containerfile.read_text()


def test_every_pinned_image_has_exactly_one_standin() -> None:
    planned = standins.plan()
    assert sorted(ref for ref, _ in planned) == sorted(standins.pinned_images())
    # every stand-in folder serves at least one pin
    assert {standin.name for _, standin in planned} == {folder.name for folder in FOLDERS}


def copy_pinning_files(root: Path) -> Path:
    for relative in ("docker-compose.yml", "kong/Dockerfile", "backend/Dockerfile"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(standins.ROOT / relative, root / relative)
    return root


def test_tags_follow_the_pinning_files(tmp_path: Path) -> None:
    root = copy_pinning_files(tmp_path)
    compose = root / "docker-compose.yml"
    prometheus = next(r for r in standins.pinned_images() if r.startswith("prom/prometheus:"))
    compose.write_text(compose.read_text().replace(prometheus, "prom/prometheus:v9.9.9"))
    dockerfile = root / "kong/Dockerfile"
    dockerfile.write_text(
        re.sub(
            r"^ARG KONG_IMAGE=.*$",
            "ARG KONG_IMAGE=kong:9.9.9-ubuntu",
            dockerfile.read_text(),
            flags=re.M,
        )
    )
    planned = {standins.qualified(ref): standin.name for ref, standin in standins.plan(root)}
    assert planned["docker.io/prom/prometheus:v9.9.9"] == "prometheus"
    assert planned["docker.io/library/kong:9.9.9-ubuntu"] == "kong"
    assert standins.qualified(prometheus) not in planned


def test_a_pin_without_a_standin_stops_the_build(tmp_path: Path) -> None:
    root = copy_pinning_files(tmp_path)
    compose = root / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace(
            "  redis:\n", "  cache:\n    image: memcached:1.6\n  redis:\n", 1
        )
    )
    with pytest.raises(SystemExit, match=re.escape("memcached:1.6")):
        standins.plan(root)


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("postgres:16.4-bookworm", "docker.io/library/postgres:16.4-bookworm"),
        ("prom/prometheus:v2.55.1", "docker.io/prom/prometheus:v2.55.1"),
        ("ghcr.io/org/image:1", "ghcr.io/org/image:1"),
        ("localhost/api-edge-standin-base:bookworm", "localhost/api-edge-standin-base:bookworm"),
        ("registry:5000/image:1", "registry:5000/image:1"),
    ],
)
def test_images_are_tagged_as_docker_names_them(ref: str, name: str) -> None:
    assert standins.qualified(ref) == name
    assert standins.repository(ref) == ref.rsplit(":", 1)[0]


def test_built_standins_carry_the_pinned_tags() -> None:
    require(None if shutil.which("podman") else "podman is not installed (.ci/run installs it)")
    assert standins.main([]) == 0  # builds what is missing or stale; cached images stay
    built = standins.standin_images()
    for ref, standin in standins.plan():
        labels = built.get(standins.qualified(ref))
        assert labels is not None, f"{ref}: no image under {standins.qualified(ref)}"
        assert labels[standins.LABEL_PINNED] == ref
        assert labels[standins.LABEL] == standin.name
