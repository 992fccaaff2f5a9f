//! x86-64 row kernels for CDF quantization (AVX-512 and AVX2), selected at run
//! time by `quant::Kernel`. They evaluate exactly the same integer and
//! power-of-two float operations as the portable kernels in `quant.rs`
//! (`u = trunc(sanitize(x) * 2^e)` in f32, `f = (u * inv) >> S` in u64), only
//! with more lanes, so every kernel returns identical integers.
//!
//! Arguments shared by the kernels: `s` = the f32 power-of-two scale `2^e`,
//! `inv` < 2^32 and `sh` = `S - 32` (see `quant::RowQuant`), `mb` = bits of the
//! largest sanitized entry (non-zero), `u` = the integer weights of a row.
//!
//! Safety: every function here requires the CPU features named in its
//! `target_feature` attribute; `quant.rs` only calls them after run-time detection.

use super::{f_of_u, RowPrep, BLOCK, INF_BITS, SMALL};
use crate::error::Result;

/// Expands `$m!(0); ... $m!(15);` (straight-line code over 16 vectors with
/// constant indices, which the compiler keeps in registers).
macro_rules! rep16 {
    ($m:ident) => {
        $m!(0);
        $m!(1);
        $m!(2);
        $m!(3);
        $m!(4);
        $m!(5);
        $m!(6);
        $m!(7);
        $m!(8);
        $m!(9);
        $m!(10);
        $m!(11);
        $m!(12);
        $m!(13);
        $m!(14);
        $m!(15);
    };
}

pub(super) mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline(always)]
    fn tail_mask(rem: usize) -> __mmask16 {
        if rem >= 16 {
            0xFFFF
        } else {
            ((1u32 << rem) - 1) as __mmask16
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load<T>(ptr: *const T, k: __mmask16) -> __m512i {
        _mm512_maskz_loadu_epi32(k, ptr as *const i32)
    }

    /// `f` of the even and of the odd lanes, as u64 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn f_pair(u: __m512i, invv: __m512i, cnt: __m128i) -> (__m512i, __m512i) {
        let e = _mm512_srl_epi64(_mm512_mul_epu32(u, invv), cnt);
        let o = _mm512_srl_epi64(_mm512_mul_epu32(_mm512_srli_epi64::<32>(u), invv), cnt);
        (e, o)
    }

    /// `f` as 16 u32 lanes (each below 2^24) and as 8 u64 lane sums.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn f_vec(u: __m512i, invv: __m512i, cnt: __m128i) -> (__m512i, __m512i) {
        let (e, o) = f_pair(u, invv, cnt);
        (
            _mm512_or_si512(e, _mm512_slli_epi64::<32>(o)),
            _mm512_add_epi64(e, o),
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn count(sh: u32) -> __m128i {
        _mm_cvtsi64_si128((sh + 32) as i64)
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn max_bits(p: &[f32]) -> u32 {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let z = _mm512_setzero_si512();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 64 <= n {
            let x0 = load(ptr.add(i), 0xFFFF);
            let x1 = load(ptr.add(i + 16), 0xFFFF);
            let x2 = load(ptr.add(i + 32), 0xFFFF);
            let x3 = load(ptr.add(i + 48), 0xFFFF);
            a0 = _mm512_mask_max_epu32(a0, _mm512_cmplt_epu32_mask(x0, inf), a0, x0);
            a1 = _mm512_mask_max_epu32(a1, _mm512_cmplt_epu32_mask(x1, inf), a1, x1);
            a2 = _mm512_mask_max_epu32(a2, _mm512_cmplt_epu32_mask(x2, inf), a2, x2);
            a3 = _mm512_mask_max_epu32(a3, _mm512_cmplt_epu32_mask(x3, inf), a3, x3);
            i += 64;
        }
        while i < n {
            let x = load(ptr.add(i), tail_mask(n - i));
            a0 = _mm512_mask_max_epu32(a0, _mm512_cmplt_epu32_mask(x, inf), a0, x);
            i += 16;
        }
        _mm512_reduce_max_epu32(_mm512_max_epu32(
            _mm512_max_epu32(a0, a1),
            _mm512_max_epu32(a2, a3),
        ))
    }

    /// Writes `u_i` for every entry; returns `(sum u_i, first index with bits mb)`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn weights(p: &[f32], s: f32, mb: u32, u: &mut [u32]) -> (u64, usize) {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let mbv = _mm512_set1_epi32(mb as i32);
        let lo = _mm512_set1_epi64(0xFFFF_FFFF);
        let z = _mm512_setzero_si512();
        let (mut a0, mut a1) = (z, z);
        let n = p.len().min(u.len());
        let (ptr, uptr) = (p.as_ptr(), u.as_mut_ptr());
        let mut first = usize::MAX;
        let mut i = 0;
        // Full vectors: plain stores; the first maximum is located afterwards
        // from a per-vector hit flag (keeps this loop branch-free).
        let mut hit_at = usize::MAX;
        while i + 16 <= n {
            let x = load(ptr.add(i), 0xFFFF);
            let ok = _mm512_cmplt_epu32_mask(x, inf);
            let w = _mm512_cvttps_epi32(_mm512_maskz_mul_ps(ok, _mm512_castsi512_ps(x), sv));
            _mm512_storeu_epi32(uptr.add(i) as *mut i32, w);
            a0 = _mm512_add_epi64(a0, _mm512_and_si512(w, lo));
            a1 = _mm512_add_epi64(a1, _mm512_srli_epi64::<32>(w));
            let m = _mm512_cmpeq_epi32_mask(x, mbv);
            hit_at = if m != 0 && hit_at == usize::MAX {
                i
            } else {
                hit_at
            };
            i += 16;
        }
        if i < n {
            let k = tail_mask(n - i);
            let x = load(ptr.add(i), k);
            let ok = _mm512_cmplt_epu32_mask(x, inf);
            let w = _mm512_cvttps_epi32(_mm512_maskz_mul_ps(ok, _mm512_castsi512_ps(x), sv));
            _mm512_mask_storeu_epi32(uptr.add(i) as *mut i32, k, w);
            a0 = _mm512_add_epi64(a0, _mm512_and_si512(w, lo));
            a1 = _mm512_add_epi64(a1, _mm512_srli_epi64::<32>(w));
            if hit_at == usize::MAX && _mm512_cmpeq_epi32_mask(x, mbv) != 0 {
                hit_at = i;
            }
        }
        if hit_at != usize::MAX {
            let k = tail_mask(n - hit_at);
            let m = _mm512_mask_cmpeq_epi32_mask(k, load(ptr.add(hit_at), k), mbv);
            first = hit_at + m.trailing_zeros() as usize;
        }
        (
            _mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)) as u64,
            first,
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn sum_f(u: &[u32], inv: u64, sh: u32) -> u64 {
        let invv = _mm512_set1_epi64(inv as i64);
        let cnt = count(sh);
        let z = _mm512_setzero_si512();
        let (mut a0, mut a1) = (z, z);
        let n = u.len();
        let ptr = u.as_ptr();
        let mut i = 0;
        while i + 32 <= n {
            let (e0, o0) = f_pair(load(ptr.add(i), 0xFFFF), invv, cnt);
            let (e1, o1) = f_pair(load(ptr.add(i + 16), 0xFFFF), invv, cnt);
            a0 = _mm512_add_epi64(a0, _mm512_add_epi64(e0, o0));
            a1 = _mm512_add_epi64(a1, _mm512_add_epi64(e1, o1));
            i += 32;
        }
        while i < n {
            let (e, o) = f_pair(load(ptr.add(i), tail_mask(n - i)), invv, cnt);
            a0 = _mm512_add_epi64(a0, _mm512_add_epi64(e, o));
            i += 16;
        }
        _mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)) as u64
    }

    /// In place `u_i -> 1 + f_i`; returns `sum f_i`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn fill(u: &mut [u32], inv: u64, sh: u32) -> u64 {
        let invv = _mm512_set1_epi64(inv as i64);
        let one = _mm512_set1_epi32(1);
        let cnt = count(sh);
        let mut acc = _mm512_setzero_si512();
        let n = u.len();
        let ptr = u.as_mut_ptr();
        let mut i = 0;
        while i < n {
            let k = tail_mask(n - i);
            let (f, f64s) = f_vec(load(ptr.add(i), k), invv, cnt);
            if k == 0xFFFF {
                _mm512_storeu_epi32(ptr.add(i) as *mut i32, _mm512_add_epi32(f, one));
            } else {
                _mm512_mask_storeu_epi32(ptr.add(i) as *mut i32, k, _mm512_add_epi32(f, one));
            }
            acc = _mm512_add_epi64(acc, f64s);
            i += 16;
        }
        _mm512_reduce_add_epi64(acc) as u64
    }

    /// Inclusive prefix sum of 16 u32 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn prefix16(x: __m512i) -> __m512i {
        let z = _mm512_setzero_si512();
        let x = _mm512_add_epi32(x, _mm512_alignr_epi32::<15>(x, z));
        let x = _mm512_add_epi32(x, _mm512_alignr_epi32::<14>(x, z));
        let x = _mm512_add_epi32(x, _mm512_alignr_epi32::<12>(x, z));
        _mm512_add_epi32(x, _mm512_alignr_epi32::<8>(x, z))
    }

    /// `permutex2var` indices of one level of [`hsum16`]: the inputs hold `16 / w`
    /// partial sums of width `w` each; `lo` takes the first half of every group
    /// (those of `a`, then those of `b`), `hi` the second half.
    const fn halves(w: usize) -> ([i32; 16], [i32; 16]) {
        let (mut lo, mut hi) = ([0i32; 16], [0i32; 16]);
        let h = w / 2;
        let mut k = 0;
        while k < 16 {
            // Output lane k: group k / h (of a when < 16 / w, then of b), offset k % h.
            let (g, o) = (k / h, k % h);
            let per = 16 / w;
            let base = if g < per { g * w } else { 16 + (g - per) * w };
            lo[k] = (base + o) as i32;
            hi[k] = (base + h + o) as i32;
            k += 1;
        }
        (lo, hi)
    }

    const H16: ([i32; 16], [i32; 16]) = halves(16);
    const H8: ([i32; 16], [i32; 16]) = halves(8);
    const H4: ([i32; 16], [i32; 16]) = halves(4);
    const H2: ([i32; 16], [i32; 16]) = halves(2);

    /// One level of [`hsum16`]: `lo(a, b) + hi(a, b)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn fold(a: __m512i, b: __m512i, idx: &([i32; 16], [i32; 16])) -> __m512i {
        let lo = _mm512_loadu_epi32(idx.0.as_ptr());
        let hi = _mm512_loadu_epi32(idx.1.as_ptr());
        _mm512_add_epi32(
            _mm512_permutex2var_epi32(a, lo, b),
            _mm512_permutex2var_epi32(a, hi, b),
        )
    }

    /// Lane `j` = the sum of the 16 lanes of `v[j]` (a transpose-and-add tree:
    /// 15 folds instead of 16 separate reductions). Sums must fit in u32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn hsum16(v: &[__m512i; 16]) -> __m512i {
        let mut c = [_mm512_setzero_si512(); 8];
        for (k, ck) in c.iter_mut().enumerate() {
            *ck = fold(v[2 * k], v[2 * k + 1], &H16);
        }
        let d = [
            fold(c[0], c[1], &H8),
            fold(c[2], c[3], &H8),
            fold(c[4], c[5], &H8),
            fold(c[6], c[7], &H8),
        ];
        let e = [fold(d[0], d[1], &H4), fold(d[2], d[3], &H4)];
        fold(e[0], e[1], &H2)
    }

    /// `f` as 16 u32 lanes, in 6 operations: the odd lanes' products are
    /// shifted by `S - 32` and their high halves merged over the even lanes'
    /// `f` by one ternary-logic operation (the same integers as [`f_vec`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn f_vec6(u: __m512i, invv: __m512i, cnt: __m128i, cnt_hi: __m128i) -> __m512i {
        let e = _mm512_srl_epi64(_mm512_mul_epu32(u, invv), cnt);
        let o = _mm512_srl_epi64(_mm512_mul_epu32(_mm512_srli_epi64::<32>(u), invv), cnt_hi);
        // (o & 0xFFFFFFFF_00000000) | e
        _mm512_ternarylogic_epi64::<0xEA>(o, _mm512_set1_epi64(-1i64 << 32), e)
    }

    /// Stage 1 of the decoder's row preparation for a row of exactly [`SMALL`]
    /// = 256 entries (see `quant::RowPrep`): the largest bit pattern as a signed
    /// integer, so negative entries (sign bit set) never win. A result at or
    /// above `INF_BITS` (an infinity or NaN in the row) sends the row to the
    /// general path in stage 2.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn stage_max(p: &[f32; SMALL]) -> u32 {
        let ptr = p.as_ptr();
        let z = _mm512_setzero_si512();
        let mut amax = [z; 4];
        macro_rules! pass1 {
            ($j:literal) => {
                amax[$j % 4] = _mm512_max_epi32(amax[$j % 4], load(ptr.add(16 * $j), 0xFFFF));
            };
        }
        rep16!(pass1);
        _mm512_reduce_max_epi32(_mm512_max_epi32(
            _mm512_max_epi32(amax[0], amax[1]),
            _mm512_max_epi32(amax[2], amax[3]),
        )) as u32
    }

    /// Stage 2: the weights `u_i` (into `out.f`), their total, the first index
    /// of the maximum `mb` (from stage 1), and `inv`/`sh` for `m` free slots.
    /// Negative entries give a negative or zero product, clamped to 0.
    /// `Ok(false)` (row for the general path): an infinity or NaN, all weights
    /// zero, or a maximum outside the f32 scale range.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn stage_weights(
        p: &[f32; SMALL],
        mb: u32,
        m: u32,
        out: &mut RowPrep,
    ) -> Result<bool> {
        if mb >= INF_BITS {
            return Ok(false);
        }
        let Some(s) = crate::quant::f32_scale(mb) else {
            return Ok(false);
        };
        let ptr = p.as_ptr();
        let z = _mm512_setzero_si512();
        let sv = _mm512_set1_ps(s);
        let mbv = _mm512_set1_epi32(mb as i32);
        let lo = _mm512_set1_epi64(0xFFFF_FFFF);
        let (mut a0, mut a1) = (z, z);
        let mut hits = [0u64; 4];
        let wp = out.f.as_mut_ptr() as *mut __m512i;
        let mut w = [z; 16];
        macro_rules! pass2 {
            ($j:literal) => {
                let x = load(ptr.add(16 * $j), 0xFFFF);
                w[$j] = _mm512_max_epi32(
                    _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_castsi512_ps(x), sv)),
                    z,
                );
                _mm512_storeu_si512(wp.add($j), w[$j]);
                if $j % 2 == 1 {
                    // Two weights below 2^31 each fit a u32 lane; widen the pair sum.
                    let pair = _mm512_add_epi32(w[$j - 1], w[$j]);
                    a0 = _mm512_add_epi64(a0, _mm512_and_si512(pair, lo));
                    a1 = _mm512_add_epi64(a1, _mm512_srli_epi64::<32>(pair));
                }
                hits[$j / 4] |= (_mm512_cmpeq_epi32_mask(x, mbv) as u64) << (16 * ($j % 4));
            };
        }
        rep16!(pass2);
        let total_u = _mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)) as u64;
        out.first = match hits.iter().position(|&h| h != 0) {
            Some(k) => 64 * k as u32 + hits[k].trailing_zeros(),
            None => return Err(crate::quant::bad_row()),
        };
        (out.inv, out.sh) = crate::quant::inv_sh(m, total_u);
        Ok(true)
    }

    /// Stage 3: `u_i -> f_i` in `out.f`, the inclusive running sums of the 16
    /// vector sums of `g_i = 1 + f_i` ([`hsum16`]) with the remainder `R`
    /// counted from the vector of the first maximum on, and `R`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn stage_f(m: u32, out: &mut RowPrep) -> Result<()> {
        let z = _mm512_setzero_si512();
        let invv = _mm512_set1_epi64(out.inv as i64);
        let (cnt, cnt_hi) = (count(out.sh), _mm_cvtsi64_si128(out.sh as i64));
        let mut f = [z; 16];
        let fp = out.f.as_mut_ptr() as *mut __m512i;
        macro_rules! pass3 {
            ($j:literal) => {
                f[$j] = f_vec6(
                    _mm512_loadu_si512(fp.add($j) as *const __m512i),
                    invv,
                    cnt,
                    cnt_hi,
                );
                _mm512_storeu_si512(fp.add($j), f[$j]);
            };
        }
        rep16!(pass3);
        // Inclusive running sums of g = 1 + f: 16 more per vector.
        let lanes1 = _mm512_setr_epi32(
            16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
        );
        let pre = _mm512_add_epi32(prefix16(hsum16(&f)), lanes1);
        // R = 2^P - sum g (the last inclusive sum) belongs to vector first / 16:
        // it shifts the inclusive sums of that vector and of all later ones.
        let total = m + SMALL as u32;
        let Some(r) = total
            .checked_sub(
                _mm512_cvtsi512_si32(_mm512_permutexvar_epi32(_mm512_set1_epi32(15), pre)) as u32,
            )
        else {
            return Err(crate::quant::bad_row());
        };
        let pre = _mm512_mask_add_epi32(
            pre,
            0xFFFFu16 << (out.first / 16).min(15),
            pre,
            _mm512_set1_epi32(r as i32),
        );
        _mm512_storeu_si512(out.pre.as_mut_ptr() as *mut __m512i, pre);
        out.r = r;
        Ok(())
    }

    /// The decoder's search in a row prepared by the three stages: the vector
    /// whose inclusive running sum first exceeds `t`, then the lane; returns
    /// `(symbol, start, freq)`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn search_small(prep: &RowPrep, t: u32) -> Result<(u32, u32, u32)> {
        let tv = _mm512_set1_epi32(t as i32);
        let pre = _mm512_loadu_si512(prep.pre.as_ptr() as *const __m512i);
        // Vectors whose inclusive running sum is still <= t come before the symbol.
        let j = _mm512_cmple_epu32_mask(pre, tv).count_ones() as usize;
        let (Some(fs), Some(&before)) = (
            prep.f.get(16 * j..16 * j + 16),
            if j == 0 {
                Some(&0)
            } else {
                prep.pre.get(j - 1)
            },
        ) else {
            return Err(crate::quant::beyond_total());
        };
        let gj = _mm512_add_epi32(
            _mm512_loadu_si512(fs.as_ptr() as *const __m512i),
            _mm512_set1_epi32(1),
        );
        let first = prep.first as usize;
        let at_r = ((first / 16 == j) as u16) << (first % 16);
        let gj = _mm512_mask_add_epi32(gj, at_r, gj, _mm512_set1_epi32(prep.r as i32));
        let pv = _mm512_add_epi32(prefix16(gj), _mm512_set1_epi32(before as i32));
        let lane = _mm512_cmple_epu32_mask(pv, tv).count_ones() as usize;
        let (i, Some(&fi)) = (16 * j + lane, fs.get(lane)) else {
            return Err(crate::quant::bad_row());
        };
        let gl = 1 + fi + if i == first { prep.r } else { 0 };
        let end = _mm512_cvtsi512_si32(lane_at(pv, lane)) as u32;
        Ok((i as u32, end.wrapping_sub(gl), gl))
    }

    /// Lane `k` (< 16) of `x`, broadcast (a register permute instead of a store
    /// and a narrow reload, which would stall on store forwarding).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn lane_at(x: __m512i, k: usize) -> __m512i {
        _mm512_permutexvar_epi32(_mm512_set1_epi32(k as i32), x)
    }

    /// Branch-free search within one block (see `Kern::search`).
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn search(
        u: &[u32],
        inv: u64,
        sh: u32,
        t: u64,
        kk: usize,
        r: u32,
    ) -> Option<(usize, u64, u32)> {
        let invv = _mm512_set1_epi64(inv as i64);
        let cnt = count(sh);
        let one = _mm512_set1_epi32(1);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let kkv = _mm512_set1_epi32(kk.min(1 << 30) as i32);
        let rv = _mm512_set1_epi32(r as i32);
        let tv = _mm512_set1_epi32(t.min(1 << 30) as i32);
        let last = _mm512_set1_epi32(15);
        let n = u.len().min(BLOCK);
        let ptr = u.as_ptr();
        let mut pre = [0u32; BLOCK];
        let mut fr = [0u32; BLOCK];
        let mut carry = _mm512_setzero_si512();
        let mut below = 0u32;
        let mut i = 0;
        while i < n {
            let k = tail_mask(n - i);
            let (f, _) = f_vec(load(ptr.add(i), k), invv, cnt);
            let mut g = _mm512_maskz_add_epi32(k, f, one);
            let at =
                _mm512_cmpeq_epi32_mask(_mm512_add_epi32(lanes, _mm512_set1_epi32(i as i32)), kkv);
            g = _mm512_mask_add_epi32(g, at, g, rv);
            let pv = _mm512_add_epi32(prefix16(g), carry);
            carry = _mm512_permutexvar_epi32(last, pv);
            _mm512_storeu_epi32(pre.as_mut_ptr().add(i) as *mut i32, pv);
            _mm512_storeu_epi32(fr.as_mut_ptr().add(i) as *mut i32, g);
            // Lanes whose inclusive prefix is still <= t come before the symbol.
            below += _mm512_mask_cmple_epu32_mask(k, pv, tv).count_ones();
            i += 16;
        }
        let j = below as usize;
        match (pre.get(j), fr.get(j)) {
            (Some(&pj), Some(&fj)) if j < n => Some((j, (pj - fj) as u64, fj)),
            _ => None,
        }
    }
}

pub(super) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load<T>(ptr: *const T) -> __m256i {
        _mm256_loadu_si256(ptr as *const __m256i)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn f_pair(u: __m256i, invv: __m256i, cnt: __m128i) -> (__m256i, __m256i) {
        let e = _mm256_srl_epi64(_mm256_mul_epu32(u, invv), cnt);
        let o = _mm256_srl_epi64(_mm256_mul_epu32(_mm256_srli_epi64::<32>(u), invv), cnt);
        (e, o)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum64(x: __m256i) -> u64 {
        let s = _mm_add_epi64(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x));
        (_mm_cvtsi128_si64(s) as u64).wrapping_add(_mm_extract_epi64::<1>(s) as u64)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn count(sh: u32) -> __m128i {
        _mm_cvtsi64_si128((sh + 32) as i64)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn max_bits(p: &[f32]) -> u32 {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let z = _mm256_setzero_si256();
        let (mut a0, mut a1) = (z, z);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 16 <= n {
            let x0 = load(ptr.add(i));
            let x1 = load(ptr.add(i + 8));
            // Negative entries stay negative and lose against a0, a1 >= 0.
            a0 = _mm256_max_epi32(a0, _mm256_and_si256(x0, _mm256_cmpgt_epi32(inf, x0)));
            a1 = _mm256_max_epi32(a1, _mm256_and_si256(x1, _mm256_cmpgt_epi32(inf, x1)));
            i += 16;
        }
        let a = _mm256_max_epi32(a0, a1);
        let mut arr = [0u32; 8];
        _mm256_storeu_si256(arr.as_mut_ptr() as *mut __m256i, a);
        let mut m = arr.iter().copied().fold(0, u32::max);
        for &x in p.get(i..).unwrap_or(&[]) {
            let b = x.to_bits();
            m = m.max(if b < INF_BITS { b } else { 0 });
        }
        m
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn weights(p: &[f32], s: f32, mb: u32, u: &mut [u32]) -> (u64, usize) {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let sv = _mm256_set1_ps(s);
        let mbv = _mm256_set1_epi32(mb as i32);
        let lo = _mm256_set1_epi64x(0xFFFF_FFFF);
        let z = _mm256_setzero_si256();
        let (mut a0, mut a1) = (z, z);
        let n = p.len().min(u.len());
        let (ptr, uptr) = (p.as_ptr(), u.as_mut_ptr());
        let mut first = usize::MAX;
        let mut i = 0;
        while i + 8 <= n {
            let x = load(ptr.add(i));
            // Sanitize: NaN/+inf -> 0 via the compare, negatives -> 0 via the signed max.
            let sx = _mm256_max_epi32(_mm256_and_si256(x, _mm256_cmpgt_epi32(inf, x)), z);
            let w = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(sx), sv));
            _mm256_storeu_si256(uptr.add(i) as *mut __m256i, w);
            a0 = _mm256_add_epi64(a0, _mm256_and_si256(w, lo));
            a1 = _mm256_add_epi64(a1, _mm256_srli_epi64::<32>(w));
            if first == usize::MAX {
                let m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(x, mbv)));
                if m != 0 {
                    first = i + m.trailing_zeros() as usize;
                }
            }
            i += 8;
        }
        let mut sum = hsum64(_mm256_add_epi64(a0, a1));
        for j in i..n {
            let x = *p.get_unchecked(j);
            let w = super::super::weight_f32(x, s);
            *u.get_unchecked_mut(j) = w;
            sum += w as u64;
            if first == usize::MAX && x.to_bits() == mb {
                first = j;
            }
        }
        (sum, first)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn sum_f(u: &[u32], inv: u64, sh: u32) -> u64 {
        let invv = _mm256_set1_epi64x(inv as i64);
        let cnt = count(sh);
        let z = _mm256_setzero_si256();
        let (mut a0, mut a1) = (z, z);
        let n = u.len();
        let ptr = u.as_ptr();
        let mut i = 0;
        while i + 16 <= n {
            let (e0, o0) = f_pair(load(ptr.add(i)), invv, cnt);
            let (e1, o1) = f_pair(load(ptr.add(i + 8)), invv, cnt);
            a0 = _mm256_add_epi64(a0, _mm256_add_epi64(e0, o0));
            a1 = _mm256_add_epi64(a1, _mm256_add_epi64(e1, o1));
            i += 16;
        }
        let mut sum = hsum64(_mm256_add_epi64(a0, a1));
        for &w in u.get(i..).unwrap_or(&[]) {
            sum += f_of_u(w, inv, sh);
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn fill(u: &mut [u32], inv: u64, sh: u32) -> u64 {
        let invv = _mm256_set1_epi64x(inv as i64);
        let one = _mm256_set1_epi32(1);
        let cnt = count(sh);
        let mut acc = _mm256_setzero_si256();
        let n = u.len();
        let ptr = u.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let (e, o) = f_pair(load(ptr.add(i)), invv, cnt);
            let f = _mm256_or_si256(e, _mm256_slli_epi64::<32>(o));
            _mm256_storeu_si256(ptr.add(i) as *mut __m256i, _mm256_add_epi32(f, one));
            acc = _mm256_add_epi64(acc, _mm256_add_epi64(e, o));
            i += 8;
        }
        let mut sum = hsum64(acc);
        for d in u.iter_mut().skip(i) {
            let f = f_of_u(*d, inv, sh);
            *d = f as u32 + 1;
            sum += f;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn search(
        u: &[u32],
        inv: u64,
        sh: u32,
        t: u64,
        kk: usize,
        r: u32,
    ) -> Option<(usize, u64, u32)> {
        let n = u.len().min(BLOCK);
        let mut g = [0u32; BLOCK];
        let head = &mut g[..n];
        head.copy_from_slice(&u[..n]);
        fill(head, inv, sh);
        if let Some(x) = head.get_mut(kk) {
            *x += r;
        }
        // Branch-free: count the entries whose inclusive prefix is <= t.
        let (mut cum, mut below, mut before) = (0u64, 0usize, 0u64);
        for &x in head.iter() {
            cum += x as u64;
            let le = (cum <= t) as u64;
            below += le as usize;
            before += le * x as u64;
        }
        head.get(below).map(|&f| (below, before, f))
    }
}
