//! The key channel on the host side: when a token names a `kid` its key set lacks, the
//! request is held while the controller is asked for the key set (`dispatch_http_call` to
//! the configuration's `channel`), and every request held for it is decided again once the
//! answer (or its failure, or its timeout) is in. What to ask and when is decided by
//! `modelgate_core::auth::refetch`; this module only sends, reads and resumes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use modelgate_core::auth::refetch::{
    Ask, MAX_ANSWER_BYTES, Refetcher, keys_request_path, missing_kid, read_answer,
};
use modelgate_core::compiled::CompiledModel;
use modelgate_core::{CompiledConfig, Request};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

use crate::{Handled, State, Stream, log};

/// A request for a key set on its way.
struct Call {
    uri: String,
    /// The stream that sent it, and receives the answer.
    sender: u32,
}

/// The channel's state in one VM's configuration.
#[derive(Default)]
pub(crate) struct KeysChannel {
    refetch: Option<Refetcher<u32>>,
    calls: HashMap<u32, Call>,
    /// The routing header to echo on the response of a request decided again, by stream.
    echo: HashMap<u32, (String, String)>,
    metrics: HashMap<&'static str, u32>,
}

impl KeysChannel {
    /// The routing header to echo on this stream's response, if it was decided again.
    pub(crate) fn take_echo(&mut self, stream: u32) -> Option<(String, String)> {
        self.echo.remove(&stream)
    }

    /// Counts `modelgate_key_refetches_total{result}`.
    fn count(&mut self, result: &'static str) {
        let id = match self.metrics.get(result) {
            Some(id) => *id,
            None => match hostcalls::define_metric(
                MetricType::Counter,
                &format!("modelgate_key_refetches_total.result=.={result};.;"),
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

/// Whether `stream`, refused as `unknown_key`, is held for a fresh key set (the request for
/// it sent now, or already on its way). `false`: refuse it as without a channel.
pub(crate) fn hold(
    keys: &mut KeysChannel,
    config: &CompiledConfig,
    model: &CompiledModel,
    request: &Request<'_>,
    stream: u32,
    now: u64,
) -> bool {
    let Some(channel) = &config.channel else {
        return false;
    };
    let Some((uri, kid)) = missing_kid(config, model, request) else {
        return false;
    };
    let refetch = keys
        .refetch
        .get_or_insert_with(|| Refetcher::new(channel.refetch_secs.into()));
    match refetch.ask(&uri, &kid, stream, now) {
        Ask::Wait => true,
        Ask::Refuse(_) => {
            keys.count("limited");
            false
        }
        Ask::Fetch => {
            let path = keys_request_path(channel, &uri);
            let sent = hostcalls::dispatch_http_call(
                &channel.cluster,
                vec![
                    (":method", "GET"),
                    (":path", &path),
                    (":authority", &channel.authority),
                ],
                None,
                vec![],
                Duration::from_millis(channel.timeout_ms.into()),
            );
            match sent {
                Ok(token) => {
                    keys.calls.insert(
                        token,
                        Call {
                            uri,
                            sender: stream,
                        },
                    );
                    true
                }
                Err(e) => {
                    refetch.finish(&uri);
                    keys.count("failed");
                    log(
                        LogLevel::Warn,
                        &format!("modelgate: key channel: cannot ask for {uri}: {e:?}"),
                    );
                    false
                }
            }
        }
    }
}

/// A request decided again after the answer still names a `kid` the fresh set lacks: it is
/// refused without asking again for a while.
pub(crate) fn still_unknown(
    keys: &mut KeysChannel,
    config: &CompiledConfig,
    model: &CompiledModel,
    request: &Request<'_>,
    now: u64,
) {
    if let (Some(refetch), Some((uri, kid))) =
        (keys.refetch.as_mut(), missing_kid(config, model, request))
    {
        refetch.remember_unknown(&uri, &kid, now);
    }
}

/// The answer to the request `token` (`headers` 0: it failed or timed out): the key set is
/// replaced when the answer is a usable one, then every request held for it is decided
/// again.
pub(crate) fn answered(state: &Rc<RefCell<State>>, token: u32, body_size: usize) {
    let held = {
        let mut guard = state.borrow_mut();
        let state = &mut *guard;
        let Some(call) = state.keys.calls.remove(&token) else {
            return;
        };
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten();
        let keys = match (status.as_deref(), &state.config) {
            (_, None) => Err("no configuration".to_string()),
            (Some("200"), _) if body_size > MAX_ANSWER_BYTES => Err(format!(
                "an answer of {body_size} bytes (at most {MAX_ANSWER_BYTES})"
            )),
            (Some("200"), Some(config)) => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                read_answer(&body, &config.key_limits).map(|keys| (config.clone(), keys))
            }
            (Some(other), _) => Err(format!("status {other}")),
            (None, _) => Err("no answer (unreachable, or timed out)".to_string()),
        };
        match keys {
            Ok((config, keys)) => {
                let count = keys.len();
                config.replace_keys(&call.uri, keys);
                // Refusals remembered under the old keys (unknown_key) must not outlive them;
                // verified tokens stay (a key set refreshed every interval by a tenant must
                // not cost everyone's cached tokens a signature check again).
                state.cache.forget_refusals();
                state.keys.count("updated");
                log(
                    LogLevel::Info,
                    &format!("modelgate: key channel: {} now has {count} keys", call.uri),
                );
            }
            Err(why) => {
                state.keys.count("failed");
                log(
                    LogLevel::Warn,
                    &format!(
                        "modelgate: key channel: {}: {why}; the keys in force stay",
                        call.uri
                    ),
                );
            }
        }
        state
            .keys
            .refetch
            .as_mut()
            .map_or_else(Vec::new, |r| r.finish(&call.uri))
    };
    decide_again(state, held);
}

/// A stream is over: it is held no longer, and a request it sent that was never answered
/// never will be (Envoy cancels a stream's calls with it), so the streams held for it are
/// decided now, with the keys in force.
pub(crate) fn stream_ended(state: &Rc<RefCell<State>>, stream: u32) {
    let held = {
        let mut guard = state.borrow_mut();
        let keys = &mut guard.keys;
        keys.echo.remove(&stream);
        let Some(refetch) = keys.refetch.as_mut() else {
            return;
        };
        refetch.leave(&stream);
        let sent = keys
            .calls
            .iter()
            .find(|(_, call)| call.sender == stream)
            .map(|(token, _)| *token);
        match sent.and_then(|token| keys.calls.remove(&token)) {
            Some(call) => {
                let held = refetch.finish(&call.uri);
                keys.count("failed");
                held
            }
            None => return,
        }
    };
    decide_again(state, held);
}

/// Decides each held stream again, in its own context: refused as before, or let through.
fn decide_again(state: &Rc<RefCell<State>>, held: Vec<u32>) {
    for stream in held {
        if hostcalls::set_effective_context(stream).is_err() {
            continue;
        }
        if let Handled::Forward(echo) = Stream::handle_request(state, stream, false) {
            if let Some(echo) = echo {
                state.borrow_mut().keys.echo.insert(stream, echo);
            }
            let _ = hostcalls::resume_http_request();
        }
    }
}
