#!/usr/bin/env bash
# REGISTER over TLS with SIP Digest from real third-party clients, against a perch that does
# NOT trust loopback (so every REGISTER must authenticate).
#
#   bash conformance/sipsak/run.sh
#
# Clients:
#   sipsak 0.9.8.1 (Debian)  - TLS handshake with certificate verification, the 401 challenge.
#                              It cannot answer perch's challenge (see README.md: it reads only
#                              the first WWW-Authenticate, algorithm=SHA-256, and Debian's build
#                              has MD5 only), so its register steps are SKIP, never PASS.
#   pjsua2 (PJSIP 2.15.1, from PyPI, in a venv) - the Digest proof: right password -> 200 with
#                              SHA-256 and with MD5, wrong password / unknown user -> never 200,
#                              un-REGISTER -> 200.
#
# Writes conformance/results/sipsak-register.txt (PASS/FAIL/SKIP/INFO lines), perch-sipsak.log,
# sipsak-*.log and pjsua2-*.log (the SIP traces). Exits non-zero if a PASS/FAIL step failed.
set -euo pipefail

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

T0=$(date +%s)
DOMAIN=example.test
USER_PART=alice
PASSWORD='c0rrect-Horse'
WRONG='wr0ng-Horse'
OUT="$RESULTS/sipsak-register.txt"
PJSUA2_VERSION="${CONFORMANCE_PJSUA2_VERSION:-2.15.1.post1}"
VENV="${CONFORMANCE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/perch-conformance/pjsua2-venv}"

rm -f "$OUT" "$RESULTS"/sipsak-*.log "$RESULTS"/pjsua2-*.log "$RESULTS/perch-sipsak.log"

LINES=()
FAILS=0
result() { # result PASS|FAIL|SKIP|INFO name detail
    local line="$1 $2${3:+: $3}"
    LINES+=("$line")
    echo "$line"
    if [ "$1" = FAIL ]; then FAILS=$((FAILS + 1)); fi
}

# ---- clients ---------------------------------------------------------------------------
command -v sipsak >/dev/null 2>&1 || apt_install sipsak
command -v timeout >/dev/null 2>&1 || apt_install coreutils

setup_pjsua2() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pjsua2' >/dev/null 2>&1; then
        return 0
    fi
    log "creating $VENV with pjsua2-python==$PJSUA2_VERSION"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    local py
    py="$(command -v python3 || true)"
    if [ -z "$py" ] || ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
        apt_install python3 python3-venv
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pjsua2-python==$PJSUA2_VERSION" >&2
    "$VENV/bin/python" -c 'import pjsua2' >/dev/null
}

build_perch

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-sipsak.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
DATA="$WORK/data"
CONFIG="$WORK/perch.toml"
cat >"$CONFIG" <<EOF
domain = "$DOMAIN"
# no trusted_networks: loopback clients must answer the Digest challenge

[listen]
tls = "127.0.0.1:0"

[tls]
# the generated certificate also names the domain, so sipsak can verify it for sip:$DOMAIN
dev_cert_names = ["$DOMAIN"]
EOF
"$PERCH" init --data "$DATA" >&2  # admin needs a store; serve would make one later
printf '%s\n' "$PASSWORD" | "$PERCH" admin --data "$DATA" user add "$USER_PART@$DOMAIN" --password-stdin >&2
start_perch "$CONFIG" "$DATA" "$RESULTS/perch-sipsak.log"
CERT="$DATA/dev-cert.pem"
SIPSAK_VERSION="$(sipsak -V 2>/dev/null | head -1 | awk '{print $2}')"

# ---- sipsak ------------------------------------------------------------------------------
# GnuTLS system-priority override that turns TLS 1.3 off for sipsak only (see README.md).
NO_TLS13="$WORK/gnutls-no-tls13.conf"
printf '[overrides]\ndisabled-version = tls1.3\n' >"$NO_TLS13"

# run_sipsak NAME PASSWORD [tls13]: one usrloc REGISTER; transcript in results/sipsak-NAME.log
run_sipsak() {
    local name="$1" pw="$2" mode="${3:-tls12}" rc=0
    local logf="$RESULTS/sipsak-$name.log"
    local env=()
    [ "$mode" = tls13 ] || env=(GNUTLS_SYSTEM_PRIORITY_FILE="$NO_TLS13")
    # -vvv: sipsak verifies the server certificate only at this verbosity
    env "${env[@]+"${env[@]}"}" timeout -k 5 30 sipsak --transport=tls --tls-ca-cert="$CERT" \
        -p "$PERCH_TLS_ADDR" -U -s "sip:$USER_PART@$DOMAIN" -u "$USER_PART" -a "$pw" \
        -x 300 -i -vvv </dev/null >"$logf.raw" 2>&1 || rc=$?
    tr -d '\r' <"$logf.raw" >"$logf"
    rm -f "$logf.raw"
    echo "$rc"
}

# Response status lines sipsak printed (it echoes every response it received).
statuses() { { grep -aoE '^SIP/2\.0 [0-9]{3}' "$1" || true; } | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }

t=$(date +%s)
rc=$(run_sipsak challenge "$PASSWORD")
L="$RESULTS/sipsak-challenge.log"
codes=$(statuses "$L")
if grep -aq 'TLS1\.2' "$L" && grep -aq '^SIP/2\.0 401' "$L" &&
    grep -aqE '^WWW-Authenticate: Digest .*realm="example\.test".*algorithm=SHA-256.*qop="auth"' "$L" &&
    grep -aqE '^WWW-Authenticate: Digest .*realm="example\.test".*algorithm=MD5.*qop="auth"' "$L" &&
    ! grep -aqiE 'not trustworthy|does not match hostname|handshake failed' "$L"; then
    result PASS sipsak-tls-challenge "sipsak $SIPSAK_VERSION, TLS 1.2 with the server certificate verified for $DOMAIN; REGISTER -> 401 with Digest SHA-256 and MD5 challenges, realm=\"$DOMAIN\", qop=\"auth\" ($(since "$t")s)"
else
    result FAIL sipsak-tls-challenge "expected a verified TLS session and a 401 with SHA-256 and MD5 Digest challenges; sipsak exit $rc, responses [${codes:-none}]: $(grep -aE '^error|^nothing|failed' "$L" | head -2 | tr '\n' ' ') (see $L)"
fi

# The right / wrong password with sipsak: only a SKIP when sipsak gives up on the challenge.
sipsak_limitation() { grep -aq 'unsupported authentication algorithm' "$1"; }
SKIP_WHY="sipsak $SIPSAK_VERSION answers only the first WWW-Authenticate (algorithm=SHA-256) and this build has MD5 only, so it stops with 'unsupported authentication algorithm' before sending credentials; pjsua2 below covers this"

t=$(date +%s)
rc=$(run_sipsak register-right "$PASSWORD")
L="$RESULTS/sipsak-register-right.log"
codes=$(statuses "$L")
if [ "$rc" = 0 ] && grep -aq '^SIP/2\.0 200' "$L"; then
    result PASS sipsak-register-tls-digest "right password: responses [$codes] ($(since "$t")s)"
elif sipsak_limitation "$L"; then
    result SKIP sipsak-register-tls-digest "responses [$codes]; $SKIP_WHY"
else
    result FAIL sipsak-register-tls-digest "right password: sipsak exit $rc, responses [${codes:-none}] (see $L)"
fi

t=$(date +%s)
rc=$(run_sipsak register-wrong "$WRONG")
L="$RESULTS/sipsak-register-wrong.log"
codes=$(statuses "$L")
if grep -aq '^SIP/2\.0 200' "$L"; then
    result FAIL sipsak-register-tls-wrong-password "a wrong password got 200: responses [$codes] (see $L)"
elif sipsak_limitation "$L"; then
    result SKIP sipsak-register-tls-wrong-password "responses [$codes]; $SKIP_WHY"
elif grep -aqE '^SIP/2\.0 (401|403)' "$L"; then
    result PASS sipsak-register-tls-wrong-password "wrong password refused: responses [$codes] ($(since "$t")s)"
else
    result FAIL sipsak-register-tls-wrong-password "no 401/403: sipsak exit $rc, responses [${codes:-none}] (see $L)"
fi

# TLS 1.3 as GnuTLS negotiates by default: informational (a sipsak bug, see README.md).
rc=$(run_sipsak tls13 "$PASSWORD" tls13)
L="$RESULTS/sipsak-tls13.log"
codes=$(statuses "$L")
if grep -aq '^SIP/2\.0 401' "$L"; then
    result INFO sipsak-tls13-default "over TLS 1.3 sipsak read the 401 (responses [$codes])"
else
    result INFO sipsak-tls13-default "over TLS 1.3 sipsak read no response (exit $rc: $(grep -aE '^nothing|^error' "$L" | head -1)); it treats the server's post-handshake NewSessionTicket records as a receive error, hence TLS 1.2 above"
fi

# ---- pjsua2 ------------------------------------------------------------------------------
PJ_OK=1
t=$(date +%s)
if setup_pjsua2 >"$WORK/pjsua2-setup.log" 2>&1; then
    PJ_VER="$("$VENV/bin/python" -c 'import pjsua2 as pj; e=pj.Endpoint(); e.libCreate(); print("PJVER", e.libVersion().full); e.libDestroy()' 2>/dev/null | sed -n 's/^PJVER //p' || true)"
    log "pjsua2 ready (PJSIP $PJ_VER, $(since "$t")s)"
else
    PJ_OK=0
    result FAIL pjsua2-setup "cannot install pjsua2-python==$PJSUA2_VERSION into $VENV: $(tail -3 "$WORK/pjsua2-setup.log" | tr '\n' ' ')"
fi

# run_pj NAME ARGS...: prints the RESULT line of pjsua2_register.py
run_pj() {
    local name="$1"; shift
    local logf="$RESULTS/pjsua2-$name.log"
    rm -f "$logf"
    timeout -k 5 60 "$VENV/bin/python" "$CONF/sipsak/pjsua2_register.py" --server "$PERCH_TLS_ADDR" \
        --domain "$DOMAIN" --user "$USER_PART" --ca "$CERT" --log "$logf" "$@" \
        </dev/null 2>"$WORK/pjsua2-$name.stderr" | grep -a '^RESULT' | tail -1 || true
}
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<" ${2#RESULT }"; }

if [ "$PJ_OK" = 1 ]; then
    t=$(date +%s)
    r=$(run_pj register-right --password "$PASSWORD" --unregister)
    if [ "$(field register "$r")" = 200 ]; then
        result PASS pjsua2-register-tls-digest "PJSIP $PJ_VER, right password, TLS verified: REGISTER -> 401 -> REGISTER with Authorization (algorithm $(field auth "$r")) -> 200 ($(since "$t")s)"
    else
        result FAIL pjsua2-register-tls-digest "right password: ${r:-no result} (see $RESULTS/pjsua2-register-right.log)"
    fi
    if [ "$(field unregister "$r")" = 200 ]; then
        result PASS pjsua2-unregister-tls "REGISTER Expires: 0 on the registered connection -> 200"
    else
        result FAIL pjsua2-unregister-tls "un-REGISTER after 200: ${r:-no result}"
    fi

    t=$(date +%s)
    r=$(run_pj register-right-md5 --password "$PASSWORD" --algorithm md5)
    if [ "$(field register "$r")" = 200 ] && [ "$(field auth "$r")" = MD5 ]; then
        result PASS pjsua2-register-tls-digest-md5 "right password, credentials as an MD5 HA1: the MD5 challenge answered -> 200 ($(since "$t")s)"
    else
        result FAIL pjsua2-register-tls-digest-md5 "${r:-no result} (see $RESULTS/pjsua2-register-right-md5.log)"
    fi

    for variant in "wrong-password|--password $WRONG" "wrong-password-md5|--password $WRONG --algorithm md5" \
        "unknown-user|--password $PASSWORD --user mallory"; do
        name="${variant%%|*}"
        # shellcheck disable=SC2086
        t=$(date +%s); r=$(run_pj "$name" ${variant#*|})
        code="$(field register "$r")"
        if [ -n "$code" ] && [ "$code" != none ] && [ "$code" != 200 ]; then
            result PASS "pjsua2-register-tls-$name" "refused with $code $(sed -n 's/.* register=[0-9]* \([^ ]*\).*/\1/p' <<<"$r" | tr _ ' ') (auth $(field auth "$r")) ($(since "$t")s)"
        else
            result FAIL "pjsua2-register-tls-$name" "expected a final response other than 200: ${r:-no result} (see $RESULTS/pjsua2-$name.log)"
        fi
    done
fi

stop_perch

{
    echo "# perch conformance: REGISTER over TLS with Digest (no trusted network), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
    printf '%s\n' "${LINES[@]}"
} >"$OUT"

echo "== sipsak/pjsua2 REGISTER conformance ($(since "$T0")s): $(grep -c '^PASS' "$OUT") PASS, $FAILS FAIL, $(grep -c '^SKIP' "$OUT" || true) SKIP"
[ "$FAILS" = 0 ]
