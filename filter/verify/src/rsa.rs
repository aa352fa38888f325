//! RSA signature verification (RS256/384/512: PKCS#1 v1.5; PS256/384/512: PSS), ours.
//!
//! Verifying RS256 with the `rsa` crate costs about 200 µs natively and nearly 2 ms inside
//! Envoy's V8, almost all of it in its big-number Montgomery multiplication, and it re-reads
//! the key on every call. Verification only needs `s^e mod n` with a public exponent, so
//! this module does exactly that: 32-bit limbs (wasm32 multiplies 32x32->64 natively), CIOS
//! Montgomery multiplication, per-key constants computed once ([`PublicKey::new`]), then the
//! encoding check of RFC 8017: for PKCS#1 v1.5 a comparison of the whole encoded message
//! with the one expected (no parsing of the decrypted block), for PSS EMSA-PSS-VERIFY with
//! MGF1 and a salt as long as the hash (RFC 7518 3.5).
//!
//! No key over [`MAX_MODULUS_BITS`] bits or with an exponent [`public_exponent`] refuses is
//! ever prepared: a check costs at most 32 squarings and 32 multiplications modulo at most
//! 8192 bits. Narrower limits (the smallest modulus, the default largest) are the caller's
//! policy.

use sha2::{Digest, Sha256, Sha384, Sha512};

pub use crate::montgomery::strip_leading_zeros;
use crate::montgomery::{Modulus, from_be_bytes, less_than, to_be_bytes};

/// No key with a longer modulus is ever prepared, whatever the caller's limits: a check
/// costs about the cube of the modulus size, so 8192 bits already cost 8 times 4096.
pub const MAX_MODULUS_BITS: usize = 8192;

/// A public exponent this code uses, as a number: odd, at least 3 and below 2^32 (any RSA
/// key in use has 65537 or 3). Bounding it bounds the multiplications per check.
pub fn public_exponent(e: &[u8]) -> Option<u32> {
    let e = strip_leading_zeros(e);
    if e.len() > 4 {
        return None;
    }
    let value = e.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
    (value >= 3 && value % 2 == 1).then_some(value)
}

/// Whether a key is one this code ever prepares: a modulus of at most [`MAX_MODULUS_BITS`]
/// bits and an exponent [`public_exponent`] accepts. (An even modulus passes this and is
/// refused by [`PublicKey::new`].)
pub fn within_bounds(n: &[u8], e: &[u8]) -> bool {
    modulus_bits(n) <= MAX_MODULUS_BITS && public_exponent(e).is_some()
}

/// The modulus size in bits of an RSA key given as big-endian bytes.
pub fn modulus_bits(n: &[u8]) -> usize {
    let n = strip_leading_zeros(n);
    n.first()
        .map_or(0, |top| 8 * n.len() - top.leading_zeros() as usize)
}

/// The hash of a signature scheme (JWS: the number in RS256, PS384, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// The encoding of a signature (RFC 8017 section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// RSASSA-PKCS1-v1_5 (JWS `RS*`).
    Pkcs1v15,
    /// RSASSA-PSS with MGF1 of the same hash and a salt as long as the hash (JWS `PS*`).
    Pss,
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
pub struct PublicKey {
    modulus: Modulus,
    /// The exponent, big-endian bytes without leading zeros.
    e: Vec<u8>,
    /// Length of the modulus in bytes.
    byte_len: usize,
    /// Length of the modulus in bits.
    bits: usize,
}

impl PublicKey {
    /// Prepares the key `(n, e)`, big-endian bytes; `None` unless [`within_bounds`] and `n`
    /// is odd.
    pub fn new(n: &[u8], e: &[u8]) -> Option<Self> {
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

    /// Whether `signature` is a signature of `message` by this key, with `padding` and
    /// `hash`. The signature must be exactly as long as the modulus (RFC 7518 3.3).
    pub fn verify(&self, padding: Padding, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.byte_len {
            return false;
        }
        let Some(encoded) = self.public_op(signature) else {
            return false;
        };
        match padding {
            Padding::Pss => pss_encoding_holds(&encoded, self.bits - 1, hash, message),
            Padding::Pkcs1v15 => pkcs1_encoding_holds(&encoded, hash, message),
        }
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
    fn keys_past_the_bounds_are_never_prepared() {
        let mut n = vec![0xc5u8; MAX_MODULUS_BITS / 8 + 1];
        n[0] = 1;
        assert!(PublicKey::new(&n, &[1, 0, 1]).is_none(), "8193 bits");
        assert!(PublicKey::new(&n[1..], &[1, 0, 1]).is_some(), "8192 bits");
        for e in [
            &[1, 0, 0, 0, 1][..],
            &[1, 0, 0][..],
            &[1][..],
            &[][..],
            &[0xff; 512][..],
        ] {
            assert!(PublicKey::new(&n[1..], e).is_none(), "e = {e:?}");
        }
        assert!(PublicKey::new(&n, &[3]).is_none());
    }

    #[test]
    fn public_exponents_are_odd_and_below_2_pow_32() {
        assert_eq!(public_exponent(&[0, 1, 0, 1]), Some(65537));
        assert_eq!(public_exponent(&[3]), Some(3));
        assert_eq!(public_exponent(&[0, 0, 0, 0, 0, 1, 0, 1]), Some(65537));
        assert_eq!(public_exponent(&[0xff, 0xff, 0xff, 0xff]), Some(u32::MAX));
        assert_eq!(public_exponent(&[0xff, 0xff, 0xff, 0xfe]), None);
        assert_eq!(public_exponent(&[1, 0, 0, 0, 1]), None);
        assert_eq!(public_exponent(&[1]), None);
        assert_eq!(public_exponent(&[]), None);
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0, 0x01]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
