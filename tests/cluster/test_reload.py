"""xmppctl reload and SIGHUP against real node processes (issue 15): each node reads the file it was
started with again, applies what may change at run time, reports the rest, and refuses a bad file."""

from __future__ import annotations

import datetime
import signal
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cluster.client import error_condition
from tests.cluster.muc import SERVICE, enter, refused_join
from tests.cluster.processes import PASSWORD, wait_until

TOKEN = "reload-test-token-0123456"
NODE_CONFIG = f'http_token = "{TOKEN}"\n'
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"


def ctl_config(cluster) -> str:
    path = cluster.directory / "xmppctl.toml"
    path.write_text(NODE_CONFIG)
    return str(path)


def edit(cluster, node_id: str, lines: str) -> None:
    """The node's configuration file as it started, plus ``lines`` (the node reads it at a reload)."""
    (cluster.directory / f"{node_id}.toml").write_text("c2s_direct_tls = true\n" + cluster.config + lines)


def reload(cluster, *args: str, check: bool = True):
    return cluster.ctl("-c", ctl_config(cluster), "reload", *args, check=check)


def bind_condition(cluster, node_id: str, user: str, resource: str) -> str | None:
    """None when a new stream of ``user`` binds ``resource``, else the error condition."""
    client = cluster[node_id].client()
    cluster.clients.append(client)
    client.authenticate(user, PASSWORD)
    client.restart()
    answer = client.iq_raw(f"<iq type='set' id='{{id}}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")
    return None if answer.getAttribute("type") == "result" else error_condition(answer)


def test_a_lowered_limit_holds_for_the_next_stanza_on_every_node(make_cluster):
    cluster = make_cluster("n1", "n2", config=NODE_CONFIG)
    (alice,) = cluster.users("alice")
    assert bind_condition(cluster, "n1", alice, "a") is None
    assert bind_condition(cluster, "n2", alice, "b") is None
    lowered = ("max_resources = 2\nmax_stanza_size = 10000\nroster_max_text = 10\noffline_quota = 0\npep_max_item_size = 1024\n"
               "vcard_max_size = 1024\nmuc_max_nick_length = 5\n")
    for node_id in ("n1", "n2"):
        edit(cluster, node_id, lowered)
    done = reload(cluster)
    changes = ("max_stanza_size 262144 -> 10000; max_resources 10 -> 2; roster_max_text 1023 -> 10; offline_quota 1000 -> 0; "
               "pep_max_item_size 131072 -> 1024; vcard_max_size 65536 -> 1024; muc_max_nick_length 64 -> 5")
    assert sorted(done.stdout.splitlines()) == [f"n1: applied: {changes}", f"n2: applied: {changes}"], done.stdout
    assert bind_condition(cluster, "n2", alice, "c") == "resource-constraint"
    assert bind_condition(cluster, "n1", alice, "c") == "resource-constraint"

    bob, carol = cluster.users("bob", "carol")
    client = cluster.online("n1", bob)
    room = f"lobby@{SERVICE}"
    assert refused_join(client, room, "sixchr") == "not-acceptable"
    enter(client, room, "five5")
    vcard = client.iq_raw(f"<iq type='set' id='{{id}}'><vCard xmlns='vcard-temp'><FN>{'x' * 1100}</FN></vCard></iq>")
    assert error_condition(vcard) == "not-acceptable"
    named = client.iq_raw(f"<iq type='set' id='{{id}}'><query xmlns='jabber:iq:roster'><item jid='{carol}@localhost' name='eleven char'/></query></iq>")
    assert error_condition(named) == "not-acceptable"
    published = client.iq_raw("<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:tune'>"
                              f"<item id='a'><tune xmlns='http://jabber.org/protocol/tune'><title>{'x' * 1100}</title></tune></item>"
                              "</publish></pubsub></iq>")
    assert error_condition(published) == "not-acceptable"
    client.send(f"<message to='{carol}@localhost' type='chat' id='off1'><body>stored?</body></message>")
    bounce = client.expect(lambda e: e.name == "message" and e.getAttribute("id") == "off1", what="the bounce")
    assert bounce.getAttribute("type") == "error" and error_condition(bounce) == "service-unavailable"
    client.send(f"<message to='{carol}@localhost' type='chat'><body>{'x' * 12000}</body></message>")
    client.wait_closed()
    assert client.stream_error == "policy-violation"


def test_registration_turned_on_is_offered_to_new_streams(make_cluster):
    cluster = make_cluster("n1", config=NODE_CONFIG)
    before = cluster["n1"].client(direct_tls=True).restart()
    assert not [f for f in before.elements() if f.uri == NS_REGISTER_FEATURE], before.toXml()
    edit(cluster, "n1", "registration = true\n")
    assert reload(cluster).stdout.strip() == "n1: applied: registration false -> true"
    client = cluster["n1"].client(direct_tls=True)
    cluster.clients.append(client)
    features = client.restart()
    assert [f for f in features.elements() if f.uri == NS_REGISTER_FEATURE], features.toXml()
    created = client.iq_raw("<iq type='set' id='{id}'><query xmlns='jabber:iq:register'>"
                            "<username>newcomer</username><password>a passphrase</password></query></iq>")
    assert created.getAttribute("type") == "result", created.toXml()


def test_a_restart_option_is_reported_and_not_applied_and_a_dry_run_changes_nothing(make_cluster):
    cluster = make_cluster("n1", config=NODE_CONFIG)
    (alice,) = cluster.users("alice")
    edit(cluster, "n1", 'muc_hosts = ["rooms.{domain}"]\nmax_resources = 1\n')
    dry = reload(cluster, "--dry-run").stdout.splitlines()
    assert dry == ["n1: would apply: max_resources 10 -> 1",
                   "n1: would need a restart (not applied): muc_hosts conference.localhost -> rooms.localhost"], dry
    assert bind_condition(cluster, "n1", alice, "a") is None
    assert bind_condition(cluster, "n1", alice, "b") is None  # the dry run applied nothing

    done = reload(cluster, "--node", "n1").stdout.splitlines()
    assert done == ["n1: applied: max_resources 10 -> 1",
                    "n1: needs a restart (not applied): muc_hosts conference.localhost -> rooms.localhost"], done
    assert bind_condition(cluster, "n1", alice, "c") == "resource-constraint"
    client = cluster.online("n1", *cluster.users("bob"))
    enter(client, f"lobby@{SERVICE}", "bob")  # the old MUC host still serves
    answer = client.ping("rooms.localhost")
    assert answer.getAttribute("type") == "error", answer.toXml()
    missing = reload(cluster, "--node", "n9", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == "xmppctl: reload: no live node 'n9' (nodes: n1)"


def test_a_broken_file_is_refused_in_one_line_and_changes_nothing(make_cluster):
    cluster = make_cluster("n1", config=NODE_CONFIG)
    (alice,) = cluster.users("alice")
    path = cluster.directory / "n1.toml"
    for broken, reason in (("max_resources = 1\nmax_stanza_size = 'big'\n", "option 'max_stanza_size': expected an integer, got 'big'"),
                           ("max_resources = 1\n[unclosed\n", "not valid TOML"),
                           ("max_resources = 1\nno_such_option = 3\n", "unknown option 'no_such_option'")):
        edit(cluster, "n1", broken)
        done = reload(cluster, check=False)
        assert done.returncode == 1 and done.stdout == ""
        line, = done.stderr.splitlines()
        assert line.startswith(f"xmppctl: node n1 (127.0.0.1:{cluster['n1'].http_port}): refused, nothing changed: {path}: "), line
        assert reason in line, line
    assert bind_condition(cluster, "n1", alice, "a") is None
    assert bind_condition(cluster, "n1", alice, "b") is None  # max_resources = 1 was not applied


def test_the_admin_endpoint_refuses_without_the_token(make_cluster):
    cluster = make_cluster("n1", config=NODE_CONFIG)
    (alice,) = cluster.users("alice")
    edit(cluster, "n1", "max_resources = 1\n")
    for header in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}):
        request = urllib.request.Request(f"http://127.0.0.1:{cluster['n1'].http_port}/api/reload", data=b"", headers=header)
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("reload answered without the token")
        except urllib.error.HTTPError as e:
            assert (e.code, e.read()) == (403, b"forbidden: send Authorization: Bearer <http_token>\n")
    assert bind_condition(cluster, "n1", alice, "a") is None
    assert bind_condition(cluster, "n1", alice, "b") is None
    without = cluster.ctl("reload", check=False)
    assert without.returncode == 1 and without.stderr.strip() == "xmppctl: reload: give the nodes' http_token in the configuration (-c)"

    rotated = "rotated-token-0123456789"
    (cluster.directory / "n1.toml").write_text(f'c2s_direct_tls = true\nhttp_token = "{rotated}"\n')
    assert reload(cluster).stdout.strip() == "n1: applied: http_token (secret) -> (secret)"  # never echoed
    assert cluster.ctl("-c", ctl_config(cluster), "sessions", check=False).returncode == 1  # the old token: 403
    (cluster.directory / "rotated.toml").write_text(f'http_token = "{rotated}"\n')
    assert cluster.ctl("-c", str(cluster.directory / "rotated.toml"), "sessions").stdout.startswith("JID")


def test_sighup_reloads_and_logs_what_changed(make_cluster):
    cluster = make_cluster("n1", config=NODE_CONFIG)
    node = cluster["n1"]
    (alice,) = cluster.users("alice")
    cluster.login("n1", alice)
    assert "authenticated with PLAIN" not in node.log()  # log_level info: no line per login
    edit(cluster, "n1", 'max_resources = 1\nlog_level = "debug"\ncomponent_port = 5999\n')
    node.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload: applied" in node.log(), 10), node.log_tail()
    assert "reload: applied max_resources 10 -> 1; log_level info -> debug" in node.log()
    assert "reload: needs a restart, not applied: component_port 5347 -> 5999" in node.log()
    assert bind_condition(cluster, "n1", alice, "b") == "resource-constraint"
    assert f"{alice}@localhost authenticated with PLAIN" in node.log()  # debug now: a line per login

    edit(cluster, "n1", "max_resources = []\n")
    node.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload refused" in node.log(), 10), node.log_tail()
    assert "reload refused, nothing changed: " in node.log() and "option 'max_resources': expected an integer" in node.log()
    assert node.running()


def _certificate(directory, name: str) -> tuple[str, str, bytes]:
    """A self-signed certificate for localhost, written to ``name``.pem / ``name``.key; its DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False).sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return str(directory / "cert.pem"), str(directory / "key.pem"), cert.public_bytes(serialization.Encoding.DER)


def test_a_renewed_certificate_goes_to_new_connections_and_old_ones_keep_theirs(make_cluster, tmp_path):
    cert, key, first = _certificate(tmp_path, "first")
    cluster = make_cluster("n1", config=NODE_CONFIG + f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
    alice, bob = cluster.users("alice", "bob")
    old = cluster.online("n1", alice)
    assert old.sock.getpeercert(binary_form=True) == first

    _, _, second = _certificate(tmp_path, "second")  # renewed at the same paths, as certbot does
    assert reload(cluster).stdout.strip() == "n1: serves a new TLS certificate to new connections"
    assert reload(cluster).stdout.strip() == "n1: nothing changed"
    for direct_tls in (False, True):
        new = cluster["n1"].client(direct_tls=direct_tls)
        cluster.clients.append(new)
        new.login(bob, PASSWORD)
        assert new.sock.getpeercert(binary_form=True) == second
    assert old.ping().getAttribute("type") == "result"
    assert old.sock.getpeercert(binary_form=True) == first

    (tmp_path / "key.pem").write_text("not a key")
    done = reload(cluster, check=False)
    assert done.returncode == 1 and "refused, nothing changed: cannot load certificate" in done.stderr
    late = cluster["n1"].client(direct_tls=True)
    cluster.clients.append(late)
    assert late.sock.getpeercert(binary_form=True) == second
