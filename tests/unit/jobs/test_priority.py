"""The in-process queue of SQLite writers: the engine's first, an API request's after them, and
never starved."""

from __future__ import annotations

import asyncio

from jobs.priority import ENGINE_RUN, WriterQueue, deferring


async def _write(queue: WriterQueue, name: str, order: list[str], *, defer: bool) -> None:
    if defer:
        with deferring():
            async with queue:
                order.append(name)
                await asyncio.sleep(0)
    else:
        async with queue:
            order.append(name)
            await asyncio.sleep(0)


async def _queued(queue: WriterQueue, names: list[tuple[str, bool]]) -> list[str]:
    """Start writers (name, deferring) in this order while the queue is held; their turns."""
    order: list[str] = []
    await queue.acquire()
    tasks = []
    for name, defer in names:
        tasks.append(asyncio.create_task(_write(queue, name, order, defer=defer)))
        await asyncio.sleep(0)  # each is waiting before the next arrives
    queue.release()
    await asyncio.gather(*tasks)
    return order


async def test_engine_writers_go_before_deferring_ones_that_arrived_first() -> None:
    order = await _queued(WriterQueue(), [("api-1", True), ("api-2", True), ("engine-1", False)])
    assert order == ["engine-1", "api-1", "api-2"]


async def test_a_deferring_writer_waits_for_at_most_a_run_of_engine_writers() -> None:
    engine = [(f"engine-{i}", False) for i in range(ENGINE_RUN + 3)]
    order = await _queued(WriterQueue(), [("api", True), *engine])
    assert order.index("api") == ENGINE_RUN


async def test_a_cancelled_waiter_neither_writes_nor_holds_the_queue() -> None:
    queue, order = WriterQueue(), []
    await queue.acquire()
    gone = asyncio.create_task(_write(queue, "gone", order, defer=False))
    kept = asyncio.create_task(_write(queue, "kept", order, defer=True))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    queue.release()
    await asyncio.wait_for(kept, 1)
    assert order == ["kept"]
    async with asyncio.timeout(1):
        await queue.acquire()  # free again
