"""The vCard store contract on every backend, and SQLite's sharing between connections."""

from __future__ import annotations

import base64

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage.interfaces import IVCardStore
from xmppd.storage.sqlite import SQLiteDatabase, SQLiteVCardStore

BOB = ("bob", "example.org")
ALICE_ELSEWHERE = ("alice", "example.net")


def vcard(name: str, photo: bytes = b"") -> str:
    """vCard XML as a client sends it; kept byte for byte, whitespace and all, never parsed."""
    binval = base64.b64encode(photo).decode("ascii")
    return (
        f"<vCard xmlns='vcard-temp'>\n  <FN>{name}</FN>\n"
        f"  <PHOTO><TYPE>image/png</TYPE><BINVAL>{binval}</BINVAL></PHOTO></vCard>"
    )


JULIET = vcard("Juliet Capulet ♥ Ἰουλιέτα 🌹")
ROMEO = vcard("Romeo Montague")


class VCardStoreContract:
    """What every IVCardStore must do, given ``vcards`` and ``run`` fixtures."""

    def test_provides_interface(self, vcards: IVCardStore) -> None:
        assert verifyObject(IVCardStore, vcards)

    def test_empty(self, vcards: IVCardStore, run: Runner) -> None:
        assert run(vcards.get(*ALICE)) is None

    def test_round_trip(self, vcards: IVCardStore, run: Runner) -> None:
        large = vcard("Juliet", photo=bytes(range(256)) * 4096)  # a 1 MiB photo, ~1.4 MB of text
        run(vcards.put(*ALICE, JULIET))
        assert run(vcards.get(*ALICE)) == JULIET
        run(vcards.put(*BOB, large))
        assert run(vcards.get(*BOB)) == large

    def test_put_replaces(self, vcards: IVCardStore, run: Runner) -> None:
        run(vcards.put(*ALICE, JULIET))
        run(vcards.put(*ALICE, ROMEO))
        assert run(vcards.get(*ALICE)) == ROMEO

    def test_per_user(self, vcards: IVCardStore, run: Runner) -> None:
        run(vcards.put(*ALICE, JULIET))
        run(vcards.put(*ALICE_ELSEWHERE, ROMEO))
        assert run(vcards.get(*ALICE)) == JULIET
        assert run(vcards.get(*ALICE_ELSEWHERE)) == ROMEO
        assert run(vcards.get(*BOB)) is None

    def test_delete_all(self, vcards: IVCardStore, run: Runner) -> None:
        run(vcards.put(*ALICE, JULIET))
        run(vcards.put(*BOB, ROMEO))
        run(vcards.delete_all(*ALICE))
        assert run(vcards.get(*ALICE)) is None
        assert run(vcards.get(*BOB)) == ROMEO
        run(vcards.delete_all(*ALICE))  # nothing left: no error


class TestVCardStore(VCardStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    server, xmppctl = (SQLiteVCardStore(db) for db in sqlite_pair)
    run(server.put(*ALICE, JULIET))
    assert run(xmppctl.get(*ALICE)) == JULIET
    run(xmppctl.put(*ALICE, ROMEO))
    assert run(server.get(*ALICE)) == ROMEO
    run(xmppctl.delete_all(*ALICE))
    assert run(server.get(*ALICE)) is None
