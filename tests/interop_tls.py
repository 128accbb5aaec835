#!/usr/bin/env python3
"""Interop over TLS: Python's asyncio + ssl against aiocpp, both ways (contract 50).

    interop_tls.py echo AIO_ECHO [--wrapper PROGRAM] --certs DIR [--echo-certs DIR]
                        [--mode protocol|buffered|streams] [--size BYTES] [--clients N,...] [--tls 1.2,1.3]
    interop_tls.py client INTEROP_CLIENT --certs DIR [--mode streams|protocol] [--size BYTES] [--tls 1.2,1.3]

DIR holds tests/make_certs.py's files (ca.pem, srv.pem, srv.key);
--echo-certs names it as aio-echo sees it, if that differs (Z:/... under Wine).

echo: starts `aio-echo --tls --cert DIR/srv.pem --key DIR/srv.key` on a free
loopback port (backend from AIO_BACKEND; --wrapper runs a cross-built one,
e.g. under wine). For each TLS version in --tls, and for each count in
--clients (default 1,25: one connection, then 25 at once), that many asyncio
clients connect at once, verifying the server against DIR/ca.pem and the
name localhost, and share --size bytes (default 8 MiB) between them: each
sends its part as pseudo-random bytes with flow control while reading the
echo, compares the sha256 of what it sent with that of what came back, then
closes (TLS has no half-close: close_notify ends the stream) and waits for
the server's close_notify in answer (ssl_shutdown_timeout 10 s).

client: serves an asyncio TLS echo (DIR/srv.pem) on a free loopback port,
once per version in --tls, and runs `INTEROP_CLIENT PORT MODE BYTES --cafile
DIR/ca.pem --server-hostname localhost` against it: the client checks that
every byte came back once and in order; the server checks that it got
exactly BYTES bytes over the version it offered and an orderly end.

Anything reaching asyncio's exception handler fails the run. Exit code 0 on
success; 1 with a message otherwise. Bounded: --timeout (default 150 s).
"""
import argparse
import asyncio
import hashlib
import os
import random
import ssl
import sys

from aio_echo_process import add_echo_arguments, running_echo

CHUNK = 128 * 1024  # larger than a TLS record (16 KiB): writes span records
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
PROTOCOL_NAMES = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


class Failure(Exception):
    """What the run found wrong, for the exit message."""


def cert_path(args, name):
    return os.path.join(args.certs, name)


def echo_cert(args, name):
    """The file as aio-echo sees it (under Wine: on drive Z:)."""
    return (args.echo_certs or args.certs) + "/" + name


def client_context(args, version):
    context = ssl.create_default_context(cafile=cert_path(args, "ca.pem"))
    context.minimum_version = context.maximum_version = VERSIONS[version]
    return context


def server_context(args, version):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path(args, "srv.pem"), cert_path(args, "srv.key"))
    context.minimum_version = context.maximum_version = VERSIONS[version]
    return context


def watch_exception_handler():
    """Collects what reaches the loop's exception handler; the run fails on any."""
    reported = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
    return reported


def check_nothing_reported(reported):
    if reported:
        raise Failure("asyncio's exception handler was called: " +
                      "; ".join(f"{c.get('message')} ({c.get('exception')!r})" for c in reported))


async def echo_client(port, context, nbytes, seed):
    """One connection: sends `nbytes` while reading the echo; returns the TLS version."""
    sent = hashlib.sha256()
    echoed = hashlib.sha256()
    received = 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost",
                                                       ssl_shutdown_timeout=10)
        version = writer.get_extra_info("ssl_object").version()

        async def send():
            rng = random.Random(seed)
            remaining = nbytes
            while remaining:
                chunk = rng.randbytes(min(CHUNK, remaining))
                sent.update(chunk)
                writer.write(chunk)
                remaining -= len(chunk)
                await writer.drain()

        sending = asyncio.create_task(send())
        try:
            while received < nbytes:
                data = await reader.read(CHUNK)
                if not data:
                    raise Failure(f"client {seed}: the server ended the stream after echoing {received} of "
                                  f"{nbytes} bytes")
                echoed.update(data)
                received += len(data)
        finally:
            if not sending.done():
                sending.cancel()
        await sending
        if received != nbytes or echoed.digest() != sent.digest():
            raise Failure(f"client {seed}: sent {nbytes} bytes (sha256 {sent.hexdigest()}), got {received} back "
                          f"(sha256 {echoed.hexdigest()})")
        # close_notify; wait_closed() raises if the server does not answer with its own in time.
        writer.close()
        await writer.wait_closed()
    except (ssl.SSLError, OSError) as e:  # TimeoutError included
        raise Failure(f"client {seed}: {type(e).__name__}: {e} (after {received} of {nbytes} bytes echoed)") from e
    return version


async def run_echo(args):
    reported = watch_exception_handler()
    tls_args = ["--tls", "--cert", echo_cert(args, "srv.pem"), "--key", echo_cert(args, "srv.key")]
    async with running_echo(args, args.mode, tls_args) as port:
        for version in args.tls:
            context = client_context(args, version)
            for clients in args.clients:
                shares = [args.size // clients + (i < args.size % clients) for i in range(clients)]
                versions = await asyncio.gather(*(echo_client(port, context, n, seed)
                                                  for seed, n in enumerate(shares)))
                if any(v != PROTOCOL_NAMES[version] for v in versions):
                    raise Failure(f"asked for TLS {version}, negotiated {sorted(set(versions))}")
                print(f"TLS {version}: {clients} client(s) at once, {args.size} bytes each way in all, "
                      "every echo's sha256 as sent")
    check_nothing_reported(reported)


async def run_client(args):
    reported = watch_exception_handler()
    for version in args.tls:
        seen = []  # per connection: (TLS version, bytes echoed, how it ended)
        ended = asyncio.Event()

        async def echo(reader, writer):
            total = 0
            ending = "end of stream"
            try:
                while data := await reader.read(256 * 1024):
                    total += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ssl.SSLError, OSError) as e:
                ending = f"{type(e).__name__}: {e}"
            seen.append((writer.get_extra_info("ssl_object").version(), total, ending))
            ended.set()
            writer.close()
            try:
                await writer.wait_closed()
            except (ssl.SSLError, OSError):
                pass  # the client may be gone already: its verdict is what counts

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context(args, version),
                                            ssl_shutdown_timeout=10)
        async with server:
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                args.client, str(port), args.mode, str(args.size), "--cafile", cert_path(args, "ca.pem"),
                "--server-hostname", "localhost")
            rc = await proc.wait()
            if rc != 0:
                raise Failure(f"TLS {version}: interop-client exited with {rc}")
            try:  # the client may be gone before the server has read its close_notify
                await asyncio.wait_for(ended.wait(), 10)
            except asyncio.TimeoutError:
                pass  # reported below: `seen` lacks the connection
        expected = [(PROTOCOL_NAMES[version], args.size, "end of stream")]
        if seen != expected:
            raise Failure(f"TLS {version}: the server saw {seen}, expected {expected}")
        print(f"TLS {version}: interop-client {args.mode}, {args.size} bytes each way")
    check_nothing_reported(reported)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    echo = roles.add_parser("echo", help="Python clients against aio-echo --tls")
    add_echo_arguments(echo, ["protocol", "buffered", "streams"])
    echo.add_argument("--echo-certs", help="the --certs directory as aio-echo sees it (default: --certs)")
    echo.add_argument("--clients", default="1,25", type=lambda s: [int(n) for n in s.split(",")],
                      help="rounds of clients at once sharing --size, one round after the other (default 1,25)")
    client = roles.add_parser("client", help="interop-client against a Python TLS echo server")
    client.add_argument("client", help="the interop-client executable")
    client.add_argument("--mode", default="streams", choices=["streams", "protocol"])
    for role in (echo, client):
        role.add_argument("--certs", required=True, help="the directory tests/make_certs.py wrote")
        role.add_argument("--size", type=int, default=8 << 20, help="bytes each way, over all clients")
        role.add_argument("--tls", default="1.2,1.3", type=lambda s: s.split(","),
                          help="the TLS versions to run, one after the other (default 1.2,1.3)")
        role.add_argument("--timeout", type=float, default=150.0, help="bound on the whole run, in seconds")
    args = parser.parse_args()
    if bad := [v for v in args.tls if v not in VERSIONS]:
        parser.error(f"--tls: unknown version {bad[0]!r}; allowed: {', '.join(VERSIONS)}")
    if args.role == "echo" and (bad := [n for n in args.clients if not 1 <= n <= args.size]):
        parser.error(f"--clients: each count must be between 1 and --size ({args.size}), not {bad[0]}")
    run = run_echo if args.role == "echo" else run_client
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except Failure as e:
        sys.exit(f"interop_tls {args.role}: {e}")
    except asyncio.TimeoutError:
        sys.exit(f"interop_tls {args.role}: not done within {args.timeout} s")


if __name__ == "__main__":
    main()
