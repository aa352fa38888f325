//! The proxy-wasm layer of the modelgate filter. It reads the request, asks the
//! host-agnostic core for a decision, and applies it: refusal, header edits, the chosen
//! predictor on the response, metrics and logs. No decision is made here.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config_fetch;
mod keys_channel;
mod metrics;
mod route_cache;

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use modelgate_core::by_reference;
use modelgate_core::decision::refusal;
use modelgate_core::{
    CompiledConfig, DenyReason, Edit, Environment, Outcome, Request, TokenCache,
    auth::cache::DEFAULT_CAPACITY,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use crate::config_fetch::ConfigFetch;
use crate::keys_channel::KeysChannel;
use crate::metrics::Metrics;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("modelgate: panic: {info}"));
    }));
    // Before anything asks jsonwebtoken for its crypto provider (see modelgate_core::crypto).
    if !modelgate_core::crypto::install() {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, "modelgate: crypto provider not installed: tokens cannot be verified");
    }
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::new()) });
}}

/// State shared by the root context and every request of one VM.
struct State {
    config: Option<Rc<CompiledConfig>>,
    cache: TokenCache,
    metrics: Metrics,
    rng: u64,
    keys: KeysChannel,
    fetch: ConfigFetch,
}

impl State {
    /// xorshift64*: enough for weighted routing, seeded from WASI's random source.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Root {
    state: Rc<RefCell<State>>,
}

thread_local! {
    /// Whether this VM has accepted a configuration before. Envoy gives every configuration
    /// update a fresh root context, and when that update is refused the previous plugin
    /// (with its own root context) goes on serving: only the VM knows there was one.
    static CONFIGURED_BEFORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Root {
    fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        Self {
            state: Rc::new(RefCell::new(State {
                config: None,
                cache: TokenCache::new(DEFAULT_CAPACITY),
                metrics: Metrics::default(),
                rng: seed,
                keys: KeysChannel::default(),
                fetch: ConfigFetch::default(),
            })),
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        config_fetch::answered(&self.state, token, body);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        config_fetch::superseded();
        let reference = match by_reference::read_reference(&bytes) {
            Some(Ok(reference)) => Some(reference),
            Some(Err(e)) => {
                log(
                    LogLevel::Error,
                    &format!("modelgate: configuration reference refused: {e}"),
                );
                self.state.borrow_mut().metrics.config_loaded(false, 0);
                return false;
            }
            None => None,
        };
        if let Some(reference) = reference {
            return config_fetch::configure(&self.state, reference);
        }
        let mut state = self.state.borrow_mut();
        match CompiledConfig::from_json(&bytes) {
            Ok((config, warnings)) => {
                config_fetch::install(&mut state, config, &warnings, None);
                true
            }
            Err(e) => {
                let before = state.config.is_some() || CONFIGURED_BEFORE.with(|c| c.get());
                let keeping = if before {
                    "the previous configuration keeps serving"
                } else {
                    "no configuration yet: every request is answered 503"
                };
                log(
                    LogLevel::Error,
                    &format!("modelgate: configuration refused: {e} ({keeping})"),
                );
                state.metrics.config_loaded(false, 0);
                // Refusing keeps a running gateway's previous configuration; a new one fails
                // the plugin and Envoy answers 500 (fail closed). Only a document that is no
                // configuration at all lands here (another version, not JSON): what a tenant
                // writes is confined to its own entries.
                false
            }
        }
    }

    fn on_tick(&mut self) {
        config_fetch::tick(&self.state);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            state: self.state.clone(),
            id: context_id,
            response_header: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    state: Rc<RefCell<State>>,
    id: u32,
    /// The chosen predictor, echoed on the response so a client can stay on it.
    response_header: Option<(String, String)>,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        keys_channel::answered(&self.state, token, body);
    }
}

impl HttpContext for Stream {
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let echo = match &self.response_header {
            Some(echo) => Some(echo.clone()),
            None => self.state.borrow_mut().keys.take_echo(self.id),
        };
        if let Some((name, value)) = echo {
            self.set_http_response_header(&name, Some(&value));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        keys_channel::stream_ended(&self.state, self.id);
    }

    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match Stream::handle_request(&self.state, self.id, true) {
            Handled::Forward(echo) => {
                self.response_header = echo;
                Action::Continue
            }
            Handled::Refused | Handled::Held => Action::Pause,
        }
    }
}

/// What became of a request.
enum Handled {
    /// It goes on, with the routing header to echo on its response.
    Forward(Option<(String, String)>),
    /// A refusal was sent.
    Refused,
    /// It waits for a fresh key set ([`keys_channel`]).
    Held,
}

impl Stream {
    /// Decides the request of `stream` (the effective context) and applies the decision.
    /// `may_hold`: whether a token with a `kid` its key set lacks may wait for a fresh key
    /// set; not when the request is decided again after one.
    fn handle_request(state: &Rc<RefCell<State>>, stream: u32, may_hold: bool) -> Handled {
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let request = Request {
            method: pseudo(":method"),
            path: pseudo(":path"),
            headers: &headers,
        };
        let now = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());

        let mut guard = state.borrow_mut();
        let state = &mut *guard;
        let Some(config) = state.config.clone() else {
            // Fail closed: without a configuration no model can be told from another.
            let answer = refusal(None, DenyReason::PolicyUnusable);
            drop(guard);
            Self::send_refusal(503, answer.headers, &answer.body);
            return Handled::Refused;
        };
        let random = state.next_random();
        let decision = config.decide(
            &request,
            &mut Environment {
                now,
                random,
                cache: &mut state.cache,
            },
        );
        if let (Outcome::Denied(DenyReason::UnknownKey), Some(model)) =
            (decision.outcome, decision.model)
        {
            if !may_hold {
                keys_channel::still_unknown(&mut state.keys, &config, model, &request, now);
            } else if keys_channel::hold(&mut state.keys, &config, model, &request, stream, now) {
                return Handled::Held;
            }
        }
        state.metrics.record(&decision);
        drop(guard);

        let model = decision.model.map_or("-", |m| &*m.id);
        match decision.outcome {
            Outcome::AuditDenied(reason) => log(
                LogLevel::Warn,
                &format!(
                    "modelgate: audit: {model}: would refuse {} {}: {}",
                    request.method,
                    request.path_only(),
                    reason.as_str()
                ),
            ),
            Outcome::Denied(reason) => log(
                LogLevel::Info,
                &format!(
                    "modelgate: {model}: refused {} {}: {}",
                    request.method,
                    request.path_only(),
                    reason.as_str()
                ),
            ),
            _ => {}
        }
        if let Some(answer) = decision.refusal() {
            Self::send_refusal(answer.status, answer.headers, &answer.body);
            return Handled::Refused;
        }
        for edit in &decision.edits {
            let _ = match edit {
                Edit::RemoveHeader(name) => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None)
                }
                Edit::SetHeader(name, value) => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
                }
                Edit::SetPath(path) => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, ":path", Some(path))
                }
            };
        }
        if !decision.edits.is_empty() {
            // The router must match again on the header or path just changed.
            route_cache::clear();
        }
        Handled::Forward(
            decision
                .route
                .map(|route| (route.header.to_string(), route.predictor.to_string())),
        )
    }

    fn send_refusal(status: u16, headers: Vec<(String, String)>, body: &str) {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let _ = hostcalls::send_http_response(u32::from(status), headers, Some(body.as_bytes()));
    }
}

fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}
