# Sourced by the tests/setup-*.sh scripts: `fresh_venv DIR` exits the calling script when DIR
# is a complete virtualenv already (it holds the `.oap-ready` marker that `venv_ready DIR`
# writes), and otherwise makes DIR a new, empty one, installing python3-venv first if needed.

fresh_venv() {
  local venv=$1
  if [ -f "$venv/.oap-ready" ]; then
    exit 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
}

venv_ready() {
  touch "$1/.oap-ready"
}
