//! The Markdown report: the machine, the tables (medians over rounds, same-round ratios),
//! and each target of the benchmark issue checked against the figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::chains::Chain;
use crate::comparison::Comparison;
use crate::scale::Scale;
use crate::stats::{median, range};
use crate::workloads::Workload;

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// `--smoke`, `--quick` or `full`.
    pub mode: String,
    /// The command line.
    pub command: String,
    /// UTC time of the start.
    pub started: String,
    /// Wall time of the run (s).
    pub wall_s: f64,
    /// Logical CPUs.
    pub cpus: usize,
    /// From `/proc/cpuinfo`.
    pub cpu_model: String,
    /// From `/proc/meminfo`, MiB.
    pub memory_mib: u64,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `envoy --version`.
    pub envoy: String,
    /// The load generator.
    pub load_generator: String,
    /// `/proc/loadavg` before and after.
    pub load_average: (String, String),
    /// CPU pinning, in words.
    pub pinning: String,
    /// Rounds, measurement length and pool size, in words.
    pub plan: String,
}

const MIB: f64 = 1024.0 * 1024.0;

/// A target checked: what, the figure, whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The target, in the words.
    pub target: String,
    /// The measured figure.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this mode.
    pub met: Option<bool>,
}

/// The report in Markdown.
pub fn markdown(setting: &Setting, comparison: &Comparison, scale: &Scale) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# modelgate benchmark ({})\n", setting.mode);
    let _ = writeln!(md, "- command: `{}`", setting.command);
    let _ = writeln!(
        md,
        "- started: {} (wall time {:.0} s)",
        setting.started, setting.wall_s
    );
    let _ = writeln!(
        md,
        "- machine: {} logical CPUs, {}, {} MiB memory, Linux {}",
        setting.cpus, setting.cpu_model, setting.memory_mib, setting.kernel
    );
    let _ = writeln!(md, "- Envoy: {}", setting.envoy);
    let _ = writeln!(
        md,
        "- load: {}; {}",
        setting.load_generator, setting.pinning
    );
    let _ = writeln!(md, "- plan: {}", setting.plan);
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min) before: {}; after: {}\n",
        setting.load_average.0, setting.load_average.1
    );

    let verdicts = verdicts(comparison, scale);
    if !verdicts.is_empty() {
        md.push_str("## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        for v in &verdicts {
            let met = match v.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {met} |", v.target, v.measured);
        }
        md.push('\n');
    }
    comparison_tables(&mut md, comparison);
    scale_tables(&mut md, scale);
    let anomalies: Vec<&String> = comparison
        .anomalies
        .iter()
        .chain(&scale.anomalies)
        .collect();
    md.push_str("## Anomalies\n\n");
    if anomalies.is_empty() {
        md.push_str("None: every response had the status its configuration must answer, and no socket errors.\n");
    } else {
        for a in anomalies {
            let _ = writeln!(md, "- {a}");
        }
    }
    md
}

/// A figure of the comparison by round, for one chain, workload and connection count.
fn by_round(
    c: &Comparison,
    chain: Chain,
    workload: Workload,
    connections: u32,
    figure: impl Fn(&crate::comparison::Sample) -> f64,
) -> BTreeMap<usize, f64> {
    c.samples
        .iter()
        .filter(|s| s.chain == chain && s.workload == workload && s.connections == connections)
        .map(|s| (s.round, figure(s)))
        .collect()
}

/// The median over rounds of `f(x, y)` for the rounds where both were measured.
fn same_round(
    x: &BTreeMap<usize, f64>,
    y: &BTreeMap<usize, f64>,
    f: impl Fn(f64, f64) -> f64,
) -> f64 {
    median(x.iter().filter_map(|(r, a)| y.get(r).map(|b| f(*a, *b))))
}

fn steps(c: &Comparison) -> Vec<(Workload, u32)> {
    let mut steps: Vec<(Workload, u32)> = c
        .samples
        .iter()
        .map(|s| (s.workload, s.connections))
        .collect();
    steps.sort();
    steps.dedup();
    steps
}

fn comparison_tables(md: &mut String, c: &Comparison) {
    if c.samples.is_empty() {
        return;
    }
    md.push_str("## Gateway comparison\n\n");
    md.push_str(
        "Medians over rounds; CPU is Envoy's (every thread, user + system) per request, with \
         the range over rounds. (a) router only, (b) Istio's jwt_authn + RBAC, (b') the same \
         with jwt_authn's token cache, (c) no-op Wasm filter, (m) modelgate.\n\n",
    );
    md.push_str(
        "| workload | conns | config | req/s | p50 µs | p99 µs | CPU µs/req | CPU range |\n",
    );
    md.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (workload, connections) in steps(c) {
        for chain in Chain::ALL {
            let samples: Vec<_> = c
                .samples
                .iter()
                .filter(|s| {
                    s.chain == chain && s.workload == workload && s.connections == connections
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_us_per_request).collect();
            let (lo, hi) = range(cpu.iter().copied());
            let _ = writeln!(
                md,
                "| {workload} | {connections} | ({}) | {:.0} | {:.0} | {:.0} | {:.1} | {:.1}–{:.1} |",
                chain.label(),
                median(samples.iter().map(|s| s.throughput)),
                median(samples.iter().map(|s| s.p50_us)),
                median(samples.iter().map(|s| s.p99_us)),
                median(cpu.iter().copied()),
                lo,
                hi
            );
        }
    }
    md.push_str("\n### Same-round ratios (medians over rounds)\n\n");
    md.push_str("| workload | conns | m/b req/s | m/b' req/s | m/c req/s | m−c CPU µs | m/b CPU | m/b' CPU | m−a CPU µs |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (workload, connections) in steps(c) {
        let rps = |chain| by_round(c, chain, workload, connections, |s| s.throughput);
        let cpu = |chain| by_round(c, chain, workload, connections, |s| s.cpu_us_per_request);
        let ratio = |a: f64, b: f64| a / b;
        let diff = |a: f64, b: f64| a - b;
        let _ = writeln!(
            md,
            "| {workload} | {connections} | {:.2} | {:.2} | {:.2} | {:+.1} | {:.2} | {:.2} | {:+.1} |",
            same_round(&rps(Chain::Modelgate), &rps(Chain::Istio), ratio),
            same_round(&rps(Chain::Modelgate), &rps(Chain::IstioCached), ratio),
            same_round(&rps(Chain::Modelgate), &rps(Chain::NoopWasm), ratio),
            same_round(&cpu(Chain::Modelgate), &cpu(Chain::NoopWasm), diff),
            same_round(&cpu(Chain::Modelgate), &cpu(Chain::Istio), ratio),
            same_round(&cpu(Chain::Modelgate), &cpu(Chain::IstioCached), ratio),
            same_round(&cpu(Chain::Modelgate), &cpu(Chain::Router), diff),
        );
    }
    md.push_str(
        "\n### Envoy memory after each configuration's measurements (medians over rounds)\n\n",
    );
    md.push_str(
        "RSS is the target's measure. Envoy's allocator (tcmalloc, from its `/memory`) \
         holds most of it: its live heap (`allocated`), and what it holds in all \
         (`heap_size` − `pageheap_unmapped`), which adds the freed memory it keeps for \
         reuse instead of returning it to the system.\n\n",
    );
    md.push_str(
        "| config | RSS MiB | RSS − (a) MiB | RSS − (c) MiB | live heap MiB | live heap − (c) MiB | allocator holds MiB | holds − (c) MiB |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let memory = |chain: Chain,
                  figure: fn(&crate::comparison::MemorySample) -> u64|
     -> BTreeMap<usize, f64> {
        c.memory
            .iter()
            .filter(|m| m.chain == chain)
            .map(|m| (m.round, figure(m) as f64 / 1024.0))
            .collect()
    };
    let rss = |chain| memory(chain, |m| m.rss_kib);
    let heap = |chain| memory(chain, |m| m.heap_kib);
    let held = |chain| memory(chain, |m| m.heap_held_kib);
    for chain in Chain::ALL {
        let own = rss(chain);
        if own.is_empty() {
            continue;
        }
        let diff = |a: f64, b: f64| a - b;
        let _ = writeln!(
            md,
            "| ({}) {} | {:.1} | {:+.1} | {:+.1} | {:.1} | {:+.1} | {:.1} | {:+.1} |",
            chain.label(),
            chain.description(),
            median(own.values().copied()),
            same_round(&own, &rss(Chain::Router), diff),
            same_round(&own, &rss(Chain::NoopWasm), diff),
            median(heap(chain).values().copied()),
            same_round(&heap(chain), &heap(Chain::NoopWasm), diff),
            median(held(chain).values().copied()),
            same_round(&held(chain), &held(Chain::NoopWasm), diff),
        );
    }
    md.push('\n');
}

fn scale_by_round(
    s: &Scale,
    models: Option<usize>,
    figure: impl Fn(&crate::scale::ScaleSample) -> Option<f64>,
) -> BTreeMap<usize, f64> {
    s.samples
        .iter()
        .filter(|x| x.models == models)
        .filter_map(|x| figure(x).map(|v| (x.round, v)))
        .collect()
}

fn scale_tables(md: &mut String, s: &Scale) {
    if s.fleets.is_empty() {
        return;
    }
    md.push_str("## Scale\n\n");
    md.push_str("Every model shares one issuer, audience, claim and inline JWKS; every tenth is a sticky 90/10 canary.\n\n");
    md.push_str("| models | manifests MiB | render output MiB | pluginConfig bytes | render wall ms (median) | render peak RSS MiB | render runs |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    for f in &s.fleets {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {} ({:.1} KiB) | {:.0} | {:.1} | {} |",
            f.models,
            f.manifest_bytes as f64 / MIB,
            f.render_output_bytes as f64 / MIB,
            f.plugin_config_bytes,
            f.plugin_config_bytes as f64 / 1024.0,
            median(f.render_runs.iter().map(|r| r.0)),
            median(f.render_runs.iter().map(|r| r.1 as f64 / 1024.0)),
            f.render_runs.len()
        );
    }
    md.push_str("\nEnvoy with the no-op filter (c) and with modelgate configured with each fleet (medians over rounds; differences same-round):\n\n");
    md.push_str("| config | spawn → serving ms | − (c) ms | ECDS update: applied ms | … serving ms | RSS MiB | RSS − (c) MiB | live heap − (c) MiB | allocator holds − (c) MiB | hot CPU µs/req | hot req/s |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut lineup: Vec<Option<usize>> = vec![None];
    lineup.extend(s.fleets.iter().map(|f| Some(f.models)));
    let noop_load = scale_by_round(s, None, |x| Some(x.load_ms));
    let noop_rss = scale_by_round(s, None, |x| Some(x.rss_kib as f64 / 1024.0));
    let noop_heap = scale_by_round(s, None, |x| Some(x.heap_kib as f64 / 1024.0));
    let noop_held = scale_by_round(s, None, |x| Some(x.heap_held_kib as f64 / 1024.0));
    for models in &lineup {
        let load = scale_by_round(s, *models, |x| Some(x.load_ms));
        if load.is_empty() {
            continue;
        }
        let rss = scale_by_round(s, *models, |x| Some(x.rss_kib as f64 / 1024.0));
        let heap = scale_by_round(s, *models, |x| Some(x.heap_kib as f64 / 1024.0));
        let held = scale_by_round(s, *models, |x| Some(x.heap_held_kib as f64 / 1024.0));
        let update = scale_by_round(s, *models, |x| x.update_ms);
        let serving = scale_by_round(s, *models, |x| x.update_serving_ms);
        let cpu = scale_by_round(s, *models, |x| x.cpu_us_per_request);
        let rps = scale_by_round(s, *models, |x| x.throughput);
        let name = models.map_or("(c) no-op".to_string(), |n| format!("(m) {n} models"));
        let opt = |m: &BTreeMap<usize, f64>, digits: usize| {
            if m.is_empty() {
                "–".to_string()
            } else {
                format!("{:.*}", digits, median(m.values().copied()))
            }
        };
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:+.0} | {} | {} | {:.1} | {:+.1} | {:+.1} | {:+.1} | {} | {} |",
            median(load.values().copied()),
            same_round(&load, &noop_load, |a, b| a - b),
            opt(&update, 0),
            opt(&serving, 0),
            median(rss.values().copied()),
            same_round(&rss, &noop_rss, |a, b| a - b),
            same_round(&heap, &noop_heap, |a, b| a - b),
            same_round(&held, &noop_held, |a, b| a - b),
            opt(&cpu, 1),
            opt(&rps, 0),
        );
    }
    if !s.vms.is_empty() {
        md.push_str("\nOne more worker VM (Envoy with two workers minus one worker, after the same warm-up):\n\n");
        md.push_str("| config | RSS 1 worker MiB | RSS 2 workers MiB | second worker RSS MiB | second worker live heap MiB |\n");
        md.push_str("|---|---:|---:|---:|---:|\n");
        for v in &s.vms {
            let name = v
                .models
                .map_or("(c) no-op".to_string(), |n| format!("(m) {n} models"));
            let _ = writeln!(
                md,
                "| {name} | {:.1} | {:.1} | {:+.1} | {:+.1} |",
                v.one_worker_kib as f64 / 1024.0,
                v.two_workers_kib as f64 / 1024.0,
                (v.two_workers_kib as f64 - v.one_worker_kib as f64) / 1024.0,
                (v.two_workers_heap_kib as f64 - v.one_worker_heap_kib as f64) / 1024.0
            );
        }
    }
    if let Some((small, large, ratios)) = paired_ratios(s) {
        let _ = writeln!(
            md,
            "\nHot CPU per request with {small} and with {large} models, alternated in one Envoy by ECDS updates ({large}/{small} median {:.3}):\n",
            median(ratios.iter().copied())
        );
        md.push_str("| alternation | models first | CPU µs/req (small) | CPU µs/req (large) | large/small |\n");
        md.push_str("|---:|---:|---:|---:|---:|\n");
        for (pair, ratio) in ratios.iter().enumerate() {
            // Samples are recorded in the order they were measured.
            let first = s
                .cpu_pairs
                .iter()
                .find(|p| p.pair == pair)
                .map_or(0, |p| p.models);
            let _ = writeln!(
                md,
                "| {} | {first} | {:.1} | {:.1} | {ratio:.3} |",
                pair + 1,
                pair_cpu(s, pair, small).unwrap_or(f64::NAN),
                pair_cpu(s, pair, large).unwrap_or(f64::NAN)
            );
        }
    }
    md.push('\n');
}

/// The paired CPU measurement: the two sizes and, per alternation, large/small.
fn paired_ratios(s: &Scale) -> Option<(usize, usize, Vec<f64>)> {
    let small = s.cpu_pairs.iter().map(|p| p.models).min()?;
    let large = s.cpu_pairs.iter().map(|p| p.models).max()?;
    let pairs = s.cpu_pairs.iter().map(|p| p.pair).max()? + 1;
    let ratios: Vec<f64> = (0..pairs)
        .filter_map(|pair| Some(pair_cpu(s, pair, large)? / pair_cpu(s, pair, small)?))
        .collect();
    (small != large && !ratios.is_empty()).then_some((small, large, ratios))
}

/// Hot CPU per request of one alternation at one size.
fn pair_cpu(s: &Scale, pair: usize, models: usize) -> Option<f64> {
    s.cpu_pairs
        .iter()
        .find(|p| p.pair == pair && p.models == models)
        .map(|p| p.cpu_us_per_request)
}

/// Each target of the benchmark issue, checked against the figures measured.
pub fn verdicts(c: &Comparison, s: &Scale) -> Vec<Verdict> {
    let mut out = Vec::new();
    let cpu =
        |chain, workload, conns| by_round(c, chain, workload, conns, |x| x.cpu_us_per_request);
    let rps = |chain, workload, conns| by_round(c, chain, workload, conns, |x| x.throughput);
    let connections: Vec<u32> = {
        let mut v: Vec<u32> = c
            .samples
            .iter()
            .filter(|x| x.workload == Workload::Hot)
            .map(|x| x.connections)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for &n in &connections {
        let extra = same_round(
            &cpu(Chain::Modelgate, Workload::Hot, n),
            &cpu(Chain::NoopWasm, Workload::Hot, n),
            |a, b| a - b,
        );
        out.push(Verdict {
            target: format!("hot, {n} conns: CPU/request ≤ (c) + 10 µs"),
            measured: format!("(m) − (c) = {extra:+.1} µs"),
            met: (!extra.is_nan()).then_some(extra <= 10.0),
        });
        let ratio = same_round(
            &rps(Chain::Modelgate, Workload::Hot, n),
            &rps(Chain::Istio, Workload::Hot, n),
            |a, b| a / b,
        );
        out.push(Verdict {
            target: format!("hot, {n} conns: throughput ≥ 1.5 × (b)"),
            measured: format!("(m)/(b) = {ratio:.2}"),
            met: (!ratio.is_nan()).then_some(ratio >= 1.5),
        });
    }
    for &n in &connections {
        let ratio = same_round(
            &cpu(Chain::Modelgate, Workload::Cold, n),
            &cpu(Chain::Istio, Workload::Cold, n),
            |a, b| a / b,
        );
        if ratio.is_nan() {
            continue;
        }
        out.push(Verdict {
            target: format!("cold, {n} conns: CPU/request ≤ 3 × (b)"),
            measured: format!("(m)/(b) = {ratio:.2}"),
            met: Some(ratio <= 3.0),
        });
    }
    let noop_rss = scale_by_round(s, None, |x| Some(x.rss_kib as f64 / 1024.0));
    let rss_10k = scale_by_round(s, Some(10_000), |x| Some(x.rss_kib as f64 / 1024.0));
    let extra = same_round(&rss_10k, &noop_rss, |a, b| a - b);
    out.push(Verdict {
        target: "memory: Envoy RSS ≤ (c) + 10 MiB with 10,000 models".into(),
        measured: format!("(m) − (c) = {extra:+.1} MiB"),
        met: (!extra.is_nan()).then_some(extra <= 10.0),
    });
    let config_10k = s.fleets.iter().find(|f| f.models == 10_000);
    out.push(Verdict {
        target: "scale: 10,000 models in < 1 MiB of pluginConfig".into(),
        measured: config_10k.map_or("–".into(), |f| {
            format!(
                "{} bytes ({:.2} MiB)",
                f.plugin_config_bytes,
                f.plugin_config_bytes as f64 / MIB
            )
        }),
        met: config_10k.map(|f| (f.plugin_config_bytes as f64) < MIB),
    });
    // The paired measurement when there is one (one Envoy, the sizes alternated), else
    // the rounds' separate Envoys.
    let (ratio, how) = match paired_ratios(s) {
        Some((10, 10_000, ratios)) => (
            median(ratios.iter().copied()),
            format!("alternated in one Envoy, {} times", ratios.len()),
        ),
        _ => {
            let cpu_10 = scale_by_round(s, Some(10), |x| x.cpu_us_per_request);
            let cpu_10k = scale_by_round(s, Some(10_000), |x| x.cpu_us_per_request);
            (
                same_round(&cpu_10k, &cpu_10, |a, b| a / b),
                "separate Envoys, same round".to_string(),
            )
        }
    };
    out.push(Verdict {
        target: "scale: CPU/request at 10,000 models within 5 % of 10 models (hot)".into(),
        measured: format!(
            "10,000/10 = {ratio:.3} ({:+.1} %; {how})",
            (ratio - 1.0) * 100.0
        ),
        met: (!ratio.is_nan()).then_some((ratio - 1.0).abs() <= 0.05),
    });
    let render_10k = s.fleets.iter().find(|f| f.models == 10_000);
    let wall = render_10k.map(|f| median(f.render_runs.iter().map(|r| r.0)));
    out.push(Verdict {
        target: "scale: render of 10,000 SeldonDeployments < 2 s".into(),
        measured: wall.map_or("–".into(), |w| format!("{:.2} s", w / 1000.0)),
        met: wall.map(|w| w < 2000.0),
    });
    out
}
