//! ECDSA verification on P-384 (ES384) over the Montgomery arithmetic of
//! [`crate::montgomery`]: the `p384` crate's fully unrolled field and scalar arithmetic was
//! a fifth of the module's code, for an algorithm few issuers use. This generic code is
//! about 3 times slower than `p384` natively (2.8 vs 0.9 ms per check), a price paid once
//! per token (then cached). ES256 stays on the `p256` crate, which is small and 4 times
//! faster than this code; the code also runs P-256 in tests, where RustCrypto checks every
//! result. Verification touches public values only, so nothing here is constant-time;
//! every input is range-checked (keys must be points of the curve, `0 < r, s < n`).
//!
//! Points are kept in Jacobian coordinates `(X, Y, Z)` for `(X/Z^2, Y/Z^3)`, `Z = 0` the
//! point at infinity, coordinates in Montgomery form. Both curves have `a = -3` and prime
//! order, so a point of the curve is a point of the group.

use std::cell::RefCell;

use sha2::{Digest, Sha384};

use crate::montgomery::{Modulus, from_be_bytes, less_than, one, subtract_in_place};

/// The curves this code verifies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CurveId {
    /// Tests only (production ES256 uses the `p256` crate).
    #[cfg(test)]
    P256,
    P384,
}

/// A curve's constants, prepared once per thread.
struct Curve {
    /// The field modulus `p`.
    p: Modulus,
    /// The group order `n`.
    n: Modulus,
    /// `n - 2` big-endian: the exponent of a Fermat inverse modulo `n`.
    n_minus_2: Vec<u8>,
    /// `b` in Montgomery form modulo `p`.
    b: Vec<u32>,
    /// The base point (affine, Montgomery form).
    g: (Vec<u32>, Vec<u32>),
    /// Bytes of a field element or a scalar.
    bytes: usize,
}

impl Curve {
    fn new(p: &str, n: &str, b: &str, gx: &str, gy: &str) -> Option<Self> {
        let p = Modulus::new(&hex(p))?;
        let n_bytes = hex(n);
        let n = Modulus::new(&n_bytes)?;
        let bytes = n_bytes.len();
        let mut n_minus_2 = n.n.clone();
        subtract_in_place(&mut n_minus_2, &[2]);
        let field = |text: &str| p.to_mont(&from_be_bytes(&hex(text), p.limbs()));
        Some(Self {
            b: field(b),
            g: (field(gx), field(gy)),
            n_minus_2: to_be(&n_minus_2, bytes),
            p,
            n,
            bytes,
        })
    }

    #[cfg(test)]
    fn p256() -> Option<Self> {
        Self::new(
            "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
            "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
            "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        )
    }

    fn p384() -> Option<Self> {
        Self::new(
            "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
            "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
            "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
            "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
        )
    }

    /// Whether affine `(x, y)` (Montgomery form) satisfies `y^2 = x^3 - 3x + b`.
    fn on_curve(&self, x: &[u32], y: &[u32], f: &Field<'_>) -> bool {
        let y2 = f.sqr(y);
        let x3 = f.mul(&f.sqr(x), x);
        let three_x = f.add(&f.add(x, x), x);
        let rhs = f.add(&f.sub(&x3, &three_x), &self.b);
        y2 == rhs
    }
}

thread_local! {
    #[cfg(test)]
    static P256: Option<Curve> = Curve::p256();
    static P384: Option<Curve> = Curve::p384();
}

fn with_curve<T>(id: CurveId, run: impl FnOnce(&Curve) -> Option<T>) -> Option<T> {
    let pick = |curve: &Option<Curve>| curve.as_ref().and_then(run);
    match id {
        #[cfg(test)]
        CurveId::P256 => P256.with(pick),
        CurveId::P384 => P384.with(pick),
    }
}

/// A public key: a point of the curve (affine, Montgomery form).
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    curve: CurveId,
    x: Vec<u32>,
    y: Vec<u32>,
}

impl PublicKey {
    /// Reads an uncompressed SEC1 point `04 || x || y`; `None` unless it is a point of
    /// the curve (the point at infinity has no such encoding).
    pub(crate) fn from_sec1(curve: CurveId, bytes: &[u8]) -> Option<Self> {
        with_curve(curve, |c| {
            if bytes.len() != 1 + 2 * c.bytes || bytes[0] != 4 {
                return None;
            }
            let (x, y) = bytes[1..].split_at(c.bytes);
            let f = Field::new(&c.p);
            let (x, y) = (f.element(x)?, f.element(y)?);
            c.on_curve(&x, &y, &f).then_some(Self { curve, x, y })
        })
    }

    /// Verifies a JWS ECDSA signature (`r || s`, RFC 7518 3.4) of `message`, hashed with
    /// SHA-256 on P-256 and SHA-384 on P-384.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest = match self.curve {
            #[cfg(test)]
            CurveId::P256 => sha2::Sha256::digest(message).to_vec(),
            CurveId::P384 => Sha384::digest(message).to_vec(),
        };
        with_curve(self.curve, |c| {
            self.verify_digest(c, &digest, signature).then_some(())
        })
        .is_some()
    }

    fn verify_digest(&self, c: &Curve, digest: &[u8], signature: &[u8]) -> bool {
        if signature.len() != 2 * c.bytes || digest.len() != c.bytes {
            return false;
        }
        let k = c.n.limbs();
        let (r, s) = signature.split_at(c.bytes);
        let (r, s) = (from_be_bytes(r, k), from_be_bytes(s, k));
        let zero = vec![0u32; k];
        if r == zero || s == zero || !less_than(&r, &c.n.n) || !less_than(&s, &c.n.n) {
            return false;
        }
        // The digest is as long as the order, so reducing it takes one subtraction at most.
        let mut e = from_be_bytes(digest, k);
        if !less_than(&e, &c.n.n) {
            subtract_in_place(&mut e, &c.n.n);
        }
        let mut wide = c.n.wide();
        let w = c.n.pow(&c.n.to_mont(&s), &c.n_minus_2, &mut wide);
        let u1 = c.n.out_of_mont(&c.n.mul(&c.n.to_mont(&e), &w), &mut wide);
        let u2 = c.n.out_of_mont(&c.n.mul(&c.n.to_mont(&r), &w), &mut wide);

        let f = Field::new(&c.p);
        let acc = f.double_mul(&u1, &c.g, &u2, (&self.x, &self.y));
        if acc.is_infinity() {
            return false;
        }
        // x(acc) mod n == r, without inverting Z: X == x * Z^2 for x = r or r + n (< p).
        let z2 = f.sqr(&acc.z);
        let matches = |x: &[u32]| f.mul(&f.p.to_mont(x), &z2) == acc.x;
        if matches(&r) {
            return true;
        }
        let mut r_plus_n = r.clone();
        r_plus_n.push(0);
        let mut carry = 0u64;
        for (limb, n) in r_plus_n.iter_mut().zip(c.n.n.iter().chain([&0])) {
            let sum = u64::from(*limb) + u64::from(*n) + carry;
            *limb = sum as u32;
            carry = sum >> 32;
        }
        less_than(&r_plus_n, &c.p.n) && matches(&r_plus_n[..k])
    }
}

/// A point in Jacobian coordinates.
#[derive(Debug, Clone)]
struct Point {
    x: Vec<u32>,
    y: Vec<u32>,
    z: Vec<u32>,
}

impl Point {
    fn infinity(limbs: usize) -> Self {
        Self {
            x: vec![0; limbs],
            y: vec![0; limbs],
            z: vec![0; limbs],
        }
    }

    fn affine(x: &[u32], y: &[u32], f: &Field<'_>) -> Self {
        Self {
            x: x.to_vec(),
            y: y.to_vec(),
            z: f.one.clone(),
        }
    }

    fn is_infinity(&self) -> bool {
        self.z.iter().all(|limb| *limb == 0)
    }
}

/// Field arithmetic modulo `p` in Montgomery form, with its scratch buffer.
struct Field<'a> {
    p: &'a Modulus,
    wide: RefCell<Vec<u32>>,
    one: Vec<u32>,
}

impl<'a> Field<'a> {
    fn new(p: &'a Modulus) -> Self {
        Self {
            p,
            wide: RefCell::new(p.wide()),
            one: p.to_mont(&one(p.limbs())),
        }
    }

    /// A big-endian field element, in Montgomery form; `None` unless it is below `p`.
    fn element(&self, bytes: &[u8]) -> Option<Vec<u32>> {
        let value = from_be_bytes(bytes, self.p.limbs());
        (value.len() == self.p.limbs() && less_than(&value, &self.p.n))
            .then(|| self.p.to_mont(&value))
    }

    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.p.mul(a, b)
    }

    fn sqr(&self, a: &[u32]) -> Vec<u32> {
        self.p.sqr(a, &mut self.wide.borrow_mut())
    }

    fn add(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.p.add(a, b)
    }

    fn sub(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.p.sub(a, b)
    }

    /// `u1 G + u2 Q` for affine `G` and `Q`, both scalars at once (Shamir's trick): one
    /// doubling per bit, one addition per bit where either scalar has a one.
    fn double_mul(
        &self,
        u1: &[u32],
        g: &(Vec<u32>, Vec<u32>),
        u2: &[u32],
        q: (&Vec<u32>, &Vec<u32>),
    ) -> Point {
        let g = Point::affine(&g.0, &g.1, self);
        let q = Point::affine(q.0, q.1, self);
        let g_plus_q = self.add_points(&g, &q);
        let limbs = u1.len().max(u2.len());
        let mut acc = Point::infinity(self.p.limbs());
        for i in (0..32 * limbs).rev() {
            acc = self.double(&acc);
            let bit = |u: &[u32]| {
                u.get(i / 32)
                    .is_some_and(|limb| (limb >> (i % 32)) & 1 == 1)
            };
            let addend = match (bit(u1), bit(u2)) {
                (true, true) => &g_plus_q,
                (true, false) => &g,
                (false, true) => &q,
                (false, false) => continue,
            };
            acc = self.add_points(&acc, addend);
        }
        acc
    }

    /// `2P` (EFD dbl-2001-b, for `a = -3`); the point at infinity, or a point with
    /// `Y = 0`, doubles to infinity (`Z3 = 2 Y Z = 0`).
    fn double(&self, pt: &Point) -> Point {
        if pt.is_infinity() {
            return pt.clone();
        }
        let delta = self.sqr(&pt.z);
        let gamma = self.sqr(&pt.y);
        let beta = self.mul(&pt.x, &gamma);
        let t = self.mul(&self.sub(&pt.x, &delta), &self.add(&pt.x, &delta));
        let alpha = self.add(&self.add(&t, &t), &t);
        let beta2 = self.add(&beta, &beta);
        let beta4 = self.add(&beta2, &beta2);
        let beta8 = self.add(&beta4, &beta4);
        let x3 = self.sub(&self.sqr(&alpha), &beta8);
        let y_plus_z = self.add(&pt.y, &pt.z);
        let z3 = self.sub(&self.sub(&self.sqr(&y_plus_z), &gamma), &delta);
        let gamma2 = self.sqr(&gamma);
        let gamma2_2 = self.add(&gamma2, &gamma2);
        let gamma2_4 = self.add(&gamma2_2, &gamma2_2);
        let gamma2_8 = self.add(&gamma2_4, &gamma2_4);
        let y3 = self.sub(&self.mul(&alpha, &self.sub(&beta4, &x3)), &gamma2_8);
        Point {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P1 + P2` (EFD add-2007-bl), with the cases the formula does not cover: either
    /// point at infinity, `P1 = P2` (doubling) and `P1 = -P2` (infinity).
    fn add_points(&self, p1: &Point, p2: &Point) -> Point {
        if p1.is_infinity() {
            return p2.clone();
        }
        if p2.is_infinity() {
            return p1.clone();
        }
        let z1z1 = self.sqr(&p1.z);
        let z2z2 = self.sqr(&p2.z);
        let u1 = self.mul(&p1.x, &z2z2);
        let u2 = self.mul(&p2.x, &z1z1);
        let s1 = self.mul(&self.mul(&p1.y, &p2.z), &z2z2);
        let s2 = self.mul(&self.mul(&p2.y, &p1.z), &z1z1);
        let h = self.sub(&u2, &u1);
        let s_diff = self.sub(&s2, &s1);
        if h.iter().all(|limb| *limb == 0) {
            return if s_diff.iter().all(|limb| *limb == 0) {
                self.double(p1)
            } else {
                Point::infinity(h.len())
            };
        }
        let h2 = self.add(&h, &h);
        let i = self.sqr(&h2);
        let j = self.mul(&h, &i);
        let r = self.add(&s_diff, &s_diff);
        let v = self.mul(&u1, &i);
        let v2 = self.add(&v, &v);
        let x3 = self.sub(&self.sub(&self.sqr(&r), &j), &v2);
        let s1j = self.mul(&s1, &j);
        let y3 = self.sub(&self.mul(&r, &self.sub(&v, &x3)), &self.add(&s1j, &s1j));
        let z_sum = self.add(&p1.z, &p2.z);
        let z3 = self.mul(&self.sub(&self.sub(&self.sqr(&z_sum), &z1z1), &z2z2), &h);
        Point {
            x: x3,
            y: y3,
            z: z3,
        }
    }
}

/// Hex text to bytes (the curve constants above).
fn hex(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| digit(pair[0]) << 4 | digit(pair[pair.len() - 1]))
        .collect()
}

/// Limbs to `len` big-endian bytes.
fn to_be(limbs: &[u32], len: usize) -> Vec<u8> {
    crate::montgomery::to_be_bytes(limbs, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::elliptic_curve::PrimeField;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    /// A deterministic stream of pseudo-random bytes.
    struct Bytes(u64);

    impl Bytes {
        fn take(&mut self, n: usize) -> Vec<u8> {
            (0..n)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    self.0 as u8
                })
                .collect()
        }
    }

    /// Affine coordinates of a Jacobian point, as big-endian bytes (test only: one inverse).
    fn affine(c: &Curve, f: &Field<'_>, pt: &Point) -> Option<(Vec<u8>, Vec<u8>)> {
        if pt.is_infinity() {
            return None;
        }
        let mut p_minus_2 = c.p.n.clone();
        subtract_in_place(&mut p_minus_2, &[2]);
        let mut wide = c.p.wide();
        let z_inv = c.p.pow(&pt.z, &to_be(&p_minus_2, c.bytes), &mut wide);
        let z_inv2 = f.sqr(&z_inv);
        let x = f.mul(&pt.x, &z_inv2);
        let y = f.mul(&pt.y, &f.mul(&z_inv2, &z_inv));
        let plain = |v: &[u32], wide: &mut Vec<u32>| to_be(&c.p.out_of_mont(v, wide), c.bytes);
        Some((plain(&x, &mut wide), plain(&y, &mut wide)))
    }

    fn repr(bytes: &[u8]) -> p256::FieldBytes {
        let mut repr = p256::FieldBytes::default();
        repr.copy_from_slice(bytes);
        repr
    }

    fn limbs(bytes: &[u8], c: &Curve) -> Vec<u32> {
        from_be_bytes(bytes, c.n.limbs())
    }

    #[test]
    fn the_base_points_are_on_their_curves() {
        for id in [CurveId::P256, CurveId::P384] {
            with_curve(id, |c| {
                let f = Field::new(&c.p);
                assert!(c.on_curve(&c.g.0, &c.g.1, &f), "{id:?}");
                let off = f.add(&c.g.1, &f.one);
                assert!(!c.on_curve(&c.g.0, &off, &f), "{id:?}");
                Some(())
            })
            .unwrap();
        }
    }

    #[test]
    fn scalar_multiples_agree_with_rustcrypto_on_p256() {
        with_curve(CurveId::P256, |c| {
            let f = Field::new(&c.p);
            let mut random = Bytes(7);
            let mut scalars: Vec<Vec<u8>> = (1u8..=20)
                .map(|k| {
                    let mut b = vec![0u8; 32];
                    b[31] = k;
                    b
                })
                .collect();
            for _ in 0..20 {
                let mut b = random.take(32);
                b[0] &= 0x7f; // below n
                scalars.push(b);
            }
            // n - 1: the largest scalar, (n - 1) G = -G.
            let mut n_minus_1 = c.n.n.clone();
            subtract_in_place(&mut n_minus_1, &[1]);
            scalars.push(to_be(&n_minus_1, 32));
            let q_key = p256::SecretKey::from_slice(&random.take(32)).unwrap();
            let q_point = q_key.public_key().to_projective();
            let q_encoded = q_point.to_affine().to_encoded_point(false);
            let q = PublicKey::from_sec1(CurveId::P256, q_encoded.as_bytes()).unwrap();
            for (i, u1) in scalars.iter().enumerate() {
                let u2 = &scalars[(i * 7 + 3) % scalars.len()];
                let s1 = p256::Scalar::from_repr(repr(u1)).unwrap();
                let s2 = p256::Scalar::from_repr(repr(u2)).unwrap();
                let theirs = (p256::ProjectivePoint::GENERATOR * s1 + q_point * s2)
                    .to_affine()
                    .to_encoded_point(false);
                let ours = f.double_mul(&limbs(u1, c), &c.g, &limbs(u2, c), (&q.x, &q.y));
                let (x, y) = affine(c, &f, &ours).unwrap();
                assert_eq!(&theirs.as_bytes()[1..33], &x[..], "x, case {i}");
                assert_eq!(&theirs.as_bytes()[33..], &y[..], "y, case {i}");
                // u1 G alone (u2 = 0) too.
                let alone = f.double_mul(&limbs(u1, c), &c.g, &[0; 8], (&q.x, &q.y));
                let theirs = (p256::ProjectivePoint::GENERATOR * s1)
                    .to_affine()
                    .to_encoded_point(false);
                assert_eq!(
                    &theirs.as_bytes()[1..33],
                    &affine(c, &f, &alone).unwrap().0[..]
                );
            }
            // n G is the point at infinity; G + (-G) too.
            let n = to_be(&c.n.n, 32);
            assert!(
                f.double_mul(&limbs(&n, c), &c.g, &[0; 8], (&q.x, &q.y))
                    .is_infinity()
            );
            let g = Point::affine(&c.g.0, &c.g.1, &f);
            let minus_g = f.double_mul(&n_minus_1, &c.g, &[0; 8], (&q.x, &q.y));
            assert!(f.add_points(&g, &minus_g).is_infinity());
            // P + P through the addition formula is the doubling.
            let twice = f.add_points(&g, &g);
            assert_eq!(affine(c, &f, &twice), affine(c, &f, &f.double(&g)));
            Some(())
        })
        .unwrap();
    }

    #[test]
    fn signatures_agree_with_rustcrypto_on_both_curves() {
        let mut random = Bytes(99);
        for round in 0..8 {
            let message = random.take(10 + round * 13);
            // P-256.
            let key = p256::ecdsa::SigningKey::from_slice(&random.take(32)).unwrap();
            let signature: p256::ecdsa::Signature = key.sign(&message);
            let point = key.verifying_key().to_encoded_point(false);
            let ours = PublicKey::from_sec1(CurveId::P256, point.as_bytes()).unwrap();
            check(&ours, &message, &signature.to_bytes(), 32);
            // P-384.
            let key = ::p384::ecdsa::SigningKey::from_slice(&random.take(48)).unwrap();
            let signature: ::p384::ecdsa::Signature = key.sign(&message);
            let point = key.verifying_key().to_encoded_point(false);
            let ours = PublicKey::from_sec1(CurveId::P384, point.as_bytes()).unwrap();
            check(&ours, &message, &signature.to_bytes(), 48);
        }
    }

    /// A valid signature verifies, and so does its mirror `(r, n - s)`; nothing near it does.
    fn check(key: &PublicKey, message: &[u8], signature: &[u8], bytes: usize) {
        assert!(key.verify(message, signature));
        let mut other = message.to_vec();
        other.push(0);
        assert!(!key.verify(&other, signature));
        for at in [0, bytes - 1, bytes, 2 * bytes - 1] {
            let mut flipped = signature.to_vec();
            flipped[at] ^= 0x10;
            assert!(!key.verify(message, &flipped), "byte {at}");
        }
        assert!(!key.verify(message, &signature[1..]));
        with_curve(key.curve, |c| {
            let n = to_be(&c.n.n, bytes);
            let zero = vec![0u8; bytes];
            let (r, s) = signature.split_at(bytes);
            // s' = n - s: the same signature by ECDSA's algebra (high-S), accepted as
            // RustCrypto's verifier accepts it.
            let mut n_minus_s = c.n.n.clone();
            subtract_in_place(&mut n_minus_s, &from_be_bytes(s, c.n.limbs()));
            let mirror = [r, &to_be(&n_minus_s, bytes)[..]].concat();
            assert!(key.verify(message, &mirror));
            // Out of range: 0 and n for either half; r + n in place of r.
            for bad in [
                [&zero[..], s].concat(),
                [r, &zero[..]].concat(),
                [&n[..], s].concat(),
                [r, &n[..]].concat(),
            ] {
                assert!(!key.verify(message, &bad));
            }
            Some(())
        })
        .unwrap();
    }

    #[test]
    fn keys_must_be_points_of_their_curve() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let bytes = point.as_bytes();
        assert!(PublicKey::from_sec1(CurveId::P256, bytes).is_some());
        assert!(PublicKey::from_sec1(CurveId::P384, bytes).is_none());
        let compressed = key.verifying_key().to_encoded_point(true);
        assert!(PublicKey::from_sec1(CurveId::P256, compressed.as_bytes()).is_none());
        let mut off = bytes.to_vec();
        off[64] ^= 1;
        assert!(PublicKey::from_sec1(CurveId::P256, &off).is_none());
        let mut zero = vec![4u8];
        zero.extend([0u8; 64]);
        assert!(PublicKey::from_sec1(CurveId::P256, &zero).is_none());
        // Coordinates at or above p are refused, not reduced.
        let p = with_curve(CurveId::P256, |c| Some(to_be(&c.p.n, 32))).unwrap();
        let mut big_x = bytes.to_vec();
        big_x[1..33].copy_from_slice(&p);
        assert!(PublicKey::from_sec1(CurveId::P256, &big_x).is_none());
        // A signature by another key fails.
        let other = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
        let signature: p256::ecdsa::Signature = other.sign(b"m");
        let ours = PublicKey::from_sec1(CurveId::P256, bytes).unwrap();
        assert!(!ours.verify(b"m", &signature.to_bytes()));
    }
}
