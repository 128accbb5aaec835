#!/usr/bin/env python3
"""A connect storm against an echo server: what one accepted connection costs
the server (Linux).

    connect_storm.py [--conns N] [--batch B] [--repeat R]
                     [--variant NAME:VAR=VALUE,...]... -- SERVER_COMMAND...

SERVER_COMMAND must print "... on HOST:PORT (" on stderr once it listens
(aio-echo does; pass --port 0). Each round starts the server, then opens
connections B at a time: all B connect at once (the storm), then each
echoes one byte and closes. The server's CPU time (user + system, from
/proc) and the wall time over the N connections are reported per
connection. With --variant, the rounds alternate between environments, e.g.

    connect_storm.py --variant single:AIO_IO_URING_ACCEPT=single --variant multishot: \\
        -- build/tools/aio-echo --backend io_uring --port 0 --mode protocol --backlog 1024

compares io_uring's one-shot accept with its multishot accept. Medians of
--repeat rounds; no figure is asserted.
"""

import argparse
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def start(command, env):
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            raise SystemExit(f"server exited before listening: {command}")
        match = re.search(r" on [^ ]*:(\d+) \(", line)
        if match:
            return proc, int(match.group(1))
    raise SystemExit("server did not listen within 30 s")


def storm(port, conns, batch):
    done = 0
    while done < conns:
        n = min(batch, conns - done)
        socks = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        poller = select.poll()
        waiting = {}
        for s in socks:
            poller.register(s, select.POLLOUT)
            waiting[s.fileno()] = s
        while waiting:
            for fd, _ in poller.poll(10_000):
                s = waiting.pop(fd)
                poller.unregister(fd)
                s.send(b"x")
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            if s.recv(1) != b"x":
                raise SystemExit("the server did not echo")
            s.close()
        done += n


def one_round(command, env, conns, batch):
    proc, port = start(command, env)
    try:
        storm(port, min(conns, batch * 5), batch)  # warm up
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        storm(port, conns, batch)
        cpu, wall = cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(10)
    return cpu / conns * 1e6, wall / conns * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], help="NAME:VAR=VALUE,... (repeatable)")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    variants = []
    for spec in args.variant or ["server:"]:
        name, _, assignments = spec.partition(":")
        env = dict(os.environ)
        for item in filter(None, assignments.split(",")):
            key, _, value = item.partition("=")
            env[key] = value
        variants.append((name, env))
    results = {name: [] for name, _ in variants}
    for _ in range(args.repeat):
        for name, env in variants:
            results[name].append(one_round(args.command, env, args.conns, args.batch))
    for name, rounds in results.items():
        cpu = statistics.median(r[0] for r in rounds)
        wall = statistics.median(r[1] for r in rounds)
        spread = ", ".join(f"{r[0]:.1f}" for r in rounds)
        print(f"{name}: server CPU {cpu:.1f} us/connection (rounds: {spread}), wall {wall:.1f} us/connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
