"""Multi-user chat (XEP-0045): a service on its own host, holding rooms.

``service`` receives every stanza addressed to the host and hands it to the
room it names; ``room`` is one room's rules, a pure function from a stanza to
the stanzas it causes; ``state`` is what a room knows, plain data that a
storage layer (and, in a cluster, the node that takes a room over) can keep;
``forms`` are the owner's configuration and the room's disco form; ``changes``,
``record`` and ``writer`` take what each stanza changed to the room store.
docs/muc.md tells the whole design, including the cluster plan.
"""

from wokkel.muc import NS_MUC, NS_MUC_ADMIN, NS_MUC_CONFIG, NS_MUC_OWNER, NS_MUC_ROOMINFO, NS_MUC_USER

from xmppd.protocol.stanzas import NS_DELAY, NS_LEGACY_DELAY

__all__ = ["NS_MUC", "NS_MUC_ADMIN", "NS_MUC_CONFIG", "NS_MUC_OWNER", "NS_MUC_ROOMINFO", "NS_MUC_USER", "NS_DELAY", "NS_LEGACY_DELAY"]
