//! The modelgate demo, from what a user writes to what the gateway does: the annotated
//! SeldonDeployments of `deploy/examples/demo/` go through the controller's `check` and
//! `render` (in process, offline), and exactly the routes and `pluginConfig` rendered are
//! loaded into a real Envoy running the built filter, in front of one stand-in server per
//! predictor; a broken annotation is shown to stay its model's problem. Then a tour of requests, sticky users, the split against the rendered
//! weights and the shadow's copies, each with an expectation; the exit status is non-zero
//! if anything deviates.
//!
//! `bash scripts/demo.sh [--keep] [--metrics-out FILE]`, or
//! `cargo run -p modelgate-e2e --bin demo -- ...` once set up.

mod checks;
mod mistake;
mod summary;
mod tour;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use std::{fs, thread};

use modelgate_controller::Settings;
use modelgate_controller::from_files::{FromFiles, generate_from_files};
use modelgate_e2e::render::Rendered;
use modelgate_e2e::{Gateway, locate};

use crate::users::{FRAUD, HEADER, IRIS, IRIS_HEADER, LEGACY, SEARCH};

const USAGE: &str = "usage: demo [--keep] [--metrics-out FILE]
  --keep              stay up after the checks, with curl commands to try (Ctrl-C stops)
  --metrics-out FILE  write the gateway's Prometheus scrape, taken at the end, to FILE";

struct Options {
    keep: bool,
    metrics_out: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        keep: false,
        metrics_out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => options.keep = true,
            "--metrics-out" => {
                let file = args.next().ok_or("--metrics-out needs a file")?;
                options.metrics_out = Some(file.into());
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// The demo's manifests, in name order.
fn manifests(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no YAML manifests in {}", dir.display()));
    }
    Ok(files)
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("demo: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(why) => {
            eprintln!("demo: {why}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything and returns the number of deviations.
fn run(options: &Options) -> Result<usize, String> {
    let root = locate::repo_root();
    let dir = root.join("deploy/examples/demo");
    let shown = dir
        .strip_prefix(&root)
        .unwrap_or(&dir)
        .display()
        .to_string();
    let files = manifests(&dir)?;
    let settings = Settings::default();

    // One generation serves both commands: `check` is `render`'s generation, offline,
    // reporting the problems; the demo's manifests embed their keys, so offline is all.
    println!("modelgate check -f {shown}/   (in process: the controller's own code)");
    let FromFiles { generated, notes } = generate_from_files(&files, &settings, true)
        .map_err(|e| format!("the manifests cannot be read: {e}"))?;
    for note in &notes {
        println!("  {note}");
    }
    if summary::check(&generated) > 0 {
        return Ok(1);
    }
    println!();
    println!("modelgate render --offline -f {shown}/   (in process)");
    let rendered = Rendered::from_generated(&generated).map_err(|e| e.to_string())?;
    let spec = rendered
        .gateway_spec(&settings.default_gateway)
        .map_err(|e| format!("the rendered objects do not make a gateway: {e}"))?;
    summary::render(
        &rendered,
        &generated.filter_config,
        spec.filter_config.len(),
    );
    let mut deviations = mistake::show(&files, &generated.filter_config, &settings);
    println!();

    let gw = Gateway::start("demo", &spec).map_err(|e| format!("cannot start the gateway: {e}"))?;
    let version = gw
        .admin_get("/server_info")
        .map(|r| r.json()["version"].as_str().unwrap_or("?").to_string())
        .unwrap_or_default();
    println!(
        "Envoy {version} (pid {}) on {} with the built filter, the rendered routes and pluginConfig",
        gw.pid(),
        gw.address()
    );
    println!("log and generated config: {}", gw.dir().display());
    println!();

    deviations += tour::run_tour(&gw);
    deviations += checks::sticky(&gw, 40, 5);
    deviations += checks::split(&gw, &rendered, 2000);
    deviations += checks::shadow(&gw);

    let scrape = gw
        .admin_get("/stats/prometheus")
        .map_err(|e| format!("cannot scrape the gateway: {e}"))?
        .text();
    println!();
    println!("modelgate metrics on /stats/prometheus:");
    for line in scrape.lines().filter(|l| l.starts_with("modelgate_")) {
        println!("  {line}");
    }
    if let Some(file) = &options.metrics_out {
        fs::write(file, &scrape).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        println!("(the whole scrape is in {})", file.display());
    }
    println!();
    if deviations == 0 {
        println!("Every row is as expected.");
    } else {
        println!("{deviations} row(s) deviate from their expectation.");
    }
    if options.keep {
        keep(&gw, &shown);
    }
    Ok(deviations)
}

/// Stays up with ready-to-paste requests until interrupted (Envoy dies with the demo).
fn keep(gw: &Gateway, dir: &str) -> ! {
    let base = format!("http://{}", gw.address());
    let body = r#"-H 'content-type: application/json' -d '{"data":{"ndarray":[[1,2,3,4]]}}'"#;
    let predict = |model: &str| format!("$GW/seldon/{model}/api/v1.0/predictions");
    println!();
    println!("The gateway stays up. Tokens are valid for an hour. Try:");
    println!();
    println!("export GW={base}");
    println!("export ALICE={}", users::fraud_token("alice"));
    println!("export PARTNER={}", users::search_token("partner-1"));
    println!("export BOB={}", users::team_token("bob"));
    println!();
    println!(
        "curl -i {} -H \"authorization: Bearer $ALICE\" {body}",
        predict(FRAUD)
    );
    println!(
        "curl -i {} -H \"authorization: Bearer $ALICE\" -H '{HEADER}: canary' {body}",
        predict(FRAUD)
    );
    println!("curl -i {} {body}", predict(FRAUD));
    println!(
        "curl -i \"{}?access_token=$PARTNER\" {body}",
        predict(SEARCH)
    );
    println!(
        "curl -i {} -H \"authorization: Bearer $PARTNER\" -H '{HEADER}: next' {body}",
        predict(SEARCH)
    );
    println!("curl -i {} {body}", predict(LEGACY));
    println!("curl -i {} -H '{IRIS_HEADER}: b' {body}", predict(IRIS));
    println!(
        "curl -s http://{}/stats/prometheus | grep ^modelgate_",
        gw.admin_address()
    );
    println!();
    println!(
        "The answer's x-e2e-upstream header names the predictor that answered; its body echoes what the model received."
    );
    println!(
        "Edit an annotation in {dir}/*.yaml (say, remove seldon.io/auth-mode from 3-legacy-audit.yaml,"
    );
    println!(
        "or change the canary's traffic), then stop this (Ctrl-C) and run bash scripts/demo.sh --keep again:"
    );
    println!(
        "check reports any mistake, and the tour's rows that deviate show what your change did."
    );
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}
