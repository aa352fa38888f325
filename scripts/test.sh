#!/usr/bin/env bash
# Checks formatting, lints (host and wasm32), docs and the filter module's size budget, then
# runs every test of the workspace: the filter core's unit tests, the controller's, the
# end-to-end tests that run the built filter inside a real Envoy, the demo, a bounded fuzzing run of
# every cargo-fuzz target, a smoke run of the benchmark, and the tests of deploy/
# (the Helm chart rendered by Helm's engine, its RBAC, the examples). Sets up what they need
# first (scripts/setup.sh, deploy/tests/run.sh). Fails if any test fails.
#
#   bash scripts/test.sh              # every stage, in order: what CI runs (.ci/run)
#   bash scripts/test.sh lint test    # only these stages, in the order given
#
# Stages: self-contained, setup, lint, test, demo, fuzz, bench-smoke, chart. Every stage but
# self-contained needs setup to have run once (Envoy in .venv, the wasm32 target, the
# filter built).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

all_stages=(self-contained setup lint test demo fuzz bench-smoke chart)

# A user's clone has nothing beside it: no tracked file may read outside the repository.
stage_self_contained() {
  echo "test: python3 scripts/check-self-contained.py"
  python3 "$repo/scripts/check-self-contained.py"
}

stage_setup() {
  bash "$repo/scripts/setup.sh"
}

# The gate before the tests: formatting, lints as errors (the filter's
# deny(unwrap_used, expect_used, panic) included, on the target it ships for), docs
# without warnings, and the module's size (it is compiled by every gateway worker's V8).
stage_lint() {
  echo "test: cargo fmt --all --check"
  cargo fmt --all --check
  echo "test: cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --quiet --workspace --all-targets -- -D warnings
  echo "test: cargo clippy -p modelgate-filter --target wasm32-wasip1 --release -- -D warnings"
  cargo clippy --quiet -p modelgate-filter --target wasm32-wasip1 --release -- -D warnings
  echo "test: RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
  RUSTDOCFLAGS="-D warnings" cargo doc --quiet --workspace --no-deps
  local wasm="${CARGO_TARGET_DIR:-$repo/target}/wasm32-wasip1/release/modelgate_filter.wasm"
  local budget_bytes=600000
  local wasm_bytes
  wasm_bytes=$(wc -c < "$wasm")
  echo "test: modelgate_filter.wasm is $wasm_bytes bytes (budget $budget_bytes)"
  if [ "$wasm_bytes" -gt "$budget_bytes" ]; then
    echo "test: the filter module is over its size budget (BENCHMARKS.md: its size is gateway memory)" >&2
    exit 1
  fi
}

# --no-fail-fast: one failing test binary must not hide the results of the others.
stage_test() {
  echo "test: cargo test --workspace --no-fail-fast"
  cargo test --workspace --no-fail-fast
  # The signature checks again as the filter ships them: wasm32 with SIMD, in node's V8.
  echo "test: cargo test --release -p modelgate-verify --target wasm32-wasip1"
  cargo test --quiet --release -p modelgate-verify --target wasm32-wasip1
}

# The demo as a newcomer runs it (deploy/examples/demo/ through check and render into the
# real Envoy): it exits non-zero on any deviation. A few seconds once the tests are built.
stage_demo() {
  echo "test: bash scripts/demo.sh (without its set-up, done by the setup stage)"
  cargo run --quiet -p modelgate-e2e --bin demo
}

# Every fuzz target for a bounded time from its committed seeds, which replays every crash
# found so far (fuzz/README.md). The instrumented build is the slow part (about 5 minutes).
stage_fuzz() {
  echo "test: FUZZ_SECONDS=\${FUZZ_SECONDS:-30} bash scripts/fuzz.sh"
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash "$repo/scripts/fuzz.sh"
}

# The benchmark harness must keep working: a few seconds of every configuration under load,
# answers checked, figures not asserted.
stage_bench_smoke() {
  echo "test: bash scripts/bench.sh --smoke"
  bash "$repo/scripts/bench.sh" --smoke > /dev/null
  # The running controller against the API server double: 200 models converge, and a
  # model added and an annotation changed reach the extension object (about 20 s).
  echo "test: bash scripts/bench.sh --smoke --only controller"
  bash "$repo/scripts/bench.sh" --smoke --only controller > /dev/null
}

stage_chart() {
  echo "test: deploy/tests (the Helm chart, its RBAC, the examples)"
  bash "$repo/deploy/tests/run.sh"
}

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
  stages=("${all_stages[@]}")
fi
for stage in "${stages[@]}"; do
  if [[ " ${all_stages[*]} " != *" $stage "* ]]; then
    echo "usage: bash scripts/test.sh [STAGE...]; stages, in CI's order: ${all_stages[*]}" >&2
    exit 2
  fi
done

echo "test: commit $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
for stage in "${stages[@]}"; do
  "stage_${stage//-/_}"
done
