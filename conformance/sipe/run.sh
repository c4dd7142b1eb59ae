#!/usr/bin/env bash
# Real Pidgin-SIPE clients (finch + prpl-sipe, driven over D-Bus by shared/tools/sipe/harness.py)
# against perch: scenario "connect" with alice and bob, over plain TCP and then over TLS.
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
trap conformance_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

T0=$(date +%s)
SIPE_DIR="${SIPE_HARNESS_DIR:-$ROOT/../shared/tools/sipe}"
USERS=(alice@example.test bob@example.test)
HARNESS_TIMEOUT="${SIPE_HARNESS_TIMEOUT:-200}"   # seconds per transport, hard cap

if [ ! -f "$SIPE_DIR/harness.py" ]; then
    log "SIPE harness not found at $SIPE_DIR (expected shared/ beside the repository)"
    exit 2
fi

rm -f "$RESULTS"/sipe-connect-*.txt "$RESULTS"/sipe-*-finch-debug.log "$RESULTS/perch-sipe.log"

log "setup: $SIPE_DIR/setup.sh"
sh "$SIPE_DIR/setup.sh" >&2

build_perch

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-sipe.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
DATA="$WORK/data"
CONFIG="$WORK/perch.toml"
cat >"$CONFIG" <<'EOF'
domain = "example.test"
# SIPE answers a challenge with NTLM/Kerberos only; perch trusts loopback instead.
trusted_networks = ["127.0.0.0/8"]

[listen]
tls = "127.0.0.1:0"
tcp = "127.0.0.1:0"
EOF
for u in "${USERS[@]}"; do
    "$PERCH" admin --data "$DATA" user add "$u" --no-password >&2
done

start_perch "$CONFIG" "$DATA" "$RESULTS/perch-sipe.log"

required_steps() {
    local u
    for u in "${USERS[@]}"; do
        printf '%s\n' "start[$u]" "connect[$u]" "xccos-session[$u]" "disconnect[$u]"
    done
}

FAILED_REQUIRED=()
SUMMARY=()

run_transport() {
    local transport="$1" addr="$2" out="$RESULTS/sipe-connect-$1.txt" hw="$WORK/harness-$1"
    local args=(--server "$addr" --transport "$transport" --scenario connect --workdir "$hw")
    local u t rc=0 step c
    for u in "${USERS[@]}"; do args+=(--user "$u:x"); done
    if [ "$transport" = tls ]; then args+=(--tls-peer-cert "$DATA/dev-cert.pem"); fi

    log "SIPE connect over $transport to $addr"
    t=$(date +%s)
    timeout -k 10 "$HARNESS_TIMEOUT" /usr/bin/python3 "$SIPE_DIR/harness.py" "${args[@]}" \
        </dev/null >"$out.tmp" 2>"$WORK/harness-$transport.stderr" || rc=$?
    local took; took=$(since "$t")
    {
        echo "# perch conformance: Pidgin-SIPE scenario 'connect' over $transport ($addr)"
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
    passed=$(grep -E '^PASS ' "$out" | sed 's/^PASS //; s/:.*//' || true)
    while read -r step; do
        if grep -qxF "$step" <<<"$passed"; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            FAILED_REQUIRED+=("$transport: $step")
        fi
    done < <(required_steps)
    local other
    other=$(grep -E '^FAIL ' "$out" | sed 's/^FAIL //; s/:.*//' | grep -vxF -f <(required_steps) | tr '\n' ' ' || true)
    SUMMARY+=("sipe-connect-$transport: $ok/$((ok + bad)) required steps passed in ${took}s${other:+; other failing steps (not required): $other}")
}

run_transport tcp "$PERCH_TCP_ADDR"
run_transport tls "$PERCH_TLS_ADDR"

stop_perch
if grep -Eq ' (ERROR|WARN) ' "$RESULTS/perch-sipe.log"; then
    log "perch logged warnings/errors:"
    grep -E ' (ERROR|WARN) ' "$RESULTS/perch-sipe.log" | head -20 >&2
fi

echo "== SIPE conformance (${SECONDS}s)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
cat "$RESULTS/sipe-connect-tcp.txt" "$RESULTS/sipe-connect-tls.txt" | grep -E '^(PASS|FAIL) ' | sed 's/^/  /'
if [ "${#FAILED_REQUIRED[@]}" -gt 0 ]; then
    echo "  required steps that did not pass:"
    for s in "${FAILED_REQUIRED[@]}"; do echo "    $s"; done
    echo "  logs: $RESULTS/perch-sipe.log, $RESULTS/sipe-*-finch-debug.log"
    exit 1
fi
echo "  all required SIPE steps passed ($(since "$T0")s)"
