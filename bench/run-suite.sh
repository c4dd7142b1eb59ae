#!/usr/bin/env bash
# Runs the scenarios of bench/README.md's results table, each against a fresh perch on a
# fresh copy of its provisioned data, and keeps every report under $OUT.
#
#   bench/run-suite.sh [BIN_DIR] [OUT_DIR]      # defaults: target/release, /tmp/perch-suite
#   SCENARIOS="fanout16k siege" bench/run-suite.sh   # only some
#
# perch listens on 127.0.0.1:6060 (TCP) and :6061 (TLS), so a perch on the default ports
# is left alone. Needs `cargo build --release` first; takes about 15 minutes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release}
out=${2:-/tmp/perch-suite}
load="$bin/perch-load"
mkdir -p "$out"
export PERCH_LISTEN__TCP=127.0.0.1:6060 PERCH_LISTEN__TLS=127.0.0.1:6061

provision() { # NAME ARGS...: a data directory made once per suite
    local name=$1; shift
    [ -d "$out/base-$name" ] || "$load" provision --data "$out/base-$name" "$@" >/dev/null
}

run() { # LABEL BASE SCENARIO ARGS...: fresh copy, fresh perch, one perch-load run
    local label=$1 base=$2; shift 2
    local data="$out/run-$label"
    rm -rf "$data"
    cp -a "$out/base-$base" "$data"
    "$bin/perch" serve --config "$root/bench/perch-bench.toml" --data "$data" 2>"$out/$label.server.log" &
    local pid=$!
    sleep 1.5
    local target=127.0.0.1:6060
    case " $* " in *" --tls "*) target=127.0.0.1:6061 ;; esac
    echo "== $label $(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/$label.txt"
    "$load" "$@" --target "$target" --data "$data" --server-pid "$pid" --quiet >>"$out/$label.txt" 2>&1 || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    grep -E "^ +(logins|joins|acked|deliveries|delivery|last delivery|ack p50|errors|server|.* / )|==|attack=" "$out/$label.txt" || true
}

want() { [ -z "${SCENARIOS:-}" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

provision rooms --users 5000 --rooms-of 30:4000 --rooms-of 150:67 --rooms-of 1000:1 --rooms-of 1:5000
provision big --users 16000 --rooms-of 16000:1
provision lync --users 5000 --lync-model
provision siege --users 100 --rooms-of 10:10 --password s3cret

want connections && run connections rooms connections --connections 5000 --rooms-per-user 0 --duration 20 --compare-null
want tls && run tls rooms connections --tls --connections 5000 --rooms-per-user 0 --duration 20 --compare-null
want tls24 && run tls24 rooms connections --tls --room-size 30 --connections 2000 --duration 20 --compare-null
want fanout1k && run fanout1k rooms fanout --connections 1000 --rate 20 --duration 20 --compare-null
want fanout16k && run fanout16k big fanout --connections 16000 --rate 1 --duration 20 --drain 10 --compare-null
want ingest && run ingest rooms ingest --room-size 1 --connections 400 --in-flight 16 --duration 20 --compare-sqlite "$out" --sqlite-batch 1024
want ingest-schema && run ingest-schema rooms ingest --room-size 1 --connections 400 --in-flight 16 --duration 20 --compare-sqlite "$out" --sqlite-batch 1024 --sqlite-perch-schema
want joinstorm && run joinstorm rooms join-storm --room-size 30 --connections 2000 --duration 20 --compare-null
want lync && run lync lync lync-model --connections 5000 --factor 100 --duration 30 --drain 10 --compare-null
want siege && run siege siege siege --tls --password s3cret --connections 5000 --probes 30 --duration 30
echo "reports in $out"
