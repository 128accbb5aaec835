"""Callback-chain and timer micro-benchmarks on asyncio or uvloop, printing the
JSON line of aiocpp's aio-bench (same fields, same delays).

    python3 micro.py [--uvloop] callbacks N
    python3 micro.py [--uvloop] timers N MAX_MS
"""

import argparse
import asyncio
import json
import time


def delays(n, max_ms):
    """aio-bench's delays: xorshift64 (13, 7, 17) from 12345, uniform in [0, MAX_MS] ms."""
    x, mask, out = 12345, (1 << 64) - 1, []
    for _ in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out.append((x % 1_000_001) / 1_000_000 * max_ms / 1000)
    return out


def callbacks(loop, n):
    left = n

    def step():
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(step)
        else:
            loop.stop()

    c0, t0 = time.process_time(), time.perf_counter()
    loop.call_soon(step)
    loop.run_forever()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"bench": "callbacks", "n": n, "wall_s": wall, "ns_per_op": round(wall / n * 1e9, 1),
            "cpu_ns_per_op": round(cpu / n * 1e9, 1)}


def timers(loop, n, max_ms):
    ds = delays(n, max_ms)
    left = n

    def fired():
        nonlocal left
        left -= 1
        if not left:
            loop.stop()

    c0, t0 = time.process_time(), time.perf_counter()
    for d in ds:
        loop.call_later(d, fired)
    t1 = time.perf_counter()
    loop.run_forever()
    t2, cpu = time.perf_counter(), time.process_time() - c0
    return {"bench": "timers", "n": n, "max_delay_ms": max_ms, "sched_ns_per_op": round((t1 - t0) / n * 1e9, 1),
            "wall_s": t2 - t0, "ns_per_op": round((t2 - t0) / n * 1e9, 1),
            "cpu_ns_per_op": round(cpu / n * 1e9, 1), "late_ms": round((t2 - t0 - max(ds)) * 1e3, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("bench", choices=["callbacks", "timers"])
    parser.add_argument("n", type=int)
    parser.add_argument("max_ms", type=int, nargs="?", default=1000)
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        if args.bench == "callbacks":
            result = callbacks(loop, args.n)
        else:
            result = timers(loop, args.n, args.max_ms)
    finally:
        loop.close()
    print(json.dumps({"impl": "uvloop" if args.uvloop else "asyncio", **result}))


if __name__ == "__main__":
    main()
