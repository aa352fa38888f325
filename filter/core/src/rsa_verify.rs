//! A faster RSA PKCS#1 v1.5 signature check under `jsonwebtoken`.
//!
//! Verifying RS256 with the `rsa` crate costs about 200 µs natively and nearly 2 ms inside
//! Envoy's V8, almost all of it in its big-number Montgomery multiplication, and it re-reads
//! the key on every call. Verification only needs `s^e mod n` with a public exponent, so
//! this module does exactly that: 32-bit limbs (wasm32 multiplies 32x32->64 natively), CIOS
//! Montgomery multiplication, per-key constants computed once and kept per VM, and a
//! comparison of the whole encoded message with the one expected (no parsing of the
//! decrypted block). `jsonwebtoken` stays the JWT layer: this is installed as its crypto
//! provider and every other algorithm goes to its own RustCrypto provider.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Keys kept per VM; beyond that the table starts afresh (keys change rarely).
const MAX_CACHED_KEYS: usize = 64;

/// Installs the provider once per process (per VM in the filter). It must run before
/// anything else asks `jsonwebtoken` for its provider (even building a JWK does), which
/// then stays fixed for the process. Returns whether this provider is the one in force;
/// if not, verification is still correct, only slower.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let provider: &'static CryptoProvider = Box::leak(Box::new(CryptoProvider {
            signer_factory: DEFAULT_PROVIDER.signer_factory,
            verifier_factory,
            key_utils: DEFAULT_PROVIDER.key_utils.clone(),
        }));
        provider.install_default().is_ok()
    })
}

thread_local! {
    static FAST_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many signatures this thread checked with the fast path (tests and profiling).
pub fn fast_checks() -> u64 {
    FAST_CHECKS.with(|c| c.get())
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let hash = match alg {
        Algorithm::RS256 => Hash::Sha256,
        Algorithm::RS384 => Hash::Sha384,
        Algorithm::RS512 => Hash::Sha512,
        _ => return (DEFAULT_PROVIDER.verifier_factory)(alg, key),
    };
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            let key = cached_key(n, e).ok_or(ErrorKind::InvalidRsaKey(String::new()))?;
            Ok(Box::new(Pkcs1Verifier {
                key,
                hash,
                alg: *alg,
            }))
        }
        DecodingKeyKind::SecretOrDer(_) => (DEFAULT_PROVIDER.verifier_factory)(alg, key),
    }
}

/// Prepared keys by (modulus, exponent).
type KeyTable = HashMap<(Vec<u8>, Vec<u8>), Rc<PublicKey>>;

thread_local! {
    static KEYS: RefCell<KeyTable> = RefCell::new(HashMap::new());
}

fn cached_key(n: &[u8], e: &[u8]) -> Option<Rc<PublicKey>> {
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

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

struct Pkcs1Verifier {
    key: Rc<PublicKey>,
    hash: Hash,
    alg: Algorithm,
}

impl Verifier<Vec<u8>> for Pkcs1Verifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        FAST_CHECKS.with(|c| c.set(c.get() + 1));
        let k = self.key.byte_len;
        if signature.len() != k {
            return Err(SignatureError::new());
        }
        let decrypted = self
            .key
            .public_op(signature)
            .ok_or_else(SignatureError::new)?;
        let prefix = self.hash.digest_info_prefix();
        let hash = self.hash.digest(message);
        let t_len = prefix.len() + hash.len();
        if k < t_len + 11 {
            return Err(SignatureError::new());
        }
        let mut expected = Vec::with_capacity(k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(k - t_len - 1, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&hash);
        if decrypted == expected {
            Ok(())
        } else {
            Err(SignatureError::new())
        }
    }
}

impl JwtVerifier for Pkcs1Verifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// An RSA public key prepared for Montgomery arithmetic (little-endian 32-bit limbs).
struct PublicKey {
    n: Vec<u32>,
    /// `-n^-1 mod 2^32`.
    n0_inv: u32,
    /// `R^2 mod n` with `R = 2^(32 * limbs)`.
    r2: Vec<u32>,
    /// The exponent, big-endian bytes without leading zeros.
    e: Vec<u8>,
    /// Length of the modulus in bytes.
    byte_len: usize,
}

impl PublicKey {
    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e).to_vec();
        // An even modulus has no Montgomery form (and is no RSA key); e must be > 1.
        if n.is_empty() || n[n.len() - 1] & 1 == 0 || e.is_empty() || e == [1] {
            return None;
        }
        let limbs = from_be_bytes(n, n.len().div_ceil(4));
        let n0_inv = inverse_mod_2_32(limbs[0]).wrapping_neg();
        let r2 = r_squared(&limbs);
        Some(Self {
            n: limbs,
            n0_inv,
            r2,
            e,
            byte_len: n.len(),
        })
    }

    /// `s^e mod n` as `byte_len` big-endian bytes, or `None` when `s >= n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let s = from_be_bytes(strip_leading_zeros(signature), self.n.len());
        if !less_than(&s, &self.n) {
            return None;
        }
        let base = self.mont_mul(&s, &self.r2);
        let mut acc = base.clone();
        let mut bits = self
            .e
            .iter()
            .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1 == 1));
        // Skip up to and including the leading one bit: `acc` already holds base^1.
        bits.by_ref().find(|bit| *bit);
        for bit in bits {
            acc = self.mont_mul(&acc, &acc);
            if bit {
                acc = self.mont_mul(&acc, &base);
            }
        }
        let mut one = vec![0u32; self.n.len()];
        one[0] = 1;
        let plain = self.mont_mul(&acc, &one);
        Some(to_be_bytes(&plain, self.byte_len))
    }

    /// `a * b * R^-1 mod n` (coarsely integrated operand scanning). Slices are cut to
    /// their exact lengths up front so the compiler can drop the bounds checks from the
    /// inner loops, which run `2 * limbs^2` times per call.
    fn mont_mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let (n, a, b) = (&self.n[..k], &a[..k], &b[..k]);
        let mut t = vec![0u32; k + 2];
        let (low, high) = t.split_at_mut(k);
        let high = &mut high[..2];
        for &bi in b {
            let bi = u64::from(bi);
            let mut carry = 0u64;
            for (tj, &aj) in low.iter_mut().zip(a) {
                let s = u64::from(*tj) + u64::from(aj) * bi + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(high[0]) + carry;
            high[0] = s as u32;
            high[1] = (s >> 32) as u32;

            let m = u64::from(low[0].wrapping_mul(self.n0_inv));
            let mut carry = (u64::from(low[0]) + m * u64::from(n[0])) >> 32;
            for j in 1..k {
                let s = u64::from(low[j]) + m * u64::from(n[j]) + carry;
                low[j - 1] = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(high[0]) + carry;
            low[k - 1] = s as u32;
            high[0] = high[1] + (s >> 32) as u32;
            high[1] = 0;
        }
        let overflow = high[0] != 0;
        t.truncate(k);
        if overflow || !less_than(&t, n) {
            subtract_in_place(&mut t, n);
        }
        t
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Big-endian bytes to `limbs` little-endian 32-bit limbs (the bytes must fit).
fn from_be_bytes(bytes: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs.max(bytes.len().div_ceil(4))];
    for (i, byte) in bytes.iter().rev().enumerate() {
        out[i / 4] |= u32::from(*byte) << (8 * (i % 4));
    }
    out
}

fn to_be_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    (0..len)
        .rev()
        .map(|i| {
            limbs
                .get(i / 4)
                .map_or(0, |limb| (limb >> (8 * (i % 4))) as u8)
        })
        .collect()
}

/// `a < b` for numbers of `b.len()` limbs (extra limbs of `a` must be zero to be less).
fn less_than(a: &[u32], b: &[u32]) -> bool {
    if a[b.len()..].iter().any(|limb| *limb != 0) {
        return false;
    }
    for i in (0..b.len()).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

/// `a -= b` modulo `2^(32 * a.len())`.
fn subtract_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (i, limb) in a.iter_mut().enumerate() {
        let sub = u64::from(b.get(i).copied().unwrap_or(0)) + borrow;
        let value = u64::from(*limb);
        *limb = value.wrapping_sub(sub) as u32;
        borrow = u64::from(value < sub);
    }
}

/// The inverse of an odd number modulo 2^32 (Newton's iteration doubles the correct bits).
fn inverse_mod_2_32(odd: u32) -> u32 {
    let mut x = 1u32;
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(odd.wrapping_mul(x)));
    }
    x
}

/// `R^2 mod n` by doubling 1 modulo n, `2 * 32 * limbs` times (once per key).
fn r_squared(n: &[u32]) -> Vec<u32> {
    let mut x = vec![0u32; n.len()];
    x[0] = 1;
    for _ in 0..(64 * n.len()) {
        let mut carry = 0u32;
        for limb in x.iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if carry != 0 || !less_than(&x, n) {
            subtract_in_place(&mut x, n);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::crypto::verify;
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
    fn inverse_and_r_squared_are_right_on_small_numbers() {
        for odd in [1u32, 3, 0xffff_ffff, 0x1234_5679] {
            assert_eq!(odd.wrapping_mul(inverse_mod_2_32(odd)), 1);
        }
        // n = 2^32 + 15 (two limbs): R = 2^64, R^2 mod n computed with u128.
        let n = [15u32, 1];
        let n128 = (1u128 << 32) + 15;
        let r = (1u128 << 64) % n128;
        let expected = (r * r) % n128;
        let got = r_squared(&n);
        assert_eq!(u128::from(got[0]) | (u128::from(got[1]) << 32), expected);
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

    #[test]
    fn agrees_with_the_rsa_crate_on_real_signatures() {
        let key = TestKey::rsa_a();
        let (n, e) = key_parts(&key);
        let fast = PublicKey::new(&n, &e).unwrap();
        for (alg, hash) in [
            (Algorithm::RS256, Hash::Sha256),
            (Algorithm::RS384, Hash::Sha384),
            (Algorithm::RS512, Hash::Sha512),
        ] {
            let mut signer = key.clone();
            signer.alg = alg;
            for i in 0..5 {
                let token = signer.sign(&serde_json::json!({"i": i, "exp": 1}));
                let (message, signature) = token.rsplit_once('.').unwrap();
                let signature_bytes = {
                    use base64::Engine;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(signature)
                        .unwrap()
                };
                let ours = Pkcs1Verifier {
                    key: Rc::new(PublicKey::new(&n, &e).unwrap()),
                    hash,
                    alg,
                };
                assert!(
                    ours.verify(message.as_bytes(), &signature_bytes).is_ok(),
                    "{alg:?}"
                );
                let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
                assert!(verify(signature, message.as_bytes(), &decoding, alg).unwrap());
                // Any other message or a flipped bit fails both.
                let other = format!("{message}x");
                assert!(ours.verify(other.as_bytes(), &signature_bytes).is_err());
                let mut flipped = signature_bytes.clone();
                flipped[100] ^= 1;
                assert!(ours.verify(message.as_bytes(), &flipped).is_err());
                assert!(
                    (DEFAULT_PROVIDER.verifier_factory)(&alg, &decoding)
                        .unwrap()
                        .verify(message.as_bytes(), &flipped)
                        .is_err()
                );
                // A signature of the wrong length, or of the value n itself.
                assert!(
                    ours.verify(message.as_bytes(), &signature_bytes[1..].to_vec())
                        .is_err()
                );
                assert!(ours.verify(message.as_bytes(), &n).is_err());
            }
        }
        assert_eq!(fast.byte_len, 256);
    }
}
