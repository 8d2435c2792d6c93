"""``holds_bytes``: what lets the TLS read path stop without a raised WantReadError, and its
fallback (answer True, so the caller reads as Twisted does) when pyOpenSSL's internals differ."""

from __future__ import annotations

from OpenSSL import SSL

from xmppd.streams import tls


def connection() -> SSL.Connection:
    return SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)


def test_the_receive_bio_holds_what_was_written_until_it_is_read():
    receiving = connection()
    assert not tls.holds_bytes(receiving, "_into_ssl")
    receiving.bio_write(b"\x16\x03\x01\x00\x05hello")
    assert tls.holds_bytes(receiving, "_into_ssl")


def test_the_send_bio_holds_a_record_until_it_is_read():
    sending = connection()
    sending.set_connect_state()
    assert not tls.holds_bytes(sending, "_from_ssl")
    try:
        sending.do_handshake()
    except SSL.WantReadError:
        pass
    assert tls.holds_bytes(sending, "_from_ssl")  # the ClientHello
    sending.bio_read(2**17)
    assert not tls.holds_bytes(sending, "_from_ssl")


def test_without_the_bio_attribute_it_answers_true():
    assert tls.holds_bytes(object(), "_into_ssl")


def test_without_the_binding_it_answers_true(monkeypatch):
    monkeypatch.setattr(tls, "_mem_bio_length", None)
    assert tls.holds_bytes(connection(), "_into_ssl")
