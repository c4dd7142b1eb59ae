# Shared helpers for the conformance scripts (sourced, not run).
#
# Sets: ROOT (repo root), CONF (conformance/), RESULTS (conformance/results/), PERCH (binary:
# $PERCH if set, else release/perch under $CARGO_TARGET_DIR or target/).
# Provides: log, build_perch, start_perch CONFIG DATA LOGFILE, stop_perch, apt_install PKG...,
# free_ports N, port_open PORT.
# Sourcing this installs the traps that run conformance_cleanup however a suite ends.

CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$CONF/.." && pwd)"
RESULTS="$CONF/results"
_target="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$_target" in /*) ;; *) _target="$ROOT/$_target" ;; esac  # cargo runs in $ROOT
PERCH="${PERCH:-$_target/release/perch}"
unset _target
mkdir -p "$RESULTS"

# perch reads every PERCH_* environment variable as a configuration override (PERCH_DOMAIN,
# PERCH_TRUSTED_NETWORKS, ...). Clear them so the config each script writes is what runs.
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^PERCH_' || true)

export NO_COLOR=1                       # plain log lines, so they can be grepped
export DEBIAN_FRONTEND=noninteractive

PERCH_PID=""
CLEANUP_DIRS=()

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Elapsed whole seconds since $1 (a `date +%s` value).
since() { echo $(( $(date +%s) - $1 )); }

apt_install() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    log "installing:$missing"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
}

# free_ports N: N loopback TCP ports free at the moment (for servers that cannot take port 0).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# port_open PORT: whether something accepts on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Builds target/release/perch (a no-op when it is up to date). CONFORMANCE_SKIP_BUILD=1 uses
# the binary as it is.
build_perch() {
    if [ "${CONFORMANCE_SKIP_BUILD:-0}" != 1 ] && command -v cargo >/dev/null 2>&1; then
        log "cargo build --release (perch)"
        (cd "$ROOT" && cargo build --release --quiet) || { log "cargo build failed"; return 1; }
    fi
    [ -x "$PERCH" ] || { log "no perch binary at $PERCH"; return 1; }
}

# start_perch CONFIG DATA LOGFILE: starts perch in the background and waits until every
# listener in the config is up. Sets PERCH_TLS_ADDR / PERCH_TCP_ADDR (host:port as bound;
# configs use port 0 so the kernel picks free ports).
start_perch() {
    local config="$1" data="$2" logfile="$3" want_tcp=0 i
    grep -Eq '^[[:space:]]*tcp[[:space:]]*=' "$config" && want_tcp=1
    # Created here, so the polling below never reads a file the background redirect has
    # not made yet.
    : >"$logfile"
    RUST_LOG="${CONFORMANCE_RUST_LOG:-perch=debug}" "$PERCH" serve --config "$config" --data "$data" \
        >"$logfile" 2>&1 </dev/null &
    PERCH_PID=$!
    PERCH_TLS_ADDR="" PERCH_TCP_ADDR=""
    for i in $(seq 1 100); do
        if ! kill -0 "$PERCH_PID" 2>/dev/null; then
            log "perch exited during start-up:"; tail -20 "$logfile" >&2; PERCH_PID=""; return 1
        fi
        PERCH_TLS_ADDR="$(sed -n 's/.*listening for SIP over TLS addr=\([^ ]*\).*/\1/p' "$logfile" | head -1)"
        PERCH_TCP_ADDR="$(sed -n 's/.*listening for SIP over plain TCP addr=\([^ ]*\).*/\1/p' "$logfile" | head -1)"
        if [ -n "$PERCH_TLS_ADDR" ] && { [ "$want_tcp" = 0 ] || [ -n "$PERCH_TCP_ADDR" ]; }; then
            log "perch pid $PERCH_PID listening: tls=$PERCH_TLS_ADDR tcp=${PERCH_TCP_ADDR:-off}"
            return 0
        fi
        sleep 0.2
    done
    log "perch did not report its listeners within 20 s:"; tail -20 "$logfile" >&2
    return 1
}

stop_perch() {
    [ -n "$PERCH_PID" ] || return 0
    if kill -0 "$PERCH_PID" 2>/dev/null; then
        kill -TERM "$PERCH_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$PERCH_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$PERCH_PID" 2>/dev/null || true
    fi
    wait "$PERCH_PID" 2>/dev/null || true
    PERCH_PID=""
}

conformance_cleanup() {
    stop_perch
    local d
    for d in "${CLEANUP_DIRS[@]+"${CLEANUP_DIRS[@]}"}"; do
        [ -n "$d" ] && rm -rf "$d"
    done
}

# Every suite cleans up however it ends.
trap conformance_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
