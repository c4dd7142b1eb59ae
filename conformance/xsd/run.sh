#!/usr/bin/env bash
# XCCOS schema check: every envelope the transcripts exchange with perch, validated by xmllint
# (libxml2) against schemas/xccos.xsd.
#
#   bash conformance/xsd/run.sh
#
# Runs `cargo test --test integration transcripts`, which replays conformance/transcripts/*.txt
# and leaves each envelope in TARGET/tmp/xccos-envelopes/accepted/NNNN.xml (client → perch) or
# emitted/NNNN.xml (perch → client), TARGET being cargo's target directory. Each file must pass
# `xmllint --noout --schema schemas/xccos.xsd`. Then the hand-written envelopes in
# conformance/xsd/valid/ must validate, and those in conformance/xsd/invalid/ must be rejected
# for the reason their `expect-error:` comment names, so the schema cannot be lax unnoticed.
#
# Writes conformance/results/xsd.txt: one PASS/FAIL line per file and a RESULT line. Exits
# non-zero if the replay fails, if any file fails, or if fewer than 20 envelopes were found.
set -euo pipefail

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

T0=$(date +%s)
XSD_DIR="$CONF/xsd"
SCHEMA="$ROOT/schemas/xccos.xsd"
OUT="$RESULTS/xsd.txt"
MIN_ENVELOPES=20

rm -f "$OUT"

if ! command -v xmllint >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "xmllint is missing (Debian package libxml2-utils) and installing it needs root"
        exit 2
    fi
    apt_install libxml2-utils || { log "apt-get could not install libxml2-utils"; exit 2; }
    command -v xmllint >/dev/null 2>&1 || { log "no xmllint on PATH after installing libxml2-utils"; exit 2; }
fi
XMLLINT_VERSION="$(xmllint --version 2>&1 | sed -n 's/.*using libxml version \([0-9]*\).*/\1/p' | head -1)"

# cargo's target directory as cargo resolves it (CARGO_TARGET_DIR, .cargo/config.toml), from
# `cargo metadata`; CARGO_TARGET_DIR or ROOT/target if that cannot be read.
target_dir() {
    local meta dir=""
    if meta=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null); then
        dir=$(printf '%s' "$meta" | grep -o '"target_directory":"[^"]*"' | head -1 |
            sed 's/^"target_directory":"//; s/"$//')
    fi
    if [ -z "$dir" ]; then
        dir="${CARGO_TARGET_DIR:-target}"
        case "$dir" in /*) ;; *) dir="$ROOT/$dir" ;; esac
    fi
    printf '%s\n' "$dir"
}

# The envelopes: from a fresh replay, or as they are in XSD_ENVELOPES_DIR (no cargo run).
REPLAY="not run"
REPLAY_RC=0
if [ -n "${XSD_ENVELOPES_DIR:-}" ]; then
    ENVELOPES="$XSD_ENVELOPES_DIR"
    log "validating the envelopes already in $ENVELOPES (XSD_ENVELOPES_DIR; no replay)"
    REPLAY="XSD_ENVELOPES_DIR, not replayed"
else
    command -v cargo >/dev/null 2>&1 || { log "cargo is missing: it is needed to replay the transcripts"; exit 2; }
    ENVELOPES="$(target_dir)/tmp/xccos-envelopes"
    # Envelopes from an earlier run must not stand in for this one's.
    rm -rf "$ENVELOPES/accepted" "$ENVELOPES/emitted"
    log "cargo test --test integration transcripts (envelopes to $ENVELOPES)"
    t=$(date +%s)
    (cd "$ROOT" && cargo test --test integration transcripts) >&2 || REPLAY_RC=$?
    REPLAY="cargo test --test integration transcripts: exit $REPLAY_RC in $(since "$t")s"
    [ "$REPLAY_RC" = 0 ] || log "the transcript replay failed (exit $REPLAY_RC); its envelopes are checked anyway"
fi

LINES=()
FAILED=()
n_pass=0 n_fail=0

# check FILE LABEL: one PASS/FAIL line for a file that must validate.
check_valid() {
    local file="$1" label="$2" msg rc=0
    msg=$(xmllint --noout --schema "$SCHEMA" "$file" 2>&1) || rc=$?
    if [ "$rc" = 0 ]; then
        LINES+=("PASS $label")
        n_pass=$((n_pass + 1))
    else
        LINES+=("FAIL $label: xmllint exit $rc")
        while IFS= read -r line; do
            LINES+=("#   $label:${line#"$file":}")
        done < <(grep -v ' fails to validate$' <<<"$msg" | head -5 || true)
        FAILED+=("$label")
        n_fail=$((n_fail + 1))
    fi
}

# check_invalid FILE LABEL: the file must be rejected by schema validation (xmllint exit 3, not a
# parse error) with an error that contains its `expect-error: TEXT -->` comment.
check_invalid() {
    local file="$1" label="$2" msg rc=0 expect
    expect=$(sed -n 's/.*expect-error: \(.*\) -->.*/\1/p' "$file" | head -1)
    msg=$(xmllint --noout --schema "$SCHEMA" "$file" 2>&1) || rc=$?
    if [ -z "$expect" ]; then
        LINES+=("FAIL $label: no 'expect-error: TEXT -->' comment says why it is invalid")
    elif [ "$rc" = 0 ]; then
        LINES+=("FAIL $label: validates, but the schema must reject it ($expect)")
    elif [ "$rc" != 3 ]; then
        LINES+=("FAIL $label: xmllint exit $rc, not a validation error (3): $(head -1 <<<"$msg")")
    elif ! grep -qF -- "$expect" <<<"$msg"; then
        LINES+=("FAIL $label: rejected for another reason than '$expect': $(grep -v ' fails to validate$' <<<"$msg" | head -1 || true)")
    else
        LINES+=("PASS $label: rejected ($expect)")
        n_pass=$((n_pass + 1))
        return 0
    fi
    FAILED+=("$label")
    n_fail=$((n_fail + 1))
}

# A schema that does not compile would make every invalid sample "rejected": stop first.
schema_rc=0
schema_msg=$(printf '<x/>' | xmllint --noout --schema "$SCHEMA" - 2>&1) || schema_rc=$?
if [ "$schema_rc" != 3 ]; then
    log "schemas/xccos.xsd does not compile (xmllint exit $schema_rc):"
    printf '%s\n' "$schema_msg" | head -20 >&2
    {
        echo "# perch conformance: XCCOS envelopes against schemas/xccos.xsd"
        echo "FAIL schemas/xccos.xsd: does not compile (xmllint exit $schema_rc)"
        printf '%s\n' "$schema_msg" | head -20 | sed 's/^/#   /'
    } >"$OUT"
    exit 1
fi

shopt -s nullglob
accepted=("$ENVELOPES"/accepted/*.xml)
emitted=("$ENVELOPES"/emitted/*.xml)
for f in "${accepted[@]}" "${emitted[@]}"; do
    check_valid "$f" "${f#"$ENVELOPES"/}"
done
n_envelopes=$(( ${#accepted[@]} + ${#emitted[@]} ))
env_fail=$n_fail

valid_samples=("$XSD_DIR"/valid/*.xml)
invalid_samples=("$XSD_DIR"/invalid/*.xml)
for f in "${valid_samples[@]}"; do
    check_valid "$f" "valid/$(basename "$f")"
done
before=$n_fail
for f in "${invalid_samples[@]}"; do
    check_invalid "$f" "invalid/$(basename "$f")"
done
invalid_missed=$((n_fail - before))
shopt -u nullglob

PROBLEMS=()
[ "$REPLAY_RC" = 0 ] || PROBLEMS+=("the transcript replay failed (exit $REPLAY_RC)")
if [ "$n_envelopes" -lt "$MIN_ENVELOPES" ]; then
    PROBLEMS+=("only $n_envelopes envelopes in $ENVELOPES (at least $MIN_ENVELOPES expected)")
fi
[ "${#accepted[@]}" -gt 0 ] || PROBLEMS+=("no accepted (client → perch) envelopes")
[ "${#emitted[@]}" -gt 0 ] || PROBLEMS+=("no emitted (perch → client) envelopes")
[ "${#invalid_samples[@]}" -gt 0 ] || PROBLEMS+=("no invalid samples in $XSD_DIR/invalid")
[ "$n_fail" = 0 ] || PROBLEMS+=("$n_fail file(s) failed")

RESULT="RESULT $n_envelopes envelopes (${#accepted[@]} accepted, ${#emitted[@]} emitted): $((n_envelopes - env_fail)) PASS, $env_fail FAIL; samples: ${#valid_samples[@]} valid, ${#invalid_samples[@]} invalid ($invalid_missed not rejected as expected); $n_pass PASS, $n_fail FAIL in all"
{
    echo "# perch conformance: XCCOS envelopes against schemas/xccos.xsd (xmllint, libxml2 ${XMLLINT_VERSION:-?})"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ); envelopes: $REPLAY; suite $(since "$T0")s"
    printf '%s\n' "${LINES[@]+"${LINES[@]}"}"
    echo "$RESULT"
    for p in "${PROBLEMS[@]+"${PROBLEMS[@]}"}"; do echo "# $p"; done
} >"$OUT"

echo "== XCCOS schema conformance ($(since "$T0")s)"
echo "  $RESULT"
for s in "${FAILED[@]+"${FAILED[@]}"}"; do echo "  FAIL $s"; done
if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    for p in "${PROBLEMS[@]}"; do echo "  $p"; done
    echo "  details: $OUT"
    exit 1
fi
echo "  every envelope matches schemas/xccos.xsd ($OUT)"
