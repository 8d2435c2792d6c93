"""The caps store contract on every backend: verified ver -> features, bounded."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import Runner
from xmppd.storage.interfaces import ICapsStore

TUNE = ["http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/tune+notify", "urn:xmpp:ünïcode"]


class CapsStoreContract:
    def test_provides_interface(self, caps: ICapsStore) -> None:
        assert verifyObject(ICapsStore, caps)

    def test_round_trip(self, caps: ICapsStore, run: Runner) -> None:
        assert run(caps.get("QgayPKawpkPSDYmwT/WM94uAlu0=")) is None
        assert run(caps.put("QgayPKawpkPSDYmwT/WM94uAlu0=", TUNE, 10)) is True
        assert run(caps.get("QgayPKawpkPSDYmwT/WM94uAlu0=")) == TUNE

    def test_bounded(self, caps: ICapsStore, run: Runner) -> None:
        assert run(caps.put("a", ["x"], 2)) and run(caps.put("b", ["y"], 2))
        assert run(caps.put("c", ["z"], 2)) is False
        assert run(caps.get("c")) is None
        assert run(caps.put("a", ["x"], 2)) is True  # already there: not a new entry


class TestCapsStore(CapsStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""
