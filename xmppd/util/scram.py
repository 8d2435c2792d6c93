"""Where ``Credentials`` lived before the protocol layer took SCRAM (xmppd/protocol/scram.py).

The independent benchmark harness provisions accounts through this path
(../shared/bench/provision/xmppd_provision.py, which this project cannot edit),
so it stays importable; everything in xmppd imports from xmppd.protocol.scram.
"""

from xmppd.protocol.scram import Credentials

__all__ = ["Credentials"]
