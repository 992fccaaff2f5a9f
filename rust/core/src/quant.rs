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

/// Lanes per unrolled step of the portable row kernels (lets LLVM use wide vectors).
const L: usize = 16;

/// Entries per block of the decoder's two-level search (block totals, then one block).
pub(crate) const BLOCK: usize = 64;
/// Row length of the prepared-row decoder path ([`RowPrep`]: 16 vectors of 16 lanes).
pub const SMALL: usize = 256;

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
pub(crate) fn weight_f32(x: f32, s: f32) -> u32 {
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

/// `f = floor(u * inv / 2^S)` of one weight, `sh = S - 32`.
#[inline(always)]
pub(crate) fn f_of_u(u: u32, inv: u64, sh: u32) -> u64 {
    ((u as u64 * inv) >> 32) >> sh
}

/// The row kernels one instruction set provides. All implementations compute
/// the same integers (see `quant_x86.rs`). `s` is an f32 power-of-two scale and
/// `u` the row's integer weights `u_i` as written by `weights`.
///
/// Safety: implementations may require CPU features; callers must have
/// checked them (see [`Kernel::is_available`]).
trait Kern {
    /// Bits of the largest sanitized entry.
    unsafe fn max_bits(p: &[f32]) -> u32;
    /// Write `u_i` into `u` (same length as `p`); returns `(sum u_i, first index with bits mb)`.
    unsafe fn weights(p: &[f32], s: f32, mb: u32, u: &mut [u32]) -> (u64, usize);
    /// `sum f_i`.
    unsafe fn sum_f(u: &[u32], inv: u64, sh: u32) -> u64;
    /// In place `u_i -> 1 + f_i`; returns `sum f_i`.
    unsafe fn fill(u: &mut [u32], inv: u64, sh: u32) -> u64;
    /// Within one block (`u.len() <= BLOCK`), with `g_i = 1 + f_i` (plus `r` at
    /// index `kk`): the first `i` whose inclusive running sum of `g` exceeds `t`,
    /// with the sum before it and `g_i`; `None` if the block's total is `<= t`.
    unsafe fn search(
        u: &[u32],
        inv: u64,
        sh: u32,
        t: u64,
        kk: usize,
        r: u32,
    ) -> Option<(usize, u64, u32)>;
}

/// Plain Rust kernels (any CPU).
struct Portable;

impl Kern for Portable {
    #[inline(always)]
    unsafe fn max_bits(p: &[f32]) -> u32 {
        max_bits(p)
    }
    #[inline(always)]
    unsafe fn weights(p: &[f32], s: f32, mb: u32, u: &mut [u32]) -> (u64, usize) {
        let mut total = 0u64;
        for (d, &x) in u.iter_mut().zip(p) {
            *d = weight_f32(x, s);
            total += *d as u64;
        }
        (
            total,
            p.iter()
                .position(|x| x.to_bits() == mb)
                .unwrap_or(usize::MAX),
        )
    }
    #[inline(always)]
    unsafe fn sum_f(u: &[u32], inv: u64, sh: u32) -> u64 {
        let mut acc = [0u64; L];
        let mut it = u.chunks_exact(L);
        for c in &mut it {
            for (a, &w) in acc.iter_mut().zip(c) {
                *a += f_of_u(w, inv, sh);
            }
        }
        acc.iter().sum::<u64>()
            + it.remainder()
                .iter()
                .map(|&w| f_of_u(w, inv, sh))
                .sum::<u64>()
    }
    #[inline(always)]
    unsafe fn fill(u: &mut [u32], inv: u64, sh: u32) -> u64 {
        let mut sum = 0u64;
        for d in u.iter_mut() {
            let f = f_of_u(*d, inv, sh);
            *d = f as u32 + 1;
            sum += f;
        }
        sum
    }
    #[inline(always)]
    unsafe fn search(
        u: &[u32],
        inv: u64,
        sh: u32,
        t: u64,
        kk: usize,
        r: u32,
    ) -> Option<(usize, u64, u32)> {
        let mut cum = 0u64;
        for (i, &w) in u.iter().enumerate() {
            let g = 1 + f_of_u(w, inv, sh) + if i == kk { r as u64 } else { 0 };
            if cum + g > t {
                return Some((i, cum, g as u32));
            }
            cum += g;
        }
        None
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "quant_x86.rs"]
mod x86;

macro_rules! simd_kern {
    ($name:ident, $m:ident, $doc:literal) => {
        #[doc = $doc]
        #[cfg(target_arch = "x86_64")]
        struct $name;

        #[cfg(target_arch = "x86_64")]
        impl Kern for $name {
            #[inline(always)]
            unsafe fn max_bits(p: &[f32]) -> u32 {
                x86::$m::max_bits(p)
            }
            #[inline(always)]
            unsafe fn weights(p: &[f32], s: f32, mb: u32, u: &mut [u32]) -> (u64, usize) {
                x86::$m::weights(p, s, mb, u)
            }
            #[inline(always)]
            unsafe fn sum_f(u: &[u32], inv: u64, sh: u32) -> u64 {
                x86::$m::sum_f(u, inv, sh)
            }
            #[inline(always)]
            unsafe fn fill(u: &mut [u32], inv: u64, sh: u32) -> u64 {
                x86::$m::fill(u, inv, sh)
            }
            #[inline(always)]
            unsafe fn search(
                u: &[u32],
                inv: u64,
                sh: u32,
                t: u64,
                kk: usize,
                r: u32,
            ) -> Option<(usize, u64, u32)> {
                x86::$m::search(u, inv, sh, t, kk, r)
            }
        }
    };
}

simd_kern!(Avx512, avx512, "AVX-512 (F) kernels.");
simd_kern!(Avx2, avx2, "AVX2 kernels.");

/// Everything needed to compute `freq_i` for one probability row.
#[derive(Clone, Copy, Debug)]
struct RowQuant {
    scale: Scale,
    /// Bits of the largest sanitized entry.
    mb: u32,
    /// First index whose sanitized value is the maximum (gets the remainder).
    first: usize,
    /// Free slots `M = 2^P - V`.
    m: u32,
    /// `floor(M * 2^S / U)`, below 2^32.
    inv: u64,
    /// `S - 32`.
    sh: u32,
    /// Number of symbols.
    v: usize,
}

/// The f32 scale `2^e` for a non-zero maximum `mb`, if it is an f32 one.
pub(crate) fn f32_scale(mb: u32) -> Option<f32> {
    match RowQuant::scale_of(mb) {
        Scale::F32(s) if mb != 0 => Some(s),
        _ => None,
    }
}

pub(crate) fn bad_row() -> MmzError {
    MmzError::corrupt("range-coded stream", "frequency row inconsistent")
}

pub(crate) fn beyond_total() -> MmzError {
    MmzError::corrupt("range-coded stream", "target beyond the frequency total")
}

impl RowQuant {
    /// Passes 1 and 2 over a row (max, then the integer weights and their exact
    /// total, written to `u` when the scale is an f32 one).
    /// `precision`/`p.len()` must already satisfy [`check_params`].
    /// Safety: `K`'s CPU features must be present.
    #[inline(always)]
    unsafe fn with<K: Kern>(p: &[f32], precision: u32, u: &mut [u32]) -> Result<Self> {
        let v = p.len();
        let m = ((1u64 << precision) - v as u64) as u32;
        let mb = K::max_bits(p);
        if mb == 0 {
            return Ok(RowQuant {
                scale: Scale::Uniform,
                mb: 0,
                first: 0,
                m,
                inv: 0,
                sh: 0,
                v,
            });
        }
        let scale = Self::scale_of(mb);
        let (total, first) = match scale {
            Scale::F32(s) => K::weights(p, s, mb, u.get_mut(..v).ok_or_else(bad_row)?),
            Scale::F64(s) => (
                sum_w(p, |x| weight_f64(x, s)),
                p.iter().position(|&x| sbits(x) == mb).unwrap_or(usize::MAX),
            ),
            Scale::Uniform => (0, 0),
        };
        let (inv, sh) = inv_sh(m, total);
        Ok(RowQuant {
            scale,
            mb,
            first,
            m,
            inv,
            sh,
            v,
        })
    }

    /// Sum of `f_i` over indices `range` (`u` as filled by `with`).
    #[inline(always)]
    unsafe fn sum_f<K: Kern>(&self, p: &[f32], u: &[u32], range: std::ops::Range<usize>) -> u64 {
        let (inv, sh) = (self.inv, self.sh);
        match self.scale {
            Scale::Uniform => (self.m as u64 / self.v as u64) * range.len() as u64,
            Scale::F32(_) => u.get(range).map_or(0, |u| K::sum_f(u, inv, sh)),
            Scale::F64(s) => p.get(range).map_or(0, |xs| {
                sum_f_kernel(xs, |x| weight_f64(x, s), inv, sh, self.mb).0
            }),
        }
    }

    #[inline(always)]
    fn f_at(&self, p: &[f32], u: &[u32], i: usize) -> u32 {
        let w = match self.scale {
            Scale::Uniform => return self.m / self.v as u32,
            Scale::F32(_) => u.get(i).copied().unwrap_or(0),
            Scale::F64(s) => p.get(i).map_or(0, |&x| weight_f64(x, s)),
        };
        f_of_u(w, self.inv, self.sh) as u32
    }

    /// `(start, freq)` of `symbol` without materialising the row.
    #[inline(always)]
    unsafe fn interval_with<K: Kern>(
        &self,
        p: &[f32],
        u: &[u32],
        symbol: usize,
    ) -> Result<(u32, u32)> {
        if symbol >= p.len() {
            return Err(MmzError::InvalidArgument(format!(
                "symbol {symbol} out of range for alphabet of {}",
                p.len()
            )));
        }
        let sum_lo = self.sum_f::<K>(p, u, 0..symbol);
        let fs = self.f_at(p, u, symbol);
        let start = symbol as u64 + sum_lo;
        // The remainder goes to the first index holding the maximum.
        if self.first <= symbol {
            let sum_hi = self.sum_f::<K>(p, u, symbol + 1..p.len());
            let r = (self.m as u64)
                .checked_sub(sum_lo + fs as u64 + sum_hi)
                .ok_or_else(bad_row)?;
            if self.first < symbol {
                Ok(((start + r) as u32, 1 + fs))
            } else {
                Ok((start as u32, 1 + fs + r as u32))
            }
        } else {
            Ok((start as u32, 1 + fs))
        }
    }

    /// Write all `freq_i` into `out` (same length as `p`), which also serves
    /// as the weight buffer.
    #[inline(always)]
    unsafe fn fill_with<K: Kern>(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
        if out.len() != p.len() {
            return Err(MmzError::InvalidArgument(
                "output length differs from row length".into(),
            ));
        }
        // The weights go straight into `out` (the f32-scale case overwrites them with freq_i).
        let rq = Self::with::<K>(p, precision, out)?;
        let (inv, sh) = (rq.inv, rq.sh);
        let sum = match rq.scale {
            Scale::Uniform => {
                let f = rq.m / rq.v as u32;
                out.iter_mut().for_each(|o| *o = f + 1);
                f as u64 * rq.v as u64
            }
            Scale::F32(_) => K::fill(out, inv, sh),
            Scale::F64(s) => fill_kernel(p, out, |x| weight_f64(x, s), inv, sh),
        };
        let r = (rq.m as u64).checked_sub(sum).ok_or_else(bad_row)? as u32;
        if let Some(o) = out.get_mut(rq.first) {
            *o += r;
        }
        Ok(())
    }

    pub(crate) fn scale_of(mb: u32) -> Scale {
        let exp_field = (mb >> 23) as i32;
        let big_e = if exp_field == 0 {
            (31 - (mb & 0x7F_FFFF).leading_zeros() as i32) - 149
        } else {
            exp_field - 127
        };
        let e = 30 - big_e;
        if (0..=127).contains(&e) {
            Scale::F32(f32::from_bits(((e + 127) as u32) << 23))
        } else {
            Scale::F64(f64::from_bits(((e + 1023) as u64) << 52))
        }
    }

    /// The symbol whose interval holds `q` (`< 2^P`), as `(symbol, start, freq)`,
    /// without materialising the row: block sums of `f`, then one block.
    /// `u` holds the weights (from `with`), `bsums` receives the block sums.
    #[inline(always)]
    unsafe fn locate_with<K: Kern>(&self, p: &[f32], u: &[u32], q: u32) -> Result<(u32, u32, u32)> {
        let v = p.len();
        let q = q as u64;
        match self.scale {
            Scale::Uniform => {
                let c = (self.m / v as u32) as u64;
                let f0 = 1 + c + (self.m as u64 - c * v as u64);
                if q < f0 {
                    return Ok((0, 0, f0 as u32));
                }
                let i = (q - f0) / (1 + c) + 1;
                if i >= v as u64 {
                    return Err(beyond_total());
                }
                return Ok((i as u32, (f0 + (i - 1) * (1 + c)) as u32, (1 + c) as u32));
            }
            Scale::F32(_) => {}
            Scale::F64(s) => {
                // Rare (the maximum is below 2^-97 or at least 2^31): materialise the row.
                let mut freqs = vec![0u32; v];
                let sum = fill_kernel(p, &mut freqs, |x| weight_f64(x, s), self.inv, self.sh);
                let r = (self.m as u64).checked_sub(sum).ok_or_else(bad_row)? as u32;
                if let Some(o) = freqs.get_mut(self.first) {
                    *o += r;
                }
                let mut cum = 0u64;
                for (i, &f) in freqs.iter().enumerate() {
                    if cum + f as u64 > q {
                        return Ok((i as u32, cum as u32, f));
                    }
                    cum += f as u64;
                }
                return Err(beyond_total());
            }
        }
        let (inv, sh) = (self.inv, self.sh);
        let u = u.get(..v).ok_or_else(bad_row)?;
        // Blocks before the one holding the first maximum do not depend on the
        // remainder R: walk them first and stop at the target if it lies there.
        let kb0 = (self.first / BLOCK) * BLOCK;
        let head = u.get(..kb0).ok_or_else(bad_row)?;
        let before = match walk::<K>(head, inv, sh, q) {
            Ok((b0, before)) => {
                let blk = &u[b0..v.min(b0 + BLOCK)];
                let (j, st, f) =
                    K::search(blk, inv, sh, q - before, usize::MAX, 0).ok_or_else(bad_row)?;
                return Ok(((b0 + j) as u32, (before + st) as u32, f));
            }
            Err(before) => before,
        };
        // Otherwise R is needed: the rest of the row's sum of f.
        let rest = K::sum_f(&u[kb0..], inv, sh);
        let total = (before - kb0 as u64) + rest;
        let r = (self.m as u64).checked_sub(total).ok_or_else(bad_row)?;
        let kend = v.min(kb0 + BLOCK);
        let kblk = &u[kb0..kend];
        let t = q - before;
        let wk = K::sum_f(kblk, inv, sh) + kblk.len() as u64 + r;
        if t < wk {
            let (j, st, f) =
                K::search(kblk, inv, sh, t, self.first - kb0, r as u32).ok_or_else(bad_row)?;
            return Ok(((kb0 + j) as u32, (before + st) as u32, f));
        }
        let t2 = t - wk;
        match walk::<K>(&u[kend..], inv, sh, t2) {
            Ok((b1, before2)) => {
                let s0 = kend + b1;
                let blk = &u[s0..v.min(s0 + BLOCK)];
                let (j, st, f) =
                    K::search(blk, inv, sh, t2 - before2, usize::MAX, 0).ok_or_else(bad_row)?;
                Ok(((s0 + j) as u32, (before + wk + before2 + st) as u32, f))
            }
            Err(_) => Err(beyond_total()),
        }
    }
}

/// Walk whole blocks of `u` (weights `g_i = 1 + f_i`): the start of the first
/// block whose inclusive running total exceeds `t` and the total before it, or
/// `Err(total)` if there is none.
#[inline(always)]
unsafe fn walk<K: Kern>(
    u: &[u32],
    inv: u64,
    sh: u32,
    t: u64,
) -> std::result::Result<(usize, u64), u64> {
    let mut cum = 0u64;
    for (b, c) in u.chunks(BLOCK).enumerate() {
        let w = K::sum_f(c, inv, sh) + c.len() as u64;
        if cum + w > t {
            return Ok((b * BLOCK, cum));
        }
        cum += w;
    }
    Err(cum)
}

/// Which row kernels to use. [`Kernel::best`] is what the coder uses; the others
/// exist so tests can check every implementation against [`quantize_probs_reference`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// x86-64 AVX2.
    Avx2,
    /// x86-64 AVX-512 (F).
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU supports (detected once).
    #[inline]
    pub fn best() -> Kernel {
        use std::sync::atomic::{AtomicU8, Ordering};
        static BEST: AtomicU8 = AtomicU8::new(0);
        match BEST.load(Ordering::Relaxed) {
            1 => Kernel::Portable,
            2 => Kernel::Avx2,
            3 => Kernel::Avx512,
            _ => {
                let k = Self::detect();
                BEST.store(
                    match k {
                        Kernel::Portable => 1,
                        Kernel::Avx2 => 2,
                        Kernel::Avx512 => 3,
                    },
                    Ordering::Relaxed,
                );
                k
            }
        }
    }

    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// All kernels this CPU can run.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    fn check(self) -> Result<()> {
        if self.is_available() {
            Ok(())
        } else {
            Err(MmzError::InvalidArgument(format!(
                "kernel {self:?} is not supported by this CPU"
            )))
        }
    }
}

// Entry points compiled per instruction set: the row logic is inlined into
// functions carrying the matching `target_feature`, so the whole row step
// (max, total, partial sums, search) runs in one dispatched call.
macro_rules! entry_points {
    ($kern:ty, $interval:ident, $fill:ident, $locate:ident $(, $feat:literal)?) => {
        $(#[target_feature(enable = $feat)])?
        unsafe fn $interval(p: &[f32], precision: u32, symbol: usize, scratch: &mut Vec<u32>) -> Result<(u32, u32)> {
            if scratch.len() < p.len() {
                scratch.resize(p.len(), 0);
            }
            let rq = RowQuant::with::<$kern>(p, precision, scratch)?;
            rq.interval_with::<$kern>(p, scratch, symbol)
        }
        $(#[target_feature(enable = $feat)])?
        unsafe fn $fill(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
            RowQuant::fill_with::<$kern>(p, precision, out)
        }
        $(#[target_feature(enable = $feat)])?
        unsafe fn $locate(p: &[f32], precision: u32, q: u32, scratch: &mut Vec<u32>) -> Result<(u32, u32, u32)> {
            if scratch.len() < p.len() {
                scratch.resize(p.len(), 0);
            }
            let rq = RowQuant::with::<$kern>(p, precision, scratch)?;
            rq.locate_with::<$kern>(p, scratch, q)
        }
    };
}

entry_points!(Portable, interval_portable, fill_portable, locate_portable);
#[cfg(target_arch = "x86_64")]
entry_points!(Avx2, interval_avx2, fill_avx2, locate_avx2, "avx2");
#[cfg(target_arch = "x86_64")]
entry_points!(
    Avx512,
    interval_avx512,
    fill_avx512,
    locate_avx512,
    "avx512f"
);

/// `(inv, S - 32)` for free slots `m` and weight total `total` (step 4 of the rule).
#[inline(always)]
pub(crate) fn inv_sh(m: u32, total: u64) -> (u64, u32) {
    if m == 0 || total == 0 {
        return (0, 0);
    }
    let bu = 64 - total.leading_zeros();
    let bm = 32 - m.leading_zeros();
    let s = 31 + bu - bm; // in [38, 78] (U in [2^30, 2^47], M < 2^24)
    (div_wide((m as u128) << s, total), s - 32)
}

/// `floor(n / d)` for `d > 0` and a quotient below 2^64 (here below 2^32).
/// On x86-64 one hardware 128-by-64 `div` (exact integer division, the same
/// result as the u128 operator, which compiles to a much slower library call).
#[inline(always)]
fn div_wide(n: u128, d: u64) -> u64 {
    let (hi, lo) = ((n >> 64) as u64, n as u64);
    #[cfg(target_arch = "x86_64")]
    if hi < d {
        let q: u64;
        // SAFETY: `div` faults only for d = 0 or a quotient >= 2^64, both excluded
        // by `hi < d` (which implies d > 0 and n / d < 2^64).
        unsafe {
            std::arch::asm!("div {d}", d = in(reg) d, inout("rax") lo => q, inout("rdx") hi => _,
                            options(pure, nomem, nostack));
        }
        return q;
    }
    let _ = (hi, lo);
    (n / d as u128) as u64
}

/// `(start, freq)` of `symbol` under the quantized row `p`, without
/// materialising the frequencies (the encoder's fast path). Uses a
/// thread-local buffer; [`row_interval_in`] takes the caller's.
#[inline]
pub fn row_interval(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => row_interval_with(Kernel::best(), p, precision, symbol, &mut buf),
        Err(_) => row_interval_with(Kernel::best(), p, precision, symbol, &mut Vec::new()),
    })
}

/// [`row_interval`] with working memory `scratch` (reused between calls).
#[inline]
pub fn row_interval_in(
    p: &[f32],
    precision: u32,
    symbol: usize,
    scratch: &mut Vec<u32>,
) -> Result<(u32, u32)> {
    row_interval_with(Kernel::best(), p, precision, symbol, scratch)
}

/// [`row_interval`] with a chosen kernel (errors if the CPU lacks it).
#[inline]
pub fn row_interval_with(
    k: Kernel,
    p: &[f32],
    precision: u32,
    symbol: usize,
    scratch: &mut Vec<u32>,
) -> Result<(u32, u32)> {
    check_params(precision, p.len())?;
    // SAFETY (all arms): the kernel's CPU features were detected (best() or check()).
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if k == Kernel::best() || k.check().is_ok() => unsafe {
            interval_avx512(p, precision, symbol, scratch)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if k == Kernel::best() || k.check().is_ok() => unsafe {
            interval_avx2(p, precision, symbol, scratch)
        },
        Kernel::Portable => unsafe { interval_portable(p, precision, symbol, scratch) },
        _ => Err(k
            .check()
            .err()
            .unwrap_or_else(|| MmzError::InvalidArgument("kernel unavailable".into()))),
    }
}

/// Portable (non-dispatched) variant of [`row_interval`], for equivalence tests.
pub fn row_interval_portable(p: &[f32], precision: u32, symbol: usize) -> Result<(u32, u32)> {
    row_interval_with(Kernel::Portable, p, precision, symbol, &mut Vec::new())
}

/// The symbol whose interval under the quantized row `p` holds `q` (`< 2^precision`),
/// as `(symbol, start, freq)`, without materialising the frequencies (the
/// decoder's fast path). `scratch` is reused between calls.
#[inline]
pub fn row_locate(
    p: &[f32],
    precision: u32,
    q: u32,
    scratch: &mut Vec<u32>,
) -> Result<(u32, u32, u32)> {
    row_locate_with(Kernel::best(), p, precision, q, scratch)
}

/// [`row_locate`] with a chosen kernel (errors if the CPU lacks it).
#[inline]
pub fn row_locate_with(
    k: Kernel,
    p: &[f32],
    precision: u32,
    q: u32,
    scratch: &mut Vec<u32>,
) -> Result<(u32, u32, u32)> {
    check_params(precision, p.len())?;
    if q as u64 >= 1u64 << precision {
        return Err(MmzError::corrupt(
            "range-coded stream",
            "target beyond the frequency total",
        ));
    }
    // SAFETY (all arms): the kernel's CPU features were detected (best() or check()).
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if k == Kernel::best() || k.check().is_ok() => unsafe {
            locate_avx512(p, precision, q, scratch)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if k == Kernel::best() || k.check().is_ok() => unsafe {
            locate_avx2(p, precision, q, scratch)
        },
        Kernel::Portable => unsafe { locate_portable(p, precision, q, scratch) },
        _ => Err(k
            .check()
            .err()
            .unwrap_or_else(|| MmzError::InvalidArgument("kernel unavailable".into()))),
    }
}

/// A probability row prepared for the decoder's search, split from it so that
/// a decoder can prepare the next row (which does not depend on the coded
/// bits) while it searches the current one: the two dependency chains then
/// overlap in the CPU. Only 256-entry rows on AVX-512 take the fast form
/// (integer frequencies without the remainder, block sums); for any other
/// row [`row_search`] falls back to [`row_locate_with`]. Results are identical
/// either way.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct RowPrep {
    /// `f_i` (so `g_i = 1 + f_i`, the remainder not included).
    f: [u32; SMALL],
    /// Inclusive running sums of the 16 vector sums of `g`, with `R` counted
    /// from the vector of `first` on.
    pre: [u32; 16],
    /// First index of the maximum (receives `R`).
    first: u32,
    /// The remainder `R`.
    r: u32,
    /// Stage 1's maximum bit pattern.
    mb: u32,
    /// Stage 2's `inv` and `S - 32`.
    inv: u64,
    sh: u32,
    /// Whether the fields above describe the row (else: the general path).
    ready: bool,
}

impl Default for RowPrep {
    fn default() -> Self {
        Self::new()
    }
}

impl RowPrep {
    /// An empty preparation (searching it uses the general path).
    pub fn new() -> Self {
        RowPrep {
            f: [0; SMALL],
            pre: [0; 16],
            first: 0,
            r: 0,
            mb: 0,
            inv: 0,
            sh: 0,
            ready: false,
        }
    }
}

/// Prepare row `p` for [`row_search`] with kernel `k` (see [`RowPrep`]).
#[inline]
pub fn row_prepare(k: Kernel, p: &[f32], precision: u32, prep: &mut RowPrep) -> Result<()> {
    check_params(precision, p.len())?;
    prep.ready = false;
    if prep_stages(k) {
        prep_stage1(p, prep);
        prep_stage2(p, precision, prep)?;
        prep_stage3(precision, prep)?;
    }
    Ok(())
}

/// Whether kernel `k` prepares rows in stages (AVX-512, detected); the
/// stages below must only be called when this is true.
#[inline]
pub(crate) fn prep_stages(k: Kernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    if k == Kernel::Avx512 && (k == Kernel::best() || k.check().is_ok()) {
        return true;
    }
    let _ = k;
    false
}

/// Stage 1 of [`row_prepare`] (the maximum); clears `ready`. A decoder may run
/// the three stages of different rows interleaved (each row's stages in order),
/// so that their dependency chains overlap.
#[inline]
pub(crate) fn prep_stage1(p: &[f32], prep: &mut RowPrep) {
    prep.ready = false;
    prep.mb = INF_BITS;
    #[cfg(target_arch = "x86_64")]
    if let Ok(p) = <&[f32; SMALL]>::try_from(p) {
        // SAFETY: callers check `prep_stages` (AVX-512 F detected) first.
        prep.mb = unsafe { x86::avx512::stage_max(p) };
    }
}

/// Stage 2 of [`row_prepare`] (weights, total, first maximum, `inv`).
#[inline]
pub(crate) fn prep_stage2(p: &[f32], precision: u32, prep: &mut RowPrep) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if let Ok(p) = <&[f32; SMALL]>::try_from(p) {
        let m = ((1u64 << precision) - SMALL as u64) as u32;
        // SAFETY: as in stage 1.
        prep.ready = unsafe { x86::avx512::stage_weights(p, prep.mb, m, prep)? };
    }
    let _ = (p, precision);
    Ok(())
}

/// Stage 3 of [`row_prepare`] (frequencies, block sums, remainder).
#[inline]
pub(crate) fn prep_stage3(precision: u32, prep: &mut RowPrep) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if prep.ready {
        let m = ((1u64 << precision) - SMALL as u64) as u32;
        // SAFETY: as in stage 1.
        return unsafe { x86::avx512::stage_f(m, prep) };
    }
    let _ = precision;
    Ok(())
}

/// The decoder's search (as [`row_locate_with`]) in row `p` as prepared by
/// [`row_prepare`] with the same kernel, precision and row.
#[inline]
pub fn row_search(
    k: Kernel,
    prep: &RowPrep,
    p: &[f32],
    precision: u32,
    q: u32,
    scratch: &mut Vec<u32>,
) -> Result<(u32, u32, u32)> {
    #[cfg(target_arch = "x86_64")]
    if prep.ready && k == Kernel::Avx512 && p.len() == SMALL {
        if q as u64 >= 1u64 << precision {
            return Err(beyond_total());
        }
        // SAFETY: `ready` is only set after AVX-512 F was detected.
        return unsafe { x86::avx512::search_small(prep, q) };
    }
    row_locate_with(k, p, precision, q, scratch)
}

/// Quantize one row of probabilities to frequencies summing to `2^precision`.
#[inline]
pub fn quantize_probs(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    quantize_probs_with(Kernel::best(), p, precision, out)
}

/// [`quantize_probs`] with a chosen kernel (errors if the CPU lacks it).
#[inline]
pub fn quantize_probs_with(k: Kernel, p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    check_params(precision, p.len())?;
    // SAFETY (all arms): the kernel's CPU features were detected (best() or check()).
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if k == Kernel::best() || k.check().is_ok() => unsafe {
            fill_avx512(p, precision, out)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if k == Kernel::best() || k.check().is_ok() => unsafe {
            fill_avx2(p, precision, out)
        },
        Kernel::Portable => unsafe { fill_portable(p, precision, out) },
        _ => Err(k
            .check()
            .err()
            .unwrap_or_else(|| MmzError::InvalidArgument("kernel unavailable".into()))),
    }
}

/// Portable (non-dispatched) variant of [`quantize_probs`], for equivalence tests.
pub fn quantize_probs_portable(p: &[f32], precision: u32, out: &mut [u32]) -> Result<()> {
    quantize_probs_with(Kernel::Portable, p, precision, out)
}

/// The quantization rule written out literally (module header, steps 1-5) with
/// integer-only weights taken from the float bits and u128 arithmetic: the
/// slow reference every kernel is tested against.
pub fn quantize_probs_reference(p: &[f32], precision: u32) -> Result<Vec<u32>> {
    check_params(precision, p.len())?;
    let v = p.len() as u64;
    let big_m = (1u64 << precision) - v;
    // Step 1: sanitized bits; positive finite floats order like their bits.
    let bits: Vec<u32> = p
        .iter()
        .map(|x| {
            if x.to_bits() < INF_BITS {
                x.to_bits()
            } else {
                0
            }
        })
        .collect();
    let mb = bits.iter().copied().max().unwrap_or(0);
    let mut out = vec![1u32; p.len()];
    if mb == 0 {
        // Step 2: uniform.
        let c = big_m / v;
        out.iter_mut().for_each(|o| *o += c as u32);
        out[0] += (big_m - c * v) as u32;
        return Ok(out);
    }
    // value = sig * 2^ex exactly.
    let split = |b: u32| -> (u64, i32) {
        let ef = (b >> 23) as i32;
        if ef == 0 {
            ((b & 0x7F_FFFF) as u64, -149)
        } else {
            (((b & 0x7F_FFFF) | 0x80_0000) as u64, ef - 150)
        }
    };
    let (msig, mex) = split(mb);
    let big_e = (63 - msig.leading_zeros() as i32) + mex; // floor(log2 m)
    let e = 30 - big_e;
    // Step 3: u_i = floor(x_i * 2^e), exactly, from the bits.
    let u: Vec<u64> = bits
        .iter()
        .map(|&b| {
            if b == 0 {
                return 0;
            }
            let (sig, ex) = split(b);
            let k = ex + e;
            if k >= 0 {
                sig << k
            } else if k > -64 {
                sig >> (-k)
            } else {
                0
            }
        })
        .collect();
    // Step 4.
    let total: u64 = u.iter().sum();
    let mut fsum = 0u64;
    if big_m > 0 {
        let bu = 64 - total.leading_zeros();
        let bm = 64 - big_m.leading_zeros();
        let s = 31 + bu - bm;
        let inv = ((big_m as u128) << s) / total as u128;
        for (o, &ui) in out.iter_mut().zip(&u) {
            let f = ((ui as u128 * inv) >> s) as u64;
            *o += f as u32;
            fsum += f;
        }
    }
    // Step 5.
    let first = bits.iter().position(|&b| b == mb).unwrap_or(0);
    out[first] += (big_m - fsum) as u32;
    Ok(out)
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
    let p =
        1.0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * C8)))))));
    // p in [1, 2]; multiply by 2^n (n >= -126, normal).
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// Softmax numerators `exp(l_i - max l)` computed with [`exp2_neg`]; non-finite
/// logits get weight 0 (all non-finite: all 0, which quantizes to uniform).
pub fn logits_to_weights(logits: &[f32], out: &mut [f32]) -> Result<()> {
    if out.len() != logits.len() {
        return Err(MmzError::InvalidArgument(
            "output length differs from logits length".into(),
        ));
    }
    let mut mx = f32::NEG_INFINITY;
    for &l in logits {
        if l.is_finite() && l > mx {
            mx = l;
        }
    }
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = if l.is_finite() {
            exp2_neg((l - mx) * LOG2_E)
        } else {
            0.0
        };
    }
    Ok(())
}

/// Quantize one row of logits (softmax implied) to frequencies summing to `2^precision`.
pub fn quantize_logits(
    logits: &[f32],
    precision: u32,
    out: &mut [u32],
    scratch: &mut Vec<f32>,
) -> Result<()> {
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
            return Err(MmzError::InvalidArgument(
                "a CDF must be non-decreasing".into(),
            ));
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
        let p = [
            0.5f32,
            0.25,
            0.0,
            f32::NAN,
            -1.0,
            f32::INFINITY,
            0.25,
            1e-30,
        ];
        for prec in [12, 16, 24] {
            let f = quantize_probs_vec(&p, prec).unwrap();
            assert_eq!(f.iter().map(|&x| x as u64).sum::<u64>(), 1 << prec);
            assert!(f.iter().all(|&x| x >= 1));
            assert!(f[0] > f[1] && f[1] >= f[6]);
        }
    }

    #[test]
    fn interval_matches_fill() {
        let p: Vec<f32> = (0..300)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 + if i == 5 { 100.0 } else { 0.0 })
            .collect();
        for prec in [12, 20, 24] {
            let f = quantize_probs_vec(&p, prec).unwrap();
            let mut start = 0;
            for (s, &fs) in f.iter().enumerate() {
                assert_eq!(
                    row_interval_portable(&p, prec, s).unwrap(),
                    (start, fs),
                    "symbol {s}"
                );
                start += fs;
            }
        }
    }

    #[test]
    fn uniform_and_extreme_scales() {
        for p in [
            vec![0.0f32; 10],
            vec![1e-44f32, 3e-45, 0.0],
            vec![3e38f32, 1e38, 1.0],
            vec![f32::NAN; 3],
        ] {
            let f = quantize_probs_vec(&p, 16).unwrap();
            assert_eq!(f.iter().sum::<u32>(), 1 << 16);
            let mut start = 0;
            for (s, &fs) in f.iter().enumerate() {
                assert_eq!(row_interval(&p, 16, s).unwrap(), (start, fs));
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
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "x={x} got={got} want={want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp2_neg(0.0), 1.0);
        assert_eq!(exp2_neg(-200.0), 0.0);
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    fn cpu() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }
    /// Per-row cost of the dispatched row functions on cache-resident rows
    /// (`cargo test --release -p mmz-core --lib timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn kernel_timing() {
        for v in [256usize, 16384] {
            let rows = (1 << 18) / (4 * v);
            let pool: Vec<f32> = (0..rows * v)
                .map(|i| (((i * 2654435761) % 10007) as f32 / 10007.0).powi(4) + 1e-7)
                .collect();
            let iters = 8_000_000 / v;
            let row = |i: usize| &pool[(i % rows) * v..(i % rows + 1) * v];
            let mut acc = 0u64;
            let mut sc = Vec::new();
            let mut out = vec![0u32; v];
            let t0 = cpu();
            for i in 0..iters {
                acc += row_interval_in(row(i), 24, (i * 7919) % v, &mut sc)
                    .unwrap()
                    .0 as u64;
            }
            let t1 = cpu();
            for i in 0..iters {
                acc += row_locate(row(i), 24, ((i * 7919) % (1 << 24)) as u32, &mut sc)
                    .unwrap()
                    .0 as u64;
            }
            let t2 = cpu();
            for i in 0..iters {
                quantize_probs(row(i), 24, &mut out).unwrap();
                acc += out[0] as u64;
            }
            let t3 = cpu();
            let ns = |a: f64, b: f64| (b - a) / iters as f64 * 1e9;
            #[cfg(target_arch = "x86_64")]
            if Kernel::best() == Kernel::Avx512 {
                let s = f32::from_bits((127 + 30) << 23);
                let mut u = vec![0u32; v];
                let c0 = cpu();
                for i in 0..iters {
                    acc += unsafe { x86::avx512::max_bits(row(i)) } as u64;
                }
                let c1 = cpu();
                for i in 0..iters {
                    acc += unsafe { x86::avx512::weights(row(i), s, 7, &mut u) }.0;
                }
                let c2 = cpu();
                for _ in 0..iters {
                    acc += unsafe { x86::avx512::sum_f(&u, 3_000_000_000, 20) };
                }
                let c3 = cpu();
                let mut prep = RowPrep::new();
                for i in 0..iters {
                    let t = ((i * 7919) % (1 << 24)) as u32;
                    row_prepare(Kernel::Avx512, row(i), 24, &mut prep).unwrap();
                    acc += row_search(Kernel::Avx512, &prep, row(i), 24, t, &mut sc)
                        .unwrap()
                        .1 as u64;
                }
                let c4 = cpu();
                for i in 0..iters {
                    row_prepare(Kernel::Avx512, row(i), 24, &mut prep).unwrap();
                    acc += prep.pre[3] as u64;
                }
                let c5 = cpu();
                println!("  prep {:.1}", ns(c4, c5));
                println!(
                    "  max {:.1} weights {:.1} sum_f {:.1} prep+search {:.1}",
                    ns(c0, c1),
                    ns(c1, c2),
                    ns(c2, c3),
                    ns(c3, c4)
                );
            }
            println!(
                "V={v} {:?}: interval {:.1} ns, locate {:.1} ns, fill {:.1} ns ({acc})",
                Kernel::best(),
                ns(t0, t1),
                ns(t1, t2),
                ns(t2, t3)
            );
        }
    }
}
