"""aio-echo as a child process, for the interop tests.

The command line of the interop scripts is

    SCRIPT [ROLE] AIO_ECHO [--wrapper PROGRAM] [script options]

where --wrapper runs a cross-built aio-echo (e.g. wine for aio-echo.exe).
aio-echo picks its backend from AIO_BACKEND, inherited from the test.
"""
import argparse
import asyncio
import contextlib
import re
import sys


def add_echo_arguments(parser, modes=None):
    """AIO_ECHO and --wrapper; --mode too if `modes` lists the allowed ones (the first is the default)."""
    parser.add_argument("echo", help="the aio-echo executable")
    parser.add_argument("--wrapper", help="program that runs aio-echo (e.g. wine)")
    if modes:
        parser.add_argument("--mode", default=modes[0], choices=modes)
    return parser


def argument_parser(description):
    return add_echo_arguments(argparse.ArgumentParser(description=description))


@contextlib.asynccontextmanager
async def running_echo(args, mode, extra_args=(), later_stderr=None):
    """Starts aio-echo on a free loopback port in `mode`; yields the port.

    `extra_args` go on aio-echo's command line (e.g. --tls --cert ... --key ...).

    aio-echo's first line on stderr says where it listens; a wrapper may
    print lines of its own before it. What it writes to stderr after that
    is copied to ours (the test's log) and, if `later_stderr` is a list,
    appended to it line by line. The process is terminated on exit.
    """
    command = ([args.wrapper] if args.wrapper else []) + [args.echo, "--port", "0", "--mode", mode, *extra_args]
    proc = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    copying = None
    try:
        seen = []
        port = None
        async with asyncio.timeout(30):  # a wrapper's first start (wine) can take seconds
            while port is None:
                line = await proc.stderr.readline()
                if not line:
                    sys.exit(f"aio-echo exited without saying where it listens: {seen!r}")
                seen.append(line)
                match = re.search(rb"aio-echo: .* on .*:(\d+) \(", line)
                if match:
                    port = int(match.group(1))

        async def copy_stderr():
            while line := await proc.stderr.readline():
                sys.stderr.write(line.decode(errors="replace"))
                if later_stderr is not None:
                    later_stderr.append(line)

        copying = asyncio.create_task(copy_stderr())
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        if copying:
            # A process the wrapper left behind (wineserver) may hold the pipe open.
            await asyncio.wait({copying}, timeout=2)
            copying.cancel()
