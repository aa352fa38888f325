//! Signing keys from a JWKS, compiled once per configuration. Each key carries the exact
//! algorithms it may verify, so a token can never choose an algorithm its key was not
//! published for (no HMAC with a public key as secret, no `none`).
//!
//! A key set is written by a tenant (inline, or at a URI it hosts), so every key is bounded
//! in what it can cost per token: RSA moduli of 2048 to 4096 bits (8192 at most when a
//! [`KeyLimits`] says so), public exponents below 2^32, and a set keeps at most
//! [`MAX_KEYS_PER_SET`] keys, never two a token could both select ([`select_usable`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use modelgate_verify::rsa::{modulus_bits, public_exponent, strip_leading_zeros};

use crate::crypto::is_valid_key;

/// RSA keys shorter than this are refused.
pub const MIN_RSA_BITS: usize = 2048;

/// RSA keys longer than this are refused by default.
pub const DEFAULT_MAX_RSA_BITS: usize = 4096;

/// No limit can allow RSA keys longer than this: the verifier itself refuses them
/// ([`modelgate_verify::rsa::MAX_MODULUS_BITS`]).
pub const MAX_RSA_BITS_CEILING: usize = modelgate_verify::rsa::MAX_MODULUS_BITS;

/// Usable keys kept per key set; further keys are skipped with a warning.
pub const MAX_KEYS_PER_SET: usize = 32;

/// What a key may cost to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// The longest RSA modulus accepted, in bits; values over [`MAX_RSA_BITS_CEILING`]
    /// count as the ceiling.
    pub max_rsa_bits: usize,
}

impl Default for KeyLimits {
    fn default() -> Self {
        Self {
            max_rsa_bits: DEFAULT_MAX_RSA_BITS,
        }
    }
}

/// A public key ready to verify signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key id (`kid`), if the JWKS gave one.
    pub kid: Option<String>,
    /// The algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Every RSA algorithm a key published for RSA may verify.
pub(crate) const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Compiles one JWK (RFC 7517/7518: only the members a verifying key needs are read), or
/// says why it cannot be used, with the default [`KeyLimits`].
pub fn compile_key(raw: &Value) -> Result<VerifyingKey, String> {
    compile_key_with(raw, &KeyLimits::default())
}

/// Compiles one JWK within `limits`, or says why it cannot be used.
pub fn compile_key_with(raw: &Value, limits: &KeyLimits) -> Result<VerifyingKey, String> {
    let jwk = raw.as_object().ok_or("not a JWK: not a JSON object")?;
    let kid = member(jwk, "kid")?.map(str::to_string);
    if member(jwk, "use")? == Some("enc") {
        return Err("an encryption key (use: enc)".into());
    }
    let declared = member(jwk, "alg")?.map(signature_algorithm).transpose()?;
    let (family, key): (Vec<Algorithm>, DecodingKey) = match member(jwk, "kty")? {
        Some("RSA") => {
            let (n, e) = rsa_components(jwk, limits)?;
            (
                RSA_ALGORITHMS.to_vec(),
                DecodingKey::from_rsa_raw_components(&n, &e),
            )
        }
        Some("EC") => {
            let alg = match member(jwk, "crv")? {
                Some("P-256") => Algorithm::ES256,
                Some("P-384") => Algorithm::ES384,
                other => return Err(format!("an EC key on unsupported curve {other:?}")),
            };
            let mut point = vec![4];
            point.extend(bytes_member(jwk, "x")?);
            point.extend(bytes_member(jwk, "y")?);
            if !is_valid_key(alg, &point) {
                return Err("unusable key material: not a point of its curve".into());
            }
            (vec![alg], DecodingKey::from_ec_der(&point))
        }
        Some("OKP") => {
            if member(jwk, "crv")? != Some("Ed25519") {
                return Err(format!(
                    "an OKP key on unsupported curve {:?}",
                    member(jwk, "crv")?
                ));
            }
            let x = bytes_member(jwk, "x")?;
            if !is_valid_key(Algorithm::EdDSA, &x) {
                return Err("unusable key material: not an Ed25519 public key".into());
            }
            (vec![Algorithm::EdDSA], DecodingKey::from_ed_der(&x))
        }
        Some("oct") => return Err("a symmetric (oct) key: HMAC is never accepted".into()),
        Some(_) => return Err("a key of unsupported type".into()),
        None => return Err("not a JWK: no kty".into()),
    };
    let algorithms = match declared {
        Some(alg) if family.contains(&alg) => vec![alg],
        Some(alg) => {
            return Err(format!(
                "declares alg {alg:?}, which does not fit its key type"
            ));
        }
        None => family,
    };
    Ok(VerifyingKey {
        kid,
        algorithms,
        key,
    })
}

/// The modulus and exponent of an RSA JWK, without leading zero bytes, once they are known
/// to be within `limits`.
fn rsa_components(
    jwk: &Map<String, Value>,
    limits: &KeyLimits,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let max_bits = limits.max_rsa_bits.min(MAX_RSA_BITS_CEILING);
    // Neither member is decoded when its text alone is too long: a tenant's JWKS must not
    // make the filter allocate for a number it will refuse anyway.
    let n_text = member(jwk, "n")?.ok_or("not a JWK: no n")?;
    if n_text.len() > base64_len(max_bits / 8 + 1) {
        return Err(format!(
            "an RSA key of about {} bits (at most {max_bits} accepted)",
            n_text.len() * 6
        ));
    }
    let n = bytes_member(jwk, "n")?;
    let n = strip_leading_zeros(&n).to_vec();
    let bits = modulus_bits(&n);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "an RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)"
        ));
    }
    if bits > max_bits {
        return Err(format!(
            "an RSA key of {bits} bits (at most {max_bits} accepted)"
        ));
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err("unusable key material: not an RSA public key (even modulus)".into());
    }
    let e_text = member(jwk, "e")?.ok_or("not a JWK: no e")?;
    if e_text.len() > base64_len(8) {
        return Err(format!(
            "an RSA public exponent of about {} bits (it must be odd, at least 3 and below 2^32)",
            e_text.len() * 6
        ));
    }
    let e = bytes_member(jwk, "e")?;
    let e = strip_leading_zeros(&e).to_vec();
    // The verifier's own bound: odd, at least 3 and below 2^32.
    if public_exponent(&e).is_none() {
        let found = if e.len() <= 4 {
            e.iter()
                .fold(0u32, |acc, b| acc << 8 | u32::from(*b))
                .to_string()
        } else {
            format!("of {} bits", modulus_bits(&e))
        };
        return Err(format!(
            "an RSA public exponent {found} (it must be odd, at least 3 and below 2^32)"
        ));
    }
    Ok((n, e))
}

/// Length of the unpadded base64url text of `bytes` bytes.
fn base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// The keys of one set that tokens may be checked against, in JWKS order: at most
/// [`MAX_KEYS_PER_SET`], and never two with the same `kid` and an algorithm in common, so a
/// token with a `kid` selects at most one key (RFC 7517 4.5 allows a `kid` twice only for
/// different key types). Keys without a `kid` are kept (old and new during a rotation);
/// verification bounds what they cost ([`crate::auth::verifier::MAX_KEYS_TRIED`]). Each key dropped
/// is named in a warning.
pub fn select_usable(
    set: &str,
    keys: Vec<VerifyingKey>,
    warnings: &mut Vec<String>,
) -> Vec<VerifyingKey> {
    let mut kept: Vec<VerifyingKey> = Vec::with_capacity(keys.len().min(MAX_KEYS_PER_SET));
    for key in keys {
        let kid = key.kid.as_deref().unwrap_or("(none)");
        if kept.len() >= MAX_KEYS_PER_SET {
            warnings.push(format!(
                "keySets[{set:?}]: key with kid {kid:?} skipped: more than {MAX_KEYS_PER_SET} usable keys"
            ));
        } else if key.kid.is_some()
            && kept.iter().any(|k| {
                k.kid == key.kid && k.algorithms.iter().any(|a| key.algorithms.contains(a))
            })
        {
            warnings.push(format!(
                "keySets[{set:?}]: key with kid {kid:?} skipped: an earlier key has the same kid for the same algorithm"
            ));
        } else {
            kept.push(key);
        }
    }
    kept
}

/// A string member of a JWK, if present.
fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("not a JWK: {name} is not a string")),
    }
}

/// A required base64url member of a JWK, decoded.
fn bytes_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = member(jwk, name)?.ok_or_else(|| format!("not a JWK: no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("unusable key material: {name} is not base64url"))
}

fn signature_algorithm(alg: &str) -> Result<Algorithm, String> {
    Ok(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" | "HS384" | "HS512" => {
            return Err("declares an HMAC algorithm, which is never accepted".into());
        }
        other => return Err(format!("declares {other:?}, not a signature algorithm")),
    })
}

/// A compiled key set as its policies share it. Its keys are replaced in place when the key
/// channel brings newer ones ([`crate::auth::refetch`]), for every policy at once; a
/// decision works on the keys current when it starts ([`SharedKeys::current`]).
#[derive(Debug, Default)]
pub struct SharedKeys {
    source: Option<String>,
    keys: std::cell::RefCell<std::rc::Rc<Vec<VerifyingKey>>>,
}

impl SharedKeys {
    /// A set of `keys` from `source` (the key set's `source`).
    pub fn new(source: Option<String>, keys: Vec<VerifyingKey>) -> Self {
        Self {
            source,
            keys: std::cell::RefCell::new(std::rc::Rc::new(keys)),
        }
    }

    /// The JWKS URI the keys were fetched from; `None` for keys a model carries inline,
    /// which no one can fetch again.
    pub fn uri(&self) -> Option<&str> {
        self.source
            .as_deref()
            .filter(|s| s.starts_with("https://") || s.starts_with("http://"))
    }

    /// The keys in force.
    pub fn current(&self) -> std::rc::Rc<Vec<VerifyingKey>> {
        self.keys.borrow().clone()
    }

    /// Whether no key can verify a token.
    pub fn is_empty(&self) -> bool {
        self.keys.borrow().is_empty()
    }

    /// Replaces the keys for every policy sharing the set.
    pub fn replace(&self, keys: std::rc::Rc<Vec<VerifyingKey>>) {
        *self.keys.borrow_mut() = keys;
    }
}

/// Whether an algorithm is one the filter ever accepts.
pub fn is_accepted_algorithm(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_testkit::TestKey;
    use serde_json::json;

    #[test]
    fn refuses_keys_that_must_never_verify() {
        let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"});
        assert!(compile_key(&oct).unwrap_err().contains("HMAC"));
        let enc = json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"});
        assert!(compile_key(&enc).unwrap_err().contains("encryption"));
        let short = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        assert!(compile_key(&short).unwrap_err().contains("bits"));
        let hs_declared = json!({"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"});
        assert!(compile_key(&hs_declared).unwrap_err().contains("HMAC"));
        let unknown = json!({"kty": "weird"});
        assert!(compile_key(&unknown).is_err());
        assert!(compile_key(&json!("not an object")).is_err());
        assert!(
            compile_key(&json!({"n": "AQAB"}))
                .unwrap_err()
                .contains("kty")
        );
        let weak = TestKey::weak_rsa().jwk();
        assert!(compile_key(&weak).unwrap_err().contains("1024 bits"));
        // 255 significant bytes behind a zero byte are 2040 bits, not 2048.
        let mut padded = vec![0u8];
        padded.extend([0xc5; 255]);
        let short = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&padded), "e": "AQAB"});
        assert!(compile_key(&short).unwrap_err().contains("2040 bits"));
        let mut even = TestKey::rsa_a().jwk();
        let mut n = URL_SAFE_NO_PAD.decode(even["n"].as_str().unwrap()).unwrap();
        *n.last_mut().unwrap() &= 0xfe;
        even["n"] = json!(URL_SAFE_NO_PAD.encode(&n));
        assert!(compile_key(&even).unwrap_err().contains("unusable"));
    }

    /// An RSA JWK whose modulus has exactly `bits` bits (odd; not a product of primes, which
    /// nothing here checks) and whose exponent is `e`.
    fn rsa_jwk(bits: usize, e: &[u8]) -> Value {
        let mut n = vec![0xc5u8; bits.div_ceil(8)];
        n[0] = 0xff >> ((8 - bits % 8) % 8);
        json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(e)})
    }

    const F4: &[u8] = &[1, 0, 1];

    #[test]
    fn rsa_moduli_are_bounded_by_the_limits() {
        assert_eq!(
            modulus_bits(
                &URL_SAFE_NO_PAD
                    .decode(rsa_jwk(4097, F4)["n"].as_str().unwrap())
                    .unwrap()
            ),
            4097
        );
        for bits in [2048, 3072, 4096] {
            assert!(compile_key(&rsa_jwk(bits, F4)).is_ok(), "{bits}");
        }
        let error = compile_key(&rsa_jwk(4097, F4)).unwrap_err();
        assert!(
            error.contains("4097 bits") && error.contains("at most 4096"),
            "{error}"
        );
        let wide = KeyLimits { max_rsa_bits: 8192 };
        assert!(compile_key_with(&rsa_jwk(8192, F4), &wide).is_ok());
        assert!(compile_key(&rsa_jwk(8192, F4)).is_err(), "not by default");
        // No limit reaches past the ceiling.
        let wider = KeyLimits {
            max_rsa_bits: 1 << 20,
        };
        let error = compile_key_with(&rsa_jwk(8193, F4), &wider).unwrap_err();
        assert!(
            error.contains("8193 bits") && error.contains("at most 8192"),
            "{error}"
        );
        // A modulus far too long is refused from its length, before it is decoded.
        let error = compile_key(&rsa_jwk(16384, F4)).unwrap_err();
        assert!(error.contains("at most 4096"), "{error}");
        let error = compile_key_with(&rsa_jwk(1 << 16, F4), &wider).unwrap_err();
        assert!(error.contains("at most 8192"), "{error}");
        // Leading zero bytes count for nothing, and are not kept.
        let mut padded = rsa_jwk(4096, F4);
        let mut n = vec![0u8];
        n.extend(
            URL_SAFE_NO_PAD
                .decode(padded["n"].as_str().unwrap())
                .unwrap(),
        );
        padded["n"] = json!(URL_SAFE_NO_PAD.encode(&n));
        let key = compile_key(&padded).unwrap();
        let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } = key.key.kind() else {
            panic!("an RSA key");
        };
        assert_eq!((n.len(), n[0]), (512, 0xff));
    }

    #[test]
    fn rsa_exponents_are_odd_and_below_2_pow_32() {
        for good in [&[3u8][..], F4, &[0xff; 4], &[0, 0, 0, 0, 0, 1, 0, 1]] {
            assert!(compile_key(&rsa_jwk(2048, good)).is_ok(), "{good:?}");
        }
        for (bad, found) in [
            (&[1u8][..], "exponent 1 "),
            (&[][..], "exponent 0 "),
            (&[1, 0, 0][..], "exponent 65536 "),
            (&[1, 0, 0, 0, 1][..], "exponent of 33 bits"),
        ] {
            let error = compile_key(&rsa_jwk(2048, bad)).unwrap_err();
            assert!(error.contains(found), "{bad:?}: {error}");
            assert!(error.contains("odd, at least 3 and below 2^32"), "{error}");
        }
        // An exponent as long as a modulus is refused from its length.
        let error = compile_key(&rsa_jwk(2048, &[0xff; 256])).unwrap_err();
        assert!(error.contains("below 2^32"), "{error}");
    }

    fn key_with(kid: Option<&str>, alg: Algorithm) -> VerifyingKey {
        let mut jwk = match alg {
            Algorithm::ES256 => TestKey::ec().jwk(),
            _ => TestKey::rsa_a().jwk(),
        };
        jwk["alg"] = serde_json::to_value(alg).unwrap();
        match kid {
            Some(kid) => jwk["kid"] = json!(kid),
            None => {
                jwk.as_object_mut().unwrap().remove("kid");
            }
        }
        compile_key(&jwk).unwrap()
    }

    #[test]
    fn a_set_keeps_a_bounded_number_of_keys_and_one_per_kid_and_algorithm() {
        let mut warnings = Vec::new();
        let many: Vec<_> = (0..40)
            .map(|i| key_with(Some(&format!("k{i}")), Algorithm::RS256))
            .collect();
        let kept = select_usable("s", many, &mut warnings);
        assert_eq!(kept.len(), MAX_KEYS_PER_SET);
        assert_eq!(
            kept.last().unwrap().kid.as_deref(),
            Some("k31"),
            "JWKS order"
        );
        assert_eq!(warnings.len(), 8, "{warnings:?}");
        assert!(warnings[0].contains("keySets[\"s\"]") && warnings[0].contains("\"k32\""));

        warnings.clear();
        let keys = vec![
            key_with(Some("a"), Algorithm::RS256),
            key_with(Some("a"), Algorithm::RS256),
            key_with(Some("a"), Algorithm::PS256),
            key_with(Some("a"), Algorithm::ES256),
            key_with(None, Algorithm::RS256),
            key_with(None, Algorithm::RS256),
            key_with(Some("b"), Algorithm::RS256),
        ];
        let kept = select_usable("s", keys, &mut warnings);
        let summary: Vec<_> = kept
            .iter()
            .map(|k| (k.kid.as_deref(), k.algorithms[0]))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("a"), Algorithm::RS256),
                (Some("a"), Algorithm::PS256),
                (Some("a"), Algorithm::ES256),
                (None, Algorithm::RS256),
                (None, Algorithm::RS256),
                (Some("b"), Algorithm::RS256),
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("same kid"), "{warnings:?}");
        // A key published for every RSA algorithm shares one with any RSA key of its kid.
        let mut undeclared = TestKey::rsa_a().jwk();
        undeclared.as_object_mut().unwrap().remove("alg");
        undeclared["kid"] = json!("a");
        let keys = vec![
            key_with(Some("a"), Algorithm::PS512),
            compile_key(&undeclared).unwrap(),
        ];
        assert_eq!(select_usable("s", keys, &mut warnings).len(), 1);
    }

    #[test]
    fn each_key_type_verifies_only_its_own_algorithms() {
        let rsa = compile_key(&TestKey::rsa_a().jwk()).unwrap();
        assert_eq!(rsa.algorithms, vec![Algorithm::RS256], "declared alg wins");
        let mut undeclared = TestKey::rsa_a().jwk();
        undeclared.as_object_mut().unwrap().remove("alg");
        assert_eq!(compile_key(&undeclared).unwrap().algorithms, RSA_ALGORITHMS);
        let ec = compile_key(&TestKey::ec().jwk()).unwrap();
        assert_eq!(ec.algorithms, vec![Algorithm::ES256]);
        assert_eq!(ec.kid.as_deref(), Some("ec-1"));
        let p384 = compile_key(&TestKey::ec_p384().jwk()).unwrap();
        assert_eq!(p384.algorithms, vec![Algorithm::ES384]);
        let ed = compile_key(&TestKey::ed().jwk()).unwrap();
        assert_eq!(ed.algorithms, vec![Algorithm::EdDSA]);

        let mut lying = TestKey::ec().jwk();
        lying["alg"] = json!("ES384");
        assert!(compile_key(&lying).unwrap_err().contains("does not fit"));
        let mut rsa_as_ec = TestKey::rsa_a().jwk();
        rsa_as_ec["alg"] = json!("ES256");
        assert!(
            compile_key(&rsa_as_ec)
                .unwrap_err()
                .contains("does not fit")
        );
        let mut oaep = TestKey::rsa_a().jwk();
        oaep["alg"] = json!("RSA-OAEP");
        assert!(compile_key(&oaep).unwrap_err().contains("not a signature"));
    }

    #[test]
    fn curve_keys_must_be_points_of_a_supported_curve() {
        let mut off_curve = TestKey::ec().jwk();
        let mut y = URL_SAFE_NO_PAD
            .decode(off_curve["y"].as_str().unwrap())
            .unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode(&y));
        assert!(compile_key(&off_curve).unwrap_err().contains("curve"));
        let mut p521 = TestKey::ec().jwk();
        p521["crv"] = json!("P-521");
        assert!(
            compile_key(&p521)
                .unwrap_err()
                .contains("unsupported curve")
        );
        let mut short_x = TestKey::ec().jwk();
        short_x["x"] = json!("AQAB");
        assert!(compile_key(&short_x).is_err());
        let mut x25519 = TestKey::ed().jwk();
        x25519["crv"] = json!("X25519");
        assert!(
            compile_key(&x25519)
                .unwrap_err()
                .contains("unsupported curve")
        );
        let mut not_b64 = TestKey::ed().jwk();
        not_b64["x"] = json!("not base64!");
        assert!(compile_key(&not_b64).unwrap_err().contains("base64url"));
        let mut number_kid = TestKey::ed().jwk();
        number_kid["kid"] = json!(7);
        assert!(compile_key(&number_kid).unwrap_err().contains("kid"));
    }
}
