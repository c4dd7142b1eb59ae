#!/usr/bin/env bash
# XMPP conformance: the same slixmpp MUC/MAM scenarios (xmpp/muc_scenarios.py), a XEP-0198
# resumption check with slixmpp's own plugin (xmpp/resume_check.py), an aioxmpp check
# (xmpp/aioxmpp_check.py) and a XEP-0479 disco check (xmpp/compliance.py), run against
#   - Prosody from Debian, always: the oracle, started by this script on free loopback ports
#     with its config, certificate and data in a temp dir, stopped by PID on exit;
#   - perch, with its XMPP listeners ([xmpp] listen / listen_tls); a perch that cannot be
#     built, refuses the [xmpp] table or does not listen fails the suite.
#
#   bash conformance/xmpp/run.sh
#
# Writes conformance/results/xmpp.txt (one PASS/FAIL/SKIP/INFO line per step and server),
# xmpp-diff.txt (each step against Prosody and against perch, and why they differ) and logs
# (xmpp-*.log, perch-xmpp.log, git-ignored). Exits non-zero if a step failed on either
# server, or if perch differs from Prosody where conformance/xmpp/INTENDED.md does not say
# why.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HERE="$CONF/xmpp"
OUT="$RESULTS/xmpp.txt"
DIFF="$RESULTS/xmpp-diff.txt"
DOMAIN=example.test
MUC="conference.$DOMAIN"
T0=$(date +%s)
VENV="${CONFORMANCE_XMPP_VENV:-$HOME/.cache/perch-conformance/xmpp-venv}"
declare -A PW=([alice]=alice-xmpp-pw [bob]=bob-xmpp-pw [carol]=carol-xmpp-pw)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-xmpp.XXXXXX")"
[ "${XMPP_KEEP_WORK:-0}" = 1 ] || CLEANUP_DIRS+=("$WORK")  # XMPP_KEEP_WORK=1 keeps it, for a look
rm -f "$OUT" "$DIFF" "$RESULTS"/xmpp-*.log "$RESULTS/perch-xmpp.log"

PROSODY_PID=""
stop_prosody() {
    [ -n "$PROSODY_PID" ] || return 0
    kill -TERM "$PROSODY_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PROSODY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROSODY_PID" 2>/dev/null || true
    wait "$PROSODY_PID" 2>/dev/null || true
    PROSODY_PID=""
}
xmpp_cleanup() { stop_prosody; conformance_cleanup; }
trap xmpp_cleanup EXIT

LINES=()
result() { # result VERDICT server step detail
    local line="$1 $2 $3${4:+: $4}"
    LINES+=("$line")
    echo "$line"
}
# run_py SERVER LOGNAME SCRIPT ARGS...: the script's PASS/FAIL/SKIP/INFO lines, tagged with
# the server's name. A crash is a FAIL.
run_py() {
    local server="$1" logname="$2" script="$3" line rc=0; shift 3
    timeout -k 5 "${XMPP_SCRIPT_TIMEOUT:-100}" "$VENV/bin/python" "$HERE/$script" "$@" \
        >"$WORK/$logname.out" 2>"$RESULTS/xmpp-$logname.log" </dev/null || rc=$?
    while IFS= read -r line; do
        case "$line" in
            PASS\ * | FAIL\ * | SKIP\ * | INFO\ *) result "${line%% *}" "$server" "${line#* }" ;;
            *) [ -n "$line" ] && log "$script: $line" ;;
        esac
    done <"$WORK/$logname.out"
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$WORK/$logname.out"; then
        result FAIL "$server" "$script: exited $rc without a FAIL line: $(tail -2 "$RESULTS/xmpp-$logname.log" | tr '\n' ' ')"
    fi
}

# ---- tools: Prosody (Debian), slixmpp and aioxmpp (PyPI, pinned in requirements.txt) ------
# Debian's postinst does not start Prosody without an init system; this suite never uses the
# packaged service or /etc/prosody: it starts its own prosody with its own config.
apt_install prosody openssl python3-venv
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -c1-16)"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$req_sum" ]; then
    log "xmpp venv: installing $HERE/requirements.txt into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >"$WORK/pip.log" 2>&1 ||
        { log "pip install failed: $(tail -3 "$WORK/pip.log" | tr '\n' ' ')"; result FAIL setup venv "pip install failed"; exit 1; }
    echo "$req_sum" >"$VENV/.requirements"
fi
"$VENV/bin/python" -c 'import slixmpp, aioxmpp' || { result FAIL setup venv "slixmpp/aioxmpp do not import"; exit 1; }

# ---- Prosody ------------------------------------------------------------------------------
P="$WORK/prosody"
mkdir -p "$P/data"
C2S_PORT=0 TLS_PORT=0  # picked by start_prosody
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN,DNS:$MUC" \
    -keyout "$P/key.pem" -out "$P/cert.pem" >/dev/null 2>&1
# Debian's 0.12 build has mod_c2s's "c2s_direct_tls" listener (c2s_direct_tls_ports).
DIRECT_TLS=0
grep -q 'c2s_direct_tls' /usr/lib/prosody/modules/mod_c2s.lua 2>/dev/null && DIRECT_TLS=1
cat >"$P/prosody.cfg.lua" <<LUA
-- written by conformance/xmpp/run.sh
pidfile = "$P/prosody.pid"
data_path = "$P/data"
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
$([ "$DIRECT_TLS" = 1 ] && echo "c2s_direct_tls_ports = { $TLS_PORT }")
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_disabled = { "s2s" }
log = { debug = "$P/prosody.log" }
ssl = { certificate = "$P/cert.pem"; key = "$P/key.pem" }
c2s_require_encryption = true
authentication = "internal_hashed"
password_hash = "SHA-256"      -- so that SCRAM-SHA-256 is offered
storage = "internal"
modules_enabled = {
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "version"; "time"; "uptime";
    "carbons"; "mam"; "blocklist"; "bookmarks"; "pep"; "vcard_legacy"; "smacks"; "csi_simple";
    "private"; "offline";
}
VirtualHost "$DOMAIN"
Component "$MUC" "muc"
    modules_enabled = { "muc_mam" }
    muc_log_all_rooms = true
    muc_room_default_persistent = true
    max_history_messages = 50
LUA
# Prosody refuses to run as root, and its own switch to the prosody user was seen to fail at
# random ("Refusing to run as root"). As root, the script runs it as that user with setpriv
# (exec, so $! stays prosody's PID), and the user must reach its files.
AS_PROSODY=()
if [ "$(id -u)" = 0 ] && id prosody >/dev/null 2>&1; then
    AS_PROSODY=(setpriv --reuid=prosody --regid=prosody --init-groups --)
    chmod 711 "$WORK"
    chown -R prosody: "$P"
fi
for u in alice bob carol; do
    "${AS_PROSODY[@]}" prosodyctl --config "$P/prosody.cfg.lua" register "$u" "$DOMAIN" "${PW[$u]}" >>"$WORK/prosodyctl.log" 2>&1 ||
        { result FAIL prosody setup "prosodyctl register $u failed: $(tail -2 "$WORK/prosodyctl.log" | tr '\n' ' ')"; }
done
# start_prosody: up to 3 tries, each on newly picked free ports (another process may take a
# port between the pick and prosody's bind).
start_prosody() {
    local try i
    for try in 1 2 3; do
        read -r C2S_PORT TLS_PORT < <(free_ports 2)
        sed -i -e "s/^c2s_ports = .*/c2s_ports = { $C2S_PORT }/" \
            -e "s/^c2s_direct_tls_ports = .*/c2s_direct_tls_ports = { $TLS_PORT }/" "$P/prosody.cfg.lua"
        "${AS_PROSODY[@]}" prosody --config "$P/prosody.cfg.lua" >"$WORK/prosody.stdout" 2>&1 </dev/null &
        PROSODY_PID=$!
        for i in $(seq 1 75); do
            kill -0 "$PROSODY_PID" 2>/dev/null || break
            if port_open "$C2S_PORT" && { [ "$DIRECT_TLS" = 0 ] || port_open "$TLS_PORT"; }; then
                return 0
            fi
            sleep 0.2
        done
        log "prosody try $try did not listen: $(grep -iE 'error|fail|shutting' "$P/prosody.log" 2>/dev/null | tail -2 | tr '\n' ' ')"
        stop_prosody
    done
    return 1
}
if start_prosody; then
    log "prosody pid $PROSODY_PID: STARTTLS 127.0.0.1:$C2S_PORT, direct TLS $([ "$DIRECT_TLS" = 1 ] && echo "127.0.0.1:$TLS_PORT" || echo off)"
    result INFO prosody version "$(dpkg-query -W -f='${Version}' prosody), STARTTLS port $C2S_PORT, direct TLS $([ "$DIRECT_TLS" = 1 ] && echo "port $TLS_PORT" || echo "not in this build")"
    users=(--user "alice:${PW[alice]}" --user "bob:${PW[bob]}" --user "carol:${PW[carol]}")
    tls_arg=(); [ "$DIRECT_TLS" = 1 ] && tls_arg=(--tls-port "$TLS_PORT")
    run_py prosody muc-prosody muc_scenarios.py --starttls-port "$C2S_PORT" "${tls_arg[@]}" \
        --domain "$DOMAIN" --muc "$MUC" --ca "$P/cert.pem" "${users[@]}" --profile xep0045 --create-rooms \
        --json "$WORK/prosody.json" --debug-log "$RESULTS/xmpp-slixmpp-prosody.log"
    run_py prosody resume-prosody resume_check.py --starttls-port "$C2S_PORT" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$P/cert.pem" --user "alice:${PW[alice]}" --user "bob:${PW[bob]}" \
        --json "$WORK/prosody-resume.json" --debug-log "$RESULTS/xmpp-slixmpp-resume-prosody.log"
    run_py prosody aioxmpp-prosody aioxmpp_check.py --port "$C2S_PORT" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$P/cert.pem" "${users[@]}"
    run_py prosody compliance-prosody compliance.py --port "$C2S_PORT" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$P/cert.pem" --user "alice:${PW[alice]}"
else
    result FAIL prosody start "prosody did not listen (3 tries of 15 s): $(tail -3 "$WORK/prosody.stdout" 2>/dev/null | tr '\n' ' ')"
fi
stop_prosody
cp "$P/prosody.log" "$RESULTS/xmpp-prosody-server.log" 2>/dev/null || true

# ---- perch --------------------------------------------------------------------------------
PERCH_RAN=0
run_perch() {
    if ! build_perch; then
        result FAIL perch build "no perch binary (cargo build failed or no cargo)"
        return 0
    fi
    local data="$WORK/perch-data" cfg="$WORK/perch.toml" plog="$RESULTS/perch-xmpp.log"
    cat >"$cfg" <<TOML
domain = "$DOMAIN"

[listen]
tls = "127.0.0.1:0"

[tls]
dev_cert_names = ["$DOMAIN", "$MUC"]

[xmpp]
listen = "127.0.0.1:0"
listen_tls = "127.0.0.1:0"
TOML
    if ! "$PERCH" init --config "$cfg" --data "$data" >"$WORK/perch-init.log" 2>&1; then
        result FAIL perch setup "perch init failed: $(head -2 "$WORK/perch-init.log" | tr '\n' ' ')"
        return 0
    fi
    local admin=("$PERCH" admin --config "$cfg" --data "$data") u
    {
        for u in alice bob carol; do
            "${admin[@]}" user add "$u@$DOMAIN" --name "${u^}" --password-stdin <<<"${PW[$u]}"
        done
        "${admin[@]}" category create Chat
        "${admin[@]}" category set Chat --add-allowed "domain:$DOMAIN" --add-creators "alice@$DOMAIN"
        "${admin[@]}" room create Lobby --category Chat --privacy open
        "${admin[@]}" room set Lobby --add-managers "alice@$DOMAIN"
        "${admin[@]}" room create Team --category Chat --privacy closed
        "${admin[@]}" room set Team --add-members "alice@$DOMAIN" "bob@$DOMAIN" --add-managers "alice@$DOMAIN"
        "${admin[@]}" room create Hideout --category Chat --privacy secret
        "${admin[@]}" room set Hideout --add-members "alice@$DOMAIN" --add-managers "alice@$DOMAIN"
        "${admin[@]}" room create Stage --category Chat --privacy open --type auditorium
        "${admin[@]}" room set Stage --add-members "alice@$DOMAIN" --add-managers "alice@$DOMAIN" \
            --add-presenters "alice@$DOMAIN"
    } >"$WORK/perch-admin.log" 2>&1 || {
        result FAIL perch setup "perch admin failed: $(tail -2 "$WORK/perch-admin.log" | tr '\n' ' ')"; return 0; }
    if ! start_perch "$cfg" "$data" "$plog"; then
        result FAIL perch start "perch did not start: $(tail -2 "$plog" | tr '\n' ' ')"
        return 0
    fi
    local starttls="" direct="" i
    for i in $(seq 1 50); do
        starttls="$(sed -n 's/.*listening for XMPP (STARTTLS) addr=\([^ ]*\).*/\1/p' "$plog" | head -1)"
        direct="$(sed -n 's/.*listening for XMPP over TLS addr=\([^ ]*\).*/\1/p' "$plog" | head -1)"
        [ -n "$starttls" ] && [ -n "$direct" ] && break
        sleep 0.2
    done
    if [ -z "$starttls" ]; then
        result FAIL perch listener "perch started but logged no 'listening for XMPP (STARTTLS) addr=' line"
        stop_perch
        return 0
    fi
    PERCH_RAN=1
    local cert
    cert="$(sed -n 's/.*TLS certificate cert=\([^ ]*\).*/\1/p' "$plog" | head -1)"
    [ -n "$cert" ] || cert="$data/dev-cert.pem"
    result INFO perch listener "STARTTLS $starttls, direct TLS ${direct:-none}"
    local users=(--user "alice:${PW[alice]}" --user "bob:${PW[bob]}" --user "carol:${PW[carol]}")
    local tls_arg=(); [ -n "$direct" ] && tls_arg=(--tls-port "${direct##*:}")
    run_py perch muc-perch muc_scenarios.py --starttls-port "${starttls##*:}" "${tls_arg[@]}" \
        --domain "$DOMAIN" --muc "$MUC" --ca "$cert" "${users[@]}" --profile lync \
        --json "$WORK/perch.json" --debug-log "$RESULTS/xmpp-slixmpp-perch.log"
    run_py perch resume-perch resume_check.py --starttls-port "${starttls##*:}" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$cert" --user "alice:${PW[alice]}" --user "bob:${PW[bob]}" \
        --json "$WORK/perch-resume.json" --debug-log "$RESULTS/xmpp-slixmpp-resume-perch.log"
    run_py perch aioxmpp-perch aioxmpp_check.py --port "${starttls##*:}" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$cert" "${users[@]}"
    run_py perch compliance-perch compliance.py --port "${starttls##*:}" --domain "$DOMAIN" --muc "$MUC" \
        --ca "$cert" --user "alice:${PW[alice]}"
    stop_perch
}
run_perch

# ---- the differences table ----------------------------------------------------------------
"$VENV/bin/python" "$HERE/diff.py" --prosody "$WORK/prosody.json" --prosody "$WORK/prosody-resume.json" \
    --perch "$WORK/perch.json" --perch "$WORK/perch-resume.json" \
    --perch-ran "$PERCH_RAN" --intended "$HERE/INTENDED.md" --out "$DIFF" >"$WORK/diff.out" 2>&1 || true
while IFS= read -r line; do
    case "$line" in PASS\ * | FAIL\ * | SKIP\ * | INFO\ *) result "${line%% *}" diff "${line#* }" ;; esac
done <"$WORK/diff.out"

{
    echo "# perch conformance: XMPP (slixmpp $("$VENV/bin/python" -c 'import slixmpp; print(slixmpp.__version__)'), aioxmpp $("$VENV/bin/python" -c 'import aioxmpp; print(aioxmpp.__version__)'); Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null)), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
    printf '%s\n' "${LINES[@]}"
} >"$OUT"
fails=$(grep -c '^FAIL ' "$OUT" || true)
echo "== XMPP conformance ($(since "$T0")s): $(grep -c '^PASS ' "$OUT" || true) PASS, $fails FAIL, $(grep -c '^SKIP ' "$OUT" || true) SKIP; differences: $DIFF"
[ "$fails" = 0 ]
