//! modelgate-verify's curve checks against RustCrypto: ECDSA P-256 (`p256`, which ours
//! wraps) and P-384 (`p384`, against our own arithmetic) in the fixed-size `r || s`
//! encoding JWS uses, and Ed25519 against `ed25519-dalek`'s strict verification (which ours
//! wraps: this holds the key and signature reading around it). The signing key comes from
//! the input; the signature is a real one, with bits flipped, its `s` replaced by `n - s`
//! (high S, which both accept), its `r` or `s` set to 0, or the input's bytes; the public
//! key is the real one or a copy with bytes changed. Both sides must give the same answer,
//! on the key as on the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_verify::curves::{Curve, CurveKey};
use p256::ecdsa::signature::{Signer, Verifier};

/// The order of P-256 and of P-384, big-endian.
const N_P256: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const N_P384: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `n - s` for big-endian numbers of one length (`s < n`).
fn negate(n: &[u8], s: &[u8]) -> Vec<u8> {
    let mut out = vec![0; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    out
}

struct Case {
    curve: Curve,
    key: Vec<u8>,
    signature: Vec<u8>,
    order: Option<Vec<u8>>,
}

/// The public key and a real signature of `message` by the key the input names.
fn signed(curve_index: u8, secret: &[u8], message: &[u8]) -> Option<Case> {
    match curve_index % 3 {
        0 => {
            let key = p256::ecdsa::SigningKey::from_slice(secret.get(..32)?).ok()?;
            let signature: p256::ecdsa::Signature = key.sign(message);
            Some(Case {
                curve: Curve::P256,
                key: key
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
                signature: signature.to_bytes().to_vec(),
                order: Some(hex(N_P256)),
            })
        }
        1 => {
            let key = p384::ecdsa::SigningKey::from_slice(secret.get(..48)?).ok()?;
            let signature: p384::ecdsa::Signature = key.sign(message);
            Some(Case {
                curve: Curve::P384,
                key: key
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
                signature: signature.to_bytes().to_vec(),
                order: Some(hex(N_P384)),
            })
        }
        _ => {
            let key = ed25519_dalek::SigningKey::from_bytes(secret.get(..32)?.try_into().ok()?);
            Some(Case {
                curve: Curve::Ed25519,
                key: key.verifying_key().to_bytes().to_vec(),
                signature: key.sign(message).to_bytes().to_vec(),
                order: None,
            })
        }
    }
}

/// RustCrypto's reading of an ECDSA key as JWS carries it (an uncompressed point; the
/// crates also read compressed ones), then its verdict on the `r || s` signature.
macro_rules! ecdsa {
    ($curve:ident, $key:expr, $message:expr, $signature:expr) => {{
        if $key.first() != Some(&4) {
            return (false, false);
        }
        let Ok(key) = $curve::ecdsa::VerifyingKey::from_sec1_bytes($key) else {
            return (false, false);
        };
        let verdict = $curve::ecdsa::Signature::from_slice($signature)
            .is_ok_and(|s| key.verify($message, &s).is_ok());
        (true, verdict)
    }};
}

/// RustCrypto's reading of a key as JWS carries it, then its verdict.
fn theirs(curve: Curve, key: &[u8], message: &[u8], signature: &[u8]) -> (bool, bool) {
    match curve {
        Curve::P256 => ecdsa!(p256, key, message, signature),
        Curve::P384 => ecdsa!(p384, key, message, signature),
        Curve::Ed25519 => {
            let Ok(bytes) = <[u8; 32]>::try_from(key) else {
                return (false, false);
            };
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else {
                return (false, false);
            };
            let verdict = ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok());
            (true, verdict)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [curve_index, mode, rest @ ..] = data else {
        return;
    };
    let Some(secret) = rest.get(..48) else {
        return;
    };
    let rest = &rest[48..];
    // The message, then (position, xor) pairs.
    let split = rest.iter().position(|&b| b == b'|').unwrap_or(rest.len());
    let (message, edits) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let edit = |bytes: &mut Vec<u8>| {
        for pair in edits.chunks_exact(2) {
            let at = usize::from(pair[0]) % bytes.len().max(1);
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= pair[1];
            }
        }
    };
    let Some(Case {
        curve,
        mut key,
        mut signature,
        order,
    }) = signed(*curve_index, secret, message)
    else {
        return;
    };
    let half = signature.len() / 2;
    match (mode % 6, &order) {
        (0, _) => {}
        (1, _) => edit(&mut signature),
        (2, Some(n)) => {
            let high = negate(n, &signature[half..]);
            signature[half..].copy_from_slice(&high);
        }
        (3, Some(_)) => signature[..half].fill(0),
        (4, Some(_)) => signature[half..].fill(0),
        (5, _) => edit(&mut key),
        _ => signature = edits.to_vec(),
    }
    let ours_key = CurveKey::read(curve, &key);
    let ours = ours_key
        .as_ref()
        .is_some_and(|key| key.verify(message, &signature));
    let (their_key, theirs) = theirs(curve, &key, message, &signature);
    assert_eq!(
        ours_key.is_some(),
        their_key,
        "{curve:?}: the key read differently"
    );
    assert_eq!(
        ours,
        theirs,
        "{curve:?}, mode {}: modelgate {ours}, RustCrypto {theirs}",
        mode % 6
    );
    if mode % 6 == 0 {
        assert!(ours, "{curve:?}: a real signature refused");
    }
});
