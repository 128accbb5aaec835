#!/usr/bin/env python3
"""Ctrl-C and signals from outside (contracts 82 and 85): runs
tests/sigtest.cpp's modes and the reference's signal example as a user
runs them, sends real signals, and checks what the processes print and how
they end. Usage: check_sigint.py SIGTEST EXAMPLE_SIGNALS"""
import os
import signal
import subprocess
import sys
import time

SIGTEST, EXAMPLE = sys.argv[1], sys.argv[2]


def default_sigint():
    # A non-interactive shell starts background jobs with SIGINT ignored,
    # and aio::run takes SIGINT over only from its default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args):
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    line = proc.stdout.readline()
    if line.strip() not in ("ready",) and not line.startswith("Event loop running"):
        proc.kill()
        raise AssertionError(f"{args}: expected ready, got {line!r}")
    return proc, line


def finish(proc, timeout=10):
    out = proc.stdout.read()
    return proc.wait(timeout), out


failures = []


def check(name, ok, detail):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


# 85: the first SIGINT cancels the main task at once; run() throws
# KeyboardInterrupt, which the program turns into death by SIGINT (130).
proc, _ = start(SIGTEST, "wait-sigint")
t0 = time.monotonic()
proc.send_signal(signal.SIGINT)
code, out = finish(proc)
check("wait-sigint", code == -signal.SIGINT and out == "cancelled\nKeyboardInterrupt\n" and time.monotonic() - t0 < 5,
      f"code {code}, output {out!r}")

# A task that swallows the cancellation: run() returns its value.
proc, _ = start(SIGTEST, "swallow")
proc.send_signal(signal.SIGINT)
code, out = finish(proc)
check("swallow", code == 7 and out == "swallowed\n", f"code {code}, output {out!r}")

# A second SIGINT while the task is still handling the first ends it at once.
proc, _ = start(SIGTEST, "slow-cleanup")
proc.send_signal(signal.SIGINT)
line = proc.stdout.readline()
t0 = time.monotonic()
proc.send_signal(signal.SIGINT)
code, out = finish(proc)
check("slow-cleanup", line == "cancelled\n" and code == -signal.SIGINT and time.monotonic() - t0 < 5,
      f"line {line!r}, code {code}")

# The loop stuck in a callback: the second SIGINT still ends the process.
proc, _ = start(SIGTEST, "stuck")
proc.send_signal(signal.SIGINT)
time.sleep(0.2)
t0 = time.monotonic()
proc.send_signal(signal.SIGINT)
code, out = finish(proc)
check("stuck", code == -signal.SIGINT and time.monotonic() - t0 < 5, f"code {code}")

# The user's own SIGINT handler, installed first: the runner leaves it alone.
proc, _ = start(SIGTEST, "own-handler")
proc.send_signal(signal.SIGINT)
code, out = finish(proc)
check("own-handler", code == 0 and out == "own handler\n", f"code {code}, output {out!r}")

# 82: 10,000 SIGUSR1 then one SIGUSR2, as fast as they go: both handlers
# run, the process survives.
proc, _ = start(SIGTEST, "signals")
for _ in range(10000):
    os.kill(proc.pid, signal.SIGUSR1)
os.kill(proc.pid, signal.SIGUSR2)
code, out = finish(proc)
words = out.split()
check("signals", code == 0 and len(words) == 4 and int(words[1]) >= 1 and words[3] == "1", f"code {code}, output {out!r}")

# The reference's example (asyncio-eventloop, "Set signal handlers for
# SIGINT and SIGTERM"), once per signal.
for name in ("SIGINT", "SIGTERM"):
    proc, first = start(EXAMPLE)
    pid_line = proc.stdout.readline()
    proc.send_signal(getattr(signal, name))
    code, out = finish(proc)
    check(f"example-signals[{name}]",
          pid_line == f"pid {proc.pid}: send SIGINT or SIGTERM to exit.\n" and out.startswith(f"got signal {name}: exit\n"),
          f"code {code}, output {pid_line + out!r}")

sys.exit(1 if failures else 0)
