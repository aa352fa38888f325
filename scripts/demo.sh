#!/usr/bin/env bash
# Starts Envoy with the modelgate filter in front of the sample models, sends a tour of
# requests (valid, expired and wrong tokens, exemptions, preflights, overrides, a dark
# launch), a traffic split, and prints the metrics. Exits non-zero if anything deviates
# from its expectation. Sets up what it needs first (scripts/setup.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash "$repo/scripts/setup.sh"
cargo run --quiet -p modelgate-e2e --bin demo
