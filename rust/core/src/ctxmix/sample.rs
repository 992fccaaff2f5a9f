//! The sample model for images (hint width > 0) and audio (width == 0).
//!
//! Each whole sample inside the hint region is coded as one unit: a blend of
//! several integer predictors gives `P`; the residual `e = v - P` (wrapped to
//! the sample's bit width) is binarized as zero flag, sign, unary exponent and
//! mantissa bits, each bit predicted by hashed contexts (activity bucket,
//! neighbour residuals, disagreement of alternative predictors with `P`)
//! mixed by a gated mixer and refined by an APM.
//!
//! Payload version 2 predicts audio with a per-channel cascade of fixed-point
//! NLMS filters (stage A on own and partner-channel first differences, stage B
//! on stage A's residual, a short fast filter) feeding the same blend; version 1
//! payloads run the original audio predictors unchanged.

use super::prim::{big_vec, counter_p, counter_update, hash2, qlog, tables, Apm, Mixer, Tables, COUNTER_INIT};
use super::{Io, Split};
use crate::hint::SampleLayout;

const K: usize = 8; // predictors
const NC: usize = 8; // hashed contexts
const TAPS: usize = 16; // LMS taps (audio)
const NCT: usize = 16; // v2 audio stage C taps (levels 7-9)

/// A normalised LMS filter in fixed point: weights Q16, step `2^-mu_shift`.
struct Nlms {
    w: Vec<i32>,
    x: Vec<i32>,
    norm: i64,
    pred: i64,
    mu_shift: u32,
}

impl Nlms {
    fn new(n: usize, mu_shift: u32) -> Self {
        Nlms { w: vec![0; n], x: vec![0; n], norm: 0, pred: 0, mu_shift }
    }

    /// Predict from the inputs already placed in `x`.
    #[inline(always)]
    fn predict(&mut self) -> i64 {
        let mut acc: i64 = 0;
        let mut norm: i64 = 0;
        for (w, x) in self.w.iter().zip(&self.x) {
            acc += *w as i64 * *x as i64;
            norm += *x as i64 * *x as i64;
        }
        self.norm = norm;
        self.pred = (acc >> 16).clamp(-(1 << 20), 1 << 20);
        self.pred
    }

    /// Move the weights toward `target` (the value `predict` estimated).
    #[inline(always)]
    fn update(&mut self, target: i64) {
        let err = (target - self.pred).clamp(-(1 << 20), 1 << 20);
        let g = (err << 30) / (self.norm + 16 * self.x.len() as i64 + 1);
        let sh = 14 + self.mu_shift;
        for (w, x) in self.w.iter_mut().zip(&self.x) {
            let dw = (g * *x as i64) >> sh;
            *w = (*w as i64 + dw).clamp(-(1 << 24), 1 << 24) as i32;
        }
    }
}

/// The v2 audio predictor state of one channel: a cascade of NLMS stages.
struct AudioChan {
    /// stage A: own past first differences plus the partner channel's differences
    a: Nlms,
    /// stage B: stage-A residual history
    b: Nlms,
    /// a short fast-adapting filter on own differences
    f: Nlms,
    /// stage-A residual history (newest first)
    ea: Vec<i32>,
    /// levels 7-9: stage C on the residual of A+B, and its input history
    c: Option<Nlms>,
    eb: Vec<i32>,
}

/// Signed logarithmic bucket of a difference.
#[inline(always)]
fn sq(d: i32) -> u64 {
    let m = (32 - d.unsigned_abs().leading_zeros()).min(15) as i64;
    (if d < 0 { 16 - m } else { 16 + m }) as u64
}

fn median3(a: i32, b: i32, c: i32) -> i32 {
    a.max(b).min(a.min(b).max(c))
}

/// Orders of the v2 audio cascade: stage A (own + partner taps), B and the fast filter.
fn cascade_orders(ch: usize) -> (usize, usize, usize, usize) {
    (32, if ch > 1 { 8 } else { 0 }, 16, 8)
}

/// Fresh v2 audio cascades, one per channel (none for images and v1 audio).
fn audio_chans(ch: usize, audio2: bool, heavy: bool) -> Vec<AudioChan> {
    if !audio2 {
        return Vec::new();
    }
    // step sizes 2^-m (tuned on the dev music/speech folders: short, transient files)
    let (na, nx, nb, nf) = cascade_orders(ch);
    let (ma, mb, mf) = (4, 3, 5);
    (0..ch)
        .map(|_| AudioChan {
            a: Nlms::new(na + nx, ma),
            b: Nlms::new(nb + (ch > 1) as usize, mb),
            f: Nlms::new(nf, mf),
            ea: vec![0; nb],
            c: heavy.then(|| Nlms::new(NCT, 3)),
            eb: vec![0; if heavy { NCT } else { 0 }],
        })
        .collect()
}

/// The predictor state of one sample stream (its history and adaptive
/// predictors), without the learned statistics: several streams can share one
/// [`SampleModel`]'s counters, mixer and APMs by swapping their rows in
/// ([`SampleModel::swap_row`]).
pub struct SampleRow {
    first: u64,
    vals: Vec<i32>,
    errs: Vec<u32>,
    res: Vec<i32>,
    ac: Vec<AudioChan>,
    lms: Vec<[i32; TAPS]>,
    esum: Vec<[u32; K]>,
    aact: Vec<u32>,
    last_res: Vec<[i32; 2]>,
    ares: Vec<i32>,
}

/// Sample-model state for one chunk.
pub struct SampleModel {
    t: &'static Tables,
    /// payload version: 1 = the original model, 2 adds the NLMS cascade for audio
    version: u8,
    ac: Vec<AudioChan>,
    na: usize,
    nx: usize,
    nb: usize,
    nf: usize,
    s1: i32,
    xea: i32,
    ch: usize,
    bits: u32,
    lo: i32,
    hi: i32,
    width: usize,
    first: u64,
    vals: Vec<i32>,
    // image
    rowlen: usize,
    errs: Vec<u32>,
    res: Vec<i32>,
    // audio
    lms: Vec<[i32; TAPS]>,
    esum: Vec<[u32; K]>,
    aact: Vec<u32>,
    last_res: Vec<[i32; 2]>,
    ares: Vec<i32>,
    // coding
    tab: Vec<u32>,
    shift: u32,
    mask: usize,
    limit: u32,
    slots: [usize; NC],
    bases: [usize; NC],
    mixer: Mixer,
    apm: Apm,
    apm2: Apm,
    /// v2 audio at levels 7-9: SSE keyed by the decision and the cascade stages' disagreement
    apm3: Option<Apm>,
    dis: usize,
    // per sample
    preds: [i32; K],
    p: i32,
    act: usize,
    ctx: [u64; NC],
    c: usize,
    lms_d: [i32; TAPS],
    lms_pred: i32,
}

impl SampleModel {
    /// A model for the samples of `layout`, `nsamples` of them, at `level`.
    /// Memory: 4 * 2^table_bits (<= 64 MiB) + 4 * nsamples + small row buffers.
    pub fn new(layout: &SampleLayout, nsamples: usize, level: u8, version: u8) -> Self {
        let bps = layout.bytes_per_sample.clamp(1, 3) as u32;
        let bits = 8 * bps;
        let (lo, hi) = if layout.signed { (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1) } else { (0, (1i32 << bits) - 1) };
        let ch = (layout.channels as usize).max(1);
        let width = layout.width as usize;
        let rowlen = width.saturating_mul(ch).min(1 << 26);
        let max_bits = match level {
            0..=3 => 20,
            4..=6 => 22,
            _ => 24,
        };
        let tb = ((nsamples.max(1) * 32).next_power_of_two().trailing_zeros()).clamp(16, max_bits);
        let audio2 = version >= 2 && width == 0;
        let heavy = audio2 && level >= 7;
        let (na, nx, nb, nf) = cascade_orders(ch);
        let ac = audio_chans(ch, audio2, heavy);
        SampleModel {
            t: tables(),
            version,
            ac,
            na,
            nx,
            nb,
            nf,
            s1: 0,
            xea: 0,
            ch,
            bits,
            lo,
            hi,
            width,
            first: layout.first_sample,
            vals: Vec::with_capacity(nsamples),
            rowlen,
            errs: if width > 0 { vec![0; 2 * K * rowlen] } else { Vec::new() },
            res: if width > 0 { vec![0; 2 * rowlen] } else { Vec::new() },
            lms: vec![[0; TAPS]; ch],
            esum: vec![[0; K]; ch],
            aact: vec![0; ch],
            last_res: vec![[0; 2]; ch],
            ares: vec![0; ch],
            tab: big_vec(1 << tb, COUNTER_INIT),
            shift: 64 - tb,
            mask: (1 << tb) - 1,
            limit: if level >= 7 && !audio2 { 255 } else { 127 },
            slots: [0; NC],
            bases: [0; NC],
            mixer: Mixer::new(NC + 1, &[64 * 4, 64 * 16, if heavy { 1024 } else { 64 }], 4, 2),
            apm: Apm::new(64 * 64, 7),
            apm2: Apm::new(1 << 16, 7),
            apm3: if heavy { Some(Apm::new(1 << 16, 7)) } else { None },
            dis: 0,
            preds: [0; K],
            p: 0,
            act: 0,
            ctx: [0; NC],
            c: 0,
            lms_d: [0; TAPS],
            lms_pred: 0,
        }
    }

    /// A fresh predictor state for another stream of the same format as this
    /// model's, whose first sample is sample `first_sample` of the image or
    /// audio stream and which holds `nsamples` samples.
    pub fn new_row(&self, first_sample: u64, nsamples: usize) -> SampleRow {
        let audio2 = self.version >= 2 && self.width == 0;
        let ch = self.ch;
        SampleRow {
            first: first_sample,
            vals: Vec::with_capacity(nsamples),
            errs: if self.width > 0 { vec![0; 2 * K * self.rowlen] } else { Vec::new() },
            res: if self.width > 0 { vec![0; 2 * self.rowlen] } else { Vec::new() },
            ac: audio_chans(ch, audio2, self.apm3.is_some()),
            lms: vec![[0; TAPS]; ch],
            esum: vec![[0; K]; ch],
            aact: vec![0; ch],
            last_res: vec![[0; 2]; ch],
            ares: vec![0; ch],
        }
    }

    /// Exchange the model's predictor state with `row`'s (the learned
    /// counters, mixer and APMs stay): the model then codes `row`'s stream,
    /// and `row` holds the state of the stream it coded before.
    pub fn swap_row(&mut self, row: &mut SampleRow) {
        std::mem::swap(&mut self.first, &mut row.first);
        std::mem::swap(&mut self.vals, &mut row.vals);
        std::mem::swap(&mut self.errs, &mut row.errs);
        std::mem::swap(&mut self.res, &mut row.res);
        std::mem::swap(&mut self.ac, &mut row.ac);
        std::mem::swap(&mut self.lms, &mut row.lms);
        std::mem::swap(&mut self.esum, &mut row.esum);
        std::mem::swap(&mut self.aact, &mut row.aact);
        std::mem::swap(&mut self.last_res, &mut row.last_res);
        std::mem::swap(&mut self.ares, &mut row.ares);
    }

    #[inline(always)]
    fn val(&self, i: usize, back: usize) -> Option<i32> {
        i.checked_sub(back).and_then(|j| self.vals.get(j).copied())
    }

    fn clampv(&self, v: i64) -> i32 {
        v.clamp(self.lo as i64, self.hi as i64) as i32
    }

    fn blend(&self, w_err: &[u32; K]) -> i32 {
        let mut num: i128 = 0;
        let mut den: i128 = 0;
        for (k, &e) in w_err.iter().enumerate() {
            let e = e as i128 + 1;
            let w = (1i128 << 50) / (e * e);
            num += w * self.preds[k] as i128;
            den += w;
        }
        if den == 0 {
            return self.preds[0];
        }
        self.clampv(((num + den / 2) / den) as i64)
    }

    fn prepare_image(&mut self, i: usize) {
        let ch = self.ch;
        let abs = self.first.wrapping_add(i as u64);
        let c = (abs % ch as u64) as usize;
        let px = abs / ch as u64;
        let x = (px % self.width as u64) as usize;
        let y = px / self.width as u64;
        self.c = c;
        let rl = self.rowlen;
        let has_w = x > 0 && i >= ch;
        let has_n = i >= rl;
        let has_ne = has_n && x + 1 < self.width && i + ch >= rl;
        let mid = (self.lo + self.hi + 1) / 2;
        let n0 = if has_n { self.val(i, rl) } else { None };
        let w0 = if has_w { self.val(i, ch) } else { None };
        let n = n0.or(w0).unwrap_or(mid);
        let w = w0.unwrap_or(n);
        let nw = if has_w && has_n { self.val(i, rl + ch).unwrap_or(n) } else { n };
        let ne = if has_ne { self.val(i + ch, rl).unwrap_or(n) } else { n };
        let ww = if x > 1 && i >= 2 * ch { self.val(i, 2 * ch).unwrap_or(w) } else { w };
        let nn = if i >= 2 * rl { self.val(i, 2 * rl).unwrap_or(n) } else { n };
        let grad = self.clampv(w as i64 + n as i64 - nw as i64);
        self.preds[0] = median3(w, n, grad);
        self.preds[1] = grad;
        self.preds[2] = w;
        self.preds[3] = n;
        self.preds[4] = ((w as i64 + ne as i64 + 1) >> 1) as i32;
        self.preds[5] = self.clampv(w as i64 + ne as i64 - n as i64);
        let mut pc_res = 0;
        if c > 0 {
            let xc = self.val(i, 1).unwrap_or(w);
            let wc = if has_w { self.val(i, ch + 1).unwrap_or(xc) } else { xc };
            let nc = if has_n { self.val(i, rl + 1).unwrap_or(xc) } else { xc };
            self.preds[6] = self.clampv(w as i64 + xc as i64 - wc as i64);
            self.preds[7] = self.clampv(n as i64 + xc as i64 - nc as i64);
            let rrow = (y & 1) as usize * rl;
            pc_res = self.res.get(rrow + x * ch + c - 1).copied().unwrap_or(0);
        } else {
            self.preds[6] = ((w as i64 + n as i64 + 1) >> 1) as i32;
            self.preds[7] = self.clampv(2 * w as i64 - ww as i64);
        }
        let _ = nn;
        // per-predictor error sums at W, N, NW, NE
        let cur = (y & 1) as usize;
        let prev = cur ^ 1;
        let col = x * ch + c;
        let mut wsum = [0u32; K];
        for (k, ws) in wsum.iter_mut().enumerate() {
            let at = |row: usize, cl: usize| self.errs.get((row * K + k) * rl + cl).copied().unwrap_or(0);
            let mut s = 0u32;
            if has_w {
                s = s.saturating_add(at(cur, col - ch));
            }
            if has_n {
                s = s.saturating_add(at(prev, col));
                if has_w {
                    s = s.saturating_add(at(prev, col - ch) / 2);
                }
                if has_ne {
                    s = s.saturating_add(at(prev, col + ch));
                }
            }
            *ws = s;
        }
        self.p = self.blend(&wsum);
        let p = self.p;
        let rget = |row: usize, cl: usize| self.res.get(row * rl + cl).copied().unwrap_or(0);
        let rw = if has_w { rget(cur, col - ch) } else { 0 };
        let rn = if has_n { rget(prev, col) } else { 0 };
        let rnw = if has_n && has_w { rget(prev, col - ch) } else { 0 };
        let rne = if has_ne { rget(prev, col + ch) } else { 0 };
        let sh = self.bits - 8;
        let grad_act = ((w - nw).unsigned_abs() + (n - nw).unsigned_abs() + (ne - n).unsigned_abs()) >> sh;
        let res_act = (rw.unsigned_abs() + rn.unsigned_abs() + (rnw.unsigned_abs() + rne.unsigned_abs()) / 2) >> sh;
        let act = qlog(res_act * 2 + grad_act).min(63) as usize;
        self.act = act;
        let a = act as u64;
        let c64 = c as u64;
        let tex = ((w > p) as u64) | ((n > p) as u64) << 1 | ((nw > p) as u64) << 2 | ((ne > p) as u64) << 3 | ((ww > p) as u64) << 4;
        self.ctx = [
            hash2(1, a << 8 | c64),
            hash2(2, (a >> 1) << 16 | sq(w - p) << 8 | sq(n - p) | c64 << 24),
            hash2(3, sq(nw - p) << 8 | sq(ne - p) | c64 << 16 | (a >> 2) << 24),
            hash2(4, sq(rw) << 8 | sq(rn) | c64 << 16),
            hash2(5, (a << 8 | sq(pc_res)) | c64 << 16 | sq(rne) << 24),
            hash2(6, ((p - self.lo) >> (self.bits - 5)) as u64 | (a >> 2) << 8 | c64 << 16 | tex << 24),
            hash2(7, sq(self.preds[6] - p) << 8 | sq(self.preds[7] - p) | c64 << 16 | (a >> 1) << 24),
            hash2(8, (((w - self.lo) >> (self.bits - 4)) as u64) << 8 | ((n - self.lo) >> (self.bits - 4)) as u64 | c64 << 16 | sq(rw.clamp(-3, 3) * 4 + rn.clamp(-3, 3)) << 24),
        ];
    }

    fn prepare_audio(&mut self, i: usize) {
        let ch = self.ch;
        let c = ((self.first.wrapping_add(i as u64)) % ch as u64) as usize;
        self.c = c;
        let s1 = self.val(i, ch).unwrap_or(0);
        let s2 = self.val(i, 2 * ch).unwrap_or(s1);
        let s3 = self.val(i, 3 * ch).unwrap_or(s2);
        self.preds[0] = s1;
        self.preds[1] = self.clampv(2 * s1 as i64 - s2 as i64);
        self.preds[2] = self.clampv(3 * s1 as i64 - 3 * s2 as i64 + s3 as i64);
        // LMS over first differences
        let mut prevv = s1;
        for j in 0..TAPS {
            let older = self.val(i, (j + 2) * ch).unwrap_or(prevv);
            self.lms_d[j] = prevv - older;
            prevv = older;
        }
        let w = self.lms.get(c).copied().unwrap_or([0; TAPS]);
        let mut acc: i64 = 0;
        for (wj, dj) in w.iter().zip(&self.lms_d) {
            acc += *wj as i64 * *dj as i64;
        }
        self.lms_pred = (acc >> 12).clamp(-(1 << 24), 1 << 24) as i32;
        self.preds[3] = self.clampv(s1 as i64 + self.lms_pred as i64);
        self.preds[4] = self.clampv(s1 as i64 + ((s1 as i64 - s2 as i64) >> 1));
        let mut xres = 0;
        if c > 0 {
            let x0 = self.val(i, 1).unwrap_or(0);
            let x0p = self.val(i, 1 + ch).unwrap_or(x0);
            self.preds[5] = self.clampv(s1 as i64 + x0 as i64 - x0p as i64);
            xres = self.ares.get(c - 1).copied().unwrap_or(0);
            self.preds[6] = self.clampv(self.preds[3] as i64 + xres as i64);
        } else {
            self.preds[5] = self.clampv((3 * s1 as i64 - s2 as i64) >> 1);
            self.preds[6] = self.clampv(self.preds[3] as i64 + ((self.preds[1] as i64 - self.preds[3] as i64) >> 1));
        }
        self.preds[7] = self.clampv((s1 as i64 + s2 as i64) >> 1);
        self.blend_and_contexts(c, xres, 3);
    }

    fn prepare_audio2(&mut self, i: usize) {
        let ch = self.ch;
        let c = ((self.first.wrapping_add(i as u64)) % ch as u64) as usize;
        self.c = c;
        let s1 = self.val(i, ch).unwrap_or(0);
        let s2 = self.val(i, 2 * ch).unwrap_or(s1);
        let s3 = self.val(i, 3 * ch).unwrap_or(s2);
        self.s1 = s1;
        let vals = &self.vals;
        let at = |k: usize| i.checked_sub(k).and_then(|j| vals.get(j).copied());
        // partner channel: its newest sample and stage-A residual
        let partner = if ch > 1 { Some(if c > 0 { (c - 1, 1) } else { (1, ch - 1) }) } else { None };
        let (na, nx, nb, nf) = (self.na, self.nx, self.nb, self.nf);
        let xea = partner.and_then(|(pc, _)| self.ac.get(pc)).and_then(|p| p.ea.first().copied()).unwrap_or(0);
        self.xea = xea;
        let Some(st) = self.ac.get_mut(c) else { return };
        let mut prev = s1;
        for j in 0..na {
            let older = at((j + 2) * ch).unwrap_or(prev);
            st.a.x[j] = prev - older;
            if j < nf {
                st.f.x[j] = prev - older;
            }
            prev = older;
        }
        if let Some((_, back)) = partner {
            let mut prev = at(back).unwrap_or(0);
            for j in 0..nx {
                let older = at(back + (j + 1) * ch).unwrap_or(prev);
                st.a.x[na + j] = prev - older;
                prev = older;
            }
        }
        let da = st.a.predict();
        st.b.x[..nb].copy_from_slice(&st.ea[..nb]);
        if ch > 1 {
            st.b.x[nb] = xea;
        }
        let eb = st.b.predict();
        let df = st.f.predict();
        let ec = match st.c.as_mut() {
            Some(f) => {
                f.x.copy_from_slice(&st.eb);
                Some(f.predict())
            }
            None => None,
        };
        let pa = s1 as i64 + da;
        let pab = pa + eb;
        let pf = s1 as i64 + df;
        self.preds[0] = self.clampv(pab);
        self.preds[1] = self.clampv(pa);
        self.preds[2] = self.clampv(pf);
        self.preds[3] = self.clampv(2 * s1 as i64 - s2 as i64);
        self.preds[4] = self.clampv(3 * s1 as i64 - 3 * s2 as i64 + s3 as i64);
        self.preds[5] = s1;
        self.preds[6] = self.clampv((pab + pf) >> 1);
        self.preds[7] = match ec {
            Some(ec) => self.clampv(pab + ec),
            None => self.clampv(pab + (pab - pa)),
        };
        let xres = if c > 0 { self.ares.get(c - 1).copied().unwrap_or(0) } else { 0 };
        self.blend_and_contexts(c, xres, 4);
        if self.apm3.is_some() {
            let sh = self.bits - 8;
            let dq = |d: i32| (32 - (d.unsigned_abs() >> sh).leading_zeros()) as usize;
            let act = self.act;
            self.dis = (dq(self.preds[0] - self.preds[2]).min(15) << 3 | dq(self.preds[0] - self.preds[3]).min(7)) << 3 | (act >> 3).min(7);
        }
    }

    /// Blend the audio predictors of channel `c` into `p`, then the residual contexts; `k8` is
    /// the predictor the eighth context compares with `p` (3 in payload v1, 4 in v2).
    fn blend_and_contexts(&mut self, c: usize, xres: i32, k8: usize) {
        let es = self.esum.get(c).copied().unwrap_or([0; K]);
        self.p = self.blend(&es);
        let p = self.p;
        let act = qlog(self.aact.get(c).copied().unwrap_or(0) >> 3).min(63) as usize;
        self.act = act;
        let a = act as u64;
        let c64 = c as u64;
        let lr = self.last_res.get(c).copied().unwrap_or([0; 2]);
        self.ctx = [
            hash2(1, a << 8 | c64),
            hash2(2, (a >> 1) << 16 | sq(lr[0]) << 8 | c64),
            hash2(3, sq(lr[0]) << 8 | sq(lr[1]) | (a >> 2) << 16),
            hash2(4, (a >> 2) << 16 | sq(self.preds[0] - p) << 8 | sq(self.preds[1] - p)),
            hash2(5, (a >> 2) << 16 | sq(self.preds[3] - p) << 8 | sq(self.preds[2] - p)),
            hash2(6, (((p - self.lo) >> (self.bits - 5)) as u64) << 8 | (a >> 2)),
            hash2(7, (a >> 1) << 16 | sq(xres) << 8 | sq(self.preds[5] - p) | c64 << 24),
            hash2(8, sq(lr[0]) << 16 | sq(self.preds[k8] - p) << 8 | sq(self.preds[6] - p) | c64 << 24),
        ];
    }

    /// Per-sample slot regions: 64 consecutive counters per context, so the
    /// zero/sign/exponent decisions of a sample stay within a few cache lines.
    fn set_bases(&mut self) {
        for (b, &c) in self.bases.iter_mut().zip(&self.ctx) {
            *b = ((hash2(c, 0x5EED) >> self.shift) as usize & self.mask) & !63;
        }
    }

    /// Code one decision. `local` (< 64) picks a slot in the sample's region;
    /// otherwise the slot is hashed from `dctx`.
    #[allow(clippy::too_many_arguments)]
    fn decide<I: Io>(&mut self, io: &mut I, did: usize, dctx: u64, local: Option<usize>, bit: u32, split: Split) -> u32 {
        let t = self.t;
        for j in 0..NC {
            let idx = match local {
                Some(l) => (self.bases[j] + (l & 63)) & self.mask,
                None => (hash2(self.ctx[j], dctx) >> self.shift) as usize & self.mask,
            };
            self.slots[j] = idx;
            self.mixer.add(t.stretch(counter_p(self.tab[idx])));
        }
        self.mixer.add(256);
        let class = match did {
            0 => 0,
            1 => 1,
            2..=31 => 2,
            _ => 3,
        };
        self.mixer.set(0, self.act * 4 + class);
        self.mixer.set(1, self.c.min(15) * 64 + did.min(63));
        self.mixer.set(2, if self.apm3.is_some() { self.dis } else { self.act });
        self.mixer.set_final(class);
        let pr = self.mixer.mix(t);
        let a1 = self.apm.p(t, pr, self.act * 64 + did.min(63));
        let a2 = self.apm2.p(t, pr, (hash2(self.ctx[1], dctx) >> 48) as usize);
        let p16 = match self.apm3.as_mut() {
            Some(apm3) => {
                let a3 = apm3.p(t, pr, self.dis << 6 | did.min(63));
                ((pr as u32 * 16) + a1 + a2 + a3) >> 2
            }
            None => ((pr as u32 * 16) * 2 + a1 + a2) >> 2,
        };
        let b = if I::SPLITS {
            io.bit_split(p16.clamp(1, 65535), bit, &Split { did, act: self.act, ..split })
        } else {
            io.bit(p16.clamp(1, 65535), bit)
        };
        for j in 0..NC {
            let s = self.slots[j];
            counter_update(&mut self.tab[s], b, self.limit);
        }
        self.mixer.update(t, b);
        self.apm.update(b);
        self.apm2.update(b);
        if let Some(apm3) = self.apm3.as_mut() {
            apm3.update(b);
        }
        b
    }

    /// Code sample `i` of the region (`v` ignored when decoding); returns the value.
    pub fn code<I: Io>(&mut self, io: &mut I, i: usize, v: i32) -> i32 {
        if self.width > 0 {
            self.prepare_image(i);
        } else if self.version >= 2 {
            self.prepare_audio2(i);
        } else {
            self.prepare_audio(i);
        }
        let n = self.bits;
        let half = 1i64 << (n - 1);
        let full = 1i64 << n;
        let p = self.p as i64;
        // encoder-side residual wrapped into [-half, half)
        let e_enc = (v as i64 - p + half).rem_euclid(full) - half;
        self.set_bases();
        // Value sets of each decision (only for an `Io` that asks for them).
        let base = Split { p_off: p - self.lo as i64, bits: n, ..Split::default() };
        let sp = |one: (i64, i64), zero: (i64, i64)| if I::SPLITS { Split { one, zero, ..base } } else { base };
        let nz_split = if I::SPLITS { Split { nz: true, zero: (0, 0), one: (1, 0), ..base } } else { base };
        let nz = self.decide(io, 0, 1, Some(0), (e_enc != 0) as u32, nz_split);
        let e = if nz == 0 {
            0
        } else {
            let neg = self.decide(io, 1, 2, Some(1), (e_enc < 0) as u32, sp((-half, -1), (1, half - 1)));
            // residuals of the magnitudes m + 1 for m in [a, b] under the decoded sign
            let mmax = if neg != 0 { half - 1 } else { half - 2 };
            let to_e = |a: i64, b: i64| {
                let b = b.min(mmax);
                if a > b {
                    (1, 0)
                } else if neg != 0 {
                    (-(b + 1), -(a + 1))
                } else {
                    (a + 1, b + 1)
                }
            };
            let m_enc = (e_enc.unsigned_abs().max(1) - 1) as u32;
            let k_enc = 32 - m_enc.leading_zeros();
            let mut k = 0u32;
            while k < n - 1 {
                let split = if I::SPLITS {
                    let low = if k == 0 { 0 } else { 1i64 << (k - 1) };
                    sp(to_e(1 << k, mmax), to_e(low, (1i64 << k) - 1))
                } else {
                    base
                };
                let b = self.decide(io, 2 + k as usize, 0x100 + k as u64, Some(2 + k as usize), (k_enc > k) as u32, split);
                if b == 0 {
                    break;
                }
                k += 1;
            }
            let mut m: u32 = 0;
            if k > 0 {
                m = 1;
                for j in (0..k - 1).rev() {
                    let depth = (k - 2 - j) as usize;
                    let prefix = if depth < 3 { m as u64 } else { (m >> (depth - 2)) as u64 | 0x80 };
                    let dctx = 0x1000 | (k as u64) << 4 | (depth as u64) << 12 | prefix << 20;
                    let local = if depth == 0 { Some(32 + k as usize) } else { None };
                    let split = if I::SPLITS {
                        let at = (m as i64) << (j + 1);
                        let h = 1i64 << j;
                        sp(to_e(at + h, at + 2 * h - 1), to_e(at, at + h - 1))
                    } else {
                        base
                    };
                    let b = self.decide(io, 32 + depth.min(31), dctx, local, (m_enc >> j) & 1, split);
                    m = (m << 1) | b;
                }
            }
            let mag = m as i64 + 1;
            if neg != 0 {
                -mag
            } else {
                mag
            }
        };
        let lo = self.lo as i64;
        let out = (lo + (p + e - lo).rem_euclid(full)) as i32;
        self.learn(i, out);
        out
    }

    fn learn(&mut self, i: usize, v: i32) {
        let res = v - self.p;
        if self.width > 0 {
            let ch = self.ch;
            let abs = self.first.wrapping_add(i as u64);
            let c = self.c;
            let px = abs / ch as u64;
            let x = (px % self.width as u64) as usize;
            let y = px / self.width as u64;
            let cur = (y & 1) as usize;
            let rl = self.rowlen;
            let col = x * ch + c;
            for k in 0..K {
                if let Some(e) = self.errs.get_mut((cur * K + k) * rl + col) {
                    *e = (self.preds[k] - v).unsigned_abs();
                }
            }
            if let Some(r) = self.res.get_mut(cur * rl + col) {
                *r = res;
            }
        } else {
            let c = self.c;
            if let Some(es) = self.esum.get_mut(c) {
                for (k, e) in es.iter_mut().enumerate() {
                    *e = *e - (*e >> 3) + (self.preds[k] - v).unsigned_abs();
                }
            }
            if let Some(a) = self.aact.get_mut(c) {
                *a = *a - (*a >> 3) + res.unsigned_abs();
            }
            if let Some(lr) = self.last_res.get_mut(c) {
                lr[1] = lr[0];
                lr[0] = res;
            }
            if let Some(r) = self.ares.get_mut(c) {
                *r = res;
            }
            if self.version >= 2 {
                let d = v as i64 - self.s1 as i64;
                if let Some(st) = self.ac.get_mut(c) {
                    let ea = (d - st.a.pred).clamp(-(1 << 20), 1 << 20);
                    st.a.update(d);
                    st.b.update(ea);
                    if let Some(f) = st.c.as_mut() {
                        let eb = (ea - st.b.pred).clamp(-(1 << 20), 1 << 20);
                        f.update(eb);
                        if !st.eb.is_empty() {
                            st.eb.rotate_right(1);
                            st.eb[0] = eb as i32;
                        }
                    }
                    st.f.update(d);
                    if !st.ea.is_empty() {
                        st.ea.rotate_right(1);
                        st.ea[0] = ea as i32;
                    }
                }
                self.vals.push(v);
                return;
            }
            // NLMS update toward the true first difference
            let s1 = self.val(i, self.ch).unwrap_or(0);
            let target = v as i64 - s1 as i64;
            let err = target - self.lms_pred as i64;
            let mut norm: i64 = 64;
            for &d in &self.lms_d {
                norm += d as i64 * d as i64;
            }
            let g = ((err << 20) / norm).clamp(-(1 << 40), 1 << 40);
            if let Some(w) = self.lms.get_mut(c) {
                for (wj, dj) in w.iter_mut().zip(&self.lms_d) {
                    let dw = (g * *dj as i64) >> 16;
                    *wj = (*wj as i64 + dw).clamp(-(1 << 20), 1 << 20) as i32;
                }
            }
        }
        self.vals.push(v);
    }
}
