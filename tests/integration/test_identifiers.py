"""Over-long identifiers are refused before any preparation (CORE-49, RFC 7622 §3).

Stringprep is linear in its input and runs on the reactor: a 200 KB localpart
cost a node ~0.6 s of CPU. Here the node runs as its own process, so its CPU
can be read from /proc/<pid>/stat around the attack; every over-long identifier
must get the RFC's answer for a tiny share of that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.blocking_client import BlockingStream, StreamClosed
from tests.integration.test_launch import running_node

HUGE = 200_000  # bytes: ~0.6 s of stringprep each before the fix
SASL_NAME = 190_000  # bytes: base64 makes it 253 KB, still under max_stanza_size
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp("identifiers")
    for user in ("canary", "alice"):
        subprocess.run([sys.executable, "-m", "xmppd.cli", "--data-dir", str(data), "--init", "adduser", f"{user}@localhost", "pw"], check=True)
    with running_node(data, "--registration") as running:
        yield running


def cpu_seconds(process: subprocess.Popen) -> float:
    """User plus system CPU of the node process so far."""
    with open(f"/proc/{process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def huge(seed: int, size: int = HUGE) -> str:
    """A distinct over-long part each time (no cache has prepared it), not ASCII (nothing skips resourceprep)."""
    return f"{seed}é{'a' * size}"


def logged_in(port: int, user: str = "alice") -> BlockingStream:
    stream = BlockingStream("127.0.0.1", port)
    stream.login(user, "pw")
    return stream


def stanza_error(element) -> tuple[str, str]:
    """(type, condition) of a stanza error."""
    error = element.error
    conditions = [c.name for c in error.elements() if c.uri == NS_STANZAS and c.name != "text"]
    assert len(conditions) == 1, element.toXml()
    return error["type"], conditions[0]


def attack_with_headers(port: int, seeds: range) -> None:
    for seed in seeds:
        stream = BlockingStream("127.0.0.1", port, domain=f"{huge(seed)}@localhost")
        stream.restart()
        with pytest.raises(StreamClosed) as closed:
            stream.next()
        assert closed.value.condition == "host-unknown"  # RFC 6120 §4.9.3.6: no such host here
        stream.close()


def test_a_header_to_with_a_200_kb_localpart_is_host_unknown_for_little_cpu(node):
    process, port = node
    before = cpu_seconds(process)
    attack_with_headers(port, range(20))
    assert cpu_seconds(process) - before < 0.5  # 20 connections: ~12 s before the fix


def test_a_session_is_served_while_four_attackers_send_long_headers(node):
    _, port = node
    canary = logged_in(port, "canary")
    attackers = [threading.Thread(target=attack_with_headers, args=(port, range(1000 + 10 * n, 1010 + 10 * n))) for n in range(4)]
    for attacker in attackers:
        attacker.start()
    slowest = 0.0
    try:
        for n in range(20):
            sent = time.monotonic()
            canary.send(f"<iq type='get' id='canary-{n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            answer = canary.next()
            assert (answer["id"], answer["type"]) == (f"canary-{n}", "result")
            slowest = max(slowest, time.monotonic() - sent)
            time.sleep(0.05)
    finally:
        for attacker in attackers:
            attacker.join()
        canary.close()
    assert slowest < 1.0  # each long header held the reactor ~0.6 s before the fix, four at a time


def sasl_attempt(port: int, mechanism: str, initial: bytes):
    stream = BlockingStream("127.0.0.1", port)
    try:
        stream.start_tls()
        return stream.auth(mechanism, initial)
    finally:
        stream.close()


SASL_ATTEMPTS = {
    "PLAIN username": ("PLAIN", lambda seed: f"\0{huge(seed, size=SASL_NAME)}\0pw".encode()),
    "PLAIN password": ("PLAIN", lambda seed: f"\0alice\0{huge(seed, size=SASL_NAME)}".encode()),  # max_password_bytes
    "PLAIN authzid": ("PLAIN", lambda seed: f"{huge(seed, size=SASL_NAME)}@localhost\0alice\0wrong".encode()),
    "SCRAM username": ("SCRAM-SHA-1", lambda seed: f"n,,n={huge(seed, size=SASL_NAME)},r=abcdefgh".encode()),
    "SCRAM-SHA-256 authzid": ("SCRAM-SHA-256", lambda seed: f"n,a={huge(seed, size=SASL_NAME)}@localhost,n=alice,r=abcdefgh".encode()),
}


@pytest.mark.parametrize("attempt", SASL_ATTEMPTS)
def test_a_190_kb_sasl_name_fails_without_a_challenge_for_little_cpu(node, attempt):
    process, port = node
    mechanism, initial = SASL_ATTEMPTS[attempt]
    before = cpu_seconds(process)
    answers = [sasl_attempt(port, mechanism, initial(seed)) for seed in range(3)]
    spent = cpu_seconds(process) - before
    for answer in answers:
        assert answer.name == "failure", answer.toXml()  # SCRAM answered with a challenge before the fix
        assert answer.firstChildElement().name == "malformed-request"
    assert spent < 0.5  # three tries and their TLS handshakes; 2.5-3.3 s per try before the fix


def test_over_long_stanza_addresses_are_jid_malformed_for_little_cpu(node):
    process, port = node
    stream = logged_in(port)
    over_long = {
        "message": f"{huge(1)}@localhost",  # localpart
        "iq": f"alice@{huge(2)}",  # domain
        "presence": f"alice@localhost/{huge(3)}",  # resource
    }
    before = cpu_seconds(process)
    for kind, to in over_long.items():
        child = "<query xmlns='jabber:iq:version'/>" if kind == "iq" else "<body>hi</body>" if kind == "message" else ""
        stream.send(f"<{kind} type='{'get' if kind == 'iq' else 'chat' if kind == 'message' else 'subscribe'}' id='{kind}-1' to='{to}'>{child}</{kind}>")
        answer = stream.next()
        assert (answer.name, answer["type"], answer["id"]) == (kind, "error", f"{kind}-1")
        assert stanza_error(answer) == ("modify", "jid-malformed")
    spent = cpu_seconds(process) - before
    stream.close()
    assert spent < 0.3  # ~1.8 s before the fix


def test_an_over_long_bind_resource_is_bad_request_for_little_cpu(node):
    process, port = node
    stream = BlockingStream("127.0.0.1", port)
    stream.start_tls()
    assert stream.auth("PLAIN", b"\0alice\0pw").name == "success"
    stream.restart()
    stream.next()
    before = cpu_seconds(process)
    for seed in (4, 5):
        stream.send(f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{huge(seed)}</resource></bind></iq>")
        answer = stream.next()
        assert (answer["type"], answer["id"]) == ("error", "bind")
        assert stanza_error(answer) == ("modify", "bad-request")  # RFC 6120 §7.7.2.1
    spent = cpu_seconds(process) - before
    stream.send("<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>fine</resource></bind></iq>")
    assert str(stream.next().bind.jid) == "alice@localhost/fine"  # the stream goes on
    stream.close()
    assert spent < 0.2  # two tries: ~0.6 s before the fix


def test_an_over_long_roster_item_jid_is_not_acceptable(node):
    process, port = node
    stream = logged_in(port)
    before = cpu_seconds(process)
    stream.send(f"<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='{huge(6)}@localhost'/></query></iq>")
    answer = stream.next()
    spent = cpu_seconds(process) - before
    assert (answer["type"], answer["id"]) == ("error", "r1")
    assert stanza_error(answer) == ("modify", "not-acceptable")  # IM-03, like an over-long name
    stream.close()
    assert spent < 0.2


def test_an_over_long_privacy_jid_value_is_bad_request(node):
    process, port = node
    stream = logged_in(port)
    before = cpu_seconds(process)
    stream.send(
        "<iq type='set' id='p1'><query xmlns='jabber:iq:privacy'><list name='l'>"
        f"<item type='jid' value='{huge(7)}@localhost' action='deny' order='1'/></list></query></iq>"
    )
    answer = stream.next()
    spent = cpu_seconds(process) - before
    assert (answer["type"], answer["id"]) == ("error", "p1")
    assert stanza_error(answer) == ("modify", "bad-request")  # PRIV-05
    stream.close()
    assert spent < 0.2


def test_an_over_long_blocking_item_is_jid_malformed(node):
    process, port = node
    stream = logged_in(port)
    before = cpu_seconds(process)
    stream.send(f"<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='{huge(8)}@localhost'/></block></iq>")
    answer = stream.next()
    spent = cpu_seconds(process) - before
    assert (answer["type"], answer["id"]) == ("error", "b1")
    assert stanza_error(answer) == ("modify", "jid-malformed")  # XEP-0191 §3.3
    stream.close()
    assert spent < 0.2


def register(port: int, username: str, password: str = "pw"):
    stream = BlockingStream("127.0.0.1", port)
    try:
        stream.start_tls()
        stream.send(f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{username}</username><password>{password}</password></query></iq>")
        return stream.next()
    finally:
        stream.close()


@pytest.mark.parametrize(
    "username",
    [
        "b" * 1024,  # one byte too many
        "\u3300" * 300,  # 900 bytes that nodeprep makes 3600 (NFKC: four katakana each)
    ],
    ids=["raw", "prepared"],
)
def test_a_username_over_1023_bytes_is_not_registered(node, username):
    _, port = node
    answer = register(port, username)
    assert (answer["type"], answer["id"]) == ("error", "reg")  # it was registered before, and could never bind
    assert stanza_error(answer) == ("modify", "not-acceptable")


def test_a_password_over_max_password_bytes_is_not_registered_for_little_cpu(node):
    process, port = node
    before = cpu_seconds(process)
    answer = register(port, "longpassword", huge(7, size=SASL_NAME))
    assert (answer["type"], stanza_error(answer)) == ("error", ("modify", "not-acceptable"))
    assert cpu_seconds(process) - before < 0.3  # SASLprep of 190 KB alone took ~0.34 s


def test_a_username_of_1023_bytes_registers_and_binds(node):
    _, port = node
    answer = register(port, "c" * 1023)
    assert answer["type"] == "result"
    assert logged_in(port, "c" * 1023) is not None
