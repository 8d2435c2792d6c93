"""What the server needs from a storage backend, independent of how it keeps data.

Every method is a coroutine, so the synchronous SQLite backend and the asyncio
Redis backend share one calling convention (``await`` from asyncio code,
``defer.Deferred.fromCoroutine`` from Twisted code).

Keys are already normalised (nodeprep'd localpart, nameprep'd domain): stores
compare them exactly and never normalise, so normalisation lives in one place.
"""

from __future__ import annotations

from zope.interface import Interface

from xmppd.util.scram import Credentials


class StorageError(Exception):
    """A storage failure that callers are expected to handle."""


class AccountExists(StorageError):
    """``create`` was given an account that is already registered."""


class AccountNotFound(StorageError):
    """An update named an account that is not registered."""


class IAccountStore(Interface):
    """Registered accounts and their SCRAM credentials (never passwords)."""

    async def create(localpart: str, domain: str, credentials: Credentials) -> None:
        """Register an account; raise ``AccountExists`` if it is already registered."""

    async def credentials(localpart: str, domain: str) -> Credentials | None:
        """The account's credentials, or None if it is not registered."""

    async def set_credentials(localpart: str, domain: str, credentials: Credentials) -> None:
        """Replace the account's credentials; raise ``AccountNotFound`` if it is not registered."""

    async def delete(localpart: str, domain: str) -> bool:
        """Remove the account; False if there was none, so callers can report it."""

    async def exists(localpart: str, domain: str) -> bool:
        """Whether the account is registered."""

    async def list(domain: str | None = None) -> list[str]:
        """Sorted bare JIDs ("local@domain") of the domain's accounts, or of all domains."""
