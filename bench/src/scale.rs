//! Scale: fleets of 10 to 100,000 SeldonDeployments rendered by `modelgate render`, the
//! size of the `pluginConfig` it produces, how long Envoy takes to load it (at start, and
//! as an ECDS update), what it costs per request and in memory, compared with the no-op
//! Wasm filter in the same rounds.

use std::fs;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::chains::{Chain, MODEL_NAMESPACE};
use crate::fleet::{self, RenderRun};
use crate::load::Load;
use crate::rig::Rig;
use crate::workloads::Workload;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Fleet sizes (models).
    pub sizes: Vec<usize>,
    /// Sizes whose per-request CPU is measured (hot workload).
    pub cpu_sizes: Vec<usize>,
    /// Sizes whose `render` is timed `render_repeats` times (others once).
    pub render_timed: Vec<usize>,
    /// See `render_timed`.
    pub render_repeats: usize,
    /// Rounds over the no-op filter and every size.
    pub rounds: usize,
    /// Length of the hot measurement.
    pub duration: Duration,
    /// Hot warm-up before measuring CPU and memory.
    pub warmup: Duration,
    /// Connections of the hot load.
    pub connections: u32,
    /// Whether to measure the memory of one more worker VM (Envoy with two workers).
    pub per_vm: bool,
    /// Alternations of the smallest and the largest of `cpu_sizes` in one Envoy, each
    /// measuring the hot CPU of both (none: no paired measurement).
    pub cpu_pairs: usize,
}

/// A fleet and what `render` made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// Models (SeldonDeployments).
    pub models: usize,
    /// Bytes of the SeldonDeployment manifests.
    pub manifest_bytes: u64,
    /// Bytes of the `pluginConfig` (compact JSON, as Envoy gets it).
    pub plugin_config_bytes: usize,
    /// Bytes `render` printed (every generated object).
    pub render_output_bytes: u64,
    /// Each timed `render`: wall time (ms) and peak RSS (KiB).
    pub render_runs: Vec<(f64, u64)>,
}

/// One Envoy of a scale round: the no-op filter (`models: None`) or modelgate.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleSample {
    /// Round number, from 0.
    pub round: usize,
    /// Models configured; `None` for the no-op filter.
    pub models: Option<usize>,
    /// From Envoy's spawn until the listener answers the hot request (ms).
    pub load_ms: f64,
    /// An ECDS update adding one model, until Envoy reports it applied (ms).
    pub update_ms: Option<f64>,
    /// The same update, until the worker answers by it (ms).
    pub update_serving_ms: Option<f64>,
    /// Envoy CPU per hot request (µs), for the sizes measured.
    pub cpu_us_per_request: Option<f64>,
    /// Hot requests per second, for the sizes measured.
    pub throughput: Option<f64>,
    /// `VmRSS` after the warm-up and measurement (KiB).
    pub rss_kib: u64,
    /// Live heap then (tcmalloc's allocated bytes), KiB.
    pub heap_kib: u64,
    /// All the allocator holds then, live or freed and kept (KiB).
    pub heap_held_kib: u64,
}

/// Resident memory with one and with two workers (one more filter VM).
#[derive(Debug, Clone, Serialize)]
pub struct VmSample {
    /// Models configured; `None` for the no-op filter.
    pub models: Option<usize>,
    /// `VmRSS` with one worker (KiB).
    pub one_worker_kib: u64,
    /// `VmRSS` with two workers (KiB).
    pub two_workers_kib: u64,
    /// Live heap with one worker (KiB).
    pub one_worker_heap_kib: u64,
    /// Live heap with two workers (KiB).
    pub two_workers_heap_kib: u64,
}

/// One hot measurement of the paired CPU comparison.
#[derive(Debug, Clone, Serialize)]
pub struct PairSample {
    /// The alternation, from 0.
    pub pair: usize,
    /// Models configured.
    pub models: usize,
    /// Envoy CPU per hot request (µs).
    pub cpu_us_per_request: f64,
    /// Hot requests per second.
    pub throughput: f64,
}

/// Everything the scale part measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scale {
    /// The fleets.
    pub fleets: Vec<Fleet>,
    /// Per round and configuration.
    pub samples: Vec<ScaleSample>,
    /// Per-VM memory.
    pub vms: Vec<VmSample>,
    /// Hot CPU of the smallest and the largest fleet, alternated in one Envoy.
    pub cpu_pairs: Vec<PairSample>,
    /// Unexpected answers.
    pub anomalies: Vec<String>,
}

/// Runs the scale measurements.
pub fn run(rig: &Rig, plan: &Plan) -> Result<Scale> {
    let mut out = Scale::default();
    let mut configs = Vec::new();
    for &models in &plan.sizes {
        eprintln!("bench: scale: rendering {models} SeldonDeployments");
        let (fleet, config) = render_fleet(rig, plan, models)?;
        out.fleets.push(fleet);
        configs.push((models, config));
    }

    let mut lineup: Vec<Option<usize>> = vec![None];
    lineup.extend(plan.sizes.iter().copied().map(Some));
    let config_of = |models: Option<usize>| -> &str {
        models
            .and_then(|n| configs.iter().find(|(m, _)| *m == n))
            .map_or("{}", |(_, c)| c.as_str())
    };
    for round in 0..plan.rounds {
        for i in 0..lineup.len() {
            let models = lineup[(i + round) % lineup.len()];
            let what = models.map_or("(c) no-op filter".to_string(), |n| {
                format!("(m) {n} models")
            });
            eprintln!("bench: scale round {}/{}: {what}", round + 1, plan.rounds);
            let sample = measure(
                rig,
                plan,
                round,
                models,
                config_of(models),
                &mut out.anomalies,
            )?;
            out.samples.push(sample);
        }
    }
    if plan.cpu_pairs > 0 {
        paired_cpu(rig, plan, &configs, &mut out)?;
    }
    if plan.per_vm {
        for &models in &lineup {
            eprintln!("bench: scale: memory of a second worker VM, {models:?} models");
            let (mut rss, mut heap) = ([0; 2], [0; 2]);
            for (slot, workers) in [1, 2].into_iter().enumerate() {
                let dir = rig
                    .work
                    .join(format!("scale/vm-{}-{workers}", label(models)));
                let chain = if models.is_some() {
                    Chain::Modelgate
                } else {
                    Chain::NoopWasm
                };
                let envoy = rig.start(&dir, chain, config_of(models), workers)?;
                rig.time_until_serving(&envoy, 200)?;
                hot_load(rig, &envoy, plan.connections, plan.warmup)?;
                rss[slot] = envoy.rss_kib()?;
                heap[slot] = envoy.heap()?.allocated / 1024;
            }
            out.vms.push(VmSample {
                models,
                one_worker_kib: rss[0],
                two_workers_kib: rss[1],
                one_worker_heap_kib: heap[0],
                two_workers_heap_kib: heap[1],
            });
        }
    }
    Ok(out)
}

fn label(models: Option<usize>) -> String {
    models.map_or("noop".to_string(), |n| n.to_string())
}

/// Writes a fleet, renders it (several times when timed), and returns its figures and
/// `pluginConfig`.
fn render_fleet(rig: &Rig, plan: &Plan, models: usize) -> Result<(Fleet, String)> {
    let dir = rig.work.join(format!("scale/fleet-{models}"));
    let manifests = dir.join("seldon-deployments");
    fleet::write_seldon_deployments(&manifests, models, &rig.tokens.jwks)?;
    let manifest_bytes = fs::read_dir(&manifests)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let runs = if plan.render_timed.contains(&models) {
        plan.render_repeats.max(1)
    } else {
        1
    };
    let output = dir.join("render.yaml");
    let mut render_runs: Vec<RenderRun> = Vec::new();
    for _ in 0..runs {
        render_runs.push(fleet::render(&rig.modelgate, &manifests, &output)?);
    }
    let text = fs::read_to_string(&output)?;
    let config = fleet::plugin_config(&text)?;
    let fleet = Fleet {
        models,
        manifest_bytes,
        plugin_config_bytes: config.len(),
        render_output_bytes: text.len() as u64,
        render_runs: render_runs
            .iter()
            .map(|r| (r.wall.as_secs_f64() * 1000.0, r.peak_rss_kib))
            .collect(),
    };
    // Kept for bench/profile/filter-in-v8.mjs (linear memory of a VM with this fleet).
    fs::write(dir.join("plugin-config.json"), &config)?;
    // The manifests and the output of the largest fleets run to hundreds of MB.
    drop(text);
    let _ = fs::remove_dir_all(&manifests);
    let _ = fs::remove_file(&output);
    Ok((fleet, config))
}

fn measure(
    rig: &Rig,
    plan: &Plan,
    round: usize,
    models: Option<usize>,
    config: &str,
    anomalies: &mut Vec<String>,
) -> Result<ScaleSample> {
    let dir = rig
        .work
        .join(format!("scale/round-{round}/{}", label(models)));
    let chain = if models.is_some() {
        Chain::Modelgate
    } else {
        Chain::NoopWasm
    };
    let envoy = rig.start(&dir, chain, config, 1)?;
    let load_ms = rig.time_until_serving(&envoy, 200)?.as_secs_f64() * 1000.0;
    if !plan.warmup.is_zero() {
        hot_load(rig, &envoy, plan.connections, plan.warmup)?;
    }
    let (mut cpu_us_per_request, mut throughput) = (None, None);
    if models.is_none_or(|n| plan.cpu_sizes.contains(&n)) {
        let what = format!("scale round {round}, {} models", label(models));
        let (cpu, rps) = measure_hot(rig, plan, &envoy, &what, anomalies)?;
        cpu_us_per_request = Some(cpu);
        throughput = Some(rps);
    }
    let rss_kib = envoy.rss_kib()?;
    let heap = envoy.heap()?;
    let (mut update_ms, mut update_serving_ms) = (None, None);
    if models.is_some() {
        let updated = with_model_added(config, PROBE_MODEL)?;
        let (applied, serving) =
            rig.switch_modelgate(&envoy, &dir, 2, &updated, PROBE_MODEL, 401)?;
        update_ms = Some(applied.as_secs_f64() * 1000.0);
        update_serving_ms = Some(serving.as_secs_f64() * 1000.0);
    }
    Ok(ScaleSample {
        round,
        models,
        load_ms,
        update_ms,
        update_serving_ms,
        cpu_us_per_request,
        throughput,
        rss_kib,
        heap_kib: heap.allocated / 1024,
        heap_held_kib: heap.size / 1024,
    })
}

/// Per-request CPU at the smallest and the largest of `cpu_sizes`, alternated in one
/// Envoy by ECDS updates (A B, B A, A B, ...), so that both sizes share the process, its
/// CPU and the same minutes of the machine: separate Envoys in a round differ by more than
/// the 5 % the target allows.
fn paired_cpu(rig: &Rig, plan: &Plan, configs: &[(usize, String)], out: &mut Scale) -> Result<()> {
    let sized = |n: usize| configs.iter().find(|(m, _)| *m == n);
    let (Some(small), Some(large)) = (
        plan.cpu_sizes.iter().min().and_then(|&n| sized(n)),
        plan.cpu_sizes.iter().max().and_then(|&n| sized(n)),
    ) else {
        return Ok(());
    };
    if small.0 == large.0 {
        return Ok(());
    }
    // A model only the large fleet has: passed through (200) by the small configuration,
    // refused without a token (401) by the large one.
    let probe = format!(
        "{MODEL_NAMESPACE}/{}",
        crate::fleet::model_name(large.0 - 1)
    );
    let dir = rig.work.join("scale/cpu-pairs");
    let envoy = rig.start(&dir, Chain::Modelgate, &small.1, 1)?;
    rig.time_until_serving(&envoy, 200)?;
    let mut current = small.0;
    let mut version = 1;
    for pair in 0..plan.cpu_pairs {
        let order = if pair % 2 == 0 {
            [small, large]
        } else {
            [large, small]
        };
        for (models, config) in order {
            eprintln!(
                "bench: scale: paired CPU {}/{}: {models} models",
                pair + 1,
                plan.cpu_pairs
            );
            if *models != current {
                version += 1;
                let status = if *models == large.0 { 401 } else { 200 };
                rig.switch_modelgate(&envoy, &dir, version, config, &probe, status)?;
                current = *models;
            }
            if !plan.warmup.is_zero() {
                hot_load(rig, &envoy, plan.connections, plan.warmup)?;
            }
            let what = format!("paired CPU {pair}, {models} models");
            let (cpu, rps) = measure_hot(rig, plan, &envoy, &what, &mut out.anomalies)?;
            out.cpu_pairs.push(PairSample {
                pair,
                models: *models,
                cpu_us_per_request: cpu,
                throughput: rps,
            });
        }
    }
    Ok(())
}

/// The hot workload for `plan.duration`: Envoy's CPU per request (µs) and requests per
/// second. Answers other than `200`, socket errors or no answer at all are recorded as an
/// anomaly of `what`.
fn measure_hot(
    rig: &Rig,
    plan: &Plan,
    envoy: &crate::envoy::Envoy,
    what: &str,
    anomalies: &mut Vec<String>,
) -> Result<(f64, f64)> {
    hot_cpu(rig, envoy, plan.connections, plan.duration, what, anomalies)
}

/// Envoy's CPU per request (µs) and requests per second under the hot workload for
/// `duration`; answers other than `200` are an anomaly of `what`. Shared with the channel
/// measurements.
pub(crate) fn hot_cpu(
    rig: &Rig,
    envoy: &crate::envoy::Envoy,
    connections: u32,
    duration: Duration,
    what: &str,
    anomalies: &mut Vec<String>,
) -> Result<(f64, f64)> {
    let before = envoy.cpu_micros()?;
    let result = hot_load(rig, envoy, connections, duration)?;
    let cpu = envoy.cpu_micros()?.saturating_sub(before);
    if result.status_errors > 0 || result.socket_errors > 0 || result.requests == 0 {
        anomalies.push(format!(
            "{what}: {} responses, {} with status >= 400, {} socket errors",
            result.requests, result.status_errors, result.socket_errors
        ));
    }
    Ok((
        cpu as f64 / result.requests.max(1) as f64,
        result.throughput(),
    ))
}

/// The model an ECDS update adds (as one more SeldonDeployment with the fleet's policy).
const PROBE_MODEL: &str = "bench/added-by-update";

/// The configuration with one more model, under the policy of the fleet's first model.
fn with_model_added(config: &str, model: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(config)?;
    let first = format!("{MODEL_NAMESPACE}/{}", crate::fleet::model_name(0));
    let entry = value["models"][&first].clone();
    if entry.is_null() {
        bail!("the rendered configuration has no model {first}");
    }
    value["models"][model] = entry;
    Ok(value.to_string())
}

pub(crate) fn hot_load(
    rig: &Rig,
    envoy: &crate::envoy::Envoy,
    connections: u32,
    duration: Duration,
) -> Result<crate::load::LoadResult> {
    rig.load.run(&Load {
        address: envoy.address(),
        workload: Workload::Hot,
        token: Some(&rig.tokens.hot),
        pool: None,
        connections,
        duration,
    })
}
