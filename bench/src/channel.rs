//! Configuration by reference at scale: the filter's `pluginConfig` only names the
//! document (`configByReference: always`), which the filter fetches through the channel
//! cluster from the controller's own HTTP server, run here in process with the documents
//! kept in memory, as the controller serves them at `/config/<sha256>`.
//!
//! Fleets are `modelgate render`'s (the scale section's fleets); the reference and the
//! document are the controller library's (`generate::by_reference::carry`), applied to the
//! rendered `pluginConfig`, and checked at the smallest size against `render
//! --config-by-reference always` itself.
//!
//! Measured, in one Envoy: hot CPU per request with the small and the large document
//! alternated by ECDS updates (each a new reference the filter fetches); and the time from
//! a model change (one more model) to its enforcement: Envoy applies the new reference,
//! the filter fetches, verifies and compiles the document, and a request to the new model
//! is answered `401`. The same for an inline `pluginConfig`, for comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use modelgate_controller::Settings;
use modelgate_controller::config_documents::ConfigDocuments;
use modelgate_controller::generate::by_reference::{ConfigByReference, ConfigDocument, carry};
use modelgate_controller::wasm_server::{self, ServerState};
use modelgate_e2e::bootstrap::{socket_address, write_ecds_document};
use modelgate_e2e::{Client, Request};
use serde::Serialize;
use serde_json::{Value, json};

use crate::chains::{self, Chain, MODEL_NAMESPACE};
use crate::envoy::Envoy;
use crate::fleet;
use crate::rig::Rig;
use crate::scale::{hot_cpu, hot_load};
use crate::stats::median;

/// The controller's Service as `--service-url` names it; the channel's cluster is Istio's
/// outbound cluster of it.
const SERVICE_URL: &str = "http://modelgate.modelgate-system.svc.cluster.local:8080";
const CONTROLLER_CLUSTER: &str = "outbound|8080||modelgate.modelgate-system.svc.cluster.local";
/// The most one ECDS update may take to be applied, or a change to be enforced.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often the new answer is polled for.
const POLL: Duration = Duration::from_millis(2);
/// Limit for an object the API server stores without complaint, set by issue 13.
const OBJECT_LIMIT: usize = 64 * 1024;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The small fleet (models) of the CPU comparison.
    pub small: usize,
    /// The large fleet.
    pub large: usize,
    /// Alternations of both, each measuring the hot CPU of both.
    pub pairs: usize,
    /// Fleets whose model changes are timed (each must be `small`, `large`, or rendered).
    pub change_sizes: Vec<usize>,
    /// Of those, the ones timed with an inline `pluginConfig` too.
    pub inline_change_sizes: Vec<usize>,
    /// Changes timed per fleet and delivery.
    pub changes: usize,
    /// Length of one hot measurement.
    pub duration: Duration,
    /// Hot load before each measurement (after a switch).
    pub warmup: Duration,
    /// Connections of the hot load.
    pub connections: u32,
}

impl Plan {
    /// The plan of a benchmark mode (`smoke`, `quick` or `full`): the smoke run checks the
    /// answers along the whole path at a small size.
    pub fn for_mode(mode: &str, duration: Duration, warmup: Duration) -> Self {
        let (large, pairs, change_sizes, changes) = match mode {
            "smoke" => (200, 1, vec![200], 2),
            "quick" => (10_000, 2, vec![10_000], 3),
            _ => (100_000, 5, vec![10_000, 100_000], 5),
        };
        Self {
            small: 10,
            large,
            pairs,
            inline_change_sizes: change_sizes.clone(),
            change_sizes,
            changes,
            duration,
            warmup,
            connections: if mode == "smoke" { 4 } else { 16 },
        }
    }
}

/// A fleet carried by reference.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// Models.
    pub models: usize,
    /// Bytes of the referenced document (what the filter fetches).
    pub document_bytes: usize,
    /// Bytes of the WasmPlugin object naming it (compact JSON, as the API server stores it).
    pub wasm_plugin_bytes: usize,
    /// Bytes of the WasmPlugin object with the configuration inline instead.
    pub inline_wasm_plugin_bytes: usize,
    /// How long the controller's server takes to answer the document over loopback (ms).
    pub served_ms: f64,
}

/// One hot measurement of the CPU comparison.
#[derive(Debug, Clone, Serialize)]
pub struct PairSample {
    /// The alternation, from 0.
    pub pair: usize,
    /// Models of the document in force.
    pub models: usize,
    /// Envoy CPU per hot request (µs).
    pub cpu_us_per_request: f64,
    /// Hot requests per second.
    pub throughput: f64,
}

/// How the configuration reaches the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delivery {
    /// A reference in `pluginConfig`; the filter fetches the document.
    Reference,
    /// The whole configuration in `pluginConfig`.
    Inline,
}

/// One model change, from the ECDS update to its enforcement.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeSample {
    /// Models before the change.
    pub models: usize,
    /// How the configuration was delivered.
    pub delivery: Delivery,
    /// The change, from 0.
    pub change: usize,
    /// Until Envoy reports the new ECDS version applied (ms).
    pub applied_ms: f64,
    /// Until a request to the changed model gets the new answer (ms).
    pub enforced_ms: f64,
    /// By reference: each filter VM's time from asking for the document until it is
    /// compiled and in force (ms, from the filter's log lines).
    pub vm_fetch_ms: Vec<f64>,
}

/// Everything the channel part measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Channel {
    /// The fleets by reference.
    pub documents: Vec<Document>,
    /// Hot CPU of the small and the large document, alternated in one Envoy.
    pub pairs: Vec<PairSample>,
    /// Model changes timed.
    pub changes: Vec<ChangeSample>,
    /// Unexpected answers.
    pub anomalies: Vec<String>,
}

impl Channel {
    /// The large/small CPU ratio of each alternation.
    pub fn ratios(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for pair in 0.. {
            let samples: Vec<&PairSample> = self.pairs.iter().filter(|p| p.pair == pair).collect();
            let small = samples.iter().min_by_key(|p| p.models);
            let large = samples.iter().max_by_key(|p| p.models);
            match (small, large) {
                (Some(small), Some(large)) if small.models < large.models => {
                    out.push(large.cpu_us_per_request / small.cpu_us_per_request);
                }
                _ => break,
            }
        }
        out
    }
}

/// A fleet rendered: its inline `pluginConfig`, and the reference and document the
/// controller carries it as.
struct Carried {
    config: Value,
    inline: String,
    reference: String,
    document: ConfigDocument,
}

/// Runs the measurements.
pub fn run(rig: &Rig, plan: &Plan) -> Result<Channel> {
    let mut out = Channel::default();
    let controller = Controller::start()?;
    let mut sizes = vec![plan.small, plan.large];
    sizes.extend(&plan.change_sizes);
    sizes.sort_unstable();
    sizes.dedup();
    let mut fleets = BTreeMap::new();
    for &models in &sizes {
        eprintln!("bench: channel: rendering {models} SeldonDeployments");
        let (carried, mut document) = render(rig, models, models == sizes[0])?;
        controller.documents.remember(carried.document.clone());
        document.served_ms = served_ms(&controller, &carried.document)?;
        out.documents.push(document);
        fleets.insert(models, carried);
    }

    let dir = rig.work.join("channel");
    let small = &fleets[&plan.small];
    controller.documents.remember(small.document.clone());
    let envoy = start(rig, &dir, &small.reference, controller.address)?;
    rig.time_until_serving(&envoy, 200)?;
    let mut ecds = Ecds {
        envoy: &envoy,
        file: dir.join("ecds").join("filter.json"),
        wasm: &rig.filter_wasm,
        version: 1,
    };

    // A model only the large fleet has: passed through (200) by the small document,
    // refused without a token (401) by the large one.
    let probe = format!(
        "{MODEL_NAMESPACE}/{}",
        fleet::model_name(plan.large.max(plan.small) - 1)
    );
    let mut current = plan.small;
    for pair in 0..plan.pairs {
        let order = if pair % 2 == 0 {
            [plan.small, plan.large]
        } else {
            [plan.large, plan.small]
        };
        for models in order {
            eprintln!(
                "bench: channel: paired CPU {}/{}: {models} models by reference",
                pair + 1,
                plan.pairs
            );
            if models != current {
                let carried = &fleets[&models];
                controller.documents.remember(carried.document.clone());
                let status = if models == plan.large { 401 } else { 200 };
                ecds.switch(&carried.reference, &probe, status)?;
                current = models;
            }
            if !plan.warmup.is_zero() {
                hot_load(rig, &envoy, plan.connections, plan.warmup)?;
            }
            let what = format!("channel: paired CPU {pair}, {models} models");
            let (cpu, rps) = hot_cpu(
                rig,
                &envoy,
                plan.connections,
                plan.duration,
                &what,
                &mut out.anomalies,
            )?;
            out.pairs.push(PairSample {
                pair,
                models,
                cpu_us_per_request: cpu,
                throughput: rps,
            });
        }
    }

    // Largest first: the Envoy holds the large document after the pairs.
    let mut lineup: Vec<(usize, Delivery)> = Vec::new();
    for &models in plan.change_sizes.iter().rev() {
        lineup.push((models, Delivery::Reference));
        if plan.inline_change_sizes.contains(&models) {
            lineup.push((models, Delivery::Inline));
        }
    }
    let mut added = 0;
    for (models, delivery) in lineup {
        let carried = &fleets[&models];
        let mut config = carried.config.clone();
        // The fleet itself in force first: a probe it refuses, and an earlier change's
        // model it passes through.
        let start_probe = format!("{MODEL_NAMESPACE}/{}", fleet::model_name(models - 1));
        let plugin_config = match delivery {
            Delivery::Reference => {
                controller.documents.remember(carried.document.clone());
                carried.reference.clone()
            }
            Delivery::Inline => carried.inline.clone(),
        };
        eprintln!("bench: channel: {models} models, {delivery:?}, in force");
        ecds.push(&plugin_config, &start_probe, 401)?;
        ecds.wait_for(&probe_of(added), 200)?;
        for change in 0..plan.changes {
            added += 1;
            let model = probe_of(added);
            with_model_added(&mut config, &model)?;
            let mut sha256 = None;
            let plugin_config = match delivery {
                Delivery::Reference => {
                    let (reference, document) = by_reference(&config)?;
                    sha256 = Some(document.sha256.clone());
                    controller.documents.remember(document);
                    reference
                }
                Delivery::Inline => config.to_string(),
            };
            let (applied, enforced) = ecds.switch(&plugin_config, &model, 401)?;
            let vm_fetch_ms = match &sha256 {
                // Every VM has logged by now, or soon: the one serving was the last.
                Some(sha256) => {
                    thread::sleep(Duration::from_millis(200));
                    vm_times(&envoy.log(), sha256)
                }
                None => Vec::new(),
            };
            eprintln!(
                "bench: channel: {models} models, {delivery:?}, change {}/{}: applied {:.0} ms, enforced {:.0} ms",
                change + 1,
                plan.changes,
                applied.as_secs_f64() * 1000.0,
                enforced.as_secs_f64() * 1000.0
            );
            out.changes.push(ChangeSample {
                models,
                delivery,
                change,
                applied_ms: applied.as_secs_f64() * 1000.0,
                enforced_ms: enforced.as_secs_f64() * 1000.0,
                vm_fetch_ms,
            });
        }
    }
    // The hot request of every measurement was checked; the log keeps the filter's view.
    drop(envoy);
    Ok(out)
}

/// The model the `n`-th change adds (no fleet has it).
fn probe_of(n: usize) -> String {
    format!("{MODEL_NAMESPACE}/added-by-change-{n}")
}

/// Renders a fleet of `models`, and carries its `pluginConfig` by reference as the
/// controller does. With `check`, also renders it with `--config-by-reference always` and
/// requires the very WasmPlugin derived here.
fn render(rig: &Rig, models: usize, check: bool) -> Result<(Carried, Document)> {
    let dir = rig.work.join(format!("channel/fleet-{models}"));
    let manifests = dir.join("seldon-deployments");
    fleet::write_seldon_deployments(&manifests, models, &rig.tokens.jwks)?;
    let output = dir.join("render.yaml");
    fleet::render(&rig.modelgate, &manifests, &output)?;
    let text = fs::read_to_string(&output)?;
    let mut wasm_plugin = fleet::wasm_plugin(&text)?;
    drop(text);
    let config = wasm_plugin["spec"]["pluginConfig"].take();
    let inline = config.to_string();
    let inline_wasm_plugin_bytes = {
        let mut object = wasm_plugin.clone();
        object["spec"]["pluginConfig"] = config.clone();
        serde_json::to_vec(&object)?.len()
    };
    let (reference, document) = by_reference(&config)?;
    wasm_plugin["spec"]["pluginConfig"] = serde_json::from_str(&reference)?;
    if check {
        let by_render = dir.join("render-by-reference.yaml");
        fleet::render_with(
            &rig.modelgate,
            &manifests,
            &by_render,
            &[
                "--config-by-reference",
                "always",
                "--service-url",
                SERVICE_URL,
            ],
        )?;
        let rendered = fleet::wasm_plugin(&fs::read_to_string(&by_render)?)?;
        if rendered != wasm_plugin {
            bail!(
                "the WasmPlugin of `render --config-by-reference always` differs from the one \
                 derived here:\n{rendered}\n{wasm_plugin}"
            );
        }
    }
    let _ = fs::remove_dir_all(&manifests);
    let _ = fs::remove_file(&output);
    let document_row = Document {
        models,
        document_bytes: document.bytes.len(),
        wasm_plugin_bytes: serde_json::to_vec(&wasm_plugin)?.len(),
        inline_wasm_plugin_bytes,
        served_ms: f64::NAN,
    };
    Ok((
        Carried {
            config,
            inline,
            reference,
            document,
        },
        document_row,
    ))
}

/// The reference (`pluginConfig`, compact JSON) and document for a configuration, as the
/// controller carries it with `configByReference: always`.
fn by_reference(config: &Value) -> Result<(String, ConfigDocument)> {
    let settings = Settings {
        service_url: SERVICE_URL.into(),
        config_by_reference: ConfigByReference::Always,
        ..Settings::default()
    };
    let config: modelgate_core::config::FilterConfig = serde_json::from_value(config.clone())
        .context("the rendered configuration is not a filter configuration")?;
    let (reference, document) = carry(&config, &settings);
    let document = document.context("configByReference always carries no reference")?;
    Ok((reference.to_string(), document))
}

/// One more model, under the policy of the fleet's first model.
fn with_model_added(config: &mut Value, model: &str) -> Result<()> {
    let first = format!("{MODEL_NAMESPACE}/{}", fleet::model_name(0));
    let entry = config["models"][&first].clone();
    if entry.is_null() {
        bail!("the rendered configuration has no model {first}");
    }
    config["models"][model] = entry;
    Ok(())
}

/// Envoy with modelgate's chain, `plugin_config` by ECDS, and the channel's cluster to the
/// controller at `controller`.
fn start(rig: &Rig, dir: &Path, plugin_config: &str, controller: SocketAddr) -> Result<Envoy> {
    let _ = fs::remove_dir_all(dir);
    let ecds_file = dir.join("ecds").join("filter.json");
    fs::create_dir_all(dir.join("ecds"))?;
    write_ecds_document(&ecds_file, 1, &rig.filter_wasm, plugin_config)?;
    let mut bootstrap = chains::bootstrap(Chain::Modelgate, &rig.tokens.jwks, &ecds_file);
    bootstrap["static_resources"]["clusters"] = json!([{
        "name": CONTROLLER_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": CONTROLLER_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(controller)}}]}],
        },
    }]);
    // The filter logs at `info` only when its configuration changes: when it starts and
    // when it has fetched, verified and compiled a document (see `vm_times`).
    let log = ["--component-log-level", "wasm:info"];
    Envoy::start_logging(dir, &bootstrap, 1, rig.envoy_cpu, &log)
}

/// For the document `sha256`, from the filter's log lines: each VM's time from asking for
/// it (`fetching`) until it has it compiled and in force (`fetched and verified`), in ms
/// (Envoy's log has millisecond timestamps). Envoy's main thread has VMs of its own, which
/// fetch too (on the same CPU here).
fn vm_times(log: &str, sha256: &str) -> Vec<f64> {
    let mut asked: BTreeMap<&str, f64> = BTreeMap::new();
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains(sha256)) {
        let Some((time, thread)) = time_and_thread(line) else {
            continue;
        };
        if line.contains("fetching") {
            asked.insert(thread, time);
        } else if line.contains("fetched and verified")
            && let Some(start) = asked.remove(thread)
        {
            out.push(time - start);
        }
    }
    out
}

/// The time of day (ms) and the thread of an Envoy log line
/// (`[2026-12-05 12:20:12.349][22441][info]...`).
fn time_and_thread(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("][")?;
    let (thread, _) = rest.split_once(']')?;
    let (_, clock) = stamp.split_once(' ')?;
    let mut parts = clock.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some((((hours * 60.0 + minutes) * 60.0 + seconds) * 1000.0, thread))
}

/// How long the controller's server takes to answer `document` over loopback (ms), the
/// median of three.
fn served_ms(controller: &Controller, document: &ConfigDocument) -> Result<f64> {
    let request = Request::get(&format!("/config/{}", document.sha256));
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let response = Client::new(controller.address).send(&request)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if response.status != 200 || response.body.as_slice() != document.bytes.as_ref() {
            bail!(
                "the controller answered {} with {} bytes for a document of {}",
                response.status,
                response.body.len(),
                document.bytes.len()
            );
        }
    }
    Ok(median(times))
}

/// The ECDS file of one Envoy and its version.
struct Ecds<'a> {
    envoy: &'a Envoy,
    file: std::path::PathBuf,
    wasm: &'a Path,
    version: u64,
}

impl Ecds<'_> {
    /// Sends `plugin_config` as the next version, and returns the times until Envoy reports
    /// it applied and until `probe` (`<ns>/<name>`) is answered `status` without a token,
    /// which it must not be before.
    fn switch(
        &mut self,
        plugin_config: &str,
        probe: &str,
        status: u16,
    ) -> Result<(Duration, Duration)> {
        let before = probe_status(self.envoy, probe)?;
        if before == status {
            bail!(
                "before ECDS version {}, {probe} is already answered {status}",
                self.version + 1
            );
        }
        self.push(plugin_config, probe, status)
    }

    /// [`Ecds::switch`] without the check before.
    fn push(
        &mut self,
        plugin_config: &str,
        probe: &str,
        status: u16,
    ) -> Result<(Duration, Duration)> {
        self.version += 1;
        let version = self.version;
        let refused_before = self.envoy.ecds_state()?.refused();
        let started = Instant::now();
        write_ecds_document(&self.file, version, self.wasm, plugin_config)?;
        let applied = loop {
            let state = self.envoy.ecds_state()?;
            if state.version == version.to_string() {
                break started.elapsed();
            }
            if state.refused() > refused_before {
                bail!(
                    self.envoy
                        .failure(&format!("ECDS version {version} was refused"))
                );
            }
            if started.elapsed() > DEADLINE {
                bail!(
                    self.envoy
                        .failure(&format!("ECDS version {version} was never applied"))
                );
            }
            thread::sleep(POLL);
        };
        self.wait_for(probe, status)?;
        Ok((applied, started.elapsed()))
    }

    /// Waits (bounded) until `probe` is answered `status` without a token.
    fn wait_for(&self, probe: &str, status: u16) -> Result<()> {
        let started = Instant::now();
        loop {
            if probe_status(self.envoy, probe).is_ok_and(|s| s == status) {
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                bail!(self.envoy.failure(&format!(
                    "{probe} was never answered {status} after ECDS version {}",
                    self.version
                )));
            }
            thread::sleep(POLL);
        }
    }
}

/// The status of a request to the model `probe` (`<ns>/<name>`) without a token.
fn probe_status(envoy: &Envoy, probe: &str) -> Result<u16> {
    let request = Request::get(&format!("/seldon/{probe}/api/v1.0/predictions"));
    Ok(Client::new(envoy.address()).send(&request)?.status)
}

/// The hot workload for `plan.duration`: Envoy's CPU per request (µs) and requests per
/// The controller's HTTP server with its documents, on a runtime of its own, stopped when
/// dropped.
struct Controller {
    runtime: Option<tokio::runtime::Runtime>,
    address: SocketAddr,
    documents: ConfigDocuments,
}

impl Controller {
    fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let documents = ConfigDocuments::default();
        let state = ServerState::new(Default::default()).with_config_documents(documents.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(wasm_server::serve(listener, state, std::future::pending()));
        Ok(Self {
            runtime: Some(runtime),
            address,
            documents,
        })
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The Markdown section of the report.
pub fn markdown(channel: &Channel) -> String {
    let mut md = String::new();
    if channel.documents.is_empty() {
        return md;
    }
    md.push_str("\n## Configuration by reference through the channel\n\n");
    md.push_str(
        "`configByReference: always`: the WasmPlugin names the document, which the filter \
         fetches from the controller's server (in process, loopback) through the channel \
         cluster.\n\n",
    );
    md.push_str(
        "| models | document bytes | served over loopback ms | WasmPlugin bytes (by reference) | WasmPlugin bytes (inline) | under 64 KiB |\n\
         |---:|---:|---:|---:|---:|---|\n",
    );
    for d in &channel.documents {
        let _ = writeln!(
            md,
            "| {} | {} ({:.1} KiB) | {:.1} | {} | {} | {} |",
            d.models,
            d.document_bytes,
            d.document_bytes as f64 / 1024.0,
            d.served_ms,
            d.wasm_plugin_bytes,
            d.inline_wasm_plugin_bytes,
            if d.wasm_plugin_bytes < OBJECT_LIMIT {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let ratios = channel.ratios();
    if !ratios.is_empty() {
        let _ = writeln!(
            md,
            "\nHot CPU per request, the small and the large document alternated in one Envoy \
             by ECDS updates, each fetched through the channel (large/small median {:.3}; \
             target within 5 %: {}):\n",
            median(ratios.iter().copied()),
            if (median(ratios.iter().copied()) - 1.0).abs() <= 0.05 {
                "met"
            } else {
                "**not met**"
            }
        );
        md.push_str(
            "| alternation | models first | CPU µs/req (small) | CPU µs/req (large) | large/small |\n\
             |---:|---:|---:|---:|---:|\n",
        );
        for (pair, ratio) in ratios.iter().enumerate() {
            let samples: Vec<&PairSample> =
                channel.pairs.iter().filter(|p| p.pair == pair).collect();
            let first = samples.first().map_or(0, |p| p.models);
            let small = samples.iter().min_by_key(|p| p.models);
            let large = samples.iter().max_by_key(|p| p.models);
            if let (Some(small), Some(large)) = (small, large) {
                let _ = writeln!(
                    md,
                    "| {} | {first} | {:.1} | {:.1} | {ratio:.3} |",
                    pair + 1,
                    small.cpu_us_per_request,
                    large.cpu_us_per_request
                );
            }
        }
    }
    if !channel.changes.is_empty() {
        md.push_str(
            "\nA model change (one more model) from the ECDS update until Envoy applies it, \
             and until a request to the new model is refused (`401`) (medians, range); by \
             reference, each filter VM's time from asking for the document to having it in \
             force (its log lines; Envoy's main thread has VMs that fetch too):\n\n\
             | models | delivery | changes | ECDS applied ms | enforced ms | enforced range ms | per VM: ask → in force ms |\n\
             |---:|---|---:|---:|---:|---|---|\n",
        );
        let mut groups: Vec<(usize, Delivery)> = channel
            .changes
            .iter()
            .map(|c| (c.models, c.delivery))
            .collect();
        groups.dedup();
        for (models, delivery) in groups {
            let of: Vec<&ChangeSample> = channel
                .changes
                .iter()
                .filter(|c| c.models == models && c.delivery == delivery)
                .collect();
            let (lo, hi) = crate::stats::range(of.iter().map(|c| c.enforced_ms));
            let mut per_vm: Vec<String> = Vec::new();
            for vm in 0..of.iter().map(|c| c.vm_fetch_ms.len()).max().unwrap_or(0) {
                per_vm.push(format!(
                    "{:.0}",
                    median(of.iter().filter_map(|c| c.vm_fetch_ms.get(vm).copied()))
                ));
            }
            let per_vm = if per_vm.is_empty() {
                "–".to_string()
            } else {
                per_vm.join(", ")
            };
            let _ = writeln!(
                md,
                "| {models} | {} | {} | {:.0} | {:.0} | {lo:.0}–{hi:.0} | {per_vm} |",
                match delivery {
                    Delivery::Reference => "by reference",
                    Delivery::Inline => "inline",
                },
                of.len(),
                median(of.iter().map(|c| c.applied_ms)),
                median(of.iter().map(|c| c.enforced_ms)),
            );
        }
    }
    if !channel.anomalies.is_empty() {
        md.push_str("\nAnomalies:\n\n");
        for anomaly in &channel.anomalies {
            let _ = writeln!(md, "- {anomaly}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pair: usize, models: usize, cpu: f64) -> PairSample {
        PairSample {
            pair,
            models,
            cpu_us_per_request: cpu,
            throughput: 0.0,
        }
    }

    #[test]
    fn ratios_are_large_over_small_per_alternation_whatever_the_order() {
        let channel = Channel {
            pairs: vec![
                sample(0, 10, 20.0),
                sample(0, 100_000, 21.0),
                sample(1, 100_000, 19.0),
                sample(1, 10, 20.0),
                sample(2, 10, 20.0),
            ],
            ..Channel::default()
        };
        assert_eq!(channel.ratios(), vec![1.05, 0.95]);
    }

    #[test]
    fn each_vm_is_timed_from_asking_to_having_the_document_in_force() {
        let log = "[2026-12-05 12:20:12.349][7][info][wasm] [x] wasm log: modelgate: configuration by reference: fetching abc (version 1)
[2026-12-05 12:20:12.350][9][info][wasm] [x] wasm log: modelgate: configuration by reference: fetching abc (version 1)
[2026-12-05 12:20:12.360][9][info][wasm] [x] wasm log: modelgate: configuration by reference: fetching other (version 1)
[2026-12-05 12:20:12.649][7][info][wasm] [x] wasm log: modelgate: configuration abc (version 1) fetched and verified
[2026-12-05 12:20:13.000][9][info][wasm] [x] wasm log: modelgate: configuration abc (version 1) fetched and verified
";
        let times = vm_times(log, "abc");
        assert_eq!(times.len(), 2);
        assert!((times[0] - 300.0).abs() < 1e-6 && (times[1] - 650.0).abs() < 1e-6);
        assert!(vm_times(log, "nothing").is_empty());
    }

    #[test]
    fn the_carried_reference_names_the_document_by_its_hash() {
        let config = json!({"version": 1, "policies": {"open": {"auth": "none"}},
            "models": {"bench/model-0": {"policy": "open"}}});
        let (reference, document) = by_reference(&config).unwrap();
        let reference: Value = serde_json::from_str(&reference).unwrap();
        assert_eq!(reference["reference"]["sha256"], document.sha256.as_str());
        let read_back: Value = serde_json::from_slice(&document.bytes).unwrap();
        assert_eq!(read_back, config);
        assert_eq!(reference["channel"]["cluster"], CONTROLLER_CLUSTER);
    }
}
