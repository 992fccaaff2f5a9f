//! One recurrent step of the RWKV-MoE predictor (SPEC.md §3) for a group of
//! independent streams ("rows").
//!
//! Determinism contract: every output element of every row is computed by the
//! same sequence of IEEE binary32 operations whatever the group size, the
//! other rows, the thread count or the CPU:
//!
//! * matrix products accumulate `y[o] += x[i] * w[i][o]` for `i = 0, 1, …` in
//!   order (separate multiply and add; Rust never contracts to FMA); the
//!   kernels (portable, AVX2, AVX-512, chosen at run time) vectorise across
//!   output channels `o` and block rows in registers, which keeps each
//!   element's summation order;
//! * reductions (norm statistics, router sums, WKV dot products) run
//!   sequentially in index order (several rows' sums are interleaved for
//!   instruction-level parallelism, each still in index order);
//! * `exp`/`ln`/`sigmoid`/`tanh`/`softplus` come from [`super::math`], `sqrt`
//!   is IEEE (correctly rounded);
//! * MoE top-k ties go to the lower expert index; each row uses only its own
//!   selected experts, accumulated in ascending expert order.

use super::math;
use super::weights::{Mat, Model, Router};
use crate::error::{MmzError, Result};

const LN_EPS: f32 = 1e-5;
const LN_X_EPS: f32 = 64e-5;

#[inline(always)]
fn mm_body<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32]) {
    let (ni, no) = (m.n_in, m.n_out);
    const TILE: usize = 4;
    for (xt, yt) in x.chunks(ni * TILE).zip(y.chunks_mut(no * TILE)) {
        yt.fill(0.0);
        let rows = xt.len() / ni;
        for (i, wr) in m.w.chunks_exact(no).enumerate() {
            for r in 0..rows {
                let xi = xt[r * ni + i];
                if SKIP_ZERO && xi == 0.0 {
                    continue;
                }
                let yr = &mut yt[r * no..(r + 1) * no];
                for (yo, &wo) in yr.iter_mut().zip(wr) {
                    *yo += xi * wo;
                }
            }
        }
    }
}

/// Register-blocked AVX2 kernel: for a block of 16 output channels and up to
/// [`avx2::ROWS`] rows, the accumulators live in registers while `i` runs
/// `0..n_in` in order; each step is a separate `mulps` then `addps`, so every
/// element sees exactly the operation sequence of [`mm_body`] (skipping an
/// exactly-zero input only omits adding ±0 to an accumulator that started at
/// +0, which never changes it). Output channels past the last full block of
/// 16 use [`mm_body`]'s scalar form.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Mat;
    use core::arch::x86_64::*;

    /// Rows (streams) per register block.
    pub const ROWS: usize = 6;

    /// A stored weight widened to 8 binary32 lanes: `f32` as is, `u16` as
    /// binary16 bits (`vcvtph2ps`, exact; see the AVX-512 kernel's `Weight`).
    pub trait Weight: Copy {
        /// Eight consecutive weights at `p` as binary32 lanes.
        ///
        /// # Safety
        /// `p .. p + 8` must be readable; the CPU must support AVX2 (and F16C for `u16`).
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Weight for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
    }

    impl Weight for u16 {
        #[inline(always)]
        unsafe fn load8(p: *const u16) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>()))
        }
    }

    #[inline(always)]
    unsafe fn block<T: Weight, const R: usize, const SKIP_ZERO: bool>(x: &[f32], ni: usize, w: &[T], no: usize, o: usize, y: &mut [f32]) {
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        let wp = w.as_ptr().add(o);
        let xp = x.as_ptr();
        for i in 0..ni {
            let w0 = T::load8(wp.add(i * no));
            let w1 = T::load8(wp.add(i * no + 8));
            for r in 0..R {
                let xi = *xp.add(r * ni + i);
                if SKIP_ZERO && xi == 0.0 {
                    continue;
                }
                let b = _mm256_set1_ps(xi);
                acc0[r] = _mm256_add_ps(acc0[r], _mm256_mul_ps(b, w0));
                acc1[r] = _mm256_add_ps(acc1[r], _mm256_mul_ps(b, w1));
            }
        }
        let yp = y.as_mut_ptr();
        for r in 0..R {
            _mm256_storeu_ps(yp.add(r * no + o), acc0[r]);
            _mm256_storeu_ps(yp.add(r * no + o + 8), acc1[r]);
        }
    }

    /// `y = x · m` (see the module comment of the parent); `x.len() / n_in` rows.
    ///
    /// # Safety
    /// The CPU must support AVX2; `y.len() == rows * n_out`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn mm<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32]) {
        dense::<f32, SKIP_ZERO>(x, m, &m.w, y)
    }

    /// [`mm`] reading the binary16 copy `m.w16` (same values, half the
    /// bytes); [`mm`] itself when the matrix has none.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `y.len() == rows * n_out`.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn mm_half<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32]) {
        if m.w16.len() == m.w.len() {
            dense::<u16, SKIP_ZERO>(x, m, &m.w16, y)
        } else {
            dense::<f32, SKIP_ZERO>(x, m, &m.w, y)
        }
    }

    #[inline(always)]
    unsafe fn dense<T: Weight, const SKIP_ZERO: bool>(x: &[f32], m: &Mat, w: &[T], y: &mut [f32]) {
        let (ni, no) = (m.n_in, m.n_out);
        let rows = x.len() / ni;
        if w.len() < ni * no || y.len() < rows * no {
            return super::mm_body::<SKIP_ZERO>(x, m, y);
        }
        let full = no - no % 16;
        for o in (0..full).step_by(16) {
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(ROWS);
                let (xs, ys) = (&x[r0 * ni..(r0 + nr) * ni], &mut y[r0 * no..(r0 + nr) * no]);
                match nr {
                    6 => block::<T, 6, SKIP_ZERO>(xs, ni, w, no, o, ys),
                    5 => block::<T, 5, SKIP_ZERO>(xs, ni, w, no, o, ys),
                    4 => block::<T, 4, SKIP_ZERO>(xs, ni, w, no, o, ys),
                    3 => block::<T, 3, SKIP_ZERO>(xs, ni, w, no, o, ys),
                    2 => block::<T, 2, SKIP_ZERO>(xs, ni, w, no, o, ys),
                    _ => block::<T, 1, SKIP_ZERO>(xs, ni, w, no, o, ys),
                }
                r0 += nr;
            }
        }
        if full < no {
            for r in 0..rows {
                let (xr, yr) = (&x[r * ni..(r + 1) * ni], &mut y[r * no + full..(r + 1) * no]);
                yr.fill(0.0);
                for (i, &xi) in xr.iter().enumerate() {
                    if SKIP_ZERO && xi == 0.0 {
                        continue;
                    }
                    for (yo, &wo) in yr.iter_mut().zip(&m.w[i * no + full..(i + 1) * no]) {
                        *yo += xi * wo;
                    }
                }
            }
        }
    }
}

/// AVX-512 kernel: like [`avx2`] with 32 registers, so a block holds up to
/// [`avx512::ROWS`] rows × 32 output channels (24 accumulators); each step is
/// a separate `vmulps` then `vaddps` per element, in input order `i = 0, 1, …`.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::math::{self, v16};
    use super::Mat;
    use core::arch::x86_64::*;

    /// Rows (streams) per register block.
    pub const ROWS: usize = 12;

    /// Software-prefetch distance of the weight stream, in input rows.
    const PF_DIST: usize = 32;

    /// A stored weight the dense kernels widen to binary32 lanes: `f32` as is,
    /// `u16` as IEEE binary16 bits (`vcvtph2ps`, exact), so both give the same
    /// 16 binary32 values for the same weights and every product and sum after
    /// the load is unchanged.
    pub trait Weight: Copy {
        /// Sixteen consecutive weights at `p` as binary32 lanes.
        ///
        /// # Safety
        /// `p .. p + 16` must be readable; the CPU must support AVX-512F.
        unsafe fn load16(p: *const Self) -> __m512;
    }

    impl Weight for f32 {
        #[inline(always)]
        unsafe fn load16(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
    }

    impl Weight for u16 {
        #[inline(always)]
        unsafe fn load16(p: *const u16) -> __m512 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<__m256i>()))
        }
    }

    /// One input step of a register block: `acc[r][v] += x[r][i] · wv[v]` for
    /// every row `r` (separate multiply and add; zero inputs skipped when `SKIP_ZERO`,
    /// which adds exactly nothing).
    #[inline(always)]
    unsafe fn accumulate<const R: usize, const NV: usize, const SKIP_ZERO: bool>(
        acc: &mut [[__m512; NV]; R],
        x: *const f32,
        ni: usize,
        i: usize,
        wv: &[__m512; NV],
    ) {
        for (r, ar) in acc.iter_mut().enumerate() {
            let xi = *x.add(r * ni + i);
            if SKIP_ZERO && xi == 0.0 {
                continue;
            }
            let bx = _mm512_set1_ps(xi);
            for (a, &v) in ar.iter_mut().zip(wv) {
                *a = _mm512_add_ps(*a, _mm512_mul_ps(bx, v));
            }
        }
    }

    /// Store a register block's accumulators: row `r`, vector `v` at `y[r·no + 16v ..]`.
    #[inline(always)]
    unsafe fn store_rows<const R: usize, const NV: usize>(acc: &[[__m512; NV]; R], y: *mut f32, no: usize) {
        for (r, ar) in acc.iter().enumerate() {
            for (b, &a) in ar.iter().enumerate() {
                _mm512_storeu_ps(y.add(r * no + 16 * b), a);
            }
        }
    }

    #[inline(always)]
    unsafe fn block<T: Weight, const R: usize, const NB: usize, const SKIP_ZERO: bool, const PF: bool>(
        x: *const f32,
        ni: usize,
        w: *const T,
        no: usize,
        y: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; R];
        for i in 0..ni {
            // Panel-major weights: row i of this panel is 16 NB contiguous floats.
            let wi = w.add(i * 16 * NB);
            if PF {
                // First row block of a panel: the weights come from L3/DRAM; fetch
                // PF_DIST input rows ahead (running into the next panel at the end).
                for b in 0..NB {
                    _mm_prefetch::<_MM_HINT_T0>(wi.wrapping_add(PF_DIST * 16 * NB + 16 * b).cast::<i8>());
                }
            }
            let mut wv = [_mm512_setzero_ps(); NB];
            for (b, v) in wv.iter_mut().enumerate() {
                *v = T::load16(wi.add(16 * b));
            }
            accumulate::<R, NB, SKIP_ZERO>(&mut acc, x, ni, i, &wv);
        }
        store_rows(&acc, y, no);
    }

    /// Rows per register block of the 64-column kernel [`block64`].
    pub const ROWS64: usize = 6;

    /// [`block`] for 64 output columns held in two consecutive 32-column
    /// panels (`w` = the first; the second starts `32 ni` floats later):
    /// `R ≤ 6` rows × 4 vectors = 24 accumulators, 4 weight loads and `R`
    /// broadcasts per input. Each element still adds `x[r][i] · w[i][o]` for
    /// `i = 0, 1, …` in order (separate multiply and add).
    #[inline(always)]
    unsafe fn block64<T: Weight, const R: usize, const SKIP_ZERO: bool, const PF: bool>(x: *const f32, ni: usize, w: *const T, no: usize, y: *mut f32) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let w2 = w.add(32 * ni);
        for i in 0..ni {
            let (wa, wb) = (w.add(i * 32), w2.add(i * 32));
            if PF {
                for q in [wa, wb] {
                    for b in 0..2 {
                        _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PF_DIST * 32 + 16 * b).cast::<i8>());
                    }
                }
            }
            let wv = [T::load16(wa), T::load16(wa.add(16)), T::load16(wb), T::load16(wb.add(16))];
            accumulate::<R, 4, SKIP_ZERO>(&mut acc, x, ni, i, &wv);
        }
        store_rows(&acc, y, no);
    }

    /// Output columns `o .. o + 64` of every row (two 32-column panels), [`ROWS64`] rows at a time.
    #[inline(always)]
    unsafe fn columns64<T: Weight, const SKIP_ZERO: bool>(x: &[f32], m: &Mat, panels: &[T], rows: usize, o: usize, y: &mut [f32]) {
        let (ni, no) = (m.n_in, m.n_out);
        let wp = panels.as_ptr().add(o * ni);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(ROWS64);
            let xp = x.as_ptr().add(r0 * ni);
            let yp = y.as_mut_ptr().add(r0 * no + o);
            macro_rules! go {
                ($pf:expr) => {
                    match nr {
                        6 => block64::<T, 6, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                        5 => block64::<T, 5, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                        4 => block64::<T, 4, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                        3 => block64::<T, 3, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                        2 => block64::<T, 2, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                        _ => block64::<T, 1, SKIP_ZERO, $pf>(xp, ni, wp, no, yp),
                    }
                };
            }
            if r0 == 0 {
                go!(true)
            } else {
                go!(false)
            }
            r0 += nr;
        }
    }

    /// Like [`block`] (no prefetch), but over the input indices `idx` only (in
    /// increasing order): the ones where some row of the block is non-zero.
    #[inline(always)]
    unsafe fn block_sparse<const R: usize, const NB: usize>(x: *const f32, ni: usize, w: *const f32, no: usize, y: *mut f32, idx: &[u32]) {
        let mut acc = [[_mm512_setzero_ps(); NB]; R];
        for &i in idx {
            let i = i as usize;
            let wi = w.add(i * 16 * NB);
            let mut wv = [_mm512_setzero_ps(); NB];
            for (b, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(wi.add(16 * b));
            }
            for (r, ar) in acc.iter_mut().enumerate() {
                let bx = _mm512_set1_ps(*x.add(r * ni + i));
                for (a, &v) in ar.iter_mut().zip(&wv) {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(bx, v));
                }
            }
        }
        for (r, ar) in acc.iter().enumerate() {
            for (b, &a) in ar.iter().enumerate() {
                _mm512_storeu_ps(y.add(r * no + 16 * b), a);
            }
        }
    }

    #[inline(always)]
    unsafe fn blocks_sparse<const NB: usize>(nr: usize, xp: *const f32, ni: usize, wp: *const f32, no: usize, yp: *mut f32, idx: &[u32]) {
        match nr {
            12 => block_sparse::<12, NB>(xp, ni, wp, no, yp, idx),
            11 => block_sparse::<11, NB>(xp, ni, wp, no, yp, idx),
            10 => block_sparse::<10, NB>(xp, ni, wp, no, yp, idx),
            9 => block_sparse::<9, NB>(xp, ni, wp, no, yp, idx),
            8 => block_sparse::<8, NB>(xp, ni, wp, no, yp, idx),
            7 => block_sparse::<7, NB>(xp, ni, wp, no, yp, idx),
            6 => block_sparse::<6, NB>(xp, ni, wp, no, yp, idx),
            5 => block_sparse::<5, NB>(xp, ni, wp, no, yp, idx),
            4 => block_sparse::<4, NB>(xp, ni, wp, no, yp, idx),
            3 => block_sparse::<3, NB>(xp, ni, wp, no, yp, idx),
            2 => block_sparse::<2, NB>(xp, ni, wp, no, yp, idx),
            _ => block_sparse::<1, NB>(xp, ni, wp, no, yp, idx),
        }
    }

    /// Appends to `idx`, in increasing order, the inputs `i < ni` that are
    /// non-zero (or NaN) in at least one of the `nr` rows at `x + r · stride`.
    #[inline(always)]
    unsafe fn nonzero(x: *const f32, ni: usize, nr: usize, stride: usize, idx: &mut Vec<u32>) {
        let mut i0 = 0;
        while i0 + 16 <= ni {
            let mut mask: u16 = 0;
            for r in 0..nr {
                let v = _mm512_loadu_ps(x.add(r * stride + i0));
                mask |= _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps());
            }
            while mask != 0 {
                idx.push((i0 + mask.trailing_zeros() as usize) as u32);
                mask &= mask - 1;
            }
            i0 += 16;
        }
        for i in i0..ni {
            if (0..nr).any(|r| {
                let v = *x.add(r * stride + i);
                v != 0.0 || v.is_nan()
            }) {
                idx.push(i as u32);
            }
        }
    }

    /// One row, `16 NB` columns from the row-major weights at `w` (row stride
    /// `no`): `y[o] = Σ_{i ∈ idx} x[i] · w[i][o]`, `i` increasing.
    #[inline(always)]
    unsafe fn row_sparse<T: Weight, const NB: usize>(xr: &[f32], w: *const T, no: usize, y: *mut f32, idx: &[u32]) {
        let mut acc = [_mm512_setzero_ps(); NB];
        for &i in idx {
            let i = i as usize;
            let bx = _mm512_set1_ps(*xr.get_unchecked(i));
            let wi = w.add(i * no);
            for (b, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, _mm512_mul_ps(bx, T::load16(wi.add(16 * b))));
            }
        }
        for (b, &a) in acc.iter().enumerate() {
            _mm512_storeu_ps(y.add(16 * b), a);
        }
    }

    /// The row-by-row form of [`mm_sparse`] (`n_out` a multiple of 16) over
    /// the row-major weights `w` (`m.w` or `m.w16`).
    #[inline(always)]
    unsafe fn rows_sparse<T: Weight>(x: &[f32], m: &Mat, w: &[T], rows: usize, y: &mut [f32], idx: &mut Vec<u32>) {
        let (ni, no) = (m.n_in, m.n_out);
        for r in 0..rows {
            let xr = &x[r * ni..(r + 1) * ni];
            idx.clear();
            nonzero(xr.as_ptr(), ni, 1, ni, idx);
            let mut o = 0;
            while o < no {
                let (wp, yp) = (w.as_ptr().add(o), y.as_mut_ptr().add(r * no + o));
                match (no - o) / 16 {
                    1 => row_sparse::<T, 1>(xr, wp, no, yp, idx),
                    2 => row_sparse::<T, 2>(xr, wp, no, yp, idx),
                    3 => row_sparse::<T, 3>(xr, wp, no, yp, idx),
                    4 => row_sparse::<T, 4>(xr, wp, no, yp, idx),
                    5 => row_sparse::<T, 5>(xr, wp, no, yp, idx),
                    6 => row_sparse::<T, 6>(xr, wp, no, yp, idx),
                    7 => row_sparse::<T, 7>(xr, wp, no, yp, idx),
                    _ => row_sparse::<T, 8>(xr, wp, no, yp, idx),
                }
                o += 128.min(no - o);
            }
        }
    }

    /// `y = x · m` for finite weights, skipping zero inputs (the post-ReLU² FFN
    /// products: ~86% zeros): with `n_out` a multiple of 16, row by row over
    /// that row's non-zero inputs (up to 128 columns in registers); otherwise
    /// per register block of rows, the inputs that are zero in every row of the
    /// block. Exact: an accumulator starts at `+0` and so is
    /// never `-0`, and adding `0 · w = ±0` (finite `w`) leaves it unchanged, so
    /// omitting such terms (or, in the other rows, keeping them) gives the bits
    /// of the dense loop; NaN inputs count as non-zero.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    /// With `half` and a binary16 copy present, the row-by-row form reads
    /// `m.w16` (the same values).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mm_sparse(x: &[f32], m: &Mat, y: &mut [f32], half: bool) {
        let (ni, no) = (m.n_in, m.n_out);
        let rows = x.len() / ni;
        let full = if no % 32 >= 16 { no - no % 16 } else { no - no % 32 };
        if !m.finite || m.w.len() < ni * no || y.len() < rows * no || x.len() < rows * ni || m.panels.len() < full * ni {
            return super::mm_body::<true>(x, m, y);
        }
        let mut idx: Vec<u32> = Vec::with_capacity(ni);
        if no % 16 == 0 {
            if half && m.w16.len() == m.w.len() {
                rows_sparse::<u16>(x, m, &m.w16, rows, y, &mut idx);
            } else {
                rows_sparse::<f32>(x, m, &m.w, rows, y, &mut idx);
            }
            return;
        }
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(ROWS);
            let xb = &x[r0 * ni..(r0 + nr) * ni];
            idx.clear();
            nonzero(xb.as_ptr(), ni, nr, ni, &mut idx);
            let xp = xb.as_ptr();
            let mut o = 0;
            while o + 32 <= no {
                blocks_sparse::<2>(nr, xp, ni, m.panels.as_ptr().add(o * ni), no, y.as_mut_ptr().add(r0 * no + o), &idx);
                o += 32;
            }
            if o + 16 <= no {
                blocks_sparse::<1>(nr, xp, ni, m.panels.as_ptr().add(o * ni), no, y.as_mut_ptr().add(r0 * no + o), &idx);
                o += 16;
            }
            if o < no {
                super::mm_tail::<true>(xb, m, o, &mut y[r0 * no..(r0 + nr) * no]);
            }
            r0 += nr;
        }
    }

    /// One register block of `nr` rows.
    #[inline(always)]
    unsafe fn blocks<T: Weight, const NB: usize, const SKIP_ZERO: bool, const PF: bool>(
        nr: usize,
        xp: *const f32,
        ni: usize,
        wp: *const T,
        no: usize,
        yp: *mut f32,
    ) {
        match nr {
            12 => block::<T, 12, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            11 => block::<T, 11, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            10 => block::<T, 10, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            9 => block::<T, 9, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            8 => block::<T, 8, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            7 => block::<T, 7, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            6 => block::<T, 6, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            5 => block::<T, 5, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            4 => block::<T, 4, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            3 => block::<T, 3, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            2 => block::<T, 2, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
            _ => block::<T, 1, NB, SKIP_ZERO, PF>(xp, ni, wp, no, yp),
        }
    }

    /// Output columns `o .. o + 16 NB` of every row, `ROWS` rows at a time.
    #[inline(always)]
    unsafe fn columns<T: Weight, const NB: usize, const SKIP_ZERO: bool>(x: &[f32], m: &Mat, panels: &[T], rows: usize, o: usize, y: &mut [f32]) {
        let (ni, no) = (m.n_in, m.n_out);
        let wp = panels.as_ptr().add(o * ni);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(ROWS);
            let xp = x.as_ptr().add(r0 * ni);
            let yp = y.as_mut_ptr().add(r0 * no + o);
            if r0 == 0 {
                blocks::<T, NB, SKIP_ZERO, true>(nr, xp, ni, wp, no, yp);
            } else {
                blocks::<T, NB, SKIP_ZERO, false>(nr, xp, ni, wp, no, yp);
            }
            r0 += nr;
        }
    }

    /// [`super::wkv_head`] with `sa`, `v` and `y` in registers (`NV` vectors of 16):
    /// the same multiplies and adds per element in the same order. The state of
    /// the next head (`next[0]`, may be null) is prefetched into L1 row by row
    /// during the update, a later one (`next[1]`, the caller uses four ahead) into L2 during the `sa` pass.
    #[inline(always)]
    unsafe fn wkv<const NV: usize>(s: &mut [f32], hv: &super::WkvHead<'_>, yh: &mut [f32], next: [*const f32; 2]) {
        let n = 16 * NV;
        let sp = s.as_mut_ptr();
        let mut sa = [_mm512_setzero_ps(); NV];
        for j in 0..n {
            let alpha = _mm512_set1_ps(-*hv.kk.get_unchecked(j));
            let sj = sp.add(j * n);
            if !next[1].is_null() {
                for b in 0..NV {
                    _mm_prefetch::<_MM_HINT_T1>(next[1].wrapping_add(j * n + 16 * b).cast::<i8>());
                }
            }
            for (b, q) in sa.iter_mut().enumerate() {
                *q = _mm512_add_ps(*q, _mm512_mul_ps(_mm512_loadu_ps(sj.add(16 * b)), alpha));
            }
        }
        let mut vv = [_mm512_setzero_ps(); NV];
        let mut y = [_mm512_setzero_ps(); NV];
        for (b, x) in vv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(hv.v.as_ptr().add(16 * b));
        }
        for j in 0..n {
            let (kkj, aj) = (*hv.kk.get_unchecked(j), *hv.a.get_unchecked(j));
            let dj = _mm512_set1_ps(*hv.decay.get_unchecked(j));
            let bj = _mm512_set1_ps(kkj * aj);
            let kj = _mm512_set1_ps(*hv.k.get_unchecked(j));
            let rj = _mm512_set1_ps(*hv.r.get_unchecked(j));
            let sj = sp.add(j * n);
            if !next[0].is_null() {
                for b in 0..NV {
                    _mm_prefetch::<_MM_HINT_T0>(next[0].wrapping_add(j * n + 16 * b).cast::<i8>());
                }
            }
            for b in 0..NV {
                let t = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(sj.add(16 * b)), dj), _mm512_mul_ps(sa[b], bj));
                let t = _mm512_add_ps(t, _mm512_mul_ps(vv[b], kj));
                _mm512_storeu_ps(sj.add(16 * b), t);
                y[b] = _mm512_add_ps(y[b], _mm512_mul_ps(t, rj));
            }
        }
        for (b, &x) in y.iter().enumerate() {
            _mm512_storeu_ps(yh.as_mut_ptr().add(16 * b), x);
        }
    }

    /// `out[i] = fv(a[i], p[i % d])` 16 lanes at a time (`fs` for the lanes
    /// past the last multiple of 16 in each row of `d = p.len()`).
    #[inline(always)]
    unsafe fn per_ch16(a: &[f32], p: &[f32], out: &mut [f32], fv: impl Fn(__m512, __m512) -> __m512, fs: impl Fn(f32, f32) -> f32) {
        let d = p.len();
        let full = d - d % 16;
        for (ar, or) in a.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mut j = 0;
            // Four independent vectors per iteration (the functions are long dependency chains).
            while j + 64 <= full {
                let (ap, pp, op) = (ar.as_ptr().add(j), p.as_ptr().add(j), or.as_mut_ptr().add(j));
                let v0 = fv(_mm512_loadu_ps(ap), _mm512_loadu_ps(pp));
                let v1 = fv(_mm512_loadu_ps(ap.add(16)), _mm512_loadu_ps(pp.add(16)));
                let v2 = fv(_mm512_loadu_ps(ap.add(32)), _mm512_loadu_ps(pp.add(32)));
                let v3 = fv(_mm512_loadu_ps(ap.add(48)), _mm512_loadu_ps(pp.add(48)));
                _mm512_storeu_ps(op, v0);
                _mm512_storeu_ps(op.add(16), v1);
                _mm512_storeu_ps(op.add(32), v2);
                _mm512_storeu_ps(op.add(48), v3);
                j += 64;
            }
            while j < full {
                let v = fv(_mm512_loadu_ps(ar.as_ptr().add(j)), _mm512_loadu_ps(p.as_ptr().add(j)));
                _mm512_storeu_ps(or.as_mut_ptr().add(j), v);
                j += 16;
            }
            for ((o, &av), &pv) in or[full..].iter_mut().zip(&ar[full..]).zip(&p[full..]) {
                *o = fs(av, pv);
            }
        }
    }

    /// `v = f(v)` in place, 16 lanes at a time (`fs` for the tail).
    #[inline(always)]
    unsafe fn map16(v: &mut [f32], fv: impl Fn(__m512) -> __m512, fs: impl Fn(f32) -> f32) {
        let full = v.len() - v.len() % 16;
        let mut j = 0;
        while j < full {
            _mm512_storeu_ps(v.as_mut_ptr().add(j), fv(_mm512_loadu_ps(v.as_ptr().add(j))));
            j += 16;
        }
        for q in &mut v[full..] {
            *q = fs(*q);
        }
    }

    /// `v = tanh(v)` ([`math::tanh`] per element).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh_inplace(v: &mut [f32]) {
        map16(v, |x| v16::tanh(x), math::tanh)
    }

    /// `v = sigmoid(v)` ([`math::sigmoid`] per element).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sigmoid_inplace(v: &mut [f32]) {
        map16(v, |x| v16::sigmoid(x), math::sigmoid)
    }

    /// `out = sigmoid(p + a)` per channel (the `a` gate).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `a` and `out` hold whole rows of `p.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sigmoid_bias(a: &[f32], p: &[f32], out: &mut [f32]) {
        per_ch16(a, p, out, |z, a0| v16::sigmoid(_mm512_add_ps(a0, z)), |z, a0| math::sigmoid(a0 + z))
    }

    /// The decay ([`super::decay_of`]) per channel, the same operations per lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `t2` and `out` hold whole rows of `w0.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn decay(t2: &[f32], w0: &[f32], out: &mut [f32]) {
        per_ch16(
            t2,
            w0,
            out,
            |tv, w0| {
                let z = _mm512_add_ps(w0, tv);
                let w_raw = _mm512_sub_ps(v16::neg(v16::softplus(v16::neg(z))), _mm512_set1_ps(0.5));
                v16::exp(v16::neg(v16::exp(w_raw)))
            },
            super::decay_of,
        )
    }

    /// `v = v + (f − v) · sigmoid(b0 + z)` per channel (the value residual).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `v`, `f` and `z` hold whole rows of `b0.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn v_residual(v: &mut [f32], f: &[f32], z: &[f32], b0: &[f32]) {
        let d = b0.len();
        let full = d - d % 16;
        for ((vr, fr), zr) in v.chunks_exact_mut(d).zip(f.chunks_exact(d)).zip(z.chunks_exact(d)) {
            let mut j = 0;
            while j < full {
                let vv = _mm512_loadu_ps(vr.as_ptr().add(j));
                let fv = _mm512_loadu_ps(fr.as_ptr().add(j));
                let s = v16::sigmoid(_mm512_add_ps(_mm512_loadu_ps(b0.as_ptr().add(j)), _mm512_loadu_ps(zr.as_ptr().add(j))));
                _mm512_storeu_ps(vr.as_mut_ptr().add(j), _mm512_add_ps(vv, _mm512_mul_ps(_mm512_sub_ps(fv, vv), s)));
                j += 16;
            }
            for (((vv, &f), &zv), &b) in vr[full..].iter_mut().zip(&fr[full..]).zip(&zr[full..]).zip(&b0[full..]) {
                *vv = super::v_mix(*vv, f, zv, b);
            }
        }
    }

    /// WKV update of one head (see [`super::wkv_head`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `n = hv.kk.len()` is 16, 32, 48 or 64, every
    /// vector of `hv` and `yh` holds `n` floats and `s` holds `n × n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn wkv_head(s: &mut [f32], hv: &super::WkvHead<'_>, yh: &mut [f32], next: [*const f32; 2]) {
        match hv.kk.len() {
            64 => wkv::<4>(s, hv, yh, next),
            48 => wkv::<3>(s, hv, yh, next),
            32 => wkv::<2>(s, hv, yh, next),
            _ => wkv::<1>(s, hv, yh, next),
        }
    }

    /// `y = x · m`; `x.len() / n_in` rows. The weights come from
    /// `m.panels16` when `half` and that is present (same values, half the
    /// bytes), else from `m.panels`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mm<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32], half: bool) {
        let (ni, no) = (m.n_in, m.n_out);
        let rows = x.len() / ni;
        let full = if no % 32 >= 16 { no - no % 16 } else { no - no % 32 };
        if m.w.len() < ni * no || y.len() < rows * no || x.len() < rows * ni || m.panels.len() < full * ni {
            return super::mm_body::<SKIP_ZERO>(x, m, y);
        }
        let o = if half && m.panels16.len() == m.panels.len() {
            dense_panels::<u16, SKIP_ZERO>(x, m, &m.panels16, rows, y)
        } else {
            dense_panels::<f32, SKIP_ZERO>(x, m, &m.panels, rows, y)
        };
        if o < no {
            if !SKIP_ZERO && no - o <= 8 {
                tail_by_rows(x, m, rows, o, y);
            } else {
                super::mm_tail::<SKIP_ZERO>(x, m, o, y);
            }
        }
    }

    /// The panel columns of [`mm`] from `panels` (`m.panels` or
    /// `m.panels16`); returns the first column left to the tail kernels.
    #[inline(always)]
    unsafe fn dense_panels<T: Weight, const SKIP_ZERO: bool>(x: &[f32], m: &Mat, panels: &[T], rows: usize, y: &mut [f32]) -> usize {
        let no = m.n_out;
        let mut o = 0;
        while o + 64 <= no {
            columns64::<T, SKIP_ZERO>(x, m, panels, rows, o, y);
            o += 64;
        }
        while o + 32 <= no {
            columns::<T, 2, SKIP_ZERO>(x, m, panels, rows, o, y);
            o += 32;
        }
        if o + 16 <= no {
            columns::<T, 1, SKIP_ZERO>(x, m, panels, rows, o, y);
            o += 16;
        }
        o
    }

    /// Router gates of every row (see [`super::route`]) with 16 rows in the
    /// lanes, for `E ≤ 8` experts: per lane the same operations in the same
    /// order as the scalar form (`z = Σ_i x[i] · w[i][e]` from `+0`, `+ bias`,
    /// running max by `>`, `exp(z − max)` summed in expert order, division,
    /// top-k by `>` with ties to the lower index, the selected sum in expert
    /// order, division or `+0`).
    #[inline(always)]
    unsafe fn route_lanes<const E: usize>(x: &[f32], r: &super::Router, mods: &[usize], top_k: usize, out: &mut [f32]) {
        let ni = r.w.n_in;
        let rows = x.len() / ni;
        let wp = r.w.w.as_ptr();
        let lane_off = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(ni as i32),
        );
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(16);
            let km: __mmask16 = if nr == 16 { 0xffff } else { (1u16 << nr) - 1 };
            let xp = x.as_ptr().add(r0 * ni);
            let mut z = [_mm512_setzero_ps(); E];
            for i in 0..ni {
                let xv = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), km, lane_off, xp.add(i));
                let wi = wp.add(i * E);
                for (c, a) in z.iter_mut().enumerate() {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(xv, _mm512_set1_ps(*wi.add(c))));
                }
            }
            let mut bias = [[0f32; 16]; E];
            for l in 0..nr {
                let m = *mods.get_unchecked(r0 + l);
                for (c, b) in bias.iter_mut().enumerate() {
                    b[l] = *r.mod_bias.get_unchecked(m * E + c);
                }
            }
            let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
            for (a, b) in z.iter_mut().zip(&bias) {
                *a = _mm512_add_ps(*a, _mm512_loadu_ps(b.as_ptr()));
                let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(*a, mx);
                mx = _mm512_mask_blend_ps(gt, mx, *a);
            }
            let mut s = _mm512_setzero_ps();
            for a in z.iter_mut() {
                *a = v16::exp(_mm512_sub_ps(*a, mx));
                s = _mm512_add_ps(s, *a);
            }
            for a in z.iter_mut() {
                *a = _mm512_div_ps(*a, s);
            }
            let mut sel = [0u16; E];
            for _ in 0..top_k {
                let (mut have, mut best_v, mut best_c): (u16, __m512, __m512i) = (0, _mm512_setzero_ps(), _mm512_setzero_si512());
                for (c, (&a, &sc)) in z.iter().zip(&sel).enumerate() {
                    let better = !have | _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, best_v);
                    let take = !sc & better;
                    best_v = _mm512_mask_blend_ps(take, best_v, a);
                    best_c = _mm512_mask_mov_epi32(best_c, take, _mm512_set1_epi32(c as i32));
                    have |= take;
                }
                for (c, sc) in sel.iter_mut().enumerate() {
                    *sc |= have & _mm512_cmpeq_epi32_mask(best_c, _mm512_set1_epi32(c as i32));
                }
            }
            let mut tot = _mm512_setzero_ps();
            for (&a, &sc) in z.iter().zip(&sel) {
                tot = _mm512_mask_add_ps(tot, sc, tot, a);
            }
            let op = out.as_mut_ptr().add(r0 * E);
            for (c, (&a, &sc)) in z.iter().zip(&sel).enumerate() {
                let mut g = [0f32; 16];
                _mm512_storeu_ps(g.as_mut_ptr(), _mm512_maskz_div_ps(sc, a, tot));
                for (l, &gv) in g.iter().enumerate().take(nr) {
                    *op.add(l * E + c) = gv;
                }
            }
            r0 += nr;
        }
    }

    /// Router gates `[rows, E]` into `out` with the rows in the lanes (see
    /// [`route_lanes`]); false (nothing written) unless `1 ≤ E ≤ 8`, the
    /// weights are `[n_in][E]` and the biases cover every modality in `mods`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn route(x: &[f32], r: &super::Router, mods: &[usize], top_k: usize, out: &mut [f32]) -> bool {
        let (ni, e) = (r.w.n_in, r.w.n_out);
        let rows = x.len() / ni;
        if ni == 0
            || e == 0
            || e > 8
            || r.w.w.len() < ni * e
            || x.len() < rows * ni
            || mods.len() < rows
            || out.len() < rows * e
            || mods[..rows].iter().any(|&m| (m + 1) * e > r.mod_bias.len())
        {
            return false;
        }
        match e {
            1 => route_lanes::<1>(x, r, mods, top_k, out),
            2 => route_lanes::<2>(x, r, mods, top_k, out),
            3 => route_lanes::<3>(x, r, mods, top_k, out),
            4 => route_lanes::<4>(x, r, mods, top_k, out),
            5 => route_lanes::<5>(x, r, mods, top_k, out),
            6 => route_lanes::<6>(x, r, mods, top_k, out),
            7 => route_lanes::<7>(x, r, mods, top_k, out),
            _ => route_lanes::<8>(x, r, mods, top_k, out),
        }
        true
    }

    /// Columns `o0..n_out` (at most 8, the router products) with the rows in the
    /// lanes: 16 rows are transposed to `[i][16]`, then each column's
    /// accumulator adds `x[r][i] * w[i][o]` for `i = 0, 1, …` per lane (the
    /// [`super::mm_tail`] order; lanes past the last row are ignored).
    #[inline(always)]
    unsafe fn tail_by_rows(x: &[f32], m: &Mat, rows: usize, o0: usize, y: &mut [f32]) {
        match m.n_out - o0 {
            1 => tail_cols::<1>(x, m, rows, o0, y),
            2 => tail_cols::<2>(x, m, rows, o0, y),
            3 => tail_cols::<3>(x, m, rows, o0, y),
            4 => tail_cols::<4>(x, m, rows, o0, y),
            5 => tail_cols::<5>(x, m, rows, o0, y),
            6 => tail_cols::<6>(x, m, rows, o0, y),
            7 => tail_cols::<7>(x, m, rows, o0, y),
            _ => tail_cols::<8>(x, m, rows, o0, y),
        }
    }

    #[inline(always)]
    unsafe fn tail_cols<const TC: usize>(x: &[f32], m: &Mat, rows: usize, o0: usize, y: &mut [f32]) {
        let (ni, no) = (m.n_in, m.n_out);
        let mut xt = super::buf_dirty(ni * 16);
        let wp = m.w.as_ptr().add(o0);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(16);
            for r in 0..16 {
                if r < nr {
                    let xr = &x[(r0 + r) * ni..(r0 + r + 1) * ni];
                    for (i, &v) in xr.iter().enumerate() {
                        xt[i * 16 + r] = v;
                    }
                } else {
                    for i in 0..ni {
                        xt[i * 16 + r] = 0.0;
                    }
                }
            }
            let mut acc = [_mm512_setzero_ps(); TC];
            let xp = xt.as_ptr();
            for i in 0..ni {
                let xv = _mm512_loadu_ps(xp.add(16 * i));
                let wi = wp.add(i * no);
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(xv, _mm512_set1_ps(*wi.add(c))));
                }
            }
            let mut lanes = [[0f32; 16]; TC];
            for (l, &a) in lanes.iter_mut().zip(&acc) {
                _mm512_storeu_ps(l.as_mut_ptr(), a);
            }
            for r in 0..nr {
                for (c, l) in lanes.iter().enumerate() {
                    y[(r0 + r) * no + o0 + c] = l[r];
                }
            }
            r0 += nr;
        }
    }
}

/// Columns `o0..n_out` of `y = x · m` in [`mm_body`]'s operation order, eight
/// rows interleaved (the narrow router products).
#[inline(always)]
fn mm_tail<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, o0: usize, y: &mut [f32]) {
    let (ni, no) = (m.n_in, m.n_out);
    const TILE: usize = 8;
    for (xt, yt) in x.chunks(ni * TILE).zip(y.chunks_mut(no * TILE)) {
        let rows = xt.len() / ni;
        for r in 0..rows {
            yt[r * no + o0..(r + 1) * no].fill(0.0);
        }
        for (i, wr) in m.w.chunks_exact(no).enumerate() {
            for r in 0..rows {
                let xi = xt[r * ni + i];
                if SKIP_ZERO && xi == 0.0 {
                    continue;
                }
                for (yo, &wo) in yt[r * no + o0..(r + 1) * no].iter_mut().zip(&wr[o0..]) {
                    *yo += xi * wo;
                }
            }
        }
    }
}

/// Instruction-set build of the engine chosen at run time (all give the same bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    Portable,
    Avx2,
    Avx512,
}

/// Detected once; `MMZ_NEURAL_PORTABLE` forces the portable build and
/// `MMZ_NEURAL_SIMD=avx2|portable` caps it (for equivalence checks).
fn simd() -> Simd {
    static PATH: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let cap = std::env::var("MMZ_NEURAL_SIMD").unwrap_or_default();
        if std::env::var_os("MMZ_NEURAL_PORTABLE").is_some() || cap == "portable" {
            return Simd::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if cap != "avx2"
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512dq")
            {
                return Simd::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    })
}

/// Up to this many rows the AVX-512 dense kernel reads binary16 weights
/// (engine, model 56769978, one thread: 2.0x faster at 1 row, 1.6x at 2,
/// 1.2x at 4, +3% at 8, equal at 16, 5% slower at 64, where each weight load
/// serves 6-12 rows and the conversion costs more than the bytes it saves).
const HALF_MAX_ROWS: usize = 16;

/// Whether the AVX-512 dense kernel may read binary16 weights (`Mat::panels16`)
/// where a matrix has them: yes unless `MMZ_NEURAL_F32` is set (an A/B switch;
/// the results are the same bits either way).
fn half_weights() -> bool {
    static HALF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HALF.get_or_init(|| std::env::var_os("MMZ_NEURAL_F32").is_none())
}

/// The CPU converts binary16 (F16C), detected once.
#[cfg(target_arch = "x86_64")]
fn f16c() -> bool {
    static F16C: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *F16C.get_or_init(|| std::is_x86_feature_detected!("f16c"))
}

/// Which build of the (bit-identical) engine is used: "avx512", "avx2" or "portable".
pub fn simd_path() -> &'static str {
    match simd() {
        Simd::Avx512 => "avx512",
        Simd::Avx2 => "avx2",
        Simd::Portable => "portable",
    }
}

/// `y = x · m` for `rows = x.len() / m.n_in` rows (y overwritten). With
/// `SKIP_ZERO`, exactly-zero inputs are skipped (adds of ±0 only change the
/// sign of an all-zero sum); with all-finite weights that is the same as not
/// skipping, so the dense kernel runs.
fn mm_k<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32]) {
    debug_assert_eq!(x.len() / m.n_in * m.n_out, y.len());
    // Few rows: read the binary16 copies where the matrix has them (same values).
    #[cfg(target_arch = "x86_64")]
    let half = x.len() <= HALF_MAX_ROWS * m.n_in && half_weights();
    if SKIP_ZERO && m.finite {
        #[cfg(target_arch = "x86_64")]
        if simd() == Simd::Avx512 {
            // SAFETY: the CPU supports AVX-512F (checked by `simd`); the weights are finite.
            return unsafe { avx512::mm_sparse(x, m, y, half) };
        }
        return mm_k::<false>(x, m, y);
    }
    match simd() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512F (checked by `simd`).
        Simd::Avx512 => unsafe { avx512::mm::<SKIP_ZERO>(x, m, y, half) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (checked by `simd`), F16C for `mm_half`
        // (checked by `f16c`), and `y` holds rows x n_out values.
        Simd::Avx2 => unsafe {
            if half && f16c() {
                avx2::mm_half::<SKIP_ZERO>(x, m, y)
            } else {
                avx2::mm::<SKIP_ZERO>(x, m, y)
            }
        },
        _ => mm_body::<SKIP_ZERO>(x, m, y),
    }
}

/// A zeroed `f32` scratch vector taken from a per-thread pool and returned to
/// it on drop, so a step neither allocates nor page-faults fresh memory for
/// each of its intermediates.
struct Buf(Vec<f32>);

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn buf(len: usize) -> Buf {
    let mut v = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_default();
    v.clear();
    v.resize(len, 0.0);
    Buf(v)
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 256 {
                p.push(v);
            }
        });
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Buf {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

/// Like [`buf`] but with unspecified (stale, finite-or-not) contents, for
/// outputs that are completely overwritten.
fn buf_dirty(len: usize) -> Buf {
    let mut v = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    Buf(v)
}

fn mm(x: &[f32], m: &Mat) -> Buf {
    // Every kernel writes all outputs (the portable one zero-fills first).
    let mut y = buf_dirty(x.len() / m.n_in * m.n_out);
    mm_k::<false>(x, m, &mut y);
    y
}

/// `out[c] = Σ_{j < n} term` for `c < count` (`term` an expression of `c`
/// and `j`), each sum sequential in `j` from `0f32`; eight sums are
/// interleaved (independent dependency chains). A macro rather than a closure
/// so that the body is always compiled inside the caller's SIMD build.
macro_rules! chunk_sums {
    ($count:expr, $n:expr, $out:expr, |$c:ident, $j:ident| $term:expr) => {{
        const G: usize = 8;
        let (count, n): (usize, usize) = ($count, $n);
        let out: &mut [f32] = $out;
        let mut c0 = 0;
        while c0 + G <= count {
            let mut acc = [0f32; G];
            for $j in 0..n {
                for (g, a) in acc.iter_mut().enumerate() {
                    let $c = c0 + g;
                    *a += $term;
                }
            }
            out[c0..c0 + G].copy_from_slice(&acc);
            c0 += G;
        }
        for $c in c0..count {
            let mut a = 0f32;
            for $j in 0..n {
                a += $term;
            }
            out[$c] = a;
        }
    }};
}

/// `out[i] = f(a[i], p[i % d])` for row-major `[rows, d]` data `a` and a
/// per-channel vector `p` of length `d` (a macro: see [`chunk_sums`]).
macro_rules! per_channel {
    ($a:expr, $p:expr, $out:expr, |$av:ident, $pv:ident| $f:expr) => {{
        let (a, p, out): (&[f32], &[f32], &mut [f32]) = ($a, $p, $out);
        let d = p.len();
        for (ar, or) in a.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            for ((o, &$av), &$pv) in or.iter_mut().zip(ar).zip(p) {
                *o = $f;
            }
        }
    }};
}

/// Normalises every `n`-chunk of `x` (a row for LayerNorm, a head for the
/// GroupNorm): `μ = Σ v / n`, `s² = Σ (v − μ)² / n` (sums in index order),
/// `out = (v − μ) · (1 / sqrt(s² + eps)) · w + b`, with `w`/`b` of length
/// `period` indexed by the element's position modulo `period`.
#[inline(always)]
fn norm_chunks(x: &[f32], n: usize, w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let count = x.len() / n;
    let period = w.len();
    let nf = n as f32;
    let mut mu = buf_dirty(count);
    chunk_sums!(count, n, &mut mu, |c, j| x[c * n + j]);
    for m in mu.iter_mut() {
        *m /= nf;
    }
    let mut q = buf_dirty(count);
    chunk_sums!(count, n, &mut q, |c, j| {
        let t = x[c * n + j] - mu[c];
        t * t
    });
    for (c, (xc, oc)) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)).enumerate() {
        let (m, inv) = (mu[c], 1.0 / (q[c] / nf + eps).sqrt());
        let p0 = (c * n) % period;
        for (((o, &v), &wi), &bi) in oc.iter_mut().zip(xc).zip(&w[p0..p0 + n]).zip(&b[p0..p0 + n]) {
            *o = (v - m) * inv * wi + bi;
        }
    }
}

#[inline(always)]
fn ln_rows(x: &[f32], wb: &(Vec<f32>, Vec<f32>), d: usize) -> Buf {
    let mut out = buf_dirty(x.len());
    norm_chunks(x, d, &wb.0, &wb.1, LN_EPS, &mut out);
    out
}

/// Router gates `[R, E]`: softmax, top-k by probability (ties: lower index),
/// renormalised over the selected experts; 0 elsewhere.
#[inline(always)]
fn route(x: &[f32], r: &Router, mods: &[usize], top_k: usize) -> Buf {
    let e = r.w.n_out;
    #[cfg(target_arch = "x86_64")]
    if simd() == Simd::Avx512 {
        let mut g = buf_dirty(x.len() / r.w.n_in * e);
        // SAFETY: the CPU supports AVX-512F (checked by `simd`).
        if unsafe { avx512::route(x, r, mods, top_k, &mut g) } {
            return g;
        }
    }
    route_scalar(x, r, mods, top_k)
}

/// [`route`] one row at a time (every build; the reference for the lane form).
#[inline(always)]
fn route_scalar(x: &[f32], r: &Router, mods: &[usize], top_k: usize) -> Buf {
    let e = r.w.n_out;
    let mut z = mm(x, &r.w);
    for (zr, &m) in z.chunks_exact_mut(e).zip(mods) {
        let bias = &r.mod_bias[m * e..(m + 1) * e];
        for (zi, &bi) in zr.iter_mut().zip(bias) {
            *zi += bi;
        }
        let mut mx = f32::NEG_INFINITY;
        for &v in zr.iter() {
            if v > mx {
                mx = v;
            }
        }
        let mut s = 0f32;
        for v in zr.iter_mut() {
            *v = math::exp(*v - mx);
            s += *v;
        }
        for v in zr.iter_mut() {
            *v /= s;
        }
        let mut sel = [false; 64];
        for _ in 0..top_k {
            let mut best = usize::MAX;
            for (i, &p) in zr.iter().enumerate() {
                if !sel[i] && (best == usize::MAX || p > zr[best]) {
                    best = i;
                }
            }
            if best < e {
                sel[best] = true;
            }
        }
        let mut tot = 0f32;
        for (i, &p) in zr.iter().enumerate() {
            if sel[i] {
                tot += p;
            }
        }
        for (i, v) in zr.iter_mut().enumerate() {
            *v = if sel[i] { *v / tot } else { 0.0 };
        }
    }
    z
}

/// `Σ_{e selected} g_e · f_e(x_row)` per row, experts in ascending order.
#[inline(always)]
fn moe<F: Fn(usize, &[f32]) -> Buf>(x: &[f32], n_in: usize, gates: &[f32], n_e: usize, n_out: usize, f: F) -> Buf {
    let rows = x.len() / n_in;
    let mut acc = buf(rows * n_out);
    for e in 0..n_e {
        let idx: Vec<usize> = (0..rows).filter(|&r| gates[r * n_e + e] > 0.0).collect();
        if idx.is_empty() {
            continue;
        }
        let mut xs = buf_dirty(idx.len() * n_in);
        for (xr, &r) in xs.chunks_exact_mut(n_in).zip(&idx) {
            xr.copy_from_slice(&x[r * n_in..(r + 1) * n_in]);
        }
        let ys = f(e, &xs);
        for (k, &r) in idx.iter().enumerate() {
            let g = gates[r * n_e + e];
            for (a, &y) in acc[r * n_out..(r + 1) * n_out].iter_mut().zip(&ys[k * n_out..(k + 1) * n_out]) {
                *a += g * y;
            }
        }
    }
    acc
}

/// Per-head vectors of the WKV update (each `head_size` long).
struct WkvHead<'a> {
    kk: &'a [f32],
    a: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    r: &'a [f32],
    decay: &'a [f32],
}

/// WKV update of one head's state `s` (`[j][i]`, key-major, `n × n`):
/// `sa = Σ_j s[j] · (−kk[j])`, then per `j` in order
/// `s[j] = s[j]·decay[j] + sa·(kk[j]·a[j]) + v·k[j]` and `y += s[j]·r[j]`
/// (`y` overwritten). `sa` is scratch of `n` floats.
#[inline(always)]
fn wkv_head(s: &mut [f32], hv: &WkvHead<'_>, yh: &mut [f32], sa: &mut [f32]) {
    let n = hv.kk.len();
    sa.fill(0.0);
    yh.fill(0.0);
    for (j, sj) in s.chunks_exact(n).enumerate() {
        let alpha = -hv.kk[j];
        for (q, &sv) in sa.iter_mut().zip(sj) {
            *q += sv * alpha;
        }
    }
    for (j, sj) in s.chunks_exact_mut(n).enumerate() {
        let (dj, bj, kj, rj) = (hv.decay[j], hv.kk[j] * hv.a[j], hv.k[j], hv.r[j]);
        for (((sv, &q), &vi), yi) in sj.iter_mut().zip(sa.iter()).zip(hv.v).zip(yh.iter_mut()) {
            *sv = *sv * dj + q * bj + vi * kj;
            *yi += *sv * rj;
        }
    }
}

/// The per-channel decay `exp(−exp(−softplus(−(w0 + t)) − 0.5))`.
#[inline(always)]
fn decay_of(tv: f32, w0: f32) -> f32 {
    let z = w0 + tv;
    let w_raw = -math::softplus(-z) - 0.5;
    math::exp(-math::exp(w_raw))
}

/// The value residual `v + (f − v) · sigmoid(b0 + z)`.
#[inline(always)]
fn v_mix(v: f32, f: f32, z: f32, b0: f32) -> f32 {
    v + (f - v) * math::sigmoid(b0 + z)
}

/// Zero state of one stream.
pub fn zero_state(model: &Model) -> Vec<f32> {
    vec![0f32; model.cfg.state_len()]
}

/// One step for `tokens.len()` rows. `states[r]` is row `r`'s state (updated in
/// place); `mods[r]` its modality; `logits` receives `R × max_slice` values
/// (`-inf` past the row's slice size).
pub fn step(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    match simd() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports these AVX-512 subsets (checked by `simd`); the body is safe code.
        Simd::Avx512 => unsafe { step_avx512(model, states, tokens, mods, logits) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (checked by `simd`); the body is safe code.
        Simd::Avx2 => unsafe { step_avx2(model, states, tokens, mods, logits) },
        _ => step_body(model, states, tokens, mods, logits),
    }
}

/// [`step_body`] compiled for AVX2: the element-wise loops vectorise 8-wide
/// with the same IEEE operations (no FMA is enabled, and Rust never contracts
/// a multiply and an add), so the results are bit-identical to the portable build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn step_avx2(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    step_body(model, states, tokens, mods, logits)
}

/// [`step_body`] compiled for AVX-512 (16 lanes; the branch-free `math`
/// functions vectorise too). Rust never contracts `a * b + c` into an FMA, so
/// every lane performs the portable operation sequence.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
unsafe fn step_avx512(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    step_body(model, states, tokens, mods, logits)
}

#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn step_body(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    let c = &model.cfg;
    let (d, nh, n) = (c.d, c.n_head(), c.head_size);
    let rows = tokens.len();
    let ms = c.max_slice();
    if states.len() != rows || mods.len() != rows || logits.len() != rows * ms {
        return Err(MmzError::InvalidArgument("neural step: inconsistent row counts".into()));
    }
    if let Some(s) = states.iter().find(|s| s.len() != c.state_len()) {
        return Err(MmzError::InvalidArgument(format!("neural step: state of {} floats, expected {}", s.len(), c.state_len())));
    }
    if mods.iter().any(|&m| m >= c.n_mod) || tokens.iter().any(|&t| t as usize >= c.vocab_size) {
        return Err(MmzError::InvalidArgument("neural step: token or modality out of range".into()));
    }
    let lsl = c.layer_state_len();
    let rd = rows * d;
    let chunks = rows * nh; // (row, head) pairs
    let mut x = buf_dirty(rd);
    for (xr, &t) in x.chunks_exact_mut(d).zip(tokens) {
        xr.copy_from_slice(&model.emb[t as usize * d..(t as usize + 1) * d]);
    }
    let mut x = ln_rows(&x, &model.ln0, d);
    let mut v_first = buf(rd);
    let mut xs: [Buf; 6] = std::array::from_fn(|_| buf_dirty(rd));
    let mut decay = buf_dirty(rd);
    let mut a = buf_dirty(rd);
    let mut kk = buf_dirty(rd);
    let mut y = buf_dirty(rd);
    let mut ygn = buf_dirty(rd);
    let mut xkf = buf_dirty(rd);
    let mut nrm = buf_dirty(chunks);
    let mut cb = buf_dirty(chunks);
    let mut sa = buf_dirty(n);
    let wkv512 = simd() == Simd::Avx512;
    // Explicit 16-lane transcendentals (the compiler keeps the scalar forms scalar).
    let v512 = cfg!(target_arch = "x86_64") && wkv512;
    for (l, ly) in model.layers.iter().enumerate() {
        let base = l * lsl;
        let u = ln_rows(&x, &ly.ln1, d);
        // ---- time mix (SPEC §3.1)
        for (out, mk) in xs.iter_mut().zip(&ly.x_mix) {
            for r in 0..rows {
                let xp = &states[r][base..base + d];
                let ur = &u[r * d..(r + 1) * d];
                for (((o, &p), &uv), &mv) in out[r * d..(r + 1) * d].iter_mut().zip(xp).zip(ur).zip(mk) {
                    *o = uv + (p - uv) * mv;
                }
            }
        }
        let [xr, xw, xk, xv, xa, xg] = &xs;
        let rr = mm(xr, &ly.receptance);
        let mut t1 = mm(xw, &ly.w1);
        if v512 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is supported (`v512`).
            unsafe {
                avx512::tanh_inplace(&mut t1)
            };
        } else {
            for v in t1.iter_mut() {
                *v = math::tanh(*v);
            }
        }
        let t2 = mm(&t1, &ly.w2);
        if v512 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above; t2 and decay hold `rows` rows of d.
            unsafe {
                avx512::decay(&t2, &ly.w0, &mut decay)
            };
        } else {
            per_channel!(&t2, &ly.w0, &mut decay, |tv, w0| decay_of(tv, w0));
        }
        let mut k = mm(xk, &ly.key);
        let mut v = match &ly.v_router {
            Some(rt) => {
                let gates = route(&u, rt, mods, c.top_k);
                moe(xv, d, &gates, ly.value.len(), d, |e, xs| mm(xs, &ly.value[e]))
            }
            None => mm(xv, &ly.value[0]),
        };
        match &ly.v_res {
            None => v_first.copy_from_slice(&v),
            Some((v0, v1, v2)) => {
                let z = mm(&mm(xv, v1), v2);
                if v512 {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512F is supported (`v512`); v, v_first and z hold `rows` rows of d.
                    unsafe {
                        avx512::v_residual(&mut v, &v_first, &z, v0)
                    };
                } else {
                    for ((vr, fr), zr) in v.chunks_exact_mut(d).zip(v_first.chunks_exact(d)).zip(z.chunks_exact(d)) {
                        for (((vv, &f), &zv), &b0) in vr.iter_mut().zip(fr).zip(zr).zip(v0) {
                            *vv = v_mix(*vv, f, zv, b0);
                        }
                    }
                }
            }
        }
        let za = mm(&mm(xa, &ly.a1), &ly.a2);
        let mut g1 = mm(xg, &ly.g1);
        if v512 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is supported (`v512`); za and a hold `rows` rows of d.
            unsafe {
                avx512::sigmoid_bias(&za, &ly.a0, &mut a);
                avx512::sigmoid_inplace(&mut g1);
            }
        } else {
            per_channel!(&za, &ly.a0, &mut a, |z, a0| math::sigmoid(a0 + z));
            for v in g1.iter_mut() {
                *v = math::sigmoid(*v);
            }
        }
        let g = mm(&g1, &ly.g2);
        per_channel!(&k, &ly.k_k, &mut kk, |kv, kkw| kv * kkw);
        chunk_sums!(chunks, n, &mut nrm, |ch, j| {
            let q = kk[ch * n + j];
            q * q
        });
        for (hv, &s) in kk.chunks_exact_mut(n).zip(&nrm) {
            let nr = s.sqrt().max(1e-12);
            for q in hv.iter_mut() {
                *q /= nr;
            }
        }
        for ((kr, ar), ka) in k.chunks_exact_mut(d).zip(a.chunks_exact(d)).zip(std::iter::repeat(&ly.k_a)) {
            for ((kv, &av), &kav) in kr.iter_mut().zip(ar).zip(ka) {
                *kv *= 1.0 + (av - 1.0) * kav;
            }
        }
        // WKV state update per (row, head); y = S' r.
        let fast_wkv = wkv512 && n % 16 == 0 && n <= 64;
        for r in 0..rows {
            for h in 0..nh {
                let o = r * d + h * n;
                // The next (row, head) state is prefetched into L1 while this one is updated, the one
                // four ahead into L2 (the states come from L3: B × 128 KB per step).
                let ahead = |q: usize| {
                    states.get(q / nh).map_or(std::ptr::null(), |sn| sn[base + d + (q % nh) * n * n..].as_ptr())
                };
                let next = [ahead(r * nh + h + 1), ahead(r * nh + h + 4)];
                let s = &mut states[r][base + d + h * n * n..base + d + (h + 1) * n * n]; // [j][i]: key-major
                let hv = WkvHead {
                    kk: &kk[o..o + n],
                    a: &a[o..o + n],
                    k: &k[o..o + n],
                    v: &v[o..o + n],
                    r: &rr[o..o + n],
                    decay: &decay[o..o + n],
                };
                let yh = &mut y[o..o + n];
                #[cfg(target_arch = "x86_64")]
                if fast_wkv {
                    // SAFETY: AVX-512F is supported (`wkv512`); `s` holds n × n and
                    // the vectors n floats with n a multiple of 16 and at most 64.
                    unsafe { avx512::wkv_head(s, &hv, yh, next) };
                    continue;
                }
                let _ = (fast_wkv, next);
                wkv_head(s, &hv, yh, &mut sa[..]);
            }
        }
        // GroupNorm of each head, then the r·k bonus and the gate.
        norm_chunks(&y, n, &ly.ln_x.0, &ly.ln_x.1, LN_X_EPS, &mut ygn);
        chunk_sums!(chunks, n, &mut cb, |ch, j| {
            let q = ch * n + j;
            rr[q] * k[q] * ly.r_k[(ch % nh) * n + j]
        });
        for (ch, (yc, (tc, vc))) in y.chunks_exact_mut(n).zip(ygn.chunks_exact(n).zip(v.chunks_exact(n))).enumerate() {
            let cbv = cb[ch];
            let gc = &g[ch * n..(ch + 1) * n];
            for (((yi, &ti), &vi), &gi) in yc.iter_mut().zip(tc).zip(vc).zip(gc) {
                *yi = (ti + cbv * vi) * gi;
            }
        }
        let mut att = mm(&y, &ly.output);
        if let Some(fw) = &ly.fade {
            let kf = c.fade_kernel;
            let hb = base + 2 * d + d * n;
            let mut sg = mm(&u, &fw.gate);
            let mut mix = buf(rd);
            for r in 0..rows {
                let hist = &states[r][hb..hb + (kf - 1) * d];
                for i in 0..d {
                    let mut local = u[r * d + i] * fw.conv[i];
                    for j in 1..kf {
                        local += hist[(j - 1) * d + i] * fw.conv[j * d + i];
                    }
                    let q = r * d + i;
                    let s = math::sigmoid(sg[q] + fw.gate_b[i]);
                    sg[q] = s;
                    mix[q] = s * att[q] + (1.0 - s) * local;
                }
            }
            let hu = mm(&mix, &fw.ref_u);
            let hv = mm(&mix, &fw.ref_v);
            let mut prod = buf(hu.len());
            for ((o, &p), &q) in prod.iter_mut().zip(hu.iter()).zip(hv.iter()) {
                *o = p * math::sigmoid(q);
            }
            let refined = mm(&prod, &fw.ref_o);
            for (o, (&m, &rf)) in att.iter_mut().zip(mix.iter().zip(&refined)) {
                *o = m + rf;
            }
            for r in 0..rows {
                let hist = &mut states[r][hb..hb + (kf - 1) * d];
                hist.copy_within(0..(kf - 2) * d, d);
                hist[..d].copy_from_slice(&u[r * d..(r + 1) * d]);
            }
        }
        for (xv_, &av) in x.iter_mut().zip(&att) {
            *xv_ += av;
        }
        // ---- channel mix (SPEC §3.2)
        let f = ln_rows(&x, &ly.ln2, d);
        let fb = base + d + d * n;
        for r in 0..rows {
            let xp = &states[r][fb..fb + d];
            let (fr, xr_) = (&f[r * d..(r + 1) * d], &mut xkf[r * d..(r + 1) * d]);
            for (((o, &fi), &p), &mk) in xr_.iter_mut().zip(fr).zip(xp).zip(&ly.ffn_x_k) {
                *o = fi + (p - fi) * mk;
            }
        }
        let expert = |e: usize, xs: &[f32]| {
            let mut h = mm(xs, &ly.ffn_key[e]);
            for q in h.iter_mut() {
                let t = if *q > 0.0 { *q } else { 0.0 };
                *q = t * t;
            }
            let mut out = buf_dirty(xs.len() / d * d);
            mm_k::<true>(&h, &ly.ffn_value[e], &mut out);
            out
        };
        let ffn = match &ly.ffn_router {
            Some(rt) => {
                let gates = route(&f, rt, mods, c.top_k);
                moe(&xkf, d, &gates, ly.ffn_key.len(), d, expert)
            }
            None => expert(0, &xkf),
        };
        for (xv_, &fv) in x.iter_mut().zip(&ffn) {
            *xv_ += fv;
        }
        for r in 0..rows {
            states[r][base..base + d].copy_from_slice(&u[r * d..(r + 1) * d]);
            states[r][fb..fb + d].copy_from_slice(&f[r * d..(r + 1) * d]);
        }
    }
    let hfin = ln_rows(&x, &model.ln_out, d);
    for m in 0..c.n_mod {
        let idx: Vec<usize> = (0..rows).filter(|&r| mods[r] == m).collect();
        if idx.is_empty() {
            continue;
        }
        let head = &model.heads[m];
        let lg = if idx.len() == rows {
            mm(&hfin, head)
        } else {
            let mut hs = buf_dirty(idx.len() * d);
            for (hr, &r) in hs.chunks_exact_mut(d).zip(&idx) {
                hr.copy_from_slice(&hfin[r * d..(r + 1) * d]);
            }
            mm(&hs, head)
        };
        for (q, &r) in idx.iter().enumerate() {
            let row = &mut logits[r * ms..(r + 1) * ms];
            row[..head.n_out].copy_from_slice(&lg[q * head.n_out..(q + 1) * head.n_out]);
            row[head.n_out..].fill(f32::NEG_INFINITY);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Deterministic test values in [-0.5, 0.5) from a 32-bit LCG.
    #[cfg(target_arch = "x86_64")]
    fn lcg_uniform(seed: u32) -> impl FnMut() -> f32 {
        let mut st = seed;
        move || {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (st >> 8) as f32 / (1 << 24) as f32 - 0.5
        }
    }

    /// The AVX-512 WKV head update equals the portable one bit for bit (state,
    /// output) for every supported head size, over several chained updates.
    #[test]
    fn wkv_avx512_equals_portable() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::is_x86_feature_detected!("avx512f") {
                return;
            }
            let mut rnd = lcg_uniform(0x9e37_79b9);
            for n in [16usize, 32, 48, 64] {
                let mut s_ref: Vec<f32> = (0..n * n).map(|_| rnd()).collect();
                let mut s_simd = s_ref.clone();
                let next: Vec<f32> = vec![1.0; n * n];
                for step in 0..4 {
                    let vecs: Vec<Vec<f32>> = (0..6).map(|_| (0..n).map(|_| rnd()).collect()).collect();
                    let decay: Vec<f32> = vecs[5].iter().map(|v| 0.5 + v).collect();
                    let hv = WkvHead { kk: &vecs[0], a: &vecs[1], k: &vecs[2], v: &vecs[3], r: &vecs[4], decay: &decay };
                    let (mut y_ref, mut y_simd, mut sa) = (vec![9f32; n], vec![9f32; n], vec![0f32; n]);
                    wkv_head(&mut s_ref, &hv, &mut y_ref, &mut sa);
                    let nx = if step % 2 == 0 { [next.as_ptr(), next[n..].as_ptr()] } else { [std::ptr::null(); 2] };
                    // SAFETY: AVX-512F checked above; all slices hold n (state n × n) floats.
                    unsafe { avx512::wkv_head(&mut s_simd, &hv, &mut y_simd, nx) };
                    assert_eq!(bits(&y_ref), bits(&y_simd), "wkv y n={n} step {step}");
                    assert_eq!(bits(&s_ref), bits(&s_simd), "wkv state n={n} step {step}");
                }
            }
        }
    }

    /// The AVX-512 router (rows in lanes) equals the scalar one bit for bit for
    /// 1–8 experts, every top-k, all 16-row remainders, several modalities,
    /// ties (duplicate expert columns) and a NaN logit.
    #[test]
    fn route_avx512_equals_scalar() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::is_x86_feature_detected!("avx512f") {
                return;
            }
            let mut rnd = lcg_uniform(0x5eed_1234);
            let ni = 40;
            for e in 1usize..=8 {
                let mut w: Vec<f32> = (0..ni * e).map(|_| rnd() * 3.0).collect();
                if e >= 3 {
                    for i in 0..ni {
                        w[i * e + 2] = w[i * e];
                    }
                }
                let n_mod = 3;
                let mod_bias: Vec<f32> = (0..n_mod * e).map(|q| if q % 4 == 1 { 0.0 } else { rnd() }).collect();
                let rt = Router { w: Mat::new(w, ni, e), mod_bias };
                for rows in [1usize, 7, 16, 17, 33] {
                    let mut x: Vec<f32> = (0..rows * ni).map(|_| rnd()).collect();
                    if rows > 7 {
                        x[5 * ni + 3] = f32::NAN;
                        x[6 * ni..7 * ni].fill(0.0);
                    }
                    let mods: Vec<usize> = (0..rows).map(|r| r % n_mod).collect();
                    for top_k in 1..=e + 1 {
                        let want = route_scalar(&x, &rt, &mods, top_k);
                        let mut got = vec![7f32; rows * e];
                        // SAFETY: AVX-512F checked above.
                        assert!(unsafe { avx512::route(&x, &rt, &mods, top_k, &mut got) });
                        assert_eq!(bits(&got), bits(&want), "route e={e} rows={rows} top_k={top_k}");
                    }
                }
            }
        }
    }

    /// The zero-skipping AVX-512 kernel equals the portable loop (with and
    /// without skipping) on ReLU-like inputs: whole zero columns, ±0, and
    /// non-finite inputs, for all row-block remainders.
    #[test]
    fn sparse_kernel_equals_portable() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::is_x86_feature_detected!("avx512f") {
                return;
            }
            let mut u = lcg_uniform(0x0bad_cafe);
            let mut rnd = move || u() * 4.0;
            for &(ni, no) in &[(256usize, 128usize), (37, 53), (64, 48), (20, 36), (256, 4)] {
                let w: Vec<f32> = (0..ni * no).map(|_| rnd()).collect();
                let m = Mat::new(w, ni, no);
                for rows in [1usize, 3, 12, 13, 16, 31] {
                    let mut x: Vec<f32> = (0..rows * ni)
                        .map(|q| {
                            let v = rnd();
                            if q % ni % 5 != 0 || v < 0.0 {
                                0.0
                            } else {
                                v * v
                            }
                        })
                        .collect();
                    x[rows * ni / 2] = -0.0;
                    if rows > 3 {
                        x[ni + 1] = f32::NAN;
                        x[2 * ni + 2] = f32::INFINITY;
                    }
                    let (mut want, mut want_dense, mut got) = (vec![0f32; rows * no], vec![0f32; rows * no], vec![7f32; rows * no]);
                    mm_body::<true>(&x, &m, &mut want);
                    mm_body::<false>(&x, &m, &mut want_dense);
                    // SAFETY: AVX-512F checked above.
                    unsafe { avx512::mm_sparse(&x, &m, &mut got, false) };
                    assert_eq!(bits(&got), bits(&want), "sparse {ni}x{no} rows {rows}");
                    assert_eq!(bits(&got), bits(&want_dense), "sparse vs dense {ni}x{no} rows {rows}");
                }
            }
        }
    }

    /// Every SIMD matrix kernel equals the portable loop bit for bit, for shapes
    /// that exercise full panels, the 16-wide panel, the scalar tail and every
    /// row-block remainder, with zero inputs (skip path) and non-finite weights.
    #[test]
    fn kernels_equal_portable() {
        let mut st = 0x1234_5678u32;
        let mut rnd = move || {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((st >> 8) as f32 / (1 << 24) as f32 - 0.5) * 4.0
        };
        for &(ni, no) in &[(128usize, 128usize), (16, 128), (128, 16), (128, 4), (37, 53), (64, 48), (5, 256), (128, 36), (128, 512)] {
            for (poison, half) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut w: Vec<f32> = (0..ni * no).map(|_| rnd()).collect();
                if half {
                    // binary16 values: multiples of 2^-10 in [-2, 2], a subnormal, a -0.
                    for v in w.iter_mut() {
                        *v = (*v * 1024.0).round() / 1024.0;
                    }
                    w[1] = 3.0 * f32::from_bits(0x3380_0000);
                    w[2] = -0.0;
                }
                if poison {
                    w[ni * no / 2] = f32::INFINITY;
                }
                let m = Mat::new(w, ni, no);
                assert_eq!(m.finite, !poison);
                assert_eq!(m.panels16.len(), if half { m.panels.len() } else { 0 }, "{ni}x{no} half {half}");
                assert_eq!(m.w16.len(), if half { m.w.len() } else { 0 }, "{ni}x{no} half {half}");
                for rows in [1usize, 2, 5, 11, 12, 13, 25, 64] {
                    let x: Vec<f32> = (0..rows * ni).map(|i| if i % 3 == 0 { 0.0 } else { rnd() }).collect();
                    let mut want = vec![0f32; rows * no];
                    let mut want_skip = vec![0f32; rows * no];
                    mm_body::<false>(&x, &m, &mut want);
                    mm_body::<true>(&x, &m, &mut want_skip);
                    if !poison {
                        assert_eq!(bits(&want), bits(&want_skip), "skip == dense for finite weights");
                    }
                    #[cfg(target_arch = "x86_64")]
                    {
                        let mut got = vec![0f32; rows * no];
                        if std::is_x86_feature_detected!("avx2") {
                            // SAFETY: AVX2 checked just above.
                            unsafe { avx2::mm::<false>(&x, &m, &mut got) };
                            assert_eq!(bits(&got), bits(&want), "avx2 {ni}x{no} rows {rows}");
                            // SAFETY: as above.
                            unsafe { avx2::mm::<true>(&x, &m, &mut got) };
                            assert_eq!(bits(&got), bits(&want_skip), "avx2 skip {ni}x{no} rows {rows}");
                            if std::is_x86_feature_detected!("f16c") {
                                // SAFETY: AVX2 and F16C checked.
                                unsafe { avx2::mm_half::<false>(&x, &m, &mut got) };
                                assert_eq!(bits(&got), bits(&want), "avx2 half {ni}x{no} rows {rows} half {half}");
                                // SAFETY: as above.
                                unsafe { avx2::mm_half::<true>(&x, &m, &mut got) };
                                assert_eq!(bits(&got), bits(&want_skip), "avx2 half skip {ni}x{no} rows {rows} half {half}");
                            }
                        }
                        if std::is_x86_feature_detected!("avx512f") {
                            // SAFETY: AVX-512F checked just above.
                            for hw in [false, true] {
                                // SAFETY: as above.
                                unsafe { avx512::mm_sparse(&x, &m, &mut got, hw) };
                                assert_eq!(bits(&got), bits(&want_skip), "avx512 sparse {ni}x{no} rows {rows} half {half}/{hw}");
                            }
                            for hw in [false, true] {
                                // SAFETY: as above.
                                unsafe { avx512::mm::<false>(&x, &m, &mut got, hw) };
                                assert_eq!(bits(&got), bits(&want), "avx512 {ni}x{no} rows {rows} half {half}/{hw}");
                                // SAFETY: as above.
                                unsafe { avx512::mm::<true>(&x, &m, &mut got, hw) };
                                assert_eq!(bits(&got), bits(&want_skip), "avx512 skip {ni}x{no} rows {rows} half {half}/{hw}");
                            }
                        }
                    }
                    let mut got = vec![0f32; rows * no];
                    mm_k::<true>(&x, &m, &mut got);
                    assert_eq!(bits(&got), bits(&want_skip), "dispatched skip {ni}x{no} rows {rows}");
                }
            }
        }
    }
}
