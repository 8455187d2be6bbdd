#!/usr/bin/env bash
# Installs the Elasticsearch-API test server the storage tests start themselves: osmem-server
# (a PyPI wheel with a static binary; in memory, the OpenSearch 3.x API, which Elasticsearch
# 7.x/8.x and OpenSearch 2.x clients speak) into target/test-deps/elasticsearch, or
# $OAP_ES_VENV. Prints nothing and does nothing once installed. The tests find the binary
# through `target/test-deps/elasticsearch/osmem-server` (a link written here), or $OAP_ES_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/venv.sh

VENV=${OAP_ES_VENV:-$PWD/target/test-deps/elasticsearch}
fresh_venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check osmem-server==0.1.6
BIN=$("$VENV/bin/python" -c 'import osmem_server; print(osmem_server.resolve_binary())')
chmod +x "$BIN"
ln -sf "$BIN" "$VENV/osmem-server"
"$VENV/osmem-server" -version
venv_ready "$VENV"
echo "elasticsearch-API test server ready in $VENV"
