"""aio-echo as a child process, for the interop tests.

The command line of both interop scripts is

    SCRIPT AIO_ECHO [--wrapper PROGRAM] [script options]

where --wrapper runs a cross-built aio-echo (e.g. wine for aio-echo.exe).
aio-echo picks its backend from AIO_BACKEND, inherited from the test.
"""
import argparse
import asyncio
import contextlib
import re
import sys


def argument_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("echo", help="the aio-echo executable")
    parser.add_argument("--wrapper", help="program that runs aio-echo (e.g. wine)")
    return parser


@contextlib.asynccontextmanager
async def running_echo(args, mode):
    """Starts aio-echo on a free loopback port in `mode`; yields the port.

    aio-echo's first line on stderr says where it listens; a wrapper may
    print lines of its own before it. The process is terminated on exit.
    """
    command = ([args.wrapper] if args.wrapper else []) + [args.echo, "--port", "0", "--mode", mode]
    proc = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
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
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
