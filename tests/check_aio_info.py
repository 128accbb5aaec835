#!/usr/bin/env python3
"""aio-info's report against what the build says it compiled.

    check_aio_info.py AIO_INFO [--wrapper PROGRAM] --compiled B1,B2,... --default B
                      --tls VERSION

Runs `aio-info --json`: the compiled and usable backends must be exactly
those Meson built (every one works on this machine), the default must be
--default, and AIO_BACKEND must select each of them in turn. An unknown
AIO_BACKEND must fail with a message naming the usable backends. The
OpenSSL it reports must be the one Meson found (--tls, its version).
Exit code 0 on success.
"""
import argparse
import json
import os
import subprocess
import sys


def run(args, backend, extra_env=None, json_output=True):
    env = dict(os.environ)
    env.pop("AIO_BACKEND", None)
    env.pop("AIO_IO_URING_FAIL", None)
    if backend is not None:
        env["AIO_BACKEND"] = backend
    env.update(extra_env or {})
    command = ([args.wrapper] if args.wrapper else []) + [args.aio_info] + (["--json"] if json_output else [])
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def check_io_uring_refused(args):
    """Contract 87: io_uring refused (simulated as kernel.io_uring_disabled=2
    would) is reported with its reason, fails when asked for alone, falls
    back in a list, and leaves the default alone."""
    refused = {"AIO_IO_URING_FAIL": "EPERM"}
    done = run(args, None, refused)
    if done.returncode != 0:
        sys.exit(f"AIO_IO_URING_FAIL=EPERM: aio-info failed: {done.stderr}")
    info = json.loads(done.stdout)
    reason = info["unusable"].get("io_uring", "")
    if "io_uring_setup" not in reason or "io_uring" in info["available"] or info["default"] != args.default:
        sys.exit(f"AIO_IO_URING_FAIL=EPERM: unusable {info['unusable']!r}, available {info['available']!r}")
    text = run(args, None, refused, json_output=False)
    if "unusable:  io_uring (io_uring_setup" not in text.stdout:
        sys.exit(f"AIO_IO_URING_FAIL=EPERM: no unusable line in {text.stdout!r}")
    alone = run(args, "io_uring", refused)
    if alone.returncode == 0 or "io_uring (failed its probe: io_uring_setup" not in alone.stderr:
        sys.exit(f"AIO_BACKEND=io_uring refused: exit {alone.returncode}, stderr {alone.stderr!r}")
    fallback = run(args, "io_uring,epoll", refused)
    if fallback.returncode != 0 or json.loads(fallback.stdout)["selected"] != "epoll":
        sys.exit(f"AIO_BACKEND=io_uring,epoll refused: {fallback.stdout!r} {fallback.stderr!r}")


def check_child_watchers(args, compiled):
    """AIO_CHILD_WATCHER forces each watcher this system has (and aio-info
    names it); an unknown one fails with a message listing the allowed."""
    watchers = ["sigchld"]
    if sys.platform.startswith("linux"):
        watchers.append("pidfd")
    if "kqueue" in compiled:
        watchers.append("kqueue")
    for watcher in watchers:
        done = run(args, None, {"AIO_CHILD_WATCHER": watcher})
        if done.returncode != 0 or json.loads(done.stdout).get("child_watcher") != watcher:
            sys.exit(f"AIO_CHILD_WATCHER={watcher}: exit {done.returncode}, {done.stdout!r} {done.stderr!r}")
        text = run(args, None, {"AIO_CHILD_WATCHER": watcher}, json_output=False)
        if f"children:  {watcher} (AIO_CHILD_WATCHER)" not in text.stdout:
            sys.exit(f"AIO_CHILD_WATCHER={watcher}: no children line in {text.stdout!r}")
    bad = run(args, None, {"AIO_CHILD_WATCHER": "nosuch"})
    allowed = ["pidfd", "kqueue", "sigchld"]
    if bad.returncode == 0 or "AIO_CHILD_WATCHER=nosuch" not in bad.stderr or not all(w in bad.stderr for w in allowed):
        sys.exit(f"AIO_CHILD_WATCHER=nosuch: exit {bad.returncode}, stderr {bad.stderr!r}")


def check_tls(args, info):
    """The OpenSSL aio-info was built with is the one Meson found; the one it
    runs with is an OpenSSL too, the same where it is linked statically
    (the Windows build: args.wrapper); the text output names both."""
    tls = info.get("tls", "missing")
    text = run(args, None, json_output=False).stdout
    if not isinstance(tls, dict):
        sys.exit(f"tls: Meson found OpenSSL {args.tls}, but aio-info says {tls!r}")
    built, running = tls.get("built_with", ""), tls.get("running", "")
    if built.split()[:2] != ["OpenSSL", args.tls]:
        sys.exit(f"tls: built_with {built!r}, expected Meson's OpenSSL {args.tls}")
    if not running.startswith("OpenSSL ") or (args.wrapper and running != built):
        sys.exit(f"tls: running {running!r} (built with {built!r})")
    if f"tls built: {built}\n" not in text or f"tls runs:  {running}\n" not in text:
        sys.exit(f"tls: no 'tls built:' / 'tls runs:' lines in {text!r}")
    return f"built with {built}, running {running}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("aio_info")
    parser.add_argument("--wrapper")
    parser.add_argument("--compiled", required=True)
    parser.add_argument("--default", required=True)
    parser.add_argument("--tls", required=True, help="the OpenSSL version Meson found")
    args = parser.parse_args()
    compiled = args.compiled.split(",")

    done = run(args, None)
    if done.returncode != 0:
        sys.exit(f"aio-info failed ({done.returncode}): {done.stderr}")
    info = json.loads(done.stdout)
    if sorted(info["compiled"]) != sorted(compiled):
        sys.exit(f"compiled: aio-info says {info['compiled']}, Meson built {compiled}")
    if sorted(info["available"]) != sorted(compiled):
        sys.exit(f"available: {info['available']}, expected every compiled backend {compiled}")
    if info["default"] != args.default or info["selected"] != args.default:
        sys.exit(f"default {info['default']!r} / selected {info['selected']!r}, expected {args.default!r}")
    if info.get("unusable") != {}:
        sys.exit(f"unusable: {info.get('unusable')!r}, expected none")
    if info["available"][0] != info["default"]:
        sys.exit(f"the default {info['default']!r} is not listed first in {info['available']}")
    # The child watcher: a pidfd on Linux (this kernel has one), the
    # process handle on Windows (Wine runs the Windows build: args.wrapper).
    expected_watcher = "process handle" if args.wrapper else ("pidfd" if sys.platform.startswith("linux") else None)
    if expected_watcher and info.get("child_watcher") != expected_watcher:
        sys.exit(f"child_watcher: {info.get('child_watcher')!r}, expected {expected_watcher!r}")
    if not args.wrapper:
        check_child_watchers(args, compiled)
    tls = check_tls(args, info)

    for backend in compiled:
        chosen = json.loads(run(args, backend).stdout)
        if chosen["selected"] != backend or chosen["AIO_BACKEND"] != backend:
            sys.exit(f"AIO_BACKEND={backend} selected {chosen['selected']!r}")

    bad = run(args, "nosuch")
    if bad.returncode == 0 or "nosuch" not in bad.stderr or not all(b in bad.stderr for b in compiled):
        sys.exit(f"AIO_BACKEND=nosuch: exit {bad.returncode}, stderr {bad.stderr!r}")
    if "io_uring" in compiled:
        check_io_uring_refused(args)
    print(f"aio-info: compiled and available {info['available']}, default {info['default']}; TLS: {tls}")


if __name__ == "__main__":
    main()
