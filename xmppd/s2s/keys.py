"""Dialback keys (XEP-0185): what proves a stream came from a server knowing the secret.

The key is a hex HMAC-SHA256, keyed with the hex SHA-256 of the secret, over the
receiving domain, the originating domain and the receiving server's stream id,
space-separated. wokkel's ``server.generateKey`` computes the same thing but
encodes everything as ASCII, so an internationalised domain raises
UnicodeEncodeError there; here every part is UTF-8 (identical for ASCII).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class DialbackKeys:
    def __init__(self, secret: str):
        """An empty secret (a node alone, no option given) gets a random one: keys only need to
        outlive the streams of this process."""
        secret = secret or secrets.token_hex(32)
        self._hashed = hashlib.sha256(secret.encode("utf-8")).hexdigest().encode("ascii")

    def key(self, receiving: str, originating: str, stream_id: str) -> str:
        message = " ".join((receiving, originating, stream_id)).encode("utf-8")
        return hmac.new(self._hashed, message, hashlib.sha256).hexdigest()

    def valid(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        """Constant-time: the comparison must not tell an attacker how much of a guess was right."""
        return hmac.compare_digest(self.key(receiving, originating, stream_id).encode(), key.strip().encode("utf-8", "replace"))
