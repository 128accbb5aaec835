"""Echo server on Python's asyncio, the peer of tools/bench/echo.

    python3 echo_server.py PORT [--uvloop] [--streams] [--backlog N] [--tls --cert FILE --key FILE]

--uvloop runs it on uvloop's loop instead of asyncio's own. The Protocol
flavour writes back from data_received and stops reading while the transport
is over its write high-water mark; --streams is the StreamReader/StreamWriter
flavour (read up to 64 KiB, write, drain). Both set TCP_NODELAY, as asyncio
does by default for TCP transports since Python 3.6. --backlog is listen()'s
(asyncio's default: 100).

--tls serves TLS through the loop's own TLS layer (`ssl=` of create_server /
start_server), with the context `ssl.create_default_context(Purpose.CLIENT_AUTH)`
gives and the certificate chain and key of --cert and --key (PEM).
"""

import argparse
import asyncio
import signal
import ssl


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def echo_stream(reader, writer):
    try:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port, streams, backlog, context):
    if streams:
        server = await asyncio.start_server(echo_stream, "127.0.0.1", port, ssl=context, backlog=backlog)
    else:
        server = await asyncio.get_running_loop().create_server(
            Echo, "127.0.0.1", port, ssl=context, backlog=backlog)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--streams", action="store_true", help="streams instead of a Protocol")
    parser.add_argument("--backlog", type=int, default=100, help="listen() backlog (default 100)")
    parser.add_argument("--tls", action="store_true", help="serve TLS (needs --cert and --key)")
    parser.add_argument("--cert", help="PEM certificate chain for --tls")
    parser.add_argument("--key", help="PEM private key for --tls")
    args = parser.parse_args()
    context = None
    if args.tls:
        if not args.cert or not args.key:
            parser.error("--tls needs --cert FILE and --key FILE")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    elif args.cert or args.key:
        parser.error("--cert and --key go with --tls")
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port, args.streams, args.backlog, context))


if __name__ == "__main__":
    main()
