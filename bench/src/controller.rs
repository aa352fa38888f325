//! The running controller at scale (`modelgate-bench --only controller`): the release
//! `modelgate run`, unchanged, against the API server double ([`crate::api_double`])
//! seeded with N SeldonDeployments shaped like the benchmark's fleet. For each size: the
//! time, CPU and memory until it has converged (every model's VirtualService exists and the
//! extension object holds every model), its idle cost after that, the time from a change
//! (a model added, an annotation changed) to the extension object reflecting it, and the
//! size of what it delivers (the object, and with `configByReference` the document at
//! `/config/<sha256>`, timed).
//!
//! Each size runs under a timeout; the harness stops only the controller it started, by
//! its PID.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api_double::ApiDouble;
use crate::chains::MODEL_NAMESPACE;
use crate::fleet::{model_name, seldon_deployment};
use crate::tokens::AUDIENCE;

/// The group and plural of SeldonDeployments.
const SELDON: (&str, &str) = ("machinelearning.seldon.io", "seldondeployments");
/// The group and plural of VirtualServices.
const VIRTUAL_SERVICES: (&str, &str) = ("networking.istio.io", "virtualservices");
/// The group and plural of the extension object `auto` settles on here: this double
/// serves `extensions.istio.io/v1alpha1` without TrafficExtension (an Istio before 1.30).
const WASM_PLUGINS: (&str, &str) = ("extensions.istio.io", "wasmplugins");
/// Where the extension object is (the settings' defaults).
const EXTENSION: (&str, &str) = ("istio-system", "modelgate");
/// The audience an annotation change sets on model-0.
const CHANGED_AUDIENCE: &str = "models-changed";

/// The setting `configByReference` of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ByReference {
    /// Inline, the binary's default.
    #[default]
    Never,
    /// By reference over 256 KiB (about 4,500 models of this fleet), the chart's default.
    Auto,
    /// Always by reference (what a small smoke run uses to exercise the path).
    Always,
}

impl ByReference {
    /// As the settings file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Auto => "auto",
            Self::Always => "always",
        }
    }
}

/// One size to measure.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// SeldonDeployments.
    pub models: usize,
    /// `configByReference`.
    pub by_reference: ByReference,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The sizes, in order.
    pub cases: Vec<Case>,
    /// How long to watch the controller idle after it converged.
    pub idle: Duration,
    /// How long a size may take to converge before it is given up.
    pub timeout: Duration,
    /// How long a change may take to show before it is given up.
    pub change_timeout: Duration,
    /// The `modelgate` binary.
    pub modelgate: PathBuf,
    /// Where each size's settings, kubeconfig and controller log go.
    pub work: PathBuf,
}

/// The figures of one size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    /// SeldonDeployments.
    pub models: usize,
    /// `configByReference`.
    pub by_reference: ByReference,
    /// Whether it converged within the timeout.
    pub converged: bool,
    /// Why not, or what else went wrong.
    pub problem: Option<String>,
    /// Seconds from the process's start to convergence (or to the timeout).
    pub converge_s: f64,
    /// CPU (user + system) the controller used until then, seconds.
    pub converge_cpu_s: f64,
    /// CPU the API server double used meanwhile (its threads in this process), seconds:
    /// what shows whether the double kept up.
    pub double_cpu_s: f64,
    /// Resident memory then, MiB.
    pub rss_mib: f64,
    /// Peak resident memory until then (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// VirtualServices and models in the extension object then.
    pub virtual_services: usize,
    /// See [`Run::virtual_services`].
    pub extension_models: usize,
    /// Requests until then, by `<verb> <resource>`.
    pub requests_to_converge: BTreeMap<String, u64>,
    /// The double's slowest answer until then, milliseconds, and its request.
    pub slowest_answer_ms: f64,
    /// See [`Run::slowest_answer_ms`].
    pub slowest_answer: String,
    /// Seconds watched idle after convergence.
    pub idle_s: f64,
    /// CPU used meanwhile, seconds.
    pub idle_cpu_s: f64,
    /// Resident memory at the end of the idle period, and its highest sample, MiB.
    pub idle_rss_mib: f64,
    /// See [`Run::idle_rss_mib`].
    pub idle_rss_max_mib: f64,
    /// Requests meanwhile.
    pub requests_idle: BTreeMap<String, u64>,
    /// Seconds from a SeldonDeployment added to the extension object holding it.
    pub add_to_extension_s: Option<f64>,
    /// Seconds from the same to its VirtualService existing.
    pub add_to_route_s: Option<f64>,
    /// Seconds from an annotation changed (model-0's audience) to the extension object
    /// requiring the new audience.
    pub annotation_to_extension_s: Option<f64>,
    /// The extension object as served, bytes of JSON.
    pub extension_bytes: usize,
    /// The referenced document (`/config/<sha256>`), bytes.
    pub document_bytes: Option<usize>,
    /// The best of three fetches of that document from the controller, milliseconds.
    pub document_fetch_ms: Option<f64>,
    /// Peak resident memory over the whole run, MiB.
    pub final_peak_rss_mib: f64,
}

/// The results of all sizes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControllerBench {
    /// One per case, in order.
    pub runs: Vec<Run>,
}

impl ControllerBench {
    /// Runs that did not converge or whose changes did not show: a wrong result, not a
    /// slow one.
    pub fn failures(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| {
                !r.converged
                    || r.add_to_extension_s.is_none()
                    || r.add_to_route_s.is_none()
                    || r.annotation_to_extension_s.is_none()
                    || (r.by_reference == ByReference::Always && r.document_bytes.is_none())
            })
            .map(|r| {
                format!(
                    "{} models (configByReference: {}): {}",
                    r.models,
                    r.by_reference.as_str(),
                    r.problem.as_deref().unwrap_or("a change did not show")
                )
            })
            .collect()
    }
}

/// Runs every case of the plan; `done` gets the results so far after each (a long run
/// stopped halfway keeps what it measured).
pub fn run(
    plan: &Plan,
    jwks: &str,
    mut done: impl FnMut(&ControllerBench) -> Result<()>,
) -> Result<ControllerBench> {
    let mut bench = ControllerBench::default();
    for case in &plan.cases {
        eprintln!(
            "bench: the running controller with {} models (configByReference: {})",
            case.models,
            case.by_reference.as_str()
        );
        let run = measure(plan, *case, jwks)?;
        eprintln!(
            "bench:   converged {} in {:.1} s, {:.1} CPU s, RSS {:.1} MiB (peak {:.1} MiB){}",
            run.converged,
            run.converge_s,
            run.converge_cpu_s,
            run.rss_mib,
            run.peak_rss_mib,
            run.problem
                .as_deref()
                .map_or(String::new(), |p| format!(": {p}"))
        );
        bench.runs.push(run);
        done(&bench)?;
    }
    Ok(bench)
}

/// The controller process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Controller {
    child: Child,
    listen: String,
}

impl Controller {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("the controller exited ({status})")),
            _ => None,
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id())
            && self.child.try_wait().ok().flatten().is_none()
        {
            // SAFETY: a signal to our own child, by its PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A CRD object as `check_crds` reads it (only its existence matters).
fn crd(group: &str, plural: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "kind": kind},
                 "versions": [{"name": "v1", "served": true, "storage": true}]},
    })
}

/// The cluster before the controller starts: the CRDs it checks, the platform's Gateway
/// and the fleet.
fn seed(api: &ApiDouble, models: usize, jwks: &str) {
    api.serve_discovery(
        "extensions.istio.io/v1alpha1",
        "wasmplugins",
        "WasmPlugin",
        true,
    );
    api.put_all(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        [
            crd(SELDON.0, SELDON.1, "SeldonDeployment"),
            crd("networking.istio.io", "virtualservices", "VirtualService"),
            crd("networking.istio.io", "destinationrules", "DestinationRule"),
            crd("networking.istio.io", "gateways", "Gateway"),
            crd("extensions.istio.io", "wasmplugins", "WasmPlugin"),
            crd(
                "security.istio.io",
                "authorizationpolicies",
                "AuthorizationPolicy",
            ),
        ],
    );
    api.put(
        "networking.istio.io",
        "gateways",
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "seldon-gateway", "namespace": "istio-system",
                         "labels": {"app.kubernetes.io/managed-by": "Helm"}},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                  "hosts": ["*"]}]},
        }),
    );
    api.put_all(
        SELDON.0,
        SELDON.1,
        (0..models).map(|i| seldon_deployment(i, jwks, AUDIENCE)),
    );
}

/// What the extension object delivers now: its `pluginConfig`, fetched from the
/// controller when it is a reference, with the reference's document size and fetch time.
struct Delivered {
    revision: String,
    object_bytes: usize,
    config: Value,
    document: Option<(usize, Duration)>,
}

/// Reads the extension object, fetching the referenced document when the object changed
/// since `last` (else `last` is still current and `None` comes back).
fn delivered(
    api: &ApiDouble,
    controller: &Controller,
    last: Option<&Delivered>,
) -> Result<Option<Delivered>> {
    let Some(object) = api.get(WASM_PLUGINS.0, WASM_PLUGINS.1, EXTENSION.0, EXTENSION.1) else {
        return Ok(None);
    };
    let revision = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if last.is_some_and(|l| l.revision == revision) {
        return Ok(None);
    }
    let object_bytes = serde_json::to_vec(object.as_ref())?.len();
    let config = &object["spec"]["pluginConfig"];
    if let Some(path) = config["reference"]["path"].as_str() {
        let started = Instant::now();
        // Not served yet, or already replaced: asked again at the next poll.
        let Ok(document) = http_get(&controller.listen, path) else {
            return Ok(None);
        };
        let took = started.elapsed();
        let config: Value = serde_json::from_slice(&document)
            .context("the referenced configuration is not JSON")?;
        return Ok(Some(Delivered {
            revision,
            object_bytes,
            config,
            document: Some((document.len(), took)),
        }));
    }
    Ok(Some(Delivered {
        revision,
        object_bytes,
        config: config.clone(),
        document: None,
    }))
}

fn models_in(config: &Value) -> usize {
    config["models"].as_object().map_or(0, serde_json::Map::len)
}

fn holds(config: &Value, name: &str) -> bool {
    !config["models"][format!("{MODEL_NAMESPACE}/{name}")].is_null()
}

/// Whether the policy model-0 uses requires `audience`.
fn requires_audience(config: &Value, audience: &str) -> bool {
    let model = &config["models"][format!("{MODEL_NAMESPACE}/{}", model_name(0))];
    let text = match model["policy"].as_str() {
        Some(policy) => config["policies"][policy].to_string(),
        None => model.to_string(),
    };
    text.contains(&format!("\"{audience}\""))
}

/// `GET http://<address><path>` over HTTP/1.0 (the connection closes after the body).
fn http_get(address: &str, path: &str) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(response[split + 4..].to_vec())
}

/// The controller's CPU time (user + system), seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    cpu_seconds_of(&format!("/proc/{pid}/stat"))
}

/// User + system time of a `stat` file of `/proc`, seconds.
fn cpu_seconds_of(path: &str) -> f64 {
    let stat = fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz.max(1.0)
}

/// CPU time of this process's threads named `api-double` (the double's), seconds.
fn double_cpu_seconds() -> f64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "api-double")
        })
        .filter_map(|t| t.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| cpu_seconds_of(&format!("/proc/self/task/{tid}/stat")))
        .sum()
}

/// `VmRSS` and `VmHWM` of `/proc/<pid>/status`, MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn difference(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn start_controller(plan: &Plan, dir: &Path, api: &ApiDouble, case: Case) -> Result<Controller> {
    fs::create_dir_all(dir)?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let settings = format!(
        "configByReference: {}\nrun:\n  listen: \"{listen}\"\n",
        case.by_reference.as_str()
    );
    fs::write(dir.join("config.yaml"), settings)?;
    fs::write(dir.join("kubeconfig"), api.kubeconfig())?;
    let log = fs::File::create(dir.join("controller.log"))?;
    let mut command = Command::new(&plan.modelgate);
    command
        .arg("run")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("POD_NAME", "modelgate-bench-0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {}", plan.modelgate.display()))?;
    Ok(Controller { child, listen })
}

/// Every `every`, reads what the extension object delivers into `current` (kept while it
/// does not change) and asks `done` of it, until `done` holds (how long that took) or
/// `timeout` passes (`Ok(None)`); an error if the controller exits meanwhile.
fn wait_for(
    api: &ApiDouble,
    controller: &mut Controller,
    current: &mut Option<Delivered>,
    (timeout, every): (Duration, Duration),
    mut done: impl FnMut(Option<&Delivered>) -> bool,
) -> Result<Option<Duration>> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(exit) = controller.exited() {
            bail!("{exit}");
        }
        if let Some(fresh) = delivered(api, controller, current.as_ref())? {
            *current = Some(fresh);
        }
        if done(current.as_ref()) {
            return Ok(Some(started.elapsed()));
        }
        std::thread::sleep(every);
    }
    Ok(None)
}

/// One size: seed, start, converge, idle, change, stop.
fn measure(plan: &Plan, case: Case, jwks: &str) -> Result<Run> {
    let api = ApiDouble::start(1)?;
    seed(&api, case.models, jwks);
    let dir = plan.work.join(format!(
        "controller-{}-{}",
        case.models,
        case.by_reference.as_str()
    ));
    let mut run = Run {
        models: case.models,
        by_reference: case.by_reference,
        ..Run::default()
    };
    let names: Vec<String> = (0..case.models).map(model_name).collect();
    let double_before = double_cpu_seconds();
    let started = Instant::now();
    let mut controller = start_controller(plan, &dir, &api, case)?;
    let pid = controller.pid();
    let mut current: Option<Delivered> = None;

    // Converged: every VirtualService exists and the extension object holds every model.
    let converged = wait_for(
        &api,
        &mut controller,
        &mut current,
        (plan.timeout, Duration::from_millis(200)),
        |d| {
            d.map_or(0, |d| models_in(&d.config)) == case.models
                && api.count(
                    VIRTUAL_SERVICES.0,
                    VIRTUAL_SERVICES.1,
                    Some(MODEL_NAMESPACE),
                ) == case.models
                && api.all_exist(
                    VIRTUAL_SERVICES.0,
                    VIRTUAL_SERVICES.1,
                    MODEL_NAMESPACE,
                    names.iter().map(String::as_str),
                )
        },
    );
    let converged = match converged {
        Ok(c) => c,
        Err(e) => {
            run.problem = Some(format!("{e:#}"));
            None
        }
    };
    run.converge_s = started.elapsed().as_secs_f64();
    run.converge_cpu_s = cpu_seconds(pid);
    run.double_cpu_s = double_cpu_seconds() - double_before;
    (run.rss_mib, run.peak_rss_mib) = memory_mib(pid);
    run.virtual_services = api.count(
        VIRTUAL_SERVICES.0,
        VIRTUAL_SERVICES.1,
        Some(MODEL_NAMESPACE),
    );
    run.extension_models = current.as_ref().map_or(0, |d| models_in(&d.config));
    run.requests_to_converge = api.requests();
    let (slowest, call) = api.slowest_answer();
    run.slowest_answer_ms = slowest.as_secs_f64() * 1000.0;
    run.slowest_answer = call;
    if let Some(d) = &current {
        run.extension_bytes = d.object_bytes;
        run.document_bytes = d.document.map(|(bytes, _)| bytes);
    }
    if converged.is_none() {
        let reached = format!(
            "not converged within {} s: {} of {} VirtualServices, {} models in the extension object",
            plan.timeout.as_secs(),
            run.virtual_services,
            case.models,
            run.extension_models
        );
        run.problem.get_or_insert(reached);
        run.final_peak_rss_mib = memory_mib(pid).1;
        return Ok(run);
    }
    run.converged = true;

    // The referenced document, fetched as a gateway would (best of three).
    if let Some(path) = api
        .get(WASM_PLUGINS.0, WASM_PLUGINS.1, EXTENSION.0, EXTENSION.1)
        .and_then(|o| {
            o["spec"]["pluginConfig"]["reference"]["path"]
                .as_str()
                .map(String::from)
        })
    {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let document = http_get(&controller.listen, &path)?;
            best = best.min(started.elapsed());
            run.document_bytes = Some(document.len());
        }
        run.document_fetch_ms = Some(best.as_secs_f64() * 1000.0);
    }

    // Idle: the shared objects' loop runs every 5 s.
    let before = api.requests();
    let cpu_before = cpu_seconds(pid);
    let idle_started = Instant::now();
    while idle_started.elapsed() < plan.idle {
        std::thread::sleep(Duration::from_secs(1).min(plan.idle));
        if let Some(exit) = controller.exited() {
            run.problem = Some(format!("while idle: {exit}"));
            return Ok(run);
        }
        let (rss, _) = memory_mib(pid);
        run.idle_rss_max_mib = run.idle_rss_max_mib.max(rss);
        run.idle_rss_mib = rss;
    }
    run.idle_s = idle_started.elapsed().as_secs_f64();
    run.idle_cpu_s = cpu_seconds(pid) - cpu_before;
    run.requests_idle = difference(&api.requests(), &before);

    // A model added: the extension object, then its route.
    let added = model_name(case.models);
    let change = Instant::now();
    api.put(
        SELDON.0,
        SELDON.1,
        seldon_deployment(case.models, jwks, AUDIENCE),
    );
    let mut held_at = None;
    let routed = wait_for(
        &api,
        &mut controller,
        &mut current,
        (plan.change_timeout, Duration::from_millis(20)),
        |d| {
            if held_at.is_none() && d.is_some_and(|d| holds(&d.config, &added)) {
                held_at = Some(change.elapsed());
            }
            held_at.is_some()
                && api
                    .get(
                        VIRTUAL_SERVICES.0,
                        VIRTUAL_SERVICES.1,
                        MODEL_NAMESPACE,
                        &added,
                    )
                    .is_some()
        },
    );
    run.add_to_extension_s = held_at.map(|d| d.as_secs_f64());
    match routed {
        Ok(routed) => run.add_to_route_s = routed.map(|d| d.as_secs_f64()),
        Err(e) => run.problem = Some(format!("after a model was added: {e:#}")),
    }

    // An annotation changed: model-0 requires another audience.
    let change = Instant::now();
    api.put(
        SELDON.0,
        SELDON.1,
        seldon_deployment(0, jwks, CHANGED_AUDIENCE),
    );
    let shown = wait_for(
        &api,
        &mut controller,
        &mut current,
        (plan.change_timeout, Duration::from_millis(20)),
        |d| d.is_some_and(|d| requires_audience(&d.config, CHANGED_AUDIENCE)),
    );
    match shown {
        Ok(shown) => {
            run.annotation_to_extension_s = shown.map(|_| change.elapsed().as_secs_f64());
        }
        Err(e) => run.problem = Some(format!("after an annotation changed: {e:#}")),
    }
    if let Some(d) = &current {
        run.extension_bytes = d.object_bytes;
    }
    run.final_peak_rss_mib = memory_mib(pid).1;
    Ok(run)
}

/// The results as a Markdown section.
pub fn markdown(bench: &ControllerBench, plan: &Plan) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## The running controller\n");
    let _ = writeln!(
        md,
        "`modelgate run` (`{}`) against the API server double, seeded with N \
         SeldonDeployments of the benchmark's fleet. Converged: every VirtualService exists \
         and the extension object holds every model. Idle: the {} s after that. Peak RSS: \
         `VmHWM` at convergence; the idle column's maximum is over the idle period.\n",
        plan.modelgate.display(),
        plan.idle.as_secs()
    );
    let _ = writeln!(
        md,
        "| models | configByReference | converged | time to converge | CPU to converge (the double's) | RSS then | peak RSS | idle CPU | idle RSS (max) | add → extension | add → route | annotation → extension | extension object | document | document fetch |"
    );
    let _ = writeln!(
        md,
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let seconds = |s: Option<f64>| s.map_or("–".to_string(), |s| format!("{s:.2} s"));
    for r in &bench.runs {
        let idle_cpu = if r.idle_s > 0.0 {
            format!("{:.1} % of a CPU", 100.0 * r.idle_cpu_s / r.idle_s)
        } else {
            "–".into()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} s | {:.1} s ({:.1} s) | {:.1} MiB | {:.1} MiB | {} | {:.1} MiB ({:.1}) | {} | {} | {} | {} | {} | {} |",
            r.models,
            r.by_reference.as_str(),
            if r.converged {
                "yes".to_string()
            } else {
                format!("**no**: {}", r.problem.as_deref().unwrap_or(""))
            },
            r.converge_s,
            r.converge_cpu_s,
            r.double_cpu_s,
            r.rss_mib,
            r.peak_rss_mib,
            idle_cpu,
            r.idle_rss_mib,
            r.idle_rss_max_mib,
            seconds(r.add_to_extension_s),
            seconds(r.add_to_route_s),
            seconds(r.annotation_to_extension_s),
            kib(r.extension_bytes),
            r.document_bytes.map_or("–".into(), kib),
            r.document_fetch_ms
                .map_or("–".into(), |ms| format!("{ms:.1} ms")),
        );
    }
    let _ = writeln!(md, "\nRequests until convergence, and while idle:\n");
    for r in &bench.runs {
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "- {} models (configByReference: {}): {}; idle: {}; the double's slowest answer \
             until convergence: {:.1} ms (`{}`)",
            r.models,
            r.by_reference.as_str(),
            list(&r.requests_to_converge),
            if r.requests_idle.is_empty() {
                "none".to_string()
            } else {
                list(&r.requests_idle)
            },
            r.slowest_answer_ms,
            r.slowest_answer
        );
    }
    md
}

fn kib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
