#!/usr/bin/env bash
# XMPP saturation ramps, side by side (issue 13): perch, Prosody 0.12 and ejabberd 23.01
# (both Debian), each started by this script on loopback in a temp dir, pinned to CPU 0
# (taskset); tsung (Debian), the delivery observer (observe.py) and the samplers run on
# CPU 1. For each server and scenario the offered post rate rises step by step until the
# server no longer keeps up (or the generator cannot offer the step).
#
#   taskset -c 1 bash bench/xmpp/ramp.sh
#   XR_SERVERS="perch ejabberd" XR_SCENARIOS=fanout XR_RUNS=2 bash bench/xmpp/ramp.sh
#
# Scenarios (one tsung run per step, bench/xmpp/ramp.xml.in; the server runs through the
# whole ramp of a scenario, its data and archive growing from step to step):
#   fanout: one room; XR_FO_USERS tsung users (the last XR_FO_POSTERS of them post) plus
#           XR_FO_OBS observer sessions; each post goes to every occupant.
#   ingest: XR_IN_ROOMS rooms of XR_IN_PER_ROOM tsung users, every one posting to its own
#           room, plus one observer session per room; each post is echoed to its room.
#   fanpy:  fan-out with Python receivers: XR_FP_POSTERS tsung posters, XR_FO_OBS observer
#           sessions and counting-only receivers (observe.py --bulk) for the rest of
#           XR_FO_USERS, so that tsung does not have to receive the fan-out (XR_FP_STEPS).
# Every tsung user signs in (STARTTLS, SASL PLAIN, bind, session) and joins at
# XR_ARRIVAL users/s; posting starts for all at one instant (GO) after everyone could join,
# lasts XR_DURATION s at the step's total rate (posts/s, spread evenly over the posters),
# then XR_SETTLE s for late deliveries.
#
# A step is kept up when: every tsung user signed in and joined; the observers received
# >= 99 % of the deliveries they were due (posts to their room) by the end of the settle
# time; and the p99 post -> receive latency over those deliveries is under 1 s. A step whose
# posts went out slower than 90 % of the nominal rate (stamps' span) is generator-limited.
# The ramp of a scenario stops after the first step that is not kept up or is
# generator-limited.
#
# Variables: XR_SERVERS ("perch prosody ejabberd"), XR_SCENARIOS ("fanout ingest"),
# XR_RUNS (1: each run goes through every server, alternating), XR_FO_STEPS, XR_IN_STEPS
# (total posts/s), XR_FO_USERS (196), XR_FO_POSTERS (20), XR_FO_OBS (4), XR_IN_ROOMS (50),
# XR_IN_PER_ROOM (4), XR_DURATION (15), XR_SETTLE (5), XR_ARRIVAL (25), XR_SIZE (64),
# XR_MAX_LOAD / XR_LOAD_WAIT (each step waits, XR_LOAD_WAIT s at most, for the 1-minute
# load to fall below XR_MAX_LOAD; default no wait), XR_BUILD_WAIT (s a step waits at most for
# builds at nice < 5 to end; 0), XR_FP_POSTERS (4), XR_WAIT_FUZZ=1 (each step first waits
# until no xmpp_stream/xmpp_c2s fuzzer runs), PERCH (binary), XR_KEEP=1 (keep the work dir),
# XR_OUT (summaries, JSON lines; default the work dir's steps.jsonl).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../conformance/lib.sh
source "$ROOT/conformance/lib.sh"
# shellcheck source=prosody.sh
source "$HERE/prosody.sh"
export DEBIAN_FRONTEND=noninteractive NO_COLOR=1

SERVERS="${XR_SERVERS:-perch prosody ejabberd}"
SCENARIOS="${XR_SCENARIOS:-fanout ingest}"
RUNS="${XR_RUNS:-1}"
FO_STEPS="${XR_FO_STEPS:-10 20 40 60 80 120 160 240 320}"
IN_STEPS="${XR_IN_STEPS:-25 50 100 200 400 800 1200 1600 2400 3200}"
FO_USERS="${XR_FO_USERS:-196}" FO_POSTERS="${XR_FO_POSTERS:-20}" FO_OBS="${XR_FO_OBS:-4}"
FP_STEPS="${XR_FP_STEPS:-160 320 640 1280 2560}" FP_POSTERS="${XR_FP_POSTERS:-4}"
IN_ROOMS="${XR_IN_ROOMS:-50}" IN_PER_ROOM="${XR_IN_PER_ROOM:-4}"
DURATION="${XR_DURATION:-15}" SETTLE="${XR_SETTLE:-5}" ARRIVAL="${XR_ARRIVAL:-25}" SIZE="${XR_SIZE:-64}"
PW=bench-xmpp-pw
DOMAIN=example.test
MUC="conference.$DOMAIN"
IN_USERS=$((IN_ROOMS * IN_PER_ROOM))
NUSERS=$(( FO_USERS > IN_USERS ? FO_USERS : IN_USERS ))
NOBS=$(( FO_OBS > IN_ROOMS ? FO_OBS : IN_ROOMS ))
ROOMS="bench $(seq -f 'r%g' 1 "$IN_ROOMS" | tr '\n' ' ')"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-xramp.XXXXXX")"
chmod 711 "$WORK"
OUT="${XR_OUT:-$WORK/steps.jsonl}"
SERVER_PID="" SERVER_STOP=""   # the process measured; how to stop the server
OBS_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if [ -n "$SERVER_STOP" ]; then $SERVER_STOP || true; fi
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID="" SERVER_STOP=""
}
EPMD_BEFORE="$(pgrep -x epmd || true)"
cleanup() {
    local e
    [ -z "$OBS_PID" ] || kill -TERM "$OBS_PID" 2>/dev/null || true
    stop_server
    # tsung's Erlang node starts an epmd daemon; stop it if it was not there before and no
    # node is registered with it any more
    e="$(pgrep -x epmd || true)"
    if [ -z "$EPMD_BEFORE" ] && [ -n "$e" ] && ! epmd -names 2>/dev/null | grep -q '^name '; then
        kill "$e" 2>/dev/null || true
    fi
    if [ "${XR_KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_install tsung prosody ejabberd openssl bc
[ -x "$PERCH" ] || { log "no perch binary at $PERCH"; exit 1; }
ulimit -n 65536 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wait_port() { # wait_port PID PORT: until PORT accepts, 60 s at most, while PID lives
    local i
    for i in $(seq 1 300); do
        kill -0 "$1" 2>/dev/null || return 1
        port_open "$2" && return 0
        sleep 0.2
    done
    return 1
}
# one ECDSA P-256 certificate for Prosody and ejabberd (perch generates its own, also P-256)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN,DNS:$MUC" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
declare -A ROOMJID   # room name -> local part of its JID on the server under test

# ---- perch --------------------------------------------------------------------------------
METRICS_URL=""
setup_perch() {
    local d="$WORK/perch" admin i r sip http
    rm -rf "$d"; mkdir -p "$d"
    read -r PORT sip http < <(free_ports 3)
    cat >"$d/perch.toml" <<TOML
# written by bench/xmpp/ramp.sh: per-client limits lifted as in bench/perch-bench.toml
domain = "$DOMAIN"
[listen]
tls = "127.0.0.1:$sip"
[tls]
dev_cert_names = ["$DOMAIN", "$MUC"]
[xmpp]
listen = "127.0.0.1:$PORT"
[http]
listen = "127.0.0.1:$http"
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
    for i in $(seq 1 "$NUSERS"); do echo "user$i"; done >"$d/names"
    for i in $(seq 1 "$NOBS"); do echo "obs$i"; done >>"$d/names"
    while read -r i; do
        "${admin[@]}" user add "$i@$DOMAIN" --password-stdin <<<"$PW" >/dev/null
    done <"$d/names"
    "${admin[@]}" category create BenchCategory >/dev/null
    "${admin[@]}" category set BenchCategory --add-allowed "domain:$DOMAIN" >/dev/null
    for r in $ROOMS; do
        "${admin[@]}" room create "$r" --category BenchCategory --privacy open >/dev/null
        # the room's JID is <uid>@conference.<domain>; the uid ends the uri `room show` prints
        ROOMJID[$r]="$("${admin[@]}" room show "$r" | sed -n 's|^uri: ma-chan://[^/]*/\([0-9A-Za-z-]\+\)$|\1|p' | head -1)"
        [ -n "${ROOMJID[$r]}" ] || { log "perch: no uid for room $r"; return 1; }
    done
    taskset -c 0 "$PERCH" serve --config "$d/perch.toml" --data "$d/data" >"$d/perch.log" 2>&1 </dev/null &
    SERVER_PID=$! SERVER_STOP=""
    METRICS_URL="https://127.0.0.1:$http/metrics"
    wait_port "$SERVER_PID" "$PORT" || { log "perch did not listen:"; tail -5 "$d/perch.log" >&2; return 1; }
    SERVER_VERSION="perch $("$PERCH" --version 2>/dev/null | head -1)"
}
perch_deliveries() { # the counter, or "-"
    curl -sk --max-time 5 "$METRICS_URL" 2>/dev/null | awk '/^perch_deliveries_total /{print $2; f=1} END{if(!f) print "-"}'
}

# ---- Prosody ------------------------------------------------------------------------------
AS_PROSODY=()
setup_prosody() {
    local p="$WORK/prosody" r
    rm -rf "$p"; mkdir -p "$p/data"
    read -r PORT < <(free_ports 1)
    cp "$WORK/cert.pem" "$WORK/key.pem" "$p/"
    write_prosody_config "$p" "$PORT" "max_history_messages = 20"
    if [ "$(id -u)" = 0 ] && id prosody >/dev/null 2>&1; then
        AS_PROSODY=(setpriv --reuid=prosody --regid=prosody --init-groups --)
        chown -R prosody: "$p"
    fi
    # prosodyctl register takes ~0.3 s a user: the accounts are made once, then copied
    if [ ! -d "$WORK/prosody-accounts" ]; then
        { for i in $(seq 1 "$NUSERS"); do echo "user$i"; done; for i in $(seq 1 "$NOBS"); do echo "obs$i"; done; } |
            xargs -P 2 -I{} "${AS_PROSODY[@]}" prosodyctl --config "$p/prosody.cfg.lua" register "{}" "$DOMAIN" "$PW" \
                >>"$p/prosodyctl.log" 2>&1
        cp -a "$p/data" "$WORK/prosody-accounts"
    else
        rm -rf "$p/data"; cp -a "$WORK/prosody-accounts" "$p/data"
    fi
    [ "$(ls "$p/data/example%2etest/accounts" | wc -l)" = $((NUSERS + NOBS)) ] ||
        { log "prosody: $(ls "$p/data/example%2etest/accounts" | wc -l) accounts, not $((NUSERS + NOBS))"; return 1; }
    taskset -c 0 "${AS_PROSODY[@]}" prosody --config "$p/prosody.cfg.lua" >"$p/prosody.stdout" 2>&1 </dev/null &
    SERVER_PID=$! SERVER_STOP=""
    wait_port "$SERVER_PID" "$PORT" || { log "prosody did not listen:"; tail -5 "$p/prosody.stdout" "$p/prosody.log" >&2; return 1; }
    for r in $ROOMS; do ROOMJID[$r]="$r"; done
    for r in $ROOMS; do echo "muc:create(\"$r@$MUC\")"; done |
        "${AS_PROSODY[@]}" prosodyctl --config "$p/prosody.cfg.lua" shell >"$p/muc-create.log" 2>&1 || true
    [ "$(grep -c "Result: MUC room" "$p/muc-create.log")" -ge "$(echo $ROOMS | wc -w)" ] ||
        log "prosody: muc:create answered $(grep -c "Result: MUC room" "$p/muc-create.log") times (rooms are also made, unlocked, by the first join)"
    SERVER_VERSION="prosody $(dpkg-query -W -f='${Version}' prosody)"
}

# ---- ejabberd -----------------------------------------------------------------------------
EJ_NODE="" EJ_COOKIE="" EJ_DIST="" EJ_CTL=()
ej_rpc() { # ej_rpc ERLANG-EXPRESSION (N is the node): prints the value
    erl -noshell -hidden -sname "xrctl$RANDOM@localhost" -setcookie "$EJ_COOKIE" \
        -erl_epmd_port "$EJ_DIST" -start_epmd false -dist_listen false \
        -eval "N = '$EJ_NODE', R = ($1), io:format(\"~p~n\", [R]), halt()."
}
ej_stop() { "${EJ_CTL[@]}" stop >/dev/null 2>&1 || true; }
setup_ejabberd() {
    local e="$WORK/ejabberd" launcher i r out
    rm -rf "$e"; mkdir -p "$e/spool" "$e/logs"
    read -r PORT EJ_DIST < <(free_ports 2)
    EJ_NODE="xramp$$@localhost"
    EJ_COOKIE="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    cat "$WORK/cert.pem" "$WORK/key.pem" >"$e/cert.pem"
    # ejabberdctl's own settings: no epmd (a fixed distribution port on loopback), our
    # node name and cookie, pid file in the work dir
    cat >"$e/ejabberdctl.cfg" <<CFG
ERLANG_NODE=$EJ_NODE
ERL_DIST_PORT=$EJ_DIST
INET_DIST_INTERFACE=127.0.0.1
ERL_OPTIONS="-setcookie $EJ_COOKIE -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$e/ejabberd.pid
CONTRIB_MODULES_PATH=$e/contrib
CONTRIB_MODULES_CONF_DIR=$e/contrib-conf
CFG
    cat >"$e/ejabberd.yml" <<YML
# written by bench/xmpp/ramp.sh
hosts: ["$DOMAIN"]
loglevel: warning
certfiles: ["$e/cert.pem"]
default_db: mnesia
auth_method: internal
# stored as SCRAM-SHA-1 verifiers (4096 iterations, as perch's); clients sign in with PLAIN
auth_password_format: scram
auth_scram_hash: sha
listen:
  - port: $PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    max_stanza_size: 262144
    # no traffic shaper on the listener (the default config has c2s_shaper: normal, 1000 B/s)
    shaper: none
    access: c2s
# no shapers defined, and every shaper rule says none
shaper: {}
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
  max_user_sessions: 10
  max_user_offline_messages: 5000
acl:
  loopback:
    ip: ["127.0.0.0/8"]
access_rules:
  local:
    allow: all
  c2s:
    allow: all
  muc_create:
    allow: all
api_permissions:
  "console commands":
    from: [ejabberd_ctl]
    who: all
    what: "*"
modules:
  mod_disco: {}
  mod_mam:
    db_type: mnesia
  mod_muc:
    access_create: muc_create
    access_persistent: muc_create
    max_users: 10000
    max_users_presence: 10000
    max_user_conferences: 1000
    min_message_interval: 0
    min_presence_interval: 0
    history_size: 20
    default_room_options:
      persistent: true
      mam: true
      public: true
  mod_muc_admin: {}
YML
    chown -R ejabberd: "$e"
    EJ_CTL=(ejabberdctl --ctl-config "$e/ejabberdctl.cfg" --config "$e/ejabberd.yml" --spool "$e/spool" --logs "$e/logs")
    taskset -c 0 "${EJ_CTL[@]}" foreground >"$e/foreground.log" 2>&1 </dev/null &
    launcher=$!
    # the measured process is the Erlang VM (beam.smp) under ejabberdctl, su and erl
    SERVER_PID=""
    for i in $(seq 1 150); do
        SERVER_PID="$(pgrep -f -- "beam.smp.*-sname $EJ_NODE" | head -1 || true)"
        [ -n "$SERVER_PID" ] && break
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "$SERVER_PID" ] || { log "ejabberd: no beam.smp for $EJ_NODE:"; tail -5 "$e/foreground.log" >&2; return 1; }
    SERVER_STOP=ej_stop
    wait_port "$SERVER_PID" "$PORT" || { log "ejabberd did not listen:"; tail -5 "$e/foreground.log" "$e/logs/ejabberd.log" >&2; return 1; }
    # accounts and rooms in one call (ejabberdctl starts a VM per command, ~1 s each)
    out="$(ej_rpc "[rpc:call(N, ejabberd_auth, try_register, [list_to_binary(U), <<\"$DOMAIN\">>, <<\"$PW\">>]) || U <- [\"user\" ++ integer_to_list(I) || I <- lists:seq(1, $NUSERS)] ++ [\"obs\" ++ integer_to_list(I) || I <- lists:seq(1, $NOBS)]]")"
    [ "$(grep -o 'ok' <<<"$out" | wc -l)" = $((NUSERS + NOBS)) ] || { log "ejabberd: register: $(head -c 300 <<<"$out")"; return 1; }
    out="$(ej_rpc "[rpc:call(N, mod_muc_admin, create_room, [list_to_binary(R), <<\"$MUC\">>, <<\"$DOMAIN\">>]) || R <- string:tokens(\"$ROOMS\", \" \")]")"
    grep -q "ok" <<<"$out" || { log "ejabberd: create_room: $(head -c 300 <<<"$out")"; return 1; }
    for r in $ROOMS; do ROOMJID[$r]="$r"; done
    SERVER_VERSION="ejabberd $(dpkg-query -W -f='${Version}' ejabberd), schedulers $(ej_rpc 'rpc:call(N, erlang, system_info, [schedulers_online])')"
}

# other work on the machine: processes other than ours using CPU now (a 1 s top sample,
# those above 10 %: name, % of a core, nice), e.g. "rustc 95 n10, xmpp_stream 60 n19"
busy_others() {
    top -bn2 -d1 -w 200 | awk -v me="$$" 'BEGIN{b=0} /^top -/{b++} b==2 && $1 ~ /^[0-9]+$/ && $9+0 >= 10 {print $12 " " int($9) " n" $4}' |
        grep -Ev "^(beam.smp|$(basename "$PERCH" | cut -c1-15)|prosody|lua5.4|python3|top) " | paste -sd, - | sed 's/,/, /g; s/^$/none/'
}

# ---- waiting for a quiet machine --------------------------------------------------------------
wait_quiet() {
    local waited=0 l
    if [ "${XR_WAIT_FUZZ:-1}" = 1 ]; then
        while pgrep -f 'xmpp_stream|xmpp_c2s' >/dev/null; do
            [ $((waited % 60)) = 0 ] && log "a fuzzer (xmpp_stream/xmpp_c2s) runs: waiting"
            sleep 5; waited=$((waited + 5))
        done
    fi
    # other people's builds at a priority near ours (nice < 5): wait for them, XR_BUILD_WAIT s
    # at most (default 0); niced ones (10, 19) get little of a core beside a nice-0 process
    # and are only recorded (busy_others)
    waited=0
    while [ "$waited" -lt "${XR_BUILD_WAIT:-0}" ] &&
        ps -eo ni=,comm= | awk '$1 < 5 && $2 ~ /^(rustc|cc1|cc1plus|ld|cargo|build-script-b)/ {f=1} END{exit !f}'; do
        [ $((waited % 60)) = 0 ] && log "a build at nice < 5 runs (rustc/cc1/ld): waiting"
        sleep 5; waited=$((waited + 5))
    done
    waited=0
    while l="$(cut -d' ' -f1 /proc/loadavg)"; awk -v l="$l" -v m="${XR_MAX_LOAD:-99}" 'BEGIN{exit !(l >= m)}'; do
        [ "$waited" -ge "${XR_LOAD_WAIT:-0}" ] && return 0
        [ $((waited % 30)) = 0 ] && log "load $l >= $XR_MAX_LOAD: waiting"
        sleep 5; waited=$((waited + 5))
    done
}

# ---- one step -------------------------------------------------------------------------------
# step SERVER SCENARIO RUN RATE: prints "ok", "fail" or "gen" (generator-limited) on stdout
step() {
    local server="$1" scen="$2" run="$3" rate="$4"
    local dir="$WORK/$server-$scen-$run-$rate" users posters interval count i r sessions=() bulk=() go_ms
    local arrival load1 obs_ready t0 t1 c0 c1 rss hwm d0 d1 rc=0 occupants
    mkdir -p "$dir"
    if [ "$scen" = fanout ]; then
        users=$FO_USERS posters=$FO_POSTERS occupants=$((FO_USERS + FO_OBS))
        for i in $(seq 1 "$FO_USERS"); do
            echo "user$i;$PW;$([ "$i" -gt $((FO_USERS - FO_POSTERS)) ] && echo 1 || echo 0);${ROOMJID[bench]}"
        done >"$dir/users.csv"
        for i in $(seq 1 "$FO_OBS"); do sessions+=(--session "obs$i:${ROOMJID[bench]}"); done
    elif [ "$scen" = fanpy ]; then
        # fan-out with Python receivers: tsung signs in only the posters (user1..), the
        # observer process holds FO_OBS exact sessions and counting-only receivers for the
        # rest of the FO_USERS accounts
        users=$FP_POSTERS posters=$FP_POSTERS occupants=$((FO_USERS + FO_OBS))
        for i in $(seq 1 "$FP_POSTERS"); do echo "user$i;$PW;1;${ROOMJID[bench]}"; done >"$dir/users.csv"
        for i in $(seq 1 "$FO_OBS"); do sessions+=(--session "obs$i:${ROOMJID[bench]}"); done
        for i in $(seq $((FP_POSTERS + 1)) "$FO_USERS"); do bulk+=(--bulk "user$i:${ROOMJID[bench]}"); done
    else
        users=$IN_USERS posters=$IN_USERS occupants=$((IN_PER_ROOM + 1))
        for i in $(seq 1 "$IN_USERS"); do
            echo "user$i;$PW;1;${ROOMJID[r$(( (i - 1) / IN_PER_ROOM + 1 ))]}"
        done >"$dir/users.csv"
        for i in $(seq 1 "$IN_ROOMS"); do sessions+=(--session "obs$i:${ROOMJID[r$i]}"); done
    fi
    interval="$(awk -v p="$posters" -v r="$rate" 'BEGIN{printf "%.4f", p / r}')"
    count=$(( DURATION * rate / posters )); [ "$count" -ge 2 ] || count=2
    wait_quiet
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    local others0 others1; others0="$(busy_others)"
    python3 "$HERE/observe.py" --port "$PORT" --domain "$DOMAIN" --muc "$MUC" --password "$PW" \
        "${sessions[@]}" "${bulk[@]+"${bulk[@]}"}" --out "$dir/observer.json" >"$dir/observer.out" 2>"$dir/observer.err" &
    OBS_PID=$!
    for i in $(seq 1 600); do
        grep -q '^READY' "$dir/observer.out" 2>/dev/null && break
        kill -0 "$OBS_PID" 2>/dev/null || break
        sleep 0.2
    done
    grep -q '^READY' "$dir/observer.out" || { log "$server $scen $rate: observer not ready: $(tail -3 "$dir/observer.err")"; kill -TERM "$OBS_PID" 2>/dev/null; OBS_PID=""; echo fail; return 0; }
    # arrivals are random (exponential gaps): the phase gets slack, maxnumber caps the users;
    # GO leaves tsung ~3 s to start, the arrivals, and 8 s for the last sign-ins and joins
    arrival=$(( 2 * ((users + ARRIVAL - 1) / ARRIVAL) + 2 ))
    go_ms=$(( $(date +%s%3N) + (3 + (users + ARRIVAL - 1) / ARRIVAL + 8) * 1000 ))
    sed -e "s|@PORT@|$PORT|g" -e "s|@MUC@|$MUC|g" -e "s|@DOMAIN@|$DOMAIN|g" \
        -e "s|@USERS@|$users|g" -e "s|@RATE@|$ARRIVAL|g" -e "s|@ARRIVAL@|$arrival|g" \
        -e "s|@GO_MS@|$go_ms|g" -e "s|@COUNT@|$count|g" -e "s|@INTERVAL@|$interval|g" \
        -e "s|@DURATION@|$DURATION|g" -e "s|@SIZE@|$SIZE|g" -e "s|@SETTLE@|$SETTLE|g" \
        -e "s|@USERSCSV@|$dir/users.csv|g" -e "s|@MAXDUR@|$((DURATION * 3 + arrival + SETTLE + 120))|g" \
        "$HERE/ramp.xml.in" >"$dir/step.xml"
    [ "$server" = perch ] && d0="$(perch_deliveries)" || d0="-"
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
    # twice a second: the server's CPU ticks and the per-CPU lines of /proc/stat
    ( while kill -0 "$SERVER_PID" 2>/dev/null; do
          echo "$(date +%s.%N) $(cpu_ticks "$SERVER_PID" 2>/dev/null || echo -) $(awk '/^cpu0 /{print $2+$3+$4+$7+$8, $5+$6} /^cpu1 /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat | tr '\n' ' ')"
          sleep 0.5
      done ) >"$dir/cpu.log" 2>/dev/null &
    local sampler=$!
    timeout -k 10 $((DURATION * 3 + arrival + SETTLE + 180)) \
        tsung -f "$dir/step.xml" -l "$dir/log" start >"$dir/tsung.out" 2>&1 </dev/null || rc=$?
    t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID"); others1="$(busy_others)"
    kill -TERM "$OBS_PID" 2>/dev/null || true; wait "$OBS_PID" 2>/dev/null || true; OBS_PID=""
    [ "$server" = perch ] && d1="$(perch_deliveries)" || d1="-"
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
    hwm=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status")
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    [ "$rc" = 0 ] || log "$server $scen $rate: tsung exited $rc: $(tail -3 "$dir/tsung.out" | tr '\n' ' ')"
    local logdir; logdir="$(find "$dir/log" -mindepth 1 -maxdepth 1 -type d | head -1)"
    [ -s "$logdir/tsung-fullstats.log" ] || { log "$server $scen $rate: no tsung stats"; echo fail; return 0; }
    python3 "$HERE/ramp_summary.py" step --server "$server" --version "$SERVER_VERSION" --scenario "$scen" \
        --run "$run" --rate "$rate" --users "$users" --posters "$posters" --occupants "$occupants" \
        --observers "$(( ${#sessions[@]} / 2 ))" --count "$count" --duration "$DURATION" --settle "$SETTLE" \
        --logdir "$logdir" --observer "$dir/observer.json" --cpu-log "$dir/cpu.log" --go "$go_ms" \
        --clk-tck "$CLK_TCK" --cpu-s "$(echo "($c1 - $c0) / $CLK_TCK" | bc -l)" --wall-s "$(echo "$t1 - $t0" | bc -l)" \
        --rss-kib "$rss" --hwm-kib "$hwm" --load "$load1" --others "$others0 / $others1" --perch-deliveries "$d0" "$d1" --json "$OUT"
}

log "tsung $(dpkg-query -W -f='${Version}' tsung), prosody $(dpkg-query -W -f='${Version}' prosody), ejabberd $(dpkg-query -W -f='${Version}' ejabberd), perch $PERCH"
log "this shell on CPUs $(taskset -pc $$ | sed 's/.*: //'); servers go to CPU 0; summaries: $OUT"
for run in $(seq 1 "$RUNS"); do
    for scen in $SCENARIOS; do
        for server in $SERVERS; do
            "setup_$server" || { log "$server: setup failed"; stop_server; continue; }
            log "$server ($SERVER_VERSION) run $run $scen: pid $SERVER_PID on CPU $(taskset -pc "$SERVER_PID" | sed 's/.*: //'), port $PORT"
            case "$scen" in fanout) steps="$FO_STEPS" ;; fanpy) steps="$FP_STEPS" ;; *) steps="$IN_STEPS" ;; esac
            for rate in $steps; do
                verdict="$(step "$server" "$scen" "$run" "$rate" | tail -1)"
                log "$server $scen run $run, $rate posts/s: $verdict"
                [ "$verdict" = ok ] || break
            done
            stop_server
        done
    done
done
[ -s "$OUT" ] && python3 "$HERE/ramp_summary.py" table "$OUT"
