"""The XEP-0114 handshake and the namespace a component's stanzas change to."""

from __future__ import annotations

import hashlib

from xmppd.protocol import xml as X
from xmppd.protocol.component import NS_COMPONENT, as_client_stanza, handshake_digest, handshake_matches


def test_the_digest_is_the_lowercase_hex_sha1_of_stream_id_and_secret():
    assert handshake_digest("3BF96D32", "sécret") == hashlib.sha1("3BF96D32sécret".encode()).hexdigest()
    # XEP-0114 §3's example: stream id 3BF96D32, secret 'secret'
    assert handshake_digest("3BF96D32", "secret") == hashlib.sha1(b"3BF96D32secret").hexdigest()


def test_a_handshake_matches_in_either_case_and_surrounding_space_only_for_the_right_secret():
    digest = handshake_digest("id1", "s")
    assert handshake_matches("id1", "s", digest)
    assert handshake_matches("id1", "s", f"\n {digest.upper()} ")
    assert not handshake_matches("id1", "t", digest)
    assert not handshake_matches("id2", "s", digest)
    assert not handshake_matches("id1", "s", "")
    assert not handshake_matches("id1", "s", "é" * 40)  # not ASCII: no match, and no error


def test_a_component_stanza_moves_to_jabber_client_with_the_children_that_inherited_it():
    stanza = X.parse_fragments(
        f"<message xmlns='{NS_COMPONENT}' to='a@b'><body>hi</body><x xmlns='jabber:x:oob'><url>u</url></x></message>".encode()
    )[0]
    as_client_stanza(stanza)
    assert (stanza.uri, stanza.body.uri, stanza.x.uri, stanza.x.url.uri) == (X.NS_CLIENT, X.NS_CLIENT, "jabber:x:oob", "jabber:x:oob")
    assert X.serialise(stanza) == "<message to='a@b'><body>hi</body><x xmlns='jabber:x:oob'><url>u</url></x></message>"
