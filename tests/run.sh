#!/usr/bin/env bash
# Runs the whole oap-rs test suite on a fresh machine of the project's kind (Debian 12, Rust
# toolchain with cargo-nextest), installing first whatever test servers the suite needs.
#
# Today the suite needs nothing beyond cargo: no test server is used yet. Later issues add
# their servers here (an Elasticsearch-API server, etcd, the Python agent), started by the
# tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
