//! Deterministic float32 transcendental functions for the neural engine.
//!
//! Built from `+`, `-`, `×`, `÷` (each correctly rounded IEEE binary32) and
//! exponent-bit manipulation only: no libm, no fused multiply-add, so every
//! CPU computes the same bits. Accuracy is a few ulp, far inside the engine's
//! conformance tolerance against onnxruntime.

const LN2_HI: f32 = 0.693_145_75; // 0x3F317200: few mantissa bits, n * LN2_HI exact for |n| <= 256
const LN2_LO: f32 = 1.428_606_8e-6;
const LOG2_E: f32 = std::f32::consts::LOG2_E;

// Taylor coefficients of `e^r` (shared by the scalar and vector forms).
const C2: f32 = 0.5;
const C3: f32 = 1.0 / 6.0;
const C4: f32 = 1.0 / 24.0;
const C5: f32 = 1.0 / 120.0;
const C6: f32 = 1.0 / 720.0;
const C7: f32 = 1.0 / 5040.0;
// `atanh` series coefficients of `ln`.
const L3: f32 = 1.0 / 3.0;
const L5: f32 = 1.0 / 5.0;
const L7: f32 = 1.0 / 7.0;
const L9: f32 = 1.0 / 9.0;
const L11: f32 = 1.0 / 11.0;

/// `floor(x)` for `|x| < 2^31` as an integer, without libm.
#[inline(always)]
fn floor_i32(x: f32) -> i32 {
    let t = x as i32; // truncation toward zero (saturating)
    if (t as f32) > x {
        t - 1
    } else {
        t
    }
}

/// `2^n` for `n` in `-126..=127`.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

// The functions below are written without data-dependent branches (every
// candidate value is computed, then one is selected), so that loops over
// slices vectorise; each lane still performs exactly the scalar operation
// sequence, so vector and scalar builds return the same bits. The tests
// compare them with the original branchy forms bit for bit.

/// `e^x`. Returns `+inf` above 88.72 and `0` below -87.3 (no subnormals); NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // In-range lanes see `x` itself; the clamp only keeps the discarded lanes finite.
    let xc = x.clamp(-87.3, 88.72);
    // Cody–Waite reduction: x = n ln2 + r, |r| <= ln2 / 2.
    let n = floor_i32(xc * LOG2_E + 0.5);
    let nf = n as f32;
    let r = (xc - nf * LN2_HI) - nf * LN2_LO;
    // Taylor polynomial of e^r to degree 7 (error < 3e-9 on |r| <= 0.347), Horner form.
    let p = 1.0 + r * (1.0 + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))));
    // n in -126..=128; 2^128 is formed as 2^127 * 2.
    let big = n > 127;
    let q = p * pow2i(if big { 127 } else { n });
    let v = if big { q * 2.0 } else { q };
    if x.is_nan() {
        x
    } else if x > 88.72 {
        f32::INFINITY
    } else if x < -87.3 {
        0.0
    } else {
        v
    }
}

/// Natural logarithm of a positive normal float (`ln(x)`); `x <= 0` gives `-inf`,
/// `+inf`/NaN are returned unchanged.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // Subnormal: normalise by 2^23 first.
    let sub = bits < 0x0080_0000;
    let yb = (x * 8_388_608.0).to_bits();
    let e_sub = ((yb >> 23) & 0xFF) as i32 - 127 - 23;
    let e_nrm = ((bits >> 23) & 0xFF) as i32 - 127;
    let e0 = if sub { e_sub } else { e_nrm };
    let mant = if sub { yb } else { bits } & 0x7F_FFFF;
    let m0 = f32::from_bits(mant | 0x3F80_0000); // [1, 2)
    let hi = m0 > std::f32::consts::SQRT_2;
    let m = if hi { m0 * 0.5 } else { m0 };
    let e = if hi { e0 + 1 } else { e0 };
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (L3 + s2 * (L5 + s2 * (L7 + s2 * (L9 + s2 * L11))));
    let lnm = 2.0 * s * series;
    let ef = e as f32;
    let v = ef * LN2_HI + (lnm + ef * LN2_LO);
    if x.is_nan() || x == f32::INFINITY {
        x
    } else if x <= 0.0 {
        f32::NEG_INFINITY
    } else {
        v
    }
}

/// Logistic sigmoid `1 / (1 + e^-z)`.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `softplus(z) = ln(1 + e^z)`; `z` itself above 20 (as torch), `e^z` below -15.
#[inline(always)]
pub fn softplus(z: f32) -> f32 {
    let e = exp(z);
    let l = ln(1.0 + e);
    if z > 20.0 {
        z
    } else if z < -15.0 {
        e
    } else {
        l
    }
}

/// Hyperbolic tangent, `sign(x) (1 - 2 / (e^{2|x|} + 1))`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = if x < 0.0 { -x } else { x };
    let u = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let t = if a > 9.5 { 1.0 } else { u };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

/// The same functions on 16 lanes with AVX-512F intrinsics: every lane performs
/// exactly the scalar operation sequence above (each `+ − × ÷` a separate
/// correctly rounded instruction, the same selects), so the results equal the
/// scalar ones bit for bit (tested on millions of bit patterns). The compiler
/// does not vectorise the scalar forms (the saturating `as i32` and the selects
/// keep them scalar), hence these.
///
/// Callers must run on a CPU with AVX-512F and be compiled with it enabled
/// (they are inlined into `#[target_feature(enable = "avx512f")]` functions).
#[cfg(target_arch = "x86_64")]
pub mod v16 {
    use super::{C2, C3, C4, C5, C6, C7, L11, L3, L5, L7, L9, LN2_HI, LN2_LO, LOG2_E};
    use core::arch::x86_64::*;

    #[inline(always)]
    unsafe fn c(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    /// [`super::exp`] per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn exp(x: __m512) -> __m512 {
        // `x.clamp(-87.3, 88.72)`: NaN lanes are replaced at the end, so which
        // operand max/min return for them does not matter.
        let xc = _mm512_min_ps(_mm512_max_ps(x, c(-87.3)), c(88.72));
        // floor_i32(xc * LOG2_E + 0.5): truncate, then subtract 1 where the
        // truncation is above the value (|t| < 2^31 here, so truncation equals `as i32`).
        let t = _mm512_add_ps(_mm512_mul_ps(xc, c(LOG2_E)), c(0.5));
        let ti = _mm512_cvttps_epi32(t);
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_cvtepi32_ps(ti), t);
        let n = _mm512_mask_sub_epi32(ti, gt, ti, _mm512_set1_epi32(1));
        let nf = _mm512_cvtepi32_ps(n);
        let r = _mm512_sub_ps(
            _mm512_sub_ps(xc, _mm512_mul_ps(nf, c(LN2_HI))),
            _mm512_mul_ps(nf, c(LN2_LO)),
        );
        let mut p = _mm512_add_ps(c(C6), _mm512_mul_ps(r, c(C7)));
        p = _mm512_add_ps(c(C5), _mm512_mul_ps(r, p));
        p = _mm512_add_ps(c(C4), _mm512_mul_ps(r, p));
        p = _mm512_add_ps(c(C3), _mm512_mul_ps(r, p));
        p = _mm512_add_ps(c(C2), _mm512_mul_ps(r, p));
        p = _mm512_add_ps(c(1.0), _mm512_mul_ps(r, p));
        p = _mm512_add_ps(c(1.0), _mm512_mul_ps(r, p));
        let big = _mm512_cmpgt_epi32_mask(n, _mm512_set1_epi32(127));
        let e = _mm512_mask_blend_epi32(big, n, _mm512_set1_epi32(127));
        let scale = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            e,
            _mm512_set1_epi32(127),
        )));
        let q = _mm512_mul_ps(p, scale);
        let v = _mm512_mask_mul_ps(q, big, q, c(2.0));
        // Final selects (mutually exclusive): NaN, > 88.72, < -87.3.
        let v = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(-87.3)),
            v,
            _mm512_setzero_ps(),
        );
        let v = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, c(88.72)),
            v,
            c(f32::INFINITY),
        );
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), v, x)
    }

    /// [`super::ln`] per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn ln(x: __m512) -> __m512 {
        let bits = _mm512_castps_si512(x);
        let sub = _mm512_cmplt_epu32_mask(bits, _mm512_set1_epi32(0x0080_0000));
        let yb = _mm512_castps_si512(_mm512_mul_ps(x, c(8_388_608.0)));
        let ff = _mm512_set1_epi32(0xFF);
        let e_sub = _mm512_sub_epi32(
            _mm512_and_si512(_mm512_srli_epi32::<23>(yb), ff),
            _mm512_set1_epi32(127 + 23),
        );
        let e_nrm = _mm512_sub_epi32(
            _mm512_and_si512(_mm512_srli_epi32::<23>(bits), ff),
            _mm512_set1_epi32(127),
        );
        let e0 = _mm512_mask_blend_epi32(sub, e_nrm, e_sub);
        let mant = _mm512_and_si512(
            _mm512_mask_blend_epi32(sub, bits, yb),
            _mm512_set1_epi32(0x7F_FFFF),
        );
        let m0 = _mm512_castsi512_ps(_mm512_or_si512(mant, _mm512_set1_epi32(0x3F80_0000)));
        let hi = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m0, c(std::f32::consts::SQRT_2));
        let m = _mm512_mask_mul_ps(m0, hi, m0, c(0.5));
        let e = _mm512_mask_add_epi32(e0, hi, e0, _mm512_set1_epi32(1));
        let s = _mm512_div_ps(_mm512_sub_ps(m, c(1.0)), _mm512_add_ps(m, c(1.0)));
        let s2 = _mm512_mul_ps(s, s);
        let mut q = _mm512_add_ps(c(L9), _mm512_mul_ps(s2, c(L11)));
        q = _mm512_add_ps(c(L7), _mm512_mul_ps(s2, q));
        q = _mm512_add_ps(c(L5), _mm512_mul_ps(s2, q));
        q = _mm512_add_ps(c(L3), _mm512_mul_ps(s2, q));
        q = _mm512_add_ps(c(1.0), _mm512_mul_ps(s2, q));
        let lnm = _mm512_mul_ps(_mm512_mul_ps(c(2.0), s), q);
        let ef = _mm512_cvtepi32_ps(e);
        let v = _mm512_add_ps(
            _mm512_mul_ps(ef, c(LN2_HI)),
            _mm512_add_ps(lnm, _mm512_mul_ps(ef, c(LN2_LO))),
        );
        let v = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_LE_OQ>(x, _mm512_setzero_ps()),
            v,
            c(f32::NEG_INFINITY),
        );
        let keep = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x)
            | _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, c(f32::INFINITY));
        _mm512_mask_blend_ps(keep, v, x)
    }

    /// `-x` (sign flip, as Rust's `-`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn neg(x: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN),
        ))
    }

    /// [`super::sigmoid`] per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn sigmoid(z: __m512) -> __m512 {
        _mm512_div_ps(c(1.0), _mm512_add_ps(c(1.0), exp(neg(z))))
    }

    /// [`super::softplus`] per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn softplus(z: __m512) -> __m512 {
        let e = exp(z);
        let l = ln(_mm512_add_ps(c(1.0), e));
        let v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, c(-15.0)), l, e);
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, c(20.0)), v, z)
    }

    /// [`super::tanh`] per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (see the module comment).
    #[inline(always)]
    pub unsafe fn tanh(x: __m512) -> __m512 {
        let negx = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        let a = _mm512_mask_blend_ps(negx, x, neg(x));
        let u = _mm512_sub_ps(
            c(1.0),
            _mm512_div_ps(c(2.0), _mm512_add_ps(exp(_mm512_mul_ps(c(2.0), a)), c(1.0))),
        );
        let t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, c(9.5)), u, c(1.0));
        _mm512_mask_blend_ps(negx, t, neg(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original branchy forms (reference for the branch-free rewrite).
    mod reference {
        use super::super::{floor_i32, pow2i, C2, C3, C4, C5, C6, C7, LN2_HI, LN2_LO, LOG2_E};
        pub fn exp(x: f32) -> f32 {
            if x.is_nan() {
                return x;
            }
            if x > 88.72 {
                return f32::INFINITY;
            }
            if x < -87.3 {
                return 0.0;
            }
            let n = floor_i32(x * LOG2_E + 0.5);
            let nf = n as f32;
            let r = (x - nf * LN2_HI) - nf * LN2_LO;
            let p = 1.0 + r * (1.0 + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))));
            if n > 127 {
                p * pow2i(127) * 2.0
            } else {
                p * pow2i(n)
            }
        }
        pub fn ln(x: f32) -> f32 {
            if x.is_nan() || x == f32::INFINITY {
                return x;
            }
            if x <= 0.0 {
                return f32::NEG_INFINITY;
            }
            let bits = x.to_bits();
            let (mut e, mant) = if bits < 0x0080_0000 {
                let y = x * 8_388_608.0;
                let b = y.to_bits();
                (((b >> 23) & 0xFF) as i32 - 127 - 23, b & 0x7F_FFFF)
            } else {
                (((bits >> 23) & 0xFF) as i32 - 127, bits & 0x7F_FFFF)
            };
            let mut m = f32::from_bits(mant | 0x3F80_0000);
            if m > std::f32::consts::SQRT_2 {
                m *= 0.5;
                e += 1;
            }
            let s = (m - 1.0) / (m + 1.0);
            let s2 = s * s;
            let series = 1.0
                + s2 * (1.0 / 3.0
                    + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
            let lnm = 2.0 * s * series;
            let ef = e as f32;
            ef * LN2_HI + (lnm + ef * LN2_LO)
        }
        pub fn softplus(z: f32) -> f32 {
            if z > 20.0 {
                z
            } else if z < -15.0 {
                exp(z)
            } else {
                ln(1.0 + exp(z))
            }
        }
        pub fn tanh(x: f32) -> f32 {
            let a = if x < 0.0 { -x } else { x };
            let t = if a > 9.5 {
                1.0
            } else {
                1.0 - 2.0 / (exp(2.0 * a) + 1.0)
            };
            if x < 0.0 {
                -t
            } else {
                t
            }
        }
        pub fn sigmoid(z: f32) -> f32 {
            1.0 / (1.0 + exp(-z))
        }
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// The branch-free functions equal the branchy reference bit for bit, on a
    /// stride through all 2^32 bit patterns plus every pattern near the thresholds.
    #[test]
    fn branch_free_forms_equal_reference() {
        let check = |x: f32| {
            assert!(same(exp(x), reference::exp(x)), "exp {x:e}");
            assert!(same(ln(x), reference::ln(x)), "ln {x:e}");
            assert!(same(softplus(x), reference::softplus(x)), "softplus {x:e}");
            assert!(same(tanh(x), reference::tanh(x)), "tanh {x:e}");
            assert!(same(sigmoid(x), reference::sigmoid(x)), "sigmoid {x:e}");
        };
        let mut b: u64 = 0;
        while b < 1 << 32 {
            check(f32::from_bits(b as u32));
            b += 977;
        }
        for c in [
            88.72f32,
            -87.3,
            20.0,
            -15.0,
            9.5,
            -9.5,
            0.0,
            1.0,
            88.0,
            f32::MIN_POSITIVE,
        ] {
            for sign in [1.0f32, -1.0] {
                let base = (c * sign).to_bits();
                for d in 0..20_000u32 {
                    check(f32::from_bits(base.wrapping_add(d)));
                    check(f32::from_bits(base.wrapping_sub(d)));
                }
            }
        }
        // The range [-100, 100] that activations actually take, every 1024th bit pattern.
        for top in [100f32.to_bits(), (-100f32).to_bits()] {
            let lo = top & 0x8000_0000;
            let mut b = lo;
            while b < top {
                check(f32::from_bits(b));
                b += 1024;
            }
        }
    }

    /// The AVX-512 forms equal the scalar ones bit for bit on the same bit
    /// patterns as [`branch_free_forms_equal_reference`] (16 per vector) plus
    /// the special values.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_forms_equal_scalar() {
        use core::arch::x86_64::*;
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn check16(xs: &[f32; 16]) {
            let x = _mm512_loadu_ps(xs.as_ptr());
            let outs = [
                v16::exp(x),
                v16::ln(x),
                v16::softplus(x),
                v16::tanh(x),
                v16::sigmoid(x),
            ];
            type Scalar = (fn(f32) -> f32, &'static str);
            let fs: [Scalar; 5] = [
                (exp, "exp"),
                (ln, "ln"),
                (softplus, "softplus"),
                (tanh, "tanh"),
                (sigmoid, "sigmoid"),
            ];
            for (v, (f, name)) in outs.into_iter().zip(fs) {
                let mut out = [0f32; 16];
                _mm512_storeu_ps(out.as_mut_ptr(), v);
                for (&o, &xi) in out.iter().zip(xs) {
                    let want = f(xi);
                    assert!(
                        o.to_bits() == want.to_bits(),
                        "{name} {xi:e} ({:08x}): {o:e} vs {want:e}",
                        xi.to_bits()
                    );
                }
            }
        }
        let mut pend = Vec::with_capacity(16);
        let mut feed = |x: f32, flush: bool| {
            pend.push(x);
            if pend.len() == 16 || flush {
                let mut a = [0f32; 16];
                a[..pend.len()].copy_from_slice(&pend);
                // SAFETY: AVX-512F checked above.
                unsafe { check16(&a) };
                pend.clear();
            }
        };
        let mut b: u64 = 0;
        while b < 1 << 32 {
            feed(f32::from_bits(b as u32), false);
            b += 977;
        }
        for c in [
            88.72f32,
            -87.3,
            20.0,
            -15.0,
            9.5,
            -9.5,
            0.0,
            1.0,
            88.0,
            f32::MIN_POSITIVE,
            std::f32::consts::SQRT_2,
        ] {
            for sign in [1.0f32, -1.0] {
                let base = (c * sign).to_bits();
                for d in 0..20_000u32 {
                    feed(f32::from_bits(base.wrapping_add(d)), false);
                    feed(f32::from_bits(base.wrapping_sub(d)), false);
                }
            }
        }
        for top in [100f32.to_bits(), (-100f32).to_bits()] {
            let lo = top & 0x8000_0000;
            let mut b = lo;
            while b < top {
                feed(f32::from_bits(b), false);
                b += 1024;
            }
        }
        for x in [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            f32::MAX,
            f32::MIN,
            1e-45,
            -1e-45,
        ] {
            feed(x, false);
        }
        feed(0.5, true);
    }

    #[test]
    fn accuracy_against_std() {
        let mut worst = [0f64; 5];
        let mut x = -30.0f32;
        while x < 30.0 {
            let e = exp(x) as f64;
            let r = (x as f64).exp();
            worst[0] = worst[0].max(((e - r) / r).abs());
            let s = sigmoid(x) as f64;
            worst[1] = worst[1].max((s - 1.0 / (1.0 + (-(x as f64)).exp())).abs());
            let t = tanh(x) as f64;
            worst[2] = worst[2].max((t - (x as f64).tanh()).abs());
            let sp = softplus(x) as f64;
            worst[3] = worst[3].max((sp - (x as f64).exp().ln_1p()).abs());
            let y = (x * 0.37).abs() + 1e-3;
            worst[4] = worst[4].max((ln(y) as f64 - (y as f64).ln()).abs());
            x += 0.001_3;
        }
        assert!(worst[0] < 5e-7, "exp {worst:?}");
        assert!(worst[1] < 2e-7, "sigmoid {worst:?}");
        assert!(worst[2] < 3e-7, "tanh {worst:?}");
        assert!(worst[3] < 3e-6, "softplus {worst:?}");
        assert!(worst[4] < 1e-6, "ln {worst:?}");
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
    }
}
