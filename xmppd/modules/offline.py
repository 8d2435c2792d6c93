"""Offline messages (XEP-0160, MSG-04): stored when no resource can take them, delivered
in order at the next available presence with a non-negative priority, with XEP-0203
delay stamps (and legacy XEP-0091 ones for 2008-era clients).

A queue may hold megabytes (``offline_quota_bytes``): it goes out a page at a time, each
written out to the client before the next is read, so the node never holds more than a
page of it and its other streams are served in between."""

from __future__ import annotations

import asyncio
import time

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules import Module
from xmppd.protocol.stanzas import message_type, stamp_delay
from xmppd.protocol.xml import NS_CHATSTATES, serialise
from xmppd.sessions import Resource
from xmppd.storage.interfaces import OfflineQuota
from xmppd.util.aio import run_in_background

STORED_TYPES = frozenset(("normal", "chat"))


def only_chat_state(message: domish.Element) -> bool:
    """CSN-02: a standalone chat-state notification (a state, maybe a thread, nothing else)."""
    children = list(message.elements())
    states = [c for c in children if c.uri == NS_CHATSTATES]
    return bool(states) and all(c.uri == NS_CHATSTATES or c.name == "thread" for c in children)


class OfflineModule(Module):
    name = "offline"
    server_features = ("msgoffline",)
    hooks = {"message-offline": "store", "presence-available": "flush"}

    def __init__(self, node):
        super().__init__(node)
        self._waiting: set[str] = set()  # accounts with messages stored by this node
        self._delivering: set[str] = set()  # accounts whose stored messages this node is sending
        self.stored = self.delivered = 0  # messages, for /metrics

    def store(self, message: domish.Element, target: JID):
        if message_type(message) not in STORED_TYPES or only_chat_state(message):
            return True  # headline, groupchat, error, chat states: not kept (S in MSG-01)
        return self._store(message, target)

    async def _store(self, message: domish.Element, target: JID):
        accounts, offline = self.node.storage.accounts, self.node.storage.offline
        if not await accounts.exists(target.user, target.host):
            self.node.router.bounce(message, "service-unavailable")
            return
        privacy = self.node.privacy
        if privacy is not None and not await privacy.allowed_for_account(message, target, JID(message["from"])):
            self.node.router.bounce(message, "service-unavailable")  # the default list applies offline (PRIV-10)
            return
        stamp_delay(message, target.host, time.time(), legacy=True)
        config = self.node.config
        quota = OfflineQuota(messages=config.offline_quota, bytes=config.offline_quota_bytes)
        if not await offline.push(target.user, target.host, serialise(message), quota):
            self.node.router.bounce(message, "service-unavailable", "offline storage is full")
            return
        self.stored += 1
        self._waiting.add(target.userhost())
        self._flush_if_online(target.userhost())

    @property
    def accounts_waiting(self) -> int:
        """Accounts with messages this node stored and has not delivered yet."""
        return len(self._waiting)

    def _flush_if_online(self, bare: str) -> None:
        """A resource may have become available while the message was being stored."""
        for resource in self.node.directory.resources(bare):
            if resource.interested:
                self.flush(resource, True)
                return

    def flush(self, resource: Resource, initial: bool):
        if resource.priority < 0 or not (initial or resource.bare in self._waiting):
            return None
        if resource.bare in self._delivering:
            self._waiting.add(resource.bare)  # the delivery under way reads on until nothing is left
            return None
        self._waiting.discard(resource.bare)
        self._delivering.add(resource.bare)
        holding = getattr(resource.stream, "hold_output", None)  # a stream of this node
        if holding is not None:
            holding()  # what arrives meanwhile waits behind the stored messages (MSG-04 order)
        run_in_background(self._deliver(resource, holding is not None), self.log, f"offline delivery to {resource.jid.full()} failed")
        return None

    async def _deliver(self, resource: Resource, held: bool):
        try:
            if held:
                await self._send_pages(resource, resource.stream.send_ahead, resource.stream.output.written)
            else:
                await self._send_pages(resource, lambda data: self.node.router.local.send_raw([resource], data), next_turn)
        finally:
            self._delivering.discard(resource.bare)
            if held:
                resource.stream.release_output()

    async def _send_pages(self, resource: Resource, send, sent) -> None:
        """Page by page, each one out before the next is read: the node holds one page, not
        the whole queue, and every other stream gets its turns between pages."""
        offline, account = self.node.storage.offline, (resource.jid.user, resource.jid.host)
        while True:
            page = await offline.pop_page(*account, self.node.config.offline_page_bytes)
            if not page:
                if resource.bare not in self._waiting:
                    return
                self._waiting.discard(resource.bare)  # stored while this page was read: one more round
                continue
            if resource.stream is None or resource.stream.closed:  # gone meanwhile: keep them, first
                await offline.requeue(*account, page)
                self._waiting.add(resource.bare)
                return
            send("".join(page).encode("utf-8"))
            self.delivered += len(page)
            await sent()


async def next_turn() -> None:
    """Let the reactor run whatever else is ready."""
    await asyncio.sleep(0)
