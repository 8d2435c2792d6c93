"""SASL mechanisms, server side (RFC 6120 §6, RFC 4616 PLAIN, RFC 5802/7677 SCRAM).

Pure protocol logic, no I/O: the stream layer base64-decodes the client's data
(answering incorrect-encoding itself), feeds it to ``step`` and turns a
:class:`SASLFailure` into a <failure/>.

Mechanisms only parse and expose the authzid; whether the authenticated user
may act as it is the stream layer's decision, not theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from scramp import ScramException

from xmppd.protocol.sasl import CONDITIONS, ChannelBinding
from xmppd.protocol.scram import (
    HASHES,
    MIN_ITERATIONS,
    Credentials,
    Gs2Header,
    ScramKeys,
    auth_message,
    b64,
    check_nonce,
    make_nonce,
    parse_client_first,
    parse_mechanism_name,
    server_signature,
    saslprep,
    split_attributes,
    unb64,
    unescape_saslname,
    verify_client_proof,
)
from xmppd.util import identifiers


class SASLFailure(Exception):
    """Ends the exchange with an RFC 6120 §6.5 condition."""

    def __init__(self, condition: str, text: str | None = None):
        if condition not in CONDITIONS:
            raise ValueError(f"not a SASL failure condition: {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text


Lookup = Callable[[str], Awaitable[Credentials | None]]
Step = tuple[str, bytes | None]


class ServerMechanism(Protocol):
    """One SASL exchange. ``step`` returns ('challenge', data) or ('success',
    additional data or None) and raises SASLFailure; after success ``username``
    (SASLprepped) and ``authzid`` (None if absent) are set, and ``completed`` holds
    credentials to store when the exchange learnt keys the account lacked."""

    name: str
    username: str | None
    authzid: str | None
    completed: Credentials | None

    async def step(self, response: bytes | None) -> Step: ...


@contextlib.contextmanager
def _malformed() -> Iterator[None]:
    """Any parse error in client data is the client's fault: malformed-request."""
    try:
        yield
    except (ValueError, ScramException) as e:  # ScramError, binascii.Error, UnicodeError
        raise SASLFailure("malformed-request", str(e)) from None


def _check_authzid_length(authzid: str | None) -> None:
    """The authzid is a JID, prepared only after authentication: its length is checked now."""
    if authzid and not identifiers.jid_fits(authzid):
        raise ValueError("authzid longer than a JID")


def _prepare_username(name: str) -> str:
    """SASLprep, refusing names that prepare to nothing or, before preparing them, are too long for a localpart."""
    if not identifiers.fits(name):
        raise ValueError("username longer than 1023 bytes")
    prepared = saslprep(name)
    if not prepared:
        raise ValueError("empty username")
    return prepared


DEFAULT_MAX_PASSWORD_BYTES = 1023  # the schema's max_password_bytes


class PlainServer:
    """RFC 4616: authzid NUL authcid NUL passwd, checked against the SCRAM keys."""

    name = "PLAIN"

    def __init__(self, lookup: Lookup, max_password_bytes: int = DEFAULT_MAX_PASSWORD_BYTES):
        self._lookup = lookup
        self._max_password_bytes = max_password_bytes
        self._done = False
        self.username: str | None = None
        self.authzid: str | None = None
        self.completed: Credentials | None = None

    async def step(self, response: bytes | None) -> Step:
        if self._done:
            raise SASLFailure("malformed-request", "exchange already finished")
        if response is None:  # no initial response: an empty challenge asks for it
            return "challenge", b""
        self._done = True
        with _malformed():
            authzid, authcid, password = response.decode("utf-8").split("\0")
            _check_authzid_length(authzid)
            username = _prepare_username(authcid)
            if not password:
                raise ValueError("empty password")
            if not identifiers.fits(password, self._max_password_bytes):  # SASLprep is linear and slow
                raise ValueError("password too long")
        credentials = await self._lookup(username)
        if credentials is None:
            # Spend the same PBKDF2 time as for a real account: no user enumeration by timing.
            credentials = Credentials({"SHA-1": _fake_keys("SHA-1", username)})
            credentials.verify_password(password)
            raise SASLFailure("not-authorized")
        if not credentials.verify_password(password):
            raise SASLFailure("not-authorized")
        self.username, self.authzid = username, authzid or None
        self.completed = credentials.completed(password)
        return "success", None


_FAKE_SALT_SECRET = secrets.token_bytes(32)


def _fake_keys(hash_name: str, username: str) -> ScramKeys:
    """Keys for an unknown user, so that server-first looks like a real account's.

    The salt is stable per user (a real account's does not change between
    attempts either) and as long as scramp's; no proof will be accepted anyway.
    """
    salt = hmac.new(_FAKE_SALT_SECRET, f"{hash_name}\0{username}".encode(), hashlib.sha256).digest()
    size = HASHES[hash_name]().digest_size
    return ScramKeys(salt, MIN_ITERATIONS, bytes(size), bytes(size))


class ScramServer:
    """SCRAM-SHA-1/-SHA-256 (RFC 5802, RFC 7677), with -PLUS channel binding."""

    def __init__(
        self,
        hash_name: str,
        plus: bool,
        lookup: Lookup,
        channel_binding: ChannelBinding | None,
        cb_offered: bool,
        *,
        nonce_factory: Callable[[], str] = make_nonce,
    ):
        if plus and channel_binding is None:
            raise SASLFailure("invalid-mechanism", "no channel binding on this stream")
        self.name = f"SCRAM-{hash_name}{'-PLUS' if plus else ''}"
        self.hash_name, self.plus = hash_name, plus
        self._lookup, self._channel_binding, self._cb_offered = lookup, channel_binding, cb_offered
        self._nonce_factory = nonce_factory
        self._next = self._client_first
        self.username: str | None = None
        self.authzid: str | None = None
        self.completed: Credentials | None = None  # SCRAM never sees the password

    async def step(self, response: bytes | None) -> Step:
        handler, self._next = self._next, self._finished
        return await handler(response)

    async def _finished(self, response: bytes | None) -> Step:
        raise SASLFailure("malformed-request", "exchange already finished")

    async def _client_first(self, response: bytes | None) -> Step:
        if response is None:  # SCRAM is client-first: ask for it
            self._next = self._client_first
            return "challenge", b""
        with _malformed():
            header, bare = parse_client_first(response.decode("utf-8"))
            _check_authzid_length(header.authzid)
            (user, client_nonce), _ = split_attributes(bare, "nr")
            check_nonce(client_nonce)
            username = _prepare_username(unescape_saslname(user))
        self._check_binding_flag(header)
        credentials = await self._lookup(username)
        keys = credentials.keys.get(self.hash_name) if credentials is not None else None
        self._known = keys is not None
        self._keys = keys or _fake_keys(self.hash_name, username)
        self._header, self._username = header, username
        self._nonce = client_nonce + self._nonce_factory()
        self._server_first = f"r={self._nonce},s={b64(self._keys.salt)},i={self._keys.iterations}"
        self._client_first_bare = bare
        self._next = self._client_final
        return "challenge", self._server_first.encode("ascii")

    def _check_binding_flag(self, header: Gs2Header) -> None:
        """RFC 5802 §6: the flag must fit the mechanism, and 'y' while we offer
        -PLUS means someone stripped -PLUS from our offer."""
        if self.plus:
            if header.flag != "p" or header.cb_type != self._channel_binding.type:
                raise SASLFailure("not-authorized", "channel binding type mismatch")
        elif header.flag == "p":
            raise SASLFailure("malformed-request", "channel binding with a non-PLUS mechanism")
        elif header.flag == "y" and self._cb_offered:
            raise SASLFailure("not-authorized", "channel binding downgrade")

    async def _client_final(self, response: bytes | None) -> Step:
        with _malformed():
            text = (response or b"").decode("utf-8")
            (cb_attr, nonce), rest = split_attributes(text, "cr")
            if not rest or rest[-1][0] != "p":
                raise ValueError("proof missing or not last")
            proof = unb64(rest[-1][1])
            cb_data = unb64(cb_attr)
            if nonce != self._nonce:
                raise ValueError("nonce mismatch")
        expected = self._header.raw.encode("utf-8")
        if self._header.flag == "p":
            expected += self._channel_binding.data
        if not hmac.compare_digest(cb_data, expected):
            raise SASLFailure("not-authorized", "channel binding mismatch")
        without_proof = text[: -len(",p=" + rest[-1][1])]
        message = auth_message(self._client_first_bare, self._server_first, without_proof)
        valid = verify_client_proof(self.hash_name, self._keys.stored_key, message, proof)
        if not (valid and self._known):
            raise SASLFailure("not-authorized")
        self.username, self.authzid = self._username, self._header.authzid
        signature = server_signature(self.hash_name, self._keys.server_key, message)
        return "success", f"v={b64(signature)}".encode("ascii")


def make_server_mechanism(
    name: str,
    lookup: Lookup,
    channel_binding: ChannelBinding | None,
    cb_offered: bool,
    *,
    max_password_bytes: int = DEFAULT_MAX_PASSWORD_BYTES,
    nonce_factory: Callable[[], str] = make_nonce,
) -> ServerMechanism:
    """A fresh exchange for ``name``. The caller checks that ``name`` was offered;
    ``cb_offered`` says whether -PLUS was (for downgrade detection); PLAIN refuses
    passwords longer than ``max_password_bytes`` before preparing them;
    ``nonce_factory`` exists for test vectors."""
    if name == "PLAIN":
        return PlainServer(lookup, max_password_bytes)
    try:
        hash_name, plus = parse_mechanism_name(name)
    except ValueError:
        raise SASLFailure("invalid-mechanism") from None
    return ScramServer(hash_name, plus, lookup, channel_binding, cb_offered, nonce_factory=nonce_factory)
