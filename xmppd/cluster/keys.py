"""The cluster's Redis keys, in one place (account data keys live in storage/redis.py).

::

    xmppd:cluster:nodes                     HASH   node id -> JSON (host, pid, started)
    xmppd:cluster:node:<id>:alive           STRING the node's incarnation; PX = heartbeat TTL
    xmppd:cluster:node:<id>:sessions        HASH   full JID -> session id, of the node's sessions
    xmppd:cluster:node:<id>:bus             STREAM stanzas for the node's sessions (group 'deliver')
    xmppd:cluster:node:<id>:rooms           HASH   room JID -> JSON summary, of the MUC rooms the node runs
    xmppd:muc:{<room JID>}:owner            STRING the room's lease: 'node id NL incarnation'; PX = muc_lease_ttl
    xmppd:muc:{<room JID>}:claimed          STRING who took the lease last (same form); no TTL, gone with a release
    xmppd:component:{<domain>}:node         STRING the node holding the component's stream: 'node id NL incarnation'; PX = heartbeat TTL
    xmppd:cluster:cleanup:<id>              STRING lock held by the survivor cleaning up a dead node
    xmppd:{<bare JID>}:sessions             HASH   resource -> the session's record (JSON)
    xmppd:{<bare JID>}:last-unavailable     STRING 'epoch seconds NL presence XML', the account's last unavailable (PRES-09)
    xmppd:{<bare JID>}:pep-abroad           HASH   remote full JID -> its last presence to the account [NUL, its per-JID caps] (PEP-14)
    xmppd:cluster:events                    PUBSUB directory changes, account changes, deaths

Per node keys are found from the nodes hash and the per-account ones from a
node's sessions hash: nothing is ever looked up with KEYS or SCAN.
"""

from __future__ import annotations

NODES = "xmppd:cluster:nodes"
EVENTS = "xmppd:cluster:events"
BUS_GROUP = "deliver"


def alive(node_id: str) -> str:
    return f"xmppd:cluster:node:{node_id}:alive"


def node_sessions(node_id: str) -> str:
    return f"xmppd:cluster:node:{node_id}:sessions"


def bus(node_id: str) -> str:
    return f"xmppd:cluster:node:{node_id}:bus"


def node_rooms(node_id: str) -> str:
    return f"xmppd:cluster:node:{node_id}:rooms"


def room_owner(room: str) -> str:
    return f"xmppd:muc:{{{room}}}:owner"


def room_claimed(room: str) -> str:
    return f"xmppd:muc:{{{room}}}:claimed"


def component_node(domain: str) -> str:
    return f"xmppd:component:{{{domain}}}:node"


def cleanup_lock(node_id: str) -> str:
    return f"xmppd:cluster:cleanup:{node_id}"


def account_sessions(bare: str) -> str:
    return f"xmppd:{{{bare}}}:sessions"


def last_unavailable(bare: str) -> str:
    return f"xmppd:{{{bare}}}:last-unavailable"


def pep_abroad(bare: str) -> str:
    return f"xmppd:{{{bare}}}:pep-abroad"
