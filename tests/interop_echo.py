#!/usr/bin/env python3
"""Interop: Python's own asyncio streams as the client of aio-echo.

    interop_echo.py AIO_ECHO [--wrapper PROGRAM] [--mode protocol|buffered|streams] [--size BYTES]

Starts aio-echo on a free loopback port (backend from AIO_BACKEND), sends
--size random bytes (default 8 MiB) while reading the echo, half-closes, and
checks that every byte came back once, in order, followed by the server's
close. Exit code 0 on success. Bounded: 120 s in all.
"""
import asyncio
import os
import sys

from aio_echo_process import argument_parser, running_echo


async def main(args):
    async with running_echo(args, args.mode) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(args.size)

        async def send():
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i:i + 100_000])
                await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.read(), 100)  # until the server closes
        await sending
        writer.close()
        if echoed != payload:
            sys.exit(f"echo mismatch: sent {len(payload)} bytes, got {len(echoed)}")


if __name__ == "__main__":
    parser = argument_parser(__doc__)
    parser.add_argument("--mode", default="protocol", choices=["protocol", "buffered", "streams"])
    parser.add_argument("--size", type=int, default=8 << 20)
    asyncio.run(asyncio.wait_for(main(parser.parse_args()), 120))
