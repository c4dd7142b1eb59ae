#!/usr/bin/env bash
# Cross-protocol, with real clients (issue #13): alice on Pidgin-SIPE (finch + prpl-sipe over
# SIP/TLS, NTLM, driven step by step through shared/tools/sipe/harness.py) and bob on slixmpp
# (XMPP c2s with STARTTLS) in one perch room. Each must see the other join and leave and get
# the other's post, the XCCOS msgid SIPE sees must equal the stanza-id bob sees, and SIPE's
# bccontext history and bob's MAM query must list the same ids in the same order.
#
#   bash conformance/cross/run.sh
#
# Writes conformance/results/cross.txt (one PASS/FAIL line per check) and, git-ignored,
# perch-cross.log, cross-sipe-alice-finch-debug.log (SIPE's SIP/XCCOS trace), cross-slixmpp-bob.log
# (every stanza), cross-alice.log and cross-bob.log (each script's stderr).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HERE="$CONF/cross"
OUT="$RESULTS/cross.txt"
DOMAIN=example.test
MUC="conference.$DOMAIN"
T0=$(date +%s)
SIPE_DIR="${SIPE_HARNESS_DIR:-$ROOT/../shared/tools/sipe}"
VENV="${CONFORMANCE_XMPP_VENV:-$HOME/.cache/perch-conformance/xmpp-venv}"
SIDE_TIMEOUT="${CROSS_SCRIPT_TIMEOUT:-150}"   # hard cap in seconds for each client script

rm -f "$OUT" "$RESULTS/perch-cross.log" "$RESULTS"/cross-*.log
WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-cross.XXXXXX")"
CLEANUP_DIRS+=("$WORK")

# The two client scripts run in the background; stop them (by PID) however the suite ends.
# TERM lets the SIPE script run the harness's own cleanup (its finch, tmux session and
# dbus-daemon, each by its recorded PID).
SIDE_PIDS=()
cross_cleanup() {
    local pid
    for pid in "${SIDE_PIDS[@]+"${SIDE_PIDS[@]}"}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SIDE_PIDS[@]+"${SIDE_PIDS[@]}"}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SIDE_PIDS=()
    conformance_cleanup
    # Stopped before the verdicts were written (a signal, a failed set-up step): say so.
    [ -f "$OUT" ] || write_out "FAIL run: stopped after $(since "$T0")s before the checks ran (see the log)"
}
trap cross_cleanup EXIT

write_out() { # write_out LINE...: the header, then the lines
    {
        echo "# perch conformance: cross-protocol, Pidgin-SIPE (alice, SIP over TLS) and slixmpp (bob, XMPP STARTTLS) in one room"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
        printf '%s\n' "$@"
    } >"$OUT"
}

if [ ! -f "$SIPE_DIR/harness.py" ]; then
    write_out "FAIL setup: SIPE harness not found at $SIPE_DIR (expected shared/ beside the repository)"
    exit 2
fi

# ---- tools: the SIPE harness's packages; slixmpp in the xmpp suite's venv -------------------
log "setup: $SIPE_DIR/setup.sh"
sh "$SIPE_DIR/setup.sh" >&2
apt_install python3-venv
REQ="$CONF/xmpp/requirements.txt"
req_sum="$(sha256sum "$REQ" | cut -c1-16)"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$req_sum" ]; then
    log "xmpp venv: installing $REQ into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >"$WORK/pip.log" 2>&1 ||
        { write_out "FAIL setup: pip install failed: $(tail -3 "$WORK/pip.log" | tr '\n' ' ')"; exit 1; }
    echo "$req_sum" >"$VENV/.requirements"
fi

build_perch

# ---- perch: SIP (TLS and TCP) and XMPP (STARTTLS and direct TLS) on one chat core ----------
DATA="$WORK/data"
CONFIG="$WORK/perch.toml"
cat >"$CONFIG" <<TOML
domain = "$DOMAIN"
# No trusted network: SIPE signs in with its password over NTLM (MS-SIPAE signing).

[listen]
tls = "127.0.0.1:0"
tcp = "127.0.0.1:0"

[tls]
dev_cert_names = ["$DOMAIN", "$MUC"]

[xmpp]
listen = "127.0.0.1:0"
listen_tls = "127.0.0.1:0"
TOML
password_of() { printf '%s-pw' "$1"; }
"$PERCH" init --config "$CONFIG" --data "$DATA" >&2
admin() { "$PERCH" admin --config "$CONFIG" --data "$DATA" "$@" >&2; }
for u in alice bob; do
    password_of "$u" | "$PERCH" admin --config "$CONFIG" --data "$DATA" user add "$u@$DOMAIN" \
        --name "${u^}" --password-stdin >&2
done
admin category create Chat --description "Cross-protocol conformance"
admin category set Chat --add-allowed "domain:$DOMAIN"
admin room create Lobby --category Chat --privacy open --description "SIPE and XMPP"
ROOM_URI="$("$PERCH" admin --config "$CONFIG" --data "$DATA" room show Lobby | sed -n 's/^uri: //p')"

PLOG="$RESULTS/perch-cross.log"
start_perch "$CONFIG" "$DATA" "$PLOG"
STARTTLS=""
for _ in $(seq 1 50); do
    STARTTLS="$(sed -n 's/.*listening for XMPP (STARTTLS) addr=\([^ ]*\).*/\1/p' "$PLOG" | head -1)"
    [ -n "$STARTTLS" ] && break
    sleep 0.2
done
if [ -z "$STARTTLS" ]; then
    write_out "FAIL setup: perch logged no 'listening for XMPP (STARTTLS) addr=' line"
    exit 1
fi
CERT="$(sed -n 's/.*TLS certificate cert=\([^ ]*\).*/\1/p' "$PLOG" | head -1)"
[ -n "$CERT" ] || CERT="$DATA/dev-cert.pem"
log "room Lobby $ROOM_URI; SIP/TLS $PERCH_TLS_ADDR, XMPP STARTTLS $STARTTLS"

# ---- the two clients, side by side, meeting through cue files ------------------------------
CUES="$WORK/cues"
timeout -k 10 "$SIDE_TIMEOUT" /usr/bin/python3 "$HERE/sipe_alice.py" --harness-dir "$SIPE_DIR" \
    --server "$PERCH_TLS_ADDR" --transport tls --tls-peer-cert "$CERT" \
    --user "alice@$DOMAIN:$(password_of alice)" --peer "sip:bob@$DOMAIN" --room "$ROOM_URI" \
    --workdir "$WORK/sipe" --cues "$CUES" --json "$WORK/alice.json" \
    </dev/null >"$RESULTS/cross-alice.log" 2>&1 &
SIDE_PIDS+=($!)
timeout -k 5 "$SIDE_TIMEOUT" "$VENV/bin/python" "$HERE/xmpp_bob.py" --starttls-port "${STARTTLS##*:}" \
    --domain "$DOMAIN" --muc "$MUC" --ca "$CERT" --password "$(password_of bob)" --room-name Lobby \
    --cues "$CUES" --json "$WORK/bob.json" --debug-log "$RESULTS/cross-slixmpp-bob.log" \
    </dev/null >"$RESULTS/cross-bob.log" 2>&1 &
SIDE_PIDS+=($!)
rc_alice=0 rc_bob=0
wait "${SIDE_PIDS[0]}" || rc_alice=$?
wait "${SIDE_PIDS[1]}" || rc_bob=$?
SIDE_PIDS=()
cp "$WORK"/sipe/client*/finch-debug.log "$RESULTS/cross-sipe-alice-finch-debug.log" 2>/dev/null || true
stop_perch

LINES=()
rc_check=0
mapfile -t LINES < <(/usr/bin/python3 "$HERE/check.py" --alice "$WORK/alice.json" --bob "$WORK/bob.json" \
    --alice-uri "sip:alice@$DOMAIN" --bob-uri "sip:bob@$DOMAIN"; echo "rc=$?")
rc_check="${LINES[-1]#rc=}"
unset 'LINES[-1]'
[ "$rc_alice" = 0 ] || LINES+=("INFO alice-exit: sipe_alice.py exited $rc_alice (see cross-alice.log)")
[ "$rc_bob" = 0 ] || LINES+=("INFO bob-exit: xmpp_bob.py exited $rc_bob (see cross-bob.log)")
if grep -Eq ' (ERROR|WARN) ' "$PLOG"; then
    LINES+=("INFO perch-warnings: $(grep -Ec ' (ERROR|WARN) ' "$PLOG") WARN/ERROR lines in perch-cross.log, first: $(grep -E ' (ERROR|WARN) ' "$PLOG" | head -1 | cut -c1-200)")
fi
write_out "${LINES[@]}"
echo "== cross-protocol conformance ($(since "$T0")s)"
sed 's/^/  /' "$OUT"
[ "$rc_check" = 0 ]
