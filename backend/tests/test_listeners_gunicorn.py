"""The real backend's three listeners and its /metrics under gunicorn (2 gthread workers,
``backend/gunicorn.conf.py``; tests/support/backend.py binds three free ports)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.support.backend import Backend, running_backend

pytestmark = pytest.mark.gunicorn  # the real backend as a process: not in make test-fast
LIVE = "/api/auth/health/live"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    workdir = tmp_path_factory.mktemp("listeners-backend")
    # Named here to look at the workers' files; gunicorn.conf.py empties it at start.
    (workdir / "prometheus").mkdir()
    with running_backend(
        workdir, {"PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}
    ) as server:
        yield server


def status(url: str, method: str = "GET") -> int:
    # A new connection per request: gunicorn's workers each accept from the listener.
    return httpx.request(method, url, timeout=10).status_code


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in the text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def scrape(backend: Backend) -> str:
    response = httpx.get(f"{backend.metrics_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_each_listener_serves_its_routes_and_404s_the_others(backend: Backend) -> None:
    public, internal, metrics = backend.url, backend.internal_url, backend.metrics_url
    assert status(f"{public}{LIVE}") == 200
    assert status(f"{internal}/internal/auth/users/batch", "POST") == 401  # routed: no key
    assert status(f"{internal}/admin/login/") == 200
    assert status(f"{metrics}/metrics") == 200
    assert status(f"{metrics}/api/auth/metrics") == 200
    for url in (
        f"{public}/internal/auth/users/batch",
        f"{public}/admin/login/",
        f"{public}/metrics",
        f"{internal}/api/auth/login",
        f"{internal}{LIVE}",
        f"{internal}/metrics",
        f"{metrics}{LIVE}",
        f"{metrics}/admin/login/",
        f"{metrics}/internal/auth/users/batch",
    ):
        response = httpx.get(url, timeout=10)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found", url


def test_a_host_header_naming_another_port_does_not_change_the_listener(backend: Backend) -> None:
    response = httpx.get(
        f"{backend.url}/metrics", timeout=10, headers={"Host": f"127.0.0.1:{backend.metrics_port}"}
    )
    assert response.status_code == 404


def _workers_that_counted(directory: Path, route: str) -> int:
    """How many worker processes' files hold a sample of ``route`` (multiprocess files)."""
    counted = 0
    for path in directory.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        if any(
            route in key and "auth_http_requests_total" in key and value > 0
            for key, value, *_ in values
        ):
            counted += 1
    return counted


def test_metrics_sum_every_workers_requests(backend: Backend) -> None:
    labels = {
        "listener": "public",
        "route": "/api/auth/health/live",
        "method": "GET",
        "status": "200",
    }
    before = sample(scrape(backend), "auth_http_requests_total", **labels)
    directory = Path(backend.env["PROMETHEUS_MULTIPROC_DIR"])
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Until both workers have served some (each writes its own file), at most 400.
        while sent < 400:
            assert all(s == 200 for s in pool.map(status, [f"{backend.url}{LIVE}"] * 40))
            sent += 40
            if _workers_that_counted(directory, '"/api/auth/health/live"') >= 2:
                break
    assert _workers_that_counted(directory, '"/api/auth/health/live"') >= 2
    for _ in range(4):  # whichever worker answers the scrape, it sums them all
        text = scrape(backend)
        assert sample(text, "auth_http_requests_total", **labels) == before + sent
    assert "# TYPE auth_http_request_duration_seconds histogram" in text


def test_http_metrics_are_labelled_by_route_template(backend: Backend) -> None:
    labels = {
        "listener": "internal",
        "route": "/internal/auth/users/<user_id>",
        "method": "GET",
        "status": "401",
    }
    before = sample(scrape(backend), "auth_http_requests_total", **labels)
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for user_id in ids:
        assert status(f"{backend.internal_url}/internal/auth/users/{user_id}") == 401
    deadline = time.monotonic() + 5
    while True:
        text = scrape(backend)
        if sample(text, "auth_http_requests_total", **labels) >= before + 2:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sample(text, "auth_http_requests_total", **labels) == before + 2
    assert not [i for i in ids if i in text]
    assert (
        sample(
            text,
            "auth_http_requests_total",
            listener="metrics",
            route="/metrics",
            method="GET",
            status="200",
        )
        >= 1
    )
