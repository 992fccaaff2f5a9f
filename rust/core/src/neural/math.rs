//! Deterministic float32 transcendental functions for the neural engine.
//!
//! Built from `+`, `-`, `×`, `÷` (each correctly rounded IEEE binary32) and
//! exponent-bit manipulation only: no libm, no fused multiply-add, so every
//! CPU computes the same bits. Accuracy is a few ulp, far inside the engine's
//! conformance tolerance against onnxruntime.

const LN2_HI: f32 = 0.693_145_75; // 0x3F317200: few mantissa bits, n * LN2_HI exact for |n| <= 256
const LN2_LO: f32 = 1.428_606_8e-6;
const LOG2_E: f32 = std::f32::consts::LOG2_E;

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

/// `e^x`. Returns `+inf` above 88.72 and `0` below -87.3 (no subnormals); NaN stays NaN.
#[inline(always)]
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
    // Cody–Waite reduction: x = n ln2 + r, |r| <= ln2 / 2.
    let n = floor_i32(x * LOG2_E + 0.5);
    let nf = n as f32;
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // Taylor polynomial of e^r to degree 7 (error < 3e-9 on |r| <= 0.347), Horner form.
    const C2: f32 = 0.5;
    const C3: f32 = 1.0 / 6.0;
    const C4: f32 = 1.0 / 24.0;
    const C5: f32 = 1.0 / 120.0;
    const C6: f32 = 1.0 / 720.0;
    const C7: f32 = 1.0 / 5040.0;
    let p = 1.0 + r * (1.0 + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))));
    if n > 127 {
        p * pow2i(127) * 2.0
    } else {
        p * pow2i(n)
    }
}

/// Natural logarithm of a positive normal float (`ln(x)`); `x <= 0` gives `-inf`,
/// `+inf`/NaN are returned unchanged.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x <= 0.0 {
        return f32::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let (mut e, mant) = if bits < 0x0080_0000 {
        // Subnormal: normalise by 2^23 first.
        let y = x * 8_388_608.0;
        let b = y.to_bits();
        (((b >> 23) & 0xFF) as i32 - 127 - 23, b & 0x7F_FFFF)
    } else {
        (((bits >> 23) & 0xFF) as i32 - 127, bits & 0x7F_FFFF)
    };
    let mut m = f32::from_bits(mant | 0x3F80_0000); // [1, 2)
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
    let lnm = 2.0 * s * series;
    let ef = e as f32;
    ef * LN2_HI + (lnm + ef * LN2_LO)
}

/// Logistic sigmoid `1 / (1 + e^-z)`.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `softplus(z) = ln(1 + e^z)`; `z` itself above 20 (as torch), `e^z` below -15.
#[inline(always)]
pub fn softplus(z: f32) -> f32 {
    if z > 20.0 {
        z
    } else if z < -15.0 {
        exp(z)
    } else {
        ln(1.0 + exp(z))
    }
}

/// Hyperbolic tangent, `sign(x) (1 - 2 / (e^{2|x|} + 1))`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = if x < 0.0 { -x } else { x };
    let t = if a > 9.5 { 1.0 } else { 1.0 - 2.0 / (exp(2.0 * a) + 1.0) };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
