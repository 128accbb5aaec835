#!/usr/bin/env python3
"""A bounded stress run of an echo server, with the server's memory and
descriptors watched from /proc (Linux).

    stress.py [--idle N] [--churn SECONDS] [--slow MIB] [--clients K]
              [--rss-per-conn-max BYTES] [--name NAME] -- SERVER_COMMAND...

SERVER_COMMAND must print "... on HOST:PORT (" on stderr once it listens
(aio-echo does; pass --port 0). Phases, each optional:

  idle   N connections that each echo one byte and then stay idle: the
         server's RSS growth per connection (reported, and checked against
         --rss-per-conn-max when given).
  churn  for SECONDS, K clients at a time doing a random mix of: a clean
         echo and close, a reset (RST) mid-message, a half-close then read to
         the end, garbage then reset. Afterwards the server's descriptors are
         back to the baseline (+2), its RSS within --churn-rss-max MiB (8) of
         the idle baseline, and its stderr holds no error report.
  slow   one client sends MIB mebibytes and never reads: the server must stop
         reading (flow control), so its RSS grows by less than --slow-rss-max
         MiB (4).

Prints one line per phase and exits non-zero on the first broken check.
The 10,000-connection figures come from the same script (README, "Stress").
"""
import argparse
import asyncio
import os
import random
import re
import resource
import socket
import struct
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, command):
        self.command = command
        self.proc = None
        self.port = None
        self.stderr_lines = []
        self.reader_task = None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(*self.command, stdin=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(30):
            while self.port is None:
                line = await self.proc.stderr.readline()
                if not line:
                    raise SystemExit(f"server exited before listening: {self.stderr_lines!r}")
                self.stderr_lines.append(line.decode(errors="replace").rstrip())
                match = re.search(r" on [^ ]*:(\d+) \(", self.stderr_lines[-1])
                if match:
                    self.port = int(match.group(1))
        self.reader_task = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self):
        while line := await self.proc.stderr.readline():
            self.stderr_lines.append(line.decode(errors="replace").rstrip())

    def errors(self):
        return [l for l in self.stderr_lines[1:] if re.search(r"error|exception|sanitizer", l, re.I)]

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.terminate()
        await self.proc.wait()
        if self.reader_task:
            await self.reader_task


async def settle(pid, seconds=0.5):
    """Waits until the RSS stops moving (at most `seconds`)."""
    last = rss(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = rss(pid)
        if now == last:
            break
        last = now
    return last


async def echo_once(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await writer.drain()
    assert await reader.readexactly(1) == b"x"
    return reader, writer


async def idle_phase(server, n, limit):
    pid = server.proc.pid
    base = await settle(pid)
    conns = []
    for start in range(0, n, 500):
        conns += await asyncio.gather(*(echo_once(server.port) for _ in range(start, min(n, start + 500))))
    peak = await settle(pid, 2.0)
    per_conn = (peak - base) / n
    print(f"idle: {n} connections, server RSS {base / 2**20:.1f} -> {peak / 2**20:.1f} MiB, "
          f"{per_conn:.0f} bytes per connection", flush=True)
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    if limit and per_conn > limit:
        raise SystemExit(f"idle: {per_conn:.0f} bytes per connection, more than {limit}")
    return per_conn


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def churn_client(port, rng):
    kind = rng.choice(("echo", "reset", "half_close", "garbage"))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return kind
    sock = writer.get_extra_info("socket")
    try:
        payload = rng.randbytes(rng.randint(1, 64 * 1024))
        if kind == "echo":
            writer.write(payload)
            await writer.drain()
            await reader.readexactly(len(payload))
        elif kind == "reset":
            writer.write(payload)
            await writer.drain()
            await asyncio.sleep(rng.random() * 0.01)
            reset(sock)
        elif kind == "half_close":
            writer.write(payload)
            writer.write_eof()
            got = await reader.read()
            assert got == payload, "half-close: the echo differs"
        else:
            writer.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 512))) + b"\0\r\n\xff")
            await writer.drain()
            reset(sock)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
    return kind


async def churn_phase(server, seconds, clients, base_fds, base_rss, rss_max_mib):
    pid = server.proc.pid
    rng = random.Random(1)
    counts = {}
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            kind = await asyncio.wait_for(churn_client(server.port, rng), 30)
            counts[kind] = counts.get(kind, 0) + 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    # Let the server notice every close.
    for _ in range(50):
        if fds(pid) <= base_fds + 2:
            break
        await asyncio.sleep(0.1)
    now_fds, now_rss = fds(pid), await settle(pid)
    total = sum(counts.values())
    print(f"churn: {total} connections in {seconds} s ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
          f"server fds {base_fds} -> {now_fds}, RSS {base_rss / 2**20:.1f} -> {now_rss / 2**20:.1f} MiB", flush=True)
    if now_fds > base_fds + 2:
        raise SystemExit(f"churn: the server holds {now_fds - base_fds} more descriptors than before")
    if now_rss > base_rss + rss_max_mib * 2**20:
        raise SystemExit(f"churn: the server's RSS grew by {(now_rss - base_rss) / 2**20:.1f} MiB")
    if errors := server.errors():
        raise SystemExit("churn: the server reported errors:\n" + "\n".join(errors[:20]))


async def slow_phase(server, mib, rss_max_mib):
    pid = server.proc.pid
    base = await settle(pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    chunk = b"s" * (256 * 1024)
    sent = 0
    try:
        async with asyncio.timeout(5):
            while sent < mib * 2**20:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
    except TimeoutError:
        pass  # the server stopped reading: what we want
    grown = await settle(pid, 1.0) - base
    writer.transport.abort()
    print(f"slow: sent {sent / 2**20:.1f} MiB to a client that never reads; server RSS grew by "
          f"{grown / 2**20:.2f} MiB", flush=True)
    if grown > rss_max_mib * 2**20:
        raise SystemExit(f"slow: the server grew by {grown / 2**20:.1f} MiB for a reader that never reads")


async def main(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * args.idle + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    server = Server(args.command)
    await server.start()
    try:
        pid = server.proc.pid
        base_fds, base_rss = fds(pid), await settle(pid)
        if args.idle:
            await idle_phase(server, args.idle, args.rss_per_conn_max)
        if args.churn:
            await churn_phase(server, args.churn, args.clients, base_fds, await settle(pid), args.churn_rss_max)
        if args.slow:
            await slow_phase(server, args.slow, args.slow_rss_max)
        if server.proc.returncode is not None:
            raise SystemExit(f"the server exited ({server.proc.returncode})")
    finally:
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--churn", type=float, default=0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--churn-rss-max", type=int, default=8, help="MiB the churn may leave the RSS above its baseline")
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--slow-rss-max", type=int, default=4, help="MiB the server may grow for the slow reader")
    parser.add_argument("--rss-per-conn-max", type=int, default=0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("stress.py reads /proc: Linux only; skipped")
        sys.exit(77)
    asyncio.run(main(args))
