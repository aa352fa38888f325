//! Keys a tenant hands the controller — an inline `seldon.io/jwt-jwks`, or the document its
//! `seldon.io/jwt-jwks-uri` serves — reduced to what the filter can use before they enter the
//! shared configuration: only keys the filter's own compiler accepts, at most
//! [`MAX_KEYS_PER_SET`], each re-serialised from the members a verifying key has. Nothing a
//! tenant wrote reaches the WasmPlugin verbatim, so no key can be too deep, too large or too
//! strange for the filter or for the controller's own client to read back.

use std::collections::HashMap;
use std::sync::Arc;

use modelgate_core::auth::keys::KeyLimits;
use modelgate_core::config::KeySet;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Keys kept per key set; the rest are dropped with a warning.
pub const MAX_KEYS_PER_SET: usize = 16;

/// An inline JWKS annotation longer than this is refused.
pub const MAX_INLINE_JWKS_BYTES: usize = 64 * 1024;

/// The JWK members a verifying key is made of (RFC 7517/7518); every other one is dropped.
const MEMBERS: [&str; 9] = ["kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"];

/// A key set reduced to usable keys, and what was dropped and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// The usable keys, re-serialised.
    pub set: KeySet,
    /// One line per dropped key: its index and why.
    pub dropped: Vec<String>,
}

/// A key set read once and shared, with what was dropped from it.
pub type SharedKeys = (Arc<KeySet>, Arc<[String]>);

/// Inline JWKS already read, by the SHA-256 of their text: a hundred thousand models
/// carrying one identity provider's keys have them read (each key checked by the filter's
/// compiler) and held once. Holds one entry per distinct text, no text itself; for one
/// generation, whose settings (the key limits) do not change.
#[derive(Debug, Default)]
pub struct InlineKeys {
    read: HashMap<[u8; 32], Result<SharedKeys, String>>,
}

impl InlineKeys {
    /// The keys of the JWKS `text`, read by `read` the first time it is met.
    pub fn read(
        &mut self,
        text: &str,
        read: impl FnOnce(&str) -> Result<Reduced, String>,
    ) -> Result<SharedKeys, String> {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        self.read
            .entry(digest)
            .or_insert_with(|| read(text).map(|r| (Arc::new(r.set), r.dropped.into())))
            .clone()
    }
}

/// Reads a JWKS document (`{"keys": [...]}`; other members are ignored) and reduces it.
pub fn read_document(text: &[u8], limits: &KeyLimits) -> Result<Reduced, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    Ok(reduce(&document.keys, limits))
}

/// Keeps the keys the filter's compiler accepts, re-serialised, at most [`MAX_KEYS_PER_SET`].
pub fn reduce(keys: &[Value], limits: &KeyLimits) -> Reduced {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (i, raw) in keys.iter().enumerate() {
        if kept.len() == MAX_KEYS_PER_SET {
            dropped.push(format!(
                "keys[{i}] and later: over {MAX_KEYS_PER_SET} keys per set"
            ));
            break;
        }
        let Some(key) = raw.as_object().map(known_members) else {
            dropped.push(format!("keys[{i}]: not a JSON object"));
            continue;
        };
        // The filter's own compiler decides what is usable.
        match modelgate_core::auth::keys::compile_key_with(&key, limits) {
            Ok(_) => kept.push(key),
            Err(why) => dropped.push(format!("keys[{i}]: {why}")),
        }
    }
    Reduced {
        set: KeySet {
            source: None,
            keys: kept,
        },
        dropped,
    }
}

/// The key's known members, when they are strings (the compiler refuses any other type).
fn known_members(jwk: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for name in MEMBERS {
        if let Some(value) = jwk.get(name) {
            let value = match value {
                Value::String(text) => Value::String(text.clone()),
                // Kept as a marker the compiler refuses, never the tenant's structure.
                _ => Value::Null,
            };
            out.insert(name.to_string(), value);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_testkit::TestKey;
    use serde_json::json;

    #[test]
    fn only_usable_keys_are_kept_and_only_their_members() {
        let mut rsa = TestKey::rsa_a().jwk();
        rsa["x5c"] = json!(["…"]);
        rsa["extra"] = json!({"deep": [[[[1]]]]});
        let keys = [
            rsa.clone(),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!("not a key"),
            TestKey::ec().jwk(),
        ];
        let reduced = reduce(&keys, &KeyLimits::default());
        assert_eq!(reduced.set.keys.len(), 2);
        let kept = reduced.set.keys[0].as_object().unwrap();
        assert!(
            kept.keys().all(|k| MEMBERS.contains(&k.as_str())),
            "{kept:?}"
        );
        assert_eq!(kept["n"], rsa["n"]);
        assert_eq!(reduced.dropped.len(), 2, "{:?}", reduced.dropped);
        assert!(reduced.dropped[0].starts_with("keys[1]: "));
        assert!(reduced.dropped[1].starts_with("keys[2]: not a JSON object"));
    }

    #[test]
    fn inline_keys_are_read_once_per_text_and_shared() {
        let mut inline = InlineKeys::default();
        let mut reads = 0;
        let text = |key: &TestKey| json!({"keys": [key.jwk()]}).to_string();
        let (a, b) = (text(&TestKey::rsa_a()), text(&TestKey::ec()));
        let mut read = |text: &str| {
            inline
                .read(text, |t| {
                    reads += 1;
                    read_document(t.as_bytes(), &KeyLimits::default())
                })
                .unwrap()
        };
        let first = read(&a);
        let again = read(&a);
        let other = read(&b);
        assert!(Arc::ptr_eq(&first.0, &again.0));
        assert!(!Arc::ptr_eq(&first.0, &other.0));
        assert_eq!(first.0.keys.len(), 1);
        assert_eq!(reads, 2);
        // A text that does not read keeps its error, read once too.
        for _ in 0..2 {
            let err = inline.read("{", |t| {
                reads += 1;
                read_document(t.as_bytes(), &KeyLimits::default())
            });
            assert!(err.is_err());
        }
        assert_eq!(reads, 3);
    }

    #[test]
    fn a_key_set_holds_at_most_the_cap() {
        let keys: Vec<Value> = (0..40)
            .map(|i| {
                let mut jwk = TestKey::ec().jwk();
                jwk["kid"] = json!(format!("k{i}"));
                jwk
            })
            .collect();
        let reduced = reduce(&keys, &KeyLimits::default());
        assert_eq!(reduced.set.keys.len(), MAX_KEYS_PER_SET);
        assert_eq!(reduced.dropped.len(), 1);
    }

    #[test]
    fn a_member_of_the_wrong_type_is_never_copied() {
        let mut jwk = TestKey::ec().jwk();
        jwk["kid"] = json!([[["deep"]]]);
        let reduced = reduce(&[jwk], &KeyLimits::default());
        assert!(reduced.set.keys.is_empty());
        assert_eq!(reduced.dropped.len(), 1);
    }

    #[test]
    fn rsa_keys_over_4096_bits_only_when_the_platform_allows_them() {
        // 1024 bytes of 0xff, base64url: an 8192-bit modulus (its primes do not matter here).
        let n = format!("{}_w", "_".repeat(1364));
        let key = json!({"kty": "RSA", "kid": "big", "n": n, "e": "AQAB"});
        let reduced = reduce(std::slice::from_ref(&key), &KeyLimits::default());
        assert!(reduced.set.keys.is_empty());
        assert!(
            reduced.dropped[0].contains("at most 4096"),
            "{:?}",
            reduced.dropped
        );
        let allowed = KeyLimits { max_rsa_bits: 8192 };
        assert_eq!(reduce(&[key], &allowed).set.keys.len(), 1);
    }
}
