//! Integer building blocks of the context-mixing engine: the logistic
//! stretch/squash tables (built with integer arithmetic only), adaptive
//! probability counters, the gated logistic mixer and APM/SSE stages.
//! Probabilities inside the model are 12-bit (`0..4096`); the logistic
//! domain is `-2047..=2047` with 8 fractional bits.

use std::sync::OnceLock;

/// Stretch/squash lookup tables.
pub struct Tables {
    /// 4095 entries (index `d + 2047`) and one pad entry, so a masked index needs no bounds check.
    squash: [i16; 4096],
    stretch: [i16; 4096],
}

fn build_tables() -> Tables {
    // e^(1/256) in Q40 from its power series (integer arithmetic only).
    const ONE: u128 = 1 << 40;
    let mut term = ONE;
    let mut e1 = ONE;
    for n in 1..12u128 {
        term /= 256 * n;
        e1 += term;
    }
    // pow[k] = e^(k/256) in Q40 for k in 0..=2047.
    let mut pow = Vec::with_capacity(2048);
    let mut cur = ONE;
    for _ in 0..2048 {
        pow.push(cur);
        cur = (cur * e1) >> 40;
    }
    let mut squash = Vec::with_capacity(4095);
    for d in -2047i32..=2047 {
        let ex = pow[d.unsigned_abs() as usize];
        let p = if d >= 0 {
            (4096 * ex + (ex + ONE) / 2) / (ex + ONE)
        } else {
            (4096 * ONE + (ex + ONE) / 2) / (ex + ONE)
        };
        squash.push(p.clamp(1, 4095) as i16);
    }
    let mut stretch = vec![2047i16; 4096];
    let mut pi = 0usize;
    for (k, &v) in squash.iter().enumerate() {
        let x = k as i32 - 2047;
        let v = v as usize;
        while pi <= v && pi < 4096 {
            stretch[pi] = x as i16;
            pi += 1;
        }
    }
    let mut sq = [0i16; 4096];
    sq[..squash.len()].copy_from_slice(&squash);
    sq[4095] = squash[4094];
    let mut st = [0i16; 4096];
    st.copy_from_slice(&stretch);
    Tables {
        squash: sq,
        stretch: st,
    }
}

/// The shared tables (built once).
pub fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(build_tables)
}

impl Tables {
    /// Logistic function: `-2047..=2047` -> 12-bit probability `1..=4095`.
    #[inline(always)]
    pub fn squash(&self, d: i32) -> i32 {
        self.squash[((d.clamp(-2047, 2047) + 2047) & 4095) as usize] as i32
    }
    /// [`Tables::squash`] of a value already in `-2047..=2047` (no clamp needed).
    #[inline(always)]
    pub fn squash_in_range(&self, d: i32) -> i32 {
        debug_assert!((-2047..=2047).contains(&d));
        self.squash[((d + 2047) & 4095) as usize] as i32
    }
    /// Inverse of [`Tables::squash`] for a 12-bit probability.
    #[inline(always)]
    pub fn stretch(&self, p: i32) -> i32 {
        self.stretch[(p & 4095) as usize] as i32
    }
}

/// Reciprocal table for adaptive-rate counters: `65536 * 2 / (2n + 3)`.
const DT: [i32; 1024] = {
    let mut d = [0i32; 1024];
    let mut n = 0;
    while n < 1024 {
        d[n] = 131072 / (2 * n as i32 + 3);
        n += 1;
    }
    d
};

/// Initial value of a counter: p = 1/2, count 0.
pub const COUNTER_INIT: u32 = 1 << 31;

/// 12-bit probability of a counter (22-bit probability, 10-bit count).
#[inline(always)]
pub fn counter_p(v: u32) -> i32 {
    (v >> 20) as i32
}

/// Update a counter toward `bit` with rate 1/(n+1.5), n capped at `limit`.
#[inline(always)]
pub fn counter_update(v: &mut u32, bit: u32, limit: u32) {
    let n = *v & 1023;
    let p = (*v >> 10) as i64;
    let target: i64 = if bit != 0 { (1 << 22) - 1 } else { 0 };
    // DT < 65536, so p moves less than the whole way to target: np stays in 0..2^22
    // (no clamp needed).
    let np = p + (((target - p) * DT[(n & 1023) as usize] as i64) >> 16);
    let nn = if n < limit { n + 1 } else { limit };
    *v = ((np as u32 & ((1 << 22) - 1)) << 10) | nn;
}

/// A direct-indexed table of adaptive counters (a StateMap over contexts).
pub struct CounterMap {
    t: Vec<u32>,
    mask: usize,
    limit: u32,
}

impl CounterMap {
    /// `bits`-bit context space; counts capped at `limit` (<= 1023).
    pub fn new(bits: u32, limit: u32) -> Self {
        CounterMap {
            t: big_vec(1 << bits, COUNTER_INIT),
            mask: (1 << bits) - 1,
            limit: limit.min(1023),
        }
    }
    /// 12-bit probability of context `cx`.
    #[inline(always)]
    pub fn p(&self, cx: usize) -> i32 {
        counter_p(self.t[cx & self.mask])
    }
    /// Update context `cx` with the coded bit.
    #[inline(always)]
    pub fn update(&mut self, cx: usize, bit: u32) {
        let lim = self.limit;
        counter_update(&mut self.t[cx & self.mask], bit, lim);
    }
}

/// The mixers' dot product in the stretch domain: weights are kept within +-2^19 and inputs
/// within +-2047, so every product and the sum fit in i32.
#[inline(always)]
pub(crate) fn mixer_dot(w: &[i32], x: &[i32]) -> i32 {
    let mut s: i32 = 0;
    for (a, b) in w.iter().zip(x) {
        s += (*a * *b) >> 8;
    }
    (s >> 8).clamp(-2047, 2047)
}

/// Gated logistic mixer: several weight sets, each chosen by its own context,
/// produce one prediction each; a final small mixer combines them.
pub struct Mixer {
    n: usize,
    weights: Vec<i32>,
    sizes: Vec<usize>,
    offsets: Vec<usize>,
    inputs: Vec<i32>,
    selected: Vec<usize>,
    outs: Vec<i32>,
    final_w: Vec<i32>,
    final_ctx: usize,
    final_sets: usize,
    pr: i32,
    lr: i32,
}

impl Mixer {
    /// `n` inputs; one weight set table per entry of `sets` (its context count);
    /// `final_sets` contexts for the final mixer; `lr` learning rate (~2..16).
    pub fn new(n: usize, sets: &[usize], final_sets: usize, lr: i32) -> Self {
        let mut offsets = Vec::with_capacity(sets.len());
        let mut total = 0;
        for &s in sets {
            offsets.push(total);
            total += s.max(1).next_power_of_two() * n;
        }
        let k = sets.len().max(1);
        Mixer {
            n,
            weights: vec![(1 << 16) / 4; total],
            sizes: sets.iter().map(|&s| s.max(1).next_power_of_two()).collect(),
            offsets,
            inputs: Vec::with_capacity(n),
            selected: vec![0; sets.len()],
            outs: vec![0; k],
            final_w: vec![(1 << 16) / k as i32; final_sets.max(1).next_power_of_two() * k],
            final_ctx: 0,
            final_sets: final_sets.max(1).next_power_of_two(),
            pr: 2048,
            lr,
        }
    }

    /// Add one input (a stretched probability).
    #[inline(always)]
    pub fn add(&mut self, x: i32) {
        self.inputs.push(x.clamp(-2047, 2047));
    }

    /// Choose the context of weight set `i`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, cx: usize) {
        if let (Some(s), Some(&size)) = (self.selected.get_mut(i), self.sizes.get(i)) {
            *s = cx & (size - 1);
        }
    }

    /// Choose the context of the final mixer.
    #[inline(always)]
    pub fn set_final(&mut self, cx: usize) {
        self.final_ctx = cx & (self.final_sets - 1);
    }

    /// Mix the inputs into a 12-bit probability.
    pub fn mix(&mut self, t: &Tables) -> i32 {
        while self.inputs.len() < self.n {
            self.inputs.push(0);
        }
        self.inputs.truncate(self.n);
        let n = self.n;
        for (j, (&off, &sel)) in self.offsets.iter().zip(&self.selected).enumerate() {
            let base = off + sel * n;
            let w = self.weights.get(base..base + n).unwrap_or(&[]);
            if let Some(o) = self.outs.get_mut(j) {
                *o = mixer_dot(w, &self.inputs);
            }
        }
        let k = self.outs.len();
        let fb = self.final_ctx * k;
        let fw = self.final_w.get(fb..fb + k).unwrap_or(&[]);
        let d = mixer_dot(fw, &self.outs);
        self.pr = t.squash(d);
        self.pr
    }

    fn train(w: &mut [i32], x: &[i32], err: i32) {
        for (a, &b) in w.iter_mut().zip(x) {
            *a = (*a + ((b * err + 512) >> 10)).clamp(-(1 << 19) + 1, (1 << 19) - 1);
        }
    }

    /// Learn from the coded bit and clear the inputs.
    pub fn update(&mut self, t: &Tables, bit: u32) {
        let n = self.n;
        let target = (bit as i32) << 12;
        for (j, (&off, &sel)) in self.offsets.iter().zip(&self.selected).enumerate() {
            let o = self.outs.get(j).copied().unwrap_or(0);
            let err = ((target - t.squash(o)) * self.lr) >> 2;
            let base = off + sel * n;
            if let Some(w) = self.weights.get_mut(base..base + n) {
                Self::train(w, &self.inputs, err);
            }
        }
        let k = self.outs.len();
        let fb = self.final_ctx * k;
        let err = ((target - self.pr) * 2) >> 2;
        if let Some(fw) = self.final_w.get_mut(fb..fb + k) {
            Self::train(fw, &self.outs, err);
        }
        self.inputs.clear();
    }
}

/// Adaptive probability map (SSE): refines a probability given a context by
/// interpolating between 33 buckets over the stretched input. 16-bit output.
pub struct Apm {
    t: Vec<u16>,
    n: usize,
    idx: usize,
    rate: u32,
}

impl Apm {
    /// `n` contexts, adaptation shift `rate`.
    pub fn new(n: usize, rate: u32) -> Self {
        let tb = tables();
        let n = n.max(1).next_power_of_two();
        let row: Vec<u16> = (0..33)
            .map(|j| (tb.squash((j - 16) * 128) * 16) as u16)
            .collect();
        // Huge pages for the large (order-1/order-2) maps: their rows are read at random.
        let mut t = big_vec(n * 33, 0u16);
        for r in t.chunks_exact_mut(33) {
            r.copy_from_slice(&row);
        }
        Apm { t, n, idx: 0, rate }
    }

    /// Refine 12-bit probability `pr` in context `cx`; returns a 16-bit probability.
    #[inline(always)]
    pub fn p(&mut self, t: &Tables, pr: i32, cx: usize) -> u32 {
        self.p_stretched(t.stretch(pr), cx)
    }

    /// [`Apm::p`] given `st = t.stretch(pr)` (several APMs refining one probability share it).
    #[inline(always)]
    pub fn p_stretched(&mut self, st: i32, cx: usize) -> u32 {
        let s = (st + 2048) & 4095; // 1..4095
        let lo = (s >> 7) as usize; // 0..31
        let w = (s & 127) as u32;
        let base = (cx & (self.n - 1)) * 33 + lo;
        self.idx = base + ((w >> 6) as usize);
        let (a, b) = match self.t.get(base..base + 2) {
            Some(&[a, b]) => (a as u32, b as u32),
            _ => (32768, 32768),
        };
        (a * (128 - w) + b * w) >> 7
    }

    /// Prefetch the `rows` consecutive context rows starting at `cx` (a hint only).
    #[inline(always)]
    pub fn prefetch(&self, cx: usize, rows: usize) {
        let base = (cx & (self.n - 1)) * 33;
        // 33 u16 per row (66 bytes, at most 2 lines apart from a rare third):
        // entries 0 and 32 cover one row, entries 64 and 65 the rest of a row
        // pair. Prefetching never faults, so the addresses need no bounds check.
        let p = self.t.as_ptr().wrapping_add(base);
        prefetch_ptr(p);
        prefetch_ptr(p.wrapping_add(32));
        if rows > 1 {
            prefetch_ptr(p.wrapping_add(64));
            prefetch_ptr(p.wrapping_add(65));
        }
    }

    /// Update the bucket nearest to the last query.
    #[inline(always)]
    pub fn update(&mut self, bit: u32) {
        let g = if bit != 0 { 65535i32 } else { 0 };
        if let Some(v) = self.t.get_mut(self.idx) {
            let cur = *v as i32;
            *v = (cur + ((g - cur) >> self.rate)) as u16;
        }
    }
}

/// Ask the CPU to fetch the cache line of `r` (a hint that never faults).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, and `r` is a valid reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch(
            r as *const T as *const i8,
            core::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Prefetch the cache line holding `p` (a hint that never faults, even for a dangling pointer).
#[inline(always)]
pub fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A vector of `n` copies of `v` whose pages are marked for transparent huge
/// pages before first touch (hashed context tables are read at random, and
/// 4 KiB pages would make nearly every lookup a TLB miss).
pub fn big_vec<T: Clone>(n: usize, v: T) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = n * std::mem::size_of::<T>();
        if bytes >= 2 * HUGE {
            let start = out.as_mut_ptr() as usize;
            let lo = (start + HUGE - 1) & !(HUGE - 1);
            let hi = (start + bytes) & !(HUGE - 1);
            if hi > lo {
                // SAFETY: [lo, hi) lies inside the allocation owned by `out`;
                // madvise only changes the paging policy of that range.
                unsafe {
                    libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    out.resize(n, v);
    out
}

/// 64-bit hash of two values.
#[inline(always)]
pub fn hash2(a: u64, b: u64) -> u64 {
    let h = (a ^ 0x243F_6A88_85A3_08D3).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^ (h >> 29)
}

/// Bucketed logarithm with 2 fractional bits (0 for 0).
#[inline(always)]
pub fn qlog(x: u32) -> u32 {
    if x == 0 {
        return 0;
    }
    let l = 32 - x.leading_zeros();
    let frac = if l >= 3 {
        (x >> (l - 3)) & 3
    } else {
        (x << (3 - l)) & 3
    };
    l * 4 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_stretch_consistent() {
        let t = tables();
        assert_eq!(t.squash(0), 2048);
        assert!(t.squash(2047) >= 4094);
        assert!(t.squash(-2047) <= 2);
        for p in 1..4095 {
            let d = t.stretch(p);
            assert!(t.squash(d) >= p, "p={p}");
        }
        for d in -2000..2000 {
            assert!(t.squash(d) <= t.squash(d + 1));
        }
        // Mixer inputs rely on this (Mixer2::add_in_range skips the clamp).
        assert!((0..8192).all(|p| (-2047..=2047).contains(&t.stretch(p))));
        assert_eq!(t.squash(5000), t.squash(2047));
    }

    #[test]
    fn counter_update_needs_no_clamp() {
        // The clamp-free update must equal the clamped formula for every count
        // and both bits, at the extreme and at sampled probabilities.
        for n in 0..1024u32 {
            for p in [0u32, 1, 2, 1000, 1 << 21, (1 << 22) - 2, (1 << 22) - 1]
                .into_iter()
                .chain((0..64).map(|k| k * 65_537 % (1 << 22)))
            {
                for bit in 0..2 {
                    for limit in [14, 1023] {
                        let v0 = (p << 10) | n;
                        let mut v = v0;
                        counter_update(&mut v, bit, limit);
                        let target: i64 = if bit != 0 { (1 << 22) - 1 } else { 0 };
                        let np = p as i64 + (((target - p as i64) * DT[n as usize] as i64) >> 16);
                        let nn = if n < limit { n + 1 } else { limit };
                        let want = ((np.clamp(0, (1 << 22) - 1) as u32) << 10) | nn;
                        assert_eq!(v, want, "p={p} n={n} bit={bit}");
                    }
                }
            }
        }
    }

    #[test]
    fn counter_learns() {
        let mut v = COUNTER_INIT;
        for _ in 0..100 {
            counter_update(&mut v, 1, 255);
        }
        assert!(counter_p(v) > 4000);
    }
}
