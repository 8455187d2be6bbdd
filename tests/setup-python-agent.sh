#!/usr/bin/env bash
# Installs the official SkyWalking Python agent (and Flask, requests) into a virtualenv for the
# Python-agent integration test: target/test-deps/python-agent, or $OAP_PYTHON_AGENT_VENV.
#
# The agent's 1.3.0 wheel lacks its generated protocol modules, so it is built from source
# (--no-binary). Versions are pinned to those the fixtures were recorded with. Running it again
# does nothing once the venv is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${OAP_PYTHON_AGENT_VENV:-$PWD/target/test-deps/python-agent}
MARKER="$VENV/.oap-ready"
if [ -f "$MARKER" ]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  --no-binary apache-skywalking \
  apache-skywalking==1.3.0 flask==3.1.3 requests==2.34.2
"$VENV/bin/python" -c 'import skywalking.protocol.language_agent.Tracing_pb2, flask, requests'
touch "$MARKER"
echo "python agent ready in $VENV"
