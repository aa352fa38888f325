//! What every reconcile shares ([`Context`]): the client and settings, fetched keys, each
//! model's last good configuration, the verdicts of the shared objects' pass, and the
//! failures that set each retry's backoff.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::Reporter;

use super::live::LiveObjects;
use super::{DEFAULT_API_TIMEOUT, Verdict};
use crate::config_documents::ConfigDocuments;
use crate::generate::{self, Generated, Inputs, KnownGood, WasmSource};
use crate::jwks::JwksCache;
use crate::metrics::Metrics;
use crate::seldon::SeldonDeployment;
use crate::settings::Settings;

/// The key of the shared objects (Gateways, WasmPlugin) in [`Context::failures`]; no
/// model id looks like it (ids are `<namespace>/<name>`).
pub const SHARED_OBJECTS: &str = "(shared objects)";

/// Shared state of the controller.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Generation settings.
    pub settings: Settings,
    /// Where the filter module is.
    pub wasm: WasmSource,
    /// Fetched JWKS.
    pub jwks: JwksCache,
    /// Each model's last good configuration.
    pub last_good: Mutex<BTreeMap<String, KnownGood>>,
    /// Broken models whose last good configuration was looked up in the cluster (done
    /// once per model and process: it only matters after a restart).
    pub looked_up: Mutex<BTreeSet<String>>,
    /// Problems already reported as Events, per model, so each is reported once.
    pub reported: Mutex<BTreeMap<String, Vec<String>>>,
    /// Consecutive failures per model (and of the shared objects, [`SHARED_OBJECTS`]),
    /// for backoff.
    pub failures: Mutex<BTreeMap<String, u32>>,
    /// How long one API call may take before it counts as failed. The client has no read
    /// timeout of its own (kube leaves it unset so watches live), so without this a
    /// stalled API server would hold a reconcile, or the shared objects' loop, forever.
    pub api_timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Who reports Events; `None` leaves Events out (tests of the apply logic).
    pub reporter: Option<Reporter>,
    /// What the shared objects' loop decided per model with the WasmPlugin it last got
    /// applied; a model's VirtualService waits for it (see [`Verdict`]).
    pub verdicts: Mutex<BTreeMap<String, Verdict>>,
    /// Shared objects that failed, by `<Kind> <ns>/<name>`: when to try again and why.
    pub retry_at: Mutex<BTreeMap<String, (Instant, String)>>,
    /// The referenced configurations the server answers (`configByReference`).
    pub documents: ConfigDocuments,
    /// What the cluster holds of the owned objects, from the watches (`run`); empty, and
    /// so never consulted, where nothing watches.
    pub live: LiveObjects,
    /// Models whose objects of kinds not watched with these settings (the other routing
    /// API's routes, an AuthorizationPolicy when those are off) were looked for and
    /// removed: once per process, since only an earlier process can have left them
    /// (looked for in a list per namespace, [`LiveObjects::unwatched`]).
    pub swept: Mutex<HashSet<String>>,
    /// Counts the last good configurations taken from the cluster ([`Self::last_good`]
    /// entries that change what the shared objects' pass generates without any
    /// SeldonDeployment changing).
    pub recovered: std::sync::atomic::AtomicU64,
}

impl Context {
    /// A context over a client.
    pub fn new(
        client: Client,
        settings: Settings,
        wasm: WasmSource,
        reporter: Option<Reporter>,
    ) -> Self {
        Self {
            client,
            settings,
            wasm,
            jwks: JwksCache::default(),
            last_good: Mutex::default(),
            looked_up: Mutex::default(),
            reported: Mutex::default(),
            failures: Mutex::default(),
            api_timeout: DEFAULT_API_TIMEOUT,
            metrics: Metrics::default(),
            reporter,
            verdicts: Mutex::default(),
            retry_at: Mutex::default(),
            documents: ConfigDocuments::default(),
            live: LiveObjects::default(),
            swept: Mutex::default(),
            recovered: std::sync::atomic::AtomicU64::default(),
        }
    }

    /// Generates everything from these SeldonDeployments with the current keys and last
    /// good configurations.
    pub fn generate<S: Borrow<SeldonDeployment>>(&self, sdeps: &[S]) -> Generated {
        self.generate_with(sdeps, generate::generate)
    }

    /// [`Context::generate`] without the models' own objects ([`generate::shared`]): what
    /// the Gateways and the WasmPlugin need.
    pub fn generate_shared<S: Borrow<SeldonDeployment>>(&self, sdeps: &[S]) -> Generated {
        self.generate_with(sdeps, generate::shared)
    }

    fn generate_with<S: Borrow<SeldonDeployment>>(
        &self,
        sdeps: &[S],
        generate: fn(&[S], Inputs<'_>) -> Generated,
    ) -> Generated {
        let keys = self.jwks.snapshot();
        // Only these models' entries: a model's reconcile must not copy every model's
        // (thousands of key sets, in each of the concurrent reconciles).
        let last_good: BTreeMap<String, KnownGood> = {
            let all = lock(&self.last_good);
            sdeps
                .iter()
                .filter_map(|s| {
                    let id = s.borrow().model_id();
                    let good = all.get(&id)?.clone();
                    Some((id, good))
                })
                .collect()
        };
        generate(
            sdeps,
            Inputs {
                settings: &self.settings,
                jwks: &keys,
                last_good: &last_good,
                wasm: &self.wasm,
            },
        )
    }

    /// The requeue delay after a model's `failures`-th consecutive failure: 5 s doubling
    /// up to 5 min.
    pub fn backoff(failures: u32) -> Duration {
        Duration::from_secs(
            5u64.saturating_mul(1 << failures.saturating_sub(1).min(6))
                .min(300),
        )
    }

    /// Records a failure of a model and returns how long to wait before retrying.
    pub fn failed(&self, model: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(model.to_string()).or_insert(0);
        *n += 1;
        Self::backoff(*n)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
