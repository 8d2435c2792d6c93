"""What only the Redis backend has: several clients (nodes) on one server, and its key layout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from tests.unit.storage.test_accounts import ALICE, CREDS, Runner
from xmppd.storage import Storage, open_storage
from tests.unit.storage.test_offline import EVERYTHING, sized
from xmppd.storage.interfaces import OfflineQuota, RosterItem

BOB = ("bob", "example.org")


@pytest.fixture
def nodes(redis_url: str, run: Runner) -> Iterator[tuple[Storage, Storage]]:
    """Two clients on one server, as two nodes hold it; pools of 2 make most calls queue."""
    url = f"{redis_url}?max_connections=2&client_name=node"
    pair = (open_storage(None, url), open_storage(None, url))
    yield pair
    for storage in pair:
        run(storage.close())


def connections(redis_url: str, name: str) -> int:
    """How many connections named ``name`` the server has (an earlier test's may be closing)."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        return sum(entry["name"] == name for entry in client.client_list())


def test_concurrent_roster_puts_keep_every_item(
    nodes: tuple[Storage, Storage], redis_url: str, run: Runner
) -> None:
    """Eight writers, four per client: no item lost, each write its own version."""

    async def writer(storage: Storage, name: str) -> list[int]:
        return [
            await storage.rosters.put(*ALICE, RosterItem(f"{name}-{n}@example.net"))
            for n in range(25)
        ]

    async def main() -> list[list[int]]:
        return await asyncio.gather(
            *(writer(storage, f"w{i}-{n}") for i, storage in enumerate(nodes) for n in range(4))
        )

    runs = run(main())
    for versions in runs:
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
    every = sorted(v for versions in runs for v in versions)
    assert every == list(range(1, 201))  # distinct: no two writes saw the same version
    roster = run(nodes[1].rosters.get(*ALICE))
    assert roster.version == 200 and len(roster.items) == 200
    assert connections(redis_url, "node") <= 4  # the URL's max_connections=2 bounded each pool


def test_concurrent_pop_page_returns_each_message_once(
    nodes: tuple[Storage, Storage], run: Runner
) -> None:
    """One client pushes while both pop pages in loops: no message twice, none lost, order kept."""
    messages = [f"<message id='m{n}'><body>{n}</body></message>" for n in range(300)]
    pushed = asyncio.Event()

    async def push() -> list[str]:
        for text in messages:
            assert await nodes[0].offline.push(*ALICE, text, OfflineQuota(len(messages), 1_000_000))
        pushed.set()
        return []

    async def pop(storage: Storage) -> list[str]:
        popped: list[str] = []
        while True:
            last_round = pushed.is_set()  # read first: the rounds after it see every push
            page = await storage.offline.pop_page(*ALICE, 200)  # a few messages a page
            popped += page
            if last_round and not page:
                return popped

    async def main() -> list[list[str]]:
        return await asyncio.gather(push(), pop(nodes[0]), pop(nodes[1]))

    _, first, second = run(main())
    assert first and second  # both popped something: the test did interleave
    assert sorted(first + second) == sorted(messages)
    for popped in (first, second):
        assert popped == [text for text in messages if text in set(popped)]  # arrival order


def test_concurrent_pushes_at_the_quota_edge_never_pass_it(
    nodes: tuple[Storage, Storage], run: Runner
) -> None:
    """Eight writers on two clients race for the last room: the quota holds in messages and bytes."""
    quota = OfflineQuota(messages=1000, bytes=50_000)
    text = sized(0, 1000)

    async def writer() -> list[bool]:
        return [await storage.offline.push(*ALICE, text, quota) for storage in nodes for _ in range(13)]

    async def main() -> list[list[bool]]:
        return await asyncio.gather(*(writer() for _ in range(8)))

    outcomes = [stored for results in run(main()) for stored in results]
    assert outcomes.count(True) == 50 and len(outcomes) == 208
    assert run(nodes[1].offline.count(*ALICE)) == 50
    assert len(run(nodes[1].offline.pop_page(*ALICE, EVERYTHING))) == 50
    by_count = OfflineQuota(messages=30, bytes=1_000_000)

    async def count_writer() -> list[bool]:
        return [await storage.offline.push(*ALICE, text, by_count) for storage in nodes for _ in range(5)]

    async def by_count_main() -> list[list[bool]]:
        return await asyncio.gather(*(count_writer() for _ in range(8)))

    assert sum(stored for results in run(by_count_main()) for stored in results) == 30
    assert run(nodes[0].offline.count(*ALICE)) == 30


def test_account_keys_share_one_slot_and_deletion_leaves_none(
    redis_storage: Storage, redis_url: str, run: Runner
) -> None:
    """One account's data sits in one Cluster slot; deleting it leaves no key behind."""
    storage = redis_storage
    run(storage.accounts.create(*ALICE, CREDS))
    run(storage.accounts.create(*BOB, CREDS))
    run(storage.accounts.set_disabled(*ALICE, True))
    run(storage.rosters.put(*ALICE, RosterItem("juliet@capulet.example")))
    run(storage.pending.put(*ALICE, "romeo@montague.example", "<presence type='subscribe'/>"))
    run(storage.offline.push(*ALICE, "<message/>", OfflineQuota(10, 1000)))
    run(storage.privacy.put(*ALICE, "public", "{}"))
    run(storage.privacy.set_default(*ALICE, "public"))
    run(storage.vcards.put(*ALICE, "<vCard xmlns='vcard-temp'/>"))
    run(storage.pep.put_node(*ALICE, "urn:xmpp:tune", "{}"))
    run(storage.pep.put_item(*ALICE, "urn:xmpp:tune", "a", "<item id='a'/>", 1))
    run(storage.pep.subscribe(*ALICE, "urn:xmpp:tune", "dave@example.org", 10))
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        alice_keys = client.keys("xmppd:{alice@example.org}:*")  # a test may scan; the server never
        assert len(alice_keys) == 14
        assert len({key_slot(key.encode()) for key in alice_keys}) == 1

        assert run(storage.delete_account(*ALICE)) is True
        assert client.keys("xmppd:{alice@example.org}:*") == []
        assert run(storage.accounts.list()) == ["bob@example.org"]
        assert run(storage.delete_account(*BOB)) is True
        assert client.keys("*") == []  # the domain's index went with its last account


def test_close_releases_connections(redis_url: str, run: Runner) -> None:
    storage = open_storage(None, f"{redis_url}?client_name=closing")

    async def five_at_once() -> None:
        await asyncio.gather(*(storage.accounts.exists(*ALICE) for _ in range(5)))

    run(five_at_once())
    assert connections(redis_url, "closing") == 5  # each concurrent call had its own
    run(storage.close())
    deadline = time.monotonic() + 5
    while connections(redis_url, "closing") and time.monotonic() < deadline:  # EOF takes a moment
        time.sleep(0.01)
    assert connections(redis_url, "closing") == 0
