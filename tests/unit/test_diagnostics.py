"""The stuck-node dump names every coroutine a task waits in, down to the future."""

from __future__ import annotations

import asyncio

from xmppd.diagnostics import await_chain


def test_the_await_chain_goes_down_to_the_pending_future():
    async def inner(future):
        await future

    async def outer(future):
        await inner(future)

    async def main():
        future = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(outer(future))
        await asyncio.sleep(0)
        chain = await_chain(task.get_coro())
        task.cancel()
        return chain

    chain = asyncio.run(main())
    assert [line.rsplit(" in ", 1)[-1] for line in chain[:2]] == ["outer", "inner"]
    assert chain[2].startswith("waiting on ")  # the future, as far as the C iterator shows it
