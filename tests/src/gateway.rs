//! A test gateway: a real Envoy running the built modelgate filter, in front of one
//! stand-in model server per predictor, on free loopback ports. It is started from a route
//! table and a filter configuration, can be given a new filter configuration while it runs
//! (as istiod pushes a changed WasmPlugin), and is killed when dropped.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::bootstrap::{self, BootstrapSpec, OTHER_APP_CLUSTER, PROMETHEUS_CLUSTER};
use crate::client::{Client, Request, Response};
use crate::envoy::{EnvoyOptions, EnvoyProcess};
use crate::locate;
use crate::metrics::Scrape;
use crate::routes::RouteTable;
use crate::upstream::ModelServer;

/// How long Envoy may take to start, or a configuration change to be applied.
const DEADLINE: Duration = Duration::from_secs(30);

/// ECDS reports a new version once the update is posted to the worker threads; this is
/// the margin for the workers to have run it. A posted task on an idle loopback worker
/// runs within microseconds, so 100 ms is generous.
const WORKER_SETTLE: Duration = Duration::from_millis(100);

/// What a gateway is started with.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// The routes istiod would program from the models' VirtualServices.
    pub routes: RouteTable,
    /// The filter's configuration (the WasmPlugin's `pluginConfig`), JSON.
    pub filter_config: String,
    /// Envoy worker threads (`--concurrency`); each runs its own filter VM.
    pub workers: u32,
}

/// What became of a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// Envoy applied it: every new request is decided by it.
    Accepted,
    /// Envoy refused it and keeps the previous one.
    Refused,
}

/// A running Envoy with the filter and its upstreams. Dropping it kills Envoy.
pub struct Gateway {
    envoy: EnvoyProcess,
    wasm: PathBuf,
    ecds_file: PathBuf,
    version: AtomicU64,
    reconfiguring: Mutex<()>,
    routes: RouteTable,
    /// By backend key ([`RouteTable::backends`]), plus the prometheus and other-app servers.
    servers: BTreeMap<String, ModelServer>,
}

impl Gateway {
    /// Starts a gateway; `name` names its scratch directory `tests/.work/<name>.<pid>`,
    /// where the generated configuration and `envoy.log` stay after the run for
    /// post-mortems (until a later run of the same name).
    pub fn start(name: &str, spec: &GatewaySpec) -> Result<Self, HarnessError> {
        Self::start_with_clusters(name, spec, &BTreeMap::new())
    }

    /// [`Gateway::start`], with more clusters (name to its one endpoint) for the filter to
    /// call, as Istio gives the gateway one per Service of the mesh.
    pub fn start_with_clusters(
        name: &str,
        spec: &GatewaySpec,
        clusters: &BTreeMap<String, SocketAddr>,
    ) -> Result<Self, HarnessError> {
        let wasm = locate::filter_wasm()?;
        let dir = fresh_work_dir(name)?;
        let ecds_dir = dir.join("ecds");
        fs::create_dir_all(&ecds_dir)?;
        let ecds_file = ecds_dir.join("modelgate.json");

        // One server per predictor's pods, reached through each cluster naming them (a
        // translated VirtualService names a predictor once per port: REST and gRPC).
        let mut servers = BTreeMap::new();
        let mut endpoints: BTreeMap<String, SocketAddr> = BTreeMap::new();
        for backend in spec.routes.backends() {
            let server = ModelServer::start(&backend.predictor)?;
            for cluster in backend.clusters {
                endpoints.insert(cluster, server.addr());
            }
            servers.insert(backend.key, server);
        }
        for cluster in [PROMETHEUS_CLUSTER, OTHER_APP_CLUSTER] {
            let server = ModelServer::start(cluster)?;
            endpoints.insert(cluster.to_string(), server.addr());
            servers.insert(cluster.to_string(), server);
        }

        endpoints.extend(clusters.iter().map(|(name, addr)| (name.clone(), *addr)));
        bootstrap::write_ecds_document(&ecds_file, 1, &wasm, &spec.filter_config)?;
        let document = bootstrap::bootstrap(&BootstrapSpec {
            routes: &spec.routes,
            endpoints: &endpoints,
            ecds_file: &ecds_file,
        });
        let options = EnvoyOptions {
            log_args: ["-l", "warning", "--component-log-level", "wasm:info"]
                .map(String::from)
                .to_vec(),
            startup_deadline: DEADLINE,
            ..EnvoyOptions::new(spec.workers)
        };
        let envoy = EnvoyProcess::start(&dir, &document, &options)?;
        Ok(Self {
            envoy,
            wasm,
            ecds_file,
            version: AtomicU64::new(1),
            reconfiguring: Mutex::new(()),
            routes: spec.routes.clone(),
            servers,
        })
    }

    fn failure(&self, what: &str) -> HarnessError {
        self.envoy.failure(what)
    }

    /// The address clients send requests to.
    pub fn address(&self) -> SocketAddr {
        self.envoy.address()
    }

    /// Envoy's admin address.
    pub fn admin_address(&self) -> SocketAddr {
        self.envoy.admin_address()
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.envoy.pid()
    }

    /// Envoy's resident set in MiB, from `/proc`.
    pub fn rss_mib(&self) -> f64 {
        match self.envoy.rss_kib() {
            Ok(kib) => kib as f64 / 1024.0,
            Err(e) => panic!("{e}"),
        }
    }

    /// The route table the gateway was started with.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// A client of the gateway with its own keep-alive connection.
    pub fn client(&self) -> Client {
        Client::new(self.envoy.address())
    }

    /// Sends one request on a new connection. An I/O error fails the calling test.
    pub fn send(&self, request: &Request) -> Response {
        self.client().send(request).unwrap_or_else(|e| {
            panic!(
                "{} {}: {e}\n{}",
                request.method,
                request.target,
                self.failure("request failed")
            )
        })
    }

    /// The stand-in server of a model's predictor (`model` is `<ns>/<name>`); a shadow
    /// predictor of a translated VirtualService has one too (its mirror destination).
    pub fn server(&self, model: &str, predictor: &str) -> &ModelServer {
        self.routes
            .backend_key(model, predictor)
            .and_then(|key| self.servers.get(&key))
            .unwrap_or_else(|| panic!("no server for {model} predictor {predictor}"))
    }

    /// The server behind `/prometheus`.
    pub fn prometheus_server(&self) -> &ModelServer {
        &self.servers[PROMETHEUS_CLUSTER]
    }

    /// The server of everything that is not a model.
    pub fn other_app(&self) -> &ModelServer {
        &self.servers[OTHER_APP_CLUSTER]
    }

    /// How many requests reached any model server (not `/prometheus`, not the other app).
    pub fn requests_to_models(&self) -> usize {
        self.servers
            .iter()
            .filter(|(c, _)| c.as_str() != PROMETHEUS_CLUSTER && c.as_str() != OTHER_APP_CLUSTER)
            .map(|(_, s)| s.count())
            .sum()
    }

    /// A request to the admin interface.
    pub fn admin_get(&self, path: &str) -> Result<Response, HarnessError> {
        self.envoy.admin_get(path)
    }

    /// The gateway's metrics as Prometheus scrapes them.
    pub fn metrics(&self) -> Scrape {
        match self.admin_get("/stats/prometheus") {
            Ok(r) => Scrape::parse(&r.text()),
            Err(e) => panic!("{e}"),
        }
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.envoy.log()
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.envoy.dir()
    }

    /// Replaces the filter configuration, or fails when Envoy refuses it.
    pub fn reconfigure(&self, filter_config: &str) -> Result<(), HarnessError> {
        match self.try_reconfigure(filter_config)? {
            ConfigOutcome::Accepted => Ok(()),
            ConfigOutcome::Refused => Err(self.failure("the new filter configuration was refused")),
        }
    }

    /// Replaces the filter configuration the way istiod updates a WasmPlugin (a new ECDS
    /// resource version) and waits until Envoy has applied or refused it.
    pub fn try_reconfigure(&self, filter_config: &str) -> Result<ConfigOutcome, HarnessError> {
        let _one_at_a_time = self
            .reconfiguring
            .lock()
            .map_err(|_| HarnessError::new("an earlier reconfiguration panicked"))?;
        let before = self.envoy.ecds_state()?;
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        bootstrap::write_ecds_document(&self.ecds_file, version, &self.wasm, filter_config)?;
        let start = Instant::now();
        loop {
            let now = self.envoy.ecds_state()?;
            if now.version == version.to_string() {
                thread::sleep(WORKER_SETTLE);
                return Ok(ConfigOutcome::Accepted);
            }
            if now.refused() > before.refused() {
                return Ok(ConfigOutcome::Refused);
            }
            if start.elapsed() > DEADLINE {
                return Err(self.failure(&format!(
                    "configuration version {version} was neither applied nor refused"
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `tests/.work/<name>.<pid>`, created empty. Directories of earlier runs of the same name
/// are removed once their process is gone; a concurrent run's are left alone.
fn fresh_work_dir(name: &str) -> Result<PathBuf, HarnessError> {
    let root = locate::work_root();
    fs::create_dir_all(&root)?;
    for entry in fs::read_dir(&root)?.flatten() {
        let file_name = entry.file_name();
        let Some((entry_name, pid)) = file_name.to_str().and_then(|n| n.rsplit_once('.')) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if entry_name == name && pid.parse::<u32>().is_ok() && !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("{name}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
