//! ECDSA (ES256 on P-256 with the `p256` crate, ES384 on P-384 with ours,
//! `ecdsa`) and EdDSA (Ed25519 with `ed25519-dalek`), the crates built without
//! their key-format and signing features and tables: only verifying code is reachable.

use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use crate::ecdsa::{self, CurveId};

/// A public key of one of the curves the filter accepts, checked to be a valid point.
enum CurveKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(ecdsa::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl CurveKey {
    /// Reads a key as `jsonwebtoken` holds it: an uncompressed SEC1 point (`04 || x || y`)
    /// for ECDSA, the 32 raw bytes for Ed25519. `None` unless it is a valid key for `alg`.
    fn read(alg: Algorithm, bytes: &[u8]) -> Option<Self> {
        match alg {
            Algorithm::ES256 if bytes.len() == 65 && bytes[0] == 4 => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .ok()
                    .map(CurveKey::P256)
            }
            Algorithm::ES384 => {
                ecdsa::PublicKey::from_sec1(CurveId::P384, bytes).map(CurveKey::P384)
            }
            Algorithm::EdDSA => {
                let bytes: &[u8; 32] = bytes.try_into().ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .ok()
                    .map(CurveKey::Ed25519)
            }
            _ => None,
        }
    }
}

/// Whether `bytes` are a usable public key for `alg` (checked when a JWKS is compiled).
pub fn is_valid_key(alg: Algorithm, bytes: &[u8]) -> bool {
    CurveKey::read(alg, bytes).is_some()
}

/// The verifier for an EC or EdDSA algorithm and key (the caller checked the family).
pub(crate) fn verifier(alg: Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let DecodingKeyKind::SecretOrDer(bytes) = key.kind() else {
        return Err(ErrorKind::InvalidKeyFormat.into());
    };
    let key = CurveKey::read(alg, bytes).ok_or(ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(CurveVerifier { key, alg }))
}

struct CurveVerifier {
    key: CurveKey,
    alg: Algorithm,
}

impl Verifier<Vec<u8>> for CurveVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        crate::crypto::count_check();
        // JWS signatures are the fixed-size concatenation r || s (RFC 7518 3.4), or the
        // 64 bytes of RFC 8032 for Ed25519; `from_slice` refuses any other length.
        match &self.key {
            CurveKey::P256(key) => verify_p256(key, message, signature),
            CurveKey::P384(key) if key.verify(message, signature) => Ok(()),
            CurveKey::P384(_) => Err(SignatureError::new()),
            CurveKey::Ed25519(key) => verify_ed25519(key, message, signature),
        }
    }
}

/// (A function of its own, so V8 compiles the curve's inlined arithmetic apart.)
#[inline(never)]
fn verify_p256(
    key: &p256::ecdsa::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    key.verify(message, &p256::ecdsa::Signature::from_slice(signature)?)
}

#[inline(never)]
fn verify_ed25519(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let signature = ed25519_dalek::Signature::from_slice(signature)?;
    // Strict: no small-order keys or non-canonical encodings (malleability).
    key.verify_strict(message, &signature)
}

impl JwtVerifier for CurveVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    use modelgate_testkit::TestKey;

    fn public_key(key: &TestKey) -> DecodingKey {
        let jwk = key.jwk();
        let b64 = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        match key.alg {
            Algorithm::EdDSA => DecodingKey::from_ed_der(&b64("x")),
            _ => {
                let mut point = vec![4];
                point.extend(b64("x"));
                point.extend(b64("y"));
                DecodingKey::from_ec_der(&point)
            }
        }
    }

    fn split(token: &str) -> (&str, Vec<u8>) {
        let (message, signature) = token.rsplit_once('.').unwrap();
        (message, URL_SAFE_NO_PAD.decode(signature).unwrap())
    }

    #[test]
    fn verifies_what_the_key_signed_and_nothing_else() {
        for key in [TestKey::ec(), TestKey::ec_p384(), TestKey::ed()] {
            let alg = key.alg;
            let decoding = public_key(&key);
            let ours = verifier(alg, &decoding).unwrap();
            let theirs = (DEFAULT_PROVIDER.verifier_factory)(&alg, &decoding).unwrap();
            for i in 0..3 {
                let token = key.sign(&serde_json::json!({"i": i, "exp": 1}));
                let (message, signature) = split(&token);
                assert!(
                    ours.verify(message.as_bytes(), &signature).is_ok(),
                    "{alg:?}"
                );
                assert!(theirs.verify(message.as_bytes(), &signature).is_ok());
                assert!(
                    ours.verify(format!("{message}x").as_bytes(), &signature)
                        .is_err()
                );
                for at in [0, signature.len() / 2, signature.len() - 1] {
                    let mut flipped = signature.clone();
                    flipped[at] ^= 1;
                    assert!(
                        ours.verify(message.as_bytes(), &flipped).is_err(),
                        "{alg:?}"
                    );
                }
                assert!(
                    ours.verify(message.as_bytes(), &signature[1..].to_vec())
                        .is_err()
                );
                assert!(ours.verify(message.as_bytes(), &Vec::new()).is_err());
                assert!(
                    ours.verify(message.as_bytes(), &vec![0; signature.len()])
                        .is_err()
                );
            }
        }
    }

    #[test]
    fn a_key_of_another_curve_or_a_bad_point_is_refused() {
        let p256 = public_key(&TestKey::ec());
        let p384 = public_key(&TestKey::ec_p384());
        let ed = public_key(&TestKey::ed());
        assert!(verifier(Algorithm::ES384, &p256).is_err());
        assert!(verifier(Algorithm::ES256, &p384).is_err());
        assert!(verifier(Algorithm::EdDSA, &p256).is_err());
        assert!(verifier(Algorithm::ES256, &ed).is_err());
        assert!(verifier(Algorithm::RS256, &p256).is_err());
        // A point off the curve: y changed.
        let DecodingKeyKind::SecretOrDer(bytes) = p256.kind() else {
            unreachable!()
        };
        let mut off = bytes.clone();
        off[64] ^= 1;
        assert!(!is_valid_key(Algorithm::ES256, &off));
        assert!(is_valid_key(Algorithm::ES256, bytes));
        assert!(!is_valid_key(Algorithm::ES256, &[4; 65]));
        assert!(!is_valid_key(Algorithm::EdDSA, &[1; 31]));
    }

    #[test]
    fn signatures_of_another_key_fail() {
        let signer = TestKey::ec();
        let token = signer.sign(&serde_json::json!({"exp": 1}));
        let (message, signature) = split(&token);
        // Ed25519 and P-384 keys of the other fixtures are not this signer.
        let p384 = verifier(Algorithm::ES384, &public_key(&TestKey::ec_p384())).unwrap();
        assert!(p384.verify(message.as_bytes(), &signature).is_err());
        let ed = verifier(Algorithm::EdDSA, &public_key(&TestKey::ed())).unwrap();
        assert!(ed.verify(message.as_bytes(), &signature).is_err());
    }
}
