#!/usr/bin/env bash
# Real Pidgin-SIPE clients (finch + prpl-sipe, driven over D-Bus by shared/tools/sipe/harness.py)
# against perch: scenario "connect" with alice and bob over plain TCP and over TLS, then
# scenario "basic" over TCP and over TLS: room list (a secret room not listed), a closed room refusing a
# non-member, join, history, roster, post, receive, echo, part.
#
#   bash conformance/sipe/run.sh
#
# Writes conformance/results/sipe-connect-{tcp,tls}.txt (the harness's PASS/FAIL lines),
# perch-sipe.log (perch's debug log) and sipe-{tcp,tls}-<client>-finch-debug.log (SIPE's SIP
# trace). Exits non-zero if a required step did not pass: start, connect, xccos-session and
# disconnect for both users on both transports. Other failing steps are reported only.
set -euo pipefail

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

T0=$(date +%s)
SIPE_DIR="${SIPE_HARNESS_DIR:-$ROOT/../shared/tools/sipe}"
USERS=(alice@example.test bob@example.test)
HARNESS_TIMEOUT="${SIPE_HARNESS_TIMEOUT:-200}"   # seconds per transport, hard cap

if [ ! -f "$SIPE_DIR/harness.py" ]; then
    log "SIPE harness not found at $SIPE_DIR (expected shared/ beside the repository)"
    exit 2
fi

rm -f "$RESULTS"/sipe-eviction-*.txt "$RESULTS"/sipe-wrong-password-*.txt "$RESULTS"/sipe-connect-*.txt "$RESULTS"/sipe-basic-*.txt "$RESULTS"/sipe-*-finch-debug.log "$RESULTS/perch-sipe.log"

log "setup: $SIPE_DIR/setup.sh"
sh "$SIPE_DIR/setup.sh" >&2

build_perch

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-sipe.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
DATA="$WORK/data"
CONFIG="$WORK/perch.toml"
cat >"$CONFIG" <<'EOF'
domain = "example.test"
# No trusted network: SIPE signs in with its password over NTLM (MS-SIPAE signing).

[listen]
tls = "127.0.0.1:0"
tcp = "127.0.0.1:0"
EOF
# Each user's password is its local part plus "-pw" (alice-pw).
password_of() { printf '%s-pw' "${1%@*}"; }
"$PERCH" init --data "$DATA" >&2  # admin needs a store; serve would make one later
for u in "${USERS[@]}" carol@example.test; do
    password_of "$u" | "$PERCH" admin --data "$DATA" user add "$u" --password-stdin >&2
done
# Rooms: Lobby and Plaza (open, with history: one per basic run, so that each run sees only
# the seeded lines), Team (closed: bob only), Hideout (secret: bob only).
admin() { "$PERCH" admin --data "$DATA" "$@" >&2; }
admin category create Chat --description "SIPE conformance"
admin category set Chat --add-allowed domain:example.test
admin room create Lobby --category Chat --privacy open --description "Open to all"
admin room create Plaza --category Chat --privacy open --description "Open to all"
admin room create Team --category Chat --privacy closed --add-members sip:bob@example.test
admin room create Hideout --category Chat --privacy secret --add-members sip:bob@example.test
admin room create Evict --category Chat --privacy open --description "Disabled while occupied"
room_uri() { "$PERCH" admin --data "$DATA" room show "$1" | sed -n 's/^uri: //p'; }
LOBBY_URI="$(room_uri Lobby)"
PLAZA_URI="$(room_uri Plaza)"
TEAM_URI="$(room_uri Team)"
EVICT_URI="$(room_uri Evict)"
HISTORY=("Welcome to the lobby" "History is kept in SQLite" "Say hello")

start_perch "$CONFIG" "$DATA" "$RESULTS/perch-sipe.log"
for room in "$LOBBY_URI" "$PLAZA_URI"; do
    /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/seed_history.py" "$PERCH_TCP_ADDR" \
        carol@example.test "$(password_of carol@example.test)" "$room" "${HISTORY[@]}" >&2
done

required_steps() {
    local u
    for u in "${USERS[@]}"; do
        printf '%s\n' "start[$u]" "connect[$u]" "xccos-session[$u]" "disconnect[$u]"
    done
    if [ "$1" = basic ]; then
        printf '%s\n' roomlist "not-listed[Hideout]" "join-denied[$TEAM_URI]" roster post \
            "receive[${USERS[1]}]" "echo[${USERS[0]}]"
        for u in "${USERS[@]}"; do
            printf '%s\n' "join[$u]" "history[$u]" "part[$u]"
        done
    fi
}

FAILED_REQUIRED=()
SUMMARY=()

run_transport() {
    local scenario="$1" transport="$2" addr="$3" room="${4:-}"
    local out="$RESULTS/sipe-$scenario-$transport.txt" hw="$WORK/harness-$scenario-$transport"
    local args=(--server "$addr" --transport "$transport" --scenario "$scenario" --workdir "$hw"
                --auth ntlm)
    local u t rc=0 step c
    for u in "${USERS[@]}"; do args+=(--user "$u:$(password_of "$u")"); done
    if [ "$transport" = tls ]; then args+=(--tls-peer-cert "$DATA/dev-cert.pem"); fi
    if [ "$scenario" = basic ]; then
        args+=(--room "$room" --expect-history "${#HISTORY[@]}" --expect-not-listed Hideout
               --expect-join-denied "$TEAM_URI" --message "Hello from SIPE & perch")
    fi

    log "SIPE $scenario over $transport to $addr"
    t=$(date +%s)
    timeout -k 10 "$HARNESS_TIMEOUT" /usr/bin/python3 "$SIPE_DIR/harness.py" "${args[@]}" \
        </dev/null >"$out.tmp" 2>"$WORK/harness-$transport.stderr" || rc=$?
    local took; took=$(since "$t")
    {
        echo "# perch conformance: Pidgin-SIPE scenario '$scenario' over $transport ($addr)"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), harness exit $rc, ${took}s"
        grep -E '^(PASS|FAIL|RESULT) ' "$out.tmp" || echo "(no PASS/FAIL lines; harness stderr follows)"
        grep -E '^(PASS|FAIL|RESULT) ' -q "$out.tmp" || sed 's/^/# /' "$WORK/harness-$transport.stderr"
    } >"$out"
    # the full output (PASS/FAIL details on continuation lines) for the log
    cat "$out.tmp" >&2
    rm -f "$out.tmp"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then log "harness hit the ${HARNESS_TIMEOUT}s cap"; fi

    # SIPE's own SIP trace, for the report
    for c in "$hw"/client*; do
        [ -f "$c/finch-debug.log" ] && cp "$c/finch-debug.log" "$RESULTS/sipe-$transport-$(basename "$c")-finch-debug.log"
    done

    local ok=0 bad=0 passed
    passed=$(grep -E '^PASS ' "$out" | sed 's/^PASS //; s/\]: .*/]/; s/: .*//' || true)
    while read -r step; do
        if grep -qxF "$step" <<<"$passed"; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            FAILED_REQUIRED+=("$scenario/$transport: $step")
        fi
    done < <(required_steps "$scenario")
    local other
    other=$(grep -E '^FAIL ' "$out" | sed 's/^FAIL //; s/\]: .*/]/; s/: .*//' | grep -vxF -f <(required_steps "$scenario") | tr '\n' ' ' || true)
    SUMMARY+=("sipe-$scenario-$transport: $ok/$((ok + bad)) required steps passed in ${took}s${other:+; other failing steps (not required): $other}")

    # MS-SIPAE: SIPE validated perch's signatures, and never saw a bad or missing one.
    local validated=0 refused=0
    for c in "$hw"/client*; do
        validated=$((validated + $(grep -c 'signature of incoming message validated' "$c/finch-debug.log" || true)))
        refused=$((refused + $(grep -Ec 'signature of incoming message is invalid|message without authentication data' "$c/finch-debug.log" || true)))
    done
    if [ "$validated" -gt 0 ] && [ "$refused" = 0 ]; then
        echo "PASS signatures: SIPE validated $validated signed messages from perch, refused none" >>"$out"
    else
        echo "FAIL signatures: SIPE validated $validated signed messages, refused $refused" >>"$out"
        FAILED_REQUIRED+=("$scenario/$transport: signatures")
    fi
}

# An administrator disables a room while both clients sit in it. Each SIPE must drop the
# room (it logs "leaving room"), which it does on an rpl:part 200 naming the room, never on
# an ntc:part (after which it could not rejoin). The harness holds the clients in the room
# (--hold) while the room is disabled; its later steps fail by design and are not counted.
eviction() {
    local out="$RESULTS/sipe-eviction-tls.txt" hw="$WORK/harness-eviction" rc=0 c left=0
    local args=(--server "$PERCH_TLS_ADDR" --transport tls --tls-peer-cert "$DATA/dev-cert.pem"
                --auth ntlm --scenario basic --room "$EVICT_URI" --expect-history 0 --hold 20
                --workdir "$hw")
    for c in "${USERS[@]}"; do args+=(--user "$c:$(password_of "$c")"); done
    timeout -k 10 150 /usr/bin/python3 "$SIPE_DIR/harness.py" "${args[@]}" \
        </dev/null >"$out.tmp" 2>/dev/null &
    local harness=$!
    # Both have joined and the first post went round once the echo step has passed.
    for _ in $(seq 1 90); do grep -q '^PASS echo' "$out.tmp" 2>/dev/null && break; sleep 1; done
    "$PERCH" admin --data "$DATA" room disable Evict >&2
    sleep 5
    for c in "$hw"/client*; do
        grep -q "leaving room 'Evict'" "$c/finch-debug.log" 2>/dev/null && left=$((left + 1))
    done
    wait "$harness" || rc=$?
    {
        echo "# perch conformance: Pidgin-SIPE in a room an administrator disables, over tls ($PERCH_TLS_ADDR)"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), harness exit $rc (its steps after the hold fail by design)"
        grep -E '^(PASS|FAIL) (join|echo)' "$out.tmp" | sed 's/^/# /'
        if [ "$left" = "${#USERS[@]}" ]; then
            echo "PASS evicted: both SIPE clients dropped room Evict when it was disabled (\"leaving room\")"
        else
            echo "FAIL evicted: $left of ${#USERS[@]} SIPE clients dropped room Evict when it was disabled"
            FAILED_REQUIRED+=("eviction")
        fi
    } >"$out"
    rm -f "$out.tmp"
    for c in "$hw"/client*; do
        [ -f "$c/finch-debug.log" ] && cp "$c/finch-debug.log" "$RESULTS/sipe-eviction-$(basename "$c")-finch-debug.log"
    done
    SUMMARY+=("sipe-eviction-tls: $(grep -Eo '^(PASS|FAIL)' "$out")")
}

# A wrong password: SIPE must fail to connect and say why; perch must log the failure
# without the password.
wrong_password() {
    local out="$RESULTS/sipe-wrong-password-tcp.txt" hw="$WORK/harness-wrong-password" rc=0
    timeout -k 10 120 /usr/bin/python3 "$SIPE_DIR/harness.py" --server "$PERCH_TCP_ADDR" \
        --transport tcp --scenario connect --auth ntlm --connect-timeout 15 --workdir "$hw" \
        --user "alice@example.test:not-alices-password" </dev/null >"$out.tmp" 2>/dev/null || rc=$?
    {
        echo "# perch conformance: Pidgin-SIPE with a wrong password over tcp ($PERCH_TCP_ADDR)"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), harness exit $rc"
        if grep -q '^FAIL connect\[alice@example.test\]' "$out.tmp" \
            && grep -q 'description: Authentication failed' "$hw"/client*/finch-debug.log \
            && grep -q 'NTLM authentication failed' "$RESULTS/perch-sipe.log" \
            && ! grep -q 'not-alices-password' "$RESULTS/perch-sipe.log"; then
            echo "PASS wrong-password: SIPE refused (\"Authentication failed\"), perch logged the failure without the password"
        else
            echo "FAIL wrong-password: expected no connection, SIPE's \"Authentication failed\" and a perch log line without the password"
            FAILED_REQUIRED+=("wrong-password")
        fi
    } >"$out"
    rm -f "$out.tmp"
    SUMMARY+=("sipe-wrong-password-tcp: $(grep -Eo '^(PASS|FAIL)' "$out")")
}

run_transport connect tcp "$PERCH_TCP_ADDR"
run_transport connect tls "$PERCH_TLS_ADDR"
run_transport basic tcp "$PERCH_TCP_ADDR" "$PLAZA_URI"
run_transport basic tls "$PERCH_TLS_ADDR" "$LOBBY_URI"
wrong_password
eviction

stop_perch
if grep -Eq ' (ERROR|WARN) ' "$RESULTS/perch-sipe.log"; then
    log "perch logged warnings/errors:"
    grep -E ' (ERROR|WARN) ' "$RESULTS/perch-sipe.log" | head -20 >&2
fi

echo "== SIPE conformance (${SECONDS}s)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
cat "$RESULTS"/sipe-connect-tcp.txt "$RESULTS"/sipe-connect-tls.txt "$RESULTS"/sipe-basic-tcp.txt \
    "$RESULTS"/sipe-basic-tls.txt \
    "$RESULTS"/sipe-wrong-password-tcp.txt "$RESULTS"/sipe-eviction-tls.txt | grep -E '^(PASS|FAIL) ' | sed 's/^/  /'
if [ "${#FAILED_REQUIRED[@]}" -gt 0 ]; then
    echo "  required steps that did not pass:"
    for s in "${FAILED_REQUIRED[@]}"; do echo "    $s"; done
    echo "  logs: $RESULTS/perch-sipe.log, $RESULTS/sipe-*-finch-debug.log"
    exit 1
fi
echo "  all required SIPE steps passed ($(since "$T0")s)"
