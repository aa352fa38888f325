#!/usr/bin/env bash
# Benchmarks modelgate in a real Envoy (BENCHMARKS.md says what and how): sets up what it
# needs (scripts/setup.sh: Envoy in .venv, the filter; wrk from the distribution's packages),
# builds the no-op filter, the controller and the harness, and runs them.
#
#   bash scripts/bench.sh            # the full run (about 20 minutes on 2 cores)
#   bash scripts/bench.sh --quick    # one short round, fleets up to 10,000 models (about a minute)
#   bash scripts/bench.sh --smoke    # seconds: every configuration answers as it must under load
#
# Other options go to the harness (`--rounds`, `--duration`, `--only compare|scale|channel`, ...;
# see `modelgate-bench --help`). The report is written to target/bench/report.md, the raw
# figures to target/bench/results.json (target/bench/quick/ and target/bench/smoke/ for the
# short runs, so the test command's smoke run never overwrites a real one).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash "$repo/scripts/setup.sh"
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: wrk is not installed: the harness falls back to its built-in load loop, whose figures do not compare with wrk's"
fi

# The smoke run reuses the debug build `cargo test` just made; measurements need release.
profile=release
for arg in "$@"; do
  if [ "$arg" = "--smoke" ]; then profile=debug; fi
done
profile_flag=()
if [ "$profile" = release ]; then profile_flag=(--release); fi

echo "bench: building the no-op filter, the controller and the harness ($profile)"
cargo build --quiet -p modelgate-bench-noop-filter --target wasm32-wasip1 --release
cargo build --quiet "${profile_flag[@]}" -p modelgate-controller --bin modelgate -p modelgate-bench --bin modelgate-bench

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
export MODELGATE_BENCH_COMMAND="bash scripts/bench.sh${*:+ $*}"
exec "$target_dir/$profile/modelgate-bench" "$@"
