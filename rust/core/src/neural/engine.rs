//! One recurrent step of the RWKV-MoE predictor (SPEC.md §3) for a group of
//! independent streams ("rows").
//!
//! Determinism contract: every output element of every row is computed by the
//! same sequence of IEEE binary32 operations whatever the group size, the
//! other rows, the thread count or the CPU:
//!
//! * matrix products accumulate `y[o] += x[i] * w[i][o]` for `i = 0, 1, …` in
//!   order (separate multiply and add; Rust never contracts to FMA); the loop
//!   is vectorised across output channels `o`, which keeps each element's
//!   summation order, and the AVX2 and portable paths are the same code;
//! * reductions (norm statistics, router sums, WKV dot products) run
//!   sequentially in index order;
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

    #[inline(always)]
    unsafe fn block<const R: usize, const SKIP_ZERO: bool>(x: &[f32], ni: usize, w: &[f32], no: usize, o: usize, y: &mut [f32]) {
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        let wp = w.as_ptr().add(o);
        let xp = x.as_ptr();
        for i in 0..ni {
            let w0 = _mm256_loadu_ps(wp.add(i * no));
            let w1 = _mm256_loadu_ps(wp.add(i * no + 8));
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
        let (ni, no) = (m.n_in, m.n_out);
        let rows = x.len() / ni;
        if m.w.len() < ni * no || y.len() < rows * no {
            return super::mm_body::<SKIP_ZERO>(x, m, y);
        }
        let full = no - no % 16;
        for o in (0..full).step_by(16) {
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(ROWS);
                let (xs, ys) = (&x[r0 * ni..(r0 + nr) * ni], &mut y[r0 * no..(r0 + nr) * no]);
                match nr {
                    6 => block::<6, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
                    5 => block::<5, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
                    4 => block::<4, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
                    3 => block::<3, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
                    2 => block::<2, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
                    _ => block::<1, SKIP_ZERO>(xs, ni, &m.w, no, o, ys),
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

/// Whether the AVX2 build of the (bit-identical) matrix kernel is used.
pub fn simd_path() -> &'static str {
    static PATH: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::env::var_os("MMZ_NEURAL_PORTABLE").is_none() {
            return "avx2";
        }
        "portable"
    })
}

/// `y = x · m` for `rows = x.len() / m.n_in` rows (y overwritten). With
/// `SKIP_ZERO`, exactly-zero inputs are skipped (adds of ±0 only change the
/// sign of an all-zero sum).
fn mm_k<const SKIP_ZERO: bool>(x: &[f32], m: &Mat, y: &mut [f32]) {
    debug_assert_eq!(x.len() / m.n_in * m.n_out, y.len());
    #[cfg(target_arch = "x86_64")]
    if simd_path() == "avx2" {
        // SAFETY: the CPU supports AVX2 (checked above) and `y` holds rows x n_out values.
        unsafe { avx2::mm::<SKIP_ZERO>(x, m, y) };
        return;
    }
    mm_body::<SKIP_ZERO>(x, m, y)
}

fn mm(x: &[f32], m: &Mat) -> Vec<f32> {
    let mut y = vec![0f32; x.len() / m.n_in * m.n_out];
    mm_k::<false>(x, m, &mut y);
    y
}

fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mut s = 0f32;
    for &v in x {
        s += v;
    }
    let mu = s / n;
    let mut q = 0f32;
    for &v in x {
        let t = v - mu;
        q += t * t;
    }
    let inv = 1.0 / (q / n + eps).sqrt();
    for (((o, &v), &wi), &bi) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (v - mu) * inv * wi + bi;
    }
}

fn ln_rows(x: &[f32], wb: &(Vec<f32>, Vec<f32>), d: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (xr, orow) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        layer_norm(xr, &wb.0, &wb.1, LN_EPS, orow);
    }
    out
}

/// Router gates `[R, E]`: softmax, top-k by probability (ties: lower index),
/// renormalised over the selected experts; 0 elsewhere.
fn route(x: &[f32], r: &Router, mods: &[usize], top_k: usize) -> Vec<f32> {
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
fn moe<F: Fn(usize, &[f32]) -> Vec<f32>>(x: &[f32], n_in: usize, gates: &[f32], n_e: usize, n_out: usize, f: F) -> Vec<f32> {
    let rows = x.len() / n_in;
    let mut acc = vec![0f32; rows * n_out];
    for e in 0..n_e {
        let idx: Vec<usize> = (0..rows).filter(|&r| gates[r * n_e + e] > 0.0).collect();
        if idx.is_empty() {
            continue;
        }
        let mut xs = Vec::with_capacity(idx.len() * n_in);
        for &r in &idx {
            xs.extend_from_slice(&x[r * n_in..(r + 1) * n_in]);
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

/// Zero state of one stream.
pub fn zero_state(model: &Model) -> Vec<f32> {
    vec![0f32; model.cfg.state_len()]
}

/// One step for `tokens.len()` rows. `states[r]` is row `r`'s state (updated in
/// place); `mods[r]` its modality; `logits` receives `R × max_slice` values
/// (`-inf` past the row's slice size).
pub fn step(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if simd_path() == "avx2" {
        // SAFETY: the CPU supports AVX2 (checked by `simd_path`); the body is safe code.
        return unsafe { step_avx2(model, states, tokens, mods, logits) };
    }
    step_body(model, states, tokens, mods, logits)
}

/// [`step_body`] compiled for AVX2: the element-wise loops vectorise 8-wide
/// with the same IEEE operations (no FMA is enabled, and Rust never contracts
/// a multiply and an add), so the results are bit-identical to the portable build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn step_avx2(model: &Model, states: &mut [Vec<f32>], tokens: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
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
    let mut x = vec![0f32; rows * d];
    for (xr, &t) in x.chunks_exact_mut(d).zip(tokens) {
        xr.copy_from_slice(&model.emb[t as usize * d..(t as usize + 1) * d]);
    }
    let mut x = ln_rows(&x, &model.ln0, d);
    let mut v_first = vec![0f32; rows * d];
    for (l, ly) in model.layers.iter().enumerate() {
        let base = l * lsl;
        let u = ln_rows(&x, &ly.ln1, d);
        // ---- time mix (SPEC §3.1)
        let mut xs: [Vec<f32>; 6] = std::array::from_fn(|_| vec![0f32; rows * d]);
        for r in 0..rows {
            let xp = &states[r][base..base + d];
            let ur = &u[r * d..(r + 1) * d];
            for i in 0..d {
                let xx = xp[i] - ur[i];
                for (k, out) in xs.iter_mut().enumerate() {
                    out[r * d + i] = ur[i] + xx * ly.x_mix[k][i];
                }
            }
        }
        let [xr, xw, xk, xv, xa, xg] = &xs;
        let rr = mm(xr, &ly.receptance);
        let mut t1 = mm(xw, &ly.w1);
        t1.iter_mut().for_each(|v| *v = math::tanh(*v));
        let t2 = mm(&t1, &ly.w2);
        let mut decay = vec![0f32; rows * d];
        for (i, (dv, &tv)) in decay.iter_mut().zip(&t2).enumerate() {
            let z = ly.w0[i % d] + tv;
            let w_raw = -math::softplus(-z) - 0.5;
            *dv = math::exp(-math::exp(w_raw));
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
                for (i, vv) in v.iter_mut().enumerate() {
                    *vv = *vv + (v_first[i] - *vv) * math::sigmoid(v0[i % d] + z[i]);
                }
            }
        }
        let za = mm(&mm(xa, &ly.a1), &ly.a2);
        let a: Vec<f32> = za.iter().enumerate().map(|(i, &z)| math::sigmoid(ly.a0[i % d] + z)).collect();
        let mut g1 = mm(xg, &ly.g1);
        g1.iter_mut().for_each(|v| *v = math::sigmoid(*v));
        let g = mm(&g1, &ly.g2);
        let mut kk: Vec<f32> = k.iter().enumerate().map(|(i, &kv)| kv * ly.k_k[i % d]).collect();
        for hv in kk.chunks_exact_mut(n) {
            let mut s = 0f32;
            for &q in hv.iter() {
                s += q * q;
            }
            let nrm = s.sqrt().max(1e-12);
            hv.iter_mut().for_each(|q| *q /= nrm);
        }
        for (i, kv) in k.iter_mut().enumerate() {
            *kv *= 1.0 + (a[i] - 1.0) * ly.k_a[i % d];
        }
        let mut y = vec![0f32; rows * d];
        let mut sa = vec![0f32; n];
        for r in 0..rows {
            let st = &mut states[r][base + d..base + d + d * n];
            for h in 0..nh {
                let o = r * d + h * n;
                let s = &mut st[h * n * n..(h + 1) * n * n]; // [j][i]: key-major
                let (kkh, ah, kh, vh, rh, dh) =
                    (&kk[o..o + n], &a[o..o + n], &k[o..o + n], &v[o..o + n], &rr[o..o + n], &decay[o..o + n]);
                sa.fill(0.0);
                for (j, sj) in s.chunks_exact(n).enumerate() {
                    let alpha = -kkh[j];
                    for (q, &sv) in sa.iter_mut().zip(sj) {
                        *q += sv * alpha;
                    }
                }
                let yh = &mut y[o..o + n];
                for (j, sj) in s.chunks_exact_mut(n).enumerate() {
                    let (dj, bj, kj, rj) = (dh[j], kkh[j] * ah[j], kh[j], rh[j]);
                    for (((sv, &q), &vi), yi) in sj.iter_mut().zip(sa.iter()).zip(vh).zip(yh.iter_mut()) {
                        *sv = *sv * dj + q * bj + vi * kj;
                        *yi += *sv * rj;
                    }
                }
                // GroupNorm of the head, then the r·k bonus.
                let lw = &ly.ln_x.0[h * n..(h + 1) * n];
                let lb = &ly.ln_x.1[h * n..(h + 1) * n];
                let mut tmp = vec![0f32; n];
                layer_norm(yh, lw, lb, LN_X_EPS, &mut tmp);
                let mut cb = 0f32;
                for j in 0..n {
                    cb += rh[j] * kh[j] * ly.r_k[h * n + j];
                }
                for i in 0..n {
                    yh[i] = (tmp[i] + cb * vh[i]) * g[o + i];
                }
            }
        }
        let mut att = mm(&y, &ly.output);
        if let Some(fw) = &ly.fade {
            let kf = c.fade_kernel;
            let hb = base + 2 * d + d * n;
            let mut sg = mm(&u, &fw.gate);
            let mut mix = vec![0f32; rows * d];
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
            let prod: Vec<f32> = hu.iter().zip(&hv).map(|(&p, &q)| p * math::sigmoid(q)).collect();
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
        let mut xkf = vec![0f32; rows * d];
        for r in 0..rows {
            let xp = &states[r][fb..fb + d];
            for i in 0..d {
                let fi = f[r * d + i];
                xkf[r * d + i] = fi + (xp[i] - fi) * ly.ffn_x_k[i];
            }
        }
        let hid = c.ffn_hidden();
        let expert = |e: usize, xs: &[f32]| {
            let mut h = mm(xs, &ly.ffn_key[e]);
            h.iter_mut().for_each(|q| {
                let t = if *q > 0.0 { *q } else { 0.0 };
                *q = t * t;
            });
            let mut out = vec![0f32; xs.len() / d * d];
            mm_k::<true>(&h, &ly.ffn_value[e], &mut out);
            out
        };
        let _ = hid;
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
        let mut hs = Vec::with_capacity(idx.len() * d);
        for &r in &idx {
            hs.extend_from_slice(&hfin[r * d..(r + 1) * d]);
        }
        let lg = mm(&hs, head);
        for (q, &r) in idx.iter().enumerate() {
            let row = &mut logits[r * ms..(r + 1) * ms];
            row[..head.n_out].copy_from_slice(&lg[q * head.n_out..(q + 1) * head.n_out]);
            row[head.n_out..].fill(f32::NEG_INFINITY);
        }
    }
    Ok(())
}
