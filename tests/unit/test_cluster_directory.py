"""The replicated directory's rules for events from other nodes (CORE-31 across nodes),
with Redis replaced by a recorder: which session wins, who gets kicked, what is kept."""

from __future__ import annotations

import asyncio

from twisted.words.protocols.jabber.jid import JID

from xmppd.cluster.directory import RedisSessionDirectory, RemoteStream, from_record, record
from xmppd.sessions import Resource


class Stream:
    closed = False

    def __init__(self):
        self.errors = []

    def stream_error(self, condition, text=None):
        self.errors.append(condition)


class Pipeline:
    def __init__(self, replies):
        self.replies = replies

    async def execute(self, raise_on_error=True):
        return self.replies


class Redis:
    """Answers every batch of script calls with ``reply`` each; remembers the scripts run."""

    def __init__(self, reply=None):
        self.reply, self.calls = reply, []

    def register_script(self, source):
        async def run(keys, args, client):
            self.calls.append(args)
            client.replies.append(self.reply)

        return run

    def pipeline(self, transaction=False):
        return Pipeline([])


def directory(reply=None) -> RedisSessionDirectory:
    return RedisSessionDirectory("a", Redis(reply), bus=None, on_failure=lambda e: None)


def bound(d: RedisSessionDirectory, full: str, session: str) -> Resource:
    resource = Resource(JID(full), "a", session, stream=Stream())
    d._put(resource)
    return resource


def bind_event(node: str, full: str, replaced: str, session: str) -> str:
    remote = Resource(JID(full), node, session, available=True, priority=5)
    return f"bind\n{node}\n{full}\n{replaced}\n{record(remote)}"


def test_a_later_bind_elsewhere_kicks_ours_and_takes_its_place():
    d = directory()
    ours = bound(d, "alice@example.org/desk", "s1")
    d.apply(bind_event("b", "alice@example.org/desk", "s1", "s2"))
    assert ours.stream.errors == ["conflict"]
    now = d.resource(JID("alice@example.org/desk"))
    assert (now.node, now.session, now.priority, isinstance(now.stream, RemoteStream)) == ("b", "s2", 5, True)


def test_an_earlier_bind_elsewhere_does_not_touch_ours():
    """Redis ran theirs first (it replaced an older session): ours came later and wins."""
    d = directory()
    ours = bound(d, "alice@example.org/desk", "s3")
    d.apply(bind_event("b", "alice@example.org/desk", "s1", "s2"))
    assert ours.stream.errors == []
    assert d.resource(JID("alice@example.org/desk")) is ours


def test_a_bind_seen_before_our_own_reply_kicks_ours_when_the_reply_comes():
    d = directory(reply=None)

    async def scenario():
        resource = Resource(JID("alice@example.org/desk"), "a", stream=Stream())
        binding = asyncio.ensure_future(d.bind(resource))
        await asyncio.sleep(0)  # our bind is queued, its id chosen, its reply not back yet
        d.apply(bind_event("b", "alice@example.org/desk", resource.session, "s9"))
        await binding
        return resource

    resource = asyncio.run(scenario())
    assert resource.stream.errors == ["conflict"]


def test_updates_and_unbinds_apply_only_to_the_session_they_name():
    d = directory()
    d.apply(bind_event("b", "bob@example.org/phone", "", "s1"))
    stale = Resource(JID("bob@example.org/phone"), "b", "s0", available=False, priority=-1)
    d.apply(f"update\nb\nbob@example.org/phone\ns0\n{record(stale)}")
    d.apply("unbind\nb\nbob@example.org/phone\ns0")
    current = d.resource(JID("bob@example.org/phone"))
    assert (current.session, current.available, current.priority) == ("s1", True, 5)
    d.apply("unbind\nb\nbob@example.org/phone\ns1")
    assert d.resources("bob@example.org") == []


def test_our_own_events_are_ignored_and_a_dead_nodes_sessions_are_forgotten():
    d = directory()
    ours = bound(d, "alice@example.org/desk", "s1")
    d.apply(bind_event("a", "alice@example.org/desk", "s1", "s2"))  # our own echo
    assert d.resource(JID("alice@example.org/desk")) is ours
    d.apply(bind_event("b", "bob@example.org/phone", "", "s5"))
    d.apply(bind_event("c", "bob@example.org/laptop", "", "s6"))
    gone = d.forget_node("b")
    assert [r.jid.full() for r in gone] == ["bob@example.org/phone"]
    assert [r.node for r in d.resources("bob@example.org")] == ["c"]


def test_a_record_carries_what_other_nodes_need():
    from xmppd.protocol.xml import parse_fragment

    resource = Resource(JID("alice@example.org/desk"), "a", "s1", priority=3, available=True, roster_requested=True)
    resource.presence = parse_fragment("<presence xmlns='jabber:client'><show>away</show></presence>")
    resource.directed = {"room@conference.example.org/alice"}
    resource.active_name = "work"
    copy = from_record("alice@example.org/desk", record(resource), stream=None)
    assert (copy.node, copy.session, copy.priority, copy.available, copy.roster_requested, copy.blocklist_requested) == (
        "a", "s1", 3, True, True, False)
    assert str(copy.presence.show) == "away" and copy.directed == {"room@conference.example.org/alice"}
    assert (copy.active_name, copy.active_list) == ("work", None)  # each node reads the list itself


def test_an_update_naming_another_active_list_is_announced_once():
    d = directory()
    heard = []
    d.notify = lambda event, resource: heard.append((event, resource.active_name))
    d.apply(bind_event("b", "bob@example.org/phone", "", "s1"))
    named = Resource(JID("bob@example.org/phone"), "b", "s1", available=True, priority=5, active_name="work")
    for _ in range(2):
        d.apply(f"update\nb\nbob@example.org/phone\ns1\n{record(named)}")
    named.active_name = None
    d.apply(f"update\nb\nbob@example.org/phone\ns1\n{record(named)}")
    assert heard == [("remote-resource-bound", None), ("remote-active-list-changed", "work"), ("remote-active-list-changed", None)]
