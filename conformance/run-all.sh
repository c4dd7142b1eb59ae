#!/usr/bin/env bash
# Runs every real-client conformance suite against a freshly built perch and prints a summary.
#
#   bash conformance/run-all.sh
#
# Each suite starts (and always stops) its own perch on free loopback ports. Exit status is 0
# only if every suite passed its required steps. See conformance/README.md.
set -euo pipefail
CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESULTS="$CONF/results"
mkdir -p "$RESULTS"

SUITES=(sipe sipsak ntlm xsd openapi web xmpp cross)
SUITE_TIMEOUT="${CONFORMANCE_SUITE_TIMEOUT:-540}"
declare -A STATUS TOOK
failed=0

# Build once up front, so the suites' own (no-op) builds do not count against their time.
if [ "${CONFORMANCE_SKIP_BUILD:-0}" != 1 ] && command -v cargo >/dev/null 2>&1; then
    echo "== cargo build --release"
    (cd "$CONF/.." && cargo build --release --quiet)
fi

for s in "${SUITES[@]}"; do
    echo "== conformance suite: $s"
    t=$(date +%s)
    rc=0
    timeout -k 15 "$SUITE_TIMEOUT" bash "$CONF/$s/run.sh" </dev/null || rc=$?
    TOOK[$s]=$(( $(date +%s) - t ))
    if [ "$rc" = 0 ]; then
        STATUS[$s]=PASS
    else
        STATUS[$s]="FAIL (exit $rc$([ "$rc" = 124 ] && echo ", timed out after ${SUITE_TIMEOUT}s"))"
        failed=$((failed + 1))
    fi
done

echo
echo "== conformance summary"
for s in "${SUITES[@]}"; do
    printf '  %-8s %s in %ss\n' "$s" "${STATUS[$s]}" "${TOOK[$s]}"
done
for f in sipe-connect-tcp.txt sipe-connect-tls.txt sipe-basic-tcp.txt sipe-basic-tls.txt sipe-wrong-password-tcp.txt sipe-eviction-tls.txt sipsak-register.txt ntlm-pyspnego.txt \
    xsd.txt openapi.txt web.txt xmpp.txt cross.txt; do
    [ -f "$RESULTS/$f" ] || continue
    printf '  %-22s %s PASS, %s FAIL, %s SKIP\n' "$f" \
        "$(grep -c '^PASS ' "$RESULTS/$f" || true)" "$(grep -c '^FAIL ' "$RESULTS/$f" || true)" \
        "$(grep -c '^SKIP ' "$RESULTS/$f" || true)"
done
echo "  results and logs: $RESULTS"
echo "conformance: $(( ${#SUITES[@]} - failed )) passed, $failed failed"
[ "$failed" = 0 ]
