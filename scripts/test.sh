#!/usr/bin/env bash
# Runs every test of the workspace: the filter core's unit tests, the controller's, the
# end-to-end tests that run the built filter inside a real Envoy, a bounded fuzzing run of
# every cargo-fuzz target, a smoke run of the benchmark, and the tests of deploy/
# (the Helm chart rendered by Helm's engine, its RBAC, the examples). Sets up what they need
# first (scripts/setup.sh, deploy/tests/run.sh). Fails if any test fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# A user's clone has nothing beside it: no tracked file may read outside the repository.
echo "test: python3 scripts/check-self-contained.py"
python3 "$repo/scripts/check-self-contained.py"
bash "$repo/scripts/setup.sh"
# --no-fail-fast: one failing test binary must not hide the results of the others.
echo "test: cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast
# Every fuzz target for a bounded time from its committed seeds, which replays every crash
# found so far (fuzz/README.md). The instrumented build is the slow part (about 5 minutes).
echo "test: FUZZ_SECONDS=\${FUZZ_SECONDS:-30} bash scripts/fuzz.sh"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash "$repo/scripts/fuzz.sh"
# The benchmark harness must keep working: a few seconds of every configuration under load,
# answers checked, figures not asserted.
echo "test: bash scripts/bench.sh --smoke"
bash "$repo/scripts/bench.sh" --smoke > /dev/null
echo "test: deploy/tests (the Helm chart, its RBAC, the examples)"
bash "$repo/deploy/tests/run.sh"
