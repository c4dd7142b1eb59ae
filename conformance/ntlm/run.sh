#!/usr/bin/env bash
# NTLM sign-in with MS-SIPAE message signing, driven by an independent NTLM implementation:
# pyspnego (PyPI, pure Python, MIT) in a venv. Perch has NO trusted network, so the REGISTER
# must go through the full NTLM exchange and every later message must be signed.
#
#   bash conformance/ntlm/run.sh
#
# ntlm/pyspnego_client.py speaks SIP itself (raw TCP, and TLS for the tls- steps) and leaves
# every NTLM computation to pyspnego: its NTLM client state machine makes the AUTHENTICATE,
# its SIGNKEY/SEALKEY/MAC functions make and check the signatures (the script's docstring
# names each function). Required steps (each a PASS/FAIL line):
#   handshake          REGISTER -> 401 NTLM offer -> REGISTER gssapi-data="" -> 401 CHALLENGE
#                      -> REGISTER with the AUTHENTICATE, signed -> 200
#   server-signature   the 200's rspauth verifies with pyspnego's server-to-client keys, and
#                      not with one bit flipped nor with the client-to-server keys
#   signed-request     signed OPTIONS and signed SUBSCRIBE (provisioning v2) -> signed 2xx that verify
#   unsigned-refused   an unsigned OPTIONS on the signed connection -> 403
#   tampered-refused   a changed signature digit -> 403, a From tag changed after signing -> 403
#   replay-refused     the exact bytes of an accepted signed request again -> 403, and a new
#                      request signed with an already used cnum -> 403
#   handshake-primitives  a second sign-in, user in UPN form, AUTHENTICATE composed from
#                      pyspnego's primitives (no MIC) -> 200 and signed traffic
#   wrong-password     the handshake with a wrong password -> 401; perch logs "NTLM
#                      authentication failed" and never the password or its hashes
#   tls-handshake, tls-server-signature, tls-signed-request   the same first three over TLS
#                      (perch's generated certificate verified)
#
# Writes conformance/results/ntlm-pyspnego.txt (PASS/FAIL/INFO lines), perch-ntlm.log (perch's
# debug log) and ntlm-sip-trace.log (every SIP message sent and received). Exits non-zero if a
# required step failed or did not run.
set -euo pipefail

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

T0=$(date +%s)
DOMAIN=example.test
USER_PART=alice
PASSWORD='c0rrect-Horse-ntlm'
WRONG='wr0ng-Horse-ntlm'
OUT="$RESULTS/ntlm-pyspnego.txt"
SERVER_LOG="$RESULTS/perch-ntlm.log"
TRACE="$RESULTS/ntlm-sip-trace.log"
PYSPNEGO_VERSION="${CONFORMANCE_PYSPNEGO_VERSION:-0.12.4}"
REQUIRED=(handshake server-signature signed-request unsigned-refused tampered-refused replay-refused
    handshake-primitives wrong-password tls-handshake tls-server-signature tls-signed-request)

rm -f "$OUT" "$SERVER_LOG" "$TRACE"

LINES=()
FAILS=0
result() { # result PASS|FAIL|INFO name detail
    local line="$1 $2${3:+: $3}"
    LINES+=("$line")
    echo "$line"
    if [ "$1" = FAIL ]; then FAILS=$((FAILS + 1)); fi
}

finish() {
    local name
    for name in "${REQUIRED[@]}"; do
        printf '%s\n' "${LINES[@]+"${LINES[@]}"}" | grep -qE "^(PASS|FAIL) $name:" ||
            result FAIL "$name" "did not run"
    done
    {
        echo "# perch conformance: NTLM + MS-SIPAE signing with pyspnego $PYSPNEGO_VERSION (no trusted network), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
        printf '%s\n' "${LINES[@]}"
    } >"$OUT"
    echo "== NTLM (pyspnego) conformance ($(since "$T0")s): $(grep -c '^PASS' "$OUT" || true) PASS, $FAILS FAIL"
    [ "$FAILS" = 0 ]
}

# ---- the client: pyspnego in a fresh venv ------------------------------------------------
build_perch

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-ntlm.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
VENV="$WORK/venv"

setup_venv() {
    local py
    py="$(command -v python3 || true)"
    if [ -z "$py" ] || ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
        apt_install python3 python3-venv
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pyspnego==$PYSPNEGO_VERSION"
    "$VENV/bin/python" -c 'import spnego._ntlm_raw.crypto, spnego._ntlm_raw.security'
}

t=$(date +%s)
if ! setup_venv >"$WORK/venv-setup.log" 2>&1; then
    result FAIL setup "cannot install pyspnego==$PYSPNEGO_VERSION into a venv: $(tail -3 "$WORK/venv-setup.log" | tr '\n' ' ')"
    finish
    exit 1
fi
log "pyspnego $PYSPNEGO_VERSION ready in $VENV ($(since "$t")s)"

# ---- perch: NTLM on (the default), no trusted network ------------------------------------
DATA="$WORK/data"
CONFIG="$WORK/perch.toml"
cat >"$CONFIG" <<EOF
domain = "$DOMAIN"
# no trusted_networks: every REGISTER must authenticate (here: NTLM, MS-SIPAE version 4)

[listen]
tcp = "127.0.0.1:0"
tls = "127.0.0.1:0"
EOF
"$PERCH" init --data "$DATA" >&2  # admin needs a store; serve would make one later
printf '%s\n' "$PASSWORD" | "$PERCH" admin --data "$DATA" user add "$USER_PART@$DOMAIN" --password-stdin >&2
: >"$SERVER_LOG"  # exists before start_perch first reads it (it runs under pipefail)
start_perch "$CONFIG" "$DATA" "$SERVER_LOG"

# run_client PORT ARGS...: the client's PASS/FAIL/INFO lines go through result()
run_client() {
    local port="$1" rc=0 line verdict rest; shift
    while IFS= read -r line; do
        case "$line" in
            PASS\ * | FAIL\ * | INFO\ *)
                verdict="${line%% *}"; rest="${line#* }"
                result "$verdict" "${rest%%: *}" "${rest#*: }" ;;
            *) if [ -n "$line" ]; then log "client: $line"; fi ;;
        esac
    done < <(timeout -k 5 90 "$VENV/bin/python" "$CONF/ntlm/pyspnego_client.py" --host 127.0.0.1 --port "$port" \
        --domain "$DOMAIN" --netbios EXAMPLE --user "$USER_PART" --password "$PASSWORD" \
        --trace "$TRACE" "$@" </dev/null 2>"$WORK/client.stderr"; echo "EXIT $?" >"$WORK/client.rc")
    rc="$(sed -n 's/^EXIT //p' "$WORK/client.rc")"
    if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
        result INFO client-exit "pyspnego_client.py exited $rc: $(tail -3 "$WORK/client.stderr" | tr '\n' ' ')"
    fi
}

run_client "${PERCH_TCP_ADDR##*:}" --wrong-password "$WRONG" --perch-log "$SERVER_LOG"
run_client "${PERCH_TLS_ADDR##*:}" --tls --ca "$DATA/dev-cert.pem" --prefix tls- --quick

stop_perch
finish
