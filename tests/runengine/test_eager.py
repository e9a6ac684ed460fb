import asyncio

from runengine.eager import Suspended, start


async def immediate(x):
    return x * 2


async def waits(fut):
    return await fut + 1


def test_a_coroutine_that_never_waits_finishes_inline():
    assert start(immediate(21)) == 42


def test_a_coroutine_that_waits_is_finished_on_the_loop():
    async def main():
        fut = asyncio.get_running_loop().create_future()
        pending = start(waits(fut))
        assert isinstance(pending, Suspended)
        task = asyncio.ensure_future(pending.finish())
        await asyncio.sleep(0)
        fut.set_result(1)
        return await task

    assert asyncio.run(main()) == 2


def test_cancelling_the_task_reaches_the_coroutine():
    seen = []

    async def cleanup_on_cancel():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        pending = start(cleanup_on_cancel())
        task = asyncio.ensure_future(pending.finish())
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "ok"

    assert asyncio.run(main()) == "ok"
    assert seen == ["cancelled"]


def test_bare_yield_is_rescheduled():
    async def yields_once():
        await asyncio.sleep(0)
        return "after"

    async def main():
        pending = start(yields_once())
        assert isinstance(pending, Suspended)
        return await pending.finish()

    assert asyncio.run(main()) == "after"
