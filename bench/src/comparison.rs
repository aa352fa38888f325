//! The gateway comparison: every chain in its own fresh Envoy, each round measuring every
//! chain in turn (the starting chain rotates from round to round, so a slow drift of the
//! machine does not always favour the same one), every workload and connection count.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::chains::Chain;
use crate::envoy::Envoy;
use crate::load::{Load, LoadResult};
use crate::rig::Rig;
use crate::workloads::{Workload, check_answers};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Rounds over all chains.
    pub rounds: usize,
    /// Length of one measurement.
    pub duration: Duration,
    /// Length of the warm-up (hot, then cold) before a chain's first measurement.
    pub warmup: Duration,
    /// The measurements of one chain in one round: workload and connections.
    pub steps: Vec<(Workload, u32)>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Round number, from 0.
    pub round: usize,
    /// The chain.
    pub chain: Chain,
    /// The workload.
    pub workload: Workload,
    /// Concurrent connections.
    pub connections: u32,
    /// Responses received.
    pub requests: u64,
    /// Requests per second.
    pub throughput: f64,
    /// Median latency (µs).
    pub p50_us: f64,
    /// 99th percentile latency (µs).
    pub p99_us: f64,
    /// Envoy CPU time (all threads) per request (µs).
    pub cpu_us_per_request: f64,
}

/// A chain's Envoy resident memory after its round's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct MemorySample {
    /// Round number, from 0.
    pub round: usize,
    /// The chain.
    pub chain: Chain,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Live heap (tcmalloc's allocated bytes), KiB.
    pub heap_kib: u64,
    /// All the allocator holds, live or freed and kept (KiB).
    pub heap_held_kib: u64,
}

/// Everything the comparison measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// Every measurement.
    pub samples: Vec<Sample>,
    /// Memory per chain and round.
    pub memory: Vec<MemorySample>,
    /// Responses that were not what the chain must answer, socket errors.
    pub anomalies: Vec<String>,
}

/// Runs the comparison. `plugin_config` is modelgate's configuration (rendered from a
/// SeldonDeployment holding the same policy as the other chains).
pub fn run(rig: &Rig, plan: &Plan, plugin_config: &str) -> Result<Comparison> {
    let mut out = Comparison::default();
    for round in 0..plan.rounds {
        for i in 0..Chain::ALL.len() {
            let chain = Chain::ALL[(i + round) % Chain::ALL.len()];
            let dir = rig
                .work
                .join(format!("compare/round-{round}/{}", chain_dir(chain)));
            eprintln!(
                "bench: round {}/{}: ({}) {}",
                round + 1,
                plan.rounds,
                chain.label(),
                chain.description()
            );
            let envoy = rig.start(&dir, chain, plugin_config, 1)?;
            let mut client = modelgate_e2e::Client::new(envoy.address());
            let wrong = check_answers(&mut client, chain, &rig.tokens);
            if !wrong.is_empty() {
                bail!(
                    "{}",
                    envoy.failure(&format!("wrong answers:\n{}", wrong.join("\n")))
                );
            }
            drop(client);
            let mut chain_run = ChainRun {
                rig,
                envoy: &envoy,
                next_token: 1,
            };
            if !plan.warmup.is_zero() {
                chain_run.load(Workload::Hot, 16, plan.warmup)?;
                chain_run.load(Workload::Cold, 16, plan.warmup)?;
            }
            for &(workload, connections) in &plan.steps {
                let cpu_before = envoy.cpu_micros()?;
                let result = chain_run.load(workload, connections, plan.duration)?;
                let cpu = envoy.cpu_micros()?.saturating_sub(cpu_before);
                out.anomalies
                    .extend(anomaly(round, chain, workload, connections, &result));
                out.samples.push(Sample {
                    round,
                    chain,
                    workload,
                    connections,
                    requests: result.requests,
                    throughput: result.throughput(),
                    p50_us: result.p50_us,
                    p99_us: result.p99_us,
                    cpu_us_per_request: cpu as f64 / result.requests.max(1) as f64,
                });
            }
            let heap = envoy.heap()?;
            out.memory.push(MemorySample {
                round,
                chain,
                rss_kib: envoy.rss_kib()?,
                heap_kib: heap.allocated / 1024,
                heap_held_kib: heap.size / 1024,
            });
        }
    }
    Ok(out)
}

/// The directory name of a chain (labels hold a quote).
fn chain_dir(chain: Chain) -> String {
    format!("{:?}", chain).to_lowercase()
}

/// One chain's Envoy under load: tracks where the cold workload is in the token pool, so
/// no token is sent twice to the same Envoy before the pool wraps (and the pool is larger
/// than any cache).
struct ChainRun<'a> {
    rig: &'a Rig,
    envoy: &'a Envoy,
    next_token: usize,
}

impl ChainRun<'_> {
    fn load(
        &mut self,
        workload: Workload,
        connections: u32,
        duration: Duration,
    ) -> Result<LoadResult> {
        let tokens = &self.rig.tokens;
        let load = Load {
            address: self.envoy.address(),
            workload,
            token: workload.fixed_token(tokens),
            pool: (workload == Workload::Cold).then_some((tokens.pool.as_slice(), self.next_token)),
            connections,
            duration,
        };
        let result = self.rig.load.run(&load)?;
        if workload == Workload::Cold {
            // Requests still in flight when wrk stopped took a token too.
            self.next_token += (result.requests + u64::from(connections)) as usize;
        }
        Ok(result)
    }
}

/// What was wrong with a measurement's responses, if anything: a refusing workload must be
/// refused every time, the others never; no socket errors.
fn anomaly(
    round: usize,
    chain: Chain,
    workload: Workload,
    connections: u32,
    r: &LoadResult,
) -> Option<String> {
    let refused = workload.expected_status(chain) >= 400;
    let expected_errors = if refused { r.requests } else { 0 };
    if r.requests > 0 && r.status_errors == expected_errors && r.socket_errors == 0 {
        return None;
    }
    Some(format!(
        "round {round} ({}) {workload} x{connections}: {} responses, {} with status >= 400 (expected {expected_errors}), {} socket errors",
        chain.label(),
        r.requests,
        r.status_errors,
        r.socket_errors
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(requests: u64, status_errors: u64) -> LoadResult {
        LoadResult {
            requests,
            duration: Duration::from_secs(1),
            status_errors,
            socket_errors: 0,
            p50_us: 1.0,
            p99_us: 2.0,
        }
    }

    #[test]
    fn refused_workloads_must_be_refused_every_time_and_others_never() {
        assert!(
            anomaly(
                0,
                Chain::Modelgate,
                Workload::Expired,
                16,
                &result(100, 100)
            )
            .is_none()
        );
        assert!(anomaly(0, Chain::Modelgate, Workload::Expired, 16, &result(100, 99)).is_some());
        assert!(anomaly(0, Chain::Router, Workload::Expired, 16, &result(100, 0)).is_none());
        assert!(anomaly(0, Chain::Istio, Workload::Hot, 16, &result(100, 1)).is_some());
        assert!(anomaly(0, Chain::Istio, Workload::Hot, 16, &result(0, 0)).is_some());
    }
}
