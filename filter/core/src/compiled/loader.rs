//! Reading a `pluginConfig` document into a [`CompiledConfig`] field by field, with serde's
//! streaming interface: each model is compiled as the parser reaches it, and key sets and
//! policies (few) are kept as their own slices of the document until all are known, so
//! the whole document is never held as contract types next to its compiled form.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    CompiledConfig, CompiledPolicy, ConfigError, ModelTable, Section, UNUSABLE_ENTRY_POLICY,
    compile_policies,
};
use crate::auth::keys::{KeyLimits, MAX_RSA_BITS_CEILING, MIN_RSA_BITS};
use crate::auth::refetch::{
    MAX_CHANNEL_NAME_BYTES, MAX_CHANNEL_TIMEOUT_MS, MAX_REFETCH_SECS, MIN_CHANNEL_TIMEOUT_MS,
    MIN_REFETCH_SECS,
};
use crate::config::{CONFIG_VERSION, FilterConfig, KeyChannel, KeySet, Limits, Model, Policy};
use crate::route::StickyKey;

/// See [`CompiledConfig::from_json`].
pub(super) fn from_json(bytes: &[u8]) -> Result<(CompiledConfig, Vec<ConfigError>), ConfigError> {
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
        Err(e) => Err(loader
            .version_error()
            .unwrap_or_else(|| ConfigError::new(json_error_path(&e), e.to_string()))),
    }
}

/// See [`CompiledConfig::compile`].
pub(super) fn from_config(
    config: &FilterConfig,
) -> Result<(CompiledConfig, Vec<ConfigError>), ConfigError> {
    let mut loader = Loader {
        version: Some(config.version),
        limits: config.limits,
        channel: config.channel.clone(),
        ..Loader::default()
    };
    if let Some(e) = loader.version_error() {
        return Err(e);
    }
    for (id, set) in &config.key_sets {
        loader.key_sets.insert(id.clone(), Section::Typed(set));
    }
    for (id, policy) in &config.policies {
        loader.policies.insert(id.clone(), Section::Typed(policy));
    }
    for (id, model) in &config.models {
        loader.models.add(id.clone(), Ok(model));
    }
    loader.finish()
}

/// Reads a `pluginConfig` document field by field: key sets and policies (few) each kept as
/// its own slice of the document, models compiled one at a time.
#[derive(Default)]
struct Loader<'a> {
    version: Option<u32>,
    limits: Limits,
    channel: Option<KeyChannel>,
    key_sets: BTreeMap<String, Section<'a, KeySet>>,
    policies: BTreeMap<String, Section<'a, Policy>>,
    models: ModelTable,
}

impl Loader<'_> {
    /// The key limits the document sets, if they are within what this filter allows.
    fn key_limits(&self) -> Result<KeyLimits, ConfigError> {
        let bits = self.limits.max_rsa_bits as usize;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS_CEILING).contains(&bits) {
            return Err(ConfigError::new(
                "limits.maxRsaBits",
                format!("{bits} is not between {MIN_RSA_BITS} and {MAX_RSA_BITS_CEILING}"),
            ));
        }
        Ok(KeyLimits { max_rsa_bits: bits })
    }

    fn version_error(&self) -> Option<ConfigError> {
        match self.version {
            Some(CONFIG_VERSION) | None => None,
            Some(other) => Some(ConfigError::new(
                "version",
                format!("{other} is not supported (this filter reads version {CONFIG_VERSION})"),
            )),
        }
    }

    #[inline(never)]
    fn finish(self) -> Result<(CompiledConfig, Vec<ConfigError>), ConfigError> {
        crate::crypto::install();
        let limits = self.key_limits()?;
        let mut warnings = Vec::new();
        let (mut policies, mut policy_ids, fetched_key_sets) =
            compile_policies(&self.key_sets, &self.policies, &limits, &mut warnings);
        let channel = self
            .channel
            .and_then(|channel| match check_channel(&channel) {
                Ok(()) => Some(channel),
                Err(e) => {
                    warnings.push(e);
                    None
                }
            });
        let unusable = policies.len();
        let models = self
            .models
            .finish(&policies, &policy_ids, unusable, &mut warnings);
        // A sticky claim is read from the cached claims of its model's policy.
        for model in &models {
            if let Some(StickyKey::Claim(claim)) =
                model.routing.as_ref().and_then(|r| r.sticky.as_ref())
                && let Some(CompiledPolicy::Jwt(jwt)) = policies.get_mut(model.policy)
            {
                jwt.claims_used.add(claim);
            }
        }
        policies.push(CompiledPolicy::Deny(UNUSABLE_ENTRY_POLICY.to_string()));
        policy_ids.push(UNUSABLE_ENTRY_POLICY.to_string());
        Ok((
            CompiledConfig {
                models,
                policies,
                policy_ids,
                fetched_key_sets,
                key_limits: limits,
                channel,
            },
            warnings,
        ))
    }
}

const FIELDS: &[&str] = &[
    "version", "keySets", "policies", "models", "limits", "channel",
];

impl<'de> DeserializeSeed<'de> for &mut Loader<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Loader<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct FilterConfig")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; FIELDS.len()];
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
                1 => self.key_sets = sections(&mut map)?,
                2 => self.policies = sections(&mut map)?,
                3 => map.next_value_seed(&mut self.models)?,
                4 => self.limits = next_limits(&mut map)?,
                _ => self.channel = next_channel(&mut map)?,
            }
        }
        if self.version.is_none() {
            return Err(de::Error::missing_field("version"));
        }
        Ok(())
    }
}

/// The document's `limits` (read in a function of its own: see [`compile_policies`]).
#[inline(never)]
fn next_limits<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Limits, A::Error> {
    map.next_value()
}

/// The document's `channel` (read in a function of its own: see [`compile_policies`]).
#[inline(never)]
fn next_channel<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<KeyChannel>, A::Error> {
    map.next_value()
}

/// Whether a key channel can be used. One that cannot is left out with a warning: keys then
/// change only with the configuration, as without a channel.
pub(crate) fn check_channel(channel: &KeyChannel) -> Result<(), ConfigError> {
    let bad = |field: &str, message: String| {
        Err(ConfigError::new(
            format!("channel.{field}"),
            format!("{message}: the key channel is off"),
        ))
    };
    if channel.cluster.is_empty() || channel.cluster.len() > MAX_CHANNEL_NAME_BYTES {
        return bad(
            "cluster",
            format!("must have 1 to {MAX_CHANNEL_NAME_BYTES} bytes"),
        );
    }
    if channel.authority.is_empty() || channel.authority.len() > MAX_CHANNEL_NAME_BYTES {
        return bad(
            "authority",
            format!("must have 1 to {MAX_CHANNEL_NAME_BYTES} bytes"),
        );
    }
    if !channel.keys_path.starts_with('/')
        || channel.keys_path.contains(['?', '#'])
        || channel.keys_path.len() > MAX_CHANNEL_NAME_BYTES
    {
        return bad(
            "keysPath",
            format!("{:?} is not a path without query", channel.keys_path),
        );
    }
    if !(MIN_CHANNEL_TIMEOUT_MS..=MAX_CHANNEL_TIMEOUT_MS).contains(&channel.timeout_ms) {
        return bad(
            "timeoutMs",
            format!(
                "{} is not between {MIN_CHANNEL_TIMEOUT_MS} and {MAX_CHANNEL_TIMEOUT_MS}",
                channel.timeout_ms
            ),
        );
    }
    if !(MIN_REFETCH_SECS..=MAX_REFETCH_SECS).contains(&channel.refetch_secs) {
        return bad(
            "refetchSecs",
            format!(
                "{} is not between {MIN_REFETCH_SECS} and {MAX_REFETCH_SECS}",
                channel.refetch_secs
            ),
        );
    }
    Ok(())
}

/// A map of key sets or policies, each kept as its own slice of the document (read in a
/// function of its own: see [`compile_policies`] on why).
#[inline(never)]
fn sections<'de, 'a, A: MapAccess<'de>, T>(
    map: &mut A,
) -> Result<BTreeMap<String, Section<'a, T>>, A::Error> {
    let raw: BTreeMap<String, Box<RawValue>> = map.next_value()?;
    Ok(raw
        .into_iter()
        .map(|(id, v)| (id, Section::Raw(v)))
        .collect())
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
            let raw: &RawValue = map.next_value()?;
            let model = serde_json::from_str::<Model>(raw.get()).map_err(|e| e.to_string());
            self.add(id, model.as_ref().map_err(Clone::clone));
        }
        Ok(())
    }
}

/// serde_json does not report the path of an error; its message names the field and the
/// position, so the position is the best "field" there is.
fn json_error_path(e: &serde_json::Error) -> String {
    format!("pluginConfig (line {}, column {})", e.line(), e.column())
}
