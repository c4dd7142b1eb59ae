#!/usr/bin/env bash
# The room page in a real browser: Debian's Chromium, headless, driven by playwright-core
# (npm, Apache-2.0, pinned in package-lock.json). perch runs on free loopback ports with a
# store made by `perch init` and `perch admin`; the browser trusts exactly perch's
# certificate (by its public key). Results: conformance/results/web.txt and web-*.png.
set -euo pipefail
CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../lib.sh
source "$CONF/lib.sh"
HERE="$CONF/web"
OUT="$RESULTS/web.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-web.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
T0=$(date +%s)

apt_install chromium openssl
command -v node >/dev/null || apt_install nodejs npm
(cd "$HERE" && npm ci --no-audit --no-fund --silent) >"$WORK/npm.log" 2>&1 ||
    { log "npm ci failed: $(tail -3 "$WORK/npm.log" | tr '\n' ' ')"; exit 1; }
build_perch

DATA="$WORK/data"
cat >"$WORK/perch.toml" <<TOML
domain = "example.test"
[listen]
tls = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
TOML
admin() { "$PERCH" admin --config "$WORK/perch.toml" --data "$DATA" "$@" >>"$WORK/admin.log"; }
"$PERCH" init --config "$WORK/perch.toml" --data "$DATA" >>"$WORK/admin.log"
admin user add alice@example.test --name Alice --password-stdin <<<'alice-web-pw'
admin user add bob@example.test --name Bob --password-stdin <<<'bob-web-pw'
admin category create Projects
admin category set Projects --add-allowed domain:example.test --add-creators alice@example.test
admin room create Ops --category Projects --privacy closed
admin room set Ops --add-managers alice@example.test --add-members bob@example.test

start_perch "$WORK/perch.toml" "$DATA" "$RESULTS/perch-web.log"
HTTP_ADDR="$(sed -n 's/.*listening for HTTPS.* addr=\([^ ]*\).*/\1/p' "$RESULTS/perch-web.log" | head -1)"
[ -n "$HTTP_ADDR" ] || { log "perch did not report its HTTPS listener"; exit 1; }
CERT="$(sed -n 's/.*TLS certificate cert=\([^ ]*\).*/\1/p' "$RESULTS/perch-web.log" | head -1)"
SPKI="$(openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)"

rm -f "$RESULTS"/web-*.png
rc=0
node "$HERE/room-page.mjs" "https://$HTTP_ADDR" "$SPKI" "$RESULTS" >"$WORK/steps.txt" 2>"$WORK/node.err" || rc=$?
# What the browser did must also be what the store holds.
if "$PERCH" admin --config "$WORK/perch.toml" --data "$DATA" room show Launch 2>&1 |
    grep -q 'bob@example.test'; then
    echo "PASS store: room Launch lists bob as a member (perch admin room show)" >>"$WORK/steps.txt"
else
    echo "FAIL store: room Launch does not list bob (perch admin room show)" >>"$WORK/steps.txt"
    rc=1
fi
{
    echo "# perch conformance: the room page in $(chromium --version 2>/dev/null | head -1) via playwright-core $(node -p 'require("'"$HERE"'/node_modules/playwright-core/package.json").version'), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
    cat "$WORK/steps.txt"
    [ -s "$WORK/node.err" ] && sed 's/^/# stderr: /' "$WORK/node.err" | head -20
    ls "$RESULTS"/web-*.png 2>/dev/null | sed "s|^$RESULTS/|# screenshot: |"
} >"$OUT"
cat "$OUT"
[ "$rc" = 0 ] && ! grep -q '^FAIL ' "$OUT"
