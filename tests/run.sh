#!/usr/bin/env bash
# Runs the whole oap-rs test suite on a fresh machine of the project's kind (Debian 12, Rust
# toolchain with cargo-nextest), installing first whatever test servers the suite needs.
#
# What the suite needs beyond cargo is installed here, once; the tests start it themselves:
# - the official SkyWalking Python agent, with Flask and requests (tests/setup-python-agent.sh);
# - an Elasticsearch-API server, osmem-server (tests/setup-elasticsearch.sh);
# - etcd, from Debian (tests/setup-etcd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
bash tests/setup-python-agent.sh
bash tests/setup-elasticsearch.sh
bash tests/setup-etcd.sh

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tests"
# The tests' scratch directories (servers' data and logs, etcd's data) go under one directory per
# run, removed when the run ends however it ends; OAP_KEEP_SCRATCH=1 keeps it to look into.
scratch="$(mktemp -d -t oap-suite-XXXXXX)"
if [ -z "${OAP_KEEP_SCRATCH:-}" ]; then
  trap 'rm -rf "$scratch"' EXIT
else
  echo "scratch directories under $scratch"
fi
export TMPDIR="$scratch"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
