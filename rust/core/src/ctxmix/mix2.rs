//! The gated logistic mixer of the v2 byte model: the same arithmetic as
//! [`super::prim::Mixer`] (which the v1 models keep using), laid out for speed:
//! fixed-size input array zero-padded to a multiple of 8 lanes, one weight row
//! per selected context, no per-bit allocation. All arithmetic is i32 with the
//! same rounding whether or not the compiler vectorizes it, so results do not
//! depend on the CPU.

use super::prim::{mixer_dot, Tables};

/// Most inputs a mixer takes.
pub const MAX_IN: usize = 32;
/// Most weight sets.
pub const MAX_SETS: usize = 6;
/// Lanes of a final-mixer row: [`MAX_SETS`] rounded up to one 8-lane vector
/// (lanes past the set count have input 0, so they change neither the sum nor their weights).
const FINAL_LANES: usize = 8;

#[inline(always)]
fn train(w: &mut [i32], x: &[i32], err: i32) {
    for (a, &b) in w.iter_mut().zip(x) {
        *a = (*a + ((b * err + 512) >> 10)).clamp(-(1 << 19) + 1, (1 << 19) - 1);
    }
}

/// [`mixer_dot`] over `S` lanes (the same integers: i32 products, per-term
/// shift, wrapping sum; integer addition is associative, so any lane order
/// gives the same result).
#[inline(always)]
fn dot_n<const S: usize>(w: &[i32; S], x: &[i32; S]) -> i32 {
    let mut s = [0i32; 8];
    for i in 0..S {
        s[i % 8] = s[i % 8].wrapping_add((w[i] * x[i]) >> 8);
    }
    let t = s.iter().fold(0i32, |a, &b| a.wrapping_add(b));
    (t >> 8).clamp(-2047, 2047)
}

/// [`train`] over `S` lanes.
#[inline(always)]
fn train_n<const S: usize>(w: &mut [i32; S], x: &[i32; S], err: i32) {
    for i in 0..S {
        w[i] = (w[i] + ((x[i] * err + 512) >> 10)).clamp(-(1 << 19) + 1, (1 << 19) - 1);
    }
}

/// Several weight sets, each chosen by its own context, produce one
/// prediction each; a final small mixer (selected by its own context) combines them.
pub struct Mixer2 {
    /// Row length: the input count rounded up to 8.
    stride: usize,
    nin: usize,
    x: [i32; MAX_IN],
    weights: Vec<i32>,
    /// First row (in rows of `stride` weights) of each set's table.
    offsets: [usize; MAX_SETS],
    masks: [usize; MAX_SETS],
    /// Selected row (in rows of `stride` weights) of each set.
    rows: [usize; MAX_SETS],
    k: usize,
    outs: [i32; FINAL_LANES],
    final_w: Vec<i32>,
    final_mask: usize,
    /// Selected final row (in rows of `FINAL_LANES` weights).
    final_row: usize,
    pr: i32,
    lr: i32,
    lr_final: i32,
}

impl Mixer2 {
    /// `n` inputs (<= [`MAX_IN`]); one weight-set table per entry of `sets`
    /// (its context count, <= [`MAX_SETS`] sets); `final_sets` contexts for the
    /// final mixer; learning rates of the sets and of the final mixer.
    pub fn new(n: usize, sets: &[usize], final_sets: usize, lr: i32, lr_final: i32) -> Self {
        let n = n.min(MAX_IN);
        let stride = n.div_ceil(8).max(1) * 8;
        let k = sets.len().clamp(1, MAX_SETS);
        let mut offsets = [0; MAX_SETS];
        let mut masks = [0; MAX_SETS];
        let mut total = 0;
        for (j, &s) in sets.iter().take(k).enumerate() {
            let size = s.max(1).next_power_of_two();
            offsets[j] = total / stride;
            masks[j] = size - 1;
            total += size * stride;
        }
        if sets.is_empty() {
            total = stride;
        }
        let mut weights = vec![(1 << 16) / 4; total];
        for row in weights.chunks_mut(stride) {
            for w in &mut row[n..] {
                *w = 0;
            }
        }
        let fs = final_sets.max(1).next_power_of_two();
        Mixer2 {
            stride,
            nin: 0,
            x: [0; MAX_IN],
            weights,
            offsets,
            masks,
            rows: offsets,
            k,
            outs: [0; FINAL_LANES],
            final_w: vec![(1 << 16) / k as i32; fs * FINAL_LANES],
            final_mask: fs - 1,
            final_row: 0,
            pr: 2048,
            lr,
            lr_final,
        }
    }

    /// Add one input (a stretched probability).
    #[inline(always)]
    pub fn add(&mut self, v: i32) {
        // A model adds at most `MAX_IN` inputs per bit (the mask only keeps the index in range).
        self.x[self.nin & (MAX_IN - 1)] = v.clamp(-2047, 2047);
        self.nin += 1;
    }

    /// Add one input already in `-2047..=2047` (a stretched probability, 0,
    /// the bias, a bounded confidence): the same as [`Mixer2::add`] without the clamp.
    #[inline(always)]
    pub fn add_in_range(&mut self, v: i32) {
        debug_assert!((-2047..=2047).contains(&v));
        self.x[self.nin & (MAX_IN - 1)] = v;
        self.nin += 1;
    }

    /// The input lanes, for a model that writes its inputs directly (each in
    /// `-2047..=2047`, the same lanes every bit, as [`Mixer2::add_in_range`] would fill them).
    #[inline(always)]
    pub fn slots(&mut self) -> &mut [i32; MAX_IN] {
        &mut self.x
    }

    /// Choose the context of weight set `i`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, cx: usize) {
        if i < self.k {
            self.rows[i] = self.offsets[i] + (cx & self.masks[i]);
        }
    }

    /// Choose the context of the final mixer.
    #[inline(always)]
    pub fn set_final(&mut self, cx: usize) {
        self.final_row = cx & self.final_mask;
    }

    /// Mix the inputs into a 12-bit probability.
    #[inline(always)]
    pub fn mix(&mut self, t: &Tables) -> i32 {
        match self.stride {
            8 => self.mix_n::<8>(t),
            16 => self.mix_n::<16>(t),
            24 => self.mix_n::<24>(t),
            32 => self.mix_n::<32>(t),
            _ => self.mix_any(t),
        }
    }

    /// [`Mixer2::mix`] for a row length known at compile time (straight-line vector code).
    #[inline(always)]
    fn mix_n<const S: usize>(&mut self, t: &Tables) -> i32 {
        let x: &[i32; S] = match self.x.first_chunk::<S>() {
            Some(x) => x,
            None => return self.mix_any(t),
        };
        let (rows, _) = self.weights.as_chunks::<S>();
        for j in 0..self.k.min(MAX_SETS) {
            self.outs[j] = match rows.get(self.rows[j]) {
                Some(w) => dot_n(w, x),
                None => 0,
            };
        }
        self.final_mix(t)
    }

    /// [`Mixer2::mix`] for a row length and set count known at compile time;
    /// falls back to [`Mixer2::mix`] when they are not this mixer's.
    #[inline(always)]
    pub fn mix_fixed<const S: usize, const K: usize>(&mut self, t: &Tables) -> i32 {
        if self.stride != S || self.k != K || K > MAX_SETS {
            return self.mix(t);
        }
        let x: &[i32; S] = match self.x.first_chunk::<S>() {
            Some(x) => x,
            None => return self.mix_any(t),
        };
        let (rows, _) = self.weights.as_chunks::<S>();
        for j in 0..K {
            self.outs[j] = match rows.get(self.rows[j]) {
                Some(w) => dot_n(w, x),
                None => 0,
            };
        }
        self.final_mix(t)
    }

    /// [`Mixer2::mix_fixed`] of the inputs `x` (lanes as [`Mixer2::slots`]
    /// holds them; they are stored there for [`Mixer2::update_fixed`]). The
    /// inputs and the set outputs stay in registers, and the four sets' sums are
    /// reduced together (integer addition is associative, so the sums are the
    /// same as [`dot_n`]'s).
    #[inline(always)]
    pub fn mix_inputs<const S: usize, const K: usize>(&mut self, t: &Tables, x: &[i32; MAX_IN]) -> i32 {
        let xs: &[i32; S] = match x.first_chunk::<S>() {
            Some(xs) if self.stride == S && self.k == K && K <= 4 && S > 0 => xs,
            _ => {
                self.x = *x;
                return self.mix(t);
            }
        };
        if let Some(d) = self.x.first_chunk_mut::<S>() {
            *d = *xs;
        }
        let (rows, _) = self.weights.as_chunks::<S>();
        let mut acc = [[0i32; 8]; 4];
        for (a, &r) in acc.iter_mut().zip(&self.rows).take(K) {
            if let Some(w) = rows.get(r) {
                for i in 0..S {
                    a[i % 8] = a[i % 8].wrapping_add((w[i] * xs[i]) >> 8);
                }
            }
        }
        // Four 8-lane partial sums -> four totals: fold the halves, then a 4x4 transpose-add.
        let h = |a: &[i32; 8]| [a[0].wrapping_add(a[4]), a[1].wrapping_add(a[5]), a[2].wrapping_add(a[6]), a[3].wrapping_add(a[7])];
        let (a0, a1, a2, a3) = (h(&acc[0]), h(&acc[1]), h(&acc[2]), h(&acc[3]));
        let u0 = [a0[0].wrapping_add(a0[2]), a1[0].wrapping_add(a1[2]), a0[1].wrapping_add(a0[3]), a1[1].wrapping_add(a1[3])];
        let u1 = [a2[0].wrapping_add(a2[2]), a3[0].wrapping_add(a3[2]), a2[1].wrapping_add(a2[3]), a3[1].wrapping_add(a3[3])];
        let r = [u0[0].wrapping_add(u0[2]), u0[1].wrapping_add(u0[3]), u1[0].wrapping_add(u1[2]), u1[1].wrapping_add(u1[3])];
        let mut outs = [0i32; FINAL_LANES];
        for (o, &v) in outs.iter_mut().zip(&r) {
            *o = (v >> 8).clamp(-2047, 2047);
        }
        self.outs = outs;
        let (f, _) = self.final_w.as_chunks::<FINAL_LANES>();
        let d = match f.get(self.final_row) {
            Some(fw) => dot_n(fw, &outs),
            None => 0,
        };
        self.pr = t.squash(d);
        self.pr
    }

    #[inline(always)]
    fn mix_any(&mut self, t: &Tables) -> i32 {
        let st = self.stride;
        let x = &self.x[..st];
        for j in 0..self.k {
            let r = self.rows[j] * st;
            self.outs[j] = match self.weights.get(r..r + st) {
                Some(w) => mixer_dot(w, x),
                None => 0,
            };
        }
        self.final_mix(t)
    }

    #[inline(always)]
    fn final_mix(&mut self, t: &Tables) -> i32 {
        // Slots past `k` of `outs` stay 0, so all FINAL_LANES lanes give the same sum.
        let (f, _) = self.final_w.as_chunks::<FINAL_LANES>();
        let d = match f.get(self.final_row) {
            Some(fw) => dot_n(fw, &self.outs),
            None => 0,
        };
        self.pr = t.squash(d);
        self.pr
    }

    /// Learn from the coded bit and clear the inputs.
    #[inline(always)]
    pub fn update(&mut self, t: &Tables, bit: u32) {
        match self.stride {
            8 => self.update_n::<8>(t, bit),
            16 => self.update_n::<16>(t, bit),
            24 => self.update_n::<24>(t, bit),
            32 => self.update_n::<32>(t, bit),
            _ => self.update_any(t, bit),
        }
        self.update_final(bit);
    }

    /// [`Mixer2::update`] for a row length and set count known at compile
    /// time; falls back to [`Mixer2::update`] when they are not this mixer's.
    #[inline(always)]
    pub fn update_fixed<const S: usize, const K: usize>(&mut self, t: &Tables, bit: u32) {
        if self.stride != S || self.k != K || K > MAX_SETS {
            return self.update(t, bit);
        }
        let x: &[i32; S] = match self.x.first_chunk::<S>() {
            Some(x) => x,
            None => return self.update(t, bit),
        };
        // Local copies: the compiler then knows the inputs do not alias the weights.
        let x: [i32; S] = *x;
        let outs = self.outs;
        let target = (bit as i32) << 12;
        let (rows, _) = self.weights.as_chunks_mut::<S>();
        for (&o, &r) in outs.iter().zip(&self.rows).take(K) {
            // `outs` are clamped dot products, so squash needs no clamp.
            let err = ((target - t.squash_in_range(o)) * self.lr) >> 2;
            if let Some(w) = rows.get_mut(r) {
                train_n(w, &x, err);
            }
        }
        self.update_final(bit);
    }

    #[inline(always)]
    fn update_final(&mut self, bit: u32) {
        let target = (bit as i32) << 12;
        let err = ((target - self.pr) * self.lr_final) >> 2;
        // Lanes past `k` see input 0, so training leaves their weights as they are.
        let outs = self.outs;
        let (f, _) = self.final_w.as_chunks_mut::<FINAL_LANES>();
        if let Some(fw) = f.get_mut(self.final_row) {
            train_n(fw, &outs, err);
        }
        // Every bit adds the same inputs, so the slots past them stay zero.
        self.nin = 0;
    }

    #[inline(always)]
    fn update_n<const S: usize>(&mut self, t: &Tables, bit: u32) {
        let x: &[i32; S] = match self.x.first_chunk::<S>() {
            Some(x) => x,
            None => return self.update_any(t, bit),
        };
        let target = (bit as i32) << 12;
        let (rows, _) = self.weights.as_chunks_mut::<S>();
        for j in 0..self.k.min(MAX_SETS) {
            let err = ((target - t.squash(self.outs[j])) * self.lr) >> 2;
            if let Some(w) = rows.get_mut(self.rows[j]) {
                train_n(w, x, err);
            }
        }
    }

    #[inline(always)]
    fn update_any(&mut self, t: &Tables, bit: u32) {
        let st = self.stride;
        let target = (bit as i32) << 12;
        for j in 0..self.k {
            let err = ((target - t.squash(self.outs[j])) * self.lr) >> 2;
            let r = self.rows[j] * st;
            if let Some(w) = self.weights.get_mut(r..r + st) {
                train(w, &self.x[..st], err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctxmix::prim::tables;

    /// One step of [`Mixer2::mix_inputs`] / [`Mixer2::update_fixed`] against [`Mixer2::mix`] / [`Mixer2::update`].
    fn step_inputs<const S: usize, const K: usize>(a: &mut Mixer2, b: &mut Mixer2, x: &[i32; MAX_IN], cx: &[usize], fcx: usize, bit: u32) -> (i32, i32) {
        let t = tables();
        for &v in x.iter().take(b.stride) {
            b.add(v);
        }
        for m in [&mut *a, &mut *b] {
            for (i, &c) in cx.iter().enumerate() {
                m.set(i, c);
            }
            m.set_final(fcx);
        }
        let pa = a.mix_inputs::<S, K>(t, x);
        let pb = b.mix(t);
        a.update_fixed::<S, K>(t, bit);
        b.update(t, bit);
        (pa, pb)
    }

    /// The register-input path (fused reduction of the set sums) gives the integers of the generic one.
    #[test]
    fn input_path_matches_generic() {
        let mut s = 7u32;
        let mut rnd = move || {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            s >> 8
        };
        for (n, sets) in [(13usize, &[256usize, 128, 256, 256][..]), (29, &[256, 128, 256, 256]), (8, &[256, 128, 256]), (9, &[256]), (17, &[256, 128, 256, 256])] {
            let mut a = Mixer2::new(n, sets, 8, 2, 1);
            let mut b = Mixer2::new(n, sets, 8, 2, 1);
            for step in 0..3000 {
                let mut x = [0i32; MAX_IN];
                for v in x.iter_mut().take(n) {
                    *v = (rnd() % 4095) as i32 - 2047;
                }
                let cx: Vec<usize> = (0..sets.len()).map(|_| rnd() as usize).collect();
                let (fcx, bit) = (rnd() as usize, rnd() & 1);
                let (pa, pb) = match (a.stride, sets.len()) {
                    (16, 4) => step_inputs::<16, 4>(&mut a, &mut b, &x, &cx, fcx, bit),
                    (32, 4) => step_inputs::<32, 4>(&mut a, &mut b, &x, &cx, fcx, bit),
                    (24, 4) => step_inputs::<24, 4>(&mut a, &mut b, &x, &cx, fcx, bit),
                    (8, 3) => step_inputs::<8, 3>(&mut a, &mut b, &x, &cx, fcx, bit),
                    _ => step_inputs::<16, 1>(&mut a, &mut b, &x, &cx, fcx, bit),
                };
                assert_eq!(pa, pb, "n={n} step={step}");
                assert!(a.outs == b.outs && a.weights == b.weights && a.final_w == b.final_w, "n={n} step={step}");
            }
        }
    }

    /// The fixed-width paths must give the integers of the generic ones.
    #[test]
    fn fixed_width_paths_match_generic() {
        let t = tables();
        let mut s = 99u32;
        let mut rnd = move || {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            s >> 8
        };
        for n in [5usize, 8, 13, 16, 20, 29, 32] {
            for sets in [&[256usize][..], &[256, 128, 256], &[256, 128, 256, 256]] {
                let mut a = Mixer2::new(n, sets, 8, 2, 1);
                let mut b = Mixer2::new(n, sets, 8, 2, 1);
                for step in 0..3000 {
                    let xs: Vec<i32> = (0..n).map(|_| (rnd() % 4095) as i32 - 2047).collect();
                    let cx: Vec<usize> = (0..sets.len()).map(|_| rnd() as usize).collect();
                    let fcx = rnd() as usize;
                    let bit = rnd() & 1;
                    for m in [&mut a, &mut b] {
                        for &x in &xs {
                            m.add(x);
                        }
                        for (i, &c) in cx.iter().enumerate() {
                            m.set(i, c);
                        }
                        m.set_final(fcx);
                    }
                    let pa = a.mix(t);
                    b.mix_any(t);
                    // The final mixer as the generic code computes it: k lanes only.
                    let (fr, k) = (b.final_row * FINAL_LANES, b.k);
                    let pb = t.squash(mixer_dot(&b.final_w[fr..fr + k], &b.outs[..k]));
                    b.pr = pb;
                    assert_eq!(a.outs, b.outs, "n={n} sets={} step={step}", sets.len());
                    assert_eq!(pa, pb, "n={n} sets={} step={step}", sets.len());
                    a.update(t, bit);
                    // The generic update of the sets, then the same final-mixer step.
                    b.update_any(t, bit);
                    let target = (bit as i32) << 12;
                    let err = ((target - b.pr) * b.lr_final) >> 2;
                    train(&mut b.final_w[fr..fr + k], &b.outs[..k], err);
                    b.nin = 0;
                    assert!(
                        a.weights == b.weights && a.final_w == b.final_w,
                        "n={n} step={step}"
                    );
                }
            }
        }
    }
}
