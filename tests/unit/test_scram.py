"""Pure SCRAM helpers (xmppd.protocol.scram); the full RFC exchanges are in test_sasl.py."""

from __future__ import annotations

import base64

import pytest
from scramp import ScramException
from scramp.utils import saslprep as full_saslprep

from xmppd.protocol.scram import (
    Credentials,
    ScramError,
    auth_message,
    check_nonce,
    client_proof,
    derive_keys,
    escape_saslname,
    make_gs2_header,
    make_nonce,
    parse_attributes,
    parse_client_first,
    parse_iterations,
    parse_mechanism_name,
    salted_password,
    saslprep,
    server_key_of,
    server_signature,
    split_attributes,
    unescape_saslname,
    verify_client_proof,
)

def test_rfc5802_proof_and_signature_helpers():
    salted = salted_password("SHA-1", "pencil", base64.b64decode("QSXCR+Q6sek8bf92"), 4096)
    nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
    message = auth_message(
        "n=user,r=fyko+d2lbbFgONRv9qkxdawL", f"r={nonce},s=QSXCR+Q6sek8bf92,i=4096", f"c=biws,r={nonce}"
    )
    proof = client_proof("SHA-1", salted, message)
    assert base64.b64encode(proof) == b"v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    signature = server_signature("SHA-1", server_key_of("SHA-1", salted), message)
    assert base64.b64encode(signature) == b"rmF9pqV8S7suAoZWja4dJRkFsKQ="
    keys = derive_keys("SHA-1", "pencil", 4096, base64.b64decode("QSXCR+Q6sek8bf92"))
    assert verify_client_proof("SHA-1", keys.stored_key, message, proof)
    assert not verify_client_proof("SHA-1", keys.stored_key, message, proof[:-1])
    assert not verify_client_proof("SHA-1", keys.stored_key, message + b"x", proof)


def test_credentials_still_verify_passwords():
    credentials = Credentials.from_password("pencil")
    assert set(credentials.keys) == {"SHA-1", "SHA-256"}
    assert credentials.verify_password("pencil")
    assert not credentials.verify_password("pencil2")
    assert not credentials.verify_password("\u0007")  # SASLprep refuses control characters
    assert Credentials.from_json(credentials.to_json()) == credentials


@pytest.mark.parametrize(
    "name, expected",
    [
        ("SCRAM-SHA-1", ("SHA-1", False)),
        ("SCRAM-SHA-256-PLUS", ("SHA-256", True)),
    ],
)
def test_parse_mechanism_name(name, expected):
    assert parse_mechanism_name(name) == expected


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-SHA-512", "SHA-1", "SCRAM-SHA-1-PLUS-PLUS", "-PLUS"])
def test_parse_mechanism_name_rejects(name):
    with pytest.raises(ValueError):
        parse_mechanism_name(name)


@pytest.mark.parametrize(
    "plain, escaped",
    [("user", "user"), ("a,b", "a=2Cb"), ("a=b", "a=3Db"), ("=2C", "=3D2C"), (",=,", "=2C=3D=2C")],
)
def test_saslname_escaping_round_trips(plain, escaped):
    assert escape_saslname(plain) == escaped
    assert unescape_saslname(escaped) == plain


@pytest.mark.parametrize("value", ["", "a=b", "a=2c", "a=", "a=3", "=41"])
def test_unescape_rejects_bad_escapes(value):
    with pytest.raises(ScramError):
        unescape_saslname(value)


def test_parse_attributes():
    assert parse_attributes("r=abc,s=QQ==,i=4096") == [("r", "abc"), ("s", "QQ=="), ("i", "4096")]


@pytest.mark.parametrize("text", ["", "r=", "r", "=x", "ab=c", "r=a,,s=b", "r=a\0b", "1=a"])
def test_parse_attributes_rejects(text):
    with pytest.raises(ScramError):
        parse_attributes(text)


def test_split_attributes_keeps_extensions():
    assert split_attributes("n=u,r=x,z=ext", "nr") == (["u", "x"], [("z", "ext")])


@pytest.mark.parametrize("text", ["r=x,n=u", "n=u", "m=ext,n=u,r=x", "n=u,r=x,m=ext"])
def test_split_attributes_rejects_order_and_mandatory_extensions(text):
    with pytest.raises(ScramError):
        split_attributes(text, "nr")


@pytest.mark.parametrize(
    "message, flag, cb_type, authzid, bare",
    [
        ("n,,n=u,r=x", "n", None, None, "n=u,r=x"),
        ("y,,n=u,r=x", "y", None, None, "n=u,r=x"),
        ("p=tls-exporter,,n=u,r=x", "p", "tls-exporter", None, "n=u,r=x"),
        ("n,a=admin=2Cx@example.com,n=u,r=x", "n", None, "admin,x@example.com", "n=u,r=x"),
    ],
)
def test_parse_client_first(message, flag, cb_type, authzid, bare):
    header, rest = parse_client_first(message)
    assert (header.flag, header.cb_type, header.authzid, rest) == (flag, cb_type, authzid, bare)
    assert header.raw + rest == message


@pytest.mark.parametrize(
    "message", ["", "n,n=u,r=x", "x,,n=u", "p,,n=u", "p=,,n=u", "n,a=,n=u", "n,b=c,n=u", "n,a=b=2,"]
)
def test_parse_client_first_rejects(message):
    with pytest.raises(ScramError):
        parse_client_first(message)


def test_make_gs2_header():
    assert make_gs2_header("n", None) == "n,,"
    assert make_gs2_header("p=tls-unique", "a,b@example.com") == "p=tls-unique,a=a=2Cb@example.com,"


def test_nonces_are_printable_and_fresh():
    nonces = {check_nonce(make_nonce()) for _ in range(100)}
    assert len(nonces) == 100


@pytest.mark.parametrize("nonce", ["", "a,b", "a b", "é", "a\x7f"])
def test_check_nonce_rejects(nonce):
    with pytest.raises(ScramError):
        check_nonce(nonce)


@pytest.mark.parametrize("text", ["0", "-1", "+1", " 1", "1_0", "²", "", "x"])
def test_parse_iterations_rejects(text):
    with pytest.raises(ScramError):
        parse_iterations(text)


def test_saslprep_passes_printable_ascii_unchanged_as_the_full_profile_does():
    printable = "".join(map(chr, range(0x20, 0x7F)))
    assert saslprep(printable) == full_saslprep(printable) == printable
    for char in printable:
        assert saslprep(char) == full_saslprep(char)


@pytest.mark.parametrize(
    "text, prepared",
    [("I\u00adX", "IX"), ("user", "user"), ("\u00aa", "a"), ("\u2168", "IX"), ("a\u00a0b", "a b")],  # RFC 4013 §3
)
def test_saslprep_still_maps_and_normalises_non_ascii(text, prepared):
    assert saslprep(text) == prepared


@pytest.mark.parametrize("text", ["\u0007", "a\x00b", "pass\x7f", "\u0627\u0031"])  # RFC 4013 §3: prohibited, bidi
def test_saslprep_still_refuses_controls_and_bad_bidi(text):
    with pytest.raises(ScramException):
        saslprep(text)
