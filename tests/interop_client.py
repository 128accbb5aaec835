#!/usr/bin/env python3
"""Interop: aiocpp's client against Python's own asyncio echo server.

    interop_client.py INTEROP_CLIENT MODE BYTES

Serves an asyncio streams echo on a free loopback port, runs INTEROP_CLIENT
(backend from AIO_BACKEND) against it, and passes on its verdict: the client
checks that every byte it sent came back once and in order. The server
echoes until the client half-closes, then closes. Bounded: 120 s in all.
"""
import asyncio
import sys


async def echo(reader, writer):
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(client, mode, nbytes):
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        proc = await asyncio.create_subprocess_exec(client, str(port), mode, nbytes)
        return await proc.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), 120)))
