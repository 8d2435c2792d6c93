"""A node's HTTP listener from a test: GET, POST, and /metrics as {(name, labels): value}."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import threads


def _fetch(url: str, token: str | None, form: dict | None = None) -> tuple[int, bytes]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    """In a thread: the node under test answers on this very reactor."""
    return await threads.deferToThread(_fetch, f"http://127.0.0.1:{port}{path}", token)


async def post(port: int, path: str, form: dict, token: str | None = None) -> tuple[int, bytes]:
    return await threads.deferToThread(_fetch, f"http://127.0.0.1:{port}{path}", token, form)


async def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    code, body = await get(port, "/metrics")
    assert code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
