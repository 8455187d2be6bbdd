#!/usr/bin/env bash
# Installs the official SkyWalking Python agent (and Flask, requests) into a virtualenv for the
# Python-agent integration test: target/test-deps/python-agent, or $OAP_PYTHON_AGENT_VENV.
#
# The agent's 1.3.0 wheel lacks its generated protocol modules, so it is built from source
# (--no-binary). Versions are pinned to those the fixtures were recorded with. Running it again
# does nothing once the venv is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/venv.sh

VENV=${OAP_PYTHON_AGENT_VENV:-$PWD/target/test-deps/python-agent}
fresh_venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  --no-binary apache-skywalking \
  apache-skywalking==1.3.0 flask==3.1.3 requests==2.34.2
"$VENV/bin/python" -c 'import skywalking.protocol.language_agent.Tracing_pb2, flask, requests'
venv_ready "$VENV"
echo "python agent ready in $VENV"
