#!/usr/bin/env bash
# XMPP MUC load, side by side (issue 13): the same tsung scenario (Debian's tsung) against
# perch and Prosody (Debian), one after the other, on loopback, each server started by this
# script in a temp dir and stopped by PID.
#
#   bash bench/xmpp/run.sh                    # 200 users, 20 posters, 60 s, each server once
#   XB_USERS=400 XB_POSTERS=40 XB_DURATION=60 XB_RUNS=2 bash bench/xmpp/run.sh
#
# Scenario (bench/xmpp/muc.xml.in): every user connects on the STARTTLS port, upgrades with
# STARTTLS, signs in with SASL PLAIN (inside TLS), binds a resource, asks for a session and
# joins the one room. The last XB_POSTERS users to arrive post once a second (stamped
# bodies of XB_SIZE bytes) for XB_DURATION seconds; the others wait as long. Then everyone
# waits XB_SETTLE s for the last deliveries, leaves the room and closes.
#
# Variables: XB_USERS (200), XB_POSTERS (20), XB_DURATION (60), XB_RATE (arrivals/s, 25),
# XB_SIZE (64), XB_SETTLE (5), XB_RUNS (1), XB_SERVERS ("perch prosody"), XB_MAX_LOAD (1.0)
# and XB_LOAD_WAIT (600 s: each run first waits, that long at most, for the 1-minute load to
# drop below XB_MAX_LOAD), PERCH (target/release/perch), XB_KEEP=1 (keep the
# work dir). Output: a table per run on stdout and in $XB_OUT (bench/xmpp/last-run.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
USERS="${XB_USERS:-200}" POSTERS="${XB_POSTERS:-20}" DURATION="${XB_DURATION:-60}"
RATE="${XB_RATE:-25}" SIZE="${XB_SIZE:-64}" SETTLE="${XB_SETTLE:-5}" RUNS="${XB_RUNS:-1}"
SERVERS="${XB_SERVERS:-perch prosody}"
XB_OUT="${XB_OUT:-$HERE/last-run.md}"
PW=bench-xmpp-pw
DOMAIN=example.test
MUC="conference.$DOMAIN"
# The conformance helpers: log, apt_install, free_ports, port_open, and PERCH (the release
# binary unless set). Its EXIT trap is replaced by this script's own below.
# shellcheck source=../../conformance/lib.sh
source "$ROOT/conformance/lib.sh"
# shellcheck source=prosody.sh
source "$HERE/prosody.sh"
export DEBIAN_FRONTEND=noninteractive NO_COLOR=1
wait_port() { # wait_port PID PORT: until PORT accepts, 20 s at most, while PID lives
    local i
    for i in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 1
        port_open "$2" && return 0
        sleep 0.2
    done
    return 1
}
SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-xbench.XXXXXX")"
cleanup() { stop_server; [ "${XB_KEEP:-0}" = 1 ] && log "work dir kept: $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_install tsung prosody openssl
[ -x "$PERCH" ] || { log "no perch binary at $PERCH"; exit 1; }
ulimit -n 65536 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }  # utime+stime of the process
# users file for tsung: name;password;poster (the last POSTERS users post)
for i in $(seq 1 "$USERS"); do
    echo "user$i;$PW;$([ "$i" -gt $((USERS - POSTERS)) ] && echo 1 || echo 0)"
done >"$WORK/users.csv"

# ---- perch --------------------------------------------------------------------------------
setup_perch() { # sets PORT ROOM SERVER_PID
    local d="$WORK/perch" admin i
    rm -rf "$d"; mkdir -p "$d"
    read -r PORT SIPPORT < <(free_ports 2)
    cat >"$d/perch.toml" <<TOML
# written by bench/xmpp/run.sh: limits lifted as in bench/perch-bench.toml
domain = "$DOMAIN"
[listen]
tls = "127.0.0.1:$SIPPORT"
[tls]
dev_cert_names = ["$DOMAIN", "$MUC"]
[xmpp]
listen = "127.0.0.1:$PORT"
[limits]
requests_per_second = 100000
request_burst = 100000
requests_per_second_per_user = 100000
request_burst_per_user = 100000
max_connections = 50000
max_connections_per_address = 4096
[auth]
challenges_per_second_per_address = 1000000
challenges_per_second_per_network = 1000000
[log]
level = "warn"
TOML
    "$PERCH" init --config "$d/perch.toml" --data "$d/data" >"$d/init.log" 2>&1
    admin=("$PERCH" admin --config "$d/perch.toml" --data "$d/data")
    for i in $(seq 1 "$USERS"); do
        "${admin[@]}" user add "user$i@$DOMAIN" --password-stdin <<<"$PW" >/dev/null
    done
    "${admin[@]}" category create BenchCategory >/dev/null
    "${admin[@]}" category set BenchCategory --add-allowed "domain:$DOMAIN" >/dev/null
    "${admin[@]}" room create Bench --category BenchCategory --privacy open >/dev/null
    "${admin[@]}" room show Bench >"$d/room.txt"
    # the room's JID is <uid>@conference.<domain>; the uid ends the uri `room show` prints
    ROOM="$(sed -n 's|^uri: ma-chan://[^/]*/\([0-9A-Za-z-]\+\)$|\1|p' "$d/room.txt" | head -1)"
    [ -n "$ROOM" ] || { log "no uid in perch admin room show:"; cat "$d/room.txt" >&2; return 1; }
    "$PERCH" serve --config "$d/perch.toml" --data "$d/data" >"$d/perch.log" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_port "$SERVER_PID" "$PORT" || { log "perch did not listen:"; tail -5 "$d/perch.log" >&2; return 1; }
}

# ---- Prosody ------------------------------------------------------------------------------
AS_PROSODY=()
setup_prosody() { # sets PORT ROOM SERVER_PID
    local p="$WORK/prosody" i
    rm -rf "$p"; mkdir -p "$p/data"
    read -r PORT < <(free_ports 1)
    # ECDSA P-256, as perch's generated certificate (rcgen), so the handshakes cost the same
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$DOMAIN" \
        -addext "subjectAltName=DNS:$DOMAIN,DNS:$MUC" -keyout "$p/key.pem" -out "$p/cert.pem" >/dev/null 2>&1
    write_prosody_config "$p" "$PORT"
    if [ "$(id -u)" = 0 ] && id prosody >/dev/null 2>&1; then
        AS_PROSODY=(setpriv --reuid=prosody --regid=prosody --init-groups --)
        chmod 711 "$WORK"
        chown -R prosody: "$p"
    fi
    # prosodyctl register takes ~0.3 s a user: the accounts are made once, then copied
    if [ ! -d "$WORK/prosody-accounts" ]; then
        for i in $(seq 1 "$USERS"); do echo "$i"; done |
            xargs -P 2 -I{} "${AS_PROSODY[@]}" prosodyctl --config "$p/prosody.cfg.lua" register "user{}" "$DOMAIN" "$PW" \
                >>"$p/prosodyctl.log" 2>&1
        cp -a "$p/data" "$WORK/prosody-accounts"
    else
        rm -rf "$p/data"; cp -a "$WORK/prosody-accounts" "$p/data"
    fi
    [ "$(ls "$p/data/example%2etest/accounts" | wc -l)" = "$USERS" ] ||
        { log "prosody: $(ls "$p/data/example%2etest/accounts" | wc -l) accounts, not $USERS"; return 1; }
    "${AS_PROSODY[@]}" prosody --config "$p/prosody.cfg.lua" >"$p/prosody.stdout" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_port "$SERVER_PID" "$PORT" || { log "prosody did not listen:"; tail -5 "$p/prosody.stdout" "$p/prosody.log" >&2; return 1; }
    ROOM=bench
    # the room exists, persistent and unlocked, before the run
    "${AS_PROSODY[@]}" prosodyctl --config "$p/prosody.cfg.lua" shell <<<"muc:create(\"$ROOM@$MUC\")" \
        >"$p/muc-create.log" 2>&1 || true
    grep -q "Result: MUC room ($ROOM@$MUC)" "$p/muc-create.log" ||
        log "prosody: muc:create did not answer as expected (the first join makes the room, unlocked): $(tail -2 "$p/muc-create.log" | tr '\n' ' ')"
}

# wait_quiet: until the 1-minute load is below XB_MAX_LOAD (1.0), at most XB_LOAD_WAIT s
# (600); the load each run started at is in the table either way.
wait_quiet() {
    local waited=0 l
    while l="$(cut -d' ' -f1 /proc/loadavg)"; awk -v l="$l" -v m="${XB_MAX_LOAD:-1.0}" 'BEGIN{exit !(l >= m)}'; do
        if [ "$waited" -ge "${XB_LOAD_WAIT:-600}" ]; then
            log "load still $l after ${waited}s: measuring anyway (the table shows it)"; return 0
        fi
        [ $((waited % 30)) = 0 ] && log "load $l >= ${XB_MAX_LOAD:-1.0}: waiting"
        sleep 5; waited=$((waited + 5))
    done
}

# ---- one run ------------------------------------------------------------------------------
run_one() { # run_one SERVER N
    local server="$1" n="$2" dir="$WORK/$1-$2" t0 c0 c1 t1 rc=0 arrival load1
    mkdir -p "$dir"
    "setup_$server" || { log "$server: setup failed"; return 1; }
    # arrivals are random (exponential gaps): the phase gets slack, maxnumber caps the users
    arrival=$(( 2 * ((USERS + RATE - 1) / RATE) + 2 ))
    sed -e "s|@PORT@|$PORT|g" -e "s|@ROOM@|$ROOM|g" -e "s|@MUC@|$MUC|g" -e "s|@DOMAIN@|$DOMAIN|g" \
        -e "s|@USERS@|$USERS|g" -e "s|@RATE@|$RATE|g" -e "s|@ARRIVAL@|$arrival|g" \
        -e "s|@DURATION@|$DURATION|g" -e "s|@SIZE@|$SIZE|g" -e "s|@SETTLE@|$SETTLE|g" \
        -e "s|@WAIT@|$((DURATION + arrival + 2))|g" -e "s|@USERSCSV@|$WORK/users.csv|g" \
        -e "s|@MAXDUR@|$((DURATION + 3 * arrival + SETTLE + 120))|g" \
        "$HERE/muc.xml.in" >"$dir/muc.xml"
    wait_quiet
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    log "$server run $n: pid $SERVER_PID, port $PORT, room $ROOM@$MUC, load $load1"
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
    # the server's CPU ticks twice a second, for the steady window (all joined, all posting)
    ( while kill -0 "$SERVER_PID" 2>/dev/null; do
          echo "$(date +%s.%N) $(cpu_ticks "$SERVER_PID" 2>/dev/null || echo -)"; sleep 0.5
      done ) >"$dir/cpu.log" 2>/dev/null &
    local sampler=$!
    timeout -k 10 $((DURATION + 3 * arrival + SETTLE + 180)) \
        tsung -f "$dir/muc.xml" -l "$dir/log" start >"$dir/tsung.out" 2>&1 </dev/null || rc=$?
    t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID")
    local rss hwm
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
    hwm=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status")
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    stop_server
    [ "$rc" = 0 ] || log "$server run $n: tsung exited $rc: $(tail -3 "$dir/tsung.out" | tr '\n' ' ')"
    local logdir; logdir="$(find "$dir/log" -mindepth 1 -maxdepth 1 -type d | head -1)"
    python3 "$HERE/summarize.py" --server "$server" --run "$n" --logdir "$logdir" \
        --cpu-s "$(echo "($c1 - $c0) / $CLK_TCK" | bc -l)" --wall-s "$(echo "$t1 - $t0" | bc -l)" \
        --rss-kib "$rss" --hwm-kib "$hwm" --load "$load1" --users "$USERS" --posters "$POSTERS" \
        --duration "$DURATION" --cpu-log "$dir/cpu.log" --t0 "$t0" --clk-tck "$CLK_TCK" \
        --steady-from "$arrival" --steady-to "$DURATION" --json "$WORK/summary.jsonl"
    [ "${XB_KEEP:-0}" = 1 ] || true
}

log "tsung $(dpkg-query -W -f='${Version}' tsung), prosody $(dpkg-query -W -f='${Version}' prosody), perch $PERCH"
log "users $USERS, posters $POSTERS at 1/s for ${DURATION}s, body ${SIZE} B, arrivals ${RATE}/s"
for n in $(seq 1 "$RUNS"); do
    for s in $SERVERS; do
        run_one "$s" "$n" || true
    done
done
[ -s "$WORK/summary.jsonl" ] || { log "no run finished"; exit 1; }
python3 "$HERE/summarize.py" --table "$WORK/summary.jsonl" | tee "$XB_OUT"
