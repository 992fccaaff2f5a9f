//! Bitwise mixing of the network's byte distribution with small online
//! context models owned by one sub-stream (neural payload flags = 1, see
//! docs/FORMAT.md "Neural codec payload").
//!
//! Each byte is coded as 8 binary decisions, most significant bit first, with
//! the binary arithmetic coder. For a bit, the network's probability is exact
//! integer arithmetic on the quantized frequencies (ones-subtree total over the
//! node total); it is mixed in the logistic domain with order-0..6 context
//! counters and a match model that see only this sub-stream's own past (mixer
//! weight sets chosen by bit position x network confidence, partial byte x match
//! state, previous byte), then refined by an APM on (mix, partial byte): the
//! online bias correction. (An APM on the network's own probability and the
//! order-1 context was measured and did not help; see docs/BENCHMARKS.md.) Everything is
//! integer arithmetic, so every CPU computes the same bits, and sub-streams
//! stay independent (lockstep groups and threads do not change the output).

use crate::bitcoder::{BitDecoder, BitEncoder};
use crate::ctxmix::prim::{counter_p, counter_update, tables, Apm, Tables, COUNTER_INIT};

/// A binary coder half: code `bit` with P(1) = `p16` / 65536 and return the
/// bit actually coded (the decoder ignores `bit`).
pub trait BitIo {
    /// Code or decode one bit.
    fn bit(&mut self, p16: u32, bit: u32) -> u32;
}

impl BitIo for BitEncoder {
    #[inline(always)]
    fn bit(&mut self, p16: u32, bit: u32) -> u32 {
        self.encode(bit, p16);
        bit
    }
}

impl BitIo for BitDecoder<'_> {
    #[inline(always)]
    fn bit(&mut self, p16: u32, _bit: u32) -> u32 {
        self.decode(p16)
    }
}

/// Hashed context orders (bytes of history) besides the direct order 0 and 1.
const ORDERS: [usize; 4] = [2, 3, 4, 6];
/// Mixer inputs: network, bias, order 0, order 1, hashed orders, match (2).
const N_IN: usize = 4 + ORDERS.len() + 2;
/// Minimum match length (bytes) the match model looks up.
const MATCH_MIN: usize = 5;

/// Source of the network's per-node probabilities for one byte.
pub trait NodeSource {
    /// 16-bit P(next bit = 1) at the node reached by the `depth` high bits `prefix`.
    fn p16(&self, prefix: u32, depth: u32) -> u32;
}

impl NodeSource for NodeProbs {
    #[inline(always)]
    fn p16(&self, prefix: u32, depth: u32) -> u32 {
        NodeProbs::p16(self, prefix, depth)
    }
}

/// Cumulative frequencies of one quantized 256-symbol row (`cum[256]` = total).
pub struct NodeProbs {
    cum: [u32; 257],
}

impl Default for NodeProbs {
    fn default() -> Self {
        NodeProbs { cum: [0; 257] }
    }
}

impl NodeProbs {
    /// Load a row of 256 frequencies (each >= 1, total < 2^31).
    #[inline]
    pub fn load(&mut self, freqs: &[u32]) {
        let mut s = 0u32;
        self.cum[0] = 0;
        for (i, &f) in freqs.iter().take(256).enumerate() {
            s = s.wrapping_add(f);
            self.cum[i + 1] = s;
        }
    }

    /// 16-bit P(next bit = 1) at the node reached by the `depth` high bits
    /// `prefix` of the byte: ones-subtree frequency over the node's total.
    #[inline(always)]
    pub fn p16(&self, prefix: u32, depth: u32) -> u32 {
        let width = 256u32 >> depth;
        let lo = (prefix * width) as usize;
        let mid = lo + (width / 2) as usize;
        let hi = lo + width as usize;
        let n = self.cum[hi].wrapping_sub(self.cum[lo]) as u64;
        let n1 = self.cum[hi].wrapping_sub(self.cum[mid]) as u64;
        if n == 0 {
            return 32768;
        }
        (((n1 << 16) / n) as u32).clamp(1, 65535)
    }
}

/// Tunable shape of the model (table sizes follow the sub-stream length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixParams {
    /// log2 of the counters per hashed order.
    pub table_bits: u32,
    /// log2 of the match model's position table.
    pub match_bits: u32,
    /// Counter count limit (adaptation floor 1/(limit+1.5)).
    pub limit: u32,
    /// Mixer learning rate (numerator; larger adapts faster).
    pub lr: i32,
    /// Weight update shift (`dw = x * err * lr >> lr_shift`).
    pub lr_shift: u32,
    /// Faster learning over a stream's first 4 Ki / 32 Ki bits (3x / 2x).
    pub boost: bool,
    /// Final blend: weights (out of 4) of the mixer and of the APM on (mixer, partial byte).
    pub blend: [u32; 2],
    /// APM adaptation shift.
    pub apm_rate: u32,
    /// Mixer weight sets in use (2, or 3 with a set chosen by the previous byte).
    pub sets: usize,
}

impl MixParams {
    /// Parameters for sub-streams of `seg` bytes (the format fixes this rule).
    pub fn for_segment(seg: usize) -> Self {
        let lb = usize::BITS - seg.max(1).saturating_sub(1).leading_zeros(); // ceil(log2(seg))
        MixParams {
            table_bits: (lb + 2).clamp(10, 17),
            match_bits: lb.saturating_sub(2).clamp(8, 16),
            limit: 255,
            lr: 16,
            lr_shift: 14,
            boost: true,
            blend: [3, 1],
            apm_rate: 6,
            sets: 3,
        }
    }
}

/// The per-sub-stream model.
pub struct StreamMix {
    t: &'static Tables,
    p: MixParams,
    hist: Vec<u8>,
    o0: Vec<u32>,
    o1: Vec<u32>,
    hashed: Vec<u32>,
    tmask: u32,
    hashes: [u32; ORDERS.len()],
    idx: [usize; ORDERS.len() + 2],
    mtab: Vec<u32>,
    mptr: usize,
    mlen: usize,
    msm: Vec<u32>,
    msm_idx: usize,
    mbit: Option<u32>,
    // mixer: weight sets selected by (bit position, network confidence) and by the partial byte
    w: Vec<i32>,
    sel: [usize; 3],
    x: [i32; N_IN],
    dots: [i32; 3],
    pmix: i32,
    apm_mix: Apm,
    c0: u32,
    c4: u32,
    bits_seen: u32,
}

const SETS0: usize = 8 * 16;
const SETS1: usize = 256 * 2;
const SETS2: usize = 256;

#[inline(always)]
fn hash32(x: u32, k: u32) -> u32 {
    let h = (x ^ k.wrapping_mul(0x9E37_79B9)).wrapping_mul(0x85EB_CA6B);
    (h ^ (h >> 15)).wrapping_mul(0xC2B2_AE35)
}

impl StreamMix {
    /// A fresh model for one sub-stream of `seg` bytes.
    pub fn new(seg: usize) -> Self {
        Self::with_params(seg, MixParams::for_segment(seg))
    }

    /// A fresh model with explicit parameters (tuning experiments).
    pub fn with_params(seg: usize, p: MixParams) -> Self {
        let mut w = vec![0i32; (SETS0 + SETS1 + SETS2) * N_IN];
        // Start as the network alone: weight 1.0 (Q16) on its input.
        for s in 0..SETS0 + SETS1 + SETS2 {
            w[s * N_IN] = 1 << 16;
        }
        StreamMix {
            t: tables(),
            p,
            hist: Vec::with_capacity(seg),
            o0: vec![COUNTER_INIT; 256],
            o1: vec![COUNTER_INIT; 1 << 16],
            hashed: vec![COUNTER_INIT; ORDERS.len() << p.table_bits],
            tmask: (1 << p.table_bits) - 1,
            hashes: [0; ORDERS.len()],
            idx: [0; ORDERS.len() + 2],
            mtab: vec![0; 1 << p.match_bits],
            mptr: 0,
            mlen: 0,
            msm: vec![COUNTER_INIT; 64],
            msm_idx: 0,
            mbit: None,
            w,
            sel: [0; 3],
            x: [0; N_IN],
            dots: [0; 3],
            pmix: 2048,
            apm_mix: Apm::new(256, p.apm_rate),
            c0: 1,
            c4: 0,
            bits_seen: 0,
        }
    }

    /// The parameters this model was built with.
    pub fn params(&self) -> MixParams {
        self.p
    }

    /// 16-bit probability of a 1 for the next bit, given the network's 16-bit `nn16`.
    pub(crate) fn predict_bit(&mut self, nn16: u32, depth: u32) -> u32 {
        let t = self.t;
        let c0 = self.c0;
        let nn12 = ((nn16 + 8) >> 4).clamp(1, 4095) as i32;
        let st_nn = t.stretch(nn12);
        let c1 = self.c4 & 0xFF;
        self.x[0] = st_nn;
        self.x[1] = 256;
        self.x[2] = t.stretch(counter_p(self.o0[c0 as usize]));
        let i1 = ((c1 << 8) | c0) as usize;
        self.idx[1] = i1;
        self.x[3] = t.stretch(counter_p(self.o1[i1]));
        for (k, &h) in self.hashes.iter().enumerate() {
            let i = ((k as u32) << self.p.table_bits) | (hash32(h, c0) & self.tmask);
            self.idx[2 + k] = i as usize;
            self.x[4 + k] = t.stretch(counter_p(self.hashed[i as usize]));
        }
        // Match model: the bit that followed the longest recent match.
        let mut lenb = 0usize;
        self.mbit = None;
        if self.mlen > 0 {
            let mb = self.hist.get(self.mptr).copied().unwrap_or(0) as u32;
            if (mb | 256) >> (8 - depth) == c0 {
                let ebit = (mb >> (7 - depth)) & 1;
                lenb = self.mlen.min(31);
                self.msm_idx = (lenb.min(15) << 1) | ebit as usize;
                self.mbit = Some(ebit);
                let conf = t.stretch(counter_p(self.msm[self.msm_idx]));
                self.x[N_IN - 2] = conf;
                let lc = (lenb as i32 * 64).min(2047);
                self.x[N_IN - 1] = if ebit != 0 { lc } else { -lc };
            } else {
                self.mlen = 0;
            }
        }
        if self.mbit.is_none() {
            self.x[N_IN - 2] = 0;
            self.x[N_IN - 1] = 0;
        }
        let conf = (st_nn.unsigned_abs() as usize >> 7).min(15);
        self.sel[0] = depth as usize * 16 + conf;
        self.sel[1] = SETS0 + (c0 as usize) * 2 + (lenb > 0) as usize;
        self.sel[2] = SETS0 + SETS1 + c1 as usize;
        let ns = self.p.sets.clamp(1, 3);
        let pmix = t.squash(mix_sets(&self.w, &self.sel[..ns], &self.x, &mut self.dots));
        self.pmix = pmix;
        let a_mix = self.apm_mix.p(t, pmix, c0 as usize);
        let [b0, b1] = self.p.blend;
        let p = (pmix as u32 * 16 * b0 + a_mix * b1) >> 2;
        p.clamp(1, 65535)
    }

    pub(crate) fn update_bit(&mut self, bit: u32) {
        let t = self.t;
        let lim = self.p.limit;
        counter_update(&mut self.o0[self.c0 as usize], bit, lim);
        counter_update(&mut self.o1[self.idx[1]], bit, lim);
        for k in 0..ORDERS.len() {
            counter_update(&mut self.hashed[self.idx[2 + k]], bit, lim);
        }
        if self.mbit.is_some() {
            counter_update(&mut self.msm[self.msm_idx], bit, 1023);
        }
        let target = (bit as i32) << 12;
        // Faster learning on the first bits of a stream, then the base rate.
        let boost = if self.bits_seen < 4096 { 3 } else if self.bits_seen < 32768 { 2 } else { 1 };
        let lr = self.p.lr as i64 * if self.p.boost { boost } else { 1 };
        let ns = self.p.sets.clamp(1, 3);
        train_sets(t, &mut self.w, &self.sel[..ns], &self.x, &self.dots, target, lr, self.p.lr_shift);
        self.apm_mix.update(bit);
        self.c0 = (self.c0 << 1) | bit;
        self.bits_seen = self.bits_seen.saturating_add(1);
    }

    pub(crate) fn end_byte(&mut self, b: u8) {
        self.hist.push(b);
        self.c4 = (self.c4 << 8) | b as u32;
        self.c0 = 1;
        let n = self.hist.len();
        for (k, &o) in ORDERS.iter().enumerate() {
            let mut h = (o as u32).wrapping_mul(0x2545_F491);
            for &c in self.hist[n.saturating_sub(o)..].iter() {
                h = hash32(h ^ c as u32, o as u32);
            }
            self.hashes[k] = h;
        }
        // Match model: extend or find a match of the last MATCH_MIN bytes.
        if self.mlen > 0 {
            if self.hist.get(self.mptr).copied() == Some(b) {
                self.mlen += 1;
                self.mptr += 1;
            } else {
                self.mlen = 0;
            }
        }
        if n >= MATCH_MIN {
            let mut h = 0u32;
            for &c in &self.hist[n - MATCH_MIN..] {
                h = hash32(h ^ c as u32, 77);
            }
            let slot = (h >> (32 - self.p.match_bits)) as usize;
            if self.mlen == 0 {
                let cand = self.mtab[slot] as usize;
                if cand > 0 && cand < n {
                    let mut l = 0;
                    while l < 32 && l < cand && self.hist[cand - 1 - l] == self.hist[n - 1 - l] {
                        l += 1;
                    }
                    if l >= MATCH_MIN {
                        self.mlen = l;
                        self.mptr = cand;
                    }
                }
            }
            self.mtab[slot] = n as u32;
        }
    }

    /// Code one byte (ignored when decoding) under the network's node
    /// probabilities `nn`; returns the byte coded.
    pub fn code<I: BitIo, N: NodeSource>(&mut self, io: &mut I, nn: &N, byte: u8) -> u8 {
        for depth in 0..8u32 {
            let prefix = self.c0 & ((1 << depth) - 1);
            let p = self.predict_bit(nn.p16(prefix, depth), depth);
            let bit = io.bit(p, (byte as u32 >> (7 - depth)) & 1);
            self.update_bit(bit);
        }
        let b = (self.c0 & 0xFF) as u8;
        self.end_byte(b);
        b
    }
}

/// The gated mixer of the mixed forms: for each selected weight set `sel[j]`
/// (rows of `x.len()` weights in `w`), `dots[j]` = the clamped fixed-point dot
/// product of its row with `x`; returns their average (stretch domain).
#[inline(always)]
pub(crate) fn mix_sets(w: &[i32], sel: &[usize], x: &[i32], dots: &mut [i32]) -> i32 {
    let n = x.len();
    let mut sum = 0;
    for (&row, d) in sel.iter().zip(dots.iter_mut()) {
        let mut s: i64 = 0;
        for (&a, &b) in w[row * n..row * n + n].iter().zip(x) {
            s += a as i64 * b as i64;
        }
        *d = (s >> 16).clamp(-2047, 2047) as i32;
        sum += *d;
    }
    sum / sel.len() as i32
}

/// Online update of the weight sets [`mix_sets`] used: each row moves by
/// `x · (target − squash(dot)) · lr >> shift`, clamped to ±2^22.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_sets(t: &Tables, w: &mut [i32], sel: &[usize], x: &[i32], dots: &[i32], target: i32, lr: i64, shift: u32) {
    let n = x.len();
    for (&row, &d) in sel.iter().zip(dots) {
        let err = (target - t.squash(d)) as i64 * lr;
        for (wi, &xi) in w[row * n..row * n + n].iter_mut().zip(x) {
            let nw = *wi as i64 + ((xi as i64 * err) >> shift);
            *wi = nw.clamp(-(1 << 22), 1 << 22) as i32;
        }
    }
}

/// Helpers shared by the offline tuning tests of the mixed forms (`mix`, `cmmix`).
#[cfg(test)]
pub(crate) mod tune_io {
    use super::{BitIo, NodeSource};

    /// Network probabilities along the coded byte's path only (encoder side).
    pub(crate) struct Path<'a>(pub(crate) &'a [u16]);
    impl NodeSource for Path<'_> {
        fn p16(&self, _prefix: u32, depth: u32) -> u32 {
            self.0[depth as usize] as u32
        }
    }

    /// Ideal code length in bits of the coded decisions.
    pub(crate) struct Cost(pub(crate) f64);
    impl BitIo for Cost {
        fn bit(&mut self, p16: u32, bit: u32) -> u32 {
            let p = p16 as f64 / 65536.0;
            self.0 -= if bit != 0 { p } else { 1.0 - p }.log2();
            bit
        }
    }
    impl crate::ctxmix::Io for Cost {
        fn bit(&mut self, p16: u32, bit: u32) -> u32 {
            BitIo::bit(self, p16, bit)
        }
    }

    /// One dump of the network's path probabilities (`*.nnp`: u32 seg, u32 n,
    /// n bytes, 8n u16 little-endian).
    pub(crate) struct Dump {
        pub(crate) path: std::path::PathBuf,
        pub(crate) seg: usize,
        pub(crate) toks: Vec<u8>,
        pub(crate) probs: Vec<u16>,
    }

    impl Dump {
        /// The 8 node probabilities of byte `t`.
        pub(crate) fn node_path(&self, t: usize) -> &[u16] {
            &self.probs[t * 8..t * 8 + 8]
        }
    }

    /// Every `*.nnp` file of `MIX_TUNE_DIR` (default `/tmp/mixtune`), sorted by name.
    pub(crate) fn dumps() -> Vec<Dump> {
        let dir = std::env::var("MIX_TUNE_DIR").unwrap_or_else(|_| "/tmp/mixtune".into());
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "nnp")).collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let raw = std::fs::read(&path).unwrap();
                let seg = u32::from_le_bytes(raw[0..4].try_into().unwrap()) as usize;
                let n = u32::from_le_bytes(raw[4..8].try_into().unwrap()) as usize;
                let toks = raw[8..8 + n].to_vec();
                let probs = raw[8 + n..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                Dump { path, seg, toks, probs }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::tune_io::{dumps, Cost, Path};

    fn flat_row() -> Vec<u32> {
        vec![1u32 << 12; 256]
    }

    #[test]
    fn node_probabilities_are_exact() {
        let mut f = flat_row();
        f[b'a' as usize] += 1 << 19;
        let mut np = NodeProbs::default();
        np.load(&f);
        // Root: symbols 128..256 hold 128 * 4096 of 2^20 + 2^19.
        assert_eq!(np.p16(0, 0) as u64, ((128u64 * 4096) << 16) / ((1 << 20) + (1 << 19)));
        // Full path of 'a' = 0b0110_0001: each node's probability of its actual bit is > 1/2.
        let a = b'a' as u32;
        for d in 0..8 {
            let p = np.p16(a >> (8 - d), d);
            let bit = (a >> (7 - d)) & 1;
            assert!(if bit == 1 { p > 32768 } else { p < 32768 }, "depth {d} p {p}");
        }
    }

    fn roundtrip(data: &[u8], seg: usize) -> usize {
        let mut f = flat_row();
        f[b'e' as usize] += 1 << 19;
        let mut np = NodeProbs::default();
        np.load(&f);
        let mut m = StreamMix::new(seg);
        let mut enc = BitEncoder::new();
        for &b in data {
            m.code(&mut enc, &np, b);
        }
        let out = enc.finish();
        let mut m = StreamMix::new(seg);
        let mut dec = BitDecoder::new(&out);
        let back: Vec<u8> = data.iter().map(|_| m.code(&mut dec, &np, 0)).collect();
        assert_eq!(back, data);
        out.len()
    }

    /// Offline tuning on dumps of the network's path probabilities
    /// (`MIX_TUNE_DIR`/*.nnp: u32 seg, u32 n, n bytes, 8n u16). Prints bits/byte.
    #[test]
    #[ignore]
    fn tune() {
        let variant = std::env::var("MIX_VARIANT").unwrap_or_default();
        let (mut tn, mut tm, mut tb) = (0f64, 0f64, 0f64);
        for d in dumps() {
            let (seg, n, toks) = (d.seg, d.toks.len(), &d.toks[..]);
            let (mut nn, mut mx) = (0f64, 0f64);
            for (si, chunk) in toks.chunks(seg).enumerate() {
                let mut p = MixParams::for_segment(seg);
                for kv in variant.split(',').filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap();
                    let v: u32 = v.parse().unwrap();
                    match k {
                        "lr" => p.lr = v as i32,
                        "shift" => p.lr_shift = v,
                        "boost" => p.boost = v != 0,
                        "limit" => p.limit = v,
                        "tb" => p.table_bits = v,
                        "b0" => p.blend[0] = v,
                        "b1" => p.blend[1] = v,
                        "ar" => p.apm_rate = v,
                        "sets" => p.sets = v as usize,
                        _ => panic!("{k}"),
                    }
                }
                let mut m = StreamMix::with_params(seg, p);
                let mut c = Cost(0.0);
                let mut cn = Cost(0.0);
                for (t, &b) in chunk.iter().enumerate() {
                    let path = d.node_path(si * seg + t);
                    for (k, &pk) in path.iter().enumerate() {
                        BitIo::bit(&mut cn, pk as u32, (b as u32 >> (7 - k)) & 1);
                    }
                    m.code(&mut c, &Path(path), b);
                }
                nn += cn.0;
                mx += c.0;
            }
            println!("{:>28} n={n:>7} seg={seg:>6} nn={:.3} mix={:.3} ({:+.1}%)", d.path.file_name().unwrap().to_string_lossy(), nn / n as f64, mx / n as f64, 100.0 * (mx / nn - 1.0));
            tn += nn;
            tm += mx;
            tb += nn.min(mx);
        }
        println!("TOTAL nn={:.0} mix={:.0} ({:+.2}%) best-per-file={:.0} variant={variant}", tn / 8.0, tm / 8.0, 100.0 * (tm / tn - 1.0), tb / 8.0);
    }

    #[test]
    fn roundtrip_and_adapts() {
        let text = b"the mixer learns what the network does not know about this file. ".repeat(200);
        let n = roundtrip(&text, 1 << 14);
        // A repeated sentence costs far less than the flat-ish network's ~8 bits/byte.
        assert!(n * 8 < text.len(), "{n} bytes for {}", text.len());
        let mut st = 7u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (st >> 24) as u8
            })
            .collect();
        roundtrip(&noise, 1 << 12);
        roundtrip(&[], 1 << 12);
        roundtrip(&[0], 1 << 12);
    }
}
