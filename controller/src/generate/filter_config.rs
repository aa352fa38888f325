//! Builds the filter configuration (the WasmPlugin's `pluginConfig`) from every model, with
//! the filter's own types. Identical key sets and policies are stored once under an id
//! derived from their content, so thousands of models sharing an issuer cost one policy,
//! and the ids stay the same from one generation to the next.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use modelgate_core::auth::keys::KeyLimits;
use modelgate_core::compiled::UNUSABLE_ENTRY_POLICY;
use modelgate_core::config::{FilterConfig, KeySet, Limits, Model, Policy, Predictor, Routing};
use modelgate_core::{CompiledConfig, ConfigError};
use sha2::{Digest, Sha256};

use crate::annotations::{KeySource, ModelOptions, PolicySpec};
use crate::key_sets;
use crate::seldon::SeldonDeployment;

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
        let policy = options.policy.clone();
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
/// (`401`) until the keys arrive, never let through. Fetched keys are reduced to what the
/// filter can use ([`key_sets::reduce`]).
pub fn build(
    models: &BTreeMap<String, ModelEntry>,
    jwks: &BTreeMap<String, KeySet>,
) -> FilterConfig {
    build_from(
        models,
        &fetched_sets(jwks, Limits::default()),
        Limits::default(),
    )
}

/// The key limits the filter's compiler applies for `limits`.
pub fn key_limits(limits: Limits) -> KeyLimits {
    KeyLimits {
        max_rsa_bits: limits.max_rsa_bits as usize,
    }
}

/// The source of a key set from a model's own `seldon.io/jwt-jwks`.
pub const INLINE_SOURCE: &str = "inline";

/// Each URI's keys, reduced once, with their source.
fn fetched_sets(jwks: &BTreeMap<String, KeySet>, limits: Limits) -> BTreeMap<String, KeySet> {
    let key_limits = key_limits(limits);
    jwks.iter()
        .map(|(uri, set)| {
            let reduced = KeySet {
                source: Some(uri.clone()),
                keys: key_sets::reduce(&set.keys, &key_limits).set.keys,
            };
            (uri.clone(), reduced)
        })
        .collect()
}

/// [`build`] from reduced key sets. Every key set records its source, which is part of its
/// content: a set fetched from a URI is shared only by models naming that URI, and never
/// with inline keys, so a restarted controller can tell which live keys a URI gave.
/// Identical inline sets are shared (thousands of models often carry the same key).
fn build_from(
    models: &BTreeMap<String, ModelEntry>,
    fetched: &BTreeMap<String, KeySet>,
    limits: Limits,
) -> FilterConfig {
    let mut config = FilterConfig::new();
    config.limits = limits;
    // Ids already given, by the shared key set or policy they were given to (its address:
    // the models' entries outlive the build), or by JWKS URI: a hundred thousand models
    // sharing one policy serialise and hash it once. Same content, same id either way.
    let mut inline_ids: HashMap<usize, String> = HashMap::new();
    let mut uri_ids: HashMap<&str, String> = HashMap::new();
    let mut jwt_ids: HashMap<(usize, String), String> = HashMap::new();
    let mut none_id = None;
    for (id, entry) in models {
        let policy = match &entry.policy {
            PolicySpec::None => none_id
                .get_or_insert_with(|| insert_shared(&mut config.policies, "p", Policy::None))
                .clone(),
            PolicySpec::Deny(reason) => insert_shared(
                &mut config.policies,
                "p",
                Policy::Deny {
                    reason: reason.clone(),
                },
            ),
            PolicySpec::Jwt(jwt, source) => {
                let key_sets = &mut config.key_sets;
                let key_set = match source {
                    // A source on inline keys is one this controller wrote (keys it
                    // recovered from the cluster); annotations never carry one.
                    KeySource::Inline(set) => inline_ids
                        .entry(Arc::as_ptr(set) as usize)
                        .or_insert_with(|| {
                            let keys = KeySet {
                                source: set.source.clone().or_else(|| Some(INLINE_SOURCE.into())),
                                keys: set.keys.clone(),
                            };
                            insert_shared(key_sets, "k", keys)
                        })
                        .clone(),
                    KeySource::Uri(uri) => uri_ids
                        .entry(uri.as_str())
                        .or_insert_with(|| {
                            let keys = fetched.get(uri).cloned().unwrap_or_else(|| KeySet {
                                source: Some(uri.clone()),
                                keys: Vec::new(),
                            });
                            insert_shared(key_sets, "k", keys)
                        })
                        .clone(),
                };
                let policies = &mut config.policies;
                jwt_ids
                    .entry((Arc::as_ptr(jwt) as usize, key_set))
                    .or_insert_with_key(|(_, key_set)| {
                        let mut jwt = (**jwt).clone();
                        jwt.key_set = key_set.clone();
                        insert_shared(policies, "p", Policy::Jwt(jwt))
                    })
                    .clone()
            }
        };
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

/// What one model's entry may take of the shared configuration (its entry, policy and key
/// set, counted as if it shared nothing).
pub const MAX_MODEL_BYTES: usize = 32 * 1024;
/// What the whole configuration may take by default (setting `pluginConfigMaxBytes`): the
/// WasmPlugin must stay well under etcd's 1.5 MiB object limit.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// What admission holds the configuration to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// The most the whole configuration may take, in bytes (`pluginConfigMaxBytes`).
    pub config_bytes: usize,
    /// What keys may cost (`maxRsaBits`).
    pub limits: Limits,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            config_bytes: MAX_CONFIG_BYTES,
            limits: Limits::default(),
        }
    }
}

/// Builds the configuration and admits into it only what the filter's own compiler accepts,
/// within the budgets. A model over its budget, or whose entry the filter could not use,
/// is given its last good entry (when that one passes) or is denied; when the whole is over
/// budget, the most recently created models are denied until it fits. Returns the
/// configuration and, per model turned away, why: the error is that model's alone.
pub fn admit(
    models: &mut BTreeMap<String, ModelEntry>,
    jwks: &BTreeMap<String, KeySet>,
    last_good: &BTreeMap<String, ModelEntry>,
    newest_first: &[String],
    budgets: Budgets,
) -> (FilterConfig, BTreeMap<String, String>) {
    let Budgets {
        config_bytes: max_config_bytes,
        limits,
    } = budgets;
    let fetched = fetched_sets(jwks, limits);
    let mut refused = BTreeMap::new();
    let mut turn_away = |models: &mut BTreeMap<String, ModelEntry>, id: &str, why: String| {
        let fallback = last_good
            .get(id)
            .filter(|good| Some(*good) != models.get(id))
            .filter(|good| model_bytes(good, &fetched, &mut HashMap::new()) <= MAX_MODEL_BYTES)
            .cloned()
            .unwrap_or_else(|| ModelEntry::deny(format!("refused: {why}")));
        models.insert(id.to_string(), fallback);
        refused.entry(id.to_string()).or_insert(why);
    };
    let mut known = HashMap::new();
    let sizes: BTreeMap<String, usize> = models
        .iter()
        .map(|(id, entry)| (id.clone(), model_bytes(entry, &fetched, &mut known)))
        .collect();
    drop(known);
    for (id, bytes) in &sizes {
        if *bytes > MAX_MODEL_BYTES {
            turn_away(
                models,
                id,
                format!(
                    "its filter configuration takes {bytes} bytes, over the {MAX_MODEL_BYTES}-byte budget of a model"
                ),
            );
        }
    }
    // A model the filter would not be able to use (a last good entry included) is denied;
    // twice at most, since a fallback is either usable or a deny.
    let mut config = build_from(models, &fetched, limits);
    for _ in 0..2 {
        let unusable = unusable_models(&config, models);
        if unusable.is_empty() {
            break;
        }
        for (id, why) in unusable {
            turn_away(models, &id, format!("the filter cannot use it: {why}"));
        }
        config = build_from(models, &fetched, limits);
    }
    // Over the total, the newest models yield: as many as their own sizes say, then the
    // whole is measured again (shared policies and key sets make a model's own size an
    // estimate of what leaving saves).
    let mut newest = newest_first
        .iter()
        .filter(|id| sizes.contains_key(*id))
        .peekable();
    let mut total = config_bytes(&config);
    while total > max_config_bytes && newest.peek().is_some() {
        let mut estimate = total;
        while estimate > max_config_bytes {
            let Some(id) = newest.next() else {
                break;
            };
            if matches!(models[id].policy, PolicySpec::Deny(_)) {
                continue;
            }
            models.insert(
                id.clone(),
                ModelEntry::deny("refused: over the configuration budget"),
            );
            refused.insert(
                id.clone(),
                format!("the filter configuration of all models is over its {max_config_bytes}-byte budget (setting pluginConfigMaxBytes), and this model is among the most recent"),
            );
            estimate = estimate.saturating_sub(sizes[id]);
        }
        config = build_from(models, &fetched, limits);
        total = config_bytes(&config);
    }
    (config, refused)
}

/// The size of a model's entry, policy and key set in the configuration, as if it shared
/// none of them (ids and the document's punctuation counted generously). `known` holds
/// the sizes of policies measured already, by the addresses of their shared parts: only
/// for entries that all stay alive while it is used.
fn model_bytes(
    entry: &ModelEntry,
    fetched: &BTreeMap<String, KeySet>,
    known: &mut HashMap<(usize, usize), usize>,
) -> usize {
    const IDS_AND_PUNCTUATION: usize = 160;
    let routing = entry.routing.as_ref().map_or(0, json_len);
    let policy = match &entry.policy {
        PolicySpec::None => 0,
        PolicySpec::Deny(reason) => reason.len(),
        PolicySpec::Jwt(jwt, source) => {
            let keys = match source {
                KeySource::Inline(set) => Arc::as_ptr(set) as usize,
                KeySource::Uri(uri) => fetched
                    .get(uri)
                    .map_or(uri.as_ptr() as usize, |set| set as *const KeySet as usize),
            };
            *known
                .entry((Arc::as_ptr(jwt) as usize, keys))
                .or_insert_with(|| {
                    json_len(&**jwt)
                        + match source {
                            KeySource::Inline(set) => json_len(&**set),
                            KeySource::Uri(uri) => fetched.get(uri).map_or(uri.len(), json_len),
                        }
                })
        }
    };
    IDS_AND_PUNCTUATION + routing + policy
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX / 4, |json| json.len())
}

fn config_bytes(config: &FilterConfig) -> usize {
    json_len(config)
}

/// Models the filter's compiler would deny although the controller meant them to serve,
/// with why. A JWT model whose JWKS URI has no keys yet is not among them: it waits for
/// its keys, denied meanwhile (the fetcher reports the URI's problems).
fn unusable_models(
    config: &FilterConfig,
    models: &BTreeMap<String, ModelEntry>,
) -> Vec<(String, String)> {
    let json = serde_json::to_vec(config).expect(
        "serialising a FilterConfig is infallible: derived Serialize, string map keys only",
    );
    let (compiled, warnings) = match CompiledConfig::from_json(&json) {
        Ok(compiled) => compiled,
        // The controller builds the document from the contract's types: only a bug lands here.
        Err(e) => {
            return models
                .keys()
                .map(|id| (id.clone(), format!("configuration refused whole: {e}")))
                .collect();
        }
    };
    let by_entry = index_warnings(&warnings);
    let mut out = Vec::new();
    for (id, entry) in models {
        let expected_unusable = matches!(
            &entry.policy,
            PolicySpec::Deny(_) | PolicySpec::Jwt(_, KeySource::Uri(_))
        );
        let Some((ns, name)) = id.split_once('/') else {
            continue;
        };
        let Some(index) = compiled.model(ns, name) else {
            out.push((
                id.clone(),
                "its entry is not in the compiled configuration".into(),
            ));
            continue;
        };
        let Some(why) = compiled.unusable(&compiled.models[index]) else {
            continue;
        };
        if expected_unusable && why != UNUSABLE_ENTRY_POLICY {
            continue;
        }
        let model = &config.models[id];
        let mut related = vec![
            format!("models[{id:?}]"),
            format!("policies[{:?}]", model.policy),
        ];
        if let Some(Policy::Jwt(jwt)) = config.policies.get(&model.policy) {
            related.push(format!("keySets[{:?}]", jwt.key_set));
        }
        let details: Vec<String> = warnings_about(&warnings, &by_entry, &related)
            .map(|w| w.message.clone())
            .collect();
        out.push((
            id.clone(),
            if details.is_empty() {
                why.to_string()
            } else {
                details.join("; ")
            },
        ));
    }
    out
}

/// The warnings by the entry they are about (`models["<id>"]`, `policies["<id>"]`,
/// `keySets["<id>"]`: their field up to its first `]`): thousands of models the filter
/// cannot use must not each scan every warning.
fn index_warnings(warnings: &[ConfigError]) -> HashMap<&str, Vec<usize>> {
    let mut by_entry: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, warning) in warnings.iter().enumerate() {
        if let Some(end) = warning.field.find(']') {
            by_entry.entry(&warning.field[..=end]).or_default().push(i);
        }
    }
    by_entry
}

/// The warnings whose field starts with one of `prefixes` (each `<map>[<id>]`), in order:
/// through the index when no id holds a `]`, else by a scan.
fn warnings_about<'w>(
    warnings: &'w [ConfigError],
    by_entry: &HashMap<&str, Vec<usize>>,
    prefixes: &[String],
) -> impl Iterator<Item = &'w ConfigError> + use<'w> {
    let indexed = prefixes.iter().all(|p| p.find(']') == Some(p.len() - 1));
    let mut found: Vec<usize> = if indexed {
        prefixes
            .iter()
            .filter_map(|p| by_entry.get(p.as_str()))
            .flatten()
            .copied()
            .collect()
    } else {
        (0..warnings.len())
            .filter(|&i| {
                prefixes
                    .iter()
                    .any(|p| warnings[i].field.starts_with(p.as_str()))
            })
            .collect()
    };
    found.sort_unstable();
    found.dedup();
    found.into_iter().map(move |i| &warnings[i])
}

/// Stores a value under an id made of a prefix and the start of its content's SHA-256,
/// lengthened in the unlikely case that another value already has that id.
fn insert_shared<T: serde::Serialize + PartialEq>(
    map: &mut BTreeMap<String, T>,
    prefix: &str,
    value: T,
) -> String {
    // serde_json of these types is deterministic: structs in field order, maps sorted.
    let json = serde_json::to_vec(&value).expect(
        "serialising a key set or policy is infallible: derived Serialize, string map keys only",
    );
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
    use modelgate_core::config::{AuthMode, JwtPolicy};

    use super::*;

    fn jwt(issuer: &str, uri: &str) -> ModelEntry {
        ModelEntry {
            policy: PolicySpec::Jwt(
                Arc::new(JwtPolicy {
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
            warnings.iter().any(|w| w.message.contains("no usable key")),
            "{warnings:?}"
        );
    }

    fn open() -> ModelEntry {
        ModelEntry {
            policy: PolicySpec::None,
            routing: None,
        }
    }

    /// A JWT entry with inline keys and `values` accepted values of a claim.
    fn inline(values: usize) -> ModelEntry {
        let mut entry = jwt("https://t", "unused");
        if let PolicySpec::Jwt(policy, source) = &mut entry.policy {
            Arc::make_mut(policy).claims.insert(
                "groups".into(),
                (0..values).map(|i| format!("group-{i:06}")).collect(),
            );
            *source = KeySource::Inline(Arc::new(KeySet {
                source: None,
                keys: vec![modelgate_testkit::TestKey::ec().jwk()],
            }));
        }
        entry
    }

    #[test]
    fn a_model_over_its_budget_is_turned_away_alone() {
        let mut models = BTreeMap::from([
            ("t/big".to_string(), inline(5_000)),
            ("v/fine".to_string(), inline(3)),
            ("v/open".to_string(), open()),
        ]);
        let wanted = models.clone();
        let (config, refused) = admit(
            &mut models,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &[],
            Budgets::default(),
        );
        assert_eq!(refused.keys().collect::<Vec<_>>(), ["t/big"]);
        assert!(
            refused["t/big"].contains("budget of a model"),
            "{refused:?}"
        );
        assert!(matches!(models["t/big"].policy, PolicySpec::Deny(_)));
        assert_eq!(models["v/fine"], wanted["v/fine"]);
        assert_eq!(models["v/open"], wanted["v/open"]);
        assert_eq!(config.models.len(), 3);
        // Its last good entry, when it fits, serves instead of a deny.
        let mut models = wanted.clone();
        let last_good = BTreeMap::from([("t/big".to_string(), inline(2))]);
        admit(
            &mut models,
            &BTreeMap::new(),
            &last_good,
            &[],
            Budgets::default(),
        );
        assert_eq!(models["t/big"], inline(2));
    }

    #[test]
    fn over_the_total_budget_the_newest_models_yield() {
        // 60 models of about 25 KB: together over the budget, each within its own.
        let mut models: BTreeMap<String, ModelEntry> = (0..60)
            .map(|i| (format!("ns/m{i:02}"), inline(1_200 + i)))
            .collect();
        let newest_first: Vec<String> = (0..60).rev().map(|i| format!("ns/m{i:02}")).collect();
        let (config, refused) = admit(
            &mut models,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &newest_first,
            Budgets::default(),
        );
        assert!(config_bytes(&config) <= MAX_CONFIG_BYTES);
        assert!(!refused.is_empty());
        // Those that yielded are the newest, and the oldest all kept their policy.
        let yielded: Vec<&String> = refused.keys().collect();
        let expected: Vec<&String> = newest_first[..yielded.len()].iter().rev().collect();
        assert_eq!(yielded, expected);
        assert!(!matches!(models["ns/m00"].policy, PolicySpec::Deny(_)));
    }

    #[test]
    fn an_entrys_warnings_are_found_through_the_index_as_a_scan_finds_them() {
        let warning = |field: &str| ConfigError {
            field: field.into(),
            message: format!("about {field}"),
        };
        let warnings: Vec<ConfigError> = [
            r#"models["a/x"].routing.predictors"#,
            r#"policies["p1"].issuer"#,
            r#"models["a/y"]"#,
            r#"models["a/x"].policy"#,
            r#"keySets["k1"].keys[0].n"#,
            r#"models["a]b"].routing"#,
            "limits.maxRsaBits",
            r#"policies["p1"]"#,
        ]
        .into_iter()
        .map(warning)
        .collect();
        let by_entry = index_warnings(&warnings);
        let cases: [&[&str]; 5] = [
            &[r#"models["a/x"]"#, r#"policies["p1"]"#, r#"keySets["k1"]"#],
            &[r#"models["a/y"]"#, r#"policies["p2"]"#],
            &[r#"models["a"]"#],
            // An id holding a `]`: found by the scan.
            &[r#"models["a]b"]"#],
            &[],
        ];
        for prefixes in cases {
            let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
            let scanned: Vec<&str> = warnings
                .iter()
                .filter(|w| prefixes.iter().any(|p| w.field.starts_with(p.as_str())))
                .map(|w| w.field.as_str())
                .collect();
            let found: Vec<&str> = warnings_about(&warnings, &by_entry, &prefixes)
                .map(|w| w.field.as_str())
                .collect();
            assert_eq!(found, scanned, "{prefixes:?}");
        }
        let all: Vec<String> = [r#"models["a/x"]"#, r#"policies["p1"]"#, r#"keySets["k1"]"#]
            .map(String::from)
            .to_vec();
        assert_eq!(warnings_about(&warnings, &by_entry, &all).count(), 5);
    }

    #[test]
    fn an_entry_the_filters_compiler_refuses_is_turned_away() {
        let mut bad = open();
        bad.routing = Some(Routing {
            header: "x-seldon-predictor".into(),
            override_allowed: true,
            sticky: None,
            // All weights 0: the filter refuses such routing.
            predictors: vec![
                Predictor {
                    name: "a".into(),
                    traffic: 0,
                },
                Predictor {
                    name: "b".into(),
                    traffic: 0,
                },
            ],
        });
        let mut models = BTreeMap::from([
            ("t/bad".to_string(), bad),
            ("v/fine".to_string(), open()),
            // Waiting for its keys is not an error of its own.
            ("v/waiting".to_string(), jwt("https://a", "https://a/jwks")),
        ]);
        let (_, refused) = admit(
            &mut models,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &[],
            Budgets::default(),
        );
        assert_eq!(refused.keys().collect::<Vec<_>>(), ["t/bad"], "{refused:?}");
        assert!(refused["t/bad"].contains("traffic weight"), "{refused:?}");
        assert!(matches!(models["t/bad"].policy, PolicySpec::Deny(_)));
    }
}
