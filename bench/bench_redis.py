"""Redis backends: lock hand-over latency across processes, expiry detection latency, and
documents per second through the stream (publisher cost to the engine, consumer rate).

    .venv/bin/python bench/bench_redis.py [--handovers 200] [--points 5000]

Starts its own redis-server on a free loopback port (needs redis-server on PATH).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def start_redis(directory: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # appendfsync always: what RedisLock requires (a restart keeps the holder and fences)
    args = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--dir", directory]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


def _contender(url: str, n: int, out: mp.Queue) -> None:
    from runengine.scaleout.lock import RedisLock

    lock = RedisLock("bench", url, prefix="bench")
    log = []
    for _ in range(n):
        token = lock.acquire_token(10, "bench")
        granted = time.time()
        time.sleep(0.001)
        released = time.time()
        lock.release(token)
        log.append((granted, released))
        time.sleep(0.0005)  # let the other process queue first
    out.put(log)


def bench_handover(url: str, n: int) -> dict:
    out: mp.Queue = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_contender, args=(url, n, out)) for _ in "ab"]
    for proc in procs:
        proc.start()
    logs = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(10)
    events = sorted(event for log in logs for event in log)
    gaps = [nxt[0] - cur[1] for cur, nxt in itertools.pairwise(events)]
    gaps = [g * 1000 for g in gaps if g >= 0]
    p95 = sorted(gaps)[int(0.95 * len(gaps))]
    return {"handover_ms_median": statistics.median(gaps), "handover_ms_p95": p95,
            "handovers": len(gaps)}  # fmt: skip


def bench_expiry(url: str, repeats: int = 5, timeout: float = 1.0, period: float = 0.5) -> dict:
    from runengine.scaleout.heartbeats import RedisRegistry

    watcher = RedisRegistry(url, timeout=timeout, check_period=period, prefix="benchx").start()
    agent = RedisRegistry(url, timeout=timeout, prefix="benchx")
    seen: dict[str, float] = {}
    watcher.subscribe(lambda a, o, n: n["expired"] and seen.setdefault(a, time.time()))
    latencies = []
    for i in range(repeats):
        address = f"agent{i}"
        agent.beat(address, {"acq": 3})
        last = time.time()
        while address not in seen and time.time() - last < timeout + period + 2:
            time.sleep(0.005)
        latencies.append(seen.get(address, float("nan")) - last)
    watcher.stop()
    return {"expiry_timeout_s": timeout, "check_period_s": period,
            "expiry_latency_s_max": max(latencies),
            "expiry_latency_s_median": statistics.median(latencies)}  # fmt: skip


def bench_documents(url: str, points: int) -> dict:
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    from runengine import RunEngine
    from runengine.callbacks.redis_stream import DocumentConsumer, DocumentPublisher

    RE = RunEngine({}, context_managers=[])
    t0 = time.perf_counter()
    RE(bp.scan([det], motor, -1, 1, points))
    bare = time.perf_counter() - t0
    publisher = DocumentPublisher(url, "bench:docs")
    RE.subscribe(publisher)
    t0 = time.perf_counter()
    RE(bp.scan([det], motor, -1, 1, points))
    with_pub = time.perf_counter() - t0
    publisher.flush(60)
    published = time.perf_counter() - t0
    raw = DocumentPublisher(url, "bench:raw")  # the stream alone, without the engine's pace
    descriptor = {"uid": "d", "run_start": "r", "data_keys": {}}
    raw("start", {"uid": "r", "time": 0.0})
    raw("descriptor", descriptor)
    t0 = time.perf_counter()
    for i in range(20 * points):
        raw("event", {"uid": f"e{i}", "descriptor": "d", "seq_num": i + 1, "time": 0.0,
                      "data": {"det": 1.0}, "timestamps": {"det": 0.0}})  # fmt: skip
    raw.flush(120)
    raw_rate = 20 * points / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as directory:
        consumer = DocumentConsumer(url, Path(directory), "bench:docs", batch=500)
        t0 = time.perf_counter()
        while consumer.written < publisher.published and time.perf_counter() - t0 < 120:
            consumer.poll()
        consumed = time.perf_counter() - t0
    docs = publisher.published
    return {"documents": docs, "engine_docs_per_s_bare": (points + 3) / bare,
            "engine_docs_per_s_publishing": docs / with_pub,
            "stream_docs_per_s_published": docs / published,
            "stream_docs_per_s_raw": raw_rate,
            "consumer_docs_per_s_stored": consumer.written / consumed}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handovers", type=int, default=200)
    parser.add_argument("--points", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        proc, url = start_redis(directory)
        try:
            results = {**bench_handover(url, args.handovers), **bench_expiry(url),
                       **bench_documents(url, args.points)}  # fmt: skip
        finally:
            proc.kill()
            proc.wait(10)
    for key, value in results.items():
        print(f"{key:32s} {value:12.3f}" if isinstance(value, float) else f"{key:32s} {value:8d}")


if __name__ == "__main__":
    main()
