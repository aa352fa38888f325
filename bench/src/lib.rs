//! modelgate's benchmark harness: the filter against Istio's native JWT chain, a no-op Wasm
//! filter and the bare router, each in a real Envoy under `wrk`; and the cost of 10 to
//! 100,000 models, from `modelgate render` to Envoy's memory. `BENCHMARKS.md` at the
//! repository root holds the figures and how to reproduce them (`scripts/bench.sh`).

pub mod api_double;
pub mod chains;
pub mod channel;
pub mod comparison;
pub mod controller;
pub mod envoy;
pub mod fleet;
pub mod load;
pub mod report;
pub mod rig;
pub mod scale;
pub mod stats;
pub mod tokens;
pub mod workloads;
