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

use super::{f_of_u, BLOCK, INF_BITS};

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
        (_mm512_or_si512(e, _mm512_slli_epi64::<32>(o)), _mm512_add_epi64(e, o))
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
            hit_at = if m != 0 && hit_at == usize::MAX { i } else { hit_at };
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
        (_mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)) as u64, first)
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

    /// Branch-free search within one block (see `Kern::search`).
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn search(u: &[u32], inv: u64, sh: u32, t: u64, kk: usize, r: u32) -> Option<(usize, u64, u32)> {
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
            let at = _mm512_cmpeq_epi32_mask(_mm512_add_epi32(lanes, _mm512_set1_epi32(i as i32)), kkv);
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
    pub(crate) unsafe fn search(u: &[u32], inv: u64, sh: u32, t: u64, kk: usize, r: u32) -> Option<(usize, u64, u32)> {
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

