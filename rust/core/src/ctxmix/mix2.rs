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

#[inline(always)]
fn train(w: &mut [i32], x: &[i32], err: i32) {
    for (a, &b) in w.iter_mut().zip(x) {
        *a = (*a + ((b * err + 512) >> 10)).clamp(-(1 << 19) + 1, (1 << 19) - 1);
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
    offsets: [usize; MAX_SETS],
    masks: [usize; MAX_SETS],
    rows: [usize; MAX_SETS],
    k: usize,
    outs: [i32; MAX_SETS],
    final_w: Vec<i32>,
    final_mask: usize,
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
            offsets[j] = total;
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
            outs: [0; MAX_SETS],
            final_w: vec![(1 << 16) / k as i32; fs * MAX_SETS],
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
        if let Some(s) = self.x.get_mut(self.nin) {
            *s = v.clamp(-2047, 2047);
            self.nin += 1;
        }
    }

    /// Choose the context of weight set `i`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, cx: usize) {
        if i < self.k {
            self.rows[i] = self.offsets[i] + (cx & self.masks[i]) * self.stride;
        }
    }

    /// Choose the context of the final mixer.
    #[inline(always)]
    pub fn set_final(&mut self, cx: usize) {
        self.final_row = (cx & self.final_mask) * MAX_SETS;
    }

    /// Mix the inputs into a 12-bit probability.
    #[inline(always)]
    pub fn mix(&mut self, t: &Tables) -> i32 {
        let st = self.stride;
        let x = &self.x[..st];
        for j in 0..self.k {
            let r = self.rows[j];
            self.outs[j] = match self.weights.get(r..r + st) {
                Some(w) => mixer_dot(w, x),
                None => 0,
            };
        }
        let fr = self.final_row;
        let d = match self.final_w.get(fr..fr + self.k) {
            Some(fw) => mixer_dot(fw, &self.outs[..self.k]),
            None => 0,
        };
        self.pr = t.squash(d);
        self.pr
    }

    /// Learn from the coded bit and clear the inputs.
    #[inline(always)]
    pub fn update(&mut self, t: &Tables, bit: u32) {
        let st = self.stride;
        let target = (bit as i32) << 12;
        for j in 0..self.k {
            let err = ((target - t.squash(self.outs[j])) * self.lr) >> 2;
            let r = self.rows[j];
            if let Some(w) = self.weights.get_mut(r..r + st) {
                train(w, &self.x[..st], err);
            }
        }
        let fr = self.final_row;
        let err = ((target - self.pr) * self.lr_final) >> 2;
        if let Some(fw) = self.final_w.get_mut(fr..fr + self.k) {
            train(fw, &self.outs[..self.k], err);
        }
        // Every bit adds the same inputs, so the slots past them stay zero.
        self.nin = 0;
    }
}
