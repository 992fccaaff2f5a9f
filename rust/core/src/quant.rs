//! Deterministic CDF quantization: float32 probabilities (or logits) become
//! integer frequencies that are all `>= 1` and sum to exactly `2^P`.
//!
//! The rule (also in docs/FORMAT.md, "CDF quantization"):
//!
//! 1. Sanitize: an entry whose bit pattern is negative, `-0.0`, `+inf` or NaN
//!    counts as `0`. Let `m` be the largest sanitized entry.
//! 2. If `m == 0`: every symbol gets `floor(M / V)` extra slots, the remainder
//!    goes to symbol 0 (here `M = 2^P - V`).
//! 3. Otherwise let `E = floor(log2 m)` (read from the exponent bits) and
//!    `e = 30 - E`. The only float step: `u_i = trunc(x_i * 2^e)`, which is
//!    exact (a power-of-two scaling, evaluated in f32 when `0 <= e <= 127`,
//!    else in f64; both give the mathematically exact product), so
//!    `u_max = trunc(m * 2^e)` lies in `[2^30, 2^31)`.
//! 4. Integers only from here: `U = sum u_i` (u64), `bU`/`bM` the bit lengths
//!    of `U` and `M`, `S = 31 + bU - bM`, `inv = floor(M * 2^S / U)` (u128
//!    division), `f_i = floor(u_i * inv / 2^S)`. Then `sum f_i <= M`.
//! 5. `freq_i = 1 + f_i`; the remainder `R = M - sum f_i` is added to the first
//!    index whose sanitized value equals `m` (index 0 when `m == 0`).
//!
//! Every step is order-independent (max and integer sums), so results do not
//! depend on the CPU, on vectorization or on the batch a row belongs to.

use crate::error::{MmzError, Result};

/// Smallest supported CDF precision (bits).
pub const MIN_PRECISION: u32 = 12;
/// Largest supported CDF precision (bits); the default for large vocabularies.
pub const MAX_PRECISION: u32 = 24;
/// Largest supported alphabet.
pub const MAX_ALPHABET: usize = 65_536;

/// Check that `precision` and alphabet size `v` are usable together.
pub fn check_params(precision: u32, v: usize) -> Result<()> {
    if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
        return Err(MmzError::InvalidArgument(format!(
            "precision must be in {MIN_PRECISION}..={MAX_PRECISION} bits, got {precision}"
        )));
    }
    if !(2..=MAX_ALPHABET).contains(&v) {
        return Err(MmzError::InvalidArgument(format!(
            "alphabet size must be in 2..={MAX_ALPHABET}, got {v}"
        )));
    }
    if v as u64 > (1u64 << precision) {
        return Err(MmzError::InvalidArgument(format!(
            "alphabet size {v} exceeds 2^{precision} slots; raise the precision"
        )));
    }
    Ok(())
}

const INF_BITS: u32 = 0x7F80_0000;

/// Sanitized value: non-positive, infinite and NaN entries become 0.
#[inline(always)]
fn sanitize(x: f32) -> f32 {
    // Positive finite floats (and +0) are exactly the bit patterns below +inf.
    if x.to_bits() < INF_BITS {
        x
    } else {
        0.0
    }
}

/// Bits of the sanitized value (0 for non-positive, infinite and NaN entries).
#[inline(always)]
fn sbits(x: f32) -> u32 {
    let b = x.to_bits();
    if b < INF_BITS {
        b
    } else {
        0
    }
}

/// Index of the first entry whose sanitized value equals the maximum (bits `mb`).
#[inline(always)]
fn first_max(p: &[f32], mb: u32) -> usize {
    for (ci, c) in p.chunks(L).enumerate() {
        let any = c.iter().fold(0u32, |a, &x| a | (sbits(x) == mb) as u32);
        if any != 0 {
            return ci * L + c.iter().position(|&x| sbits(x) == mb).unwrap_or(0);
        }
    }
    0
}

/// Lanes per unrolled step of the row kernels (lets LLVM use wide vectors).
const L: usize = 16;

/// Largest sanitized entry, as bits (monotone for non-negative floats).
#[inline(always)]
fn max_bits(p: &[f32]) -> u32 {
    let mut acc = [0u32; L];
    let mut it = p.chunks_exact(L);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            let b = x.to_bits();
            *a = (*a).max(if b < INF_BITS { b } else { 0 });
        }
    }
    let mut m = acc.iter().copied().fold(0, u32::max);
    for &x in it.remainder() {
        let b = x.to_bits();
        m = m.max(if b < INF_BITS { b } else { 0 });
    }
    m
}

/// `sum w(x)` over the row, exact in u64.
#[inline(always)]
fn sum_w(p: &[f32], w: impl Fn(f32) -> u32) -> u64 {
    let mut acc = [0u64; L];
    let mut it = p.chunks_exact(L);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += w(x) as u64;
        }
    }
    acc.iter().sum::<u64>() + it.remainder().iter().map(|&x| w(x) as u64).sum::<u64>()
}

/// `(sum f(x), any entry == the maximum)` with `f = (w * inv >> 32) >> sh`.
#[inline(always)]
fn sum_f_kernel(p: &[f32], w: impl Fn(f32) -> u32, inv: u64, sh: u32, mb: u32) -> (u64, bool) {
    let mut acc = [0u64; L];
    let mut hit = [0u32; L];
    let mut it = p.chunks_exact(L);
    for c in &mut it {
        for ((a, h), &x) in acc.iter_mut().zip(hit.iter_mut()).zip(c) {
            let u = w(x);
            *a += ((u as u64 * inv) >> 32) >> sh;
            *h |= (sbits(x) == mb) as u32;
        }
    }
    let mut sum = acc.iter().sum::<u64>();
    let mut any = hit.iter().fold(0, |a, &h| a | h) != 0;
    for &x in it.remainder() {
        let u = w(x);
        sum += ((u as u64 * inv) >> 32) >> sh;
        any |= sbits(x) == mb;
    }
    (sum, any)
}

/// Write `f(x)` for every entry; returns their sum.
#[inline(always)]
fn fill_kernel(p: &[f32], out: &mut [u32], w: impl Fn(f32) -> u32, inv: u64, sh: u32) -> u64 {
    let mut acc = [0u64; L];
    let mut pit = p.chunks_exact(L);
    let mut oit = out.chunks_exact_mut(L);
    for (c, o) in (&mut pit).zip(&mut oit) {
        for ((a, d), &x) in acc.iter_mut().zip(o.iter_mut()).zip(c) {
            let f = ((w(x) as u64 * inv) >> 32) >> sh;
            *d = f as u32 + 1;
            *a += f;
        }
    }
    let mut sum = acc.iter().sum::<u64>();
    for (d, &x) in oit.into_remainder().iter_mut().zip(pit.remainder()) {
        let f = ((w(x) as u64 * inv) >> 32) >> sh;
        *d = f as u32 + 1;
        sum += f;
    }
    sum
}

/// How entries are turned into integer weights `u_i = trunc(x_i * 2^e)`.
#[derive(Clone, Copy, Debug)]
enum Scale {
    /// All weights zero: uniform rule.
    Uniform,
    /// Exact in f32 (`0 <= e <= 127`).
    F32(f32),
    /// Exact in f64 (other exponents).
    F64(f64),
}

#[inline(always)]
fn weight_f32(x: f32, s: f32) -> u32 {
    let y = sanitize(x) * s;
    // SAFETY: callers only pass rows whose sanitized maximum m satisfies
    // m * s < 2^31 (that is how s was chosen) and sanitize() maps every entry
    // into [0, m], so y is finite, exact and in [0, 2^31): the conversion is defined.
    debug_assert!((0.0..2_147_483_648.0).contains(&y));
    (unsafe { y.to_int_unchecked::<i32>() }) as u32
}

#[inline(always)]
fn weight_f64(x: f32, s: f64) -> u32 {
    let y = sanitize(x) as f64 * s;
    debug_assert!((0.0..2_147_483_648.0).contains(&y));
    // SAFETY: as in weight_f32, y is finite and in [0, 2^31).
    (unsafe { y.to_int_unchecked::<i32>() }) as u32
}

/// Everything needed to compute `freq_i` for one probability row.
#[derive(Clone, Copy, Debug)]
pub struct RowQuant {
    scale: Scale,
    /// Bits of the largest sanitized entry.
    mb: u32,
    /// Free slots `M = 2^P - V`.
    m: u32,
    inv: u64,
    /// `S - 32`.
    sh: u32,
    /// Number of symbols.
    v: usize,
}

impl RowQuant {
    /// Passes 1 and 2 over a row (max, then the exact integer total).
    /// `precision`/`p.len()` must already satisfy [`check_params`].
    #[inline(always)]
    pub fn new(p: &[f32], precision: u32) -> Self {
        let v = p.len();
        let m = ((1u64 << precision) - v as u64) as u32;
        let mb = max_bits(p);
        if mb == 0 {
            return RowQuant { scale: Scale::Uniform, mb: 0, m, inv: 0, sh: 0, v };
        }
        let exp_field = (mb >> 23) as i32;
        let big_e = if exp_field == 0 {
            // Subnormal: value = mantissa * 2^-149.
            let mant = mb & 0x7F_FFFF;
            (31 - mant.leading_zeros() as i32) - 149
        } else {
            exp_field - 127
        };
        let e = 30 - big_e;
        let scale = if (0..=127).contains(&e) {
            Scale::F32(f32::from_bits(((e + 127) as u32) << 23))
        } else {
            Scale::F64(f64::from_bits(((e + 1023) as u64) << 52))
        };
        let total = match scale {
            Scale::F32(s) => sum_w(p, |x| weight_f32(x, s)),
            Scale::F64(s) => sum_w(p, |x| weight_f64(x, s)),
            Scale::Uniform => 0,
        };
        let (inv, sh) = if m == 0 || total == 0 {
            (0, 0)
        } else {
            let bu = 64 - total.leading_zeros();
            let bm = 32 - m.leading_zeros();
            let s = 31 + bu - bm; // in [38, 78] (U in [2^30, 2^47], M < 2^24)
            let inv = (((m as u128) << s) / total as u128) as u64;
            (inv, s - 32)
        };
        RowQuant { scale, mb, m, inv, sh, v }
    }

    /// Sum of `f_i` over `xs` and whether any of them has the largest weight.
    #[inline(always)]
    fn sum_f(&self, xs: &[f32]) -> (u64, bool) {
        let (inv, sh, mb) = (self.inv, self.sh, self.mb);
        match self.scale {
            Scale::Uniform => ((self.m as u64 / self.v as u64) * xs.len() as u64, !xs.is_empty()),
            Scale::F32(s) => sum_f_kernel(xs, |x| weight_f32(x, s), inv, sh, mb),
            Scale::F64(s) => sum_f_kernel(xs, |x| weight_f64(x, s), inv, sh, mb),
        }
    }

    #[inline(always)]
    fn f_of(&self, x: f32) -> (u32, bool) {
        let u = match self.scale {
            Scale::Uniform => return (self.m / self.v as u32, true),
            Scale::F32(s) => weight_f32(x, s),
            Scale::F64(s) => weight_f64(x, s),
        };
        ((((u as u64 * self.inv) >> 32) >> self.sh) as u32, sbits(x) == self.mb)
    }

    /// `(start, freq)` of `symbol` without materialising the row.
    /// Errors if `symbol >= V`.
    #[inline(always)]
    pub fn interval(&self, p: &[f32], symbol: usize) -> Result<(u32, u32)> {
        let (lo, rest) = match (p.get(..symbol), p.get(symbol..)) {
            (Some(lo), Some(rest)) if !rest.is_empty() => (lo, rest),
            _ => {
                return Err(MmzError::InvalidArgument(format!(
                    "symbol {symbol} out of range for alphabet of {}",
                    p.len()
                )))
            }
        };
        let (sum_lo, hit_lo) = self.sum_f(lo);
        let (fs, hit_s) = self.f_of(rest[0]);
        // The remainder goes to the first index holding the maximum.
        let first_is_before = hit_lo;
        let first_is_here = !hit_lo && hit_s;
        let start = symbol as u64 + sum_lo;
        if first_is_before || first_is_here {
            let (sum_hi, _) = self.sum_f(&rest[1..]);
            let r = self.m as u64 - (sum_lo + fs as u64 + sum_hi);
            if first_is_before {
                Ok(((start + r) as u32, 1 + fs))
            } else {
                Ok((start as u32, 1 + fs + r as u32))
            }
        } else {
            Ok((start as u32, 1 + fs))
        }
    }

    /// Write all `freq_i` into `out` (same length as `p`).
    #[inline(always)]
    pub fn fill(&self, p: &[f32], out: &mut [u32]) -> Result<()> {
        if out.len() != p.len() {
            return Err(MmzError::InvalidArgument("output length differs from row length".into()));
        }
        let (inv, sh) = (self.inv, self.sh);
        let sum = match self.scale {
            Scale::Uniform => {
                let f = self.m / self.v as u32;
                out.iter_mut().for_each(|o| *o = f + 1);
                f as u64 * self.v as u64
            }
            Scale::F32(s) => fill_kernel(p, out, |x| weight_f32(x, s), inv, sh),
            Scale::F64(s) => fill_kernel(p, out, |x| weight_f64(x, s), inv, sh),
        };
        let first = first_max(p, self.mb);
        let r = (self.m as u64).saturating_sub(sum) as u32;
        if let Some(o) = out.get_mut(first) {
            *o += r;
        }
        Ok(())
    }
}

// The row kernels are compiled twice: for the baseline target and, on x86-64,
// with AVX2 or AVX-512 enabled (chosen at run time). Both perform the same exact integer
// and power-of-two float operations, so they return identical results.

#[inline(always)]
fn interval_generic(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    RowQuant::new(p, precision).interval(p, symbol)
}

#[inline(always)]
fn fill_generic(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    RowQuant::new(p, precision).fill(p, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interval_avx2(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    interval_generic(p, precision, symbol)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    fill_generic(p, precision, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
unsafe fn interval_avx512(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    interval_generic(p, precision, symbol)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
unsafe fn fill_avx512(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    fill_generic(p, precision, out)
}

#[inline(always)]
fn have_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
fn have_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `(start, freq)` of `symbol` under the quantized row `p`, without
/// materialising the frequencies (the encoder's fast path).
pub fn row_interval(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    check_params(precision, p.len())?;
    #[cfg(target_arch = "x86_64")]
    if have_avx512() {
        // SAFETY: the CPU supports these AVX-512 subsets (checked just above).
        return unsafe { interval_avx512(p, precision, symbol) };
    } else if have_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { interval_avx2(p, precision, symbol) };
    }
    interval_generic(p, precision, symbol)
}

/// Portable (non-dispatched) variant of [`row_interval`], for equivalence tests.
pub fn row_interval_portable(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    check_params(precision, p.len())?;
    interval_generic(p, precision, symbol)
}

/// Quantize one row of probabilities to frequencies summing to `2^precision`.
pub fn quantize_probs(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    check_params(precision, p.len())?;
    #[cfg(target_arch = "x86_64")]
    if have_avx512() {
        // SAFETY: the CPU supports these AVX-512 subsets (checked just above).
        return unsafe { fill_avx512(p, precision, out) };
    } else if have_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { fill_avx2(p, precision, out) };
    }
    fill_generic(p, precision, out)
}

/// Portable (non-dispatched) variant of [`quantize_probs`], for equivalence tests.
pub fn quantize_probs_portable(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    check_params(precision, p.len())?;
    fill_generic(p, precision, out)
}

/// Convenience: quantize into a fresh vector.
pub fn quantize_probs_vec(p: &[f32], precision: u32) -> Result<Vec<u32>> {
    let mut out = vec![0u32; p.len()];
    quantize_probs(p, precision, &mut out)?;
    Ok(out)
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// `2^x` for `x <= 0`, from `+`, `*` and exponent bits only (no libm), so every
/// CPU produces the same bits. Returns 0 below `2^-126`.
///
/// `x = n + t` with `n = floor(x)`, `t` in `[0, 1)`; `2^t` by a degree-6
/// polynomial in Horner form (no fused multiply-add), scaled by `2^n` through
/// the exponent field.
#[inline(always)]
pub fn exp2_neg(x: f32) -> f32 {
    if x.is_nan() || x <= -126.0 {
        return 0.0;
    }
    let x = if x > 0.0 { 0.0 } else { x };
    let ti = x as i32; // trunc toward zero, in [-125, 0]
    let n = if (ti as f32) > x { ti - 1 } else { ti };
    let t = x - n as f32; // correctly rounded, in [0, 1]
    // Taylor coefficients (ln 2)^k / k! of 2^t = e^(t ln 2); ~2e-7 relative on [0, 1].
    const C1: f32 = std::f32::consts::LN_2;
    const C2: f32 = 0.240_226_5;
    const C3: f32 = 0.055_504_11;
    const C4: f32 = 0.009_618_129;
    const C5: f32 = 0.001_333_355_8;
    const C6: f32 = 0.000_154_035_3;
    const C7: f32 = 0.000_015_252_73;
    const C8: f32 = 0.000_001_321_55;
    let p = 1.0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * C8)))))));
    // p in [1, 2]; multiply by 2^n (n >= -126, normal).
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// Softmax numerators `exp(l_i - max l)` computed with [`exp2_neg`]; non-finite
/// logits get weight 0 (all non-finite: all 0, which quantizes to uniform).
pub fn logits_to_weights(logits: &[f32], out: &mut [f32]) -> Result<()> {
    if out.len() != logits.len() {
        return Err(MmzError::InvalidArgument("output length differs from logits length".into()));
    }
    let mut mx = f32::NEG_INFINITY;
    for &l in logits {
        if l.is_finite() && l > mx {
            mx = l;
        }
    }
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = if l.is_finite() { exp2_neg((l - mx) * LOG2_E) } else { 0.0 };
    }
    Ok(())
}

/// Quantize one row of logits (softmax implied) to frequencies summing to `2^precision`.
pub fn quantize_logits(logits: &[f32], precision: u32, out: &mut [u32], scratch: &mut Vec<f32>) -> Result<()> {
    check_params(precision, logits.len())?;
    scratch.clear();
    scratch.resize(logits.len(), 0.0);
    logits_to_weights(logits, scratch)?;
    quantize_probs(scratch, precision, out)
}

/// Validate integer frequencies for direct use: `2..=65536` entries, total in
/// `1..=2^24`. Zero entries are allowed (such symbols cannot be coded). Returns the total.
pub fn check_freqs(freqs: &[u32]) -> Result<u32> {
    if !(2..=MAX_ALPHABET).contains(&freqs.len()) {
        return Err(MmzError::InvalidArgument(format!(
            "alphabet size must be in 2..={MAX_ALPHABET}, got {}",
            freqs.len()
        )));
    }
    let total: u64 = freqs.iter().map(|&f| f as u64).sum();
    if total == 0 || total > 1 << MAX_PRECISION {
        return Err(MmzError::InvalidArgument(format!(
            "frequency total must be in 1..=2^{MAX_PRECISION}, got {total}"
        )));
    }
    Ok(total as u32)
}

/// Turn a CDF (`V + 1` non-decreasing entries starting at 0) into frequencies.
pub fn cdf_to_freqs(cdf: &[u32]) -> Result<Vec<u32>> {
    if cdf.first() != Some(&0) {
        return Err(MmzError::InvalidArgument("a CDF must start with 0".into()));
    }
    let mut out = Vec::with_capacity(cdf.len().saturating_sub(1));
    for w in cdf.windows(2) {
        if w[1] < w[0] {
            return Err(MmzError::InvalidArgument("a CDF must be non-decreasing".into()));
        }
        out.push(w[1] - w[0]);
    }
    check_freqs(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_floor() {
        let p = [0.5f32, 0.25, 0.0, f32::NAN, -1.0, f32::INFINITY, 0.25, 1e-30];
        for prec in [12, 16, 24] {
            let f = quantize_probs_vec(&p, prec).unwrap();
            assert_eq!(f.iter().map(|&x| x as u64).sum::<u64>(), 1 << prec);
            assert!(f.iter().all(|&x| x >= 1));
            assert!(f[0] > f[1] && f[1] >= f[6]);
        }
    }

    #[test]
    fn interval_matches_fill() {
        let p: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 / 7.0 + if i == 5 { 100.0 } else { 0.0 }).collect();
        for prec in [12, 20, 24] {
            let f = quantize_probs_vec(&p, prec).unwrap();
            let q = RowQuant::new(&p, prec);
            let mut start = 0;
            for (s, &fs) in f.iter().enumerate() {
                assert_eq!(q.interval(&p, s).unwrap(), (start, fs), "symbol {s}");
                start += fs;
            }
        }
    }

    #[test]
    fn uniform_and_extreme_scales() {
        for p in [vec![0.0f32; 10], vec![1e-44f32, 3e-45, 0.0], vec![3e38f32, 1e38, 1.0], vec![f32::NAN; 3]] {
            let f = quantize_probs_vec(&p, 16).unwrap();
            assert_eq!(f.iter().sum::<u32>(), 1 << 16);
            let q = RowQuant::new(&p, 16);
            let mut start = 0;
            for (s, &fs) in f.iter().enumerate() {
                assert_eq!(q.interval(&p, s).unwrap(), (start, fs));
                start += fs;
            }
        }
    }

    #[test]
    fn exp2_accuracy() {
        let mut x = -125.9f32;
        while x <= 0.0 {
            let got = exp2_neg(x) as f64;
            let want = (x as f64).exp2();
            assert!(((got - want) / want).abs() < 1e-6, "x={x} got={got} want={want}");
            x += 0.0137;
        }
        assert_eq!(exp2_neg(0.0), 1.0);
        assert_eq!(exp2_neg(-200.0), 0.0);
    }
}
