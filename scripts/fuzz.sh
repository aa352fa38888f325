#!/usr/bin/env bash
# Fuzzes the filter's core and the controller's annotation parsing with cargo fuzz
# (libFuzzer): builds every target in fuzz/, then runs each for FUZZ_SECONDS (default 20)
# from its committed seeds in fuzz/corpus/<target>/, which also replay every crash found
# so far. Fails on any crash, panic, broken invariant or hang; the input that did it is
# left in fuzz/artifacts/<target>/. Usage: scripts/fuzz.sh [target...]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config request token claims routing annotations tenant rsa_differential curves_differential)
fi

if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# libFuzzer's instrumentation needs unstable rustc flags; RUSTC_BOOTSTRAP lets the stable
# toolchain a CI machine has accept them.
export RUSTC_BOOTSTRAP=1
# The annotation parser does not need the filter module the controller embeds: an empty
# placeholder spares building the filter for wasm inside an instrumented build.
mkdir -p target
: > target/placeholder.wasm
export MODELGATE_FILTER_WASM="$repo/fuzz/target/placeholder.wasm"

# The core installs its crypto provider once per process on purpose (and the targets keep
# their fixture for the whole run): LeakSanitizer would report both as leaks at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

echo "fuzz: building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build "$target"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds}s"
  # New inputs go to a scratch directory: only the hand-picked seeds are committed.
  mkdir -p "$work/$target" "artifacts/$target"
  options=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1
    -artifact_prefix="$repo/fuzz/artifacts/$target/")
  if [ -f "$target.dict" ]; then
    options+=(-dict="$repo/fuzz/$target.dict")
  fi
  if ! cargo fuzz run "$target" "$work/$target" "corpus/$target" -- "${options[@]}" \
      > "$work/$target.log" 2>&1; then
    tail -n 40 "$work/$target.log"
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
    failed+=("$target")
    continue
  fi
  grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$work/$target.log" \
    | sed "s/^/fuzz: $target: /"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}"
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
