#!/usr/bin/env python3
"""Interop with the openssl command line: CONTRACTS-wave2.md section 3 (a).

    check_tls_openssl.py server AIO_ECHO [--wrapper PROGRAM] --certs DIR [--echo-certs DIR] [--mode M]
                                [--fail-fast S]
    check_tls_openssl.py client INTEROP_CLIENT --certs DIR [--fail-fast S]

DIR holds tests/make_certs.py's files (--echo-certs: the same directory as
aio-echo sees it, if that differs: Z:/... under Wine). Exit code 0 when every
case passes, 1 with the failed cases on stderr, 77 (a skip for Meson) without
`openssl`.

server: `openssl s_client` (and two plain Python peers) against
`aio-echo --tls --cert DIR/srv.pem --key DIR/srv.key` (backend from
AIO_BACKEND; --wrapper runs a cross-built one, e.g. under wine):
  line-1.3, line-1.2  (50, 64; command 2) s_client verifies the server as
                      localhost against DIR/ca.pem and gets one line echoed
  wrong-name          (64; command 2) -verify_hostname wrong.example fails
                      with verify error 62
  key-update          (52; command 3) `K` (update_requested) mid-stream:
                      lines keep echoing, and the server's own KeyUpdate
                      comes back ahead of the next echo
  renegotiation       (53; command 5) `R` over TLS 1.2: a no_renegotiation
                      alert, that connection ends, while a client connected
                      before keeps its echo and new clients are accepted
  plaintext           (63; command 7) a plain-text request on the TLS port:
                      the connection ends within --fail-fast (default 1 s)
                      with at most an alert, aio-echo logs nothing, and
                      the server keeps accepting

client: `interop-client PORT MODE BYTES --cafile DIR/ca.pem` (aiocpp's
TLS client) against peers that are not aiocpp:
  client-auth         (54; command 6) `s_server -Verify 1` rejects a client
                      without a certificate: the client fails with the
                      server's "certificate required" alert, not a clean end
                      of stream and not a hang
  plaintext-server    (63; command 7) a plain-text server that speaks first:
                      the client fails with "wrong version number" within
                      --fail-fast of starting

Each case is bounded by a timeout; the output of a failed case's peers is
shown.
"""
import argparse
import asyncio
import contextlib
import os
import re
import shutil
import ssl
import sys

from aio_echo_process import add_echo_arguments, running_echo

STEP = 10.0  # bound on each step of a case, in seconds


class Failure(Exception):
    """A case's finding, for the report."""


class Child:
    """A peer program with its stdin open and its stdout and stderr collected together."""

    @classmethod
    async def start(cls, *argv):
        self = cls()
        self.argv = argv
        self.proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.STDOUT)
        self.output = bytearray()
        self.changed = asyncio.Event()
        self.reading = asyncio.create_task(self._read())
        return self

    async def _read(self):
        while chunk := await self.proc.stdout.read(65536):
            self.output += chunk
            self.changed.set()
        self.changed.set()

    def send(self, data):
        self.proc.stdin.write(data)

    async def expect(self, token, what, timeout=STEP):
        """Waits until `token` (bytes or a compiled regex) shows in the output; returns its offset."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = token.search(self.output) if isinstance(token, re.Pattern) else None
                    if found:
                        return found.start()
                    if not isinstance(token, re.Pattern) and (offset := self.output.find(token)) >= 0:
                        return offset
                    if self.reading.done():
                        raise Failure(f"{self.argv[0]} ended (exit {self.proc.returncode}) before {what}")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise Failure(f"no {what} within {timeout} s") from None

    async def exited(self, what, timeout=STEP):
        """Waits for the program to end by itself; returns its exit code."""
        try:
            async with asyncio.timeout(timeout):
                await self.reading
                return await self.proc.wait()
        except TimeoutError:
            raise Failure(f"{self.argv[0]} still running {timeout} s after {what}") from None

    async def finish(self, timeout=STEP):
        """Closes its stdin (s_client then sends close_notify and ends); returns the exit code."""
        self.proc.stdin.close()
        return await self.exited("its stdin was closed", timeout)

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()

    def text(self):
        return self.output.decode(errors="replace")


def cert(args, name):
    return os.path.join(args.certs, name)


def echo_cert(args, name):
    """The file as aio-echo sees it (under Wine: on drive Z:)."""
    return (args.echo_certs or args.certs) + "/" + name


def s_client(args, port, *options, name="localhost"):
    return ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-verify_hostname", name,
            "-CAfile", cert(args, "ca.pem"), "-verify_return_error", *options]


def msg_line(direction, what):
    """A line of s_client's -msg trace: `direction` is >>> (sent) or <<< (received)."""
    return re.compile(rb"^" + re.escape(direction.encode()) + rb" .*" + what, re.MULTILINE)


def python_client_context(args):
    return ssl.create_default_context(cafile=cert(args, "ca.pem"))


class Cases:
    """Runs named cases one after the other, keeping every peer's output for the report."""

    def __init__(self):
        self.failed = []
        self.children = []

    async def start(self, *argv):
        child = await Child.start(*argv)
        self.children.append(child)
        return child

    async def run(self, name, case, *case_args):
        self.children = []
        try:
            await case(self, *case_args)
        except (Failure, OSError, EOFError) as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e if isinstance(e, Failure) else f'{type(e).__name__}: {e}'}", file=sys.stderr)
            for child in self.children:
                print(f"---- {' '.join(child.argv)}\n{child.text()}", file=sys.stderr)
        else:
            print(f"ok   {name}")
        finally:
            for child in self.children:
                child.kill()
                await child.proc.wait()


# --- aio-echo --tls as the server -------------------------------------------------------------------


async def case_line(cases, args, port, version):
    token = f"aiocpp line over TLS {version}\n".encode()
    client = await cases.start(*s_client(args, port, "-tls" + version.replace(".", "_")))
    client.send(token)
    await client.expect(token, "echo of the line")
    if (rc := await client.finish()) != 0:
        raise Failure(f"s_client exited with {rc}")
    for expected in (b"Verify return code: 0 (ok)", f"New, TLSv{version}, Cipher is".encode()):
        if expected not in client.output:
            raise Failure(f"s_client did not print {expected.decode()!r}")


async def case_wrong_name(cases, args, port):
    client = await cases.start(*s_client(args, port, name="wrong.example"))
    rc = await client.exited("a handshake with the wrong name")
    if rc == 0 or b"verify error:num=62" not in client.output:
        raise Failure(f"s_client exited with {rc} and without 'verify error:num=62'")


async def case_key_update(cases, args, port):
    client = await cases.start(*s_client(args, port, "-tls1_3", "-msg"))
    client.send(b"before the key update\n")
    await client.expect(b"before the key update\n", "echo of the line before K")
    # Its own line: s_client takes a read of stdin that starts with K as the command.
    client.send(b"K\n")
    await client.expect(msg_line(">>>", rb"KeyUpdate"), "KeyUpdate sent by s_client")
    client.send(b"after the key update\n")
    echoed = await client.expect(b"after the key update\n", "echo of the line after K")
    # update_requested: OpenSSL 3.0 queues the server's own KeyUpdate while
    # reading and sends it ahead of its next write, so it precedes the echo.
    answered = msg_line("<<<", rb"KeyUpdate").search(client.output)
    if not answered or answered.start() > echoed:
        raise Failure("no KeyUpdate from the server before the echo of the line after K")
    if (rc := await client.finish()) != 0:
        raise Failure(f"s_client exited with {rc}")


async def case_renegotiation(cases, args, port):
    context = python_client_context(args)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        async with asyncio.timeout(STEP):
            writer.write(b"bystander 1\n")
            if await reader.readexactly(12) != b"bystander 1\n":
                raise Failure("the bystander's first line came back wrong")
        client = await cases.start(*s_client(args, port, "-tls1_2", "-msg"))
        client.send(b"before renegotiation\n")
        await client.expect(b"before renegotiation\n", "echo of the line before R")
        client.send(b"R\n")
        await client.expect(msg_line("<<<", rb"Alert.*no_renegotiation"), "no_renegotiation alert from the server")
        await client.exited("the refused renegotiation")
        # Only that connection ended.
        async with asyncio.timeout(STEP):
            writer.write(b"bystander 2\n")
            if await reader.readexactly(12) != b"bystander 2\n":
                raise Failure("the bystander's second line came back wrong")
    except (OSError, asyncio.IncompleteReadError) as e:
        raise Failure(f"the bystander connected before the renegotiation: {type(e).__name__}: {e}") from e
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def case_plaintext(cases, args, port, echo_stderr):
    logged_before = len(echo_stderr)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        answer = await asyncio.wait_for(reader.read(), args.fail_fast)  # until the server's close
    except ConnectionResetError:
        answer = b""
    except TimeoutError:
        raise Failure(f"the connection of a plain-text client still open after {args.fail_fast} s") from None
    finally:
        writer.close()
    elapsed = loop.time() - start
    if answer and answer[0] != 0x15:  # a TLS alert record, or nothing
        raise Failure(f"the server answered plain text with {answer[:32]!r}, not an alert")
    await asyncio.sleep(0.2)  # what aio-echo would log about it
    if len(echo_stderr) > logged_before:
        raise Failure("aio-echo logged (contract 63: quietly): " +
                      b"".join(echo_stderr[logged_before:]).decode(errors="replace"))
    print(f"     (closed after {elapsed:.3f} s)")


async def run_server(args):
    cases = Cases()
    echo_stderr = []
    tls_args = ["--tls", "--cert", echo_cert(args, "srv.pem"), "--key", echo_cert(args, "srv.key")]
    async with running_echo(args, args.mode, tls_args, echo_stderr) as port:
        await cases.run("line-1.3", case_line, args, port, "1.3")
        await cases.run("line-1.2", case_line, args, port, "1.2")
        await cases.run("wrong-name", case_wrong_name, args, port)
        await cases.run("key-update", case_key_update, args, port)
        await cases.run("renegotiation", case_renegotiation, args, port)
        await cases.run("plaintext", case_plaintext, args, port, echo_stderr)
        await cases.run("still-accepting", case_line, args, port, "1.3")
    return cases.failed


# --- interop-client (aiocpp's TLS client) against other servers ------------------------------------


async def run_client_program(args, port, nbytes):
    """interop-client against 127.0.0.1:port; returns (exit code, output, seconds)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    proc = await asyncio.create_subprocess_exec(args.client, str(port), "streams", str(nbytes), "--cafile",
                                                cert(args, "ca.pem"), "--server-hostname", "localhost",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), STEP)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        raise Failure(f"interop-client still running after {STEP} s: {output.decode(errors='replace')}") from None
    return proc.returncode, output.decode(errors="replace"), loop.time() - start


async def case_client_auth(cases, args):
    server = await cases.start("openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert(args, "srv.pem"),
                               "-key", cert(args, "srv.key"), "-Verify", "1", "-CAfile", cert(args, "ca.pem"),
                               "-naccept", "1")
    await server.expect(re.compile(rb"ACCEPT .*:(\d+)"), "s_server's ACCEPT line")
    port = int(re.search(rb"ACCEPT .*:(\d+)", server.output).group(1))
    rc, output, _ = await run_client_program(args, port, 1024)
    if rc == 0 or not re.search(r"certificate[ _]required", output, re.IGNORECASE):
        raise Failure(f"interop-client exited with {rc}, expected the alert 'certificate required': {output}")


async def case_plaintext_server(cases, args):
    async def speak_first(reader, writer):
        writer.write(b"220 a plain-text server speaks first\r\n")
        with contextlib.suppress(OSError):
            await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(speak_first, "127.0.0.1", 0)
    async with server:
        rc, output, seconds = await run_client_program(args, server.sockets[0].getsockname()[1], 1024)
    if rc == 0 or not re.search(r"wrong[ _]version[ _]number", output, re.IGNORECASE):
        raise Failure(f"interop-client exited with {rc}, expected 'wrong version number': {output}")
    if seconds > args.fail_fast:
        raise Failure(f"interop-client took {seconds:.3f} s to fail, more than {args.fail_fast} s")
    print(f"     (failed after {seconds:.3f} s)")


async def run_client(args):
    cases = Cases()
    await cases.run("client-auth", case_client_auth, args)
    await cases.run("plaintext-server", case_plaintext_server, args)
    return cases.failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server", help="openssl s_client against aio-echo --tls")
    add_echo_arguments(server, ["protocol", "buffered", "streams"])
    server.add_argument("--echo-certs", help="the --certs directory as aio-echo sees it (default: --certs)")
    client = roles.add_parser("client", help="interop-client against openssl s_server and plain-text servers")
    client.add_argument("client", help="the interop-client executable")
    for role in (server, client):
        role.add_argument("--certs", required=True, help="the directory tests/make_certs.py wrote")
        role.add_argument("--fail-fast", type=float, default=1.0,
                          help="seconds within which a non-TLS peer must be refused (contract 63)")
    args = parser.parse_args()
    if not shutil.which("openssl"):
        print("check_tls_openssl: no openssl program on PATH (Debian: apt-get install openssl)", file=sys.stderr)
        sys.exit(77)
    failed = asyncio.run(run_server(args) if args.role == "server" else run_client(args))
    if failed:
        sys.exit(f"check_tls_openssl {args.role}: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
