//! `modelgate`: the controller's command line. Parses arguments and wires the library up.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use modelgate_controller::explain::{ExplainRequest, explain};
use modelgate_controller::from_files::{Note, Read, plan_from_files, read_files};
use modelgate_controller::generate::Planned;
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::{RunSettingsArgs, SettingsArgs};
use modelgate_controller::{Generated, Settings, manifests};

/// The most threads `render` makes objects on.
const RENDER_THREADS: usize = 4;
/// Models whose objects one thread of `render` makes at a time.
const RENDER_CHUNK: usize = 256;

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
    /// Print the Kubernetes permissions `run` needs with these settings (and the same run
    /// flags): the table the chart's RBAC grants.
    Permissions {
        /// Output format.
        #[arg(long, value_enum, default_value = "yaml")]
        output: modelgate_controller::permissions::Format,
        #[command(flatten)]
        run: RunSettingsArgs,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Run the controller in the cluster.
    Run {
        #[command(flatten)]
        run: RunSettingsArgs,
        #[command(flatten)]
        settings: SettingsArgs,
    },
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
            let sdeps = read(&files, &settings)?;
            let planned = plan(&sdeps, &settings, offline)?;
            report(&planned.generated);
            let code = exit_for(&planned.generated);
            // The models' objects are made and turned into YAML on every core, a few
            // hundred models at a time each, and written in order.
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let mut out = BufWriter::new(std::io::stdout().lock());
            planned.encode_each_object(
                threads.min(RENDER_THREADS),
                RENDER_CHUNK,
                manifests::encode_yaml,
                |bytes| out.write_all(bytes),
            )?;
            out.flush()?;
            Ok(code)
        }
        Command::Check { files, settings } => {
            let settings = settings.resolve()?.settings;
            let sdeps = read(&files, &settings)?;
            let generated = plan(&sdeps, &settings, true)?.generated;
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
            let sdeps = read(&files, &settings)?;
            let generated = plan(&sdeps, &settings, offline)?.generated;
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
        Command::Permissions {
            output,
            run,
            settings,
        } => {
            let file = settings.resolve()?;
            let permissions = modelgate_controller::permissions::Permissions::resolve(
                &file.settings,
                &run.resolve(file.run),
            );
            print!("{}", permissions.render(output));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { run, settings } => {
            let file = settings.resolve()?;
            let run_settings = run.resolve(file.run);
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

/// Reads the SeldonDeployments of the files, printing the notes met on the way.
fn read(files: &Files, settings: &Settings) -> anyhow::Result<Vec<SeldonDeployment>> {
    let Read {
        seldon_deployments,
        notes,
    } = read_files(&files.files, settings)?;
    print_notes(&notes);
    Ok(seldon_deployments)
}

/// Generates from the SeldonDeployments, each model's own objects left to be made when
/// written, printing the notes met on the way.
fn plan<'a>(
    sdeps: &'a [SeldonDeployment],
    settings: &Settings,
    offline: bool,
) -> anyhow::Result<Planned<'a>> {
    let mut notes = Vec::new();
    let planned = plan_from_files(sdeps, settings, offline, &mut notes)?;
    print_notes(&notes);
    Ok(planned)
}

fn print_notes(notes: &[Note]) {
    for note in notes {
        eprintln!("{note}");
    }
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
