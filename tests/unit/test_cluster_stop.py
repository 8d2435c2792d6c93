"""A node's cluster loops stop when cancelled, even when redis-py swallows the cancellation.

redis-py retries a command whose connection the cancellation closed, and the
command then returns as if nothing had happened: the task is still marked as
being cancelled, but no CancelledError ever reaches the loop.
"""

from __future__ import annotations

import asyncio

from xmppd.cluster.redis import RedisCluster


class Redis:
    connection_pool = None

    def register_script(self, source):
        return None


async def swallows_cancellation():
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        pass  # retried, and answered
    return True


async def nothing():
    return None


class Over(BaseException):
    pass


async def ends_the_test():
    raise Over()


def test_the_supervising_loop_stops_when_redis_py_swallows_its_cancellation():
    async def scenario():
        cluster = RedisCluster("a", 0.3, Redis(), Redis())
        cluster._joined = True
        cluster.membership.beat, cluster.membership.watch = swallows_cancellation, nothing
        supervising = asyncio.create_task(cluster._supervise())
        await asyncio.sleep(0.05)  # in beat()
        supervising.cancel()
        done, _ = await asyncio.wait([supervising], timeout=2)
        cluster.membership.watch = ends_the_test  # a loop that did not stop must not hang the test
        await asyncio.gather(supervising, return_exceptions=True)
        return supervising in done

    assert asyncio.run(scenario())


def test_an_unbind_naming_a_dead_node_leaves_it_dead_and_an_update_brings_it_back():
    """The survivor burying a node publishes unbinds in its name (evict): no sign of life. Were it
    taken for one, stanzas for that node's rooms would be forwarded to its dead bus again."""
    async def scenario():
        cluster = RedisCluster("a", 0.3, Redis(), Redis())
        cluster.membership.dead.add("b")
        cluster._event("unbind\nb\nbob@localhost/r\n1")
        after_unbind = "b" in cluster.membership.dead
        cluster._event('update\nb\nbob@localhost/r\n1\n{}')
        return after_unbind, "b" in cluster.membership.dead

    assert asyncio.run(scenario()) == (True, False)
