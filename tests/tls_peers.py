#!/usr/bin/env python3
"""TLS peers over ssl.MemoryBIO for the close and end-of-stream contracts (55-58).

    tls_peers.py PEER --cert FILE --key FILE [--tls 1.2|1.3] [--bytes N] [--timeout S]

Each peer is a one-connection TLS server on 127.0.0.1. It prints its port on
the first line of stdout, accepts one client (the aiocpp side under test),
does what CONTRACTS-wave2.md's check for its contract describes, and exits:
0 if the client behaved as the contract says, 1 with the reason on stderr
otherwise, 2 for a bad command line. Every step is bounded by --timeout
(default 30 s). The record layer is driven by hand through memory BIOs, so
each peer sees exactly which records arrive, in which order, and whether the
stream ends with close_notify or with a bare TCP FIN.

Several peers begin with the same exchange: the client sends b"ping", the
peer answers b"pong". The client's part is given with each peer.

flush (55)
    After pong the peer sleeps 0.5 s, so that what the client writes backs up,
    then must receive exactly --bytes (default 4 MiB, i.e. 32 x 128 KiB) of
    application data followed by close_notify: not more bytes, not a FIN
    without close_notify. It answers close_notify and closes.
    Client: ping, read pong, pause writing, write 32 x 128 KiB, close(),
    resume writing; connection_lost(None).

trailing (56, check 1: bpo-39951)
    After pong the peer waits for the client's close_notify, then sends
    b"trailing" as application data, waits 0.5 s, answers close_notify and
    closes. Client: ping, read pong, close(); data_received must not see
    b"trailing", and connection_lost(None), never "application data after
    close notify".

stream (56, check 2)
    After pong the peer streams application data (up to --bytes, default
    1 GiB) and never reads again, so the client's close_notify is never
    answered. It exits 0 as soon as the client's side goes away (reset or
    closed) and 1 if it could send everything. Client: ping, read pong,
    close() with ssl_shutdown_timeout=0.5; connection_lost(TimeoutError)
    about 0.5 s later.

remote-close (57: test_remote_shutdown_receives_trailing_data, `server`)
    After pong the peer waits 0.2 s, sends close_notify without waiting for
    the answer, then must receive exactly --bytes (default 4 MiB) followed by
    the client's close_notify. Client: ping, read pong, a 4 MiB write
    backlog; it finishes sending the backlog, then answers close_notify.

eof (57: the same test, `eof_server`)
    After pong the peer waits 0.2 s, half-closes TCP (a FIN, no
    close_notify), then must receive exactly --bytes (default 4 MiB). Client:
    ping, read pong, a 4 MiB write backlog; then eof_received(),
    connection_lost(None).

eof-extra (57: test_shutdown_timeout_handler_not_set)
    The peer sends b"hello" after the handshake, must read b"world", sends
    b"extra bytes", half-closes TCP without close_notify and prints a line
    "eof" on stdout, then waits until the client closes. Client: on hello,
    write world and pause reading; after "eof", resume_reading() must still
    deliver b"extra bytes", then eof_received(), connection_lost(None).

pause-close (58: uvloop test_shutdown_while_pause_reading)
    The peer sends b"trailing data" right behind its handshake (so that it
    waits decrypted in the client's BIO while reading is paused), then must receive close_notify with no application data before it,
    answers close_notify and waits for the client's TCP close. Client:
    pause_reading(), close(); eof_received() and connection_lost() within
    10 s, data_received never.

The peers are written from the contracts; the facts (what each peer sends and
expects) come from CPython's Lib/test/test_asyncio/test_ssl.py and uvloop's
tests/test_tcp.py.
"""
import argparse
import socket
import ssl
import sys
import time

MIB = 1024 * 1024


class PeerFailure(Exception):
    """The client did something its contract rules out (the message says what)."""


class BioConnection:
    """One accepted socket with a server-side SSLObject over memory BIOs."""

    def __init__(self, sock, context):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def flush(self):
        """Sends whatever OpenSSL produced (records, alerts, KeyUpdate replies)."""
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def feed(self, waiting_for):
        """Moves the next TCP segment into the incoming BIO."""
        data = self.sock.recv(256 * 1024)
        if not data:
            raise PeerFailure(f"TCP end of file without close_notify while waiting for {waiting_for}")
        self.incoming.write(data)

    def handshake(self):
        while True:
            try:
                self.ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed("the handshake")
        self.flush()

    def read(self, waiting_for, limit=256 * 1024):
        """Up to `limit` bytes of application data; None at the client's close_notify."""
        while True:
            try:
                data = self.ssl.read(limit)
            except ssl.SSLWantReadError:
                self.flush()
                self.feed(waiting_for)
                continue
            except ssl.SSLZeroReturnError:  # close_notify, once ours was sent too
                return None
            self.flush()
            # Python's SSLObject returns b"" for close_notify while ours is unsent.
            return data or None

    def read_exactly(self, nbytes, what):
        data = b""
        while len(data) < nbytes:
            chunk = self.read(what, nbytes - len(data))
            if chunk is None:
                raise PeerFailure(f"close_notify after {len(data)} of the {nbytes} bytes of {what}")
            data += chunk
        return data

    def count_until_close_notify(self, what):
        """Reads application data until close_notify; returns how many bytes came."""
        total = 0
        while (chunk := self.read(what)) is not None:
            total += len(chunk)
        return total

    def write(self, data):
        self.ssl.write(data)
        self.flush()

    def send_close_notify(self):
        """Sends close_notify; does not wait for the client's (SSL_shutdown once)."""
        try:
            self.ssl.unwrap()
        except ssl.SSLWantReadError:
            pass  # the client's close_notify has not come yet
        self.flush()

    def expect_tcp_close(self, what):
        data = self.sock.recv(256 * 1024)
        if data:
            raise PeerFailure(f"{len(data)} more bytes where {what} was expected")


def ping_pong(conn):
    if (data := conn.read_exactly(4, "the client's ping")) != b"ping":
        raise PeerFailure(f"expected b'ping', got {data!r}")
    conn.write(b"pong")


def expect_bytes_then_close_notify(conn, nbytes, what):
    total = conn.count_until_close_notify(what)
    if total != nbytes:
        raise PeerFailure(f"{total} bytes of {what} before close_notify, expected {nbytes}")


def peer_flush(conn, args):
    ping_pong(conn)
    time.sleep(0.5)  # the client's writes back up meanwhile
    expect_bytes_then_close_notify(conn, args.bytes, "the client's writes")
    conn.send_close_notify()


def peer_trailing(conn, args):
    ping_pong(conn)
    if (data := conn.read("the client's close_notify")) is not None:
        raise PeerFailure(f"{len(data)} bytes of application data where close_notify was expected")
    conn.write(b"trailing")  # after the client's close(): it must be discarded
    time.sleep(0.5)
    conn.send_close_notify()


def peer_stream(conn, args):
    ping_pong(conn)
    chunk = b"s" * MIB
    sent = 0
    try:
        while sent < args.bytes:
            conn.write(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        return  # the client gave up on our close_notify and closed
    raise PeerFailure(f"streamed {sent} bytes and the client is still connected")


def peer_remote_close(conn, args):
    ping_pong(conn)
    time.sleep(0.2)  # the client fills its write backlog meanwhile
    conn.send_close_notify()
    expect_bytes_then_close_notify(conn, args.bytes, "the client's backlog")


def peer_eof(conn, args):
    ping_pong(conn)
    time.sleep(0.2)
    conn.sock.shutdown(socket.SHUT_WR)  # a FIN, no close_notify
    conn.read_exactly(args.bytes, "the client's backlog")


def peer_eof_extra(conn, args):
    conn.write(b"hello")
    if (data := conn.read_exactly(5, "the client's world")) != b"world":
        raise PeerFailure(f"expected b'world', got {data!r}")
    conn.write(b"extra bytes")
    conn.sock.shutdown(socket.SHUT_WR)
    print("eof", flush=True)
    # The client ends with close_notify or a bare FIN: either is fine here.
    try:
        while conn.read("the client's close", 1024) is not None:
            pass
    except PeerFailure:
        pass


def peer_pause_close(conn, args):
    conn.write(b"trailing data")
    if (data := conn.read("the client's close_notify")) is not None:
        raise PeerFailure(f"{len(data)} bytes of application data where close_notify was expected")
    conn.send_close_notify()
    conn.expect_tcp_close("the client's TCP close")


PEERS = {
    "flush": (peer_flush, 4 * MIB),
    "trailing": (peer_trailing, 0),
    "stream": (peer_stream, 1024 * MIB),
    "remote-close": (peer_remote_close, 4 * MIB),
    "eof": (peer_eof, 4 * MIB),
    "eof-extra": (peer_eof_extra, 0),
    "pause-close": (peer_pause_close, 0),
}

def server_context(args):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    if args.tls:
        version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls]
        context.minimum_version = context.maximum_version = version
    return context


def serve_one(args):
    """Listens, prints the port, runs the peer on the first client; returns the exit code."""
    run, default_bytes = PEERS[args.peer]
    if args.bytes is None:
        args.bytes = default_bytes
    context = server_context(args)
    with socket.create_server(("127.0.0.1", args.port)) as listener:
        listener.settimeout(args.timeout)
        print(listener.getsockname()[1], flush=True)
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            print(f"tls_peers {args.peer}: no client within {args.timeout} s", file=sys.stderr)
            return 1
    with sock:
        sock.settimeout(args.timeout)
        conn = BioConnection(sock, context)
        try:
            conn.handshake()
            run(conn, args)
        except PeerFailure as e:
            print(f"tls_peers {args.peer}: {e}", file=sys.stderr)
            return 1
        except TimeoutError:
            print(f"tls_peers {args.peer}: no progress for {args.timeout} s (the client neither sent nor read)",
                  file=sys.stderr)
            return 1
        except (ssl.SSLError, OSError) as e:
            print(f"tls_peers {args.peer}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--cert", required=True, help="the server certificate (PEM)")
    parser.add_argument("--key", required=True, help="its private key (PEM)")
    parser.add_argument("--tls", choices=["1.2", "1.3"], help="the only TLS version to offer")
    parser.add_argument("--bytes", type=int, help="the byte count of the peer's description")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on (default: a free one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="bound on each step, in seconds")
    sys.exit(serve_one(parser.parse_args()))


if __name__ == "__main__":
    main()
