//! The general byte model (CM payload version 2): bitwise (MSB first)
//! prediction from hashed order-N contexts, word contexts, optional
//! sparse/column contexts, a match model, a gated mixer and APM stages.
//!
//! Per nibble each hashed context owns one 64-byte bucket (a check value and
//! the 15 counters of the nibble's binary tree), found with a 2-way probe. The
//! bucket addresses of the next nibble are computed and prefetched before the
//! mixer learns from the last bit, so the memory latency overlaps with work.
//! The whole per-byte loop is compiled twice (baseline and AVX2, chosen at run
//! time), and within each once per level shape (context count, mixer row
//! length, weight sets; see `Shape`) plus a run-time-count fallback; all are the
//! same integer code, so they code identical bits.

use super::mix2::{Mixer2, MAX_IN};
use super::prim::{
    big_vec, counter_p, counter_update, hash2, prefetch, prefetch_ptr, tables, Apm, CounterMap,
    Tables, COUNTER_INIT,
};
use super::record::RecordLen;
use super::Io;
use crate::hint::Modality;

/// Most hashed contexts of a level.
pub const MAX_CTX: usize = 12;

/// The hashed byte contexts a level can choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// Last 2 bytes.
    O2,
    /// Last 3 bytes.
    O3,
    /// Last 4 bytes.
    O4,
    /// Last 5 bytes.
    O5,
    /// Last 6 bytes.
    O6,
    /// Hash of the current word (letters, case folded, and bytes >= 128).
    Word,
    /// Current and previous word.
    Word2,
    /// Bytes 2 and 3 back (skipping the last byte).
    Sparse,
    /// Byte above (same column of the previous line) and the last byte.
    Above,
    /// Bytes 2 and 4 back, the byte above and the column.
    Column,
    /// (v3, gene) Last 2 bytes and the line kind.
    KindO2,
    /// (v3, gene) In sequence lines the last `n` nucleotides (2 bits each,
    /// newlines skipped) and the case of the last one; in other lines the
    /// fallback context of the second field.
    Nuc(u8, Alt),
    /// (binary) The byte 2 back alone.
    Skip1,
    /// (binary) Bytes 3 and 4 back.
    Skip2,
    /// (binary) The last byte and the position modulo 4.
    Align,
    /// (binary) Bytes 4 and 8 back and the last byte (32-bit fields).
    Dword,
    /// (v5 binary) The detected record length `r` (see `RecordLen`), the
    /// position modulo `r`, the byte `r` back and the last byte.
    Rec,
    /// (v5 binary) The record length, the bytes `r` and `2r` back.
    Rec2,
}

/// The context a [`Ctx::Nuc`] slot uses outside sequence lines (FASTA/FASTQ
/// headers, `+` lines, quality lines); all include the line kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alt {
    /// Last 3 bytes.
    O3,
    /// Last 4 bytes.
    O4,
    /// Last 6 bytes.
    O6,
    /// The byte at this column of the previous line of the same kind, the column and the last byte.
    Col,
    /// The byte at this column of the previous line of the same kind and the last 2 bytes.
    Above,
}

/// Line kinds of FASTA/FASTQ text (gene contexts).
const SEQ: u8 = 0;
const HEAD: u8 = 1;
const PLUS: u8 = 2;
const QUAL: u8 = 3;

/// Line structure of FASTA/FASTQ data as the gene contexts see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GeneState {
    /// Kind of the current line; at column 0 the kind expected after the previous line.
    kind: u8,
    /// Kind of the previous line.
    prev: u8,
    /// Case bit (0x20) of the last nucleotide.
    case: u8,
    /// The last 32 nucleotides of sequence lines, 2 bits each (A=0 C=1 T=2 G/N=3).
    nuc: u64,
    /// Start of the last finished line of each kind.
    kstart: [usize; 4],
}

impl GeneState {
    /// The state after byte `b`, which sits at column `col` of the line starting at `line_start`.
    #[inline(always)]
    fn after(&self, b: u8, col: usize, line_start: usize) -> GeneState {
        let mut g = *self;
        if b == b'\n' {
            g.kstart[(g.kind & 3) as usize] = line_start;
            g.prev = g.kind;
            g.kind = match g.prev {
                HEAD => SEQ,
                PLUS => QUAL,
                QUAL => HEAD,
                _ => SEQ,
            };
        } else {
            if col == 0 {
                g.kind = if g.prev == PLUS {
                    QUAL
                } else {
                    match b {
                        b'>' | b'@' => HEAD,
                        b'+' => PLUS,
                        _ => SEQ,
                    }
                };
            }
            if g.kind == SEQ {
                g.nuc = (g.nuc << 2) | ((b >> 1) & 3) as u64;
                g.case = b & 0x20;
            }
        }
        g
    }
}

use Ctx::{Above, Align, Column, Dword, KindO2, Nuc, Rec, Rec2, Skip1, Skip2, Sparse, Word, Word2, O2, O3, O4, O5, O6};

/// The context lists of the levels of [`ByteParams::for_version`]: levels 1-3;
/// levels 4-6; levels 7-9; gene levels 4-6; gene levels 7-9. Each list has its
/// own length, so a shape's context count names its list (see [`Shape::of`]).
const CTX4: [Ctx; 4] = [O2, O3, O4, Word];
const CTX5: [Ctx; 5] = [O2, O3, O4, Word, Column];
const CTX10: [Ctx; 10] = [O2, O3, O4, Word, O6, O5, Sparse, Word2, Above, Column];
const CTX7: [Ctx; 7] = [KindO2, O3, O4, Word, Column, Nuc(12, Alt::Col), Nuc(20, Alt::Above)];
const CTX12: [Ctx; 12] = [
    KindO2,
    O3,
    O4,
    Word,
    O6,
    O5,
    Word2,
    Above,
    Column,
    Nuc(12, Alt::Col),
    Nuc(16, Alt::Above),
    Nuc(20, Alt::Col),
];

/// (v4) The context lists of binary chunks: levels 1-3; 4-6; 7-9 (sparse and
/// 32-bit-field contexts instead of line and word structure). They have no
/// compiled shape except the 9-context list (the default level): [`Shape::of`]
/// sends the others to the run-time path (their counts name other lists).
const CTXB4: [Ctx; 4] = [O2, O4, Skip2, Align];
const CTXB9: [Ctx; 9] = [O2, O3, O4, O6, Word, Sparse, Skip2, Dword, Align];
const CTXB12: [Ctx; 12] = [O2, O3, O4, O5, O6, Word, Sparse, Skip2, Dword, Align, Skip1, Word2];

/// (v5) The context lists of binary chunks with the record contexts (see
/// `record.rs`; Word and some longer orders give way): levels 1-3; 4-6 (as
/// long as v4's list, its own compiled shape under key [`REC_KEY`] + 9); 7-9.
const CTXR5: [Ctx; 5] = [O2, O3, Skip2, Rec, Rec2];
const CTXR9: [Ctx; 9] = [O2, O3, O4, Sparse, Skip2, Dword, Align, Rec, Rec2];
const CTXR12: [Ctx; 12] = [O2, O3, O4, O5, O6, Sparse, Skip2, Dword, Align, Skip1, Rec, Rec2];

/// A compiled shape's key is its context count, plus this for a second list
/// of the same length (the v5 binary list of levels 4-6): the key's low bits
/// are the count (`ByteModel::cnt`), the whole key names the list (`shape_ctx`).
const REC_KEY: usize = 16;

/// The context list of the compiled shape with key `n` (its context count,
/// see [`REC_KEY`]; `None`: read the params at run time).
#[inline(always)]
const fn shape_ctx(n: usize) -> Option<&'static [Ctx]> {
    match n {
        4 => Some(&CTX4),
        5 => Some(&CTX5),
        7 => Some(&CTX7),
        9 => Some(&CTXB9),
        10 => Some(&CTX10),
        25 => Some(&CTXR9),
        12 => Some(&CTX12),
        _ => None,
    }
}

/// The input flags `(young, o0_input, conf_input)` of the compiled shape with
/// key `n`, `s` row lanes and `k` weight sets (`None`: read the params at run time).
#[inline(always)]
const fn shape_inputs(n: usize, s: usize, k: usize) -> Option<(bool, bool, bool)> {
    match (n, s, k) {
        (4, 16, 1) | (10, 16, 3) => Some((false, true, true)),
        (5, 8, 3) => Some((false, false, false)),
        (5, 16, 4) | (7, 24, 4) | (9, 24, 4) | (25, 24, 4) => Some((true, false, false)),
        (10, 32, 4) | (12, 32, 4) => Some((true, true, true)),
        _ => None,
    }
}

/// Which contexts a level uses and how big its tables are.
#[derive(Clone, Copy, Debug)]
pub struct ByteParams {
    /// The hashed contexts (first `contexts` entries are used).
    pub ctx: [Ctx; MAX_CTX],
    /// Number of hashed contexts.
    pub contexts: usize,
    /// log2 of entries (counters) per hashed context table.
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
    /// Feed the order-0 counter to the mixer.
    pub o0_input: bool,
    /// Feed the match model's fixed length-confidence input to the mixer.
    pub conf_input: bool,
    /// Learning rate of the mixer's weight sets.
    pub lr: i32,
    /// Track FASTA/FASTQ line kinds and nucleotides (v3, gene data).
    pub gene: bool,
    /// (v3) A fourth mixer weight set, selected by which of the last five
    /// contexts have a non-fresh counter (and the bit position).
    pub seen_set: bool,
    /// (v3) At levels without the three-stage APM chain: a second APM on order 1.
    pub apm_o1: bool,
    /// (v3) A second input per context: its stretched probability while the
    /// counter is young (fewer than 3 updates), else 0.
    pub young: bool,
    /// Learning rate of the final mixer.
    pub lr_final: i32,
    /// (v5) Run the record-length detector for the [`Ctx::Rec`] contexts.
    pub rec: bool,
}

impl ByteParams {
    /// Version-2 parameters for `level` and a chunk of `raw_len` bytes.
    pub fn for_level(level: u8, raw_len: usize) -> Self {
        Self::for_version(2, level, raw_len, Modality::Text)
    }

    /// Parameters of CM payload `version` (2 to 5) for `level`, a chunk of
    /// `raw_len` bytes and the chunk's modality (version 2 ignores it).
    /// Memory: contexts * 4 * 2^table_bits + 4 * 2^match_bits + APMs (~9 MiB
    /// with the order-1/order-2 APMs, else ~0.1 MiB) + ~1 MiB. Levels 1-3:
    /// <= 4*4 MiB + 4 MiB; 4-6: <= 5*8 MiB + 8 MiB (v3 gene: 7 contexts);
    /// 7-9: <= 10*16 MiB + 16 MiB (v3 gene, v4 binary: 12 contexts; v4 binary
    /// 4-6: 9 contexts; v5 binary: 5, 9 and 12 contexts).
    pub fn for_version(version: u8, level: u8, raw_len: usize, modality: Modality) -> Self {
        use Ctx::*;
        // Version 3 changes levels 4-9 only; levels 1-3 code as in version 2.
        // Versions 4 and 5 change the context lists of binary chunks only (all levels).
        let v3 = version >= 3 && level >= 4;
        let gene = v3 && modality == Modality::Gene;
        let binary = version >= 4 && modality == Modality::Binary;
        let record = version >= 5;
        let mut ctx = [O2; MAX_CTX];
        let list: &[Ctx] = match (gene, binary, level) {
            (_, true, 0..=3) if record => &CTXR5,
            (_, true, 4..=6) if record => &CTXR9,
            (_, true, _) if record => &CTXR12,
            (_, true, 0..=3) => &CTXB4,
            (_, true, 4..=6) => &CTXB9,
            (_, true, _) => &CTXB12,
            (false, false, 0..=3) => &CTX4,
            (false, false, 4..=6) => &CTX5,
            (false, false, _) => &CTX10,
            (true, false, 0..=6) => &CTX7,
            (true, false, _) => &CTX12,
        };
        ctx[..list.len()].copy_from_slice(list);
        let max_bits = match level {
            0..=3 => 20,
            4..=6 => 21,
            _ => 22,
        };
        let need = (raw_len.max(1) * 8).next_power_of_two().trailing_zeros();
        let table_bits = need.clamp(12, max_bits);
        let match_bits = (raw_len.max(1).next_power_of_two().trailing_zeros()).clamp(10, max_bits);
        let mid = (4..=6).contains(&level);
        ByteParams {
            ctx,
            contexts: list.len(),
            table_bits,
            match_bits,
            match_min: 6,
            limit: 14,
            apm3: level >= 7,
            mixer_sets: if level <= 3 { 1 } else { 3 },
            o0_input: !mid,
            conf_input: !mid,
            lr: match (v3, mid) {
                // v5 binary chunks learn faster (tables of mixed fields change weights often).
                (true, _) if binary && record => 4,
                (false, true) => 3,
                (false, false) | (true, true) => 2,
                (true, false) => 1,
            },
            lr_final: if v3 { 1 } else { 2 },
            gene,
            seen_set: v3,
            apm_o1: v3 && mid,
            young: v3,
            rec: list.iter().any(|c| matches!(c, Rec | Rec2)),
        }
    }
}

/// Model shapes with their own compiled code: hashed contexts, mixer row
/// lanes and weight sets (the levels of [`ByteParams::for_version`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Levels 1-3.
    N4S16K1,
    /// Version 2, levels 4-6.
    N5S8K3,
    /// Version 2, levels 7-9.
    N10S16K3,
    /// Version 3 text, levels 4-6.
    N5S16K4,
    /// Version 3 text, levels 7-9.
    N10S32K4,
    /// Version 3 gene, levels 4-6.
    N7S24K4,
    /// Version 3 gene, levels 7-9.
    N12S32K4,
    /// Version 4 binary, levels 4-6.
    N9S24K4,
    /// Version 5 binary, levels 4-6 (key `REC_KEY` + 9).
    R9S24K4,
    /// Anything else (counts read at run time).
    Any,
}

impl Shape {
    fn of(p: &ByteParams, n: usize, n_inputs: usize, sets: usize) -> Shape {
        // The compiled shapes hash the context list of their key (`shape_ctx`)
        // and feed the inputs of their `shape_inputs` flags.
        let s = n_inputs.div_ceil(8) * 8;
        let Some(key) = [n, n + REC_KEY].into_iter().find(|&k| shape_ctx(k) == p.ctx.get(..n)) else {
            return Shape::Any;
        };
        if shape_inputs(key, s, sets) != Some((p.young, p.o0_input, p.conf_input)) {
            return Shape::Any;
        }
        match (key, s, sets) {
            (4, 16, 1) => Shape::N4S16K1,
            (5, 8, 3) => Shape::N5S8K3,
            (10, 16, 3) => Shape::N10S16K3,
            (5, 16, 4) => Shape::N5S16K4,
            (10, 32, 4) => Shape::N10S32K4,
            (7, 24, 4) => Shape::N7S24K4,
            (12, 32, 4) => Shape::N12S32K4,
            (9, 24, 4) => Shape::N9S24K4,
            (25, 24, 4) => Shape::R9S24K4,
            _ => Shape::Any,
        }
    }
}

/// 16 counters of one nibble context: slot 0 holds a check value, slots
/// 1..=15 the binary tree of the nibble. One cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Bucket([u32; 16]);

const EMPTY: Bucket = Bucket([COUNTER_INIT; 16]);

/// State of the byte model. It sees every byte of the chunk (also sample
/// bytes coded by the sample model) through [`ByteModel::push`].
pub struct ByteModel {
    p: ByteParams,
    n: usize,
    t: &'static Tables,
    hist: Vec<u8>,
    /// All context tables back to back, `1 << (table_bits - 4)` buckets each.
    tab: Vec<Bucket>,
    size: usize,
    mask: usize,
    ctx_hash: [u64; MAX_CTX],
    /// Candidate bucket (first of the 2-way pair) per context.
    cand: [usize; MAX_CTX],
    chk: [u32; MAX_CTX],
    /// Chosen bucket (absolute index into `tab`) per context.
    base: [usize; MAX_CTX],
    /// Working copies of the chosen buckets: the bits of a nibble read and
    /// update these; [`ByteModel::nibble_select`] writes them back to `base`
    /// before it picks the next ones (each context has its own table, so no
    /// two copies are of the same bucket).
    cur: [Bucket; MAX_CTX],
    o0: CounterMap,
    o1: CounterMap,
    c0: u32,
    bitpos: u32,
    c8: u64,
    word: u64,
    word1: u64,
    line_start: usize,
    prev_line_start: usize,
    gs: GeneState,
    /// (v5) Record-length detector (boxed: rows swap it by pointer).
    rl: Box<RecordLen>,
    // match model
    mtab: Vec<u32>,
    mmask: usize,
    mhash: usize,
    mtag: u8,
    pmask: u32,
    mptr: usize,
    mlen: usize,
    mbyte: u32,
    msm: CounterMap,
    msm_cx: Option<usize>,
    /// Byte contexts after both possible last bits (computed at bit 7).
    spec: [[u64; MAX_CTX]; 2],
    /// `c0` when `spec` was computed (0: not valid).
    spec_c0: u32,
    o1_cx: usize,
    mixer: Mixer2,
    apm1: Apm,
    apm2: Apm,
    apm3: Apm,
    node: usize,
    shape: Shape,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl ByteModel {
    /// A fresh model for a chunk of `raw_len` bytes.
    pub fn new(p: ByteParams, raw_len: usize) -> Self {
        let n = p.contexts.min(MAX_CTX);
        let size = 1usize << (p.table_bits - 4);
        let n_inputs =
            n + 3 + p.o0_input as usize + p.conf_input as usize + if p.young { n } else { 0 };
        let sets = if p.mixer_sets >= 3 && p.seen_set {
            4
        } else {
            p.mixer_sets.clamp(1, 3)
        };
        let mut m = ByteModel {
            p,
            n,
            t: tables(),
            hist: Vec::with_capacity(raw_len),
            tab: big_vec(size * n.max(1), EMPTY),
            size,
            mask: size - 1,
            ctx_hash: [0; MAX_CTX],
            cand: [0; MAX_CTX],
            chk: [0; MAX_CTX],
            base: std::array::from_fn(|i| if i < n { i * size } else { 0 }),
            cur: [EMPTY; MAX_CTX],
            o0: CounterMap::new(8, 1023),
            o1: CounterMap::new(16, 1023),
            c0: 1,
            bitpos: 0,
            c8: 0,
            word: 0,
            word1: 0,
            line_start: 0,
            prev_line_start: 0,
            gs: GeneState::default(),
            rl: Box::default(),
            mtab: big_vec(1 << p.match_bits, 0),
            mmask: (1 << p.match_bits) - 1,
            mhash: 0,
            mtag: 0,
            pmask: if raw_len < 1 << 25 {
                (1 << 25) - 1
            } else {
                u32::MAX
            },
            mptr: 0,
            mlen: 0,
            mbyte: 0,
            msm: CounterMap::new(16, 1023),
            msm_cx: None,
            spec: [[0; MAX_CTX]; 2],
            spec_c0: 0,
            o1_cx: 0,
            mixer: Mixer2::new(
                n_inputs,
                &[256, 16 * 8, 256, 256][..sets],
                8,
                p.lr,
                p.lr_final,
            ),
            apm1: Apm::new(256, 7),
            apm2: Apm::new(if p.apm3 || p.apm_o1 { 1 << 16 } else { 1 }, 7),
            apm3: Apm::new(if p.apm3 { 1 << 16 } else { 1 }, 7),
            node: 1,
            shape: Shape::of(&p, n, n_inputs, sets),
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2"),
        };
        m.ctx_hash = m.initial_contexts();
        m.nibble_hashes::<0>();
        m.nibble_select::<0>();
        m
    }

    /// The number of hashed contexts of shape key `N` (its low bits, see
    /// [`REC_KEY`]), or when `N` is 0 the runtime count.
    #[inline(always)]
    fn cnt<const N: usize>(&self) -> usize {
        let n = N % REC_KEY;
        if N == 0 || n > MAX_CTX {
            self.n
        } else {
            n
        }
    }

    /// The word hashes after byte `b`.
    #[inline(always)]
    fn words_after(&self, b: u8) -> (u64, u64) {
        let lb = b.to_ascii_lowercase();
        if lb.is_ascii_lowercase() || b >= 128 {
            (hash2(self.word, lb as u64), self.word1)
        } else if self.word != 0 {
            (0, self.word)
        } else {
            (0, self.word1)
        }
    }

    /// The hashed byte contexts as they will be once byte `b` is appended
    /// (a pure function of the state, so it can run a bit early).
    #[inline(always)]
    fn contexts_after<const N: usize>(&self, b: u8) -> [u64; MAX_CTX] {
        let c8 = (self.c8 << 8) | b as u64;
        let pos = self.hist.len() + 1;
        let (word, word1) = self.words_after(b);
        let (line_start, prev_line_start) = if b == b'\n' {
            (pos, self.line_start)
        } else {
            (self.line_start, self.prev_line_start)
        };
        let col = pos - line_start;
        let at = |i: usize| {
            if i + 1 == pos {
                b as u64
            } else {
                self.hist.get(i).copied().unwrap_or(0) as u64
            }
        };
        let above = if prev_line_start + col < line_start {
            at(prev_line_start + col)
        } else {
            0
        };
        let (g, above_k) = if self.p.gene {
            let g = self.gs.after(b, pos - 1 - self.line_start, self.line_start);
            let k = g.kstart[(g.kind & 3) as usize] + col;
            (g, if k < line_start { at(k) } else { 0 })
        } else {
            (self.gs, 0)
        };
        let rec = if self.p.rec {
            let r = self.rl.record_len() as usize;
            let back = |k: usize| if r > 0 && pos >= k * r { at(pos - k * r) } else { 0 };
            [r as u64, if r > 0 { (pos % r) as u64 } else { 0 }, back(1), back(2)]
        } else {
            [0; 4]
        };
        self.ctx_values::<N>(c8, word, word1, above, col, &g, above_k, pos, rec)
    }

    /// The contexts at the start of a chunk.
    fn initial_contexts(&self) -> [u64; MAX_CTX] {
        self.ctx_values::<0>(0, 0, 0, 0, 0, &GeneState::default(), 0, 0, [0; 4])
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn ctx_values<const N: usize>(
        &self,
        c8: u64,
        word: u64,
        word1: u64,
        above: u64,
        col: usize,
        g: &GeneState,
        above_k: u64,
        pos: usize,
        rec: [u64; 4],
    ) -> [u64; MAX_CTX] {
        let mut out = [0u64; MAX_CTX];
        let kind = (g.kind as u64) << 56;
        // A compiled shape's list is a constant, so the match below folds away.
        let list: &[Ctx] = match shape_ctx(N) {
            Some(l) => l,
            None => &self.p.ctx,
        };
        for (o, c) in out.iter_mut().zip(list).take(self.cnt::<N>()) {
            *o = match c {
                Ctx::O2 => hash2(2, c8 & 0xFFFF),
                Ctx::O3 => hash2(3, c8 & 0xFF_FFFF),
                Ctx::O4 => hash2(4, c8 & 0xFFFF_FFFF),
                Ctx::Word => hash2(7, hash2(word, 0)),
                Ctx::O6 => hash2(6, c8 & 0xFFFF_FFFF_FFFF),
                Ctx::O5 => hash2(5, c8 & 0xFF_FFFF_FFFF),
                Ctx::Sparse => hash2(8, (c8 >> 8) & 0xFFFF),
                Ctx::Word2 => hash2(9, hash2(word, word1)),
                Ctx::Above => hash2(10, (above << 8) | (c8 & 0xFF)),
                Ctx::Column => hash2(
                    11,
                    (c8 & 0xFF00_FF00) | (above << 32) | ((col.min(255) as u64) << 40),
                ),
                Ctx::KindO2 => hash2(12, kind | (c8 & 0xFFFF)),
                Ctx::Skip1 => hash2(19, (c8 >> 8) & 0xFF),
                Ctx::Skip2 => hash2(20, (c8 >> 16) & 0xFFFF),
                Ctx::Align => hash2(21, ((pos as u64 & 3) << 8) | (c8 & 0xFF)),
                Ctx::Dword => hash2(22, ((c8 >> 24) & 0xFF) << 16 | ((c8 >> 56) << 8) | (c8 & 0xFF)),
                Ctx::Rec => hash2(23, rec[0] << 32 | rec[1] << 16 | rec[2] << 8 | (c8 & 0xFF)),
                Ctx::Rec2 => hash2(24, rec[0] << 32 | rec[2] << 8 | rec[3]),
                Ctx::Nuc(n, alt) => {
                    if g.kind == SEQ {
                        let mask = if *n >= 32 {
                            u64::MAX
                        } else {
                            (1u64 << (2 * *n)) - 1
                        };
                        hash2(hash2(13, (*n as u64) << 8 | g.case as u64), g.nuc & mask)
                    } else {
                        match alt {
                            Alt::O3 => hash2(14, kind | (c8 & 0xFF_FFFF)),
                            Alt::O4 => hash2(15, kind | (c8 & 0xFFFF_FFFF)),
                            Alt::O6 => hash2(16, kind | (c8 & 0xFFFF_FFFF_FFFF)),
                            Alt::Col => hash2(
                                17,
                                kind | (above_k << 16)
                                    | ((col.min(1023) as u64) << 24)
                                    | (c8 & 0xFF),
                            ),
                            Alt::Above => hash2(18, kind | (above_k << 16) | (c8 & 0xFFFF)),
                        }
                    }
                }
            };
        }
        out
    }

    /// Match-model hash slot after byte `b`.
    #[inline(always)]
    fn match_slot_after(&self, b: u8) -> (usize, u8) {
        let mm = self.p.match_min;
        let c8 = (self.c8 << 8) | b as u64;
        let h = hash2(0x4D, c8 & ((1u64 << (8 * mm.clamp(1, 7))) - 1));
        ((h >> 40) as usize & self.mmask, (h >> 33) as u8 & 127)
    }

    /// Prefetch the first-choice bucket of nibble context `c0` under byte contexts `ctx`.
    #[inline(always)]
    fn prefetch_nibble<const N: usize>(&self, ctx: &[u64; MAX_CTX], c0: u32) {
        let shift = 64 - (self.p.table_bits - 4);
        let t = self.tab.as_ptr();
        for (i, &c) in ctx.iter().enumerate().take(self.cnt::<N>()) {
            let h = hash2(c, c0 as u64);
            let b0 = i * self.size + ((h >> shift) as usize & self.mask);
            // Both buckets of the pair (a hint that never faults, so no bounds check).
            prefetch_ptr(t.wrapping_add(b0));
            prefetch_ptr(t.wrapping_add(b0 ^ 1));
        }
    }

    /// The order-1 APM rows of the next bit (both values of this one).
    #[inline(always)]
    fn prefetch_apm(&self) {
        if self.p.apm_o1 {
            if self.bitpos < 7 {
                let c1 = (self.c8 & 0xFF) as usize;
                self.apm2.prefetch((c1 << 8) | (self.c0 as usize) << 1, 2);
            } else {
                let b = ((self.c0 << 1) & 0xFF) as usize;
                self.apm2.prefetch((b << 8) | 1, 1);
                self.apm2.prefetch(((b | 1) << 8) | 1, 1);
            }
        }
    }

    /// Encoder look-ahead (`known` = the byte being coded): at the first bit of
    /// a nibble prefetch exactly the buckets the next nibble will use, and at
    /// the first bit of the low nibble also compute the next byte's contexts
    /// (kept for [`Self::begin_byte`]) and prefetch its first buckets and match
    /// slot: three to four bits earlier than the decoder can, and one path
    /// instead of two. Only what is loaded and when changes, never a value.
    #[inline(always)]
    fn prefetch_known<const N: usize>(&mut self, byte: u8) {
        if self.bitpos == 0 {
            let ctx = self.ctx_hash;
            self.prefetch_nibble::<N>(&ctx, 16 | (byte as u32 >> 4));
        } else if self.bitpos == 4 {
            let ctx = self.contexts_after::<N>(byte);
            self.prefetch_nibble::<N>(&ctx, 1);
            if let Some(sl) = self.mtab.get(self.match_slot_after(byte).0) {
                prefetch(sl);
            }
            self.spec[(byte & 1) as usize] = ctx;
            self.spec_c0 = (256 | byte as u32) >> 1;
        }
    }

    /// At the last bit of a nibble, prefetch the next nibble's buckets for both
    /// values of the bit about to be coded.
    #[inline(always)]
    fn prefetch_ahead<const N: usize>(&mut self) {
        self.prefetch_apm();
        if self.bitpos == 3 {
            let ctx = self.ctx_hash;
            self.prefetch_nibble::<N>(&ctx, self.c0 << 1);
            self.prefetch_nibble::<N>(&ctx, (self.c0 << 1) | 1);
        } else if self.bitpos == 7 {
            for bit in 0..2u32 {
                let b = ((self.c0 << 1) | bit) as u8;
                let ctx = self.contexts_after::<N>(b);
                self.prefetch_nibble::<N>(&ctx, 1);
                if let Some(sl) = self.mtab.get(self.match_slot_after(b).0) {
                    prefetch(sl);
                }
                self.spec[bit as usize] = ctx;
            }
            self.spec_c0 = self.c0;
        }
    }

    /// Hash the nibble contexts and prefetch their buckets.
    #[inline(always)]
    fn nibble_hashes<const N: usize>(&mut self) {
        let shift = 64 - (self.p.table_bits - 4);
        let c0 = self.c0 as u64;
        for i in 0..self.cnt::<N>() {
            let h = hash2(self.ctx_hash[i], c0);
            let b0 = i * self.size + ((h >> shift) as usize & self.mask);
            self.cand[i] = b0;
            self.chk[i] = (h as u32 & 0xFFFF_FF00) | 0xAB;
            prefetch_ptr(self.tab.as_ptr().wrapping_add(b0));
            prefetch_ptr(self.tab.as_ptr().wrapping_add(b0 ^ 1));
        }
    }

    /// Pick (or claim) each context's bucket among its two candidates.
    #[inline(always)]
    fn nibble_select<const N: usize>(&mut self) {
        // Write back the last nibble's buckets (a fresh model's copies equal the table).
        for i in 0..self.cnt::<N>() {
            if let Some(b) = self.tab.get_mut(self.base[i]) {
                *b = self.cur[i];
            }
        }
        for i in 0..self.cnt::<N>() {
            let b0 = self.cand[i];
            let b1 = b0 ^ 1;
            let chk = self.chk[i];
            let chk0 = self.tab.get(b0).map(|b| b.0[0]).unwrap_or(0);
            self.base[i] = if chk0 == chk {
                b0
            } else if self.tab.get(b1).map(|b| b.0[0]).unwrap_or(0) == chk {
                b1
            } else {
                let n0 = self.tab.get(b0).map(|b| b.0[1] & 1023).unwrap_or(0);
                let n1 = self.tab.get(b1).map(|b| b.0[1] & 1023).unwrap_or(0);
                let v = if n0 <= n1 { b0 } else { b1 };
                if let Some(b) = self.tab.get_mut(v) {
                    *b = EMPTY;
                    b.0[0] = chk;
                }
                v
            };
            self.cur[i] = self.tab.get(self.base[i]).copied().unwrap_or(EMPTY);
        }
    }

    /// Predict the next bit; 16-bit probability of a 1.
    #[inline(always)]
    fn predict<const N: usize, const S: usize, const K: usize>(&mut self, known: Option<u8>) -> u32 {
        let t = self.t;
        let node = if self.bitpos < 4 {
            self.c0 as usize & 15
        } else {
            (self.c0 as usize & ((1 << (self.bitpos - 4)) - 1)) | (1 << (self.bitpos - 4))
        };
        let node = node & 15;
        self.node = node;
        match known {
            Some(byte) => {
                self.prefetch_apm();
                self.prefetch_known::<N>(byte);
            }
            None => self.prefetch_ahead::<N>(),
        }
        let mut seen = 0usize;
        // A compiled shape's input flags are constants, so the lanes below are too.
        let (young, o0_input, conf_input) =
            shape_inputs(N, S, K).unwrap_or((self.p.young, self.p.o0_input, self.p.conf_input));
        let n = self.cnt::<N>();
        let c1 = (self.c8 & 0xFF) as usize;
        self.o1_cx = (c1 << 8) | self.c0 as usize;
        let p0 = if o0_input {
            Some(self.o0.p(self.c0 as usize))
        } else {
            None
        };
        let p1 = self.o1.p(self.o1_cx);
        // The match model's inputs (0 when it has no expected bit).
        let mut lenb = 0usize;
        self.msm_cx = None;
        let mut mst = 0;
        let mut conf = 0;
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
                self.msm_cx = Some(cx);
                mst = t.stretch(self.msm.p(cx));
                let c = (lenb as i32 * 64).min(1024);
                conf = if ebit != 0 { c } else { -c };
            } else {
                self.mlen = 0;
            }
        }
        // The inputs in the lanes `Mixer2::add_in_range` calls would fill (every
        // value is in -2047..=2047: stretch outputs, 0, a bounded confidence, the bias).
        let cur = &self.cur;
        // Start from the last bit's lanes (every used lane is overwritten; the rest
        // are 0): the inputs then go to the mixer in registers, not through memory.
        let mut xl = *self.mixer.slots();
        let x = &mut xl;
        let mut k = 0usize;
        for i in 0..n {
            let v = cur.get(i).map(|b| b.0[node]).unwrap_or(COUNTER_INIT);
            let st = t.stretch(counter_p(v));
            x[k & (MAX_IN - 1)] = st;
            k += 1;
            seen = (seen << 1) | (v & 1023 != 0) as usize;
            if young {
                x[k & (MAX_IN - 1)] = if (v & 1023) < 3 { st } else { 0 };
                k += 1;
            }
        }
        if let Some(p0) = p0 {
            x[k & (MAX_IN - 1)] = t.stretch(p0);
            k += 1;
        }
        x[k & (MAX_IN - 1)] = t.stretch(p1);
        x[(k + 1) & (MAX_IN - 1)] = mst;
        k += 2;
        if conf_input {
            x[k & (MAX_IN - 1)] = conf;
            k += 1;
        }
        x[k & (MAX_IN - 1)] = 256;
        self.mixer.set(0, self.c0 as usize);
        self.mixer.set(1, lenb * 8 + self.bitpos as usize);
        self.mixer.set(2, c1);
        if self.p.seen_set {
            self.mixer.set(3, ((seen & 31) << 3) | self.bitpos as usize);
        }
        self.mixer.set_final(self.bitpos as usize);
        let pr = self.mixer.mix_inputs::<S, K>(t, &xl);
        let st = t.stretch(pr);
        let p16 = if self.p.apm3 {
            let a1 = self.apm1.p_stretched(st, self.c0 as usize);
            let h = (hash2(self.c8 & 0xFFFF, self.c0 as u64) >> 48) as usize;
            let a2 = self.apm2.p_stretched(st, (c1 << 8) | self.c0 as usize);
            let a3 = self.apm3.p_stretched(st, h);
            ((pr as u32 * 16) + a1 + 3 * a2 + 3 * a3) >> 3
        } else if self.p.apm_o1 {
            let a1 = self.apm1.p_stretched(st, self.c0 as usize);
            let a2 = self.apm2.p_stretched(st, (c1 << 8) | self.c0 as usize);
            ((pr as u32 * 32) + a1 + a2) >> 2
        } else {
            let a1 = self.apm1.p_stretched(st, self.c0 as usize);
            ((pr as u32 * 16) + a1) >> 1
        };
        p16.clamp(1, 65535)
    }

    #[inline(always)]
    fn update<const N: usize, const S: usize, const K: usize>(&mut self, bit: u32) {
        let lim = self.p.limit;
        let node = self.node;
        for i in 0..self.cnt::<N>() {
            if let Some(b) = self.cur.get_mut(i) {
                counter_update(&mut b.0[node], bit, lim);
            }
        }
        let c0 = self.c0 as usize;
        self.c0 = (self.c0 << 1) | bit;
        self.bitpos += 1;
        // Start the memory traffic of the next nibble before the learning below.
        let boundary = self.bitpos;
        if boundary == 4 {
            self.nibble_hashes::<N>();
        } else if boundary == 8 {
            self.begin_byte::<N>((self.c0 & 0xFF) as u8);
        }
        if self.p.o0_input {
            self.o0.update(c0, bit);
        }
        self.o1.update(self.o1_cx, bit);
        if let Some(cx) = self.msm_cx {
            self.msm.update(cx, bit);
        }
        self.mixer.update_fixed::<S, K>(self.t, bit);
        self.apm1.update(bit);
        if self.p.apm_o1 {
            self.apm2.update(bit);
        }
        if self.p.apm3 {
            self.apm2.update(bit);
            self.apm3.update(bit);
        }
        if boundary == 4 {
            self.nibble_select::<N>();
        } else if boundary == 8 {
            self.finish_byte::<N>();
        }
    }

    /// Code one byte with the contexts of shape key `N`, mixer rows of `S` lanes and `K` weight
    /// sets known at compile time (0: read at run time; the fixed and the
    /// run-time paths compute the same integers).
    #[inline(always)]
    fn code_shape<I: Io, const N: usize, const S: usize, const K: usize>(
        &mut self,
        io: &mut I,
        byte: u8,
    ) -> u8 {
        let known = I::KNOWN.then_some(byte);
        for i in (0..8).rev() {
            let p = self.predict::<N, S, K>(known);
            let bit = io.bit(p, (byte as u32 >> i) & 1);
            self.update::<N, S, K>(bit);
        }
        self.hist.last().copied().unwrap_or(0)
    }

    /// Dispatch on the model's shape: the shapes of the levels of
    /// [`ByteParams::for_version`] get their own straight-line code.
    #[inline(always)]
    fn code_impl<I: Io>(&mut self, io: &mut I, byte: u8) -> u8 {
        match self.shape {
            Shape::N4S16K1 => self.code_shape::<I, 4, 16, 1>(io, byte),
            Shape::N5S8K3 => self.code_shape::<I, 5, 8, 3>(io, byte),
            Shape::N10S16K3 => self.code_shape::<I, 10, 16, 3>(io, byte),
            Shape::N5S16K4 => self.code_shape::<I, 5, 16, 4>(io, byte),
            Shape::N10S32K4 => self.code_shape::<I, 10, 32, 4>(io, byte),
            Shape::N7S24K4 => self.code_shape::<I, 7, 24, 4>(io, byte),
            Shape::N12S32K4 => self.code_shape::<I, 12, 32, 4>(io, byte),
            Shape::N9S24K4 => self.code_shape::<I, 9, 24, 4>(io, byte),
            Shape::R9S24K4 => self.code_shape::<I, 25, 24, 4>(io, byte),
            Shape::Any => self.code_shape::<I, 0, 0, 0>(io, byte),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn code_avx2<I: Io>(&mut self, io: &mut I, byte: u8) -> u8 {
        self.code_impl(io, byte)
    }

    /// Code one byte (`byte` is ignored when decoding); returns the byte.
    pub fn code<I: Io>(&mut self, io: &mut I, byte: u8) -> u8 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU supports AVX2 (checked at construction).
            return unsafe { self.code_avx2(io, byte) };
        }
        self.code_impl(io, byte)
    }

    /// Append a byte to the history (after coding it, or for bytes coded elsewhere).
    pub fn push(&mut self, b: u8) {
        self.begin_byte::<0>(b);
        self.finish_byte::<0>();
    }

    /// First half of a byte boundary: history, byte contexts, first-nibble
    /// hashes and prefetches (of the context buckets and the match slot).
    #[inline(always)]
    fn begin_byte<const N: usize>(&mut self, b: u8) {
        let spec = (self.bitpos == 8 && self.spec_c0 == (self.c0 >> 1))
            .then(|| self.spec[(self.c0 & 1) as usize]);
        self.ctx_hash = match spec {
            Some(c) => c,
            None => self.contexts_after::<N>(b),
        };
        (self.mhash, self.mtag) = self.match_slot_after(b);
        if self.mlen == 0 || self.hist.get(self.mptr) != Some(&b) {
            // `finish_byte` will look for a new match at the slot's position:
            // start loading that part of the history now (a hint only).
            if let Some(&slot) = self.mtab.get(self.mhash) {
                let cand = (slot & self.pmask) as usize;
                prefetch_ptr(self.hist.as_ptr().wrapping_add(cand.wrapping_sub(1)));
            }
        }
        self.hist.push(b);
        self.c8 = (self.c8 << 8) | b as u64;
        self.c0 = 1;
        self.bitpos = 0;
        let pos = self.hist.len();
        if self.p.rec {
            self.rl.push(b, pos as u32);
        }
        (self.word, self.word1) = self.words_after(b);
        if self.p.gene {
            self.gs = self.gs.after(b, pos - 1 - self.line_start, self.line_start);
        }
        if b == b'\n' {
            self.prev_line_start = self.line_start;
            self.line_start = pos;
        }
        if let Some(s) = self.mtab.get(self.mhash) {
            prefetch(s);
        }
        self.nibble_hashes::<N>();
    }

    /// Second half of a byte boundary: the match model and bucket selection.
    #[inline(always)]
    fn finish_byte<const N: usize>(&mut self) {
        let pos = self.hist.len();
        let b = self.hist.last().copied();
        if self.mlen > 0 && self.hist.get(self.mptr).copied() == b {
            self.mlen += 1;
            self.mptr += 1;
        } else {
            self.mlen = 0;
        }
        let mm = self.p.match_min;
        if pos >= mm {
            let h = self.mhash;
            // Slots hold the position (low 25 bits) and 7 check bits of the
            // hash (chunks under 32 MiB; larger ones store the bare position).
            let pm = self.pmask;
            let tag = ((self.mtag as u32) << 25) & !pm;
            if self.mlen == 0 {
                let slot = self.mtab.get(h).copied().unwrap_or(0);
                let cand = (slot & pm) as usize;
                if slot & !pm == tag && cand > 0 && cand < pos {
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
            if let Some(s) = self.mtab.get_mut(h) {
                *s = (pos as u32 & pm) | tag;
            }
        }
        if self.mlen > 0 {
            match self.hist.get(self.mptr) {
                Some(&nb) => self.mbyte = nb as u32,
                None => self.mlen = 0,
            }
        }
        self.nibble_select::<N>();
    }
}

/// The per-stream context state of a [`ByteModel`] whose statistics several
/// streams share (neural payload flags 3): everything that describes where one
/// stream is and persists from one byte to the next (history, byte and nibble
/// contexts, chosen buckets, word/line/gene state, the match model). The
/// context tables, counter maps, mixer and APMs stay in the model; so do the
/// buckets' working copies (written back before a swap and reloaded after it)
/// and the look-ahead contexts (recomputed within every byte). Made by
/// [`ByteModel::new_row`], exchanged by [`ByteModel::swap_row`].
pub struct RowState {
    hist: Vec<u8>,
    ctx_hash: [u64; MAX_CTX],
    cand: [usize; MAX_CTX],
    chk: [u32; MAX_CTX],
    base: [usize; MAX_CTX],
    c0: u32,
    bitpos: u32,
    c8: u64,
    word: u64,
    word1: u64,
    line_start: usize,
    prev_line_start: usize,
    gs: GeneState,
    rl: Box<RecordLen>,
    mtab: Vec<u32>,
    mhash: usize,
    mtag: u8,
    mptr: usize,
    mlen: usize,
    mbyte: u32,
}

impl ByteModel {
    /// A fresh stream of `len` bytes for this model (as a fresh model starts;
    /// its first-nibble buckets are selected in the shared tables now).
    pub fn new_row(&mut self, len: usize) -> RowState {
        let n = self.n;
        let size = self.size;
        let mut r = RowState {
            hist: Vec::with_capacity(len),
            ctx_hash: [0; MAX_CTX],
            cand: [0; MAX_CTX],
            chk: [0; MAX_CTX],
            base: std::array::from_fn(|i| if i < n { i * size } else { 0 }),
            c0: 1,
            bitpos: 0,
            c8: 0,
            word: 0,
            word1: 0,
            line_start: 0,
            prev_line_start: 0,
            gs: GeneState::default(),
            rl: Box::default(),
            mtab: big_vec(self.mmask + 1, 0),
            mhash: 0,
            mtag: 0,
            mptr: 0,
            mlen: 0,
            mbyte: 0,
        };
        self.flush_row();
        self.exchange_row(&mut r);
        self.ctx_hash = self.initial_contexts();
        self.nibble_hashes::<0>();
        self.reload_row();
        self.flush_row();
        self.exchange_row(&mut r);
        self.reload_row();
        r
    }

    /// Make `row` the stream the model codes next and leave the stream it
    /// coded so far in `row`. The outgoing stream's working copies are written
    /// to the shared tables first, and the incoming stream's buckets are
    /// selected again (another stream may have claimed them meanwhile). Call
    /// between bytes only.
    pub fn swap_row(&mut self, row: &mut RowState) {
        self.flush_row();
        self.exchange_row(row);
        self.reload_row();
    }

    /// Write the working copies of the current nibble's buckets back to the tables.
    fn flush_row(&mut self) {
        for i in 0..self.n {
            if let Some(b) = self.tab.get_mut(self.base[i]) {
                *b = self.cur[i];
            }
        }
    }

    /// Reselect the current nibble's buckets from the tables (after a flush).
    fn reload_row(&mut self) {
        for i in 0..self.n {
            self.cur[i] = self.tab.get(self.base[i]).copied().unwrap_or(EMPTY);
        }
        self.nibble_select::<0>();
    }

    fn exchange_row(&mut self, r: &mut RowState) {
        use std::mem::swap;
        swap(&mut self.hist, &mut r.hist);
        swap(&mut self.ctx_hash, &mut r.ctx_hash);
        swap(&mut self.cand, &mut r.cand);
        swap(&mut self.chk, &mut r.chk);
        swap(&mut self.base, &mut r.base);
        swap(&mut self.c0, &mut r.c0);
        swap(&mut self.bitpos, &mut r.bitpos);
        swap(&mut self.c8, &mut r.c8);
        swap(&mut self.word, &mut r.word);
        swap(&mut self.word1, &mut r.word1);
        swap(&mut self.line_start, &mut r.line_start);
        swap(&mut self.prev_line_start, &mut r.prev_line_start);
        swap(&mut self.gs, &mut r.gs);
        swap(&mut self.rl, &mut r.rl);
        swap(&mut self.mtab, &mut r.mtab);
        swap(&mut self.mhash, &mut r.mhash);
        swap(&mut self.mtag, &mut r.mtag);
        swap(&mut self.mptr, &mut r.mptr);
        swap(&mut self.mlen, &mut r.mlen);
        swap(&mut self.mbyte, &mut r.mbyte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every probability the model hands to the coder.
    struct Rec(Vec<u32>);
    impl Io for Rec {
        fn bit(&mut self, p16: u32, bit: u32) -> u32 {
            self.0.push(p16);
            bit
        }
    }

    /// `Rec` that tells the model each byte before its bits (as the encoder does).
    struct RecKnown(Vec<u32>);
    impl Io for RecKnown {
        const KNOWN: bool = true;
        fn bit(&mut self, p16: u32, bit: u32) -> u32 {
            self.0.push(p16);
            bit
        }
    }

    fn probs(data: &[u8], p: ByteParams, vector: bool) -> Vec<u32> {
        probs_shape(data, p, vector, None)
    }

    #[test]
    fn known_byte_look_ahead_gives_the_same_probabilities() {
        let mut s = 11u32;
        let data: Vec<u8> = (0..20000u32)
            .map(|i| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 { (s >> 24) as u8 } else { b"abc abd, the then; 0123\n"[(i % 24) as usize] }
            })
            .collect();
        for (version, modality) in
            [(3, Modality::Text), (3, Modality::Gene), (4, Modality::Binary), (5, Modality::Binary), (2, Modality::Text)]
        {
            for level in [1, 5, 9] {
                let p = ByteParams::for_version(version, level, data.len(), modality);
                let (mut a, mut b) = (ByteModel::new(p, data.len()), ByteModel::new(p, data.len()));
                let (mut ra, mut rb) = (Rec(Vec::new()), RecKnown(Vec::new()));
                for (i, &x) in data.iter().enumerate() {
                    if i % 89 == 3 {
                        a.push(x);
                        b.push(x);
                    } else {
                        a.code(&mut ra, x);
                        b.code(&mut rb, x);
                    }
                }
                assert!(ra.0 == rb.0, "v{version} {modality:?} level {level}: look-ahead changed a probability");
            }
        }
    }

    /// `probs` with the model's compiled shape replaced (`Shape::Any`: the run-time path).
    fn probs_shape(data: &[u8], p: ByteParams, vector: bool, shape: Option<Shape>) -> Vec<u32> {
        let mut m = ByteModel::new(p, data.len());
        if let Some(s) = shape {
            m.shape = s;
        }
        #[cfg(target_arch = "x86_64")]
        {
            m.avx2 &= vector;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = vector;
        let mut io = Rec(Vec::new());
        for (i, &b) in data.iter().enumerate() {
            if i % 97 == 5 {
                m.push(b); // a byte coded elsewhere (sample model)
            } else {
                assert_eq!(m.code(&mut io, b), b);
            }
        }
        io.0
    }

    #[test]
    fn vector_and_scalar_paths_agree() {
        let mut s = 7u32;
        let mut v = Vec::new();
        for i in 0..30000u32 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.push(match i % 5 {
                0 => (s >> 24) as u8,
                1 => b'\n',
                _ => b"lorem ipsum, dolor; sit amet 12.5\n"[(i % 34) as usize],
            });
        }
        for (version, modality, level) in [
            (2, Modality::Text, 1),
            (2, Modality::Text, 5),
            (2, Modality::Text, 9),
            (3, Modality::Text, 1),
            (3, Modality::Text, 5),
            (3, Modality::Text, 9),
            (3, Modality::Gene, 5),
            (3, Modality::Gene, 9),
            (4, Modality::Binary, 5),
            (5, Modality::Binary, 5),
        ] {
            let p = ByteParams::for_version(version, level, v.len(), modality);
            let a = probs(&v, p, true);
            let b = probs(&v, p, false);
            assert_eq!(a.len(), b.len());
            assert!(
                a == b,
                "v{version} {modality:?} level {level}: AVX2 and scalar predictions differ"
            );
            // Every level has its own compiled shape, and it must code as the run-time path does.
            let m = ByteModel::new(p, v.len());
            assert_ne!(m.shape, Shape::Any, "v{version} {modality:?} level {level}");
            let c = probs_shape(&v, p, true, Some(Shape::Any));
            assert!(
                a == c,
                "v{version} {modality:?} level {level}: fixed-shape and run-time paths differ"
            );
            assert!(a.iter().all(|p| (1..=65535).contains(p)));
        }
        // The binary lists of levels 1-3 and 7-9 run on the run-time path only.
        for (version, level) in [(4, 1), (4, 9), (5, 1), (5, 9)] {
            let p = ByteParams::for_version(version, level, v.len(), Modality::Binary);
            assert_eq!(ByteModel::new(p, v.len()).shape, Shape::Any);
            assert!(
                probs(&v, p, true) == probs(&v, p, false),
                "v{version} binary level {level}: AVX2 and scalar differ"
            );
        }
    }

    /// The FASTA/FASTQ line state recomputed from the whole history, line by line.
    fn gene_reference(h: &[u8]) -> (GeneState, usize) {
        let predicted = |k: u8| match k {
            HEAD => SEQ,
            PLUS => QUAL,
            QUAL => HEAD,
            _ => SEQ,
        };
        let mut g = GeneState::default();
        let mut seq: Vec<u8> = Vec::new();
        let mut start = 0usize;
        let lines: Vec<&[u8]> = h.split(|&b| b == b'\n').collect();
        let last = lines.len() - 1;
        let mut prev = SEQ;
        let mut kind = SEQ;
        for (i, line) in lines.iter().enumerate() {
            kind = match line.first() {
                None => predicted(prev),
                Some(_) if i > 0 && prev == PLUS => QUAL,
                Some(b'>') | Some(b'@') => HEAD,
                Some(b'+') => PLUS,
                Some(_) => SEQ,
            };
            if kind == SEQ {
                seq.extend_from_slice(line);
            }
            if i < last {
                g.kstart[kind as usize] = start;
                start += line.len() + 1;
                prev = kind;
            }
        }
        g.kind = kind;
        g.prev = if last > 0 { prev } else { SEQ };
        for &b in seq.iter().rev().take(32).rev() {
            g.nuc = (g.nuc << 2) | ((b >> 1) & 3) as u64;
        }
        g.case = seq.last().map(|&b| b & 0x20).unwrap_or(0);
        (g, start)
    }

    /// The byte contexts recomputed from the whole history (no incremental state).
    fn reference(m: &ByteModel) -> [u64; MAX_CTX] {
        let h = &m.hist;
        let pos = h.len();
        let c8 = h
            .iter()
            .rev()
            .take(8)
            .rev()
            .fold(0u64, |a, &b| (a << 8) | b as u64);
        let (mut word, mut word1) = (0u64, 0u64);
        for &b in h {
            let lb = b.to_ascii_lowercase();
            if lb.is_ascii_lowercase() || b >= 128 {
                word = hash2(word, lb as u64);
            } else if word != 0 {
                word1 = word;
                word = 0;
            }
        }
        let nl: Vec<usize> = h
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        let line_start = nl.last().copied().unwrap_or(0);
        let prev = if nl.len() >= 2 { nl[nl.len() - 2] } else { 0 };
        let col = pos - line_start;
        let above = if prev + col < line_start {
            h[prev + col] as u64
        } else {
            0
        };
        let (g, above_k) = if m.p.gene {
            let (g, ls) = gene_reference(h);
            assert_eq!(ls, line_start);
            let k = g.kstart[g.kind as usize] + col;
            (g, if k < line_start { h[k] as u64 } else { 0 })
        } else {
            (GeneState::default(), 0)
        };
        // The record length as detected over all but the last byte.
        let rec = if m.p.rec {
            let mut rl = RecordLen::default();
            for (i, &b) in h.iter().enumerate().take(pos.saturating_sub(1)) {
                rl.push(b, i as u32 + 1);
            }
            let r = rl.record_len() as usize;
            let back = |k: usize| if r > 0 && pos >= k * r { h[pos - k * r] as u64 } else { 0 };
            [r as u64, if r > 0 { (pos % r) as u64 } else { 0 }, back(1), back(2)]
        } else {
            [0; 4]
        };
        m.ctx_values::<0>(c8, word, word1, above, col, &g, above_k, pos, rec)
    }

    #[test]
    fn incremental_and_look_ahead_contexts_match_recomputed_ones() {
        let text = b"ab\ncd\nefgh\n\nij KL mn\n12\n\n\nxyz w\xe9rd\n";
        let fastq = b"@r1 x:1\nACGTNacgt\n+\n@@II#+\n@r2 x:2\nGGTA\n+r2\n>IIII\n\n>chr1 a\nACGTTGCA\nacgtn\n\nAC\n>c2\nTT";
        // 24-byte records: the record contexts switch on within the input.
        let table: Vec<u8> = (0..60u8).flat_map(|k| [0x12, k, 0, 7].into_iter().chain([0; 20])).collect();
        let cases: [(&[u8], Modality, u8); 9] = [
            (text, Modality::Binary, 4),
            (fastq, Modality::Binary, 4),
            (text, Modality::Binary, 5),
            (fastq, Modality::Binary, 5),
            (&table, Modality::Binary, 5),
            (text, Modality::Text, 2),
            (text, Modality::Text, 3),
            (fastq, Modality::Gene, 3),
            (text, Modality::Gene, 3),
        ];
        let mut rl = RecordLen::default();
        for (i, &b) in table.iter().enumerate() {
            rl.push(b, i as u32 + 1);
        }
        assert_eq!(rl.record_len(), 24, "the table's records are detected");
        for (data, modality, version) in cases {
            for level in [1, 5, 9] {
                let p = ByteParams::for_version(version, level, data.len(), modality);
                let mut m = ByteModel::new(p, data.len());
                let mut io = Rec(Vec::new());
                for (i, &b) in data.iter().enumerate() {
                    let ahead = m.contexts_after::<0>(b);
                    if i % 3 == 0 {
                        m.push(b);
                    } else {
                        m.code(&mut io, b);
                    }
                    assert_eq!(
                        ahead, m.ctx_hash,
                        "v{version} {modality:?} level {level} byte {i}"
                    );
                    assert_eq!(
                        reference(&m),
                        m.ctx_hash,
                        "v{version} {modality:?} level {level} byte {i}"
                    );
                }
            }
        }
    }
}
