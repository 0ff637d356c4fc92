from __future__ import annotations

import asyncio

import pytest

from shared.coalesce import Coalescer


async def settle() -> None:
    """Let the loop run what is ready: the submitted tasks, then the calls they start."""
    for _ in range(3):
        await asyncio.sleep(0)


class Recorder:
    """A batch call that records its batches, waits for `gate`, and refuses 'bad'."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        await self.gate.wait()
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]


async def test_an_idle_coalescer_sends_an_item_at_once_and_alone():
    run = Recorder()
    coalescer = Coalescer(run, max_in_flight=1, max_batch=10)
    assert await coalescer.submit("a") == "A"
    assert run.batches == [["a"]]


async def test_items_arriving_during_a_call_leave_together_in_the_next_one():
    run = Recorder()
    run.gate.clear()
    coalescer = Coalescer(run, max_in_flight=1, max_batch=10)
    first = asyncio.create_task(coalescer.submit("a"))
    await settle()  # the first call is under way, held at the gate
    rest = [asyncio.create_task(coalescer.submit(x)) for x in "bcd"]
    await settle()
    run.gate.set()
    assert [await first, *[await t for t in rest]] == ["A", "B", "C", "D"]
    assert run.batches == [["a"], ["b", "c", "d"]]


async def test_a_batch_never_exceeds_max_batch_and_calls_never_exceed_max_in_flight():
    run = Recorder()
    run.gate.clear()
    coalescer = Coalescer(run, max_in_flight=2, max_batch=3)
    tasks = [asyncio.create_task(coalescer.submit(str(n))) for n in range(10)]
    await settle()
    assert len(run.batches) == 2  # two calls in flight, the rest wait
    run.gate.set()
    assert await asyncio.gather(*tasks) == [str(n) for n in range(10)]
    assert max(len(batch) for batch in run.batches) == 3
    assert sorted(item for batch in run.batches for item in batch) == sorted(map(str, range(10)))


async def test_a_failed_batch_runs_each_item_alone_so_only_the_bad_one_fails():
    run = Recorder()
    run.gate.clear()
    coalescer = Coalescer(run, max_in_flight=1, max_batch=10)
    first = asyncio.create_task(coalescer.submit("a"))
    await settle()
    good, bad, other = (asyncio.create_task(coalescer.submit(x)) for x in ("b", "bad", "c"))
    await settle()
    run.gate.set()
    assert (await first, await good, await other) == ("A", "B", "C")
    with pytest.raises(ValueError, match="bad item"):
        await bad
    assert run.batches == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]


async def test_a_caller_that_gives_up_leaves_the_others_their_results():
    run = Recorder()
    run.gate.clear()
    coalescer = Coalescer(run, max_in_flight=1, max_batch=10)
    first = asyncio.create_task(coalescer.submit("a"))
    await settle()
    quitter, stayer = (asyncio.create_task(coalescer.submit(x)) for x in ("b", "c"))
    await settle()
    quitter.cancel()
    run.gate.set()
    assert (await first, await stayer) == ("A", "C")
    assert quitter.cancelled()
    assert run.batches == [["a"], ["b", "c"]]  # its work was done all the same


def test_limits_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(Recorder(), max_in_flight=0, max_batch=1)


async def test_a_call_cancelled_at_shutdown_leaves_no_caller_waiting():
    run = Recorder()
    run.gate.clear()
    coalescer = Coalescer(run, max_in_flight=1, max_batch=10)
    callers = [asyncio.create_task(coalescer.submit(x)) for x in "ab"]
    await settle()
    for task in asyncio.all_tasks():  # what the loop does to what is left when it closes
        if task is not asyncio.current_task() and task not in callers:
            task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 2)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
