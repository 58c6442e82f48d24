"""The answer budget on its own: room per connection and in all, waiting, release, and the trim after a burst."""

from __future__ import annotations

import asyncio

import pytest
from logstore.broker.service import answers
from logstore.broker.service.answers import AnswerBudget

MiB = 1024 * 1024


def test_room_is_the_smaller_of_the_connection_s_and_the_broker_s() -> None:
    budget = AnswerBudget(10 * MiB, 4 * MiB)
    assert budget.room("a") == 4 * MiB
    budget.charge("a", 3 * MiB)
    assert (budget.room("a"), budget.room("b")) == (1 * MiB, 4 * MiB)
    budget.charge("b", 4 * MiB)
    budget.charge("c", 2 * MiB)
    assert budget.in_use == 9 * MiB
    assert budget.room("d") == 1 * MiB, "the broker-wide budget binds before d's own"
    budget.release("a", 3 * MiB)
    assert budget.held_by("a") == 0 and budget.room("a") == 4 * MiB


def test_a_read_waits_while_its_connection_holds_its_budget_and_resumes_on_release() -> None:
    async def scenario() -> None:
        budget = AnswerBudget(10 * MiB, 2 * MiB)
        stalled = budget.lease("slow")
        stalled.charge(2 * MiB)
        waiting = asyncio.ensure_future(budget.lease("slow").wait_for_room())
        other = await budget.lease("fast").wait_for_room()
        assert other == 2 * MiB, "another connection is not held up"
        await asyncio.sleep(0)
        assert not waiting.done()
        stalled.release_all()
        assert await waiting == 2 * MiB
        stalled.release_all()  # twice is harmless
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        budget = AnswerBudget(MiB, MiB)
        budget.charge("a", MiB)
        waiting = asyncio.ensure_future(budget.wait_for_room("a"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not budget._waiting

    asyncio.run(scenario())


def test_free_memory_is_given_back_once_a_burst_of_held_answers_drains(monkeypatch) -> None:
    monkeypatch.setattr(answers, "TRIM_DELAY_S", 0.0)
    trimmed = asyncio.Event()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        budget = AnswerBudget(
            1024 * MiB, 1024 * MiB, release_memory=lambda: loop.call_soon_threadsafe(trimmed.set)
        )
        small = budget.lease("a")
        small.charge(MiB)
        small.release_all()
        assert budget._trim is None, "a small answer does not call for a trim"
        burst = budget.lease("b")
        burst.charge(answers.TRIM_AFTER_BYTES)
        burst.release_all()
        await asyncio.wait_for(trimmed.wait(), 10)

    asyncio.run(scenario())
