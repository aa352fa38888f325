//! Builds the filter configuration (the WasmPlugin's `pluginConfig`) from every model, with
//! the filter's own types. Identical key sets and policies are stored once under an id
//! derived from their content, so thousands of models sharing an issuer cost one policy,
//! and the ids stay the same from one generation to the next.

use std::collections::BTreeMap;

use modelgate_core::config::{FilterConfig, JwtPolicy, KeySet, Model, Policy, Predictor, Routing};
use sha2::{Digest, Sha256};

use crate::annotations::{AuthOptions, KeySource, ModelOptions};
use crate::seldon::SeldonDeployment;

/// A model's policy before its keys are looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// No authentication.
    None,
    /// JWT, with where the keys come from.
    Jwt(Box<JwtPolicy>, KeySource),
    /// Every request refused, with the reason (for logs).
    Deny(String),
}

/// What the filter needs to know about one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// Its policy.
    pub policy: PolicySpec,
    /// A/B routing, for models with several predictors that take traffic.
    pub routing: Option<Routing>,
}

impl ModelEntry {
    /// The entry of a model that never had a valid configuration: denied.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            policy: PolicySpec::Deny(reason.into()),
            routing: None,
        }
    }

    /// The entry for a SeldonDeployment whose annotations parsed.
    pub fn new(sdep: &SeldonDeployment, options: &ModelOptions) -> Self {
        let policy = match &options.auth {
            AuthOptions::None => PolicySpec::None,
            AuthOptions::Jwt(policy, keys) => PolicySpec::Jwt(policy.clone(), keys.clone()),
        };
        let serving: Vec<Predictor> = sdep
            .serving_predictors()
            .map(|p| Predictor {
                name: p.name.clone(),
                traffic: p.traffic.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
            })
            .collect();
        let routing = (serving.len() > 1).then(|| Routing {
            header: options.routing.header.clone(),
            override_allowed: options.routing.override_allowed,
            sticky: options.routing.sticky.clone(),
            predictors: serving,
        });
        Self { policy, routing }
    }

    /// The JWKS URI the entry needs fetched, if any.
    pub fn jwks_uri(&self) -> Option<&str> {
        match &self.policy {
            PolicySpec::Jwt(_, KeySource::Uri(uri)) => Some(uri),
            _ => None,
        }
    }
}

/// Builds the filter configuration of every model. `jwks` holds the keys fetched for
/// each JWKS URI; a URI not fetched yet gets an empty key set, so its models are denied
/// (`401`) until the keys arrive, never let through.
pub fn build(
    models: &BTreeMap<String, ModelEntry>,
    jwks: &BTreeMap<String, KeySet>,
) -> FilterConfig {
    let mut config = FilterConfig::new();
    for (id, entry) in models {
        let policy = match &entry.policy {
            PolicySpec::None => Policy::None,
            PolicySpec::Deny(reason) => Policy::Deny {
                reason: reason.clone(),
            },
            PolicySpec::Jwt(jwt, source) => {
                // The source is part of the content, so two models' identical inline sets
                // stay apart, and a restarted controller reuses live keys only for the URI
                // they came from.
                let (keys, from) = match source {
                    // A source on inline keys is one this controller wrote (keys it
                    // recovered from the cluster); annotations never carry one.
                    KeySource::Inline(set) => (
                        set.clone(),
                        set.source.clone().unwrap_or_else(|| format!("inline:{id}")),
                    ),
                    KeySource::Uri(uri) => {
                        (jwks.get(uri).cloned().unwrap_or_default(), uri.clone())
                    }
                };
                let keys = KeySet {
                    source: Some(from),
                    ..keys
                };
                let key_set = insert_shared(&mut config.key_sets, "k", keys);
                let mut jwt = (**jwt).clone();
                jwt.key_set = key_set;
                Policy::Jwt(jwt)
            }
        };
        let policy = insert_shared(&mut config.policies, "p", policy);
        config.models.insert(
            id.clone(),
            Model {
                policy,
                routing: entry.routing.clone(),
            },
        );
    }
    config
}

/// Stores a value under an id made of a prefix and the start of its content's SHA-256,
/// lengthened in the unlikely case that another value already has that id.
fn insert_shared<T: serde::Serialize + PartialEq>(
    map: &mut BTreeMap<String, T>,
    prefix: &str,
    value: T,
) -> String {
    // serde_json of these types is deterministic: structs in field order, maps sorted.
    let json = serde_json::to_vec(&value).unwrap_or_default();
    let hex: String = Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for len in [12, 24, 64] {
        let id = format!("{prefix}{}", &hex[..len]);
        match map.get(&id) {
            Some(existing) if *existing == value => return id,
            Some(_) => continue,
            None => {
                map.insert(id.clone(), value);
                return id;
            }
        }
    }
    // Two different values with the same SHA-256: not a case worth an error type.
    let id = format!("{prefix}{hex}-{}", map.len());
    map.insert(id.clone(), value);
    id
}

#[cfg(test)]
mod tests {
    use modelgate_core::config::AuthMode;

    use super::*;

    fn jwt(issuer: &str, uri: &str) -> ModelEntry {
        ModelEntry {
            policy: PolicySpec::Jwt(
                Box::new(JwtPolicy {
                    mode: AuthMode::Enforce,
                    issuer: issuer.into(),
                    audiences: vec![],
                    key_set: String::new(),
                    claims: BTreeMap::new(),
                    token_from: vec![],
                    forward_claims: BTreeMap::new(),
                    forward_token: true,
                }),
                KeySource::Uri(uri.into()),
            ),
            routing: None,
        }
    }

    #[test]
    fn identical_policies_and_key_sets_are_stored_once() {
        let mut models = BTreeMap::new();
        for i in 0..50 {
            models.insert(format!("ns/m{i}"), jwt("https://a", "https://a/jwks"));
        }
        models.insert("ns/b".into(), jwt("https://b", "https://a/jwks"));
        models.insert(
            "ns/open".into(),
            ModelEntry {
                policy: PolicySpec::None,
                routing: None,
            },
        );
        let jwks = BTreeMap::from([(
            "https://a/jwks".to_string(),
            KeySet {
                source: None,
                keys: vec![serde_json::json!({"kty": "oct"})],
            },
        )]);
        let config = build(&models, &jwks);
        assert_eq!(config.key_sets.len(), 1);
        assert_eq!(config.policies.len(), 3);
        assert_eq!(config.models.len(), 52);
        assert_eq!(
            config.models["ns/m0"].policy,
            config.models["ns/m49"].policy
        );
        assert_ne!(config.models["ns/m0"].policy, config.models["ns/b"].policy);
        // Same input, same ids.
        assert_eq!(build(&models, &jwks), config);
    }

    #[test]
    fn keys_not_fetched_yet_give_an_empty_key_set() {
        let models = BTreeMap::from([("ns/m".to_string(), jwt("https://a", "https://a/jwks"))]);
        let config = build(&models, &BTreeMap::new());
        let set = config.key_sets.values().next().unwrap();
        assert!(set.keys.is_empty());
        let (compiled, warnings) = modelgate_core::CompiledConfig::compile(&config).unwrap();
        assert_eq!(compiled.models.len(), 1);
        assert!(
            warnings.iter().any(|w| w.contains("no usable key")),
            "{warnings:?}"
        );
    }
}
