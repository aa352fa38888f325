//! The configuration compiled for requests: validated once in `on_configure`, then only
//! looked up. A configuration with a bad field is refused whole (Envoy keeps the previous
//! one); a key an issuer publishes but this filter cannot use is skipped with a warning, and
//! a policy left without keys denies its requests (fail closed).

use std::collections::HashMap;
use std::rc::Rc;

use crate::claims::{ClaimPath, ClaimRule};
use crate::config::{AuthMode, CONFIG_VERSION, DEFAULT_TOKEN_SOURCE, FilterConfig, Policy};
use crate::keys::{VerifyingKey, compile_key};
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
    pub id: String,
    /// Index of its policy in [`CompiledConfig::policies`].
    pub policy: usize,
    /// A/B routing, when it has several non-shadow predictors.
    pub routing: Option<CompiledRouting>,
    /// `/seldon/<ns>/<name>/prometheus`, the model's exempt path.
    pub prometheus_path: String,
}

/// The whole configuration, ready for requests.
#[derive(Debug)]
pub struct CompiledConfig {
    /// Models in id order.
    pub models: Vec<CompiledModel>,
    /// Policies in id order.
    pub policies: Vec<CompiledPolicy>,
    /// Policy ids, parallel to `policies` (for logs).
    pub policy_ids: Vec<String>,
    by_name: HashMap<String, HashMap<String, usize>>,
}

impl CompiledConfig {
    /// Parses and compiles a `pluginConfig` document. Warnings (skipped keys) are returned
    /// alongside; errors refuse the whole document.
    pub fn from_json(bytes: &[u8]) -> Result<(Self, Vec<String>), ConfigError> {
        let config: FilterConfig =
            serde_json::from_slice(bytes).map_err(|e| error(json_error_path(&e), e.to_string()))?;
        Self::compile(&config)
    }

    /// Validates and compiles a configuration.
    pub fn compile(config: &FilterConfig) -> Result<(Self, Vec<String>), ConfigError> {
        crate::crypto::install();
        if config.version != CONFIG_VERSION {
            return Err(error(
                "version",
                format!(
                    "{} is not supported (this filter reads version {CONFIG_VERSION})",
                    config.version
                ),
            ));
        }
        let mut warnings = Vec::new();
        let mut key_sets: HashMap<&str, Rc<Vec<VerifyingKey>>> = HashMap::new();
        for (id, set) in &config.key_sets {
            let mut keys = Vec::new();
            for (i, raw) in set.keys.iter().enumerate() {
                match compile_key(raw) {
                    Ok(key) => keys.push(key),
                    Err(why) => warnings.push(format!("keySets[{id:?}].keys[{i}] skipped: {why}")),
                }
            }
            if keys.is_empty() {
                warnings.push(format!(
                    "keySets[{id:?}] has no usable key: its policies deny every request"
                ));
            }
            key_sets.insert(id.as_str(), Rc::new(keys));
        }

        let mut policy_index = HashMap::new();
        let mut policies = Vec::new();
        let mut policy_ids = Vec::new();
        for (id, policy) in &config.policies {
            let field = format!("policies[{id:?}]");
            let compiled = match policy {
                Policy::None => CompiledPolicy::None,
                Policy::Deny { reason } => CompiledPolicy::Deny(reason.clone()),
                Policy::Jwt(jwt) => {
                    if jwt.issuer.is_empty() {
                        return Err(error(format!("{field}.issuer"), "must not be empty"));
                    }
                    let keys = key_sets.get(jwt.key_set.as_str()).cloned().ok_or_else(|| {
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
                        let source = TokenSource::parse(text)
                            .map_err(|e| error(format!("{field}.tokenFrom[{i}]"), e))?;
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
                    CompiledPolicy::Jwt(Box::new(CompiledJwt {
                        mode: jwt.mode,
                        issuer: jwt.issuer.clone(),
                        keys,
                        validation: validation_for(&jwt.issuer, &jwt.audiences),
                        claims,
                        sources,
                        forward_claims,
                        forward_token: jwt.forward_token,
                    }))
                }
            };
            policy_index.insert(id.as_str(), policies.len());
            policies.push(compiled);
            policy_ids.push(id.clone());
        }

        let mut models = Vec::new();
        let mut by_name: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for (id, model) in &config.models {
            let field = format!("models[{id:?}]");
            let (namespace, name) = id
                .split_once('/')
                .filter(|(ns, n)| is_dns_name(ns) && is_dns_name(n))
                .ok_or_else(|| {
                    error(
                        &field,
                        "the key must be <namespace>/<name> in lowercase DNS form",
                    )
                })?;
            let policy = *policy_index.get(model.policy.as_str()).ok_or_else(|| {
                error(
                    format!("{field}.policy"),
                    format!("no policy {:?}", model.policy),
                )
            })?;
            let routing = match &model.routing {
                None => None,
                Some(r) => Some(
                    CompiledRouting::compile(r)
                        .map_err(|(f, m)| error(format!("{field}.routing.{f}"), m))?,
                ),
            };
            by_name
                .entry(namespace.to_string())
                .or_default()
                .insert(name.to_string(), models.len());
            models.push(CompiledModel {
                index: models.len(),
                id: id.clone(),
                policy,
                routing,
                prometheus_path: format!("/seldon/{namespace}/{name}/prometheus"),
            });
        }
        Ok((
            Self {
                models,
                policies,
                policy_ids,
                by_name,
            },
            warnings,
        ))
    }

    /// The model with this namespace and name.
    pub fn model(&self, namespace: &str, name: &str) -> Option<usize> {
        self.by_name.get(namespace)?.get(name).copied()
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
}
