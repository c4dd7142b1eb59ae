#!/usr/bin/env bash
# The admin API's description, schemas/openapi.json, checked by a real OpenAPI 3.1
# validator (openapi-spec-validator, PyPI, Apache-2.0) in a fresh venv. The integration test
# `http::the_admin_api_does_what_perch_admin_does_with_a_token` checks the other half: that
# every operation it describes is routed by perch.
set -euo pipefail
CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../lib.sh
source "$CONF/lib.sh"
VALIDATOR_VERSION=0.7.1
SPEC="$CONF/../schemas/openapi.json"
OUT="$CONF/results/openapi.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/perch-openapi.XXXXXX")"
CLEANUP_DIRS+=("$WORK")
T0=$(date +%s)

if ! /usr/bin/python3 -m venv "$WORK/venv" >/dev/null 2>&1; then
    apt_install python3 python3-venv
    /usr/bin/python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check \
    "openapi-spec-validator==$VALIDATOR_VERSION" >"$WORK/pip.log" 2>&1 ||
    { log "cannot install openapi-spec-validator: $(tail -3 "$WORK/pip.log" | tr '\n' ' ')"; exit 1; }

line=$("$WORK/venv/bin/python" - "$SPEC" <<'PY'
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
spec, _ = read_from_filename(sys.argv[1])
try:
    validate(spec)
except Exception as error:  # the validator's own error types vary by version
    print(f"FAIL openapi: {str(error).splitlines()[0]}")
    sys.exit(0)
ops = sum(len(v) for v in spec["paths"].values())
print(f"PASS openapi: {spec['openapi']} document valid, {len(spec['paths'])} paths, {ops} operations")
PY
)
{
    echo "# perch conformance: schemas/openapi.json with openapi-spec-validator $VALIDATOR_VERSION, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(since "$T0")s"
    echo "$line"
} >"$OUT"
echo "== OpenAPI validation ($(since "$T0")s): $line"
[[ "$line" == PASS* ]]
