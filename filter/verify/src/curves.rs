//! ECDSA (ES256 on P-256 with the `p256` crate, ES384 on P-384 with ours, `p384.rs`) and
//! EdDSA (Ed25519 with `ed25519-dalek`), the crates built without their key-format and
//! signing features and tables: only verifying code is reachable.

use p256::ecdsa::signature::Verifier;

use crate::p384::{self, CurveId};

/// The curves (and their JWS algorithms) this crate verifies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// ECDSA on P-256 with SHA-256 (ES256).
    P256,
    /// ECDSA on P-384 with SHA-384 (ES384).
    P384,
    /// Ed25519 (EdDSA).
    Ed25519,
}

/// A public key of one of the curves, checked to be a valid point.
pub struct CurveKey(Key);

enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl CurveKey {
    /// Reads a key as JWS carries it: an uncompressed SEC1 point (`04 || x || y`) for
    /// ECDSA, the 32 raw bytes for Ed25519. `None` unless it is a valid key of `curve`.
    pub fn read(curve: Curve, bytes: &[u8]) -> Option<Self> {
        let key = match curve {
            Curve::P256 if bytes.len() == 65 && bytes[0] == 4 => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .ok()
                    .map(Key::P256)
            }
            Curve::P256 => None,
            Curve::P384 => p384::PublicKey::from_sec1(CurveId::P384, bytes).map(Key::P384),
            Curve::Ed25519 => {
                let bytes: &[u8; 32] = bytes.try_into().ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .ok()
                    .map(Key::Ed25519)
            }
        };
        key.map(CurveKey)
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        // JWS signatures are the fixed-size concatenation r || s (RFC 7518 3.4), or the
        // 64 bytes of RFC 8032 for Ed25519; `from_slice` refuses any other length.
        match &self.0 {
            Key::P256(key) => verify_p256(key, message, signature),
            Key::P384(key) => key.verify(message, signature),
            Key::Ed25519(key) => verify_ed25519(key, message, signature),
        }
    }
}

/// Whether `bytes` are a usable public key of `curve`.
pub fn is_valid_key(curve: Curve, bytes: &[u8]) -> bool {
    CurveKey::read(curve, bytes).is_some()
}

/// (A function of its own, so V8 compiles the curve's inlined arithmetic apart.)
#[inline(never)]
fn verify_p256(key: &p256::ecdsa::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    p256::ecdsa::Signature::from_slice(signature)
        .is_ok_and(|signature| key.verify(message, &signature).is_ok())
}

#[inline(never)]
fn verify_ed25519(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    // Strict: no small-order keys or non-canonical encodings (malleability).
    ed25519_dalek::Signature::from_slice(signature)
        .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_curve_or_a_bad_point_is_refused() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let bytes = point.as_bytes();
        assert!(is_valid_key(Curve::P256, bytes));
        assert!(!is_valid_key(Curve::P384, bytes));
        assert!(!is_valid_key(Curve::Ed25519, bytes));
        // A point off the curve: y changed.
        let mut off = bytes.to_vec();
        off[64] ^= 1;
        assert!(!is_valid_key(Curve::P256, &off));
        assert!(!is_valid_key(Curve::P256, &[4; 65]));
        assert!(!is_valid_key(Curve::Ed25519, &[1; 31]));
    }
}
