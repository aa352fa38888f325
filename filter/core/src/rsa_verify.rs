//! RSA signature verification (RS256/384/512: PKCS#1 v1.5; PS256/384/512: PSS), ours.
//!
//! Verifying RS256 with the `rsa` crate costs about 200 µs natively and nearly 2 ms inside
//! Envoy's V8, almost all of it in its big-number Montgomery multiplication, and it re-reads
//! the key on every call. Verification only needs `s^e mod n` with a public exponent, so
//! this module does exactly that: 32-bit limbs (wasm32 multiplies 32x32->64 natively), CIOS
//! Montgomery multiplication, per-key constants computed once and kept per VM, then the
//! encoding check of RFC 8017: for PKCS#1 v1.5 a comparison of the whole encoded message
//! with the one expected (no parsing of the decrypted block), for PSS EMSA-PSS-VERIFY with
//! MGF1 and a salt as long as the hash (RFC 7518 3.5).
//!
//! Whatever route a key takes to get here, no key over [`MAX_RSA_BITS_CEILING`] bits or
//! with an exponent outside [`crate::auth::keys`]' bounds is ever prepared or used: a check costs
//! at most 32 squarings and 32 multiplications modulo at most 8192 bits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::auth::keys::{MAX_RSA_BITS_CEILING, rsa_exponent};
use crate::montgomery::{Modulus, from_be_bytes, less_than, strip_leading_zeros, to_be_bytes};

/// Keys kept per VM; beyond that the table starts afresh (keys change rarely). Each holds
/// at most a few KiB (moduli are bounded), and a table started afresh costs each key one
/// preparation, about one more check, so a configuration with more RSA keys in use than
/// this costs at most twice per check, never more per token than its bounded checks.
const MAX_CACHED_KEYS: usize = 64;

/// The verifier for an RSA algorithm and key (the caller checked the key's family).
pub(crate) fn verifier(alg: Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let (hash, pss) = match alg {
        Algorithm::RS256 => (Hash::Sha256, false),
        Algorithm::RS384 => (Hash::Sha384, false),
        Algorithm::RS512 => (Hash::Sha512, false),
        Algorithm::PS256 => (Hash::Sha256, true),
        Algorithm::PS384 => (Hash::Sha384, true),
        Algorithm::PS512 => (Hash::Sha512, true),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
        return Err(ErrorKind::InvalidKeyFormat.into());
    };
    let key = cached_key(n, e).ok_or(ErrorKind::InvalidRsaKey(String::new()))?;
    Ok(Box::new(RsaVerifier {
        key,
        hash,
        pss,
        alg,
    }))
}

/// Prepared keys by (modulus, exponent).
type KeyTable = HashMap<(Vec<u8>, Vec<u8>), Rc<PublicKey>>;

thread_local! {
    static KEYS: RefCell<KeyTable> = RefCell::new(HashMap::new());
}

fn cached_key(n: &[u8], e: &[u8]) -> Option<Rc<PublicKey>> {
    if !within_bounds(n, e) {
        return None;
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let id = (n.to_vec(), e.to_vec());
        if let Some(key) = keys.get(&id) {
            return Some(key.clone());
        }
        let key = Rc::new(PublicKey::new(n, e)?);
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(id, key.clone());
        Some(key)
    })
}

/// Whether a key is one this verifier ever uses: a modulus of at most
/// [`MAX_RSA_BITS_CEILING`] bits and an odd exponent of at least 3 below 2^32. The lower
/// bound on the modulus is policy, checked where keys are compiled ([`crate::auth::keys`]).
fn within_bounds(n: &[u8], e: &[u8]) -> bool {
    modulus_bits(n) <= MAX_RSA_BITS_CEILING && rsa_exponent(e).is_some()
}

/// The modulus size in bits of an RSA key given as big-endian bytes.
pub fn modulus_bits(n: &[u8]) -> usize {
    let n = strip_leading_zeros(n);
    n.first()
        .map_or(0, |top| 8 * n.len() - top.leading_zeros() as usize)
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// DER of the DigestInfo that precedes the hash in EMSA-PKCS1-v1_5 (RFC 8017 9.2).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

struct RsaVerifier {
    key: Rc<PublicKey>,
    hash: Hash,
    pss: bool,
    alg: Algorithm,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        crate::crypto::count_check();
        if signature.len() != self.key.byte_len {
            return Err(SignatureError::new());
        }
        let encoded = self
            .key
            .public_op(signature)
            .ok_or_else(SignatureError::new)?;
        let good = if self.pss {
            pss_encoding_holds(&encoded, self.key.bits - 1, self.hash, message)
        } else {
            pkcs1_encoding_holds(&encoded, self.hash, message)
        };
        if good {
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

/// EMSA-PKCS1-v1_5 (RFC 8017 9.2): the block must be exactly the one expected.
fn pkcs1_encoding_holds(encoded: &[u8], hash: Hash, message: &[u8]) -> bool {
    let k = encoded.len();
    let prefix = hash.digest_info_prefix();
    let digest = hash.digest(&[message]);
    let t_len = prefix.len() + digest.len();
    if k < t_len + 11 {
        return false;
    }
    let padding = k - t_len - 3;
    encoded[0] == 0x00
        && encoded[1] == 0x01
        && encoded[2..2 + padding].iter().all(|b| *b == 0xff)
        && encoded[2 + padding] == 0x00
        && &encoded[k - t_len..k - digest.len()] == prefix
        && encoded[k - digest.len()..] == digest[..]
}

/// EMSA-PSS-VERIFY (RFC 8017 9.1.2) with MGF1 of the same hash and a salt of the hash's
/// length. `encoded` is the k-byte result of the public operation; `em_bits` is the
/// modulus size in bits minus one.
fn pss_encoding_holds(encoded: &[u8], em_bits: usize, hash: Hash, message: &[u8]) -> bool {
    let em_len = em_bits.div_ceil(8);
    // With em_bits a multiple of 8 the encoded message is one byte shorter than k, and the
    // leading byte of the public operation's result must be zero.
    let (lead, em) = encoded.split_at(encoded.len() - em_len);
    if lead.iter().any(|b| *b != 0) {
        return false;
    }
    let h_len = hash.len();
    let s_len = h_len;
    if em_len < h_len + s_len + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - h_len - 1);
    let h = &rest[..h_len];
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    let mut db = masked_db.to_vec();
    let mut counter = 0u32;
    let mut at = 0;
    while at < db.len() {
        let mask = hash.digest(&[h, &counter.to_be_bytes()]);
        for (byte, m) in db[at..].iter_mut().zip(&mask) {
            *byte ^= m;
        }
        at += mask.len();
        counter += 1;
    }
    db[0] &= top_mask;
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|b| *b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[ps_len + 1..];
    let m_hash = hash.digest(&[message]);
    hash.digest(&[&[0u8; 8], &m_hash, salt]) == h
}

/// An RSA public key prepared for Montgomery arithmetic.
struct PublicKey {
    modulus: Modulus,
    /// The exponent, big-endian bytes without leading zeros.
    e: Vec<u8>,
    /// Length of the modulus in bytes.
    byte_len: usize,
    /// Length of the modulus in bits.
    bits: usize,
}

impl PublicKey {
    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        if !within_bounds(n, e) {
            return None;
        }
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e).to_vec();
        // An even modulus has no Montgomery form (and is no RSA key).
        Some(Self {
            modulus: Modulus::new(n)?,
            e,
            byte_len: n.len(),
            bits: modulus_bits(n),
        })
    }

    /// `s^e mod n` as `byte_len` big-endian bytes, or `None` when `s >= n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let m = &self.modulus;
        let s = from_be_bytes(strip_leading_zeros(signature), m.limbs());
        if !less_than(&s, &m.n) {
            return None;
        }
        let base = m.to_mont(&s);
        let mut acc = base.clone();
        let mut bits = self
            .e
            .iter()
            .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1 == 1));
        // Skip up to and including the leading one bit: `acc` already holds base^1.
        bits.by_ref().find(|bit| *bit);
        // A product of 2k + 1 limbs, reused by every squaring (e = 65537: 16 of them).
        let mut wide = m.wide();
        for bit in bits {
            acc = m.sqr(&acc, &mut wide);
            if bit {
                acc = m.mul(&acc, &base);
            }
        }
        let plain = m.out_of_mont(&acc, &mut wide);
        Some(to_be_bytes(&plain, self.byte_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_testkit::TestKey;

    fn key_parts(key: &TestKey) -> (Vec<u8>, Vec<u8>) {
        let jwk = key.jwk();
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        (
            b64(jwk["n"].as_str().unwrap()),
            b64(jwk["e"].as_str().unwrap()),
        )
    }

    #[test]
    fn public_op_matches_modular_exponentiation_on_small_numbers() {
        // n = 3233 (61 * 53), e = 17: 65^17 mod 3233 = 2790 (the textbook example).
        let key = PublicKey::new(&3233u32.to_be_bytes(), &[17]).unwrap();
        let out = key.public_op(&65u32.to_be_bytes()[2..]).unwrap();
        assert_eq!(u32::from(out[0]) << 8 | u32::from(out[1]), 2790);
        assert!(
            key.public_op(&3233u16.to_be_bytes()).is_none(),
            "s >= n is refused"
        );
        assert!(
            PublicKey::new(&[0x10, 0x00], &[3]).is_none(),
            "even modulus"
        );
        assert!(PublicKey::new(&[0x10, 0x01], &[1]).is_none(), "e = 1");
    }

    fn b64(text: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap()
    }

    #[test]
    fn agrees_with_the_rsa_crate_on_real_signatures() {
        use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        let key = TestKey::rsa_a();
        let (n, e) = key_parts(&key);
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        for alg in crate::auth::keys::RSA_ALGORITHMS {
            let mut signer = key.clone();
            signer.alg = alg;
            let ours = verifier(alg, &decoding).unwrap();
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
                let wrong = verifier(alg, &other_key).unwrap();
                assert!(wrong.verify(message.as_bytes(), &signature).is_err());
            }
        }
        assert_eq!(PublicKey::new(&n, &e).unwrap().byte_len, 256);
        assert_eq!(modulus_bits(&n), 2048);
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
            let ours = verifier(checked, &decoding).unwrap();
            assert!(
                ours.verify(message.as_bytes(), &b64(signature)).is_err(),
                "{signed:?} as {checked:?}"
            );
        }
    }

    #[test]
    fn only_rsa_algorithms_and_keys() {
        let decoding = DecodingKey::from_rsa_raw_components(&[0x10, 0x01], &[3]);
        assert!(verifier(Algorithm::ES256, &decoding).is_err());
        assert!(verifier(Algorithm::HS256, &decoding).is_err());
        let ec = DecodingKey::from_ec_der(&[4; 65]);
        assert!(verifier(Algorithm::RS256, &ec).is_err());
        let even = DecodingKey::from_rsa_raw_components(&[0x10, 0x00], &[3]);
        assert!(verifier(Algorithm::RS256, &even).is_err());
    }

    #[test]
    fn keys_past_the_bounds_are_never_prepared_whatever_their_route() {
        // Straight DecodingKeys, never through crate::auth::keys: the verifier still refuses.
        let mut n = vec![0xc5u8; MAX_RSA_BITS_CEILING / 8 + 1];
        n[0] = 1;
        let huge = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
        assert!(verifier(Algorithm::RS256, &huge).is_err(), "8193 bits");
        let at_ceiling = DecodingKey::from_rsa_raw_components(&n[1..], &[1, 0, 1]);
        assert!(verifier(Algorithm::RS256, &at_ceiling).is_ok(), "8192 bits");
        for e in [
            &[1, 0, 0, 0, 1][..],
            &[1, 0, 0][..],
            &[1][..],
            &[][..],
            &[0xff; 512][..],
        ] {
            let key = DecodingKey::from_rsa_raw_components(&n[1..], e);
            assert!(verifier(Algorithm::RS256, &key).is_err(), "e = {e:?}");
            assert!(PublicKey::new(&n[1..], e).is_none(), "e = {e:?}");
        }
        assert!(PublicKey::new(&n, &[3]).is_none());
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0, 0x01]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
