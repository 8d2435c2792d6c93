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

from tests.cluster.browser import Browser, wait_for

TOKEN = "dashboard-test-token-0123"

NODE_ROWS = """
const rows = [...document.querySelectorAll('#nodes tbody tr')];
return rows.map(r => ({id: r.dataset.node, state: r.className, sessions: Number(r.querySelector('.sessions').textContent)}));
"""


def overview(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_dashboard_shows_the_cluster_and_a_killed_node_turns_red(make_cluster, tmp_path):
    cluster = make_cluster("n1", "n2", config=f'http_token = "{TOKEN}"\n')
    alice, bob = cluster.users("alice", "bob")
    cluster.online("n1", alice)
    cluster.online("n2", bob)
    cluster.login("n2", alice, resource="phone")
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
    finally:
        browser.close()
