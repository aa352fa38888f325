//! Configuration by reference on the host side: a `pluginConfig` that only names the full
//! configuration makes the root context fetch it from the controller over the channel
//! (`dispatch_http_call`), check it against the reference (`modelgate_core::by_reference`),
//! compile it as an inline one, and swap it in. Until then, and whenever a fetch fails, the
//! configuration already in force in the VM keeps serving; a VM that never had one refuses
//! every request (`503`), as without any configuration.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use modelgate_core::by_reference::{self, Backoff, MAX_DOCUMENT_BYTES};
use modelgate_core::config::ReferenceDocument;
use modelgate_core::{CompiledConfig, ConfigError, TokenCache, auth::cache::DEFAULT_CAPACITY};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

use crate::{State, log};

/// Configuration warnings logged per load, at most.
const MAX_LOGGED_WARNINGS: usize = 20;

/// How often a root context waiting for its document looks whether to fetch it again.
const TICK: Duration = Duration::from_secs(1);

thread_local! {
    /// The configuration in force in this VM, whichever root context installed it, with the
    /// hash of the referenced document it came from. Envoy gives every configuration
    /// update a fresh root context: one given a reference serves this one until its own
    /// document is in.
    static IN_FORCE: RefCell<Option<(Rc<CompiledConfig>, Option<String>)>> =
        const { RefCell::new(None) };
    /// Configurations received by this VM: a root context's fetch is dropped once a later
    /// configuration came (an older document must never replace a newer one).
    static RECEIVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `on_configure` began: whatever earlier root contexts still fetch is superseded.
pub(crate) fn superseded() {
    RECEIVED.with(|r| r.set(r.get().wrapping_add(1)));
}

fn latest() -> u64 {
    RECEIVED.with(std::cell::Cell::get)
}

/// A root context's referenced document, while it is not in force.
#[derive(Default)]
pub(crate) struct ConfigFetch {
    wanted: Option<ReferenceDocument>,
    /// Which configuration of the VM wanted it (see [`superseded`]).
    received: u64,
    /// The token of the request on its way.
    in_flight: Option<u32>,
    backoff: Backoff,
    metrics: HashMap<&'static str, u32>,
}

impl ConfigFetch {
    /// Counts `modelgate_config_fetches_total{result}`.
    fn count(&mut self, result: &'static str) {
        let id = match self.metrics.get(result) {
            Some(id) => *id,
            None => match hostcalls::define_metric(
                MetricType::Counter,
                &format!("modelgate_config_fetches_total.result=.={result};.;"),
            ) {
                Ok(id) => {
                    self.metrics.insert(result, id);
                    id
                }
                Err(_) => return,
            },
        };
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Installs a compiled configuration in `state` and as the VM's configuration in force
/// (`sha256`: of the referenced document it came from), logging its warnings.
pub(crate) fn install(
    state: &mut State,
    config: CompiledConfig,
    warnings: &[ConfigError],
    sha256: Option<String>,
) {
    // Bounded: a tenant's thousand unusable keys must not flood every reload.
    for warning in warnings.iter().take(MAX_LOGGED_WARNINGS) {
        log(
            LogLevel::Warn,
            &format!("modelgate: configuration: {warning}"),
        );
    }
    if warnings.len() > MAX_LOGGED_WARNINGS {
        log(
            LogLevel::Warn,
            &format!(
                "modelgate: configuration: {} more warnings not logged",
                warnings.len() - MAX_LOGGED_WARNINGS
            ),
        );
    }
    log(
        LogLevel::Info,
        &format!(
            "modelgate: configured {} models, {} policies",
            config.models.len(),
            config.policies.len()
        ),
    );
    state.metrics.config_loaded(true, config.models.len());
    let config = Rc::new(config);
    state.config = Some(config.clone());
    state.cache = TokenCache::new(DEFAULT_CAPACITY);
    IN_FORCE.with(|f| *f.borrow_mut() = Some((config, sha256)));
    crate::CONFIGURED_BEFORE.with(|c| c.set(true));
}

/// `on_configure` with a reference: the configuration in force keeps serving (none: every
/// request is refused) while the referenced one is fetched. Accepted whatever becomes of
/// the fetch, which is retried until it succeeds or another configuration comes.
pub(crate) fn configure(state: &Rc<RefCell<State>>, reference: ReferenceDocument) -> bool {
    let mut guard = state.borrow_mut();
    let state = &mut *guard;
    let in_force = IN_FORCE.with(|f| f.borrow().clone());
    let current = in_force
        .as_ref()
        .is_some_and(|(_, sha)| sha.as_deref() == Some(reference.reference.sha256.as_str()));
    state.config = in_force.map(|(config, _)| config);
    if current {
        log(
            LogLevel::Info,
            &format!(
                "modelgate: configuration {} (version {}) is in force already",
                reference.reference.sha256, reference.reference.version
            ),
        );
        return true;
    }
    log(
        LogLevel::Info,
        &format!(
            "modelgate: configuration by reference: fetching {} (version {}) from {}{}",
            reference.reference.sha256,
            reference.reference.version,
            reference.channel.cluster,
            reference.reference.path
        ),
    );
    state.fetch.wanted = Some(reference);
    state.fetch.received = latest();
    let _ = hostcalls::set_tick_period(TICK);
    fetch(state);
    true
}

/// `on_tick`: fetches the wanted document again once its backoff allows.
pub(crate) fn tick(state: &Rc<RefCell<State>>) {
    let mut guard = state.borrow_mut();
    let state = &mut *guard;
    if state.fetch.received != latest() {
        state.fetch.wanted = None;
    }
    if state.fetch.wanted.is_none() {
        let _ = hostcalls::set_tick_period(Duration::ZERO);
        return;
    }
    if state.fetch.in_flight.is_none() && state.fetch.backoff.due(now()) {
        fetch(state);
    }
}

/// Sends the request for the wanted document.
fn fetch(state: &mut State) {
    let Some(wanted) = &state.fetch.wanted else {
        return;
    };
    let sent = hostcalls::dispatch_http_call(
        &wanted.channel.cluster,
        vec![
            (":method", "GET"),
            (":path", &wanted.reference.path),
            (":authority", &wanted.channel.authority),
        ],
        None,
        vec![],
        Duration::from_millis(wanted.channel.timeout_ms.into()),
    );
    match sent {
        Ok(token) => state.fetch.in_flight = Some(token),
        Err(e) => {
            let cluster = wanted.channel.cluster.clone();
            failed(
                state,
                "not_sent",
                &format!("cannot send to {cluster}: {e:?}"),
            );
        }
    }
}

/// The answer to the request `token` (no `:status`: it failed or timed out).
pub(crate) fn answered(state: &Rc<RefCell<State>>, token: u32, body_size: usize) {
    let mut guard = state.borrow_mut();
    let state = &mut *guard;
    if state.fetch.in_flight != Some(token) {
        return;
    }
    state.fetch.in_flight = None;
    if state.fetch.received != latest() {
        state.fetch.wanted = None;
    }
    let Some(wanted) = state.fetch.wanted.clone() else {
        return;
    };
    let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten();
    match status.as_deref() {
        Some("200") => {}
        Some(other) => return failed(state, "bad_status", &format!("status {other}")),
        None => {
            return failed(
                state,
                "unreachable",
                "no answer (unreachable, or timed out)",
            );
        }
    }
    if body_size > MAX_DOCUMENT_BYTES {
        let why = format!("{body_size} bytes (at most {MAX_DOCUMENT_BYTES})");
        return failed(state, "too_large", &why);
    }
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    if let Err(refused) = by_reference::verify(&body, &wanted.reference) {
        let why = format!("{} ({} bytes)", refused.as_str(), body.len());
        return failed(state, refused.as_str(), &why);
    }
    match CompiledConfig::from_json(&body) {
        Ok((config, warnings)) => {
            drop(body);
            log(
                LogLevel::Info,
                &format!(
                    "modelgate: configuration {} (version {}) fetched and verified",
                    wanted.reference.sha256, wanted.reference.version
                ),
            );
            install(state, config, &warnings, Some(wanted.reference.sha256));
            state.fetch.wanted = None;
            state.fetch.backoff = Backoff::default();
            state.fetch.count("loaded");
        }
        Err(e) => {
            state.metrics.config_loaded(false, 0);
            failed(state, "refused", &format!("refused by the compiler: {e}"));
        }
    }
}

/// A fetch failed: counted, logged, and tried again after the backoff.
fn failed(state: &mut State, result: &'static str, why: &str) {
    state.fetch.count(result);
    state.fetch.backoff.failed(now());
    let keeping = if state.config.is_some() {
        "the configuration in force keeps serving"
    } else {
        "no configuration yet: every request is answered 503"
    };
    log(
        LogLevel::Warn,
        &format!(
            "modelgate: configuration by reference: {why}; {keeping}; trying again ({} failures)",
            state.fetch.backoff.failures()
        ),
    );
}

fn now() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}
