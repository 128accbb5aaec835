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
AIO_WIN_PACKAGES=(g++-mingw-w64-x86-64-posix wine64 wine)

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
