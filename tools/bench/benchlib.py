"""What tools/bench/echo and tools/bench/micro share: packages, building the
peers and aiocpp's release build, machine load, medians and markdown tables.

Paths are absolute, from the repository root this file sits in, so the
drivers work from any directory.
"""

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "tools", "bench")
BUILD = os.path.join(ROOT, "build-bench")
RELEASE = os.path.join(ROOT, "build-release")
# Debian's interpreter: the one python3-uvloop is built for, whatever python3 is first on PATH.
PYTHON = "/usr/bin/python3"
# Always needed (taskset; OpenSSL for load_client); each peer adds its own package (libuv1-dev, libasio-dev,
# liburing-dev, python3-uvloop, nodejs).
PACKAGES = ["util-linux", "libssl-dev"]
# The --tls servers' certificate and key and the CA the load client checks them against (tests/make_certs.py).
CERTS = os.path.join(BUILD, "certs")
CERT, KEY, CA = (os.path.join(CERTS, f) for f in ("srv.pem", "srv.key", "ca.pem"))
# make_certs.py's certificates are valid from a day before they are made to two days after.
CERTS_MAX_AGE_S = 24 * 3600

# The peer programs: name -> (source under tools/bench/src, compiler, libraries).
PROGRAMS = {
    "load_client": ("load_client.c", "cc", ["-lssl", "-lcrypto"]),
    "raw_epoll": ("raw_epoll.c", "cc", []),
    "raw_tls": ("raw_tls.c", "cc", ["-lssl", "-lcrypto"]),
    "raw_uring": ("raw_uring.c", "cc", ["-luring"]),
    "uv_echo": ("uv_echo.c", "cc", ["-luv"]),
    "asio_echo": ("asio_echo.cpp", "c++", []),
    "uv_micro": ("uv_micro.c", "cc", ["-luv"]),
    "asio_micro": ("asio_micro.cpp", "c++", []),
}
AIOCPP_TOOLS = ["aio-echo", "aio-bench", "aio-info"]


def exit_on_sigterm():
    """SIGTERM ends the driver through SystemExit, so that the servers it started are stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


def fail(message):
    say(f"{os.path.basename(sys.argv[0])}: {message}")
    sys.exit(1)


def ensure_packages(extra=()):
    """tools/lib.sh's ensure_packages with our packages added; waits out another apt run."""
    wanted = " ".join(PACKAGES + list(extra) + os.environ.get("AIO_EXTRA_PACKAGES", "").split())
    env = dict(os.environ, AIO_EXTRA_PACKAGES=wanted)
    for attempt in range(6):
        proc = subprocess.run(["bash", "-c", ". tools/lib.sh && ensure_packages --no-win"], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if "lock" not in proc.stderr or attempt == 5:
            fail(f"installing packages failed:\n{proc.stderr}")
        say("another apt-get holds the dpkg lock; waiting 20 s")
        time.sleep(20)


def build_programs(names):
    """Compiles the named peer programs into build-bench/ (only those older than their source)."""
    os.makedirs(BUILD, exist_ok=True)
    for name in names:
        source, compiler, libs = PROGRAMS[name]
        src = os.path.join(BENCH, "src", source)
        out = os.path.join(BUILD, name)
        if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        std = ["-std=c++20"] if compiler == "c++" else ["-std=gnu11"]
        cmd = [compiler, *std, "-O2", "-Wall", "-Wextra", "-o", out, src, *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            fail(f"building {name} failed: {' '.join(cmd)}\n{proc.stderr}")


def build_aiocpp():
    """aiocpp's release build (build-release/, configured once), only the tools the bench runs."""
    log = os.path.join(BUILD, "aiocpp-build.log")
    os.makedirs(BUILD, exist_ok=True)
    with open(log, "w") as out:
        if not os.path.exists(os.path.join(RELEASE, "build.ninja")):
            say("configuring build-release (meson setup --buildtype=release -Db_ndebug=true)")
            rc = subprocess.call(["meson", "setup", RELEASE, "--buildtype=release", "-Db_ndebug=true"], cwd=ROOT,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if rc != 0:
                fail(f"meson setup build-release failed; see {log}")
        targets = [f"tools/{t}" for t in AIOCPP_TOOLS]
        rc = subprocess.call(["ninja", "-C", RELEASE, *targets], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    if rc != 0:
        fail(f"building aiocpp's tools in build-release failed; see {log}")


def ensure_certs():
    """The test certificates in build-bench/certs, made again once they are a day old."""
    files = (CERT, KEY, CA)
    if all(os.path.exists(f) for f in files) and time.time() - os.path.getmtime(CA) < CERTS_MAX_AGE_S:
        return
    os.makedirs(CERTS, exist_ok=True)
    proc = subprocess.run([PYTHON, os.path.join(ROOT, "tests", "make_certs.py"), CERTS], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not all(os.path.exists(f) for f in files):
        fail(f"tests/make_certs.py {CERTS} failed:\n{proc.stderr}")


def aiocpp_tool(name, build=RELEASE):
    return os.path.join(build, "tools", name)


def aiocpp_usable_backends(build=RELEASE):
    """The backends aio-info reports usable on this machine ([] if it cannot run)."""
    try:
        proc = subprocess.run([aiocpp_tool("aio-info", build), "--json"], capture_output=True, text=True)
    except OSError:
        return []
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout).get("available", [])


def aiocpp_echo_has_tls(build=RELEASE):
    """Whether the build's aio-echo takes --tls (its --help lists the option)."""
    try:
        proc = subprocess.run([aiocpp_tool("aio-echo", build), "--help"], capture_output=True, text=True)
    except OSError:
        return False
    return proc.returncode == 0 and re.search(r"(^|\s)--tls(?![\w-])", proc.stdout) is not None


class MachineTicks:
    """A cpu line of /proc/stat (all cores, or core `cpu`), to tell steal and other load over a window."""

    def __init__(self, cpu=None):
        label = "cpu" if cpu is None else f"cpu{cpu}"
        with open("/proc/stat") as f:
            v = next([int(x) for x in line.split()[1:9]] for line in f if line.split()[0] == label)
        self.cores = os.cpu_count() if cpu is None else 1
        self.total, self.idle, self.steal = sum(v), v[3] + v[4], v[7]
        self.when = time.monotonic()

    def since(self, start, own_cpu_s=0.0):
        """(steal share, cores busy with other work) between start and self."""
        total = self.total - start.total
        if total <= 0:
            return 0.0, 0.0
        steal = (self.steal - start.steal) / total
        busy = (total - (self.idle - start.idle) - (self.steal - start.steal)) / total * self.cores
        wall = self.when - start.when
        other = busy - (own_cpu_s / wall if wall > 0 else 0)
        return steal, max(other, 0.0)


def set_session_nice(pid, nice):
    """Gives the session led by pid (its scheduler autogroup) the nice level `nice`.

    With autogroups on (Debian's default), the scheduler first shares a core
    fairly between sessions, so a process's own nice value only counts against
    processes of its session: a benchmark competing with other sessions'
    builds needs its session's level raised."""
    if not nice:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as e:
        say(f"cannot set the nice level of session {pid}: {e}")


def disturbance(run, max_steal, max_other):
    """How far over the limits a run went (0: within both)."""
    return max(run.get("steal", 0) / max_steal, run.get("other_cpu", 0) / max_other, 1.0) - 1.0


def versions():
    """Versions of the peers and of the machine, for the results file's meta line."""

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    asio = ""
    try:
        with open("/usr/include/asio/version.hpp") as f:
            m = re.search(r"define ASIO_VERSION (\d+)", f.read())
        if m:
            v = int(m.group(1))
            asio = f"{v // 100000}.{v // 100 % 1000}.{v % 100}"
    except OSError:
        pass
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            tcp_cc = f.read().strip()
    except OSError:
        tcp_cc = ""
    return {
        "aiocpp": out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "libuv": out(["pkg-config", "--modversion", "libuv"]),
        "liburing": out(["pkg-config", "--modversion", "liburing"]),
        "asio": asio,
        "python": out([PYTHON, "-c", "import platform; print(platform.python_version())"]),
        "uvloop": out([PYTHON, "-c", "import uvloop; print(uvloop.__version__)"]),
        "openssl": out(["openssl", "version"]),
        "python_openssl": out([PYTHON, "-c", "import ssl; print(ssl.OPENSSL_VERSION)"]),
        "node": out(["/usr/bin/node", "-p", "process.version + ' (OpenSSL ' + process.versions.openssl + ')'"]),
        "gcc": out(["gcc", "-dumpfullversion"]),
        "kernel": platform.release(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "tcp_cc": tcp_cc,
        "loadavg": loadavg(),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def read_results(paths):
    """(meta lines, result lines) of JSON-lines results files."""
    metas, runs = [], []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                obj = json.loads(line)
                (metas if "meta" in obj else runs).append(obj.get("meta", obj))
    return metas, runs


def median_spread(values):
    """Median and half the min..max range as a share of it (0 for one value)."""
    m = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / m if m else 0.0
    return m, spread


def fmt_count(v):
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def fmt_spread(s):
    return f" ±{s * 100:.0f}%" if s else ""


def table(title, header, rows):
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def append_json(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")
