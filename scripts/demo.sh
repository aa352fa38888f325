#!/usr/bin/env bash
# Runs the product from what users write: the annotated SeldonDeployments of
# deploy/examples/demo/ go through the controller's `check` and `render`, and the rendered
# routes and pluginConfig are loaded into a real Envoy running the built filter. Then a
# tour of requests (valid, expired and wrong tokens, exemptions, preflights, overrides, a
# dark launch, audit mode), sticky users, the split against the rendered weights, the
# shadow's copies, and the metrics. Exits non-zero if anything deviates from its
# expectation. Sets up what it needs first (scripts/setup.sh).
#
#   bash scripts/demo.sh                        # run and exit
#   bash scripts/demo.sh --keep                 # then stay up, with curl commands to try
#   bash scripts/demo.sh --metrics-out FILE     # also write the final Prometheus scrape
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash "$repo/scripts/setup.sh"
cargo run --quiet -p modelgate-e2e --bin demo -- "$@"
