//! Montgomery arithmetic modulo an odd number of 32-bit limbs (little-endian), for the
//! signature checks: RSA's `s^e mod n`, and the field and scalar arithmetic of the NIST
//! curves. 32-bit limbs because wasm32 multiplies 32x32->64 natively. Everything here
//! works on public values only (signatures, keys), so nothing needs to be constant-time.

/// An odd modulus prepared for Montgomery multiplication (`R = 2^(32 * limbs)`).
#[derive(Debug, Clone)]
pub(crate) struct Modulus {
    /// The modulus.
    pub(crate) n: Vec<u32>,
    /// `-n^-1 mod 2^32`.
    n0_inv: u32,
    /// `R^2 mod n`.
    r2: Vec<u32>,
}

impl Modulus {
    /// Prepares an odd modulus given as big-endian bytes (`None` when even or zero).
    pub(crate) fn new(n: &[u8]) -> Option<Self> {
        let n = strip_leading_zeros(n);
        if n.is_empty() || n[n.len() - 1] & 1 == 0 {
            return None;
        }
        let limbs = from_be_bytes(n, n.len().div_ceil(4));
        let n0_inv = inverse_mod_2_32(limbs[0]).wrapping_neg();
        let r2 = r_squared(&limbs);
        Some(Self {
            n: limbs,
            n0_inv,
            r2,
        })
    }

    /// Number of limbs.
    pub(crate) fn limbs(&self) -> usize {
        self.n.len()
    }

    /// A scratch buffer for [`Modulus::sqr`] and [`Modulus::reduce`].
    pub(crate) fn wide(&self) -> Vec<u32> {
        vec![0u32; 2 * self.n.len() + 1]
    }

    /// `a * R mod n` for `a < n`.
    pub(crate) fn to_mont(&self, a: &[u32]) -> Vec<u32> {
        self.mul(a, &self.r2)
    }

    /// `a * R^-1 mod n`: leaves Montgomery form.
    pub(crate) fn out_of_mont(&self, a: &[u32], wide: &mut [u32]) -> Vec<u32> {
        wide.fill(0);
        wide[..a.len()].copy_from_slice(a);
        self.reduce(wide)
    }

    /// `a + b mod n` for `a, b < n`.
    pub(crate) fn add(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let mut out = Vec::with_capacity(k + 1);
        let mut carry = 0u64;
        for (x, y) in a[..k].iter().zip(&b[..k]) {
            let s = u64::from(*x) + u64::from(*y) + carry;
            out.push(s as u32);
            carry = s >> 32;
        }
        out.push(carry as u32);
        if !less_than(&out, &self.n) {
            subtract_in_place(&mut out, &self.n);
        }
        out.truncate(k);
        out
    }

    /// `a - b mod n` for `a, b < n`.
    pub(crate) fn sub(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let mut out = Vec::with_capacity(k);
        let mut borrow = 0i64;
        for (x, y) in a[..k].iter().zip(&b[..k]) {
            let d = i64::from(*x) - i64::from(*y) + borrow;
            out.push(d as u32);
            borrow = d >> 32;
        }
        if borrow != 0 {
            // Below zero: add n back (the sum wraps to the right value modulo 2^(32k)).
            let mut carry = 0u64;
            for (limb, n) in out.iter_mut().zip(&self.n) {
                let s = u64::from(*limb) + u64::from(*n) + carry;
                *limb = s as u32;
                carry = s >> 32;
            }
        }
        out
    }

    /// `base^exp` in Montgomery form, `base` in Montgomery form, `exp` big-endian bytes.
    pub(crate) fn pow(&self, base: &[u32], exp: &[u8], wide: &mut [u32]) -> Vec<u32> {
        let mut acc = self.to_mont(&one(self.n.len()));
        for byte in exp {
            for i in (0..8).rev() {
                acc = self.sqr(&acc, wide);
                if (byte >> i) & 1 == 1 {
                    acc = self.mul(&acc, base);
                }
            }
        }
        acc
    }

    /// `a^2 * R^-1 mod n`: the square as a double-width product, each cross product
    /// `a_i * a_j` computed once and doubled (about half the multiplications of
    /// [`Modulus::mul`]'s product), then one Montgomery reduction.
    pub(crate) fn sqr(&self, a: &[u32], wide: &mut [u32]) -> Vec<u32> {
        let k = self.n.len();
        let a = &a[..k];
        let t = &mut wide[..2 * k + 1];
        t.fill(0);
        for i in 0..k {
            let ai = u64::from(a[i]);
            let mut carry = 0u64;
            for (tj, &aj) in t[2 * i + 1..i + k].iter_mut().zip(&a[i + 1..]) {
                let s = u64::from(*tj) + ai * u64::from(aj) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            // Rows before this one reached at most limb i + k - 1.
            t[i + k] = carry as u32;
        }
        // Double the cross products (they sum to less than a^2 / 2: no bit is lost)...
        let mut top = 0u32;
        for limb in t[..2 * k].iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | top;
            top = next;
        }
        // ...and add the squares on the diagonal.
        let mut carry = 0u64;
        for (i, &ai) in a.iter().enumerate() {
            let square = u64::from(ai) * u64::from(ai);
            let low = u64::from(t[2 * i]) + (square & 0xffff_ffff) + carry;
            t[2 * i] = low as u32;
            let high = u64::from(t[2 * i + 1]) + (square >> 32) + (low >> 32);
            t[2 * i + 1] = high as u32;
            carry = high >> 32;
        }
        self.reduce(t)
    }

    /// Montgomery reduction of `t < n * R` held in `2k + 1` limbs: `t * R^-1 mod n`.
    pub(crate) fn reduce(&self, t: &mut [u32]) -> Vec<u32> {
        let k = self.n.len();
        let n = &self.n[..k];
        let t = &mut t[..2 * k + 1];
        for i in 0..k {
            let m = u64::from(t[i].wrapping_mul(self.n0_inv));
            let mut carry = 0u64;
            for (tj, &nj) in t[i..i + k].iter_mut().zip(n) {
                let s = u64::from(*tj) + m * u64::from(nj) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            for tj in t[i + k..].iter_mut() {
                if carry == 0 {
                    break;
                }
                let s = u64::from(*tj) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
        }
        // (t + m n) / R < 2n: at most one subtraction.
        let mut out = t[k..].to_vec();
        if out[k] != 0 || !less_than(&out, n) {
            subtract_in_place(&mut out, n);
        }
        out.truncate(k);
        out
    }

    /// `a * b * R^-1 mod n` (coarsely integrated operand scanning). Slices are cut to
    /// their exact lengths up front so the compiler can drop the bounds checks from the
    /// inner loops, which run `2 * limbs^2` times per call.
    pub(crate) fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
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

/// The number 1 in `limbs` limbs.
pub(crate) fn one(limbs: usize) -> Vec<u32> {
    let mut one = vec![0u32; limbs];
    one[0] = 1;
    one
}

pub fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Big-endian bytes to `limbs` little-endian 32-bit limbs (the bytes must fit).
pub(crate) fn from_be_bytes(bytes: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs.max(bytes.len().div_ceil(4))];
    for (i, byte) in bytes.iter().rev().enumerate() {
        out[i / 4] |= u32::from(*byte) << (8 * (i % 4));
    }
    out
}

pub(crate) fn to_be_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
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
pub(crate) fn less_than(a: &[u32], b: &[u32]) -> bool {
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
pub(crate) fn subtract_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (i, limb) in a.iter_mut().enumerate() {
        let sub = u64::from(b.get(i).copied().unwrap_or(0)) + borrow;
        let value = u64::from(*limb);
        *limb = value.wrapping_sub(sub) as u32;
        borrow = u64::from(value < sub);
    }
}

/// The inverse of an odd number modulo 2^32 (Newton's iteration doubles the correct bits).
pub(crate) fn inverse_mod_2_32(odd: u32) -> u32 {
    let mut x = 1u32;
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(odd.wrapping_mul(x)));
    }
    x
}

/// `R^2 mod n` by doubling 1 modulo n, `2 * 32 * limbs` times (once per key).
pub(crate) fn r_squared(n: &[u32]) -> Vec<u32> {
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

    /// The modulus of the test RSA key `rsa-a` (`tests/fixtures/keys/rsa-a.pem`), 2048 bits.
    const RSA_A_N: &str = concat!(
        "d3efd4ece2a3b19ed98cd43cbc234320e04cb1d3527c5d75e0f5050077bb773920062730826ab66611ab45077e3825f2",
        "afb6abfcf4d49fbce1053b5bc1821df06f7bb165fc5308a6693248b1d35a886126d0ad4559094333cab0bc4efaf5cd96",
        "14d356f52e79d595c515bb202bad8d03392df18afc919da6ae9e1aa42a005c639e0b0d548be1f07c5e717b1d9c28e215",
        "726f063488181037e3c773dffd85e125e5f876a9dba41a79b6a81799c45f0617ada0e8f2d4f52aee8a7396bad4f9bba7",
        "7928e80b9bd40c37ba492be5708bf681e02eccb0c9a08fa4c2be35ff621d1caf9d1c2fe77a90421b3f89e2b3462d48e2",
        "5b9dbebfe1e19ac05aa1a87e0ffef85f",
    );

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
    fn squaring_and_reduction_agree_with_multiplication() {
        let n: Vec<u8> = (0..RSA_A_N.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&RSA_A_N[i..i + 2], 16).unwrap())
            .collect();
        let key = Modulus::new(&n).unwrap();
        let k = key.n.len();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        let mut wide = vec![0u32; 2 * k + 1];
        let mut one = vec![0u32; k];
        one[0] = 1;
        let mut cases: Vec<Vec<u32>> = (0..50)
            .map(|_| {
                let mut a: Vec<u32> = (0..k).map(|_| next()).collect();
                a[k - 1] %= key.n[k - 1].max(1);
                a
            })
            .collect();
        // Edge values: 0, 1, n - 1 (all limbs high), and values with long carry chains.
        cases.push(vec![0; k]);
        cases.push(one.clone());
        let mut n_minus_1 = key.n.clone();
        n_minus_1[0] -= 1;
        cases.push(n_minus_1);
        let mut ones = vec![u32::MAX; k];
        ones[k - 1] = key.n[k - 1] - 1;
        cases.push(ones);
        for a in &cases {
            assert!(less_than(a, &key.n));
            assert_eq!(key.sqr(a, &mut wide), key.mul(a, a));
            wide.fill(0);
            wide[..k].copy_from_slice(a);
            assert_eq!(key.reduce(&mut wide), key.mul(a, &one));
        }
    }

    #[test]
    fn addition_subtraction_and_powers_modulo_a_small_prime() {
        // p = 2^32 - 5 (prime), one limb; checked against u64 arithmetic.
        let p = 0xffff_fffbu64;
        let m = Modulus::new(&(p as u32).to_be_bytes()).unwrap();
        let mut wide = m.wide();
        for (a, b) in [
            (0u64, 0u64),
            (1, p - 1),
            (p - 1, p - 1),
            (123_456_789, 987_654_321),
        ] {
            let (x, y) = (vec![a as u32], vec![b as u32]);
            assert_eq!(u64::from(m.add(&x, &y)[0]), (a + b) % p);
            assert_eq!(u64::from(m.sub(&x, &y)[0]), (a + p - b) % p);
            let product = m.out_of_mont(&m.mul(&m.to_mont(&x), &m.to_mont(&y)), &mut wide);
            assert_eq!(u64::from(product[0]), a * b % p);
        }
        // Fermat: a^(p-1) = 1, and a^(p-2) is a's inverse.
        let a = m.to_mont(&[7]);
        let inverse = m.pow(&a, &((p - 2) as u32).to_be_bytes(), &mut wide);
        let back = m.out_of_mont(&m.mul(&inverse, &a), &mut wide);
        assert_eq!(back, vec![1]);
        assert!(Modulus::new(&[0x10, 0x00]).is_none(), "even");
        assert!(Modulus::new(&[0, 0]).is_none(), "zero");
    }
}
