#!/usr/bin/env bash
# Installs etcd for the cluster tests, which start it themselves: Debian's etcd-server (3.4),
# whose v3 JSON gateway the `etcd` cluster provider speaks. Does nothing once installed.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's post-install may say it cannot start the service (no init here): harmless.
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
etcd --version | head -1
