"""SASL mechanisms, client side: PLAIN and SCRAM-SHA-1/-SHA-256(-PLUS).

Same shape as the server side: the caller base64-encodes what ``initial`` and
``challenge`` return, and passes the <success/> data to ``success``, which for
SCRAM checks that the server knew the account's keys.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterator
from typing import Protocol

from scramp import ScramException

from xmppd.protocol.sasl import ChannelBinding, server_mechanisms
from xmppd.protocol.scram import (
    auth_message,
    b64,
    check_nonce,
    client_proof,
    escape_saslname,
    make_gs2_header,
    make_nonce,
    parse_attributes,
    parse_iterations,
    parse_mechanism_name,
    salted_password,
    saslprep,
    server_key_of,
    server_signature,
    split_attributes,
    unb64,
)


class SASLClientError(Exception):
    """The server misbehaved (bad message, failed signature) or no mechanism fits."""


class ClientMechanism(Protocol):
    name: str

    def initial(self) -> bytes: ...

    def challenge(self, data: bytes) -> bytes: ...

    def success(self, data: bytes | None) -> None: ...


@contextlib.contextmanager
def _server_errors() -> Iterator[None]:
    """A parse error in server data means we cannot trust the exchange."""
    try:
        yield
    except (ValueError, ScramException) as e:  # ScramError, binascii.Error, UnicodeError
        raise SASLClientError(str(e)) from None


class PlainClient:
    """RFC 4616; only ever chosen under TLS (see :func:`choose_mechanism`)."""

    name = "PLAIN"

    def __init__(
        self,
        username: str,
        password: str,
        authzid: str | None = None,
        channel_binding: ChannelBinding | None = None,
        server_offers_plus: bool = False,
    ):
        self._message = "\0".join((authzid or "", username, password)).encode("utf-8")

    def initial(self) -> bytes:
        return self._message

    def challenge(self, data: bytes) -> bytes:
        raise SASLClientError("PLAIN takes no challenge")

    def success(self, data: bytes | None) -> None:
        """PLAIN gives the server nothing to prove."""


class ScramClient:
    """SCRAM-SHA-1/-SHA-256, -PLUS binding to ``channel_binding``.

    For a non-PLUS mechanism, ``channel_binding`` plus ``server_offers_plus=False``
    sends the 'y' flag, so a server that did offer -PLUS detects the downgrade.
    """

    def __init__(
        self,
        name: str,
        username: str,
        password: str,
        authzid: str | None = None,
        channel_binding: ChannelBinding | None = None,
        server_offers_plus: bool = False,
        *,
        nonce: str | None = None,
    ):
        with _server_errors():
            self.hash_name, plus = parse_mechanism_name(name)
            user = escape_saslname(saslprep(username))
        if plus and channel_binding is None:
            raise SASLClientError(f"{name} needs channel binding data")
        if plus:
            flag, self._cb_data = f"p={channel_binding.type}", channel_binding.data
        else:
            flag, self._cb_data = ("y" if channel_binding and not server_offers_plus else "n"), b""
        self.name = name
        self._password = password
        self._header = make_gs2_header(flag, authzid)
        self._nonce = nonce or make_nonce()
        self._client_first_bare = f"n={user},r={self._nonce}"
        self._signature: bytes | None = None  # expected server signature, once we sent our proof
        self._verified = False

    def initial(self) -> bytes:
        return (self._header + self._client_first_bare).encode("utf-8")

    def challenge(self, data: bytes) -> bytes:
        """Answer server-first with our proof; a second challenge is server-final
        (RFC 6120 §6.3.10 lets the server send it that way), answered empty."""
        if self._verified:
            raise SASLClientError("challenge after server-final")
        if self._signature is not None:
            self._verify(data)
            return b""
        with _server_errors():
            server_first = data.decode("utf-8")
            (nonce, salt, iterations), _ = split_attributes(server_first, "rsi")
            check_nonce(nonce)
            if not nonce.startswith(self._nonce) or nonce == self._nonce:
                raise ValueError("server nonce does not extend ours")
            salted = salted_password(self.hash_name, self._password, unb64(salt), parse_iterations(iterations))
        binding = b64(self._header.encode("utf-8") + self._cb_data)
        without_proof = f"c={binding},r={nonce}"
        message = auth_message(self._client_first_bare, server_first, without_proof)
        proof = client_proof(self.hash_name, salted, message)
        self._signature = server_signature(self.hash_name, server_key_of(self.hash_name, salted), message)
        return f"{without_proof},p={b64(proof)}".encode("ascii")

    def success(self, data: bytes | None) -> None:
        """Raise unless the server proved it holds our ServerKey."""
        if data:
            self._verify(data)
        if not self._verified:
            raise SASLClientError("server did not prove knowledge of our credentials")

    def _verify(self, data: bytes) -> None:
        with _server_errors():
            (name, value), *_ = parse_attributes(data.decode("utf-8"))
            if name == "e":
                raise SASLClientError(f"server error: {value}")
            if name != "v":
                raise ValueError("server-final without v=")
            signature = unb64(value)
        if self._signature is None or not hmac.compare_digest(signature, self._signature):
            raise SASLClientError("server signature does not verify")
        self._verified = True


def make_client_mechanism(
    name: str,
    username: str,
    password: str,
    authzid: str | None = None,
    channel_binding: ChannelBinding | None = None,
    server_offers_plus: bool = False,
) -> ClientMechanism:
    if name == "PLAIN":
        return PlainClient(username, password, authzid, channel_binding, server_offers_plus)
    return ScramClient(name, username, password, authzid, channel_binding, server_offers_plus)


def choose_mechanism(offered: list[str], tls: bool, channel_binding: ChannelBinding | None) -> str:
    """Our preference is exactly the server's offer order: -PLUS when we can
    bind, SHA-256 before SHA-1, PLAIN last and only under TLS."""
    for name in server_mechanisms(tls, channel_binding):
        if name in offered:
            return name
    raise SASLClientError(f"no acceptable mechanism among {offered}")
