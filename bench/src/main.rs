//! `modelgate-bench`: runs the benchmark and writes its report. `scripts/bench.sh` builds
//! what it needs and runs it; `BENCHMARKS.md` explains the figures.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use modelgate_bench::channel::{self, Channel};
use modelgate_bench::comparison::{self, Comparison};
use modelgate_bench::controller;
use modelgate_bench::fleet;
use modelgate_bench::load::LoadGenerator;
use modelgate_bench::report::{self, Setting};
use modelgate_bench::rig::Rig;
use modelgate_bench::scale::{self, Scale};
use modelgate_bench::tokens::Tokens;
use modelgate_bench::workloads::Workload;
use modelgate_e2e::locate;

/// Benchmarks modelgate in a real Envoy against Istio's native JWT chain, and its cost
/// from 10 to 100,000 models.
#[derive(Parser, Debug)]
#[command(name = "modelgate-bench")]
struct Args {
    /// A few seconds per configuration, tiny fleets: checks that every configuration
    /// answers as it must under load (figures are not meaningful).
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// One short round of everything but the 100,000-model fleet (about a minute).
    #[arg(long)]
    quick: bool,
    /// Rounds over all configurations (default: 3; 1 with --smoke or --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measurement (default: 5; 1 with --smoke or --quick).
    #[arg(long)]
    duration: Option<u64>,
    /// Only the gateway comparison, the scale measurements, configuration by reference
    /// through the channel, or the running controller against the API server double (not
    /// part of a full run).
    #[arg(long, value_parser = ["compare", "scale", "channel", "controller"])]
    only: Option<String>,
    /// Configuration by reference through the channel: alternations of the small and the
    /// large fleet in the CPU comparison (default: 5; 2 with --quick, 1 with --smoke).
    #[arg(long)]
    pairs: Option<usize>,
    /// The running controller: fleet sizes with the configuration inline
    /// (`configByReference: never`; default: 1000,10000; 200 with --smoke).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    models: Option<Vec<usize>>,
    /// The running controller: fleet sizes with `configByReference: auto` (default:
    /// 100000; 200 with --smoke, then `always`).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    models_by_reference: Option<Vec<usize>>,
    /// The running controller: seconds to watch it idle after it converged (default: 60;
    /// 2 with --smoke).
    #[arg(long)]
    idle: Option<u64>,
    /// The running controller: seconds one size may take to converge (default: 900; 60
    /// with --smoke).
    #[arg(long)]
    converge_timeout: Option<u64>,
    /// Where the report and raw results go (default: <target>/bench, or
    /// <target>/bench/smoke and <target>/bench/quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The controller binary (default: `modelgate` beside this binary).
    #[arg(long)]
    modelgate: Option<PathBuf>,
    /// The no-op filter (default: <target>/wasm32-wasip1/release/modelgate_bench_noop.wasm).
    #[arg(long)]
    noop_wasm: Option<PathBuf>,
    /// Do not pin Envoy and the load generator to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Only write the comparison's configuration and tokens into <out>/profile-inputs
    /// (what bench/profile/profile.sh runs the filter on) and stop.
    #[arg(long)]
    profile_inputs: bool,
}

/// Tokens in the cold workload's pool: more than modelgate's and jwt_authn's caches hold
/// (8192), so a token comes back only after it has been evicted.
const POOL: usize = 12_000;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("modelgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when some response was not what it must be.
fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let started_at = utc_now();
    let load_before = load_average();
    let mode = if args.smoke {
        "smoke"
    } else if args.quick {
        "quick"
    } else {
        "full"
    };
    let short = args.smoke || args.quick;
    let rounds = args.rounds.unwrap_or(if short { 1 } else { 3 });
    let duration = Duration::from_secs(args.duration.unwrap_or(if short { 1 } else { 5 }));
    let warmup = Duration::from_secs(if args.smoke { 0 } else { 1 });
    let pool = if args.smoke { 64 } else { POOL };

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| locate::repo_root().join("target"));
    // The smoke run of scripts/test.sh must not overwrite the report of a real run.
    let out = args.out.clone().unwrap_or_else(|| match mode {
        "full" => target.join("bench"),
        other => target.join("bench").join(other),
    });
    let work = fresh_work_dir(&out)?;

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let allowed = allowed_cpus();
    let (envoy_cpu, load_cpu) = match allowed.as_slice() {
        [first, .., last] if !args.no_pin => (Some(*last), Some(*first)),
        _ => (None, None),
    };
    let modelgate = match args.modelgate.clone() {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the running binary")?
            .join("modelgate"),
    };
    let noop_wasm = args
        .noop_wasm
        .clone()
        .unwrap_or_else(|| target.join("wasm32-wasip1/release/modelgate_bench_noop.wasm"));
    require(
        &modelgate,
        "cargo build -p modelgate-controller --bin modelgate (release: --release)",
    )?;
    if args.only.as_deref() == Some("controller") {
        let begun = (started, started_at, load_before);
        return run_controller(&args, mode, &modelgate, &work, &out, begun);
    }
    require(
        &noop_wasm,
        "cargo build -p modelgate-bench-noop-filter --target wasm32-wasip1 --release",
    )?;

    eprintln!("bench: minting {pool} tokens");
    let tokens = Tokens::mint(pool);
    let load = LoadGenerator::detect(&work.join("load"), load_cpu)?;
    load.prepare_pool(&tokens.pool)?;
    let rig = Rig {
        work: work.clone(),
        filter_wasm: locate::filter_wasm()?,
        noop_wasm,
        modelgate,
        tokens,
        load,
        envoy_cpu,
    };
    eprintln!("bench: load generator: {}", rig.load.name());

    let mut comparison = Comparison::default();
    if args.profile_inputs {
        let plugin_config = single_model_config(&rig)?;
        write_profile_inputs(&out.join("profile-inputs"), &rig.tokens, &plugin_config)?;
        eprintln!(
            "bench: profile inputs in {}",
            out.join("profile-inputs").display()
        );
        return Ok(true);
    }
    let only = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    if only("compare") {
        let plugin_config = single_model_config(&rig)?;
        write_profile_inputs(&out.join("profile-inputs"), &rig.tokens, &plugin_config)?;
        let plan = comparison::Plan {
            rounds,
            duration,
            warmup,
            steps: comparison_steps(mode),
        };
        comparison = comparison::run(&rig, &plan, &plugin_config)?;
    }
    let mut scale = Scale::default();
    if only("scale") {
        scale = scale::run(&rig, &scale_plan(mode, rounds, duration, warmup))?;
    }
    let mut channel = Channel::default();
    if only("channel") {
        let mut plan = channel::Plan::for_mode(mode, duration, warmup);
        plan.pairs = args.pairs.unwrap_or(plan.pairs);
        channel = channel::run(&rig, &plan)?;
    }

    let setting = Setting {
        mode: mode.to_string(),
        command: std::env::var("MODELGATE_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
        started: started_at,
        wall_s: started.elapsed().as_secs_f64(),
        cpus,
        cpu_model: cpu_model(),
        memory_mib: memory_mib(),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        envoy: envoy_version(),
        load_generator: match &rig.load {
            LoadGenerator::Wrk { .. } => format!("{} one thread", wrk_version()),
            LoadGenerator::Builtin => rig.load.name().to_string(),
        },
        load_average: (load_before, load_average()),
        pinning: match (envoy_cpu, load_cpu) {
            (Some(e), Some(l)) => {
                format!("Envoy (--concurrency 1) pinned to CPU {e}, the load generator to CPU {l}")
            }
            _ => "Envoy (--concurrency 1) and the load generator not pinned".to_string(),
        },
        plan: format!(
            "{rounds} round(s), {} s per measurement, {} s warm-up, cold pool of {pool} tokens",
            duration.as_secs(),
            warmup.as_secs()
        ),
    };
    let mut markdown = report::markdown(&setting, &comparison, &scale);
    markdown.push_str(&channel::markdown(&channel));
    fs::write(out.join("report.md"), &markdown)?;
    fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "setting": setting, "comparison": comparison, "scale": scale, "channel": channel,
            "verdicts": report::verdicts(&comparison, &scale),
        }))?,
    )?;
    println!("{markdown}");
    eprintln!(
        "bench: report in {} ({:.0} s)",
        out.join("report.md").display(),
        started.elapsed().as_secs_f64()
    );
    let clean = comparison.anomalies.is_empty()
        && scale.anomalies.is_empty()
        && channel.anomalies.is_empty();
    if !clean {
        eprintln!("bench: some responses were not what their configuration must answer:");
        for anomaly in comparison
            .anomalies
            .iter()
            .chain(&scale.anomalies)
            .chain(&channel.anomalies)
        {
            eprintln!("  {anomaly}");
        }
    }
    Ok(clean)
}

/// `--only controller`: the running controller against the API server double, its
/// report in `<out>/controller.md` and `controller.json`. `Ok(false)` when a size did not
/// converge or a change did not show.
fn run_controller(
    args: &Args,
    mode: &str,
    modelgate: &Path,
    work: &Path,
    out: &Path,
    (started, started_at, load_before): (Instant, String, String),
) -> Result<bool> {
    let smoke = mode == "smoke";
    let sizes = |given: &Option<Vec<usize>>, default: &[usize]| {
        given
            .clone()
            .unwrap_or_else(|| if smoke { vec![200] } else { default.to_vec() })
    };
    let mut cases: Vec<controller::Case> = sizes(&args.models, &[1_000, 10_000])
        .into_iter()
        .map(|models| controller::Case {
            models,
            by_reference: controller::ByReference::Never,
        })
        .collect();
    cases.extend(
        sizes(&args.models_by_reference, &[100_000])
            .into_iter()
            .map(|models| controller::Case {
                models,
                // A smoke run's fleet is far below auto's threshold.
                by_reference: if smoke {
                    controller::ByReference::Always
                } else {
                    controller::ByReference::Auto
                },
            }),
    );
    let idle = Duration::from_secs(args.idle.unwrap_or(if smoke { 2 } else { 60 }));
    let plan = controller::Plan {
        cases,
        idle,
        timeout: Duration::from_secs(
            args.converge_timeout
                .unwrap_or(if smoke { 60 } else { 900 }),
        ),
        change_timeout: Duration::from_secs(if smoke { 30 } else { 120 }),
        modelgate: modelgate.to_path_buf(),
        work: work.to_path_buf(),
    };
    let tokens = Tokens::mint(0);
    let bench = controller::run(&plan, &tokens.jwks, |so_far| {
        fs::write(
            out.join("controller.json"),
            serde_json::to_vec_pretty(so_far)?,
        )?;
        Ok(())
    })?;
    let mut markdown = format!(
        "# modelgate benchmark: the running controller ({mode})\n\n- command: `{}`\n- started: {}\n- machine: {} logical CPUs, {}, {} MiB memory\n- load average before: {}; after: {}\n\n",
        std::env::var("MODELGATE_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
        started_at,
        std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model(),
        memory_mib(),
        load_before,
        load_average(),
    );
    markdown.push_str(&controller::markdown(&bench, &plan));
    fs::write(out.join("controller.md"), &markdown)?;
    fs::write(
        out.join("controller.json"),
        serde_json::to_vec_pretty(&bench)?,
    )?;
    println!("{markdown}");
    eprintln!(
        "bench: report in {} ({:.0} s)",
        out.join("controller.md").display(),
        started.elapsed().as_secs_f64()
    );
    let failures = bench.failures();
    for failure in &failures {
        eprintln!("bench: {failure}");
    }
    Ok(failures.is_empty())
}

/// `<out>/work.<pid>`, created empty: runs in the same checkout (a smoke run of the test
/// command during a full run) never share scripts, token files or Envoy directories.
/// Directories of runs whose process is gone are removed.
fn fresh_work_dir(out: &Path) -> Result<PathBuf> {
    fs::create_dir_all(out)?;
    for entry in fs::read_dir(out)?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("work.")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let work = out.join(format!("work.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    Ok(work)
}

fn require(path: &Path, build: &str) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{} does not exist: build it with `{build}` (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(())
}

/// modelgate's configuration for the comparison: `modelgate render` of one SeldonDeployment
/// annotated with the policy the other chains enforce.
fn single_model_config(rig: &Rig) -> Result<String> {
    let dir = rig.work.join("compare/fleet");
    fleet::write_seldon_deployments(&dir.join("manifests"), 1, &rig.tokens.jwks)?;
    let output = dir.join("render.yaml");
    fleet::render(&rig.modelgate, &dir.join("manifests"), &output)?;
    fleet::plugin_config(&fs::read_to_string(&output)?)
}

/// The comparison's configuration and tokens, as files for `bench/profile/profile.sh`
/// (the filter in node's V8 under a profiler).
fn write_profile_inputs(dir: &Path, tokens: &Tokens, plugin_config: &str) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("plugin-config.json"), plugin_config)?;
    for (file, token) in [
        ("hot.txt", &tokens.hot),
        ("bad-signature.txt", &tokens.bad_signature),
        ("expired.txt", &tokens.expired),
        ("missing-claim.txt", &tokens.missing_claim),
    ] {
        fs::write(dir.join(file), format!("{token}\n"))?;
    }
    fs::write(dir.join("pool.txt"), tokens.pool.join("\n") + "\n")?;
    Ok(())
}

/// The measurements of each chain in each round.
fn comparison_steps(mode: &str) -> Vec<(Workload, u32)> {
    match mode {
        // Every workload's answers are checked before load anyway; under load, the two
        // that exercise the wrk scripts.
        "smoke" => vec![(Workload::Hot, 4), (Workload::Cold, 4)],
        "quick" => Workload::ALL.iter().map(|&w| (w, 16)).collect(),
        _ => {
            let mut steps = Vec::new();
            for workload in [Workload::Hot, Workload::Cold] {
                for connections in [1, 16, 64] {
                    steps.push((workload, connections));
                }
            }
            for workload in [
                Workload::BadSignature,
                Workload::Expired,
                Workload::MissingClaim,
                Workload::Prometheus,
            ] {
                steps.push((workload, 16));
            }
            steps
        }
    }
}

fn scale_plan(mode: &str, rounds: usize, duration: Duration, warmup: Duration) -> scale::Plan {
    let (sizes, render_timed, render_repeats, per_vm) = match mode {
        "smoke" => (vec![10], vec![], 1, false),
        "quick" => (vec![10, 1_000, 10_000], vec![1_000, 10_000], 1, false),
        _ => (
            vec![10, 1_000, 10_000, 100_000],
            vec![1_000, 10_000],
            3,
            true,
        ),
    };
    scale::Plan {
        cpu_sizes: sizes
            .iter()
            .copied()
            .filter(|&n| n == 10 || n == 10_000)
            .collect(),
        sizes,
        render_timed,
        render_repeats,
        rounds,
        duration,
        warmup,
        connections: if mode == "smoke" { 4 } else { 16 },
        per_vm,
        cpu_pairs: match mode {
            "smoke" => 0,
            "quick" => 2,
            _ => 5,
        },
    }
}

/// The CPUs this process may run on (a container may be given fewer than the machine has).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this process.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string())
}

fn memory_mib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn envoy_version() -> String {
    let Ok(binary) = locate::envoy_binary() else {
        return "unknown".into();
    };
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let version = text.split("version: ").nth(1)?.trim().to_string();
            Some(version)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn wrk_version() -> String {
    Command::new("wrk")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            text.lines()
                .next()
                .map(|l| l.split(" [").next().unwrap_or(l).trim().to_string())
        })
        .unwrap_or_else(|| "wrk".into())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}
