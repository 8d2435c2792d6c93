"""The dashboard in real headless Chromium against a real two-node cluster (issue 15):
it renders, its numbers are the node's, and a node killed with -9 turns red within
the heartbeat window. Set XMPPD_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the
README's picture."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.browser import Browser, wait_for
from tests.cluster.muc import SERVICE, enter, say
from tests.cluster.processes import http_get

TOKEN = "dashboard-test-token-0123"

NODE_ROWS = """
const rows = [...document.querySelectorAll('#nodes tbody tr')];
return rows.map(r => ({id: r.dataset.node, state: r.className, sessions: Number(r.querySelector('.sessions').textContent)}));
"""


ROOM_ROWS = "return [...document.querySelectorAll('#rooms tbody tr')].map(r => [...r.cells].map(c => c.textContent))"


def scraped(port: int) -> dict[str, float]:
    """/metrics as 'name{labels}' -> value."""
    status, body = http_get(port, "/metrics")
    assert status == 200
    return {sample.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}" if sample.labels else ""): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def overview(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_dashboard_shows_the_cluster_and_a_killed_node_turns_red(make_cluster, tmp_path):
    cluster = make_cluster("n1", "n2", config=f'http_token = "{TOKEN}"\n')
    alice, bob = cluster.users("alice", "bob")
    desk, phone = cluster.online("n1", alice), cluster.online("n2", bob)
    cluster.login("n2", alice, resource="phone")
    room = f"ops@{SERVICE}"
    enter(desk, room, "Alice", muc=False)  # run by n1
    enter(phone, room, "Bob")
    for i in range(20):
        say(desk, room, f"line {i}")
    n1 = cluster["n1"]
    browser = Browser(tmp_path)
    try:
        browser.open(f"http://127.0.0.1:{n1.http_port}/dashboard/#token={TOKEN}")
        wanted = {"n1": 1, "n2": 2}
        shown = wait_for(browser, NODE_ROWS, 15)
        deadline = time.monotonic() + 15
        while {r["id"]: r["sessions"] for r in shown or []} != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = browser.run(NODE_ROWS)
        node = overview(n1.http_port)
        assert {r["id"]: r["sessions"] for r in shown} == {n["id"]: n["sessions"] for n in node["nodes"]} == wanted
        assert {r["id"]: r["state"] for r in shown} == {"n1": "alive", "n2": "alive"}
        assert browser.run("return document.getElementById('node').textContent") == node["node"] == "n1"
        assert browser.run("return document.getElementById('sessions').textContent") == str(node["sessions"]) == "1"
        assert browser.run("return document.getElementById('ready').textContent") == "yes"
        rooms = wait_for(browser, ROOM_ROWS, 10)
        assert rooms == [[room, "n1", "2"]] == [[r["jid"], r["node"], str(r["occupants"])] for r in overview(n1.http_port)["rooms"]]
        for i in range(20):
            say(desk, room, f"more {i}")
            time.sleep(0.05)
        assert wait_for(browser, "return Number(document.getElementById('rate-in').textContent) > 0", 5)
        picture = tmp_path / "dashboard.png"
        browser.screenshot(picture)
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("XMPPD_DASHBOARD_SCREENSHOT"):
            shutil.copy(picture, os.environ["XMPPD_DASHBOARD_SCREENSHOT"])

        cluster["n2"].kill()
        killed = time.monotonic()
        red = wait_for(browser, "return document.querySelector('#nodes tr.dead[data-node=\"n2\"]') !== null", cluster.heartbeat_ttl + 5)
        took = time.monotonic() - killed
        assert red, "n2 never turned red"
        # the heartbeat key outlives the node by at most its TTL; the page polls every second
        assert took <= cluster.heartbeat_ttl + 1.5, f"n2 turned red {took:.1f}s after kill -9"
        buried = wait_for(browser, "return [...document.querySelectorAll('#burials tbody tr')].map(r => r.cells[0].textContent)", 15)
        assert buried == ["n2"]
        samples = scraped(n1.http_port)
        assert samples["xmppd_burials_total"] == 1 and samples["xmppd_bus_sent_total"] > 0
        assert samples["xmppd_redis_heartbeat_seconds_count"] > 0 and samples["xmppd_redis_failures_total"] == 0
        assert samples['xmppd_muc_rooms{host="conference.localhost"}'] == 1
    finally:
        browser.close()
