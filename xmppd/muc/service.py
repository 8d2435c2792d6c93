"""A MUC service on its own host (MUC-01/02): disco, room creation, and each room's stanzas.

The router hands over every stanza addressed to the host; the service finds
the room, lets it decide, and routes what the room answers. Errors go back
from the address the stanza was sent to (a join error comes from the occupant
JID, MUC-14). Room changes go to the room store after each stanza
(writer.py); a node alone loads its persistent rooms at startup. In a cluster
each room runs on the one node holding its lease (owners.py), which loads it
from the store when it takes it: stanzas for a room run elsewhere are forwarded
there, and a room's fan-out crosses to each other node once (docs/muc.md).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import disco
from zope.interface import implementer

from xmppd.delivery import Readdressed, serialise
from xmppd.muc import NS_MUC, invites, record
from xmppd.muc.outgoing import Fanout, Outgoing, readdressed
from xmppd.muc.owners import ClusterRooms, LocalRooms
from xmppd.muc.room import Room, RoomPolicy, child
from xmppd.muc.state import RoomState
from xmppd.muc.writer import RoomWriter
from xmppd.protocol.stanzas import StanzaError, parse_jid, payload, result
from xmppd.router import IHostedService
from xmppd.util.aio import UNAVAILABLE, as_deferred

NS_RSM = "http://jabber.org/protocol/rsm"


@implementer(IHostedService)
class MucService:
    log = Logger()

    def __init__(self, node, host: str):
        self.node = node
        self.host = host
        config = node.config
        self.policy = RoomPolicy(
            config.muc_max_occupants, config.muc_max_history, config.muc_max_nick_length, config.muc_history_size,
            config.muc_max_rooms_joined, config.muc_invites_per_message, config.muc_groupchat_1_0, config.muc_max_registrations,
        )
        self.rooms: dict[str, Room] = {}
        self.writer = RoomWriter(node.storage.rooms, config.muc_max_history, every_room=bool(config.redis_url))
        self._loading: asyncio.Event | None = None  # set once the stored rooms are in
        self.bus = getattr(node.cluster, "bus", None)  # None: a node alone
        self.owners = ClusterRooms(self, node.cluster, config.muc_lease_ttl) if self.bus is not None else LocalRooms(self.run)
        self._creator: dict[str, str] = {}  # room -> the bare JID that created it
        self._created: Counter[str] = Counter()  # bare JID -> rooms it created that still exist
        self._joined: Counter[str] = Counter()  # bare JID -> occupants it is, kept by the rooms

    def start(self) -> None:
        """A node alone loads its stored (persistent) rooms; stanzas for the host wait until they are in.
        In a cluster the node that takes a room over loads it (docs/muc.md)."""
        if self.node.config.redis_url:
            return
        self._loading = asyncio.Event()
        asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        store = self.writer.store
        try:
            for jid in await store.rooms(self.host):
                self._loaded(jid, await store.load(jid))
        except Exception as e:  # storage away: the node serves without them rather than not at all
            self.log.warn("{host}: stored rooms not loaded ({error!r})", host=self.host, error=e)
        finally:
            loading, self._loading = self._loading, None
            loading.set()

    def _loaded(self, jid: str, stored, token: int | None = None) -> None:
        if stored is None:
            return
        try:
            state = record.state_of(jid, stored, with_occupants=token is not None)
        except (ValueError, KeyError, TypeError, domish.ParserError) as e:
            self.log.warn("{room}: stored room not loaded ({error!r})", room=jid, error=e)
            return
        name, room = jid.partition("@")[0], Room(state, self.policy, self._joined)
        self.rooms[name] = room
        self.writer.loaded(name, room, token)

    def discoverable(self) -> bool:
        """Always listed in the server's disco#items (MUC-01)."""
        return True

    async def stop(self) -> None:
        """After the node's streams are gone: once every room change so far is in the store,
        before storage closes, the leases go (a successor loads those changes, and need not
        wait the leases out)."""
        await self.writer.idle()
        await self.owners.stop()

    def receive(self, stanza: domish.Element, hops: int = 0):
        """From the router, or from another node over the bus (``hops`` forwards so far). None, or a
        Deferred when the stanza has to wait (the sender's later stanzas wait behind it); the work
        goes on whether the caller waits or not."""
        if self._loading is not None:
            return as_deferred(self._after_loading(stanza, self._loading))
        invitees = [] if hops else invites.hosted_invitees(stanza, self.policy.invites_per_message, self.node.domains)
        if invitees:  # checked where the stanza came in
            return as_deferred(self._check_invitees(stanza, invitees))
        return self._receive(stanza, hops)

    async def _after_loading(self, stanza: domish.Element, loading: asyncio.Event) -> None:
        await loading.wait()
        pending = self.receive(stanza)
        if pending is not None:
            await pending

    async def _check_invitees(self, stanza: domish.Element, invitees: list[JID]) -> None:
        """An invitation to an account this server does not have gets item-not-found (MUC-25).
        Storage away is answered here too, whoever routed the stanza: nothing is left to fail later."""
        accounts = self.node.storage.accounts
        try:
            missing = [jid for jid in invitees if not await accounts.exists(jid.user, jid.host)]
        except UNAVAILABLE as e:
            self.log.warn("{host}: invitees not checked, storage unavailable ({error})", host=self.host, error=e)
            self.node.router.bounce(stanza, StanzaError("internal-server-error", "wait", text="storage unavailable; retry later"))
            return
        if missing:
            self.node.router.bounce(stanza, StanzaError("item-not-found", text=f"{missing[0].userhost()} has no account here"))
            return
        self._receive(stanza)

    def _receive(self, stanza: domish.Element, hops: int = 0) -> None:
        sender = stanza.getAttribute("from")
        if sender is None:
            return None
        target = parse_jid(stanza["to"])
        if target.user is not None:
            self.owners.route(target.user, stanza, hops)
            return None
        try:
            self._send(self._to_service(stanza))
        except StanzaError as e:
            self.node.router.bounce(stanza, e)
        return None

    def run(self, name: str, stanza: domish.Element) -> None:
        """A stanza for a room this node runs."""
        try:
            answers = self._handle(stanza, parse_jid(stanza["from"]), parse_jid(stanza["to"]))
        except StanzaError as e:
            self.node.router.bounce(stanza, e)
            return
        finally:
            if name not in self.rooms:
                self.owners.ended(name)
        self._send(answers)

    def bounce(self, stanza: domish.Element, condition: str, text: str) -> None:
        self.node.router.bounce(stanza, StanzaError(condition, text=text))

    async def take(self, name: str) -> None:
        """This node has just taken the room's lease: a fencing token first, so that whoever ran the
        room before can write no more, then the room as it left it, occupants included."""
        jid, store = f"{name}@{self.host}", self.writer.store
        token = await store.advance(jid)
        stored = await store.load(jid)
        if stored is not None:
            self._loaded(jid, stored, token)

    def drop(self, name: str) -> None:
        """Another node runs the room now: forget it here without a word to its occupants."""
        room = self.rooms.get(name)
        if room is not None:
            room.release()
            self._close(name)

    def destroy(self, name: str, reason: str) -> None:
        """The operator's destruction of a room, heard by every node: the one running it acts."""
        room = self.rooms.get(name)
        if room is not None and self.owners.owner(name) == self.node.node_id:
            self._send(room.destroy(reason))
            self._settle(name, room)
            self.owners.ended(name)

    def summary(self, name: str) -> str:
        """What ``xmppctl rooms`` shows of a room run here."""
        room = self.rooms.get(name)
        occupants = sorted(room.state.occupants) if room is not None else []
        return json.dumps({"occupants": occupants, "persistent": room is not None and room.config.persistent})

    def _send(self, answers: list[Outgoing]) -> None:
        for answer in answers:
            if isinstance(answer, Fanout):
                self._fan_out(answer)
            else:
                self.node.router.send(answer)

    def _fan_out(self, fanout: Fanout) -> None:
        """Serialised once for the local recipients whose list admits it (docs/design.md: once per
        broadcast) and once for each other node that has recipients, which checks their lists;
        anything else takes the ordinary way, fallbacks included."""
        router, by_full, here = self.node.router, self.node.directory.by_full, self.node.node_id
        stanza, readdress, elsewhere = fanout.stanza, None, {}
        admits = router.local.admission(stanza)
        for to in fanout.to:  # real JIDs the room got from the router: in normal form
            resource = by_full(to)
            if resource is not None and resource.node != here:
                elsewhere.setdefault(resource.node, []).append(to)
            elif resource is not None and admits(resource):
                readdress = readdress or Readdressed(stanza)
                resource.stream.send_raw(readdress(to))
            else:
                router.send(readdressed(stanza, to))
        if elsewhere:
            data = serialise(stanza)
            for node_id, recipients in elsewhere.items():
                self.bus.send_fanout(node_id, recipients, data)

    def shut_down(self) -> None:
        """Before the node closes its streams: every occupant of every room hears it (332)."""
        self.owners.stopping()
        for name, room in list(self.rooms.items()):
            self._send(room.shut_down())
            self._settle(name, room)
        self.rooms.clear()
        self._creator.clear()
        self._created.clear()
        self._joined.clear()

    def _handle(self, stanza: domish.Element, sender: JID, target: JID) -> list[Outgoing]:
        if target.user is None:
            return self._to_service(stanza)
        room, created = self.rooms.get(target.user), False
        if room is None:
            if stanza.name != "presence" or stanza.getAttribute("type") is not None or target.resource is None:
                if stanza.name == "presence":
                    return []  # leaving, probing or erring at a room that is not there
                raise StanzaError("item-not-found", text="no such room")
            room, created = self._create(stanza, sender, target), True
        try:
            if stanza.name == "presence":
                return room.presence(stanza, sender, target.resource, self.node.clock.seconds(), created, self._nick_altered(stanza, target))
            if stanza.name == "message":
                return room.message(stanza, sender, target.resource, self.node.clock.seconds())
            return room.iq(stanza, sender, target.resource)
        finally:
            self._settle(target.user, room)

    def _settle(self, name: str, room: Room) -> None:
        """After a room handled something: a room that is gone goes, the others' changes are written."""
        if room.closed:
            self.writer.ended(name, room)
            self._close(name)
        else:
            self.writer.changed(name, room)

    def _create(self, presence: domish.Element, creator: JID, target: JID) -> Room:
        """MUC-35: the creator owns it; a MUC client's room stays locked until configured
        (201), a groupchat 1.0 join opens one at once (decision 7)."""
        config, bare = self.node.config, creator.userhost()
        if len(self.rooms) >= config.muc_max_rooms:
            raise StanzaError("not-allowed", text="this service holds as many rooms as it may")
        if self._created[bare] >= config.muc_max_rooms_per_user:
            raise StanzaError("not-allowed", text="you have created as many rooms as you may")
        locked = config.muc_room_locking and child(presence, NS_MUC, "x") is not None
        room = self.rooms[target.user] = Room(RoomState(target.userhost(), affiliations={bare: "owner"}, locked=locked), self.policy, self._joined)
        self._creator[target.user] = bare
        self._created[bare] += 1
        return room

    def _close(self, name: str) -> None:
        del self.rooms[name]
        creator = self._creator.pop(name, None)  # None: loaded from the store, counted against nobody
        if creator is None:
            return
        self._created[creator] -= 1
        if not self._created[creator]:
            del self._created[creator]

    @staticmethod
    def _nick_altered(stanza: domish.Element, target: JID) -> bool:
        """MUC-13 (210): preparation changed the nickname the client asked for."""
        return stanza["to"].partition("/")[2] != target.resource

    # -- the service's own address ---------------------------------------------------------

    def _to_service(self, stanza: domish.Element) -> list[domish.Element]:
        if stanza.name == "presence" or stanza.getAttribute("type") in ("result", "error"):
            return []
        query = payload(stanza) if stanza.name == "iq" else None
        if query is not None and stanza["type"] == "get" and not query.getAttribute("node"):
            if query.uri == disco.NS_DISCO_INFO:
                return [result(stanza, self._info())]
            if query.uri == disco.NS_DISCO_ITEMS:
                return [result(stanza, self._items(query))]
        raise StanzaError("service-unavailable")

    def _info(self) -> domish.Element:
        info = disco.DiscoInfo()
        info.append(disco.DiscoIdentity("conference", "text", "Chatrooms"))
        for feature in (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS, NS_MUC):
            info.append(disco.DiscoFeature(feature))
        return info.toElement()

    def _items(self, query: domish.Element) -> domish.Element:
        """MUC-02: public rooms only, by name (hidden and locked ones stay out), a page at a time
        (XEP-0059: at most muc_rooms_page, after the room the client names)."""
        listed = [(room.jid, room.config.name or name) for name, room in sorted(self.rooms.items()) if room.config.public and not room.state.locked]
        request = child(query, NS_RSM, "set")
        most, after = self._page_request(request)
        start = next((i + 1 for i, (jid, _) in enumerate(listed) if jid == after), 0) if after else 0
        page = listed[start : start + most]
        items = disco.DiscoItems()
        for jid, name in page:
            items.append(disco.DiscoItem(JID(jid), name=name))
        answer = items.toElement()
        if request is not None or len(listed) > most:  # asked for, or needed to see the rest
            paging = answer.addElement((NS_RSM, "set"))
            if page:
                paging.addElement("first", content=page[0][0])["index"] = str(start)
                paging.addElement("last", content=page[-1][0])
            paging.addElement("count", content=str(len(listed)))
        return answer

    def _page_request(self, request: domish.Element | None) -> tuple[int, str | None]:
        page = self.node.config.muc_rooms_page
        if request is None:
            return page, None
        most, after = child(request, NS_RSM, "max"), child(request, NS_RSM, "after")
        try:
            wanted = page if most is None else int(str(most))
        except ValueError:
            raise StanzaError("bad-request", text="<max/> is a number") from None
        return max(0, min(wanted, page)), str(after) if after is not None else None
