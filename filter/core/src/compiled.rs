//! The configuration compiled for requests: validated once in `on_configure`, then only
//! looked up. A configuration with a bad field is refused whole (Envoy keeps the previous
//! one); a key an issuer publishes but this filter cannot use is skipped with a warning, and
//! a policy left without keys denies its requests (fail closed).
//!
//! A VM's linear memory never shrinks, so the peak of `on_configure` stays for the life of
//! the VM: [`CompiledConfig::from_json`] compiles each model as the parser reaches it,
//! never holding the whole document as contract types next to the compiled form, and the
//! compiled models are kept compact (one string per model, routing boxed).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::claims::{ClaimPath, ClaimRule};
use crate::config::{
    AuthMode, CONFIG_VERSION, DEFAULT_TOKEN_SOURCE, FilterConfig, JwtPolicy, KeySet, Model, Policy,
};
use crate::keys::{VerifyingKey, compile_key, select_usable};
use crate::routing::CompiledRouting;
use crate::token::{PolicyValidation, TokenSource, is_header_name, validation_for};

/// A configuration error: the path of the bad field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// JSON path of the field, such as `policies["p"].tokenFrom[1]`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
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
    pub keys: Rc<Vec<VerifyingKey>>,
    /// Signature, issuer and audience validation.
    pub validation: PolicyValidation,
    /// Required claims.
    pub claims: Vec<ClaimRule>,
    /// Where tokens are looked for.
    pub sources: Vec<TokenSource>,
    /// Claims copied into upstream headers.
    pub forward_claims: Vec<(ClaimPath, String)>,
    /// Whether the token goes on to the model.
    pub forward_token: bool,
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
    /// Policies in id order.
    pub policies: Vec<CompiledPolicy>,
    /// Policy ids, parallel to `policies` (for logs).
    pub policy_ids: Vec<String>,
}

impl CompiledConfig {
    /// Parses and compiles a `pluginConfig` document. Warnings (skipped keys) are returned
    /// alongside; errors refuse the whole document. Models are compiled as they are parsed,
    /// whatever the order of the document's fields.
    pub fn from_json(bytes: &[u8]) -> Result<(Self, Vec<String>), ConfigError> {
        let mut loader = Loader::default();
        // Every model names its policy once: sizing the table up front spares the peak of
        // growing it (a copy of the table while it moves) in memory that never shrinks.
        let expected_models = bytes.windows(9).filter(|w| w == b"\"policy\":").count();
        loader.models.models.reserve_exact(expected_models);
        loader.models.policy_of.reserve_exact(expected_models);
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let parsed = (&mut loader)
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
        match parsed {
            Ok(()) => loader.finish(),
            // A bad model stops the parser; it is reported as itself, after the version.
            Err(e) => Err(loader
                .version_error()
                .or_else(|| loader.models.error.take())
                .unwrap_or_else(|| error(json_error_path(&e), e.to_string()))),
        }
    }

    /// Validates and compiles a configuration.
    pub fn compile(config: &FilterConfig) -> Result<(Self, Vec<String>), ConfigError> {
        let mut models = ModelTable::default();
        for (id, model) in &config.models {
            models.add(id.clone(), model);
        }
        Loader {
            version: Some(config.version),
            key_sets: config.key_sets.clone(),
            policies: config.policies.clone(),
            models,
        }
        .finish()
    }

    /// The model with this namespace and name.
    pub fn model(&self, namespace: &str, name: &str) -> Option<usize> {
        self.models
            .binary_search_by(|m| id_order(&m.id, namespace, name))
            .ok()
    }
}

/// How a model id compares with `<namespace>/<name>`, without building that string.
fn id_order(id: &str, namespace: &str, name: &str) -> std::cmp::Ordering {
    let wanted = namespace.bytes().chain(*b"/").chain(name.bytes());
    id.bytes().cmp(wanted)
}

/// Key sets and policies, compiled (they are few: shared by many models). Each step is a
/// function of its own (`inline(never)`): V8 compiles every function of the module when
/// Envoy loads it, with memory that grows faster than the function, and that memory stays
/// with the allocator afterwards.
#[inline(never)]
fn compile_policies(
    key_sets: &BTreeMap<String, KeySet>,
    policies: &BTreeMap<String, Policy>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<CompiledPolicy>, Vec<String>), ConfigError> {
    let compiled_sets = compile_key_sets(key_sets, warnings);
    let mut compiled = Vec::with_capacity(policies.len());
    let mut ids = Vec::with_capacity(policies.len());
    for (id, policy) in policies {
        let field = format!("policies[{id:?}]");
        compiled.push(match policy {
            Policy::None => CompiledPolicy::None,
            Policy::Deny { reason } => CompiledPolicy::Deny(reason.clone()),
            Policy::Jwt(jwt) => {
                CompiledPolicy::Jwt(Box::new(compile_jwt(&field, jwt, &compiled_sets)?))
            }
        });
        ids.push(id.clone());
    }
    Ok((compiled, ids))
}

#[inline(never)]
fn compile_key_sets<'a>(
    key_sets: &'a BTreeMap<String, KeySet>,
    warnings: &mut Vec<String>,
) -> HashMap<&'a str, Rc<Vec<VerifyingKey>>> {
    let mut compiled_sets = HashMap::new();
    for (id, set) in key_sets {
        let mut keys = Vec::new();
        for (i, raw) in set.keys.iter().enumerate() {
            match compile_key(raw) {
                Ok(key) => keys.push(key),
                Err(why) => warnings.push(format!("keySets[{id:?}].keys[{i}] skipped: {why}")),
            }
        }
        let keys = select_usable(id, keys, warnings);
        if keys.is_empty() {
            warnings.push(format!(
                "keySets[{id:?}] has no usable key: its policies deny every request"
            ));
        }
        compiled_sets.insert(id.as_str(), Rc::new(keys));
    }
    compiled_sets
}

#[inline(never)]
fn compile_jwt(
    field: &str,
    jwt: &JwtPolicy,
    compiled_sets: &HashMap<&str, Rc<Vec<VerifyingKey>>>,
) -> Result<CompiledJwt, ConfigError> {
    if jwt.issuer.is_empty() {
        return Err(error(format!("{field}.issuer"), "must not be empty"));
    }
    let keys = compiled_sets
        .get(jwt.key_set.as_str())
        .cloned()
        .ok_or_else(|| {
            error(
                format!("{field}.keySet"),
                format!("no key set {:?}", jwt.key_set),
            )
        })?;
    let mut claims = Vec::new();
    for (name, values) in &jwt.claims {
        let at = format!("{field}.claims[{name:?}]");
        let claim = ClaimPath::parse(name).map_err(|e| error(&at, e))?;
        if values.is_empty() {
            return Err(error(at, "lists no accepted value"));
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
        let source =
            TokenSource::parse(text).map_err(|e| error(format!("{field}.tokenFrom[{i}]"), e))?;
        if sources.contains(&source) {
            return Err(error(format!("{field}.tokenFrom[{i}]"), "listed twice"));
        }
        sources.push(source);
    }
    let mut forward_claims = Vec::new();
    for (name, header) in &jwt.forward_claims {
        let at = format!("{field}.forwardClaims[{name:?}]");
        let claim = ClaimPath::parse(name).map_err(|e| error(&at, e))?;
        if !is_header_name(header) {
            return Err(error(at, format!("{header:?} is not a header name")));
        }
        forward_claims.push((claim, header.to_ascii_lowercase()));
    }
    Ok(CompiledJwt {
        mode: jwt.mode,
        issuer: jwt.issuer.clone(),
        keys,
        validation: validation_for(&jwt.issuer, &jwt.audiences),
        claims,
        sources,
        forward_claims,
        forward_token: jwt.forward_token,
    })
}

/// Models compiled one by one; their policies are resolved by name once all are known.
#[derive(Default)]
struct ModelTable {
    models: Vec<CompiledModel>,
    /// The policy name each model named, by index into `policy_names`.
    policy_of: Vec<u32>,
    policy_names: Vec<String>,
    policy_name_index: HashMap<String, u32>,
    /// The first bad model: parsing stops there.
    error: Option<ConfigError>,
}

impl ModelTable {
    #[inline(never)]
    fn add(&mut self, id: String, model: &Model) {
        if self.error.is_some() {
            return;
        }
        match compile_model(id, model) {
            Ok(compiled) => {
                let name = match self.policy_name_index.get(model.policy.as_str()) {
                    Some(name) => *name,
                    None => {
                        let name = self.policy_names.len() as u32;
                        self.policy_names.push(model.policy.clone());
                        self.policy_name_index.insert(model.policy.clone(), name);
                        name
                    }
                };
                self.models.push(compiled);
                self.policy_of.push(name);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Resolves policies and puts the models in id order.
    fn finish(mut self, policy_ids: &[String]) -> Result<Vec<CompiledModel>, ConfigError> {
        let resolved: Vec<Option<usize>> = self
            .policy_names
            .iter()
            .map(|name| policy_ids.binary_search(name).ok())
            .collect();
        for (model, name) in self.models.iter_mut().zip(&self.policy_of) {
            let name = *name as usize;
            model.policy = resolved[name].ok_or_else(|| {
                error(
                    format!("models[{:?}].policy", model.id),
                    format!("no policy {:?}", self.policy_names[name]),
                )
            })?;
        }
        self.models.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        if let Some(twice) = self.models.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(error(format!("models[{:?}]", twice[0].id), "listed twice"));
        }
        for (i, model) in self.models.iter_mut().enumerate() {
            model.index = i;
        }
        self.models.shrink_to_fit();
        Ok(self.models)
    }
}

/// Compiles one model, its policy left to resolve.
#[inline(never)]
fn compile_model(id: String, model: &Model) -> Result<CompiledModel, ConfigError> {
    let field = || format!("models[{id:?}]");
    id.split_once('/')
        .filter(|(ns, n)| is_dns_name(ns) && is_dns_name(n))
        .ok_or_else(|| {
            error(
                field(),
                "the key must be <namespace>/<name> in lowercase DNS form",
            )
        })?;
    let routing = match &model.routing {
        None => None,
        Some(r) => Some(Box::new(
            CompiledRouting::compile(r)
                .map_err(|(f, m)| error(format!("{}.routing.{f}", field()), m))?,
        )),
    };
    Ok(CompiledModel {
        index: 0,
        id: id.into_boxed_str(),
        policy: 0,
        routing,
    })
}

/// Reads a `pluginConfig` document field by field: key sets and policies (few) as contract
/// types, models compiled one at a time.
#[derive(Default)]
struct Loader {
    version: Option<u32>,
    key_sets: BTreeMap<String, KeySet>,
    policies: BTreeMap<String, Policy>,
    models: ModelTable,
}

impl Loader {
    fn version_error(&self) -> Option<ConfigError> {
        match self.version {
            Some(CONFIG_VERSION) | None => None,
            Some(other) => Some(error(
                "version",
                format!("{other} is not supported (this filter reads version {CONFIG_VERSION})"),
            )),
        }
    }

    #[inline(never)]
    fn finish(mut self) -> Result<(CompiledConfig, Vec<String>), ConfigError> {
        crate::crypto::install();
        if let Some(e) = self.version_error() {
            return Err(e);
        }
        let mut warnings = Vec::new();
        let (policies, policy_ids) =
            compile_policies(&self.key_sets, &self.policies, &mut warnings)?;
        if let Some(e) = self.models.error.take() {
            return Err(e);
        }
        let models = self.models.finish(&policy_ids)?;
        Ok((
            CompiledConfig {
                models,
                policies,
                policy_ids,
            },
            warnings,
        ))
    }
}

const FIELDS: &[&str] = &["version", "keySets", "policies", "models"];

impl<'de> DeserializeSeed<'de> for &mut Loader {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Loader {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct FilterConfig")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 4];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(field) = FIELDS.iter().position(|f| *f == key) else {
                return Err(de::Error::unknown_field(&key, FIELDS));
            };
            if std::mem::replace(&mut seen[field], true) {
                return Err(de::Error::duplicate_field(FIELDS[field]));
            }
            match field {
                0 => {
                    self.version = Some(map.next_value()?);
                    if self.version_error().is_some() {
                        return Err(de::Error::custom("unsupported version"));
                    }
                }
                1 => self.key_sets = next_value(&mut map)?,
                2 => self.policies = next_value(&mut map)?,
                _ => map.next_value_seed(&mut self.models)?,
            }
        }
        if self.version.is_none() {
            return Err(de::Error::missing_field("version"));
        }
        Ok(())
    }
}

/// A map value read in a function of its own (see [`compile_policies`] on why).
#[inline(never)]
fn next_value<'de, A: MapAccess<'de>, T: serde::Deserialize<'de>>(
    map: &mut A,
) -> Result<T, A::Error> {
    map.next_value()
}

impl<'de> DeserializeSeed<'de> for &mut ModelTable {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut ModelTable {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of models")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(id) = map.next_key::<String>()? {
            let model: Model = next_value(&mut map)?;
            self.add(id, &model);
            if self.error.is_some() {
                return Err(de::Error::custom("bad model"));
            }
        }
        Ok(())
    }
}

/// Kubernetes names (namespaces are DNS labels, SeldonDeployments DNS subdomains).
fn is_dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !text.starts_with(['-', '.'])
        && !text.ends_with(['-', '.'])
}

/// serde_json does not report the path of an error; its message names the field and the
/// position, so the position is the best "field" there is.
fn json_error_path(e: &serde_json::Error) -> String {
    format!("pluginConfig (line {}, column {})", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str) -> Result<(CompiledConfig, Vec<String>), ConfigError> {
        CompiledConfig::from_json(json.as_bytes())
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (r#"{"version":2}"#, "version"),
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
            let err = compile(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
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
        let err = compile(r#"{"version":1,"policies":{"p":{"auth":"maybe"}}}"#).unwrap_err();
        assert!(err.field.starts_with("pluginConfig (line 1"), "{err}");
        assert!(err.message.contains("maybe"), "{err}");
        assert!(compile("").is_err());
        assert!(compile("[]").is_err());
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
        assert!(warnings[0].contains("HMAC"));
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
            (
                r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"a/m":{"policy":"o","extra":1}}}"#,
                "extra",
            ),
            (r#"{"version":1} x"#, "trailing"),
        ];
        for (json, needle) in cases {
            let err = compile(json).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
        let twice = compile(
            r#"{"version":1,"policies":{"o":{"auth":"none"}},"models":{"a/m":{"policy":"o"},"a/m":{"policy":"o"}}}"#,
        )
        .unwrap_err();
        assert_eq!(twice.field, r#"models["a/m"]"#, "{twice}");
        // The version is judged first, wherever it is and whatever else is wrong.
        let err = compile(r#"{"models":{"A/m":{"policy":"o"}},"version":2}"#).unwrap_err();
        assert_eq!(
            err.field, r#"models["A/m"]"#,
            "a model before the version stops the parser"
        );
        let err = compile(r#"{"version":2,"models":{"A/m":{"policy":"o"}}}"#).unwrap_err();
        assert_eq!(err.field, "version");
        let err = CompiledConfig::compile(
            &serde_json::from_str(r#"{"version":2,"models":{"A/m":{"policy":"o"}}}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.field, "version");
    }
}
