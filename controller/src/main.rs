//! `modelgate`: the controller's command line. Parses arguments and wires the library up.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use modelgate_controller::explain::{ExplainRequest, explain};
use modelgate_controller::generate::WasmSource;
use modelgate_controller::settings::SettingsArgs;
use modelgate_controller::{Generated, Inputs, Settings, generate, jwks, manifests, wasm};

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Per-model JWT authorization and A/B routing for Seldon models at the Istio ingress gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object `run` would apply for these SeldonDeployments, as YAML.
    Render {
        #[command(flatten)]
        files: Files,
        /// Do not fetch JWKS URIs (their key sets stay empty: those models are denied).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Report every annotation and spec problem; exit non-zero on any.
    Check {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Tell what the gateway filter would do with a request, step by step.
    Explain {
        #[command(flatten)]
        files: Files,
        /// The request, as 'METHOD /path?query'.
        #[arg(long)]
        request: String,
        /// A request header, as 'name: value' (repeat for several).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Do not fetch JWKS URIs.
        #[arg(long)]
        offline: bool,
        /// Unix time to check token times against (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// The filter's random number for weighted routing (default: a random one).
        #[arg(long)]
        random: Option<u64>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the Kubernetes permissions `run` needs with these settings (the `run:`
    /// section of --config): the table the chart's RBAC grants.
    Permissions {
        /// Output format.
        #[arg(long, value_enum, default_value = "yaml")]
        output: modelgate_controller::permissions::Format,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Run the controller in the cluster.
    Run {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces to watch (comma-separated); all when not given.
    #[arg(long, env = "MODELGATE_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Address of the HTTP server (filter module, /metrics, /healthz, /readyz).
    #[arg(long, env = "MODELGATE_LISTEN")]
    listen: Option<String>,
    /// How often JWKS URIs are fetched again, like 20m.
    #[arg(long, env = "MODELGATE_JWKS_REFRESH", value_parser = humantime::parse_duration)]
    jwks_refresh: Option<std::time::Duration>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "MODELGATE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Models reconciled at once (at least 1; default 16).
    #[arg(long, env = "MODELGATE_CONCURRENCY")]
    concurrency: Option<std::num::NonZeroU16>,
    /// Log as JSON lines.
    #[arg(long, env = "MODELGATE_LOG_JSON")]
    log_json: bool,
}

#[derive(clap::Args)]
struct Files {
    /// SeldonDeployment manifests: files, directories, or - for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    match run_cli() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_cli() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Render {
            files,
            offline,
            settings,
        } => {
            let settings = settings.resolve()?.settings;
            let generated = generate_from_files(&files.files, &settings, offline)?;
            report(&generated);
            let yaml = manifests::to_yaml(&generated.objects());
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(exit_for(&generated))
        }
        Command::Check { files, settings } => {
            let settings = settings.resolve()?.settings;
            let generated = generate_from_files(&files.files, &settings, true)?;
            report(&generated);
            let errors = generated.errors().count();
            eprintln!(
                "{} SeldonDeployment(s), {errors} error(s), {} warning(s)",
                generated.models.len(),
                generated.warnings().count()
            );
            Ok(exit_for(&generated))
        }
        Command::Explain {
            files,
            request,
            headers,
            offline,
            now,
            random,
            settings,
        } => {
            let settings = settings.resolve()?.settings;
            let request = ExplainRequest::parse(&request, &headers).map_err(anyhow::Error::msg)?;
            let generated = generate_from_files(&files.files, &settings, offline)?;
            report(&generated);
            let now = now.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            let random = random.unwrap_or_else(|| {
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            });
            let explanation = explain(&generated.filter_config, &request, now, random)
                .context("the generated filter configuration does not compile")?;
            for line in &explanation.lines {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Permissions { output, settings } => {
            let file = settings.resolve()?;
            let permissions =
                modelgate_controller::permissions::Permissions::resolve(&file.settings, &file.run);
            print!("{}", permissions.render(output));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { run, settings } => {
            let file = settings.resolve()?;
            let mut run_settings = file.run;
            if !run.namespaces.is_empty() {
                run_settings.namespaces = run.namespaces;
            }
            if let Some(listen) = run.listen {
                run_settings.listen = listen;
            }
            if let Some(refresh) = run.jwks_refresh {
                run_settings.jwks_refresh = refresh;
            }
            if let Some(ns) = run.lease_namespace {
                run_settings.lease_namespace = ns;
            }
            if let Some(concurrency) = run.concurrency {
                run_settings.concurrency = concurrency;
            }
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            if run.log_json {
                tracing_subscriber::fmt()
                    .json()
                    .with_env_filter(filter)
                    .init();
            } else {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            tokio::runtime::Runtime::new()?
                .block_on(modelgate_controller::run::run(file.settings, run_settings))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn generate_from_files(
    files: &[PathBuf],
    settings: &Settings,
    offline: bool,
) -> anyhow::Result<Generated> {
    let manifests = manifests::read(files, &settings.default_namespace)?;
    for skipped in &manifests.skipped {
        eprintln!("note: skipped {skipped} (not a SeldonDeployment)");
    }
    let wasm_source = WasmSource::from_settings(settings, &wasm::filter_sha256());
    let last_good = BTreeMap::new();
    let no_keys = BTreeMap::new();
    let inputs = Inputs {
        settings,
        jwks: &no_keys,
        last_good: &last_good,
        wasm: &wasm_source,
    };
    let first = generate(&manifests.seldon_deployments, inputs);
    if offline || first.jwks_uris.is_empty() {
        for uri in &first.jwks_uris {
            eprintln!(
                "note: JWKS {uri} not fetched (--offline): models using it deny every request"
            );
        }
        return Ok(first);
    }
    let keys = fetch_all(&first.jwks_uris, settings)?;
    Ok(generate(
        &manifests.seldon_deployments,
        Inputs {
            jwks: &keys,
            ..inputs
        },
    ))
}

/// Fetches every URI under the same rules and limits as `run`, all at once.
fn fetch_all(
    uris: &std::collections::BTreeSet<String>,
    settings: &Settings,
) -> anyhow::Result<BTreeMap<String, modelgate_core::config::KeySet>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let defaults = modelgate_controller::RunSettings::default();
    let fetcher = jwks::Fetcher::new(&settings.jwks, defaults.jwks_timeout)?;
    let schedule = jwks::Schedule {
        refresh: defaults.jwks_refresh,
        retry: defaults.jwks_retry,
    };
    let refresher = jwks::Refresher::new(fetcher, schedule, defaults.jwks_concurrency);
    let cache = jwks::JwksCache::default();
    cache.track(uris);
    let report = runtime.block_on(refresher.refresh_due(&cache));
    for (_, e) in &report.failed {
        eprintln!("warning: {e}: models using it deny every request");
    }
    Ok(cache.snapshot())
}

fn report(generated: &Generated) {
    for error in generated.errors() {
        eprintln!("error: {error}");
    }
    for warning in generated.warnings() {
        eprintln!("warning: {warning}");
    }
}

fn exit_for(generated: &Generated) -> ExitCode {
    if generated.errors().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
