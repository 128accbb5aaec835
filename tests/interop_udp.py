#!/usr/bin/env python3
"""Interop: Python's own asyncio datagram endpoint as the client of aio-echo.

    interop_udp.py AIO_ECHO [--wrapper PROGRAM]

Starts `aio-echo --mode datagram` on a free loopback port (backend from
AIO_BACKEND) and sends it 300 distinct datagrams of sizes from 0 bytes to
the UDP maximum, 65507, through asyncio's create_datagram_endpoint, and
checks that every one comes back exactly once. UDP may drop what overflows a
receive buffer, so a small window of datagrams and bytes is kept in flight:
on loopback nothing is then lost and nothing needs resending. Exit code 0 on
success. Bounded: 60 s in all.
"""
import asyncio
import collections
import os
import socket
import sys

from aio_echo_process import argument_parser, running_echo

COUNT = 300
SIZES = [0, 1, 7, 64, 512, 1400, 1500, 4096, 9000, 32768, 60000, 65507]
WINDOW = 16  # datagrams in flight
WINDOW_BYTES = 128 * 1024  # and bytes: well under the default 208 KiB rmem


def payloads():
    """COUNT distinct datagrams, the empty one and every size in SIZES among them."""
    out = {b"": None}
    i = 0
    while len(out) < COUNT:
        i += 1
        out[os.urandom(SIZES[i % len(SIZES)] or 1)] = None  # a repeated tiny one is simply drawn again
    return list(out)


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.echoed = collections.Counter()
        self.in_flight = 0  # datagrams sent and not echoed yet
        self.bytes_in_flight = 0
        self.arrived = asyncio.Event()
        self.errors = []

    def sent(self, data):
        self.in_flight += 1
        self.bytes_in_flight += len(data)

    def datagram_received(self, data, addr):
        self.echoed[data] += 1
        self.in_flight -= 1
        self.bytes_in_flight -= len(data)
        self.arrived.set()

    def error_received(self, exc):
        self.errors.append(exc)
        self.arrived.set()

    async def wait(self, what):
        self.arrived.clear()
        try:
            await asyncio.wait_for(self.arrived.wait(), 5)
        except asyncio.TimeoutError:
            sys.exit(f"no echo within 5 s while {what}: {self.in_flight} datagrams lost?")
        if self.errors:
            sys.exit(f"error_received: {self.errors}")


async def main(args):
    loop = asyncio.get_running_loop()
    async with running_echo(args, "datagram") as port:
        # Our own socket, so that empty datagrams can go out: asyncio before
        # 3.13 (gh-113812) drops them in DatagramTransport.sendto.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
        transport, client = await loop.create_datagram_endpoint(Client, sock=sock)
        sent = payloads()
        for data in sent:
            while client.in_flight and (client.in_flight >= WINDOW
                                        or client.bytes_in_flight + len(data) > WINDOW_BYTES):
                await client.wait("sending")
            if data:
                transport.sendto(data)
            else:
                sock.send(data)
            client.sent(data)
        while client.in_flight > 0:
            await client.wait("waiting for the last echoes")
        await asyncio.sleep(0.2)  # anything extra would arrive now
        transport.close()
        expected = collections.Counter(sent)
        missing = expected - client.echoed
        extra = client.echoed - expected
        if missing or extra or client.errors:
            sys.exit(f"echo mismatch: sent {len(sent)} datagrams, {sum(missing.values())} missing "
                     f"(sizes {sorted(len(d) for d in missing)}), {sum(extra.values())} unexpected, "
                     f"errors {client.errors}")
        print(f"{len(sent)} datagrams of {min(map(len, sent))} to {max(map(len, sent))} bytes echoed once each")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(argument_parser(__doc__).parse_args()), 60))
