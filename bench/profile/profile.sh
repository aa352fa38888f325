#!/usr/bin/env bash
# Where the modelgate filter spends its time in V8: the filter, built unstripped (same code
# and release profile, plus a name section), runs in node's V8 behind a minimal proxy-wasm
# host (filter-in-v8.mjs) on the benchmark's configuration and tokens; each workload is
# timed, then profiled with `node --cpu-prof`, and the profile summarized by function.
#
#   bash bench/profile/profile.sh [hot|cold|expired|bad-signature|missing-claim|none ...]
#
# Needs node, and the benchmark's inputs (this script makes them: modelgate-bench
# --profile-inputs). Output: per workload, µs per request in V8 (host stand-in included) and
# the shares of the filter's own time; the profiles stay in target/bench/profile/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
out="$target_dir/bench/profile"
inputs="$target_dir/bench/profile-inputs"
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(hot cold expired bad-signature missing-claim)

cargo build --quiet --release -p modelgate-controller --bin modelgate -p modelgate-bench --bin modelgate-bench
"$target_dir/release/modelgate-bench" --profile-inputs >/dev/null
CARGO_TARGET_DIR="$target_dir/bench/profile-build" CARGO_PROFILE_RELEASE_STRIP=false \
  cargo build --quiet -p modelgate-filter --target wasm32-wasip1 --release
wasm="$target_dir/bench/profile-build/wasm32-wasip1/release/modelgate_filter.wasm"

for workload in "${workloads[@]}"; do
  case "$workload" in
    hot) tokens="$inputs/hot.txt" mode=hot requests=200000 status=200 ;;
    cold) tokens="$inputs/pool.txt" mode=cold requests=9000 status=200 ;;
    none) tokens="$inputs/hot.txt" mode=none requests=200000 status=401 ;;
    missing-claim) tokens="$inputs/$workload.txt" mode=hot requests=20000 status=403 ;;
    *) tokens="$inputs/$workload.txt" mode=hot requests=20000 status=401 ;;
  esac
  echo "== $workload"
  node "$repo/bench/profile/filter-in-v8.mjs" "$wasm" "$inputs/plugin-config.json" "$tokens" "$mode" "$requests" "$status"
  rm -rf "$out/$workload"
  node --cpu-prof --cpu-prof-dir="$out/$workload" --cpu-prof-interval 100 \
    "$repo/bench/profile/filter-in-v8.mjs" "$wasm" "$inputs/plugin-config.json" "$tokens" "$mode" "$requests" "$status" >/dev/null
  node "$repo/bench/profile/summarize.mjs" "$out/$workload"/*.cpuprofile 12 \
    'TokenCache::' 'get_http_request_headers' 'Verifier.*verify' 'montgomery::Modulus' 'serde_json::de' 'base64' 'Metrics::record'
  echo
done
