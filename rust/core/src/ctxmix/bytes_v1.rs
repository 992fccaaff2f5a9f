//! The byte model of CM payload version 1, frozen: v1 payloads decode with
//! exactly this code, so nothing here may change (tests/golden/cm checks it).
//! New work goes into [`super::bytes`].
//!
//! The general byte model: bitwise (MSB first) prediction from hashed order-N
//! contexts, a word context, optional sparse/column contexts, a match model,
//! a gated mixer and two or three APM stages.

use super::prim::{
    big_vec, counter_p, counter_update, hash2, tables, Apm, CounterMap, Mixer, Tables, COUNTER_INIT,
};
use super::Io;

/// Which contexts a level uses and how big its tables are.
#[derive(Clone, Copy, Debug)]
pub struct ByteParams {
    /// Number of hashed contexts (see [`ByteModel::byte_contexts`]).
    pub contexts: usize,
    /// log2 of entries per hashed context table.
    pub table_bits: u32,
    /// log2 of match-model hash entries.
    pub match_bits: u32,
    /// Minimum match length hashed.
    pub match_min: usize,
    /// Counter count limit.
    pub limit: u32,
    /// Use the second and third APM stages.
    pub apm3: bool,
    /// Mixer weight sets (1: order-0 bits only; 3: also match state and order-1).
    pub mixer_sets: usize,
}

impl ByteParams {
    /// Parameters for `level` and a chunk of `raw_len` bytes.
    /// Memory: contexts * 4 * 2^table_bits + 4 * 2^match_bits + ~5 MiB.
    /// Levels 1-3: <= 4*4 MiB + 4 MiB; 4-6: <= 6*16 MiB + 16 MiB; 7-9: <= 10*16 MiB + 16 MiB.
    pub fn for_level(level: u8, raw_len: usize) -> Self {
        let (contexts, max_bits) = match level {
            0..=3 => (4, 20),
            4..=6 => (6, 22),
            _ => (10, 22),
        };
        let need = (raw_len.max(1) * 8).next_power_of_two().trailing_zeros();
        let table_bits = need.clamp(12, max_bits);
        let match_bits = (raw_len.max(1).next_power_of_two().trailing_zeros()).clamp(10, max_bits);
        ByteParams {
            contexts,
            table_bits,
            match_bits,
            match_min: 6,
            limit: 14,
            apm3: level >= 7,
            mixer_sets: if level <= 3 { 1 } else { 3 },
        }
    }
}

const MAX_CTX: usize = 10;

/// 16 counters of one nibble context: slot 0 holds a check value, slots
/// 1..=15 the binary tree of the nibble. One cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Bucket([u32; 16]);

const EMPTY: Bucket = Bucket([COUNTER_INIT; 16]);

#[inline(always)]
fn prefetch(b: &Bucket) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, and `b` is a valid reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch(
            b as *const Bucket as *const i8,
            core::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// State of the byte model. It sees every byte of the chunk (also sample
/// bytes coded by the sample model) through [`ByteModel::push`].
pub struct ByteModel {
    p: ByteParams,
    t: &'static Tables,
    hist: Vec<u8>,
    tabs: Vec<Vec<Bucket>>,
    mask: usize,
    ctx_hash: [u64; MAX_CTX],
    base: [usize; MAX_CTX],
    o0: CounterMap,
    o1: CounterMap,
    c0: u32,
    bitpos: u32,
    c8: u64,
    word: u64,
    word1: u64,
    line_start: usize,
    prev_line_start: usize,
    // match model
    mtab: Vec<u32>,
    mmask: usize,
    mptr: usize,
    mlen: usize,
    mbyte: u32,
    msm: CounterMap,
    mixer: Mixer,
    apm1: Apm,
    apm2: Apm,
    apm3: Apm,
    pr: i32,
    node: usize,
}

impl ByteModel {
    /// A fresh model for a chunk of `raw_len` bytes.
    pub fn new(p: ByteParams, raw_len: usize) -> Self {
        let size = 1usize << (p.table_bits - 4);
        let n_inputs = p.contexts + 2 + 3;
        let mut m = ByteModel {
            p,
            t: tables(),
            hist: Vec::with_capacity(raw_len),
            tabs: (0..p.contexts).map(|_| big_vec(size, EMPTY)).collect(),
            mask: size - 1,
            ctx_hash: [0; MAX_CTX],
            base: [0; MAX_CTX],
            o0: CounterMap::new(8, 1023),
            o1: CounterMap::new(16, 1023),
            c0: 1,
            bitpos: 0,
            c8: 0,
            word: 0,
            word1: 0,
            line_start: 0,
            prev_line_start: 0,
            mtab: big_vec(1 << p.match_bits, 0),
            mmask: (1 << p.match_bits) - 1,
            mptr: 0,
            mlen: 0,
            mbyte: 0,
            msm: CounterMap::new(16, 1023),
            mixer: Mixer::new(
                n_inputs,
                &[256, 16 * 8, 256][..p.mixer_sets.clamp(1, 3)],
                8,
                2,
            ),
            apm1: Apm::new(256, 7),
            apm2: Apm::new(1 << 16, 7),
            apm3: Apm::new(1 << 16, 7),
            pr: 2048,
            node: 1,
        };
        m.byte_contexts();
        m.nibble_bases();
        m
    }

    /// The hashed byte contexts at a byte boundary.
    fn byte_contexts(&mut self) {
        let c8 = self.c8;
        let pos = self.hist.len();
        let col = pos - self.line_start;
        let above = if self.prev_line_start + col < self.line_start {
            self.hist
                .get(self.prev_line_start + col)
                .copied()
                .unwrap_or(0) as u64
        } else {
            0
        };
        let cands: [u64; MAX_CTX] = [
            hash2(2, c8 & 0xFFFF),
            hash2(3, c8 & 0xFF_FFFF),
            hash2(4, c8 & 0xFFFF_FFFF),
            hash2(7, hash2(self.word, 0)),
            hash2(6, c8 & 0xFFFF_FFFF_FFFF),
            hash2(5, c8 & 0xFF_FFFF_FFFF),
            hash2(8, (c8 >> 8) & 0xFFFF),
            hash2(9, hash2(self.word, self.word1)),
            hash2(10, (above << 8) | (c8 & 0xFF)),
            hash2(
                11,
                (c8 & 0xFF00_FF00) | (above << 32) | ((col.min(255) as u64) << 40),
            ),
        ];
        let n = self.p.contexts.min(MAX_CTX);
        self.ctx_hash[..n].copy_from_slice(&cands[..n]);
    }

    fn nibble_bases(&mut self) {
        let n = self.p.contexts.min(MAX_CTX);
        let shift = 64 - (self.p.table_bits - 4);
        let mut hs = [0u64; MAX_CTX];
        let c0 = self.c0 as u64;
        let mask = self.mask;
        for ((h, &ch), tab) in hs.iter_mut().zip(&self.ctx_hash).zip(&self.tabs).take(n) {
            *h = hash2(ch, c0);
            let b0 = (*h >> shift) as usize & mask;
            prefetch(&tab[b0]);
            prefetch(&tab[b0 ^ 1]);
        }
        for ((&h, t), base) in hs
            .iter()
            .zip(self.tabs.iter_mut())
            .zip(self.base.iter_mut())
            .take(n)
        {
            let b0 = (h >> shift) as usize & mask;
            let chk = (h as u32 & 0xFFFF_FF00) | 0xAB;
            let b1 = b0 ^ 1;
            let pick = if t[b0].0[0] == chk {
                b0
            } else if t[b1].0[0] == chk {
                b1
            } else {
                let v = if (t[b0].0[1] & 1023) <= (t[b1].0[1] & 1023) {
                    b0
                } else {
                    b1
                };
                t[v] = EMPTY;
                t[v].0[0] = chk;
                v
            };
            *base = pick;
        }
    }

    /// Predict the next bit; 16-bit probability of a 1.
    fn predict(&mut self) -> u32 {
        let t = self.t;
        let n = self.p.contexts.min(MAX_CTX);
        let node = if self.bitpos < 4 {
            self.c0 as usize & 15
        } else {
            (self.c0 as usize & ((1 << (self.bitpos - 4)) - 1)) | (1 << (self.bitpos - 4))
        };
        let node = node & 15;
        self.node = node;
        for i in 0..n {
            let v = self.tabs[i][self.base[i] & self.mask].0[node];
            self.mixer.add(t.stretch(counter_p(v)));
        }
        let c1 = (self.c8 & 0xFF) as usize;
        self.mixer.add(t.stretch(self.o0.p(self.c0 as usize)));
        self.mixer
            .add(t.stretch(self.o1.p((c1 << 8) | self.c0 as usize)));
        // match model
        let mut lenb = 0usize;
        if self.mlen > 0 {
            let expected = (self.mbyte | 256) >> (8 - self.bitpos);
            if expected == self.c0 {
                let ebit = (self.mbyte >> (7 - self.bitpos)) & 1;
                lenb = if self.mlen < 16 {
                    self.mlen
                } else {
                    12 + (self.mlen.min(1023) as u32 >> 3).ilog2() as usize
                };
                lenb = lenb.min(15);
                let cx = (lenb << 1 | ebit as usize) << 8 | (c1 & 0xFF);
                let p = self.msm.p(cx);
                let st = t.stretch(p);
                self.mixer.add(st);
                let conf = (lenb as i32 * 64).min(1024);
                self.mixer.add(if ebit != 0 { conf } else { -conf });
            } else {
                self.mlen = 0;
                self.mixer.add(0);
                self.mixer.add(0);
            }
        } else {
            self.mixer.add(0);
            self.mixer.add(0);
        }
        self.mixer.add(256);
        self.mixer.set(0, self.c0 as usize);
        self.mixer.set(1, lenb * 8 + self.bitpos as usize);
        self.mixer.set(2, c1);
        self.mixer.set_final(self.bitpos as usize);
        let pr = self.mixer.mix(t);
        self.pr = pr;
        let a1 = self.apm1.p(t, pr, self.c0 as usize);
        let p16 = if self.p.apm3 {
            let h = (hash2(self.c8 & 0xFFFF, self.c0 as u64) >> 48) as usize;
            let a2 = self.apm2.p(t, pr, (c1 << 8) | self.c0 as usize);
            let a3 = self.apm3.p(t, pr, h);
            ((pr as u32 * 16) + a1 + a2 + a3) >> 2
        } else {
            ((pr as u32 * 16) + a1) >> 1
        };
        p16.clamp(1, 65535)
    }

    fn update(&mut self, bit: u32) {
        let n = self.p.contexts.min(MAX_CTX);
        let lim = self.p.limit;
        let node = self.node;
        for i in 0..n {
            let m = self.mask;
            counter_update(&mut self.tabs[i][self.base[i] & m].0[node], bit, lim);
        }
        let c1 = (self.c8 & 0xFF) as usize;
        self.o0.update(self.c0 as usize, bit);
        self.o1.update((c1 << 8) | self.c0 as usize, bit);
        if self.mlen > 0 {
            let expected = (self.mbyte | 256) >> (8 - self.bitpos);
            if expected == self.c0 {
                let ebit = (self.mbyte >> (7 - self.bitpos)) & 1;
                let lenb = if self.mlen < 16 {
                    self.mlen
                } else {
                    12 + (self.mlen.min(1023) as u32 >> 3).ilog2() as usize
                };
                let cx = ((lenb.min(15)) << 1 | ebit as usize) << 8 | (c1 & 0xFF);
                self.msm.update(cx, bit);
            }
        }
        self.mixer.update(self.t, bit);
        self.apm1.update(bit);
        if self.p.apm3 {
            self.apm2.update(bit);
            self.apm3.update(bit);
        }
        self.c0 = (self.c0 << 1) | bit;
        self.bitpos += 1;
        if self.bitpos == 4 {
            self.nibble_bases();
        }
    }

    /// Code one byte (`byte` is ignored when decoding); returns the byte.
    pub fn code<I: Io>(&mut self, io: &mut I, byte: u8) -> u8 {
        for i in (0..8).rev() {
            let p = self.predict();
            let bit = io.bit(p, (byte as u32 >> i) & 1);
            self.update(bit);
        }
        let b = (self.c0 & 0xFF) as u8;
        self.push(b);
        b
    }

    /// Append a byte to the history (after coding it, or for bytes coded elsewhere).
    pub fn push(&mut self, b: u8) {
        self.hist.push(b);
        self.c8 = (self.c8 << 8) | b as u64;
        self.c0 = 1;
        self.bitpos = 0;
        let pos = self.hist.len();
        let lb = b.to_ascii_lowercase();
        if lb.is_ascii_lowercase() || b >= 128 {
            self.word = hash2(self.word, lb as u64);
        } else if self.word != 0 {
            self.word1 = self.word;
            self.word = 0;
        }
        if b == b'\n' {
            self.prev_line_start = self.line_start;
            self.line_start = pos;
        }
        // match model
        if self.mlen > 0 && self.hist.get(self.mptr).copied() == Some(b) {
            self.mlen += 1;
            self.mptr += 1;
        } else {
            self.mlen = 0;
        }
        let mm = self.p.match_min;
        if pos >= mm {
            let h = (hash2(0x4D, self.c8 & ((1u64 << (8 * mm.clamp(1, 7))) - 1)) >> 40) as usize
                & self.mmask;
            if self.mlen == 0 {
                let cand = self.mtab[h] as usize;
                if cand > 0 && cand < pos {
                    let mut l = 0;
                    while l < 32
                        && l < cand
                        && self.hist.get(cand - 1 - l) == self.hist.get(pos - 1 - l)
                    {
                        l += 1;
                    }
                    if l >= mm.min(4) {
                        self.mlen = l;
                        self.mptr = cand;
                    }
                }
            }
            self.mtab[h] = pos as u32;
        }
        if self.mlen > 0 {
            match self.hist.get(self.mptr) {
                Some(&nb) => self.mbyte = nb as u32,
                None => self.mlen = 0,
            }
        }
        self.byte_contexts();
        self.nibble_bases();
    }
}
