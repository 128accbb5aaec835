# shellcheck shell=bash
# Shared helpers for tools/test and tools/demo. Source it after
#   cd "$(dirname "$0")/.."
# so that every path below is relative to the repository root.

export AIO_ROOT
AIO_ROOT=$(pwd -P)

# Optional kqueue backend on Linux, through libkqueue: an install whose
# lib/pkgconfig is AIO_LIBKQUEUE (default /opt/libkqueue/lib/pkgconfig), or
# the source tree AIO_LIBKQUEUE_SRC, which ensure_libkqueue builds once into
# a cache outside the clone. Either is picked up only if present.
use_libkqueue() {
    local pc=$1
    export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    local lib
    lib=$(dirname "$pc")
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    AIO_KQUEUE_PC=$pc
}
AIO_KQUEUE_PC=
AIO_LIBKQUEUE=${AIO_LIBKQUEUE:-/opt/libkqueue/lib/pkgconfig}
[ -d "$AIO_LIBKQUEUE" ] && use_libkqueue "$AIO_LIBKQUEUE"

# ensure_libkqueue: with AIO_LIBKQUEUE_SRC set, build and install libkqueue
# with CMake into $AIO_LIBKQUEUE_CACHE (default ~/.cache/aiocpp-libkqueue-VERSION),
# unless it is there already, and use it. Needs cmake (ensure_packages adds
# it when AIO_LIBKQUEUE_SRC is set). A no-op without AIO_LIBKQUEUE_SRC.
ensure_libkqueue() {
    [ -n "${AIO_LIBKQUEUE_SRC:-}" ] || return 0
    local src version prefix
    if ! src=$(cd "$AIO_LIBKQUEUE_SRC" 2> /dev/null && pwd -P) || [ ! -f "$src/CMakeLists.txt" ]; then
        echo "AIO_LIBKQUEUE_SRC=$AIO_LIBKQUEUE_SRC is not a libkqueue source tree" >&2
        return 1
    fi
    version=$(sed -n 's/^set(PROJECT_VERSION \([0-9.]*\))/\1/p' "$src/CMakeLists.txt" | head -n 1)
    prefix=${AIO_LIBKQUEUE_CACHE:-$HOME/.cache/aiocpp-libkqueue-${version:-unknown}}
    mkdir -p "$(dirname "$prefix")"
    (
        # Several clones may run ./tools/test at once: one builds, the others wait.
        flock 9
        [ -f "$prefix/lib/pkgconfig/libkqueue.pc" ] && exit 0
        local bld=$prefix.build log=$prefix.log
        rm -rf "$bld" "$prefix"
        run_quiet "$log" cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
            -DENABLE_TESTING=OFF -DENABLE_STATIC=OFF &&
            run_quiet "$log" cmake --build "$bld" -j "$(nproc)" &&
            run_quiet "$log" cmake --install "$bld" || exit 1
        rm -rf "$bld" "$log"
    ) 9> "$prefix.lock" || return 1
    use_libkqueue "$prefix/lib/pkgconfig"
}

# The OpenSSL of the Windows build (TLS): Debian has none for MinGW, so
# ensure_mingw_openssl cross-builds static libssl/libcrypto from Debian's own
# `openssl` source package (its upstream tarball with Debian's patches, the
# security fixes among them), the version of this machine's libssl-dev, into
# ${AIO_MINGW_OPENSSL_CACHE:-~/.cache}/aiocpp-openssl-mingw-VERSION, once (a
# few minutes; later runs find it there and touch no network). It sets
# AIO_MINGW_OPENSSL to that prefix (include/, lib/libssl.a, lib/libcrypto.a,
# lib/pkgconfig/) for meson's -Dopenssl_dir. If the source cannot be fetched
# or built it says why and returns 1: ./tools/test then builds the Windows
# suites without TLS.
ensure_mingw_openssl() {
    AIO_MINGW_OPENSSL=
    local version base stem prefix
    # shellcheck disable=SC2016  # dpkg-query's field, not a shell variable
    if ! version=$(dpkg-query -W -f='${source:Version}' libssl-dev 2> /dev/null) || [ -z "$version" ]; then
        echo "mingw-openssl: libssl-dev is not installed (its Debian version names the source to build)" >&2
        return 1
    fi
    base=${AIO_MINGW_OPENSSL_CACHE:-$HOME/.cache}
    stem=$base/aiocpp-openssl-mingw
    mkdir -p "$base" || return 1
    # Several clones may run ./tools/test at once: one builds, the others wait.
    prefix=$( (
        flock 9
        mingw_openssl_locked "$stem" "$version"
    ) 9> "$stem.lock") || return 1
    AIO_MINGW_OPENSSL=$prefix
}

# mingw_openssl_prefix STEM DEBIAN_VERSION: the cache directory of that version.
mingw_openssl_prefix() {
    echo "$1-${2//[^A-Za-z0-9.+-]/_}"
}

# mingw_openssl_cached STEM DEBIAN_VERSION: prints the complete build that
# serves that libssl-dev version: its own, or the one recorded in
# PREFIX.use when the archive no longer had that version.
mingw_openssl_cached() {
    local prefix used
    prefix=$(mingw_openssl_prefix "$1" "$2")
    if [ -f "$prefix/aiocpp-complete" ]; then
        echo "$prefix"
    elif [ -f "$prefix.use" ] && used=$(cat "$prefix.use") && [ -f "$used/aiocpp-complete" ]; then
        echo "$used"
    else
        return 1
    fi
}

# mingw_openssl_locked STEM DEBIAN_VERSION: ensure_mingw_openssl's work,
# under its lock; prints the prefix. Works in STEM.work, kept on failure.
mingw_openssl_locked() {
    local stem=$1 version=$2 prefix
    mingw_openssl_cached "$stem" "$version" && return 0
    local work=$stem.work
    rm -rf "$work"
    mkdir -p "$work" || return 1
    mingw_openssl_fetch "$work" "$version" || return 1
    local found
    found=$(sed -n 's/^Version: //p' "$work"/src/openssl_*.dsc | head -n 1)
    prefix=$(mingw_openssl_prefix "$stem" "$found")
    if [ ! -f "$prefix/aiocpp-complete" ]; then
        mingw_openssl_build "$work" "$prefix" || {
            echo "mingw-openssl: the MinGW build of OpenSSL $found failed (files in $work)" >&2
            return 1
        }
    fi
    # Another version than libssl-dev's: remembered, so that the next run
    # finds it without asking the archive again.
    [ "$found" = "$version" ] || echo "$prefix" > "$(mingw_openssl_prefix "$stem" "$version").use"
    rm -rf "$work"
    echo "$prefix"
}

# mingw_openssl_fetch WORK DEBIAN_VERSION: Debian's openssl source package
# into WORK/src, through apt with a private configuration in WORK/apt: its own
# deb-src list (the system's Debian entries, as deb-src), state and cache, so
# that the system's apt is left as it was.
mingw_openssl_fetch() {
    local work=$1 version=$2 apt=$1/apt codename
    # shellcheck disable=SC1091  # the system's, not ours
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    mkdir -p "$apt/sources.list.d" "$apt/state/lists/partial" "$apt/cache/archives/partial" || return 1
    : > "$apt/sources.list"
    if ! python3 - "$codename" > "$apt/sources.list.d/debian.sources" <<'PY'; then
import glob, re, sys

# The system's entries for this Debian release (CODENAME, -updates,
# -security) as deb-src stanzas, main only; others (third-party archives)
# usually have no sources and would fail the update.
codename = sys.argv[1]
wanted = {codename, codename + "-updates", codename + "-security"}
stanzas = []


def add(uris, suites, signed_by):
    suites = [s for s in suites if s in wanted]
    if codename and uris and suites:
        stanza = f"Types: deb-src\nURIs: {' '.join(uris)}\nSuites: {' '.join(suites)}\nComponents: main\n"
        stanzas.append(stanza + (f"Signed-By: {signed_by}\n" if signed_by else ""))


for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)", line.split("#", 1)[0])
        if m and "main" in m.group(4).split():
            options = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            add([m.group(2)], [m.group(3)], options.get("signed-by"))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in re.split(r"\n[ \t]*\n", open(path).read()):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line   # a continuation (an inline key)
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if (fields.get("enabled", "yes").lower() != "no" and "deb" in fields.get("types", "").split()
                and "main" in fields.get("components", "").split()):
            add(fields.get("uris", "").split(), fields.get("suites", "").split(), fields.get("signed-by"))
if not stanzas:
    sys.exit(f"no entry for Debian {codename or '(unknown release)'} with main in /etc/apt/sources.list*")
print("\n".join(stanzas), end="")
PY
        echo "mingw-openssl: no Debian archive found in /etc/apt/sources.list*" >&2
        return 1
    fi
    # Read after the system's apt.conf.d (its proxy settings apply); the
    # #clear lines keep the system's update and dpkg hooks from running.
    cat > "$apt/apt.conf" <<EOF
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/sources.list.d";
Dir::State "$apt/state";
Dir::Cache "$apt/cache";
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Post-Invoke;
Acquire::Retries "2";
EOF
    # As root apt downloads as _apt, who cannot enter a cache under /root.
    [ "$(id -u)" -eq 0 ] && echo 'APT::Sandbox::User "root";' >> "$apt/apt.conf"
    local get=(apt-get -q -c "$apt/apt.conf")
    if ! run_quiet "$work/update.log" "${get[@]}" update; then
        echo "mingw-openssl: apt-get update with Debian's deb-src entries failed (files in $work)" >&2
        return 1
    fi
    # This machine's version; if the archive has it no more (or a mirror
    # lacks some of its files), the newest of the others that downloads.
    local candidates=("$version") v
    mapfile -t -O 1 candidates < <(
        apt-cache -c "$apt/apt.conf" showsrc openssl 2> /dev/null | sed -n 's/^Version: //p' | sort -u -r -V | grep -v -x -F "$version")
    for v in "${candidates[@]}"; do
        rm -rf "$work/src"
        mkdir -p "$work/src" || return 1
        if (cd "$work/src" && "${get[@]}" source --download-only "openssl=$v") >> "$work/source.log" 2>&1 < /dev/null; then
            return 0
        fi
    done
    echo "mingw-openssl: apt-get source openssl failed for ${candidates[*]} (log: $work/source.log)" >&2
    return 1
}

# mingw_openssl_build WORK PREFIX: unpack the source package in WORK/src
# (upstream tarball, then Debian's patches in their series order), configure
# it for mingw64 (static, no tests), build the libraries and install them
# with the headers and pkg-config files into PREFIX. Output in WORK/build.log.
mingw_openssl_build() {
    local work=$1 prefix=$2 tree=$1/openssl log=$1/build.log orig debian patch
    orig=$(find "$work/src" -maxdepth 1 -name 'openssl_*.orig.tar.*' ! -name '*.asc' | head -n 1)
    debian=$(find "$work/src" -maxdepth 1 -name 'openssl_*.debian.tar.*' | head -n 1)
    if [ -z "$orig" ] || [ -z "$debian" ]; then
        echo "mingw-openssl: no orig or debian tarball in $work/src" >&2
        return 1
    fi
    rm -rf "$tree" "$prefix"
    mkdir -p "$tree" && tar -xf "$orig" -C "$tree" --strip-components=1 && tar -xf "$debian" -C "$tree" || return 1
    if [ -f "$tree/debian/patches/series" ]; then
        while read -r patch _; do
            case $patch in '' | '#'*) continue ;; esac
            run_quiet "$log" patch -d "$tree" -p1 --batch --forward -i "debian/patches/$patch" || return 1
        done < "$tree/debian/patches/series"
    fi
    # The compiler of tools/mingw-w64-x86_64.txt (posix threads).
    (cd "$tree" && run_quiet "$log" ./Configure mingw64 no-shared no-tests \
        --cross-compile-prefix=x86_64-w64-mingw32- CC=gcc-posix \
        --prefix="$prefix" --libdir=lib) &&
        run_quiet "$log" make -C "$tree" -j "$(nproc)" build_libs &&
        run_quiet "$log" make -C "$tree" install_dev || return 1
    touch "$prefix/aiocpp-complete"
}

# How many trailing log lines to show when something fails (0 = whole log).
AIO_LOG_LINES=${AIO_LOG_LINES:-300}

# show_log FILE: print (the tail of) a log file to stderr.
show_log() {
    local log=$1
    [ -f "$log" ] || return 0
    local n
    n=$(wc -l < "$log")
    if [ "$AIO_LOG_LINES" -gt 0 ] && [ "$n" -gt "$AIO_LOG_LINES" ]; then
        echo "... (last $AIO_LOG_LINES of $n lines; full log: $log)" >&2
        tail -n "$AIO_LOG_LINES" "$log" >&2
    else
        cat "$log" >&2
    fi
}

# run_quiet LOG CMD...: run CMD with all output going to LOG; on failure print
# the command and the log to stderr. Returns CMD's exit status.
run_quiet() {
    local log=$1 rc=0
    shift
    mkdir -p "$(dirname "$log")"
    "$@" > "$log" 2>&1 < /dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAILED (exit $rc): $*" >&2
        show_log "$log"
    fi
    return "$rc"
}

# as_root CMD...: run CMD as root (sudo only when not root already).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

AIO_PACKAGES=(meson ninja-build g++ pkg-config libssl-dev doctest-dev libcli11-dev
              nlohmann-json3-dev liburing-dev python3 python3-cryptography openssl)
# wine64 alone does not pull in /usr/bin/wine + wineboot (only "Recommends: wine").
# make and perl build the MinGW OpenSSL (ensure_mingw_openssl).
AIO_WIN_PACKAGES=(g++-mingw-w64-x86-64-posix wine64 wine make perl)

# ensure_packages [--no-win]: apt-get install whatever is missing (nothing if all present).
# --no-win (or AIO_TEST_SKIP_WIN=1) leaves out the MinGW/wine packages.
# Extra packages can be added with AIO_EXTRA_PACKAGES="a b".
ensure_packages() {
    local want=("${AIO_PACKAGES[@]}") missing=() p
    if [ "${1:-}" != --no-win ] && [ "${AIO_TEST_SKIP_WIN:-0}" != 1 ]; then
        want+=("${AIO_WIN_PACKAGES[@]}")
    fi
    # shellcheck disable=SC2206
    want+=(${AIO_EXTRA_PACKAGES:-})
    [ -n "${AIO_LIBKQUEUE_SRC:-}" ] && want+=(cmake)
    command -v dpkg-query > /dev/null || return 0   # not Debian: assume tools are there
    for p in "${want[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/aiocpp-apt.XXXXXX.log")
    run_quiet "$log" as_root apt-get update -qq || return 1
    run_quiet "$log" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" || return 1
    rm -f "$log"
}

# configure BUILD_DIR [meson setup args...]: meson setup, unless BUILD_DIR is
# already set up with the same arguments and environment (then nothing); a
# directory set up differently is wiped and set up again. Output goes to
# BUILD_DIR/setup.log, shown on failure.
configure() {
    local dir=$1
    shift
    # What the setup depends on besides its arguments: the compiler chosen by
    # the environment and where pkg-config looks (libkqueue comes and goes).
    local signature
    signature=$(printf '%s\n' "$@" "CC=${CC:-}" "CXX=${CXX:-}" "PKG_CONFIG_PATH=${PKG_CONFIG_PATH:-}")
    if [ -f "$dir/build.ninja" ] && [ -f "$dir/aio-setup-args" ] &&
        [ "$(cat "$dir/aio-setup-args")" = "$signature" ]; then
        return 0
    fi
    local extra=()
    # A configured dir refuses a plain re-setup; --wipe starts it afresh.
    [ -f "$dir/meson-private/coredata.dat" ] && extra=(--wipe)
    mkdir -p "$dir"
    rm -f "$dir/aio-setup-args"
    run_quiet "$dir/setup.log" meson setup "${extra[@]}" "$dir" "$@" || return 1
    printf '%s\n' "$signature" > "$dir/aio-setup-args"
}

# build BUILD_DIR: ninja, output in BUILD_DIR/build.log, shown on failure.
build() {
    local dir=$1
    run_quiet "$dir/build.log" ninja -C "$dir"
}

# ensure_wine_prefix: create (once) and export a dedicated 64-bit wine prefix.
ensure_wine_prefix() {
    export WINEPREFIX=${AIO_WINEPREFIX:-$HOME/.cache/aiocpp-wine}
    export WINEDEBUG=-all   # also silences Debian's "wine32 is missing" hint
    if [ ! -f "$WINEPREFIX/system.reg" ]; then
        mkdir -p "$(dirname "$WINEPREFIX")"
        local log=${WINEPREFIX%/}.wineboot.log
        # mscoree/mshtml disabled: no Mono/Gecko install attempts; DISPLAY unset: no dialogs.
        run_quiet "$log" env WINEARCH=win64 DISPLAY= WAYLAND_DISPLAY= \
            WINEDLLOVERRIDES='mscoree,mshtml=' wineboot -i || return 1
        run_quiet "$log.wait" wineserver -w || true
        rm -f "$log" "$log.wait"
    fi
}

# wine_session_start / wine_session_stop: keep one wineserver (and wine's background
# services) running for the whole Windows build+test. Otherwise the first wine process
# of each test spawns services.exe/explorer.exe that inherit the test's stdout pipe,
# and meson waits for them: +3 s per run, or a timeout with a persistent server.
# Needs ensure_wine_prefix first.
wine_session_start() {
    # A server left running for this prefix (an interrupted run, a hand-started
    # `wineserver -p`) makes -p fail: stop it and start ours.
    if ! wineserver -p < /dev/null > /dev/null 2>&1; then
        wineserver -k < /dev/null > /dev/null 2>&1 || true
        wineserver -w < /dev/null > /dev/null 2>&1 || true
        wineserver -p < /dev/null > /dev/null 2>&1 || return 1
    fi
    AIO_WINE_SESSION=1
    env DISPLAY= WAYLAND_DISPLAY= wine cmd /c exit < /dev/null > /dev/null 2>&1 || true
}
wine_session_stop() {
    if [ -n "${AIO_WINE_SESSION:-}" ]; then
        wineserver -k < /dev/null > /dev/null 2>&1 || true
        AIO_WINE_SESSION=
    fi
}
