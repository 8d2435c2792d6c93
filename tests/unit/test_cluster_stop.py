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
