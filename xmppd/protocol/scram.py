"""SCRAM key material (RFC 5802 / RFC 7677) as stored for an account, and the
pure helpers both SCRAM sides need.

An account never stores its password: only, per hash, the salt, the iteration
count and the StoredKey/ServerKey pair. Key derivation comes from ``scramp``;
the message exchange is ours because scramp 1.5 rejects the 'tls-exporter'
channel binding and a non-empty GS2 authzid, both of which XMPP needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

import scramp
from scramp.utils import saslprep as _full_saslprep

HASHES = {"SHA-1": hashlib.sha1, "SHA-256": hashlib.sha256}
MIN_ITERATIONS = 4096


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What a server needs to run SCRAM for one hash function."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def to_dict(self) -> dict:
        return {
            "salt": base64.b64encode(self.salt).decode(),
            "iterations": self.iterations,
            "stored_key": base64.b64encode(self.stored_key).decode(),
            "server_key": base64.b64encode(self.server_key).decode(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScramKeys:
        """binascii's decoder, which ``base64.b64decode`` calls (same leniency) after a Python
        layer of its own: every SASL lookup decodes six of these."""
        return cls(
            salt=binascii.a2b_base64(data["salt"]),
            iterations=int(data["iterations"]),
            stored_key=binascii.a2b_base64(data["stored_key"]),
            server_key=binascii.a2b_base64(data["server_key"]),
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account's SCRAM keys for every hash we offer, keyed by hash name."""

    keys: dict[str, ScramKeys]

    @classmethod
    def from_password(cls, password: str, iterations: int = MIN_ITERATIONS) -> Credentials:
        if iterations < MIN_ITERATIONS:
            raise ValueError(f"SCRAM iteration count must be >= {MIN_ITERATIONS}")
        return cls({name: derive_keys(name, password, iterations) for name in HASHES})

    def verify_password(self, password: str) -> bool:
        """Check a password (SASL PLAIN) against the stored keys, never a stored password."""
        name, keys = next(iter(self.keys.items()))
        try:
            salted = salted_password(name, password, keys.salt, keys.iterations)
        except scramp.ScramException:
            return False
        return hmac.compare_digest(stored_key_of(name, client_key_of(name, salted)), keys.stored_key)

    def completed(self, password: str) -> Credentials | None:
        """These keys plus those of the hashes they lack, from a password just verified, at the
        same iteration count; None when none lacks. An account imported with SHA-1 keys only
        (Prosody 0.12's) gains SHA-256 at its first PLAIN login, so SCRAM-SHA-256 works next."""
        missing = [name for name in HASHES if name not in self.keys]
        if not missing:
            return None
        iterations = next(iter(self.keys.values())).iterations
        return Credentials({**self.keys, **{name: derive_keys(name, password, iterations) for name in missing}})

    def to_json(self) -> str:
        return json.dumps({name: k.to_dict() for name, k in self.keys.items()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Credentials:
        return cls({name: ScramKeys.from_dict(d) for name, d in json.loads(text).items()})


def derive_keys(
    hash_name: str, password: str, iterations: int = MIN_ITERATIONS, salt: bytes | None = None
) -> ScramKeys:
    """One hash's keys via scramp; a fixed ``salt`` reproduces published test vectors."""
    salt, stored_key, server_key, count = scramp.ScramMechanism(f"SCRAM-{hash_name}").make_auth_info(
        password, iteration_count=iterations, salt=salt
    )
    return ScramKeys(salt, count, stored_key, server_key)


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep, without the pure-Python stringprep walk for printable ASCII.

    Printable ASCII (U+0020-U+007E) is mapped to itself, is stable under NFKC,
    holds nothing prohibited (ASCII space is allowed, controls are not printable)
    and no right-to-left character, so SASLprep returns it unchanged. Nearly
    every username and password is such a string, and the full profile costs
    ~0.15 ms a call: a PLAIN login prepares two.
    """
    if text.isascii() and text.isprintable():
        return text
    return _full_saslprep(text)


# -- message syntax (RFC 5802 §7) ----------------------------------------------------


class ScramError(ValueError):
    """A SCRAM message that breaks RFC 5802's grammar (the server answers malformed-request)."""


def parse_mechanism_name(name: str) -> tuple[str, bool]:
    """'SCRAM-SHA-256-PLUS' -> ('SHA-256', True): one implementation serves every variant."""
    base, plus = (name[:-5], True) if name.endswith("-PLUS") else (name, False)
    hash_name = base.removeprefix("SCRAM-")
    if hash_name == base or hash_name not in HASHES:
        raise ValueError(f"not a supported SCRAM mechanism: {name!r}")
    return hash_name, plus


def escape_saslname(name: str) -> str:
    """',' and '=' would end or confuse an attribute, so they travel as '=2C' and '=3D'."""
    return name.replace("=", "=3D").replace(",", "=2C")


_BAD_ESCAPE = re.compile(r"=(?!2C|3D)")


def unescape_saslname(value: str) -> str:
    """Undo :func:`escape_saslname`; any other '=' is malformed (RFC 5802 §5.1).

    '=2C' is replaced first so that an escaped '=' followed by '2C' stays '=2C'.
    """
    if not value or _BAD_ESCAPE.search(value):
        raise ScramError(f"bad saslname {value!r}")
    return value.replace("=2C", ",").replace("=3D", "=")


_ATTRIBUTE = re.compile(r"([A-Za-z])=([^\x00]+)\Z")


def parse_attributes(text: str) -> list[tuple[str, str]]:
    """Split 'a=b,c=d' into ordered pairs: SCRAM attributes are positional."""
    pairs = []
    for item in text.split(","):
        match = _ATTRIBUTE.match(item)
        if match is None:
            raise ScramError(f"bad attribute {item!r}")
        pairs.append((match[1], match[2]))
    return pairs


def split_attributes(text: str, leading: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Values of the mandatory leading attributes named by ``leading`` (e.g. "nr"),
    plus the optional extensions after them.

    'm' (mandatory extension) is refused wherever it appears: we support none,
    and RFC 5802 §5.1 says to fail rather than ignore it.
    """
    pairs = parse_attributes(text)
    names = "".join(name for name, _ in pairs)
    if not names.startswith(leading) or "m" in names:
        raise ScramError(f"expected attributes {leading!r} first, got {names!r}")
    return [value for _, value in pairs[: len(leading)]], pairs[len(leading) :]


_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+\Z")


def check_nonce(nonce: str) -> str:
    """Nonces must be printable ASCII without ',' (RFC 5802 'printable')."""
    if not _NONCE.match(nonce):
        raise ScramError(f"bad nonce {nonce!r}")
    return nonce


def make_nonce() -> str:
    """Fresh unpredictable nonce; URL-safe base64 never contains ','."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class Gs2Header:
    """The GS2 header opening a client-first message (RFC 5802 §7)."""

    flag: str  # 'n' (no channel binding), 'y' (client could, thinks server can't) or 'p'
    cb_type: str | None  # channel-binding type when flag is 'p'
    authzid: str | None  # unescaped; None when absent
    raw: str  # exactly as received: it is echoed, base64-encoded, in c=


_GS2 = re.compile(r"(n|y|p=([A-Za-z0-9.-]+)),(?:a=([^,]+))?,")


def parse_client_first(message: str) -> tuple[Gs2Header, str]:
    """Split a client-first message into its GS2 header and client-first-message-bare."""
    match = _GS2.match(message)
    if match is None:
        raise ScramError("bad GS2 header")
    flag = match[1][0]
    authzid = unescape_saslname(match[3]) if match[3] is not None else None
    return Gs2Header(flag, match[2], authzid, match[0]), message[match.end() :]


def make_gs2_header(cbind_flag: str, authzid: str | None) -> str:
    """``cbind_flag`` is 'n', 'y' or 'p=<type>'."""
    return f"{cbind_flag},{'a=' + escape_saslname(authzid) if authzid else ''},"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Strict base64: a stray character is a malformed message, not something to skip."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def parse_iterations(text: str) -> int:
    """'i=' is a positive decimal number; int() alone would also accept '+1', ' 1' or '1_0'."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ScramError(f"bad iteration count {text!r}")
    return int(text)


# -- proofs and signatures (RFC 5802 §3) ----------------------------------------------


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, HASHES[hash_name]).digest()


def salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i); raises scramp.ScramException if SASLprep refuses it."""
    prepared = saslprep(password).encode("utf-8")
    return hashlib.pbkdf2_hmac(HASHES[hash_name]().name, prepared, salt, iterations)


def client_key_of(hash_name: str, salted: bytes) -> bytes:
    return _hmac(hash_name, salted, b"Client Key")


def server_key_of(hash_name: str, salted: bytes) -> bytes:
    return _hmac(hash_name, salted, b"Server Key")


def stored_key_of(hash_name: str, client_key: bytes) -> bytes:
    return HASHES[hash_name](client_key).digest()


def auth_message(client_first_bare: str, server_first: str, client_final_without_proof: str) -> bytes:
    """What both proofs sign: the whole exchange, so no part of it can be tampered with."""
    return f"{client_first_bare},{server_first},{client_final_without_proof}".encode("utf-8")


def _xor(a: bytes, b: bytes) -> bytes:
    """Two strings of the same length XORed, as two big integers rather than byte by byte."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def client_proof(hash_name: str, salted: bytes, message: bytes) -> bytes:
    """ClientKey XOR ClientSignature: proves the key without revealing it."""
    key = client_key_of(hash_name, salted)
    return _xor(key, _hmac(hash_name, stored_key_of(hash_name, key), message))


def verify_client_proof(hash_name: str, stored_key: bytes, message: bytes, proof: bytes) -> bool:
    """Recover ClientKey from the proof and check it hashes to StoredKey."""
    signature = _hmac(hash_name, stored_key, message)
    if len(proof) != len(signature):
        return False
    return hmac.compare_digest(stored_key_of(hash_name, _xor(proof, signature)), stored_key)


def server_signature(hash_name: str, server_key: bytes, message: bytes) -> bytes:
    """Proves to the client that the server holds the account's ServerKey."""
    return _hmac(hash_name, server_key, message)
