#!/usr/bin/env bash
# Tests of deploy/ (the Helm chart, its RBAC, the examples): installs what they need into
# <repo>/.venv (requirements.txt from PyPI; the Prometheus Operator's ServiceMonitor schema
# from npm into .venv/node), builds the `modelgate` binary they run, and runs pytest.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

NODE_SCHEMAS="@kubernetes-models/prometheus-operator@6.0.0"

if [ ! -x "$repo/.venv/bin/python" ]; then
  echo "deploy/tests: creating $repo/.venv"
  python3 -m venv "$repo/.venv"
fi
stamp="$repo/.venv/.deploy-tests-requirements"
if ! cmp -s deploy/tests/requirements.txt "$stamp"; then
  echo "deploy/tests: installing deploy/tests/requirements.txt into $repo/.venv"
  "$repo/.venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/tests/requirements.txt
  cp deploy/tests/requirements.txt "$stamp"
fi
command -v node >/dev/null || { echo "deploy/tests: node is needed (the ServiceMonitor schema check)" >&2; exit 1; }
node_stamp="$repo/.venv/node/.installed"
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$NODE_SCHEMAS" ]; then
  echo "deploy/tests: installing $NODE_SCHEMAS into $repo/.venv/node"
  mkdir -p "$repo/.venv/node"
  npm install --silent --no-audit --no-fund --prefix "$repo/.venv/node" "$NODE_SCHEMAS"
  echo "$NODE_SCHEMAS" > "$node_stamp"
fi

echo "deploy/tests: building modelgate"
cargo build --quiet -p modelgate-controller --bin modelgate
export MODELGATE_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/modelgate"

echo "deploy/tests: pytest deploy/tests"
exec "$repo/.venv/bin/python" -m pytest -p no:cacheprovider deploy/tests
