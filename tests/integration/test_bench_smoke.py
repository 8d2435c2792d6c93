"""Guards ``python -m xmppd.bench`` against rot: each sub-benchmark runs end to end
against a real node process and prints its table. Nothing here is timed: speed is the
benchmark's business, not a test's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xmppd.bench import abuse, chat, cluster, component, login, migrate, muc, pep, presence, roomstore


def test_login_benchmark_runs_and_prints_the_table(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "login", "-n", "20", "--concurrency", "5", "--settle", "0.2",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["mechanism"])
    assert header == login.HEADER
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["SCRAM-SHA-1"], ["PLAIN"])}
    assert set(rows) == {"SCRAM-SHA-1", "PLAIN"}
    for row in rows.values():
        assert row[header.index("N")] == "20"
        assert row[header.index("failed")] == "0"
        assert float(row[header.index("logins/s")]) > 0


def test_login_benchmark_goes_online_and_reports_the_heap_per_session(tmp_path):
    """--online: each login ends in session, roster get, presence and a ping answered;
    --tracemalloc: the node's heap per session and its top sites, from two snapshots."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "login", "-n", "20", "--mechanisms", "PLAIN", "--online", "-k", "4",
         "--tracemalloc", "5", "--concurrency", "5", "--settle", "0.2", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    row = next(line.split() for line in completed.stdout.splitlines() if line.split()[:1] == ["PLAIN"])
    assert row[login.HEADER.index("failed")] == "0"
    report = completed.stderr.splitlines()
    at = next(i for i, line in enumerate(report) if line.startswith("tracemalloc: "))
    assert report[at].endswith(" B per session over 20 sessions")
    assert all(" blocks  " in line for line in report[at + 1 : at + 6])


def test_login_benchmark_counts_the_nodes_instructions_per_login_under_callgrind(tmp_path):
    """--callgrind: the node under valgrind, its instructions counted during the logins only."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "login", "-n", "3", "--mechanisms", "SCRAM-SHA-1", "--online", "-k", "2",
         "--warmup", "1", "--concurrency", "1", "--settle", "0.2", "--data-dir", str(tmp_path),
         "--callgrind", str(tmp_path / "callgrind")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = [line.split() for line in completed.stdout.splitlines()]
    assert lines[0] == login.CALLGRIND_HEADER
    row = lines[1]
    assert row[:3] == ["SCRAM-SHA-1", "3", "0"]
    assert int(row[login.CALLGRIND_HEADER.index("instructions/login")]) > 1_000_000  # a TLS handshake alone is ~2 M
    assert list((tmp_path / "callgrind").glob("callgrind.*.1"))


@pytest.mark.parametrize("module", [chat, presence, pep], ids=["chat", "presence", "pep"])
def test_stepped_benchmark_runs_and_prints_the_table(tmp_path, module):
    name = module.__name__.rsplit(".", 1)[-1]
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", name, "-n", "12", "-k", "4", "--rates", "20", "40",
         "--duration", "0.5", "--drain", "2", "--settle", "0.2", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["offered/s"])
    assert header == module.HEADER
    rows = [line.split() for line in lines if line.split()[:1] in (["20"], ["40"])]
    assert rows
    for row in rows:
        assert float(row[header.index("delivered/s")]) > 0
        assert row[header.index("errors")] == "0"


def test_stepped_benchmark_under_callgrind_counts_the_node_s_instructions(tmp_path):
    """--callgrind: the node under valgrind, and per step its instructions per delivered stanza."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "pep", "-n", "6", "-k", "2", "--rates", "10",
         "--duration", "0.5", "--drain", "60", "--settle", "0.2", "--data-dir", str(tmp_path / "data"),
         "--callgrind", str(tmp_path / "callgrind")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    (line,) = [line for line in completed.stdout.splitlines() if "under callgrind" in line]
    words = line.replace(",", "").split()
    assert words[0] == "10/s" and int(words[words.index("node") - 1]) > 0
    assert int(words[words.index("per") - 1]) > 0 and words[-1] == "delivered)" and int(words[-2][1:]) > 0
    assert list((tmp_path / "callgrind").glob("callgrind.*"))


def test_cluster_benchmark_runs_and_prints_both_tables(tmp_path):
    """Two nodes and a private redis-server, then one node: tiny, one short step each."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "cluster", "-n", "20", "-k", "2", "--rates", "40",
         "--duration", "0.5", "--drain", "2", "--settle", "0.2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    titles = [line.split()[1].rstrip(":") for line in lines if line.startswith("== ")]
    assert titles == ["2-nodes", "1-node"]
    header = next(line.split() for line in lines if line.split()[:1] == ["offered/s"])
    assert header == cluster.HEADER
    rows = [line.split() for line in lines if line.split()[:1] == ["40"]]
    assert len(rows) == 2
    for row in rows:
        assert float(row[header.index("delivered/s")]) > 0
        assert row[header.index("errors")] == "0"
    cross = rows[0]
    assert float(cross[header.index("redis_cmds/msg")]) > 0  # every message went through Redis
    assert any(line.split()[:1] == ["xadd"] for line in lines)
    assert any(line.startswith("summary: cross-node") for line in lines)


def test_federation_benchmark_runs_and_prints_its_lines():
    """Two federating nodes, then one: tiny, one short window each, two new remote domains."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "federation", "-n", "10", "--rate", "40", "--duration", "0.5",
         "--drain", "2", "--settle", "0.2", "--domains", "2"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "federated (2 nodes)", "a new remote domain (TCP, TLS and dialback, both ways)", "one domain (1 node)",
        "server CPU per message, federated / one domain",
    ]  # fmt: skip
    for line in (lines[0], lines[2]):
        words = line.split(": ", 1)[1].split()
        sent, missing = int(words[0]), int(words[words.index("missing") - 1])
        assert sent > 0 and missing == 0, line


def test_abuse_benchmark_runs_the_named_attacks_and_prints_the_table(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "abuse", "deep-message", "roster-by-subscribe", "idle-connections",
         "--scale", "0.01", "--settle", "0.2", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split() == abuse.HEADER
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["deep-message", "roster-by-subscribe", "idle-connections"]
    for row in rows.values():
        assert int(row[1]) > 0  # attempts
        assert float(row[2]) >= 0  # CPU per attempt
    assert rows["idle-connections"][-6:-4] == ["a", "real"]  # a user still logged in


def test_abuse_benchmark_names_an_unknown_attack_in_one_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "abuse", "nonsense"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"xmppd.bench: no attack named 'nonsense'; choose from {', '.join(abuse.ATTACKS)}"
    ]


def test_roomstore_benchmark_prints_every_backend_and_the_redis_commands():
    """A few calls per kind on memory, SQLite and a private redis-server."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "roomstore", "--calls", "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    header, *rows = (line.split() for line in completed.stdout.splitlines())
    assert header == roomstore.HEADER
    kinds = ["groupchat", "presence", "fenced-out", "load"]
    assert [row[:2] for row in rows] == [[backend, kind] for backend in roomstore.BACKENDS for kind in kinds]
    redis_rows = {row[1]: row[-2:] for row in rows if row[0] == "redis"}
    # One round trip each; inside it the fence's GET, then a groupchat's RPUSH (SADD only into an empty
    # history, LTRIM only past twice what is kept) or a presence's writes; a load's 7 reads.
    assert redis_rows == {
        "groupchat": ["1.00", "2.00"], "presence": ["1.00", "3.00"], "fenced-out": ["1.00", "1.00"],
        "load": ["1.00", "7.00"],
    }  # fmt: skip


def test_migrate_benchmark_imports_and_exports_on_every_backend():
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "migrate", "-n", "20", "-k", "2"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    header, *rows = (line.split() for line in completed.stdout.splitlines())
    assert header == migrate.HEADER
    assert [row[:3] for row in rows] == [[backend, command, "20"] for backend in migrate.BACKENDS for command in ("import", "export")]
    assert all(int(row[4]) > 0 and float(row[-1]) > 0 for row in rows)


def test_component_benchmark_runs_and_prints_the_table(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "component", "-n", "300", "--burst", "50", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = [line.split() for line in completed.stdout.splitlines()]
    assert lines[0] == component.HEADER
    assert [row[0] for row in lines[1:]] == ["user>component", "component>user", "user>user"]
    assert all(float(row[component.HEADER.index("msgs/s")]) > 0 for row in lines[1:])


def test_muc_benchmark_on_one_node_prints_the_table_and_the_cpu_figure():
    """Two rooms of four, rooms open at once (the benchmark's own configuration file)."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "muc", "--rooms", "2", "--occupants", "4", "--rates", "10", "20",
         "--duration", "0.5", "--drain", "2", "--settle", "0.2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["offered/s"])
    assert header == muc.HEADER
    rows = [line.split() for line in lines if line.split()[:1] in (["10"], ["20"])]
    assert len(rows) == 2
    for row, rate in zip(rows, (10, 20)):
        assert float(row[header.index("delivered/s")]) == pytest.approx(4 * rate, rel=0.2)  # every occupant got each
        assert (row[header.index("undelivered")], row[header.index("errors")]) == ("0", "0")
    assert any(line.startswith("at the step with the most deliveries/s") for line in lines)


def test_muc_benchmark_on_two_nodes_counts_redis_commands_and_times_the_takeover():
    """Two rooms of four on a plain node, on one with Redis, then half of each room on either of two
    nodes; then kill -9 of a room's owner."""
    completed = subprocess.run(
        [sys.executable, "-m", "xmppd.bench", "muc", "--nodes", "2", "--rooms", "2", "--occupants", "4",
         "--rates", "10", "--duration", "0.5", "--drain", "2", "--settle", "0.2"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    titles = [line.removeprefix("== ").split()[0] for line in lines if line.startswith("== ")]
    assert titles == ["1", "1", "2"]
    header = next(line.split() for line in lines if line.split()[:1] == ["offered/s"] and "n1_cpu%" in line)
    assert header == cluster.HEADER
    rows = [line.split() for line in lines if line.split()[:1] == ["10"] and len(line.split()) == len(header)]
    assert len(rows) == 2  # 1 node + redis-server, then 2 nodes
    assert all(float(row[header.index("redis_cmds/msg")]) > 0 for row in rows)
    assert any(line.split()[:1] == ["evalsha"] for line in lines)  # the room's history write
    assert any(line.startswith("summary: 2 nodes + redis-server") for line in lines)
    takeover = next(line for line in lines if line.startswith("takeover:"))
    assert "was reflected again" in takeover, takeover
