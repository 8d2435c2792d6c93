"""In-memory backend: for tests and throwaway servers started without a data directory."""

from __future__ import annotations

from zope.interface import implementer

from xmppd.storage.interfaces import AccountExists, AccountNotFound, IAccountStore
from xmppd.util.scram import Credentials


@implementer(IAccountStore)
class MemoryAccountStore:
    """Accounts in a dict keyed by (localpart, domain).

    Credentials are kept as their JSON text, as the persistent backends keep
    them, so callers never share a mutable object with the store and the
    serialisation is exercised by every backend alike.
    """

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], str] = {}

    async def create(self, localpart: str, domain: str, credentials: Credentials) -> None:
        if (localpart, domain) in self._accounts:
            raise AccountExists(f"{localpart}@{domain}")
        self._accounts[localpart, domain] = credentials.to_json()

    async def credentials(self, localpart: str, domain: str) -> Credentials | None:
        text = self._accounts.get((localpart, domain))
        return None if text is None else Credentials.from_json(text)

    async def set_credentials(self, localpart: str, domain: str, credentials: Credentials) -> None:
        if (localpart, domain) not in self._accounts:
            raise AccountNotFound(f"{localpart}@{domain}")
        self._accounts[localpart, domain] = credentials.to_json()

    async def delete(self, localpart: str, domain: str) -> bool:
        return self._accounts.pop((localpart, domain), None) is not None

    async def exists(self, localpart: str, domain: str) -> bool:
        return (localpart, domain) in self._accounts

    async def list(self, domain: str | None = None) -> list[str]:
        return sorted(
            f"{local}@{dom}" for local, dom in self._accounts if domain is None or dom == domain
        )
