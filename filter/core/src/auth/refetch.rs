//! Asking the controller again for a key set when a token names a `kid` the set lacks (an
//! issuer that has just rotated its key), without letting a flood of made-up `kid`s cost
//! the issuer, the controller or other tenants anything: at most one request per key set
//! in flight and one per interval, a bounded number of requests waiting, and `kid`s a
//! fresh key set did not explain remembered for a while. Whatever goes wrong, the token is
//! refused as it would be without a channel (`401 unknown_key`); nothing here lets a
//! request through.
//!
//! The host layer sends the request and pauses the waiting requests; [`Refetcher`] only
//! says what to do, and [`read_answer`] reads the controller's answer as configured keys
//! are read.

use std::collections::HashMap;
use std::rc::Rc;

use jsonwebtoken::decode_header;

use super::extractor::find_token;
use super::keys::{KeyLimits, VerifyingKey, compile_key_with, select_usable};
use crate::compiled::{CompiledConfig, CompiledModel, CompiledPolicy};
use crate::config::{KeyChannel, KeySet};
use crate::request::Request;

/// Requests that may wait for one key set's answer; more are refused at once.
pub const MAX_WAITING_PER_SET: usize = 64;
/// Requests that may wait for answers in one VM, whatever the key sets.
pub const MAX_WAITING: usize = 256;
/// How long a `kid` a fresh key set did not hold is refused without asking again, seconds.
pub const UNKNOWN_KID_SECS: u64 = 60;
/// `kid`s remembered as unknown, at most.
pub const UNKNOWN_KID_CAPACITY: usize = 1024;
/// Longer `kid`s are never asked about (nor remembered).
pub const MAX_KID_BYTES: usize = 256;
/// The longest answer read; a longer one is a bad answer.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Keys of an answer looked at, at most (the controller sends at most 16 usable ones).
pub const MAX_ANSWER_KEYS: usize = 4 * crate::auth::keys::MAX_KEYS_PER_SET;

/// Bounds of a configuration's `channel` (longer names, or timings outside these, turn the
/// channel off with a warning).
pub const MAX_CHANNEL_NAME_BYTES: usize = 512;
/// The shortest wait for an answer, milliseconds.
pub const MIN_CHANNEL_TIMEOUT_MS: u32 = 100;
/// The longest wait for an answer, milliseconds: what a request may be held at most.
pub const MAX_CHANNEL_TIMEOUT_MS: u32 = 10_000;
/// The shortest interval between two requests for one key set, seconds.
pub const MIN_REFETCH_SECS: u32 = 5;
/// The longest interval between two requests for one key set, seconds.
pub const MAX_REFETCH_SECS: u32 = 3600;

/// What to do with a request whose token names a `kid` its key set lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Send the request for the key set, and hold this request until it is answered.
    Fetch,
    /// A request for the key set is on its way: hold this request until it is answered.
    Wait,
    /// Refuse it now, as without a channel.
    Refuse(NotAsked),
}

/// Why a request was not held for a fresh key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAsked {
    /// The `kid` is over [`MAX_KID_BYTES`].
    KidTooLong,
    /// A fresh key set lacked this `kid` less than [`UNKNOWN_KID_SECS`] ago.
    KnownUnknown,
    /// The key set was asked for less than an interval ago.
    TooSoon,
    /// Too many requests are waiting already.
    TooManyWaiting,
}

/// The state of one key set's requests.
#[derive(Debug)]
struct SetState<W> {
    /// When it was last asked for.
    asked_at: u64,
    /// Whether a request for it is on its way.
    in_flight: bool,
    /// The requests held for its answer.
    waiting: Vec<W>,
}

/// The channel's bookkeeping in one VM, over waiters of type `W` (the host's request ids).
#[derive(Debug)]
pub struct Refetcher<W> {
    interval: u64,
    sets: HashMap<String, SetState<W>>,
    waiting: usize,
    /// `(uri, kid)` to the time until which it is refused without asking.
    unknown: HashMap<(String, String), u64>,
}

impl<W: PartialEq> Refetcher<W> {
    /// A refetcher asking for each key set at most once per `interval_secs`.
    pub fn new(interval_secs: u64) -> Self {
        Self {
            interval: interval_secs,
            sets: HashMap::new(),
            waiting: 0,
            unknown: HashMap::new(),
        }
    }

    /// Requests held now, over all key sets.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// What to do with `waiter`, whose token names `kid`, missing from the key set of `uri`.
    pub fn ask(&mut self, uri: &str, kid: &str, waiter: W, now: u64) -> Ask {
        if kid.len() > MAX_KID_BYTES {
            return Ask::Refuse(NotAsked::KidTooLong);
        }
        if let Some(until) = self.unknown.get(&(uri.to_string(), kid.to_string())) {
            if *until > now {
                return Ask::Refuse(NotAsked::KnownUnknown);
            }
            self.unknown.remove(&(uri.to_string(), kid.to_string()));
        }
        if self.waiting >= MAX_WAITING {
            return Ask::Refuse(NotAsked::TooManyWaiting);
        }
        let interval = self.interval;
        let set = self.sets.entry(uri.to_string()).or_insert(SetState {
            asked_at: 0,
            in_flight: false,
            waiting: Vec::new(),
        });
        let ask = if set.in_flight {
            if set.waiting.len() >= MAX_WAITING_PER_SET {
                return Ask::Refuse(NotAsked::TooManyWaiting);
            }
            Ask::Wait
        } else if set.asked_at != 0 && now < set.asked_at.saturating_add(interval) {
            return Ask::Refuse(NotAsked::TooSoon);
        } else {
            set.in_flight = true;
            set.asked_at = now.max(1);
            Ask::Fetch
        };
        set.waiting.push(waiter);
        self.waiting += 1;
        ask
    }

    /// The request for `uri`'s key set is over (answered, failed, or abandoned): the
    /// requests to take up again, each to be decided anew.
    pub fn finish(&mut self, uri: &str) -> Vec<W> {
        let Some(set) = self.sets.get_mut(uri) else {
            return Vec::new();
        };
        set.in_flight = false;
        let waiting = std::mem::take(&mut set.waiting);
        self.waiting -= waiting.len();
        waiting
    }

    /// `waiter` is gone (its client left): it is no longer held.
    pub fn leave(&mut self, waiter: &W) {
        for set in self.sets.values_mut() {
            if let Some(at) = set.waiting.iter().position(|w| w == waiter) {
                set.waiting.swap_remove(at);
                self.waiting -= 1;
                return;
            }
        }
    }

    /// A fresh key set for `uri` did not hold `kid` either: it is refused without asking
    /// for [`UNKNOWN_KID_SECS`]. When [`UNKNOWN_KID_CAPACITY`] are remembered, the expired
    /// go, and if none has, all do (a flood then costs at most one request per interval).
    pub fn remember_unknown(&mut self, uri: &str, kid: &str, now: u64) {
        if kid.len() > MAX_KID_BYTES {
            return;
        }
        if self.unknown.len() >= UNKNOWN_KID_CAPACITY {
            self.unknown.retain(|_, until| *until > now);
            if self.unknown.len() >= UNKNOWN_KID_CAPACITY {
                self.unknown.clear();
            }
        }
        self.unknown.insert(
            (uri.to_string(), kid.to_string()),
            now.saturating_add(UNKNOWN_KID_SECS),
        );
    }

    /// `kid`s remembered as unknown now.
    pub fn remembered(&self) -> usize {
        self.unknown.len()
    }
}

/// The controller's answer: a JWKS read as a configured key set is (same key checks, same
/// limits, at most [`crate::auth::keys::MAX_KEYS_PER_SET`] keys), of which only the first
/// [`MAX_ANSWER_KEYS`] are looked at. An answer without one
/// usable key is a bad answer: the keys in force stay.
pub fn read_answer(body: &[u8], limits: &KeyLimits) -> Result<Vec<VerifyingKey>, String> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "an answer of {} bytes (at most {MAX_ANSWER_BYTES})",
            body.len()
        ));
    }
    // Read from text, as configured key sets are: one instance of the reader in the module.
    let text = std::str::from_utf8(body).map_err(|_| "not a key set: not UTF-8".to_string())?;
    let set: KeySet = serde_json::from_str(text).map_err(|e| format!("not a key set: {e}"))?;
    let keys: Vec<VerifyingKey> = set
        .keys
        .iter()
        .take(MAX_ANSWER_KEYS)
        .filter_map(|raw| compile_key_with(raw, limits).ok())
        .collect();
    let keys = select_usable("answer", keys, &mut Vec::new());
    if keys.is_empty() {
        return Err("no usable key".into());
    }
    Ok(keys)
}

/// The path of the request for the key set of `uri`: the channel's `keysPath` with the URI,
/// percent-encoded, as its `uri` query parameter.
pub fn keys_request_path(channel: &KeyChannel, uri: &str) -> String {
    let mut path = format!("{}?uri=", channel.keys_path);
    for byte in uri.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// A token's `kid` that its model's key set lacks, with the set's JWKS URI: what to ask
/// the controller about. `None` when the model has no JWT policy, its key set was not
/// fetched from a URI (inline keys), or the token has no `kid` or one the set holds.
pub fn missing_kid(
    config: &CompiledConfig,
    model: &CompiledModel,
    request: &Request<'_>,
) -> Option<(String, String)> {
    let CompiledPolicy::Jwt(jwt) = &config.policies[model.policy] else {
        return None;
    };
    let uri = jwt.keys.uri()?;
    let found = find_token(request, &jwt.sources).ok()??;
    let kid = decode_header(found.token.as_ref()).ok()?.kid?;
    if jwt
        .keys
        .current()
        .iter()
        .any(|k| k.kid.as_deref() == Some(kid.as_str()))
    {
        return None;
    }
    Some((uri.to_string(), kid))
}

impl CompiledConfig {
    /// Puts `keys` in force for every key set fetched from `uri`, for all the policies
    /// using them; returns how many sets were replaced.
    pub fn replace_keys(&self, uri: &str, keys: Vec<VerifyingKey>) -> usize {
        let keys = Rc::new(keys);
        let mut replaced = 0;
        for set in &self.fetched_key_sets {
            if set.uri() == Some(uri) {
                set.replace(keys.clone());
                replaced += 1;
            }
        }
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FilterConfig, JwtPolicy, Model, Policy};
    use crate::{Environment, Outcome, TokenCache};
    use modelgate_testkit::TestKey;
    use serde_json::json;

    const URI: &str = "https://issuer.example/jwks";

    #[test]
    fn one_request_per_set_in_flight_and_per_interval() {
        let mut r = Refetcher::new(30);
        assert_eq!(r.ask(URI, "new", 1, 100), Ask::Fetch);
        assert_eq!(r.ask(URI, "new", 2, 100), Ask::Wait);
        assert_eq!(r.ask(URI, "other", 3, 101), Ask::Wait);
        assert_eq!(
            r.ask("https://b/jwks", "x", 4, 101),
            Ask::Fetch,
            "sets apart"
        );
        assert_eq!(r.waiting(), 4);
        assert_eq!(r.finish(URI), vec![1, 2, 3]);
        assert_eq!(r.waiting(), 1);
        assert_eq!(r.ask(URI, "later", 5, 129), Ask::Refuse(NotAsked::TooSoon));
        assert_eq!(r.ask(URI, "later", 5, 130), Ask::Fetch);
        assert_eq!(r.finish("https://never-asked/jwks"), Vec::<i32>::new());
    }

    #[test]
    fn waiting_is_bounded_per_set_and_per_vm() {
        let mut r = Refetcher::new(30);
        assert_eq!(r.ask(URI, "k", 0, 100), Ask::Fetch);
        for w in 1..MAX_WAITING_PER_SET {
            assert_eq!(r.ask(URI, "k", w, 100), Ask::Wait);
        }
        assert_eq!(
            r.ask(URI, "k", 999, 100),
            Ask::Refuse(NotAsked::TooManyWaiting)
        );
        let mut held = MAX_WAITING_PER_SET;
        let mut set = 0;
        while held < MAX_WAITING {
            let uri = format!("https://s{set}/jwks");
            for _ in 0..MAX_WAITING_PER_SET.min(MAX_WAITING - held) {
                assert_ne!(
                    r.ask(&uri, "k", held, 100),
                    Ask::Refuse(NotAsked::TooManyWaiting)
                );
                held += 1;
            }
            set += 1;
        }
        assert_eq!(
            r.ask("https://fresh/jwks", "k", 5000, 100),
            Ask::Refuse(NotAsked::TooManyWaiting)
        );
        r.leave(&3);
        assert_eq!(r.waiting(), MAX_WAITING - 1);
        assert_eq!(r.finish(URI).len(), MAX_WAITING_PER_SET - 1);
        assert_eq!(r.ask("https://fresh/jwks", "k", 5000, 100), Ask::Fetch);
    }

    #[test]
    fn kids_a_fresh_set_lacked_are_refused_for_a_while_and_bounded() {
        let mut r: Refetcher<u32> = Refetcher::new(5);
        r.remember_unknown(URI, "made-up", 100);
        assert_eq!(
            r.ask(URI, "made-up", 1, 159),
            Ask::Refuse(NotAsked::KnownUnknown)
        );
        assert_eq!(r.ask(URI, "made-up", 1, 160), Ask::Fetch, "remembered 60 s");
        let long = "k".repeat(MAX_KID_BYTES + 1);
        assert_eq!(r.ask(URI, &long, 2, 500), Ask::Refuse(NotAsked::KidTooLong));
        r.remember_unknown(URI, &long, 500);
        assert_eq!(r.remembered(), 0);
        for i in 0..UNKNOWN_KID_CAPACITY + 10 {
            r.remember_unknown(URI, &format!("k{i}"), 1000);
            assert!(r.remembered() <= UNKNOWN_KID_CAPACITY);
        }
    }

    #[test]
    fn a_channel_that_cannot_be_used_is_off_with_a_warning() {
        let with = |channel: serde_json::Value| {
            CompiledConfig::from_json(
                json!({"version": 1, "channel": channel})
                    .to_string()
                    .as_bytes(),
            )
        };
        let base = json!({"cluster": "outbound|8080||c.ns.svc.cluster.local", "authority": "c.ns.svc.cluster.local"});
        let (config, warnings) = with(base.clone()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let channel = config.channel.unwrap();
        assert_eq!(
            (
                channel.keys_path.as_str(),
                channel.timeout_ms,
                channel.refetch_secs
            ),
            ("/keys", 2000, 30),
            "the defaults"
        );
        for (field, value) in [
            ("cluster", json!("")),
            ("authority", json!("a".repeat(MAX_CHANNEL_NAME_BYTES + 1))),
            ("keysPath", json!("keys")),
            ("keysPath", json!("/keys?uri=x")),
            ("timeoutMs", json!(MIN_CHANNEL_TIMEOUT_MS - 1)),
            ("timeoutMs", json!(MAX_CHANNEL_TIMEOUT_MS + 1)),
            ("refetchSecs", json!(MIN_REFETCH_SECS - 1)),
            ("refetchSecs", json!(MAX_REFETCH_SECS + 1)),
        ] {
            let mut channel = base.clone();
            channel[field] = value;
            let (config, warnings) = with(channel).unwrap();
            assert!(config.channel.is_none(), "{field}");
            assert_eq!(warnings.len(), 1, "{field}: {warnings:?}");
            assert_eq!(warnings[0].field, format!("channel.{field}"));
            assert!(warnings[0].message.contains("the key channel is off"));
        }
        // A member this filter does not know is a document from another controller.
        let mut unknown = base;
        unknown["retries"] = json!(3);
        assert!(with(unknown).is_err());
    }

    #[test]
    fn the_uri_goes_percent_encoded_in_the_query() {
        let channel = KeyChannel {
            cluster: "c".into(),
            authority: "a".into(),
            keys_path: "/keys".into(),
            timeout_ms: 2000,
            refetch_secs: 30,
        };
        assert_eq!(
            keys_request_path(&channel, "https://idp.example/a b?x=1&y=%"),
            "/keys?uri=https%3A%2F%2Fidp.example%2Fa%20b%3Fx%3D1%26y%3D%25"
        );
    }

    #[test]
    fn answers_are_read_as_configured_keys_are() {
        let limits = KeyLimits::default();
        let good = json!({"keys": [TestKey::rsa_a().jwk(), {"kty": "oct", "k": "c2VjcmV0"}]});
        let keys = read_answer(good.to_string().as_bytes(), &limits).unwrap();
        assert_eq!(keys.len(), 1, "the HMAC key is skipped");
        let only_bad = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(read_answer(only_bad.to_string().as_bytes(), &limits).is_err());
        assert!(read_answer(b"<html>", &limits).is_err());
        let mut huge = json!({"keys": [TestKey::rsa_a().jwk()]}).to_string();
        huge.push_str(&" ".repeat(MAX_ANSWER_BYTES));
        assert!(
            read_answer(huge.as_bytes(), &limits)
                .unwrap_err()
                .contains("at most")
        );
    }

    fn config(source: &str) -> CompiledConfig {
        let mut config = FilterConfig::new();
        config.key_sets.insert(
            "ks".into(),
            KeySet {
                source: Some(source.into()),
                keys: vec![TestKey::rsa_a().jwk()],
            },
        );
        for (policy, model) in [("p1", "ns/a"), ("p2", "ns/b")] {
            let mut jwt = JwtPolicy {
                mode: Default::default(),
                issuer: "https://issuer.example".into(),
                audiences: vec![],
                key_set: "ks".into(),
                claims: Default::default(),
                token_from: vec![],
                forward_claims: Default::default(),
                forward_token: true,
            };
            jwt.issuer = "https://issuer.example".into();
            config.policies.insert(policy.into(), Policy::Jwt(jwt));
            config.models.insert(
                model.into(),
                Model {
                    policy: policy.into(),
                    routing: None,
                },
            );
        }
        CompiledConfig::compile(&config).unwrap().0
    }

    fn token(key: &TestKey) -> String {
        key.sign(&json!({"iss": "https://issuer.example", "sub": "u", "exp": modelgate_testkit::now() + 600}))
    }

    #[test]
    fn a_new_key_serves_every_policy_of_its_set_once_in_force() {
        let config = config(URI);
        let rotated = token(&TestKey::rsa_b());
        let headers = vec![("authorization".to_string(), format!("Bearer {rotated}"))];
        let request = |path| Request {
            method: "POST",
            path,
            headers: &headers,
        };
        let mut cache = TokenCache::new(16);
        fn env(cache: &mut TokenCache) -> Environment<'_> {
            Environment {
                now: modelgate_testkit::now(),
                random: 0,
                cache,
            }
        }
        let a = request("/seldon/ns/a/api/v1.0/predictions");
        let d = config.decide(&a, &mut env(&mut cache));
        assert_eq!(d.outcome, Outcome::Denied(crate::DenyReason::UnknownKey));
        let (uri, kid) = missing_kid(&config, d.model.unwrap(), &a).unwrap();
        assert_eq!((uri.as_str(), kid.as_str()), (URI, "rsa-b"));

        let answer = json!({"keys": [TestKey::rsa_a().jwk(), TestKey::rsa_b().jwk()]});
        let keys = read_answer(answer.to_string().as_bytes(), &config.key_limits).unwrap();
        assert_eq!(config.replace_keys(URI, keys), 1);
        let mut cache = TokenCache::new(16);
        for path in [
            "/seldon/ns/a/api/v1.0/predictions",
            "/seldon/ns/b/api/v1.0/predictions",
        ] {
            let d = config.decide(&request(path), &mut env(&mut cache));
            assert!(matches!(d.outcome, Outcome::Allowed(_)), "{path}: {d:?}");
            assert!(missing_kid(&config, d.model.unwrap(), &request(path)).is_none());
        }
    }

    #[test]
    fn inline_keys_are_never_asked_for() {
        let config = config("inline");
        let rotated = token(&TestKey::rsa_b());
        let headers = vec![("authorization".to_string(), format!("Bearer {rotated}"))];
        let request = Request {
            method: "POST",
            path: "/seldon/ns/a/api/v1.0/predictions",
            headers: &headers,
        };
        assert!(missing_kid(&config, &config.models[0], &request).is_none());
        assert_eq!(config.replace_keys("inline", Vec::new()), 0);
    }
}
