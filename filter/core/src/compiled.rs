//! The configuration compiled for requests: validated once in `on_configure`, then only
//! looked up.
//!
//! One model's problem is that model's alone: every key set, policy and model entry is read
//! and compiled on its own, from its own slice of the document, so a key set that does not
//! parse (too deep, wrong shape) leaves the policies using it without keys (their models
//! answer `401`), a policy that does not compile denies its models (`403`), and a model
//! entry that does not compile is denied. Each such problem is reported as a warning naming
//! the field. Only a document that is not a configuration at all (not JSON, an unknown
//! top-level field, another version) is refused whole, and then Envoy keeps the previous
//! one.
//!
//! A VM's linear memory never shrinks, so the peak of `on_configure` stays for the life of
//! the VM: [`CompiledConfig::from_json`] compiles each model as the parser reaches it,
//! never holding the whole document as contract types next to the compiled form, and the
//! compiled models are kept compact (one string per model, routing boxed).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde_json::value::RawValue;

use crate::auth::claims::{ClaimPath, ClaimRule, ClaimsUsed};
use crate::auth::extractor::TokenSource;
use crate::auth::keys::{KeyLimits, SharedKeys, compile_key_with, select_usable};
use crate::auth::verifier::{PolicyValidation, validation_for};
use crate::config::{
    AuthMode, DEFAULT_TOKEN_SOURCE, FilterConfig, JwtPolicy, KeyChannel, KeySet, Model, Policy,
};
use crate::headers;
use crate::http::is_header_name;
use crate::names::is_model_id;
use crate::route::CompiledRouting;

mod loader;

pub(crate) use loader::check_channel;

/// A configuration error: the path of the bad field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// JSON path of the field, such as `policies["p"].tokenFrom[1]`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A compiled JWT policy.
#[derive(Debug)]
pub struct CompiledJwt {
    /// Enforce or audit.
    pub mode: AuthMode,
    /// The required issuer.
    pub issuer: String,
    /// Usable keys of the policy's key set (shared between policies).
    pub keys: Rc<SharedKeys>,
    /// Signature, issuer and audience validation.
    pub(crate) validation: PolicyValidation,
    /// Required claims.
    pub claims: Vec<ClaimRule>,
    /// Where tokens are looked for.
    pub sources: Vec<TokenSource>,
    /// Claims copied into upstream headers.
    pub forward_claims: Vec<(ClaimPath, String)>,
    /// Whether the token goes on to the model.
    pub forward_token: bool,
    /// The top-level claims its decisions read (rules, forwarded claims, and its models'
    /// sticky claims): all the token cache keeps of a verified token.
    pub claims_used: ClaimsUsed,
}

impl CompiledJwt {
    /// Whether the policy reads or writes this header (a token source or a forwarded claim).
    fn uses_header(&self, name: &str) -> bool {
        self.forward_claims.iter().any(|(_, h)| h == name)
            || self
                .sources
                .iter()
                .any(|s| matches!(s, TokenSource::Header(h) if h == name))
    }
}

/// A compiled policy.
#[derive(Debug)]
pub enum CompiledPolicy {
    /// JWT required.
    Jwt(Box<CompiledJwt>),
    /// No authentication.
    None,
    /// Unusable: every request is refused.
    Deny(String),
}

/// A compiled model.
#[derive(Debug)]
pub struct CompiledModel {
    /// Its index in [`CompiledConfig::models`].
    pub index: usize,
    /// `<namespace>/<name>`: the model's identity in metrics, logs and the realm.
    pub id: Box<str>,
    /// Index of its policy in [`CompiledConfig::policies`].
    pub policy: usize,
    /// A/B routing, when it has several non-shadow predictors.
    pub routing: Option<Box<CompiledRouting>>,
}

impl CompiledModel {
    /// `/seldon/<ns>/<name>/prometheus`, the model's exempt path.
    pub fn prometheus_path(&self) -> String {
        format!("/seldon/{}/prometheus", self.id)
    }
}

/// The whole configuration, ready for requests.
#[derive(Debug)]
pub struct CompiledConfig {
    /// Models in id order (so a model is found by binary search on its id).
    pub models: Vec<CompiledModel>,
    /// Policies in id order, then the one that denies unusable model entries.
    pub policies: Vec<CompiledPolicy>,
    /// Policy ids, parallel to `policies` (for logs).
    pub policy_ids: Vec<String>,
    /// Every key set with a JWKS URI, which the key channel may bring anew.
    pub fetched_key_sets: Vec<Rc<SharedKeys>>,
    /// What keys may cost, for keys that come later by the key channel too.
    pub key_limits: KeyLimits,
    /// Where to ask for a key set when a token's `kid` is not in it.
    pub channel: Option<KeyChannel>,
}

/// The id, in logs, of the policy every unusable model entry is given.
pub const UNUSABLE_ENTRY_POLICY: &str = "(unusable model entry)";

impl CompiledConfig {
    /// Parses and compiles a `pluginConfig` document. Warnings name what was skipped or
    /// denied (a key, a key set, a policy, a model entry); an error refuses the whole
    /// document. Models are compiled as they are parsed, whatever the order of the
    /// document's fields.
    pub fn from_json(bytes: &[u8]) -> Result<(Self, Vec<ConfigError>), ConfigError> {
        loader::from_json(bytes)
    }

    /// Validates and compiles a configuration.
    pub fn compile(config: &FilterConfig) -> Result<(Self, Vec<ConfigError>), ConfigError> {
        loader::from_config(config)
    }

    /// The model with this namespace and name.
    pub fn model(&self, namespace: &str, name: &str) -> Option<usize> {
        self.models
            .binary_search_by(|m| id_order(&m.id, namespace, name))
            .ok()
    }

    /// Why requests to this model are all refused, if its policy is unusable or has no key
    /// to verify tokens with; `None` for a model that can serve.
    pub fn unusable(&self, model: &CompiledModel) -> Option<&str> {
        match &self.policies[model.policy] {
            CompiledPolicy::Deny(reason) => Some(reason),
            CompiledPolicy::Jwt(jwt) if jwt.keys.is_empty() => {
                Some("no usable key verifies its tokens")
            }
            _ => None,
        }
    }
}

/// How a model id compares with `<namespace>/<name>`, without building that string: the
/// byte order of the whole id, in at most two slice comparisons (a lookup among 100,000
/// models makes 17 of these on every request).
fn id_order(id: &str, namespace: &str, name: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (id, namespace) = (id.as_bytes(), namespace.as_bytes());
    let shared = id.len().min(namespace.len());
    match id[..shared].cmp(&namespace[..shared]) {
        Ordering::Equal => {}
        other => return other,
    }
    // Equal so far. An id no longer than the namespace is shorter than `<namespace>/…`.
    if id.len() <= namespace.len() {
        return Ordering::Less;
    }
    match id[shared].cmp(&b'/') {
        Ordering::Equal => id[shared + 1..].cmp(name.as_bytes()),
        other => other,
    }
}

/// A key set or policy as it came: its own slice of the document, or (from
/// [`CompiledConfig::compile`]) already typed.
enum Section<'a, T> {
    Raw(Box<RawValue>),
    Typed(&'a T),
}

impl<T: serde::de::DeserializeOwned + Clone> Section<'_, T> {
    /// The section read on its own: its error is its own.
    fn read(&self) -> Result<T, String> {
        match self {
            Section::Raw(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
            Section::Typed(value) => Ok((*value).clone()),
        }
    }
}

/// Key sets and policies, compiled (they are few: shared by many models). Each step is a
/// function of its own (`inline(never)`): V8 compiles every function of the module when
/// Envoy loads it, with memory that grows faster than the function, and that memory stays
/// with the allocator afterwards.
#[inline(never)]
fn compile_policies(
    key_sets: &BTreeMap<String, Section<'_, KeySet>>,
    policies: &BTreeMap<String, Section<'_, Policy>>,
    limits: &KeyLimits,
    warnings: &mut Vec<ConfigError>,
) -> (Vec<CompiledPolicy>, Vec<String>, Vec<Rc<SharedKeys>>) {
    let compiled_sets = compile_key_sets(key_sets, limits, warnings);
    let mut compiled = Vec::with_capacity(policies.len() + 1);
    let mut ids = Vec::with_capacity(policies.len() + 1);
    for (id, section) in policies {
        let field = format!("policies[{id:?}]");
        let policy = section
            .read()
            .map_err(|e| ConfigError::new(&field, e))
            .and_then(|policy| match policy {
                Policy::None => Ok(CompiledPolicy::None),
                Policy::Deny { reason } => Ok(CompiledPolicy::Deny(reason)),
                Policy::Jwt(jwt) => compile_jwt(&field, &jwt, &compiled_sets, warnings)
                    .map(|jwt| CompiledPolicy::Jwt(Box::new(jwt))),
            });
        compiled.push(policy.unwrap_or_else(|e| {
            let reason = format!("unusable policy: {e}");
            warnings.push(e);
            CompiledPolicy::Deny(reason)
        }));
        ids.push(id.clone());
    }
    let fetched = compiled_sets
        .into_values()
        .filter(|set| set.uri().is_some())
        .collect();
    (compiled, ids, fetched)
}

#[inline(never)]
fn compile_key_sets<'a>(
    key_sets: &'a BTreeMap<String, Section<'_, KeySet>>,
    limits: &KeyLimits,
    warnings: &mut Vec<ConfigError>,
) -> HashMap<&'a str, Rc<SharedKeys>> {
    let mut compiled_sets = HashMap::new();
    for (id, section) in key_sets {
        let field = format!("keySets[{id:?}]");
        let mut keys = Vec::new();
        let mut source = None;
        match section.read() {
            Ok(set) => {
                source = set.source;
                for (i, raw) in set.keys.iter().enumerate() {
                    match compile_key_with(raw, limits) {
                        Ok(key) => keys.push(key),
                        Err(why) => warnings.push(ConfigError::new(
                            format!("{field}.keys[{i}]"),
                            format!("skipped: {why}"),
                        )),
                    }
                }
            }
            Err(e) => warnings.push(ConfigError::new(&field, format!("unreadable: {e}"))),
        }
        let mut skipped = Vec::new();
        let keys = select_usable(id, keys, &mut skipped);
        warnings.extend(skipped.into_iter().map(|w| match w.split_once(": ") {
            Some((field, message)) => ConfigError::new(field, message),
            None => ConfigError::new(&field, w),
        }));
        if keys.is_empty() {
            warnings.push(ConfigError::new(
                &field,
                "has no usable key: its policies deny every request",
            ));
        }
        compiled_sets.insert(id.as_str(), Rc::new(SharedKeys::new(source, keys)));
    }
    compiled_sets
}

#[inline(never)]
fn compile_jwt(
    field: &str,
    jwt: &JwtPolicy,
    compiled_sets: &HashMap<&str, Rc<SharedKeys>>,
    warnings: &mut Vec<ConfigError>,
) -> Result<CompiledJwt, ConfigError> {
    if jwt.issuer.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.issuer"),
            "must not be empty",
        ));
    }
    // A missing key set leaves the policy without keys: `401`, as when no key can verify.
    let keys = match compiled_sets.get(jwt.key_set.as_str()) {
        Some(keys) => keys.clone(),
        None => {
            warnings.push(ConfigError::new(
                format!("{field}.keySet"),
                format!(
                    "no key set {:?}: the policy denies every request",
                    jwt.key_set
                ),
            ));
            Rc::new(SharedKeys::default())
        }
    };
    let mut claims = Vec::new();
    for (name, values) in &jwt.claims {
        let at = format!("{field}.claims[{name:?}]");
        let claim = ClaimPath::parse(name).map_err(|e| ConfigError::new(&at, e))?;
        if values.is_empty() {
            return Err(ConfigError::new(at, "lists no accepted value"));
        }
        claims.push(ClaimRule {
            claim,
            values: values.clone(),
        });
    }
    let mut sources = Vec::new();
    let from: Vec<&str> = if jwt.token_from.is_empty() {
        vec![DEFAULT_TOKEN_SOURCE]
    } else {
        jwt.token_from.iter().map(String::as_str).collect()
    };
    for (i, text) in from.iter().enumerate() {
        let at = || format!("{field}.tokenFrom[{i}]");
        let source = TokenSource::parse(text).map_err(|e| ConfigError::new(at(), e))?;
        if sources.contains(&source) {
            return Err(ConfigError::new(at(), "listed twice"));
        }
        if let TokenSource::Header(name) = &source
            && let Some(why) = headers::reserved_for_tokens(name)
        {
            return Err(ConfigError::new(at(), format!("{name:?} is {why}")));
        }
        sources.push(source);
    }
    let mut forward_claims = Vec::new();
    for (name, header) in &jwt.forward_claims {
        let at = format!("{field}.forwardClaims[{name:?}]");
        let claim = ClaimPath::parse(name).map_err(|e| ConfigError::new(&at, e))?;
        if !is_header_name(header) {
            return Err(ConfigError::new(
                at,
                format!("{header:?} is not a header name"),
            ));
        }
        let header = header.to_ascii_lowercase();
        if let Some(why) = headers::reserved_for_forwarding(&header) {
            return Err(ConfigError::new(at, format!("{header:?} is {why}")));
        }
        if sources
            .iter()
            .any(|s| matches!(s, TokenSource::Header(h) if *h == header))
        {
            return Err(ConfigError::new(
                at,
                format!("{header:?} is where the policy reads tokens"),
            ));
        }
        if forward_claims.iter().any(|(_, h)| *h == header) {
            return Err(ConfigError::new(
                at,
                format!("{header:?} is written by another claim"),
            ));
        }
        forward_claims.push((claim, header));
    }
    let claims_used = ClaimsUsed::of_policy(&claims, forward_claims.iter().map(|(c, _)| c));
    Ok(CompiledJwt {
        mode: jwt.mode,
        issuer: jwt.issuer.clone(),
        keys,
        validation: validation_for(&jwt.issuer, &jwt.audiences),
        claims,
        sources,
        forward_claims,
        forward_token: jwt.forward_token,
        claims_used,
    })
}

/// Marks, in [`ModelTable::policy_of`], a model entry that did not compile.
const UNUSABLE_ENTRY: u32 = u32::MAX;

/// Models compiled one by one; their policies are resolved by name once all are known.
#[derive(Default)]
struct ModelTable {
    models: Vec<CompiledModel>,
    /// The policy name each model named, by index into `policy_names`, or
    /// [`UNUSABLE_ENTRY`].
    policy_of: Vec<u32>,
    policy_names: Vec<String>,
    policy_name_index: HashMap<String, u32>,
    /// Entries skipped or denied, with why.
    warnings: Vec<ConfigError>,
}

impl ModelTable {
    #[inline(never)]
    fn add(&mut self, id: String, model: Result<&Model, String>) {
        let field = format!("models[{id:?}]");
        if !is_model_id(&id) {
            // No SeldonDeployment has such an id, so no route reaches it: nothing to deny.
            self.warnings.push(ConfigError::new(
                field,
                "skipped: the key must be <namespace>/<name> in lowercase DNS form",
            ));
            return;
        }
        let compiled = model
            .map_err(|e| ConfigError::new(&field, e))
            .and_then(|model| {
                let routing = match &model.routing {
                    None => None,
                    Some(r) => Some(Box::new(CompiledRouting::compile(r).map_err(|e| {
                        ConfigError::new(format!("{field}.routing.{}", e.field), e.message)
                    })?)),
                };
                Ok((routing, model.policy.as_str()))
            });
        let (routing, name) = match compiled {
            Ok((routing, policy)) => (routing, self.policy_name(policy)),
            Err(e) => {
                self.warnings.push(ConfigError::new(
                    e.field,
                    format!("{} (the model is denied)", e.message),
                ));
                (None, UNUSABLE_ENTRY)
            }
        };
        self.models.push(CompiledModel {
            index: 0,
            id: id.into_boxed_str(),
            policy: 0,
            routing,
        });
        self.policy_of.push(name);
    }

    fn policy_name(&mut self, policy: &str) -> u32 {
        match self.policy_name_index.get(policy) {
            Some(name) => *name,
            None => {
                let name = self.policy_names.len() as u32;
                self.policy_names.push(policy.to_string());
                self.policy_name_index.insert(policy.to_string(), name);
                name
            }
        }
    }

    /// Resolves policies and puts the models in id order. A model whose entry, policy
    /// reference or routing cannot be used, or that is listed twice, gets the policy at
    /// `unusable` (which denies).
    fn finish(
        mut self,
        policies: &[CompiledPolicy],
        policy_ids: &[String],
        unusable: usize,
        warnings: &mut Vec<ConfigError>,
    ) -> Vec<CompiledModel> {
        warnings.append(&mut self.warnings);
        let resolved: Vec<Option<usize>> = self
            .policy_names
            .iter()
            .map(|name| policy_ids.binary_search(name).ok())
            .collect();
        for (model, name) in self.models.iter_mut().zip(&self.policy_of) {
            let field = || format!("models[{:?}]", model.id);
            model.policy = if *name == UNUSABLE_ENTRY {
                unusable
            } else if let Some(policy) = resolved[*name as usize] {
                policy
            } else {
                warnings.push(ConfigError::new(
                    format!("{}.policy", field()),
                    format!(
                        "no policy {:?} (the model is denied)",
                        self.policy_names[*name as usize]
                    ),
                ));
                unusable
            };
            // Its own routing header must be the filter's to write.
            if let (Some(routing), Some(CompiledPolicy::Jwt(jwt))) =
                (&model.routing, policies.get(model.policy))
                && jwt.uses_header(&routing.header)
            {
                warnings.push(ConfigError::new(
                    format!("{}.routing.header", field()),
                    format!(
                        "{:?} is also a token source or forwarded claim of its policy (the model is denied)",
                        routing.header
                    ),
                ));
                model.policy = unusable;
            }
        }
        self.models.sort_by(|a, b| a.id.cmp(&b.id));
        // A model listed twice is ambiguous: one entry kept, denied.
        let mut i = 1;
        while i < self.models.len() {
            if self.models[i].id == self.models[i - 1].id {
                warnings.push(ConfigError::new(
                    format!("models[{:?}]", self.models[i].id),
                    "listed twice (the model is denied)",
                ));
                self.models[i - 1].policy = unusable;
                self.models.remove(i);
            } else {
                i += 1;
            }
        }
        for (i, model) in self.models.iter_mut().enumerate() {
            model.index = i;
        }
        self.models.shrink_to_fit();
        self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str) -> Result<(CompiledConfig, Vec<ConfigError>), ConfigError> {
        CompiledConfig::from_json(json.as_bytes())
    }

    /// Whether the model may serve at all (found, and its policy usable).
    fn serves(config: &CompiledConfig, id: &str) -> Option<bool> {
        let (ns, name) = id.split_once('/').unwrap();
        let model = &config.models[config.model(ns, name)?];
        Some(config.unusable(model).is_none())
    }

    #[test]
    fn a_bad_entry_is_named_and_denies_only_its_models() {
        let cases = [
            (
                r#"{"version":1,"models":{"ns/m":{"policy":"x"}}}"#,
                r#"models["ns/m"].policy"#,
            ),
            (
                r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"NS/m":{"policy":"o"}}}"#,
                r#"models["NS/m"]"#,
            ),
            (
                r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"m":{"policy":"o"}}}"#,
                r#"models["m"]"#,
            ),
            (
                r#"{"version":1,"policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k"}}}"#,
                r#"policies["p"].keySet"#,
            ),
            (
                r#"{"version":1,"keySets":{"k":{"keys":[]}},"policies":{"p":{"auth":"jwt","issuer":"","keySet":"k"}}}"#,
                r#"policies["p"].issuer"#,
            ),
            (
                r#"{"version":1,"keySets":{"k":{"keys":[]}},"policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k","tokenFrom":["header:authorization","cookie:x"]}}}"#,
                r#"policies["p"].tokenFrom[1]"#,
            ),
            (
                r#"{"version":1,"keySets":{"k":{"keys":[]}},"policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k","claims":{"group":[]}}}}"#,
                r#"policies["p"].claims["group"]"#,
            ),
            (
                r#"{"version":1,"keySets":{"k":{"keys":[]}},"policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k","forwardClaims":{"sub":":path"}}}}"#,
                r#"policies["p"].forwardClaims["sub"]"#,
            ),
            (
                r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"ns/m":{"policy":"o","routing":{"predictors":[{"name":"a","traffic":0}]}}}}"#,
                r#"models["ns/m"].routing.predictors"#,
            ),
            (
                r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"ns/m":{"policy":"o","routing":{"header":"X Y","predictors":[{"name":"a","traffic":1}]}}}}"#,
                r#"models["ns/m"].routing.header"#,
            ),
        ];
        for (json, field) in cases {
            // Beside the bad entry, a model that is fine: it must not notice.
            let json = json.replacen(
                r#""models":{"#,
                r#""models":{"ok/fine":{"policy":"open"},"#,
                1,
            );
            let json = if json.contains(r#""policies":{"#) {
                json.replacen(
                    r#""policies":{"#,
                    r#""policies":{"open":{"auth":"none"},"#,
                    1,
                )
            } else {
                json.replacen(
                    r#""version":1,"#,
                    r#""version":1,"policies":{"open":{"auth":"none"}},"#,
                    1,
                )
            };
            let (config, warnings) = compile(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert!(
                warnings.iter().any(|w| w.field == field),
                "{json}: {warnings:?}"
            );
            if json.contains(r#""ok/fine""#) {
                assert_eq!(serves(&config, "ok/fine"), Some(true), "{json}");
            }
            // Every model that names the bad entry is denied, never let through.
            for model in &config.models {
                if &*model.id != "ok/fine" {
                    assert!(config.unusable(model).is_some(), "{json}: {}", model.id);
                }
            }
        }
    }

    #[test]
    fn the_readme_example_compiles() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```json\n").unwrap() + 8;
        let end = start + readme[start..].find("```").unwrap();
        let n = modelgate_testkit::TestKey::rsa_a().jwk()["n"].clone();
        let example = readme[start..end].replace("\"n\": \"…\"", &format!("\"n\": {n}"));
        let (config, warnings) = compile(&example).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.models.len(), 3);
        let fraud = &config.models[config.model("prod", "fraud").unwrap()];
        assert!(!fraud.routing.as_ref().unwrap().predictors.is_empty());
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = compile(r#"{"version":1,"policies":{"p":{"auth":"jwt"}"#).unwrap_err();
        assert!(err.field.starts_with("pluginConfig (line 1"), "{err}");
        assert!(compile("").is_err());
        assert!(compile("[]").is_err());
        // Inside one policy, the error is that policy's, named with its message.
        let (_, warnings) = compile(r#"{"version":1,"policies":{"p":{"auth":"maybe"}}}"#).unwrap();
        assert_eq!(warnings[0].field, r#"policies["p"]"#);
        assert!(warnings[0].message.contains("maybe"), "{warnings:?}");
    }

    #[test]
    fn a_key_set_too_deep_to_read_breaks_only_its_own_policies() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let json = format!(
            r#"{{"version":1,"keySets":{{"bad":{{"keys":[{{"kty":"RSA","x":{deep}}}]}},"good":{{"keys":[]}}}},
                "policies":{{"b":{{"auth":"jwt","issuer":"i","keySet":"bad"}},"o":{{"auth":"none"}}}},
                "models":{{"t/evil":{{"policy":"b"}},"v/fine":{{"policy":"o"}}}}}}"#
        );
        let (config, warnings) = compile(&json).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.field.starts_with(r#"keySets["bad"]"#)),
            "{warnings:?}"
        );
        assert_eq!(serves(&config, "t/evil"), Some(false));
        assert_eq!(serves(&config, "v/fine"), Some(true));
        // So deep a model entry, likewise.
        let json = format!(
            r#"{{"version":1,"policies":{{"o":{{"auth":"none"}}}},
                "models":{{"t/evil":{{"policy":"o","routing":{deep}}},"v/fine":{{"policy":"o"}}}}}}"#
        );
        let (config, _) = compile(&json).unwrap();
        assert_eq!(serves(&config, "t/evil"), Some(false));
        assert_eq!(serves(&config, "v/fine"), Some(true));
    }

    #[test]
    fn headers_that_steer_routing_are_never_a_policys_to_write() {
        for (forward, field) in [
            ("seldon", r#"forwardClaims["m"]"#),
            ("namespace", r#"forwardClaims["m"]"#),
            ("x-seldon-predictor", r#"forwardClaims["m"]"#),
            ("x-envoy-retry-on", r#"forwardClaims["m"]"#),
            ("x-modelgate-route", r#"forwardClaims["m"]"#),
            ("host", r#"forwardClaims["m"]"#),
            ("authorization", r#"forwardClaims["m"]"#),
        ] {
            let json = format!(
                r#"{{"version":1,"keySets":{{"k":{{"keys":[]}}}},
                    "policies":{{"p":{{"auth":"jwt","issuer":"i","keySet":"k","forwardClaims":{{"m":"{forward}"}}}}}},
                    "models":{{"t/evil":{{"policy":"p"}}}}}}"#
            );
            let (config, warnings) = compile(&json).unwrap();
            assert!(
                warnings
                    .iter()
                    .any(|w| w.field == format!(r#"policies["p"].{field}"#)),
                "{forward}: {warnings:?}"
            );
            assert!(
                matches!(config.policies[0], CompiledPolicy::Deny(_)),
                "{forward}"
            );
        }
        for (routing, token) in [("namespace", "authorization"), ("x-variant", "seldon")] {
            let json = format!(
                r#"{{"version":1,"keySets":{{"k":{{"keys":[]}}}},
                    "policies":{{"p":{{"auth":"jwt","issuer":"i","keySet":"k","tokenFrom":["header:{token}"]}}}},
                    "models":{{"t/evil":{{"policy":"p","routing":{{"header":"{routing}","predictors":[{{"name":"a","traffic":1}}]}}}}}}}}"#
            );
            let (config, warnings) = compile(&json).unwrap();
            assert_eq!(
                serves(&config, "t/evil"),
                Some(false),
                "{routing} {token}: {warnings:?}"
            );
        }
        // A model routing on the header its own policy forwards a claim into is denied.
        let json = r#"{"version":1,"keySets":{"k":{"keys":[]}},
            "policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k","forwardClaims":{"v":"x-variant"}}},
            "models":{"t/m":{"policy":"p","routing":{"header":"x-variant","predictors":[{"name":"a","traffic":1}]}}}}"#;
        let (_, warnings) = compile(json).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.field == r#"models["t/m"].routing.header"#),
            "{warnings:?}"
        );
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_warning_not_a_refusal() {
        let (config, warnings) = compile(
            r#"{"version":1,"keySets":{"k":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}},
                "policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k"}},
                "models":{"ns/m":{"policy":"p"}}}"#,
        )
        .unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].message.contains("HMAC"), "{warnings:?}");
        match &config.policies[0] {
            CompiledPolicy::Jwt(jwt) => assert!(jwt.keys.is_empty()),
            other => panic!("{other:?}"),
        }
        assert_eq!(config.model("ns", "m"), Some(0));
        assert_eq!(config.model("ns", "x"), None);
    }

    #[test]
    fn field_order_does_not_matter_and_models_are_found_by_id() {
        // Alphabetical, as a pluginConfig comes back from YAML: models before policies.
        let (config, _) = compile(
            r#"{"models":{"b/z":{"policy":"o"},"a/m":{"policy":"d"},"b/a":{"policy":"o",
                "routing":{"predictors":[{"name":"x","traffic":1},{"name":"y","traffic":3}]}}},
                "policies":{"d":{"auth":"deny","reason":"r"},"o":{"auth":"none"}},"version":1}"#,
        )
        .unwrap();
        let ids: Vec<&str> = config.models.iter().map(|m| &*m.id).collect();
        assert_eq!(ids, ["a/m", "b/a", "b/z"]);
        for (i, model) in config.models.iter().enumerate() {
            assert_eq!(model.index, i);
            let (ns, name) = model.id.split_once('/').unwrap();
            assert_eq!(config.model(ns, name), Some(i));
        }
        assert_eq!(config.policy_ids[config.models[0].policy], "d");
        assert_eq!(config.policy_ids[config.models[2].policy], "o");
        assert!(config.models[1].routing.is_some());
        assert_eq!(config.models[0].prometheus_path(), "/seldon/a/m/prometheus");
        for (ns, name) in [("a", "n"), ("b", "b"), ("", "a/m"), ("a/m", ""), ("c", "a")] {
            assert_eq!(config.model(ns, name), None, "{ns}/{name}");
        }
    }

    #[test]
    fn model_ids_compare_as_the_whole_id_would() {
        // Namespaces that are prefixes of each other, and bytes on both sides of `/`.
        let parts = ["", "a", "a-b", "a.b", "a0", "ab", "a/b", "b", "\u{e9}"];
        for id in parts
            .iter()
            .flat_map(|ns| parts.map(|n| format!("{ns}/{n}")))
        {
            for namespace in parts {
                for name in parts {
                    let wanted = format!("{namespace}/{name}");
                    assert_eq!(
                        id_order(&id, namespace, name),
                        id.as_str().cmp(wanted.as_str()),
                        "{id} against {wanted}"
                    );
                }
            }
        }
        for short in ["", "a", "a-", "a/"] {
            assert_eq!(id_order(short, "a", "b"), short.cmp("a/b"), "{short}");
        }
    }

    #[test]
    fn streaming_and_whole_document_compilation_agree() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```json\n").unwrap() + 8;
        let end = start + readme[start..].find("```").unwrap();
        let n = modelgate_testkit::TestKey::rsa_a().jwk()["n"].clone();
        let example = readme[start..end].replace("\"n\": \"…\"", &format!("\"n\": {n}"));
        let (streamed, _) = compile(&example).unwrap();
        let document: FilterConfig = serde_json::from_str(&example).unwrap();
        let (whole, _) = CompiledConfig::compile(&document).unwrap();
        // (Policies hold hash sets, whose Debug order varies: compared by their ids.)
        assert_eq!(
            format!("{:?}", streamed.models),
            format!("{:?}", whole.models)
        );
        assert_eq!(streamed.policy_ids, whole.policy_ids);
    }

    #[test]
    fn documents_the_contract_refuses_are_refused() {
        let cases = [
            (r#"{"policies":{}}"#, "version"),
            (r#"{"version":1,"version":1}"#, "duplicate"),
            (r#"{"version":1,"modles":{}}"#, "modles"),
            (r#"{"version":2}"#, "version"),
            (r#"{"version":1} x"#, "trailing"),
        ];
        for (json, needle) in cases {
            let err = compile(json).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
        let (twice, warnings) = compile(
            r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"a/m":{"policy":"o"},"a/m":{"policy":"o"}}}"#,
        )
        .unwrap();
        assert_eq!(warnings[0].field, r#"models["a/m"]"#, "{warnings:?}");
        assert_eq!(serves(&twice, "a/m"), Some(false));
        // The version is judged first, wherever it is and whatever else is wrong.
        let err = compile(r#"{"models":{"A/m":{"policy":"o"}},"version":2}"#).unwrap_err();
        assert_eq!(err.field, "version", "{err}");
        let err = compile(r#"{"version":2,"models":{"A/m":{"policy":"o"}}}"#).unwrap_err();
        assert_eq!(err.field, "version");
        let err = CompiledConfig::compile(
            &serde_json::from_str(r#"{"version":2,"models":{"A/m":{"policy":"o"}}}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.field, "version");
    }

    #[test]
    fn rsa_keys_up_to_8192_bits_only_when_the_document_allows_them() {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xffu8; 1024]);
        let doc = |limits: &str| {
            format!(
                r#"{{"version":1,{limits}"keySets":{{"k":{{"keys":[{{"kty":"RSA","n":"{n}","e":"AQAB"}}]}}}},
                    "policies":{{"p":{{"auth":"jwt","issuer":"i","keySet":"k"}}}},
                    "models":{{"ns/m":{{"policy":"p"}}}}}}"#
            )
        };
        let (config, warnings) = compile(&doc("")).unwrap();
        assert_eq!(serves(&config, "ns/m"), Some(false), "{warnings:?}");
        assert!(warnings[0].message.contains("at most 4096"), "{warnings:?}");
        let (config, warnings) = compile(&doc(r#""limits":{"maxRsaBits":8192},"#)).unwrap();
        assert_eq!(serves(&config, "ns/m"), Some(true), "{warnings:?}");
        for bad in ["1024", "16384"] {
            let err = compile(&doc(&format!(r#""limits":{{"maxRsaBits":{bad}}},"#))).unwrap_err();
            assert_eq!(err.field, "limits.maxRsaBits", "{err}");
        }
    }
}
