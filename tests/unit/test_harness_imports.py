"""What the independent benchmark harness (../shared/bench) imports from xmppd must stay importable:
its provisioner is outside this project and judges the performance issues."""

from xmppd.bench.common import ring_contacts
from xmppd.protocol.scram import Credentials
from xmppd.storage import open_storage
from xmppd.storage.interfaces import RosterItem
from xmppd.util import scram


def test_the_harness_provisioner_finds_what_it_imports():
    assert scram.Credentials is Credentials
    assert callable(ring_contacts) and callable(open_storage) and RosterItem
    stored = scram.Credentials.from_password("pw", 4096).to_json()
    assert Credentials.from_json(stored).verify_password("pw")
