"""Action-graph costs, standalone and inside plans.

    python bench/bench_graph.py [--n N]

1. Overhead per action: N trivial actions (an ``async def`` returning at once), all parallel,
   and chained one after the other; standalone, and in ``run_graph`` on the RunEngine (minus an
   empty plan's cost). Also an asyncio.gather of the same coroutines, for scale.
2. N actions sleeping 50..200 ms at once: the graph's wall time against the longest sleep.
3. Sub-plans: K sub-plans of M ``Msg('null')`` each, messages per second through the engine's
   handlers, against the main message loop running K*M of them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bluesky.utils import Msg

from runengine import RunEngine
from runengine.graph import Action, ActionGraph, Sequence, SubPlan
from runengine.plans.graph import run_graph


async def trivial() -> None:
    return None


def best(func, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def per_action(n: int, RE: RunEngine) -> None:
    parallel = ActionGraph(*(Action(trivial) for _ in range(n)))
    chain = ActionGraph(Sequence(*(Action(trivial) for _ in range(n))))

    async def gathered() -> None:
        await asyncio.gather(*(trivial() for _ in range(n)))

    gather = best(lambda: asyncio.run(gathered()))
    print(f"1. overhead per action ({n} trivial actions)")
    print(f"   asyncio.gather, for scale     {gather / n * 1e6:8.1f} µs")
    for name, graph in (("parallel", parallel), ("chained", chain)):
        t = best(graph.run)
        print(f"   standalone {name:<18} {t / n * 1e6:8.1f} µs")
    empty = best(lambda: RE([Msg("null")]))
    for name, graph in (("parallel", parallel), ("chained", chain)):
        t = best(lambda g=graph: RE(run_graph(g, status_stream=None))) - empty
        print(f"   run_graph {name:<19} {t / n * 1e6:8.1f} µs")

    def in_run(g=parallel):
        yield Msg("open_run")
        yield from run_graph(g)
        yield Msg("close_run")

    t = best(lambda: RE(in_run())) - empty
    print(f"   run_graph parallel + status documents {t / n * 1e6:8.1f} µs")


def sleeping(n: int) -> None:
    rng = random.Random(0)
    delays = [rng.uniform(0.05, 0.2) for _ in range(n)]
    graph = ActionGraph(*(Action(asyncio.sleep, d) for d in delays))
    t = best(graph.run)
    print(f"2. {n} sleeping actions: {t * 1e3:.1f} ms for a longest of {max(delays) * 1e3:.1f} ms")
    print(f"   (+{(t - max(delays)) * 1e3:.1f} ms; their sum is {sum(delays):.1f} s)")


def sub_plans(RE: RunEngine, k: int, m: int) -> None:
    def nulls():
        for _ in range(m):
            yield Msg("null")

    graph = ActionGraph(*(SubPlan(nulls) for _ in range(k)))
    t_graph = best(lambda: RE(run_graph(graph, status_stream=None)))
    t_loop = best(lambda: RE([Msg("null")] * (k * m)))
    print(f"3. {k} sub-plans of {m} Msg('null'): {k * m / t_graph:10.0f} msg/s")
    print(f"   the main loop, {k * m} Msg('null'):  {k * m / t_loop:10.0f} msg/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    RE = RunEngine({}, context_managers=[])
    per_action(args.n, RE)
    sleeping(args.n)
    sub_plans(RE, 10, 10_000)


if __name__ == "__main__":
    main()
