//! The signature checks under `jsonwebtoken`: our own verification-only crypto provider,
//! for exactly the algorithms the filter accepts (RS*, PS*, ES256, ES384, EdDSA).
//!
//! `jsonwebtoken` stays the JWT layer (header, claims, issuer and audience validation); it
//! is built without its `rust_crypto` feature, whose signers, HMAC, key-format parsers and
//! general big-number RSA were a third of the module and never ran. The checks themselves
//! are `modelgate_verify`'s (our RSA and P-384, RustCrypto's P-256 and Ed25519); this file
//! adapts them to `jsonwebtoken` and keeps prepared RSA keys per VM. Nothing here signs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use modelgate_verify::curves::{Curve, CurveKey};
use modelgate_verify::rsa::{self, Hash, Padding};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Installs the provider once per process (per VM in the filter). It must run before
/// anything else asks `jsonwebtoken` for its provider, which then stays fixed for the
/// process. Returns whether this provider is the one in force.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: no_signer,
        verifier_factory,
        key_utils: KeyUtils {
            rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
            rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
            ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
            ed_pub_components_from_private_key: no_ed_components,
            compute_digest,
        },
    };
    *INSTALLED.get_or_init(|| PROVIDER.install_default().is_ok())
}

thread_local! {
    static CHECKS: Cell<u64> = const { Cell::new(0) };
}

/// How many signatures this thread checked with this provider (tests and profiling).
pub fn checks() -> u64 {
    CHECKS.with(|c| c.get())
}

fn count_check() {
    CHECKS.with(|c| c.set(c.get() + 1));
}

/// The filter only verifies.
fn no_signer(_: &Algorithm, _: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn no_ed_components(_: &[u8], _: &EllipticCurve) -> JwtResult<Vec<u8>> {
    Err(ErrorKind::InvalidKeyFormat.into())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> JwtResult<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

/// A verifier for `alg` with `key`, refusing any key of another family: the algorithm
/// never picks how a key is read (no HMAC with a public key, no RSA key as an EC point).
fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let family_fits = key.family() == alg.family();
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512
            if family_fits =>
        {
            rsa_verifier(*alg, key)
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA if family_fits => {
            curve_verifier(*alg, key)
        }
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(ErrorKind::InvalidAlgorithm.into())
        }
        _ => Err(ErrorKind::InvalidKeyFormat.into()),
    }
}

/// Keys kept per VM; beyond that the table starts afresh (keys change rarely). Each holds
/// at most a few KiB (moduli are bounded), and a table started afresh costs each key one
/// preparation, about one more check, so a configuration with more RSA keys in use than
/// this costs at most twice per check, never more per token than its bounded checks.
const MAX_CACHED_KEYS: usize = 64;

/// The verifier for an RSA algorithm and key (the caller checked the key's family).
fn rsa_verifier(alg: Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let (hash, padding) = match alg {
        Algorithm::RS256 => (Hash::Sha256, Padding::Pkcs1v15),
        Algorithm::RS384 => (Hash::Sha384, Padding::Pkcs1v15),
        Algorithm::RS512 => (Hash::Sha512, Padding::Pkcs1v15),
        Algorithm::PS256 => (Hash::Sha256, Padding::Pss),
        Algorithm::PS384 => (Hash::Sha384, Padding::Pss),
        Algorithm::PS512 => (Hash::Sha512, Padding::Pss),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
        return Err(ErrorKind::InvalidKeyFormat.into());
    };
    let key = cached_key(n, e).ok_or(ErrorKind::InvalidRsaKey(String::new()))?;
    Ok(Box::new(RsaVerifier {
        key,
        hash,
        padding,
        alg,
    }))
}

/// Prepared keys by modulus, each with its exponent: looked up by borrowed bytes, so a check
/// copies nothing. Two keys with one modulus and different exponents take turns in a slot.
type KeyTable = HashMap<Vec<u8>, (Vec<u8>, Rc<rsa::PublicKey>)>;

thread_local! {
    static KEYS: RefCell<KeyTable> = RefCell::new(HashMap::new());
}

/// The prepared key `(n, e)`. Whatever route a key takes to get here, none past the
/// verifier's own bounds is ever prepared, nor copied into the table.
fn cached_key(n: &[u8], e: &[u8]) -> Option<Rc<rsa::PublicKey>> {
    if !rsa::within_bounds(n, e) {
        return None;
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some((exponent, key)) = keys.get(n)
            && exponent.as_slice() == e
        {
            return Some(key.clone());
        }
        let key = Rc::new(rsa::PublicKey::new(n, e)?);
        if keys.len() >= MAX_CACHED_KEYS && !keys.contains_key(n) {
            keys.clear();
        }
        keys.insert(n.to_vec(), (e.to_vec(), key.clone()));
        Some(key)
    })
}

struct RsaVerifier {
    key: Rc<rsa::PublicKey>,
    hash: Hash,
    padding: Padding,
    alg: Algorithm,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        count_check();
        if self.key.verify(self.padding, self.hash, message, signature) {
            Ok(())
        } else {
            Err(SignatureError::new())
        }
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// The curve an EC or EdDSA algorithm verifies on.
fn curve_of(alg: Algorithm) -> Option<Curve> {
    match alg {
        Algorithm::ES256 => Some(Curve::P256),
        Algorithm::ES384 => Some(Curve::P384),
        Algorithm::EdDSA => Some(Curve::Ed25519),
        _ => None,
    }
}

/// Whether `bytes` are a usable public key for `alg` (checked when a JWKS is compiled): an
/// uncompressed SEC1 point for ECDSA, the 32 raw bytes for Ed25519.
pub fn is_valid_key(alg: Algorithm, bytes: &[u8]) -> bool {
    curve_of(alg).is_some_and(|curve| modelgate_verify::curves::is_valid_key(curve, bytes))
}

/// The verifier for an EC or EdDSA algorithm and key (the caller checked the family).
fn curve_verifier(alg: Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let DecodingKeyKind::SecretOrDer(bytes) = key.kind() else {
        return Err(ErrorKind::InvalidKeyFormat.into());
    };
    let key = curve_of(alg)
        .and_then(|curve| CurveKey::read(curve, bytes))
        .ok_or(ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(CurveVerifier { key, alg }))
}

struct CurveVerifier {
    key: CurveKey,
    alg: Algorithm,
}

impl Verifier<Vec<u8>> for CurveVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        count_check();
        if self.key.verify(message, signature) {
            Ok(())
        } else {
            Err(SignatureError::new())
        }
    }
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

    fn key_parts(key: &TestKey) -> (Vec<u8>, Vec<u8>) {
        let jwk = key.jwk();
        (
            b64(jwk["n"].as_str().unwrap()),
            b64(jwk["e"].as_str().unwrap()),
        )
    }

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    #[test]
    fn agrees_with_the_rsa_crate_on_real_signatures() {
        let key = TestKey::rsa_a();
        let (n, e) = key_parts(&key);
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        for alg in crate::auth::keys::RSA_ALGORITHMS {
            let mut signer = key.clone();
            signer.alg = alg;
            let ours = rsa_verifier(alg, &decoding).unwrap();
            let theirs = (DEFAULT_PROVIDER.verifier_factory)(&alg, &decoding).unwrap();
            for i in 0..3 {
                let token = signer.sign(&serde_json::json!({"i": i, "exp": 1}));
                let (message, signature) = token.rsplit_once('.').unwrap();
                let signature = b64(signature);
                assert!(
                    ours.verify(message.as_bytes(), &signature).is_ok(),
                    "{alg:?}"
                );
                assert!(
                    theirs.verify(message.as_bytes(), &signature).is_ok(),
                    "{alg:?}"
                );
                // Any other message or a flipped bit fails both.
                let other = format!("{message}x");
                assert!(ours.verify(other.as_bytes(), &signature).is_err());
                for at in [0, 1, 100, 255] {
                    let mut flipped = signature.clone();
                    flipped[at] ^= 1;
                    assert!(ours.verify(message.as_bytes(), &flipped).is_err());
                    assert!(theirs.verify(message.as_bytes(), &flipped).is_err());
                }
                // A signature of the wrong length, of the value n itself, of zero.
                assert!(
                    ours.verify(message.as_bytes(), &signature[1..].to_vec())
                        .is_err()
                );
                assert!(ours.verify(message.as_bytes(), &n).is_err());
                assert!(ours.verify(message.as_bytes(), &vec![0; 256]).is_err());
                // The other key never verifies it.
                let (n_b, e_b) = key_parts(&TestKey::rsa_b());
                let other_key = DecodingKey::from_rsa_raw_components(&n_b, &e_b);
                let wrong = rsa_verifier(alg, &other_key).unwrap();
                assert!(wrong.verify(message.as_bytes(), &signature).is_err());
            }
        }
        assert_eq!(rsa::modulus_bits(&n), 2048);
    }

    /// The prepared-key table is keyed by modulus: a key with the same modulus and another
    /// exponent must get a key of its own, whichever was prepared first.
    #[test]
    fn one_modulus_with_two_exponents_never_shares_a_prepared_key() {
        let key = TestKey::rsa_a();
        let (n, e) = key_parts(&key);
        let token = key.sign(&serde_json::json!({"exp": 1}));
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = b64(signature);
        let real = DecodingKey::from_rsa_raw_components(&n, &e);
        let three = DecodingKey::from_rsa_raw_components(&n, &[3]);
        for _ in 0..2 {
            let ours = rsa_verifier(Algorithm::RS256, &real).unwrap();
            assert!(ours.verify(message.as_bytes(), &signature).is_ok());
            let other = rsa_verifier(Algorithm::RS256, &three).unwrap();
            assert!(other.verify(message.as_bytes(), &signature).is_err());
        }
    }

    #[test]
    fn pkcs1_and_pss_do_not_accept_each_other() {
        let key = TestKey::rsa_a();
        let (n, e) = key_parts(&key);
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        for (signed, checked) in [
            (Algorithm::RS256, Algorithm::PS256),
            (Algorithm::PS256, Algorithm::RS256),
            (Algorithm::RS256, Algorithm::RS384),
            (Algorithm::PS384, Algorithm::PS256),
        ] {
            let mut signer = key.clone();
            signer.alg = signed;
            let token = signer.sign(&serde_json::json!({"exp": 1}));
            let (message, signature) = token.rsplit_once('.').unwrap();
            let ours = rsa_verifier(checked, &decoding).unwrap();
            assert!(
                ours.verify(message.as_bytes(), &b64(signature)).is_err(),
                "{signed:?} as {checked:?}"
            );
        }
    }

    #[test]
    fn only_rsa_algorithms_and_keys() {
        let decoding = DecodingKey::from_rsa_raw_components(&[0x10, 0x01], &[3]);
        assert!(rsa_verifier(Algorithm::ES256, &decoding).is_err());
        assert!(rsa_verifier(Algorithm::HS256, &decoding).is_err());
        let ec = DecodingKey::from_ec_der(&[4; 65]);
        assert!(rsa_verifier(Algorithm::RS256, &ec).is_err());
        let even = DecodingKey::from_rsa_raw_components(&[0x10, 0x00], &[3]);
        assert!(rsa_verifier(Algorithm::RS256, &even).is_err());
    }

    #[test]
    fn keys_past_the_bounds_are_never_prepared_whatever_their_route() {
        // Straight DecodingKeys, never through crate::auth::keys: the verifier still refuses.
        let mut n = vec![0xc5u8; rsa::MAX_MODULUS_BITS / 8 + 1];
        n[0] = 1;
        let huge = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
        assert!(rsa_verifier(Algorithm::RS256, &huge).is_err(), "8193 bits");
        let at_ceiling = DecodingKey::from_rsa_raw_components(&n[1..], &[1, 0, 1]);
        assert!(
            rsa_verifier(Algorithm::RS256, &at_ceiling).is_ok(),
            "8192 bits"
        );
        for e in [
            &[1, 0, 0, 0, 1][..],
            &[1, 0, 0][..],
            &[1][..],
            &[][..],
            &[0xff; 512][..],
        ] {
            let key = DecodingKey::from_rsa_raw_components(&n[1..], e);
            assert!(rsa_verifier(Algorithm::RS256, &key).is_err(), "e = {e:?}");
        }
    }

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
            let ours = curve_verifier(alg, &decoding).unwrap();
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
        assert!(curve_verifier(Algorithm::ES384, &p256).is_err());
        assert!(curve_verifier(Algorithm::ES256, &p384).is_err());
        assert!(curve_verifier(Algorithm::EdDSA, &p256).is_err());
        assert!(curve_verifier(Algorithm::ES256, &ed).is_err());
        assert!(rsa_verifier(Algorithm::RS256, &p256).is_err());
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
        let p384 = curve_verifier(Algorithm::ES384, &public_key(&TestKey::ec_p384())).unwrap();
        assert!(p384.verify(message.as_bytes(), &signature).is_err());
        let ed = curve_verifier(Algorithm::EdDSA, &public_key(&TestKey::ed())).unwrap();
        assert!(ed.verify(message.as_bytes(), &signature).is_err());
    }
}
