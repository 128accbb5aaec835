#!/usr/bin/env python3
"""Interop: Python's own asyncio streams as the client of aio-echo.

    interop_echo.py AIO_ECHO [--mode protocol|buffered|streams]

Starts aio-echo on a free loopback port (backend from AIO_BACKEND), sends
8 MiB of random bytes while reading the echo, half-closes, and checks that
every byte came back once, in order, followed by the server's close.
Exit code 0 on success. Bounded: 60 s in all.
"""
import asyncio
import os
import re
import sys


async def main(echo, mode):
    proc = await asyncio.create_subprocess_exec(
        echo, "--port", "0", "--mode", mode, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 10)
        match = re.search(rb":(\d+) \(", line)
        if not match:
            sys.exit(f"aio-echo did not say where it listens: {line!r}")
        reader, writer = await asyncio.open_connection("127.0.0.1", int(match.group(1)))
        payload = os.urandom(8 << 20)

        async def send():
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i:i + 100_000])
                await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.read(), 50)  # until the server closes
        await sending
        writer.close()
        if echoed != payload:
            sys.exit(f"echo mismatch: sent {len(payload)} bytes, got {len(echoed)}")
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--mode" else "protocol"
    asyncio.run(asyncio.wait_for(main(sys.argv[1], mode), 60))
