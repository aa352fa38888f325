//! modelgate-verify's RSA checks against RustCrypto's `rsa` crate, on three test keys (2048
//! bits with e = 65537, an odd size, 2051 bits, with e = 3, and 3072 bits)
//! and on signatures built from the input: the input's bytes as a signature, a real
//! signature with bits flipped, a real signature's encoded block with bytes changed and
//! signed again (so the padding checks themselves are reached), the signature plus the
//! modulus, and a real signature under a key with a flipped modulus bit. Both verifiers
//! must give the same answer. (`s + n` must be refused, RFC 8017 8.1.2: `rsa`'s typed
//! verifying keys, used here, refuse it too; its `Pss` scheme through `RsaPublicKey::verify`
//! does not check `s < n` and accepts it.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelgate_verify::rsa::{Hash, Padding, PublicKey};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Sha256, Sha384, Sha512};

struct Key {
    private: RsaPrivateKey,
    n: Vec<u8>,
    e: Vec<u8>,
}

fn keys() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        // Generated once with OpenSSL (`fuzz/keys/README.md`): generating them here would cost
        // the instrumented build seconds per key, past libFuzzer's time limit per input.
        [
            include_str!("../keys/rsa-2048.pem"),
            include_str!("../keys/rsa-2051-e3.pem"),
            include_str!("../keys/rsa-3072.pem"),
        ]
        .into_iter()
        .map(|pem| {
            let private = RsaPrivateKey::from_pkcs8_pem(pem).expect("a test key");
            Key {
                n: private.n().to_bytes_be(),
                e: private.e().to_bytes_be(),
                private,
            }
        })
        .collect()
    })
}

/// The six JWS RSA algorithms.
const SCHEMES: [(Padding, Hash); 6] = [
    (Padding::Pkcs1v15, Hash::Sha256),
    (Padding::Pkcs1v15, Hash::Sha384),
    (Padding::Pkcs1v15, Hash::Sha512),
    (Padding::Pss, Hash::Sha256),
    (Padding::Pss, Hash::Sha384),
    (Padding::Pss, Hash::Sha512),
];

fn sign(key: &RsaPrivateKey, scheme: (Padding, Hash), message: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let key = key.clone();
    match scheme {
        (Padding::Pkcs1v15, Hash::Sha256) => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
            .sign(message)
            .to_vec(),
        (Padding::Pkcs1v15, Hash::Sha384) => rsa::pkcs1v15::SigningKey::<Sha384>::new(key)
            .sign(message)
            .to_vec(),
        (Padding::Pkcs1v15, Hash::Sha512) => rsa::pkcs1v15::SigningKey::<Sha512>::new(key)
            .sign(message)
            .to_vec(),
        (Padding::Pss, Hash::Sha256) => rsa::pss::BlindedSigningKey::<Sha256>::new(key)
            .sign_with_rng(&mut rng, message)
            .to_vec(),
        (Padding::Pss, Hash::Sha384) => rsa::pss::BlindedSigningKey::<Sha384>::new(key)
            .sign_with_rng(&mut rng, message)
            .to_vec(),
        (Padding::Pss, Hash::Sha512) => rsa::pss::BlindedSigningKey::<Sha512>::new(key)
            .sign_with_rng(&mut rng, message)
            .to_vec(),
    }
}

/// RustCrypto's verdict, or `None` when it cannot read the key or the signature.
fn theirs(n: &[u8], e: &[u8], scheme: (Padding, Hash), message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)) else {
        return false;
    };
    macro_rules! check {
        ($module:ident, $hash:ty) => {{
            let Ok(signature) = rsa::$module::Signature::try_from(signature) else {
                return false;
            };
            rsa::$module::VerifyingKey::<$hash>::new(key)
                .verify(message, &signature)
                .is_ok()
        }};
    }
    match scheme {
        (Padding::Pkcs1v15, Hash::Sha256) => check!(pkcs1v15, Sha256),
        (Padding::Pkcs1v15, Hash::Sha384) => check!(pkcs1v15, Sha384),
        (Padding::Pkcs1v15, Hash::Sha512) => check!(pkcs1v15, Sha512),
        (Padding::Pss, Hash::Sha256) => check!(pss, Sha256),
        (Padding::Pss, Hash::Sha384) => check!(pss, Sha384),
        (Padding::Pss, Hash::Sha512) => check!(pss, Sha512),
    }
}

fn ours(n: &[u8], e: &[u8], scheme: (Padding, Hash), message: &[u8], signature: &[u8]) -> bool {
    PublicKey::new(n, e).is_some_and(|key| key.verify(scheme.0, scheme.1, message, signature))
}

/// `value` as exactly `len` big-endian bytes, if it fits.
fn padded(value: &BigUint, len: usize) -> Option<Vec<u8>> {
    let bytes = value.to_bytes_be();
    (bytes.len() <= len).then(|| {
        let mut out = vec![0; len - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let [key_index, scheme_index, mode, seed, rest @ ..] = data else {
        return;
    };
    let key = &keys()[usize::from(*key_index) % keys().len()];
    let scheme = SCHEMES[usize::from(*scheme_index) % SCHEMES.len()];
    let k = key.n.len();
    // The message, then (position, xor) pairs that mutate what the mode builds.
    let split = rest.iter().position(|&b| b == b'|').unwrap_or(rest.len());
    let (message, edits) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let edit = |bytes: &mut Vec<u8>| {
        for pair in edits.chunks_exact(3) {
            let at = (usize::from(pair[0]) << 8 | usize::from(pair[1])) % bytes.len().max(1);
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= pair[2];
            }
        }
    };
    let valid = || sign(&key.private, scheme, message, u64::from(*seed));
    let (n, e, signature) = match mode % 5 {
        // The input as the signature, cut or padded to the modulus' length.
        0 => {
            let mut signature = edits.to_vec();
            signature.resize(k, 0);
            (key.n.clone(), key.e.clone(), signature)
        }
        // A real signature, bits flipped.
        1 => {
            let mut signature = valid();
            edit(&mut signature);
            (key.n.clone(), key.e.clone(), signature)
        }
        // The encoded block of a real signature changed, then signed again.
        2 => {
            let n = BigUint::from_bytes_be(&key.n);
            let block = BigUint::from_bytes_be(&valid()).modpow(key.private.e(), &n);
            let mut block = padded(&block, k).expect("below n");
            edit(&mut block);
            let block = BigUint::from_bytes_be(&block);
            if block >= n {
                return;
            }
            let signature = padded(&block.modpow(key.private.d(), &n), k).expect("below n");
            (key.n.clone(), key.e.clone(), signature)
        }
        // The signature plus the modulus, when it still has the modulus' length.
        3 => {
            let s = BigUint::from_bytes_be(&valid()) + BigUint::from_bytes_be(&key.n);
            let Some(signature) = padded(&s, k) else {
                return;
            };
            assert!(
                !ours(&key.n, &key.e, scheme, message, &signature),
                "s + n accepted ({scheme:?})"
            );
            (key.n.clone(), key.e.clone(), signature)
        }
        // A real signature under a key with a changed modulus.
        _ => {
            let mut n = key.n.clone();
            edit(&mut n);
            (n, key.e.clone(), valid())
        }
    };
    let ours = ours(&n, &e, scheme, message, &signature);
    let theirs = theirs(&n, &e, scheme, message, &signature);
    assert_eq!(
        ours,
        theirs,
        "modelgate {ours}, rsa {theirs} ({scheme:?}, mode {})",
        mode % 5
    );
});
