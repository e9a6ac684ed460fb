"""The seed notebook (seeds/004), cell by cell, with its own coroutine and its own delays."""

from __future__ import annotations

import asyncio
import re
import time

from runengine.graph import Action, Engine


async def mycoro(timeout):
    print("-> {} mycoro({})".format(time.strftime("%M-%S"), timeout))
    await asyncio.sleep(timeout)
    print("<- {} mycoro({})".format(time.strftime("%M-%S"), timeout))
    # return something easy to recognize
    return 1000 * timeout


def _without_times(out: str) -> list[str]:
    return [re.sub(r"\d\d-\d\d", "MM-SS", line) for line in out.splitlines()]


def test_seed_notebook(capsys):
    # example 1: three actions without relationships run at once
    a1, a2, a3 = (Action(mycoro(1)), Action(mycoro(2)), Action(mycoro(1.5)))
    e = Engine(a1, a2, a3)
    start = time.monotonic()
    assert e.orchestrate() is True
    took = time.monotonic() - start
    assert 2 <= took < 2.8  # the time of the longest, not the sum (4.5 s)
    assert _without_times(capsys.readouterr().out) == [
        "-> MM-SS mycoro(1)",
        "-> MM-SS mycoro(2)",
        "-> MM-SS mycoro(1.5)",
        "<- MM-SS mycoro(1)",
        "<- MM-SS mycoro(1.5)",
        "<- MM-SS mycoro(2)",
    ]

    # example 2: requirements; b3 starts only once b1 is done
    b1, b2, b3 = (
        Action(mycoro(1), label="first"),
        Action(mycoro(2)),
        Action(mycoro(1.5), label="last"),
    )
    assert b3.requires(b1) is None  # the cell shows no output
    e2 = Engine(b1, b2, b3)
    start = time.monotonic()
    assert e2.orchestrate() is True
    took = time.monotonic() - start
    assert 2.5 <= took < 3.3  # b1 (1 s) then b3 (1.5 s), b2 (2 s) alongside
    assert _without_times(capsys.readouterr().out) == [
        "-> MM-SS mycoro(1)",
        "-> MM-SS mycoro(2)",
        "<- MM-SS mycoro(1)",
        "-> MM-SS mycoro(1.5)",
        "<- MM-SS mycoro(2)",
        "<- MM-SS mycoro(1.5)",
    ]

    # inspect results
    print(b1.is_done())
    print(b3.result())
    assert capsys.readouterr().out == "True\n1500.0\n"
    for action in e2.actions:
        print(action)
    listing = capsys.readouterr().out.splitlines()
    # The notebook printed a set, in its own order; ours keeps the order of insertion.
    assert sorted(listing) == sorted(
        [
            "<Action `last' finished -> 1500.0 - [requires [first]]>",
            "<Action `first' finished -> 1000 - [allows [last]]>",
            "<Action `NO_LABEL' finished -> 2000>",
        ]
    )
