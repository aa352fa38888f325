//! Signing keys from a JWKS, compiled once per configuration. Each key carries the exact
//! algorithms it may verify, so a token can never choose an algorithm its key was not
//! published for (no HMAC with a public key as secret, no `none`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::ec_verify::is_valid_key;
use crate::rsa_verify::modulus_bits;

/// RSA keys shorter than this are refused.
const MIN_RSA_BITS: usize = 2048;

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
/// says why it cannot be used.
pub fn compile_key(raw: &Value) -> Result<VerifyingKey, String> {
    let jwk = raw.as_object().ok_or("not a JWK: not a JSON object")?;
    let kid = member(jwk, "kid")?.map(str::to_string);
    if member(jwk, "use")? == Some("enc") {
        return Err("an encryption key (use: enc)".into());
    }
    let declared = member(jwk, "alg")?.map(signature_algorithm).transpose()?;
    let (family, key): (Vec<Algorithm>, DecodingKey) = match member(jwk, "kty")? {
        Some("RSA") => {
            let n = bytes_member(jwk, "n")?;
            let e = bytes_member(jwk, "e")?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)"
                ));
            }
            // An even modulus or an exponent of 0 or 1 is no RSA public key.
            if n.last().is_some_and(|b| b & 1 == 0) || modulus_bits(&e) <= 1 {
                return Err("unusable key material: not an RSA public key".into());
            }
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

/// Whether an algorithm is one the filter ever accepts.
pub fn is_accepted_algorithm(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Every algorithm the filter ever accepts.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

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
