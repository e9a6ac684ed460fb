"""What a script step costs, how fast an abort ends it, and how much the status channel takes.

    python bench/bench_scripts.py [--trials N] [--datagrams N]

1. Overhead: a trivial Python script run by ``subprocess.run``, by ``ScriptRunner.run`` (status
   channel, line capture, process-group bookkeeping) and as a ``run_script`` plan step on our
   RunEngine. Reports the median and the step's overhead over ``subprocess.run``.
2. Abort latency: from ``runner.abort()`` to the whole process group gone, for a script that
   obeys SIGINT and for one that ignores it (SIGINT grace 0.1 s, then SIGTERM).
3. Status channel: a script sends N ``session_data`` datagrams as fast as it can through
   ``runengine.scripts.Publisher``; reports the send rate and how many arrived.
"""

from __future__ import annotations

import argparse
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from runengine import RunEngine
from runengine.plans.scripts import run_script
from runengine.scripts import ScriptAborted, ScriptRunner

TRIVIAL = "pass\n"
SLEEPER = """
    import signal, sys, time
    if sys.argv[2] == "ignore":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    open(sys.argv[1], "w").close()
    while True:
        time.sleep(0.05)
"""
FLOOD = """
    import sys, time
    from runengine.scripts import Publisher
    pub = Publisher("flood")
    n = int(sys.argv[1])
    t0 = time.perf_counter()
    for i in range(n):
        pub.session_data({"i": i})
    print(time.perf_counter() - t0)
    pub.close()
"""


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.1f} ms"


def overhead(directory: Path, trials: int) -> None:
    path = write(directory, "trivial.py", TRIVIAL)
    runner = ScriptRunner()
    RE = RunEngine({}, context_managers=[])
    timings: dict[str, list[float]] = {"subprocess.run": [], "ScriptRunner.run": [], "step": []}
    for _ in range(trials):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-u", str(path)], check=True)
        timings["subprocess.run"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        runner.run(path, log=False)
        timings["ScriptRunner.run"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        RE(run_script(path, log=False))
        timings["step"].append(time.perf_counter() - t0)
    print(f"overhead: trivial script ({trials} trials, median)")
    base = statistics.median(timings["subprocess.run"])
    for name, samples in timings.items():
        extra = (statistics.median(samples) - base) * 1e3
        print(f"  {name:18} {median_ms(samples)}   +{extra:6.1f} ms")


def abort_latency(directory: Path, trials: int) -> None:
    path = write(directory, "sleeper.py", SLEEPER)
    runner = ScriptRunner(
        abort_sequence=((signal.SIGINT, 0.1), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0))
    )
    print(f"abort latency: abort() until the process group is gone ({trials} trials)")
    for mode in ("obey", "ignore"):
        samples = []
        for i in range(trials):
            ready = directory / f"ready-{mode}-{i}"
            took = []

            def operator(ready: Path = ready, took: list = took) -> None:
                while not ready.exists():
                    time.sleep(0.002)
                t0 = time.perf_counter()
                runner.abort()
                took.append(time.perf_counter() - t0)

            th = threading.Thread(target=operator)
            th.start()
            try:
                runner.run(path, [ready, mode], log=False)
            except ScriptAborted:
                pass
            th.join()
            samples.append(took[0])
        label = "obeys SIGINT" if mode == "obey" else "ignores SIGINT (0.1 s grace)"
        print(f"  {label:30} median {median_ms(samples)}  max {max(samples) * 1e3:8.1f} ms")


def channel_rate(directory: Path, count: int) -> None:
    path = write(directory, "flood.py", FLOOD)
    result = ScriptRunner().run(path, [count], log=False)
    send = float(result.stdout_tail[0])
    got = result.datagrams - 2  # minus start and stop
    print(f"status channel: {count} session_data datagrams")
    print(
        f"  sent at {count / send:10.0f} /s; received {got} ({got / count:.1%}), "
        f"seq gaps {result.seq_gaps}; last i = {result.session_data.get('i')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--datagrams", type=int, default=50_000)
    args = parser.parse_args()
    logging.getLogger("runengine.scripts").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        overhead(directory, args.trials)
        abort_latency(directory, args.trials)
        channel_rate(directory, args.datagrams)


if __name__ == "__main__":
    main()
