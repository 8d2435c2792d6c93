"""A MUC service on its own host (MUC-01/02): disco, room creation, and each room's stanzas.

The router hands over every stanza addressed to the host; the service finds
the room, lets it decide, and routes what the room answers. Errors go back
from the address the stanza was sent to (a join error comes from the occupant
JID, MUC-14). Room changes go to the room store after each stanza
(writer.py); a node alone loads its persistent rooms at startup. In a cluster
each room runs on the one node holding its lease (owners.py), which loads it
from the store when it takes it: stanzas for a room run elsewhere are forwarded
there, and a room's fan-out crosses to each other node once (docs/muc.md). The
room list and the limits on rooms count every node's rooms: the store lists
them all (``IRoomStore.listing``).
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

from xmppd.delivery import Readdressed
from xmppd.muc import NS_MUC, invites, record
from xmppd.muc.outgoing import Fanout, Outgoing, readdressed
from xmppd.muc.owners import ClusterRooms, LocalRooms
from xmppd.muc.room import Room, RoomPolicy, child
from xmppd.muc.state import RoomState
from xmppd.muc.writer import RoomWriter
from xmppd.protocol.stanzas import StanzaError, parse_jid, payload, result
from xmppd.protocol.xml import NS_CLIENT
from xmppd.router import IHostedService
from xmppd.util.aio import UNAVAILABLE, as_deferred

NS_RSM = "http://jabber.org/protocol/rsm"
NS_NODE_DIED = "urn:xmppd:muc:node-died"  # ours: marks the server's unavailable for a dead node's session on its way to the room
TOLD = "told"  # an attribute of that mark: the session's own node has told it, the room tells only the others


def policy_of(config) -> RoomPolicy:
    return RoomPolicy(
        config.muc_max_occupants, config.muc_max_history, config.muc_max_nick_length, config.muc_history_size,
        config.muc_max_rooms_joined, config.muc_invites_per_message, config.muc_groupchat_1_0, config.muc_max_registrations,
        config.muc_max_affiliations, config.muc_max_subject_length, config.muc_max_field_length, config.muc_message_rate,
    )


@implementer(IHostedService)
class MucService:
    log = Logger()

    def __init__(self, node, host: str):
        self.node = node
        self.host = host
        config = node.config
        self.policy = policy_of(config)
        self.rooms: dict[str, Room] = {}
        self.writer = RoomWriter(node.storage.rooms, config.muc_max_history, every_room=bool(config.redis_url),
                                 history_behind=config.muc_history_flush_ms / 1000)
        self._loading: asyncio.Event | None = None  # set once the stored rooms are in
        self.bus = getattr(node.cluster, "bus", None)  # None: a node alone
        self.owners = ClusterRooms(self, node.cluster, config.muc_lease_ttl) if self.bus is not None else LocalRooms(self.run)
        self._created: Counter[str] = Counter()  # bare JID -> rooms it created that run here
        self._elsewhere: dict[str, list[record.Listed]] = {}  # a room just taken, not stored -> the rooms other nodes run
        self._joined: Counter[str] = Counter()  # bare JID -> occupants it is, kept by the rooms

    def follow_config(self) -> None:
        """The node's options changed (``xmppctl reload``): every room follows the new policy from
        its next stanza on, and the store keeps the new history length from its next write."""
        self.policy = policy_of(self.node.config)
        for room in self.rooms.values():
            room.policy = self.policy
        self.writer.history_keep = self.node.config.muc_max_history

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
        if state.creator is not None:
            self._created[state.creator] += 1
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
        if not hops and stanza.name == "presence":
            _forget_node_death(stanza)  # only the server says so (session_died); forwarded ones are its
        invitees = [] if hops else invites.hosted_invitees(stanza, self.policy.invites_per_message, self.node.domains)
        if invitees:  # checked where the stanza came in
            return as_deferred(self._check_invitees(stanza, invitees))
        return self._receive(stanza, hops)

    def session_died(self, presence: domish.Element, told: bool = False) -> None:
        """The survivor burying a dead node tells the room, wherever it runs, that an occupant's
        session went with it: marked, so the room's owner node (maybe another) says 332. ``told``:
        the session is alive and its node told it already; the room tells only the others."""
        died = presence.addElement((NS_NODE_DIED, "died"))
        if told:
            died[TOLD] = "true"
        self._receive(presence)

    def _leave_rooms_elsewhere(self) -> None:
        """The node is stopping: its sessions leave the rooms other nodes run as they would
        had it died (332), rather than as if each client had gone."""
        if self.bus is None:
            return  # a node alone runs every room
        for resource in self.node.directory.local_resources():  # the cluster's directory: its own sessions
            for peer in sorted(resource.directed):
                room = parse_jid(peer)
                if room.host == self.host and room.user is not None and room.user not in self.rooms:
                    resource.undirect(peer)
                    self.session_died(_unavailable(resource.jid.full(), peer))

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
        query = payload(stanza) if stanza.name == "iq" else None
        if query is not None and query.uri == disco.NS_DISCO_ITEMS and stanza["type"] == "get" and not query.getAttribute("node"):
            return as_deferred(self._list_rooms(stanza, query))
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
            self._elsewhere.pop(name, None)  # for the stanza right after the room was taken only
            if name not in self.rooms:
                self.owners.ended(name)
        self._send(answers)

    def bounce(self, stanza: domish.Element, condition: str, text: str) -> None:
        self.node.router.bounce(stanza, StanzaError(condition, text=text))

    async def take(self, name: str, first: domish.Element) -> None:
        """This node has just taken the room's lease. A room the store holds: a fencing token, so
        that whoever ran it before can write no more, then the room as it left it, occupants
        included. A room it does not hold needs no token yet (the writer takes one before the
        first write), so a stanza to a room that is not there leaves no counter behind; if the
        ``first`` stanza is a join that may create it, the rooms the others run are counted."""
        jid, store = f"{name}@{self.host}", self.writer.store
        if await store.load(jid) is not None:
            token = await store.advance(jid)
            stored = await store.load(jid)  # as it is now that its former owner can write no more
            if stored is not None:
                self._loaded(jid, stored, token)
                return
        if not _may_create(first):
            return
        here = {room.jid for room in self.rooms.values()} | {jid}  # a join may create it: count what the others run
        self._elsewhere[name] = [entry for room, entry in (await self._listing()).items() if room not in here]

    def drop(self, name: str) -> None:
        """The node hands the room over (drain): forget it here without a word to its occupants."""
        room = self.rooms.get(name)
        if room is not None:
            room.release()
            self._close(name)

    def retaken(self, name: str) -> None:
        """The room's lease ran out unrenewed and nobody claimed it: this node took it again, and
        the room goes on as it is in memory; its writes from now on carry a new fencing token."""
        room = self.rooms.get(name)
        if room is not None:
            self.writer.refence(name, room)

    def moved(self, name: str) -> None:
        """Another node claimed the room while this node's lease had run out, and runs it from the
        stored state: the room here is stale and ends. Its occupants on this node that the new owner
        has, as they are here, go on in the room there; the others (a join whose write came too
        late, say) would be ghosts: each is told, as at a shutdown (332), and the new owner is told
        to drop whatever it has of that session (it says 332 to the others, nothing more to it)."""
        room = self.rooms.get(name)
        if room is None:
            return
        self.writer.forget(name)
        nicks = {session: nick for nick, occupant in room.state.occupants.items() for session in occupant.sessions}
        notices = room.shut_down()  # one unavailable (332) to each session, every occupant out
        self._close(name)
        here, by_full = self.node.node_id, self.node.directory.by_full
        local = [(nicks[notice["to"]], notice) for notice in notices if getattr(by_full(notice["to"]), "node", None) == here]
        if local:
            asyncio.ensure_future(self._tell_the_unseated(room.jid, local))

    async def _tell_the_unseated(self, jid: str, local: list[tuple[str, domish.Element]]) -> None:
        try:
            stored = await self.writer.store.load(jid)
            seated = record.seated(stored) if stored is not None else set()
        except Exception as e:  # storage away, or a record not ours: every one of them is told, rather than none
            self.log.warn("{room}: the new owner's occupants not read ({error!r}); this node's occupants are told it ended", room=jid, error=e)
            seated = set()
        for nick, notice in local:
            session = notice["to"]
            resource = self.node.directory.by_full(session)
            if (nick, session) in seated or resource is None:
                continue
            self.node.router.send(notice)
            resource.undirect(notice["from"])
            self.session_died(_unavailable(session, notice["from"]), told=True)

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
        """Serialised once (docs/design.md: once per broadcast), the same bytes for the local
        recipients whose list admits it and for each other node that has recipients, which
        checks their lists; anything else takes the ordinary way, fallbacks included."""
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
            data = (readdress or Readdressed(stanza)).whole
            for node_id, recipients in elsewhere.items():
                self.bus.send_fanout(node_id, recipients, data)

    async def hand_over(self) -> None:
        """Drain, once this node's sessions are closed: its rooms go on elsewhere, and their
        occupants hear nothing. Every room's state, occupants included, is in Redis; the lease
        goes now, and the next stanza for a room makes the node it reaches take it. Until the
        others see the lease gone (a third of its TTL) what they forward here is bounced, as at
        a node's stop. A node alone has no other node: its rooms stay until it stops."""
        if self.bus is None:
            return
        self.owners.stopping()
        for name in list(self.rooms):
            self.drop(name)
        await self.writer.idle()
        await self.owners.stop()

    def shut_down(self) -> None:
        """Before the node closes its streams: every occupant of every room run here hears it (332),
        and the rooms run elsewhere see this node's sessions leave with 332."""
        self._leave_rooms_elsewhere()
        self.owners.stopping()
        for name, room in list(self.rooms.items()):
            self._send(room.shut_down())
            self._settle(name, room)
        self.rooms.clear()
        self._created.clear()
        self._joined.clear()

    def _handle(self, stanza: domish.Element, sender: JID, target: JID) -> list[Outgoing]:
        room, created = self.rooms.get(target.user), False
        if room is None:
            if not _may_create(stanza):
                if stanza.name == "presence":
                    return []  # leaving, probing or erring at a room that is not there
                raise StanzaError("item-not-found", text="no such room")
            room, created = self._create(stanza, sender, target), True
        try:
            died = child(stanza, NS_NODE_DIED, "died") if stanza.name == "presence" else None
            if died is not None:
                return room.lost(sender, told=died.getAttribute(TOLD) == "true")
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
        (201), a groupchat 1.0 join opens one at once (decision 7). The limits count the
        rooms of every node (in a cluster, as the store listed them when the lease was taken)."""
        config, bare = self.node.config, creator.userhost()
        elsewhere = self._elsewhere.pop(target.user, ())
        if len(self.rooms) + len(elsewhere) >= config.muc_max_rooms:
            raise StanzaError("not-allowed", text="this service holds as many rooms as it may")
        if self._created[bare] + sum(entry.creator == bare for entry in elsewhere) >= config.muc_max_rooms_per_user:
            raise StanzaError("not-allowed", text="you have created as many rooms as you may")
        locked = config.muc_room_locking and child(presence, NS_MUC, "x") is not None
        state = RoomState(target.userhost(), affiliations={bare: "owner"}, locked=locked, creator=bare)
        room = self.rooms[target.user] = Room(state, self.policy, self._joined)
        self._created[bare] += 1
        return room

    def _close(self, name: str) -> None:
        creator = self.rooms.pop(name).state.creator  # None: stored before creators were
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
        if query is not None and stanza["type"] == "get" and not query.getAttribute("node") and query.uri == disco.NS_DISCO_INFO:
            return [result(stanza, self._info())]
        raise StanzaError("service-unavailable")

    def _info(self) -> domish.Element:
        info = disco.DiscoInfo()
        info.append(disco.DiscoIdentity("conference", "text", "Chatrooms"))
        for feature in (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS, NS_MUC):
            info.append(disco.DiscoFeature(feature))
        return info.toElement()

    async def _listing(self) -> dict[str, record.Listed]:
        """Every room of the service by JID: in a cluster what the store lists (every node's rooms),
        with the rooms run here as they are this moment; on a node alone, its rooms."""
        texts = await self.writer.store.listing(self.host) if self.bus is not None else {}
        here = {room.jid: record.listed_state(room.state) for room in self.rooms.values()}
        stored = {jid: entry for jid, text in texts.items() if jid not in here and (entry := record.listed(text)) is not None}
        return stored | here

    async def _list_rooms(self, iq: domish.Element, query: domish.Element) -> None:
        try:
            listing = await self._listing()
            self._send([result(iq, self._items(query, listing))])
        except StanzaError as e:
            self.node.router.bounce(iq, e)
        except UNAVAILABLE as e:
            self.log.warn("{host}: rooms not listed, storage unavailable ({error})", host=self.host, error=e)
            self.node.router.bounce(iq, StanzaError("internal-server-error", "wait", text="storage unavailable; retry later"))

    def _items(self, query: domish.Element, listing: dict[str, record.Listed]) -> domish.Element:
        """MUC-02: public rooms only, by name (hidden and locked ones stay out), a page at a time
        (XEP-0059: at most muc_rooms_page, after the room the client names)."""
        listed = [(jid, entry.name or jid.partition("@")[0]) for jid, entry in sorted(listing.items()) if entry.shown]
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


def _may_create(stanza: domish.Element) -> bool:
    """An available presence to an occupant JID: a join, which creates a room that is not there."""
    return stanza.name == "presence" and stanza.getAttribute("type") is None and parse_jid(stanza["to"]).resource is not None


def _unavailable(sender: str, to: str) -> domish.Element:
    return domish.Element((NS_CLIENT, "presence"), attribs={"from": sender, "to": to, "type": "unavailable"})


def _forget_node_death(presence: domish.Element) -> None:
    """A client may not claim its own node died: the mark is the server's alone."""
    presence.children = [c for c in presence.children if not (isinstance(c, domish.Element) and c.uri == NS_NODE_DIED)]
