//! x86-64 row kernels for CDF quantization (AVX-512 and AVX2), selected at run
//! time by `quant::Kernel`. They evaluate exactly the same integer and
//! power-of-two float operations as the portable kernels in `quant.rs`
//! (`u = trunc(sanitize(x) * 2^e)` in f32, `f = (u * inv) >> S` in u64), only
//! with more lanes, so every kernel returns identical integers.
//!
//! Arguments shared by the kernels: `s` = the f32 power-of-two scale `2^e`,
//! `inv` < 2^32 and `sh` = `S - 32` (see `quant::RowQuant`), `mb` = bits of the
//! largest sanitized entry (non-zero).
//!
//! Safety: every function here requires the CPU features named in its
//! `target_feature` attribute; `quant.rs` only calls them after run-time detection.

use super::{f_scalar, weight_f32, BLOCK, INF_BITS};

/// `(start, freq)` within a block and the lane index (see `Kern::search`).
pub(super) type Found = Option<(usize, u64, u32)>;

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
    unsafe fn load(ptr: *const f32, k: __mmask16) -> __m512i {
        _mm512_maskz_loadu_epi32(k, ptr as *const i32)
    }

    /// `u = trunc(sanitize(x) * s)` per lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn weights(x: __m512i, sv: __m512, inf: __m512i) -> __m512i {
        let ok = _mm512_cmplt_epu32_mask(x, inf);
        _mm512_cvttps_epi32(_mm512_maskz_mul_ps(ok, _mm512_castsi512_ps(x), sv))
    }

    /// `f` of the even and of the odd lanes, as u64 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn f_pair(u: __m512i, invv: __m512i, cnt: __m128i) -> (__m512i, __m512i) {
        let e = _mm512_srl_epi64(_mm512_mul_epu32(u, invv), cnt);
        let o = _mm512_srl_epi64(_mm512_mul_epu32(_mm512_srli_epi64::<32>(u), invv), cnt);
        (e, o)
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
        _mm512_reduce_max_epu32(_mm512_max_epu32(_mm512_max_epu32(a0, a1), _mm512_max_epu32(a2, a3)))
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn sum_u(p: &[f32], s: f32) -> u64 {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let lo = _mm512_set1_epi64(0xFFFF_FFFF);
        let z = _mm512_setzero_si512();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 32 <= n {
            let u0 = weights(load(ptr.add(i), 0xFFFF), sv, inf);
            let u1 = weights(load(ptr.add(i + 16), 0xFFFF), sv, inf);
            a0 = _mm512_add_epi64(a0, _mm512_and_si512(u0, lo));
            a1 = _mm512_add_epi64(a1, _mm512_srli_epi64::<32>(u0));
            a2 = _mm512_add_epi64(a2, _mm512_and_si512(u1, lo));
            a3 = _mm512_add_epi64(a3, _mm512_srli_epi64::<32>(u1));
            i += 32;
        }
        while i < n {
            let u = weights(load(ptr.add(i), tail_mask(n - i)), sv, inf);
            a0 = _mm512_add_epi64(a0, _mm512_and_si512(u, lo));
            a1 = _mm512_add_epi64(a1, _mm512_srli_epi64::<32>(u));
            i += 16;
        }
        _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))) as u64
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn sum_f(p: &[f32], s: f32, inv: u64, sh: u32, mb: u32) -> (u64, bool) {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let invv = _mm512_set1_epi64(inv as i64);
        let mbv = _mm512_set1_epi32(mb as i32);
        let cnt = count(sh);
        let z = _mm512_setzero_si512();
        let (mut a0, mut a1) = (z, z);
        let mut hit: __mmask16 = 0;
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 32 <= n {
            let x0 = load(ptr.add(i), 0xFFFF);
            let x1 = load(ptr.add(i + 16), 0xFFFF);
            let (e0, o0) = f_pair(weights(x0, sv, inf), invv, cnt);
            let (e1, o1) = f_pair(weights(x1, sv, inf), invv, cnt);
            a0 = _mm512_add_epi64(a0, _mm512_add_epi64(e0, o0));
            a1 = _mm512_add_epi64(a1, _mm512_add_epi64(e1, o1));
            hit |= _mm512_cmpeq_epi32_mask(x0, mbv) | _mm512_cmpeq_epi32_mask(x1, mbv);
            i += 32;
        }
        while i < n {
            let k = tail_mask(n - i);
            let x = load(ptr.add(i), k);
            let (e, o) = f_pair(weights(x, sv, inf), invv, cnt);
            a0 = _mm512_add_epi64(a0, _mm512_add_epi64(e, o));
            hit |= _mm512_mask_cmpeq_epi32_mask(k, x, mbv);
            i += 16;
        }
        (_mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)) as u64, hit != 0)
    }

    /// `f_i + 1` as 16 u32 lanes, and `f` as 8 u64 lane sums.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn freq_vec(x: __m512i, sv: __m512, inf: __m512i, invv: __m512i, cnt: __m128i) -> (__m512i, __m512i) {
        let (e, o) = f_pair(weights(x, sv, inf), invv, cnt);
        let f = _mm512_or_si512(e, _mm512_slli_epi64::<32>(o));
        (_mm512_add_epi32(f, _mm512_set1_epi32(1)), _mm512_add_epi64(e, o))
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn fill(p: &[f32], s: f32, inv: u64, sh: u32, out: &mut [u32]) -> u64 {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let invv = _mm512_set1_epi64(inv as i64);
        let cnt = count(sh);
        let mut acc = _mm512_setzero_si512();
        let n = p.len().min(out.len());
        let (ptr, optr) = (p.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i < n {
            let k = tail_mask(n - i);
            let (f1, f) = freq_vec(load(ptr.add(i), k), sv, inf, invv, cnt);
            _mm512_mask_storeu_epi32(optr.add(i) as *mut i32, k, f1);
            acc = _mm512_add_epi64(acc, f);
            i += 16;
        }
        _mm512_reduce_add_epi64(acc) as u64
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn block_sums(p: &[f32], s: f32, inv: u64, sh: u32, mb: u32, out: &mut [u32]) -> (u64, usize) {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let invv = _mm512_set1_epi64(inv as i64);
        let mbv = _mm512_set1_epi32(mb as i32);
        let cnt = count(sh);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut total = 0u64;
        let mut first = usize::MAX;
        for (b, o) in out.iter_mut().enumerate() {
            let base = b * BLOCK;
            if base >= n {
                break;
            }
            let rem = n - base;
            let mut acc = _mm512_setzero_si512();
            let mut hit: __mmask16 = 0;
            let mut j = 0;
            while j < BLOCK && j < rem {
                let k = tail_mask(rem - j);
                let x = load(ptr.add(base + j), k);
                let (e, o) = f_pair(weights(x, sv, inf), invv, cnt);
                acc = _mm512_add_epi64(acc, _mm512_add_epi64(e, o));
                hit |= _mm512_mask_cmpeq_epi32_mask(k, x, mbv);
                j += 16;
            }
            let bs = _mm512_reduce_add_epi64(acc) as u64;
            *o = bs as u32;
            total += bs;
            if hit != 0 && first == usize::MAX {
                first = b;
            }
        }
        (total, first)
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn first_eq(p: &[f32], mb: u32) -> usize {
        let mbv = _mm512_set1_epi32(mb as i32);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i < n {
            let k = tail_mask(n - i);
            let m = _mm512_mask_cmpeq_epi32_mask(k, load(ptr.add(i), k), mbv);
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
        n
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

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn search(p: &[f32], s: f32, inv: u64, sh: u32, t: u64, kk: usize, r: u32) -> Found {
        let inf = _mm512_set1_epi32(INF_BITS as i32);
        let sv = _mm512_set1_ps(s);
        let invv = _mm512_set1_epi64(inv as i64);
        let cnt = count(sh);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut base = 0u64;
        let mut i = 0;
        while i < n {
            let k = tail_mask(n - i);
            let (mut f1, _) = freq_vec(load(ptr.add(i), k), sv, inf, invv, cnt);
            f1 = _mm512_maskz_mov_epi32(k, f1);
            if kk >= i && kk < i + 16 {
                let at = _mm512_cmpeq_epi32_mask(lanes, _mm512_set1_epi32((kk - i) as i32));
                f1 = _mm512_mask_add_epi32(f1, at, f1, _mm512_set1_epi32(r as i32));
            }
            let pre = prefix16(f1);
            // Lanes whose inclusive prefix exceeds t (t < 2^24, prefixes <= 2^24).
            let gt = _mm512_mask_cmpgt_epu32_mask(k, pre, _mm512_set1_epi32((t - base) as i32));
            if gt != 0 {
                let lane = gt.trailing_zeros() as usize;
                let mut pa = [0u32; 16];
                let mut fa = [0u32; 16];
                _mm512_storeu_epi32(pa.as_mut_ptr() as *mut i32, pre);
                _mm512_storeu_epi32(fa.as_mut_ptr() as *mut i32, f1);
                let (pl, fl) = (pa[lane], fa[lane]);
                return Some((i + lane, base + (pl - fl) as u64, fl));
            }
            base += _mm512_reduce_add_epi32(f1) as u32 as u64;
            i += 16;
        }
        None
    }
}

pub(super) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(ptr: *const f32) -> __m256i {
        _mm256_loadu_si256(ptr as *const __m256i)
    }

    /// Sanitized bits: entries that are negative, `+inf` or NaN become 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sanitized(x: __m256i, inf: __m256i) -> __m256i {
        _mm256_max_epi32(_mm256_and_si256(x, _mm256_cmpgt_epi32(inf, x)), _mm256_setzero_si256())
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn weights(x: __m256i, sv: __m256, inf: __m256i) -> __m256i {
        _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(sanitized(x, inf)), sv))
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
    pub(crate) unsafe fn sum_u(p: &[f32], s: f32) -> u64 {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let sv = _mm256_set1_ps(s);
        let lo = _mm256_set1_epi64x(0xFFFF_FFFF);
        let z = _mm256_setzero_si256();
        let (mut a0, mut a1) = (z, z);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let u = weights(load(ptr.add(i)), sv, inf);
            a0 = _mm256_add_epi64(a0, _mm256_and_si256(u, lo));
            a1 = _mm256_add_epi64(a1, _mm256_srli_epi64::<32>(u));
            i += 8;
        }
        let mut sum = hsum64(_mm256_add_epi64(a0, a1));
        for &x in p.get(i..).unwrap_or(&[]) {
            sum += weight_f32(x, s) as u64;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn sum_f(p: &[f32], s: f32, inv: u64, sh: u32, mb: u32) -> (u64, bool) {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let sv = _mm256_set1_ps(s);
        let invv = _mm256_set1_epi64x(inv as i64);
        let mbv = _mm256_set1_epi32(mb as i32);
        let cnt = count(sh);
        let z = _mm256_setzero_si256();
        let (mut acc, mut hit) = (z, z);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let x = load(ptr.add(i));
            let (e, o) = f_pair(weights(x, sv, inf), invv, cnt);
            acc = _mm256_add_epi64(acc, _mm256_add_epi64(e, o));
            hit = _mm256_or_si256(hit, _mm256_cmpeq_epi32(x, mbv));
            i += 8;
        }
        let mut sum = hsum64(acc);
        let mut any = _mm256_movemask_epi8(hit) != 0;
        for &x in p.get(i..).unwrap_or(&[]) {
            sum += f_scalar(x, s, inv, sh);
            any |= x.to_bits() == mb;
        }
        (sum, any)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn fill(p: &[f32], s: f32, inv: u64, sh: u32, out: &mut [u32]) -> u64 {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let sv = _mm256_set1_ps(s);
        let invv = _mm256_set1_epi64x(inv as i64);
        let one = _mm256_set1_epi32(1);
        let cnt = count(sh);
        let mut acc = _mm256_setzero_si256();
        let n = p.len().min(out.len());
        let (ptr, optr) = (p.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= n {
            let (e, o) = f_pair(weights(load(ptr.add(i)), sv, inf), invv, cnt);
            let f = _mm256_or_si256(e, _mm256_slli_epi64::<32>(o));
            _mm256_storeu_si256(optr.add(i) as *mut __m256i, _mm256_add_epi32(f, one));
            acc = _mm256_add_epi64(acc, _mm256_add_epi64(e, o));
            i += 8;
        }
        let mut sum = hsum64(acc);
        for (d, &x) in out.iter_mut().zip(p).skip(i) {
            let f = f_scalar(x, s, inv, sh);
            *d = f as u32 + 1;
            sum += f;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn block_sums(p: &[f32], s: f32, inv: u64, sh: u32, mb: u32, out: &mut [u32]) -> (u64, usize) {
        let mut total = 0u64;
        let mut first = usize::MAX;
        for (b, (o, c)) in out.iter_mut().zip(p.chunks(BLOCK)).enumerate() {
            let (bs, hit) = sum_f(c, s, inv, sh, mb);
            *o = bs as u32;
            total += bs;
            if hit && first == usize::MAX {
                first = b;
            }
        }
        (total, first)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn first_eq(p: &[f32], mb: u32) -> usize {
        let mbv = _mm256_set1_epi32(mb as i32);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(load(ptr.add(i)), mbv)));
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 8;
        }
        i + p.get(i..).unwrap_or(&[]).iter().position(|x| x.to_bits() == mb).unwrap_or(n - i)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn search(p: &[f32], s: f32, inv: u64, sh: u32, t: u64, kk: usize, r: u32) -> Found {
        let inf = _mm256_set1_epi32(INF_BITS as i32);
        let sv = _mm256_set1_ps(s);
        let invv = _mm256_set1_epi64x(inv as i64);
        let one = _mm256_set1_epi32(1);
        let cnt = count(sh);
        let n = p.len();
        let ptr = p.as_ptr();
        let mut cum = 0u64;
        let mut i = 0;
        let mut fa = [0u32; 8];
        while i + 8 <= n {
            let (e, o) = f_pair(weights(load(ptr.add(i)), sv, inf), invv, cnt);
            let f = _mm256_add_epi32(_mm256_or_si256(e, _mm256_slli_epi64::<32>(o)), one);
            _mm256_storeu_si256(fa.as_mut_ptr() as *mut __m256i, f);
            for (j, &fj) in fa.iter().enumerate() {
                let fj = fj as u64 + if i + j == kk { r as u64 } else { 0 };
                if cum + fj > t {
                    return Some((i + j, cum, fj as u32));
                }
                cum += fj;
            }
            i += 8;
        }
        for (j, &x) in p.iter().enumerate().skip(i) {
            let fj = 1 + f_scalar(x, s, inv, sh) + if j == kk { r as u64 } else { 0 };
            if cum + fj > t {
                return Some((j, cum, fj as u32));
            }
            cum += fj;
        }
        None
    }
}
