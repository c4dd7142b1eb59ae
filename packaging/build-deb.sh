#!/usr/bin/env bash
# Builds perch's Debian package into target/debian/: a release binary, then its manual pages
# and shell completions (generated from the command-line definition), then cargo-deb with
# the assets listed in Cargo.toml's [package.metadata.deb].
#
#   cargo install cargo-deb --locked      # once
#   bash packaging/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }
cargo build --release -p perch
out=target/packaging
rm -rf "$out" && mkdir -p "$out/man" "$out/completions"
target/release/perch generate man --out "$out/man"
target/release/perch generate completions bash > "$out/completions/perch.bash"
target/release/perch generate completions zsh > "$out/completions/_perch"
target/release/perch generate completions fish > "$out/completions/perch.fish"
gzip -9n "$out"/man/*.1
cargo deb -p perch --no-build "$@"
