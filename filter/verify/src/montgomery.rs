//! Montgomery arithmetic modulo an odd number of 32-bit limbs (little-endian), for the
//! signature checks: RSA's `s^e mod n`, and the field and scalar arithmetic of the NIST
//! curves. 32-bit limbs because wasm32 multiplies 32x32->64 natively. Everything here
//! works on public values only (signatures, keys), so nothing needs to be constant-time.

/// An odd modulus prepared for Montgomery multiplication (`R = 2^(32 * limbs)`).
#[derive(Debug, Clone)]
pub(crate) struct Modulus {
    /// The modulus.
    pub(crate) n: Vec<u32>,
    /// The modulus, most significant limb first.
    n_rev: Vec<u32>,
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
            n_rev: limbs.iter().rev().copied().collect(),
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

    /// `a^2 * R^-1 mod n`: [`Modulus::interleaved`] over the square's columns, each cross
    /// product `a_i * a_j` summed once and doubled.
    pub(crate) fn sqr(&self, a: &[u32], wide: &mut [u32]) -> Vec<u32> {
        let k = self.n.len();
        let a = &a[..k];
        let a_rev: Vec<u32> = a.iter().rev().copied().collect();
        self.interleaved(&mut wide[..k], |i| {
            let lo = (i + 1).saturating_sub(k);
            // a_j a_{i-j} with j < i - j, doubled; then the square on the diagonal.
            let half = i.div_ceil(2);
            let (mut low, mut high) = if lo < half {
                let (low, high) = column(&a[lo..half], &a_rev[k - 1 + lo - i..k - 1 + half - i]);
                (2 * low, 2 * high)
            } else {
                (0, 0)
            };
            if i % 2 == 0 {
                let square = u64::from(a[i / 2]) * u64::from(a[i / 2]);
                low += square & LOW;
                high += square >> 32;
            }
            (low, high)
        })
    }

    /// Montgomery's `x * R^-1 mod n` of a double-width product `x < n * R` given column by
    /// column (`product(i)` = the sums of the low and high halves of the limb products of
    /// weight `2^(32 i)`), by product scanning with the reduction interleaved (Koç's
    /// "finely integrated product scanning"): each column's products and those of the
    /// reduction's multiples `m_j * n_(i-j)` chosen so far are summed in locals, and the
    /// next multiple `m_i` is chosen as the column is finished. Nothing but the `k` words
    /// of `m` is written before the result; the row-by-row form read and wrote a word for
    /// every limb product, and its carry chain ran through every step. Both factors of a
    /// column run upwards in memory (the second one reversed: `n_rev`, the caller's copy).
    #[inline(always)]
    fn interleaved(&self, m: &mut [u32], product: impl Fn(usize) -> (u64, u64)) -> Vec<u32> {
        let k = self.n.len();
        let n = &self.n[..k];
        let mut out = vec![0u32; k + 1];
        let mut carry = 0u64;
        for i in 0..2 * k - 1 {
            let (low, high) = product(i);
            let (mut c0, mut c1) = (carry + low, high);
            let lo = (i + 1).saturating_sub(k);
            let top = i.min(k);
            if lo < top {
                let (low, high) = column(&m[lo..top], &self.n_rev[k - 1 + lo - i..k - 1 + top - i]);
                c0 += low;
                c1 += high;
            }
            if i < k {
                // m_i makes the column's low word zero.
                let mi = (c0 as u32).wrapping_mul(self.n0_inv);
                m[i] = mi;
                let p = u64::from(mi) * u64::from(n[0]);
                c0 += p & LOW;
                c1 += p >> 32;
            } else {
                out[i - k] = c0 as u32;
            }
            carry = (c0 >> 32) + c1;
        }
        out[k - 1] = carry as u32;
        out[k] = (carry >> 32) as u32;
        // (x + m n) / R < 2n: at most one subtraction.
        if out[k] != 0 || !less_than(&out, n) {
            subtract_in_place(&mut out, n);
        }
        out.truncate(k);
        out
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

    /// `a * b * R^-1 mod n`: [`Modulus::interleaved`] over the product's columns.
    pub(crate) fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let a = &a[..k];
        let b_rev: Vec<u32> = b[..k].iter().rev().copied().collect();
        let mut m = vec![0u32; k];
        self.interleaved(&mut m, |i| {
            let lo = (i + 1).saturating_sub(k);
            let top = i.min(k - 1) + 1;
            column(&a[lo..top], &b_rev[k - 1 + lo - i..k - 1 + top - i])
        })
    }
}

/// The low 32 bits of a 64-bit word.
const LOW: u64 = 0xffff_ffff;

/// `sum xs[t] * ys[t]`, one column of a product, as the sums of the products' low and
/// high 32-bit halves: two independent additions per product and no carry between them (a
/// column of fewer than 2^32 products cannot overflow either sum). Both slices have the
/// same length.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn column(xs: &[u32], ys: &[u32]) -> (u64, u64) {
    column_scalar(xs, ys)
}

/// [`column`] one product at a time.
#[inline(always)]
fn column_scalar(xs: &[u32], ys: &[u32]) -> (u64, u64) {
    let (mut low, mut high) = (0u64, 0u64);
    for (&x, &y) in xs.iter().zip(ys) {
        let p = u64::from(x) * u64::from(y);
        low += p & LOW;
        high += p >> 32;
    }
    (low, high)
}

/// [`column`] four products at a time with Wasm's 128-bit SIMD: `i64x2.extmul_*_i32x4_u`
/// multiplies two pairs of 32-bit lanes into two 64-bit lanes, and Wasm has no scalar
/// 64x64->128 multiply to use wider limbs instead. In V8 this halves the cost of an RSA
/// check (`examples/rsa_cost.rs`). The only `unsafe` of the crate: V8 builds vectors of
/// lanes read one by one (even four adjacent ones) lane by lane, which costs more than the
/// multiplications save, so the four limbs are read with one unaligned 128-bit load.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
#[allow(unsafe_code)]
fn column(xs: &[u32], ys: &[u32]) -> (u64, u64) {
    use core::arch::wasm32::{
        u64x2_add, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane, u64x2_shr,
        u64x2_splat, v128, v128_and, v128_load,
    };
    let len = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..len], &ys[..len]);
    let quads = len / 4;
    let mask = u64x2_splat(LOW);
    let (mut low, mut high) = (u64x2_splat(0), u64x2_splat(0));
    for q in 0..quads {
        // SAFETY: both slices hold `len >= 4 * q + 4` limbs, so the 16 bytes read from
        // limb `4 * q` on are inside them; `v128_load` needs no alignment.
        let (x, y) = unsafe {
            (
                v128_load(xs.as_ptr().add(4 * q).cast::<v128>()),
                v128_load(ys.as_ptr().add(4 * q).cast::<v128>()),
            )
        };
        let p = u64x2_extmul_low_u32x4(x, y);
        let r = u64x2_extmul_high_u32x4(x, y);
        low = u64x2_add(low, u64x2_add(v128_and(p, mask), v128_and(r, mask)));
        high = u64x2_add(high, u64x2_add(u64x2_shr(p, 32), u64x2_shr(r, 32)));
    }
    let (rest_low, rest_high) = column_scalar(&xs[4 * quads..], &ys[4 * quads..]);
    (
        u64x2_extract_lane::<0>(low) + u64x2_extract_lane::<1>(low) + rest_low,
        u64x2_extract_lane::<0>(high) + u64x2_extract_lane::<1>(high) + rest_high,
    )
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

    /// Meaningful on wasm32 with SIMD (`cargo test --target wasm32-wasip1`), where
    /// [`column`] is the vector form; natively both are the scalar one.
    #[test]
    fn a_column_is_the_same_four_at_a_time_or_one_by_one() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        for len in 0..=70 {
            for fill in [None, Some(u32::MAX), Some(0)] {
                let xs: Vec<u32> = (0..len).map(|_| fill.unwrap_or_else(&mut next)).collect();
                let ys: Vec<u32> = (0..len).map(|_| next() | fill.unwrap_or(0)).collect();
                assert_eq!(column(&xs, &ys), column_scalar(&xs, &ys), "{len} limbs");
            }
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
