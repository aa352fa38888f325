//! Signing keys from a JWKS, compiled once per configuration. Each key carries the exact
//! algorithms it may verify, so a token can never choose an algorithm its key was not
//! published for (no HMAC with a public key as secret, no `none`).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

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

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Compiles one JWK, or says why it cannot be used.
pub fn compile_key(raw: &serde_json::Value) -> Result<VerifyingKey, String> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.common.key_id.clone();
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("an encryption key (use: enc)".into());
    }
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(signature_algorithm(alg)?),
    };
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = base64_len(&rsa.n) * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)"
                ));
            }
            RSA_ALGORITHMS.to_vec()
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => return Err(format!("an EC key on unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("an OKP key on unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric (oct) key: HMAC is never accepted".into());
        }
        AlgorithmParameters::Other(_) => return Err("a key of unsupported type".into()),
        _ => return Err("a key of unsupported type".into()),
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
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key material: {e}"))?;
    Ok(VerifyingKey {
        kid,
        algorithms,
        key,
    })
}

fn signature_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, String> {
    Ok(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512 => {
            return Err("declares an HMAC algorithm, which is never accepted".into());
        }
        other => return Err(format!("declares {other:?}, not a signature algorithm")),
    })
}

/// Decoded length of unpadded base64url text.
fn base64_len(text: &str) -> usize {
    let text = text.trim_end_matches('=');
    text.len() * 3 / 4
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
    }
}
