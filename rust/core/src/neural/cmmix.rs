//! Bitwise mixing of the network's byte distribution with the full CM byte
//! model of the sub-stream (neural payload flags = 2, see docs/FORMAT.md
//! "CM-mixed form").
//!
//! Each sub-stream owns a CM byte model ([`ByteModel`] with the parameters of
//! CM payload version 3 at the chunk's level, the sub-stream's length and the
//! chunk's modality, pinned here so a later CM version cannot change this
//! form) and a small context model ([`StreamMix`], the flags-1 model). The CM
//! model codes the byte through an [`Io`] bridge: for each bit it hands over
//! its final 16-bit P(1); the bridge takes the network's exact P(1) at the
//! current node, the small model's prediction, mixes the three in the
//! logistic domain with a deterministic integer mixer (weight sets chosen by
//! bit position x network confidence x CM confidence, by the partial byte x
//! agreement, and by the network/CM disagreement), refines the result with
//! two APMs, codes the bit with the binary arithmetic coder and returns the
//! coded bit, which every model then learns from. Everything is integer
//! arithmetic and a sub-stream sees only its own past, so lockstep groups and
//! threads do not change the output.

use super::mix::{mix_sets, train_sets, BitIo, MixParams, NodeSource, StreamMix};
use crate::bitcoder::BitEncoder;
use crate::ctxmix::bytes::{ByteModel, ByteParams, RowState};
use crate::ctxmix::prim::{tables, Apm, Tables};
use crate::ctxmix::Io;
use crate::hint::Modality;

/// CM payload version whose byte-model parameters this form uses (pinned).
pub const CM_PARAMS_VERSION: u8 = 3;

/// Mixer inputs: network, CM, small model, bias.
const N_IN: usize = 4;
const SETS0: usize = 8 * 8 * 8;
const SETS1: usize = 256 * 2;
const SETS2: usize = 8 * 16;

/// Tunable shape of the final mixer (the format fixes [`CmMixParams::for_level`]).
#[derive(Clone, Copy, Debug)]
pub struct CmMixParams {
    /// Mixer weight sets in use (1..=3).
    pub sets: usize,
    /// Mixer learning rate (numerator).
    pub lr: i32,
    /// Weight update shift.
    pub lr_shift: u32,
    /// Final blend weights (out of their sum) of the mixer, the APM on (mix,
    /// partial byte) and the APM on (mix, network confidence x bit position).
    pub blend: [u32; 3],
    /// APM adaptation shift.
    pub apm_rate: u32,
    /// Initial weights (Q16) of the network and CM inputs.
    pub w0: [i32; 2],
    /// Feed the small flags-1 model as a third input.
    pub small: bool,
}

impl CmMixParams {
    /// Parameters of the flags-2 form (the same at every level).
    pub fn for_level(_level: u8) -> Self {
        CmMixParams { sets: 3, lr: 12, lr_shift: 14, blend: [2, 1, 1], apm_rate: 6, w0: [40000, 24000], small: true }
    }
}

/// The final mixer and its APMs.
struct Final {
    t: &'static Tables,
    p: CmMixParams,
    w: Vec<i32>,
    x: [i32; N_IN],
    sel: [usize; 3],
    dots: [i32; 3],
    apm_c0: Apm,
    apm_nn: Apm,
    bits_seen: u32,
}

/// A 16-bit probability as the 12-bit input of the stretch table.
#[inline(always)]
pub(crate) fn to12(p16: u32) -> i32 {
    ((p16 + 8) >> 4).clamp(1, 4095) as i32
}

impl Final {
    fn new(p: CmMixParams) -> Self {
        let n = SETS0 + SETS1 + SETS2;
        let mut w = vec![0i32; n * N_IN];
        for s in 0..n {
            w[s * N_IN] = p.w0[0];
            w[s * N_IN + 1] = p.w0[1];
        }
        Final {
            t: tables(),
            p,
            w,
            x: [0; N_IN],
            sel: [0; 3],
            dots: [0; 3],
            apm_c0: Apm::new(256, p.apm_rate),
            apm_nn: Apm::new(8 * 16, p.apm_rate),
            bits_seen: 0,
        }
    }

    /// 16-bit P(1) from the CM's, the network's and the small model's 16-bit
    /// probabilities, at bit `depth` with partial byte `c0` (leading 1).
    fn predict(&mut self, cm16: u32, nn16: u32, sm16: Option<u32>, depth: u32, c0: u32) -> u32 {
        let t = self.t;
        let st_nn = t.stretch(to12(nn16));
        let st_cm = t.stretch(to12(cm16));
        self.x = [st_nn, st_cm, sm16.map(|p| t.stretch(to12(p))).unwrap_or(0), 256];
        let d = depth.min(7) as usize;
        let cn = (st_nn.unsigned_abs() as usize >> 8).min(7);
        let cc = (st_cm.unsigned_abs() as usize >> 8).min(7);
        let agree = ((st_nn >= 0) == (st_cm >= 0)) as usize;
        let dis = ((st_nn - st_cm).unsigned_abs() as usize >> 7).min(15);
        self.sel[0] = (d * 8 + cn) * 8 + cc;
        self.sel[1] = SETS0 + (c0 as usize & 255) * 2 + agree;
        self.sel[2] = SETS0 + SETS1 + d * 16 + dis;
        let ns = self.p.sets.clamp(1, 3);
        let pmix = t.squash(mix_sets(&self.w, &self.sel[..ns], &self.x, &mut self.dots));
        let a1 = self.apm_c0.p(t, pmix, c0 as usize & 255);
        let nb = ((st_nn + 2048) as usize >> 8).min(15);
        let a2 = self.apm_nn.p(t, pmix, d * 16 + nb);
        let [b0, b1, b2] = self.p.blend;
        let tot = (b0 + b1 + b2).max(1);
        let p = (pmix as u32 * 16 * b0 + a1 * b1 + a2 * b2) / tot;
        p.clamp(1, 65535)
    }

    fn update(&mut self, bit: u32) {
        let t = self.t;
        let target = (bit as i32) << 12;
        let boost = if self.bits_seen < 4096 { 3 } else if self.bits_seen < 32768 { 2 } else { 1 };
        let lr = self.p.lr as i64 * boost;
        let ns = self.p.sets.clamp(1, 3);
        train_sets(t, &mut self.w, &self.sel[..ns], &self.x, &self.dots, target, lr, self.p.lr_shift);
        self.apm_c0.update(bit);
        self.apm_nn.update(bit);
        self.bits_seen = self.bits_seen.saturating_add(1);
    }
}

/// The per-sub-stream model of the flags-2 form.
pub struct CmMix {
    cm: Box<ByteModel>,
    small: Option<StreamMix>,
    fin: Final,
}

/// The [`Io`] the CM byte model codes through: mixes, codes, learns.
struct Bridge<'a, B, N> {
    io: &'a mut B,
    nn: &'a N,
    fin: &'a mut Final,
    small: Option<&'a mut StreamMix>,
    /// Encoder only: also code each bit under the small model's own
    /// prediction, which is exactly what a flags-1 model of this sub-stream
    /// would predict (same model, same inputs), so the flags-1 form needs no
    /// model of its own.
    side: Option<&'a mut BitEncoder>,
    c0: u32,
    depth: u32,
}

impl<B: BitIo, N: NodeSource> Io for Bridge<'_, B, N> {
    #[inline(always)]
    fn bit(&mut self, cm16: u32, bit: u32) -> u32 {
        let d = self.depth.min(7);
        let nn16 = self.nn.p16(self.c0 & ((1 << d) - 1), d);
        let sm16 = self.small.as_mut().map(|s| s.predict_bit(nn16, d));
        let p = self.fin.predict(cm16, nn16, sm16, d, self.c0);
        let b = self.io.bit(p, bit) & 1;
        if let (Some(e), Some(q)) = (self.side.as_mut(), sm16) {
            e.encode(b, q);
        }
        self.fin.update(b);
        if let Some(s) = self.small.as_mut() {
            s.update_bit(b);
        }
        self.c0 = (self.c0 << 1) | b;
        self.depth += 1;
        b
    }
}

impl CmMix {
    /// A fresh model for one sub-stream of `len` bytes of a chunk at `level` with `modality`.
    pub fn new(level: u8, len: usize, modality: Modality) -> Self {
        Self::with_params(level, len, modality, CmMixParams::for_level(level))
    }

    /// A fresh model with explicit mixer parameters (tuning experiments).
    pub fn with_params(level: u8, len: usize, modality: Modality, p: CmMixParams) -> Self {
        let bp = ByteParams::for_version(CM_PARAMS_VERSION, level, len, modality);
        CmMix {
            cm: Box::new(ByteModel::new(bp, len)),
            small: p.small.then(|| StreamMix::new(len)),
            fin: Final::new(p),
        }
    }

    /// Code one byte (ignored when decoding) under the network's node
    /// probabilities `nn`; returns the byte coded.
    pub fn code<I: BitIo, N: NodeSource>(&mut self, io: &mut I, nn: &N, byte: u8) -> u8 {
        let mut br = Bridge { io, nn, fin: &mut self.fin, small: self.small.as_mut(), side: None, c0: 1, depth: 0 };
        self.cm.code(&mut br, byte);
        let b = (br.c0 & 0xFF) as u8;
        if let Some(s) = self.small.as_mut() {
            s.end_byte(b);
        }
        b
    }
}


/// The model of one CM group of the flags-3 form: G consecutive sub-streams
/// share one CM byte model (its context tables sized for the group's total
/// length, counter maps, mixer and APMs) while each keeps its own context
/// state ([`RowState`]: history, contexts, match model) and its own flags-1
/// model; the final mixer and its APMs are shared by the group too. Bytes must
/// be coded step-major, sub-stream minor (byte t of every sub-stream still
/// running, then byte t + 1).
pub struct CmGroup {
    cm: Box<ByteModel>,
    rows: Vec<RowState>,
    /// The sub-stream whose state is in `cm` (its slot in `rows` is a spare).
    held: usize,
    small: Vec<Option<StreamMix>>,
    fin: Vec<Final>,
    share_fin: bool,
}

impl CmGroup {
    /// A fresh group of sub-streams of `lens` bytes (non-increasing) of a chunk at `level` with `modality`.
    pub fn new(level: u8, lens: &[usize], modality: Modality) -> Self {
        Self::with_params(level, lens, modality, CmMixParams::for_level(level), true)
    }

    /// A fresh group with explicit mixer parameters; `share_fin`: one final
    /// mixer for the group (tuning experiments).
    pub fn with_params(level: u8, lens: &[usize], modality: Modality, p: CmMixParams, share_fin: bool) -> Self {
        let total: usize = lens.iter().sum();
        let first = lens.first().copied().unwrap_or(0);
        let mut bp = ByteParams::for_version(CM_PARAMS_VERSION, level, total, modality);
        bp.match_bits = ByteParams::for_version(CM_PARAMS_VERSION, level, first, modality).match_bits;
        let mut cm = Box::new(ByteModel::new(bp, first));
        let rows = (0..lens.len()).map(|r| cm.new_row(if r == 0 { 0 } else { lens[r] })).collect();
        CmGroup {
            cm,
            rows,
            held: 0,
            small: lens.iter().map(|&l| p.small.then(|| StreamMix::new(l))).collect(),
            fin: (0..if share_fin { 1 } else { lens.len().max(1) }).map(|_| Final::new(p)).collect(),
            share_fin,
        }
    }

    /// Code byte `byte` (ignored when decoding) of sub-stream `r` under the
    /// network's node probabilities `nn`; returns the byte coded (0 for a
    /// sub-stream index outside the group).
    pub fn code<I: BitIo, N: NodeSource>(&mut self, r: usize, io: &mut I, nn: &N, byte: u8) -> u8 {
        self.code_with_side(r, io, nn, byte, None)
    }

    /// Whether sub-stream `r`'s small model is the flags-1 model of a
    /// sub-stream of `seg` bytes (built with the same parameters), so that
    /// [`CmGroup::code_with_side`] can write that sub-stream's flags-1 form.
    pub fn side_matches(&self, r: usize, seg: usize) -> bool {
        matches!(self.small.get(r), Some(Some(s)) if s.params() == MixParams::for_segment(seg))
    }

    /// [`CmGroup::code`] that, when encoding, also writes the flags-1 form of
    /// sub-stream `r` to `side` (valid only where [`CmGroup::side_matches`]).
    pub fn code_with_side<I: BitIo, N: NodeSource>(&mut self, r: usize, io: &mut I, nn: &N, byte: u8, side: Option<&mut BitEncoder>) -> u8 {
        if r >= self.rows.len() {
            return 0;
        }
        if r != self.held {
            self.cm.swap_row(&mut self.rows[r]);
            self.rows.swap(r, self.held);
            self.held = r;
        }
        let fi = if self.share_fin { 0 } else { r };
        let (Some(fin), Some(small)) = (self.fin.get_mut(fi), self.small.get_mut(r)) else {
            return 0;
        };
        let mut br = Bridge { io, nn, fin, small: small.as_mut(), side, c0: 1, depth: 0 };
        self.cm.code(&mut br, byte);
        let b = (br.c0 & 0xFF) as u8;
        if let Some(s) = small.as_mut() {
            s.end_byte(b);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitcoder::{BitDecoder, BitEncoder};
    use crate::neural::mix::tune_io::{dumps, Cost, Path};
    use crate::neural::mix::NodeProbs;

    fn roundtrip(data: &[u8], level: u8) -> usize {
        let mut f = vec![1u32 << 12; 256];
        f[b'e' as usize] += 1 << 19;
        let mut np = NodeProbs::default();
        np.load(&f);
        let mut m = CmMix::new(level, data.len(), Modality::Text);
        let mut enc = BitEncoder::new();
        for &b in data {
            m.code(&mut enc, &np, b);
        }
        let out = enc.finish();
        let mut m = CmMix::new(level, data.len(), Modality::Text);
        let mut dec = BitDecoder::new(&out);
        let back: Vec<u8> = data.iter().map(|_| m.code(&mut dec, &np, 0)).collect();
        assert_eq!(back, data);
        out.len()
    }

    #[test]
    fn roundtrip_and_learns() {
        let text = b"the CM model and the network are mixed bit by bit in this stream. ".repeat(150);
        for level in [1, 5, 9] {
            let n = roundtrip(&text, level);
            assert!(n * 20 < text.len(), "level {level}: {n} bytes for {}", text.len());
        }
        let mut st = 3u32;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (st >> 24) as u8
            })
            .collect();
        let n = roundtrip(&noise, 5);
        assert!(n < noise.len() + noise.len() / 20, "noise {n}");
        roundtrip(&[], 5);
        roundtrip(&[0], 5);
    }

    /// File stem of a tuning dump and the modality its name says (`NN_kind[digits]`).
    fn dump_modality(path: &std::path::Path) -> (String, Modality) {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let kind = name.split_once('_').map(|x| x.1).unwrap_or("text").trim_end_matches(|c: char| c.is_ascii_digit());
        let modality = match kind {
            "structured" => Modality::Structured,
            "gene" => Modality::Gene,
            "image" | "medical" => Modality::Image,
            "speech" | "music" | "audio" => Modality::Audio,
            _ => Modality::Text,
        };
        (name, modality)
    }

    /// Offline tuning on dumps of the network's path probabilities
    /// (`MIX_TUNE_DIR`/*.nnp: u32 seg, u32 n, n bytes, 8n u16; the modality is
    /// the file name's text after the first `_`, the level follows `seg`).
    /// Prints bits/byte of: the network alone, the flags-1 mix, CM per
    /// sub-stream, CM over the whole dump (one chunk) and this form.
    #[test]
    #[ignore]
    fn tune() {
        let variant = std::env::var("MIX_VARIANT").unwrap_or_default();
        let quick = std::env::var("MIX_QUICK").is_ok();
        let mut tot = [0f64; 5];
        let mut best = 0f64;
        for d in dumps() {
            let (name, modality) = dump_modality(&d.path);
            let (seg, n) = (d.seg, d.toks.len());
            let level = crate::neural::codec::cm_level(seg);
            let toks = &d.toks[..];
            let mut p = CmMixParams::for_level(level);
            for kv in variant.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap();
                let v: i64 = v.parse().unwrap();
                match k {
                    "sets" => p.sets = v as usize,
                    "lr" => p.lr = v as i32,
                    "shift" => p.lr_shift = v as u32,
                    "b0" => p.blend[0] = v as u32,
                    "b1" => p.blend[1] = v as u32,
                    "b2" => p.blend[2] = v as u32,
                    "ar" => p.apm_rate = v as u32,
                    "wn" => p.w0[0] = v as i32,
                    "wc" => p.w0[1] = v as i32,
                    "small" => p.small = v != 0,
                    _ => panic!("{k}"),
                }
            }
            let mut c = [0f64; 5];
            if !quick {
                let mut whole = Cost(0.0);
                let mut bm = ByteModel::new(ByteParams::for_version(3, level, n, modality), n);
                for &b in toks {
                    bm.code(&mut whole, b);
                }
                c[3] = whole.0;
            }
            for (si, chunk) in toks.chunks(seg).enumerate() {
                let mut cm = ByteModel::new(ByteParams::for_version(3, level, chunk.len(), modality), chunk.len());
                let mut sm = StreamMix::new(seg);
                let mut m = CmMix::with_params(level, chunk.len(), modality, p);
                let (mut cn, mut cs, mut cc, mut cx) = (Cost(0.0), Cost(0.0), Cost(0.0), Cost(0.0));
                for (t, &b) in chunk.iter().enumerate() {
                    let path = d.node_path(si * seg + t);
                    for (k, &pk) in path.iter().enumerate() {
                        BitIo::bit(&mut cn, pk as u32, (b as u32 >> (7 - k)) & 1);
                    }
                    if !quick {
                        sm.code(&mut cs, &Path(path), b);
                        cm.code(&mut cc, b);
                    }
                    m.code(&mut cx, &Path(path), b);
                }
                c[0] += cn.0;
                c[1] += cs.0;
                c[2] += cc.0;
                c[4] += cx.0;
            }
            let nb = n as f64;
            println!(
                "{name:>16} n={n:>7} seg={seg:>6} nn={:.3} mix1={:.3} cmseg={:.3} cm={:.3} new={:.3}",
                c[0] / nb,
                c[1] / nb,
                c[2] / nb,
                c[3] / nb,
                c[4] / nb
            );
            for k in 0..5 {
                tot[k] += c[k];
            }
            best += c[4].min(if quick { f64::MAX } else { c[3].min(c[1]).min(c[0]) });
        }
        println!(
            "TOTAL bytes nn={:.0} mix1={:.0} cmseg={:.0} cm={:.0} new={:.0} best={:.0} variant={variant}",
            tot[0] / 8.0,
            tot[1] / 8.0,
            tot[2] / 8.0,
            tot[3] / 8.0,
            tot[4] / 8.0,
            best / 8.0
        );
    }

    fn sample_text(n: usize, seed: u32) -> Vec<u8> {
        let mut st = seed;
        (0..n)
            .map(|i| {
                st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if st >> 28 == 0 { (st >> 20) as u8 } else { b"rows share the statistics, not the state.\n"[i % 42] }
            })
            .collect()
    }

    /// Swapping a fresh row in and out between bytes leaves the coded row's
    /// state intact; only the spare's bucket selections (claims in the shared
    /// tables) may cost the coded row a little.
    #[test]
    fn swapping_a_row_out_and_back_keeps_its_state() {
        for (level, modality) in [(1, Modality::Text), (5, Modality::Text), (9, Modality::Text), (5, Modality::Gene), (9, Modality::Gene)] {
            let data = sample_text(6000, 9);
            let p = ByteParams::for_version(3, level, data.len(), modality);
            let mut a = ByteModel::new(p, data.len());
            let mut b = ByteModel::new(p, data.len());
            let mut spare = b.new_row(data.len());
            let (mut ra, mut rb) = (Cost(0.0), Cost(0.0));
            for &x in &data {
                a.code(&mut ra, x);
                b.swap_row(&mut spare);
                b.swap_row(&mut spare);
                assert_eq!(b.code(&mut rb, x), x);
            }
            assert!(rb.0 < 1.01 * ra.0 && ra.0 < 1.01 * rb.0, "level {level} {modality:?}: {} vs {}", rb.0, ra.0);
        }
    }

    /// Random words of a small vocabulary: predictable from the last few bytes, not from long matches.
    fn words(n: usize, seed: u32) -> Vec<u8> {
        let vocab: [&[u8]; 8] = [b"the ", b"cat ", b"sat ", b"on ", b"mat, ", b"and ", b"dog ", b"ran.\n"];
        let mut st = seed;
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            out.extend_from_slice(vocab[(st >> 29) as usize]);
        }
        out.truncate(n);
        out
    }

    #[test]
    fn rows_share_statistics_but_not_state() {
        let data = sample_text(8000, 4);
        let p = ByteParams::for_version(3, 5, 2 * data.len(), Modality::Text);
        // Two rows with the same bytes in lockstep: the second learns from the first.
        let mut m = ByteModel::new(p, data.len());
        let mut other = m.new_row(data.len());
        let (mut c0, mut c1) = (Cost(0.0), Cost(0.0));
        for &x in &data {
            m.code(&mut c0, x);
            m.swap_row(&mut other);
            assert_eq!(m.code(&mut c1, x), x);
            m.swap_row(&mut other);
        }
        assert!(c1.0 < 0.5 * c0.0, "second row {} first row {}", c1.0, c0.0);
        // A row of other bytes keeps its own history: interleaving does not garble the first row's contexts.
        let data = words(8000, 4);
        let mut alone = ByteModel::new(p, data.len());
        let mut ca = Cost(0.0);
        for &x in &data {
            alone.code(&mut ca, x);
        }
        let noise: Vec<u8> = words(8000, 77).iter().map(|b| b.wrapping_mul(151)).collect();
        let mut m = ByteModel::new(p, data.len());
        let mut other = m.new_row(data.len());
        let (mut c0, mut c1) = (Cost(0.0), Cost(0.0));
        for (&x, &y) in data.iter().zip(&noise) {
            m.code(&mut c0, x);
            m.swap_row(&mut other);
            m.code(&mut c1, y);
            m.swap_row(&mut other);
        }
        assert!(c0.0 < 1.05 * ca.0, "interleaved {} alone {}", c0.0, ca.0);
    }

    #[test]
    fn group_roundtrip_in_coding_order() {
        let mut f = vec![1u32 << 12; 256];
        f[b' ' as usize] += 1 << 18;
        let mut np = NodeProbs::default();
        np.load(&f);
        let data = sample_text(3 * 1000 + 321, 5);
        let lens = [1000usize, 1000, 1000, 321];
        for (level, modality) in [(1, Modality::Text), (9, Modality::Gene)] {
            let mut g = CmGroup::new(level, &lens, modality);
            let mut encs: Vec<BitEncoder> = lens.iter().map(|_| BitEncoder::new()).collect();
            for t in 0..1000 {
                for (r, _) in lens.iter().enumerate().filter(|x| *x.1 > t) {
                    g.code(r, &mut encs[r], &np, data[r * 1000 + t]);
                }
            }
            let outs: Vec<Vec<u8>> = encs.into_iter().map(BitEncoder::finish).collect();
            let mut g = CmGroup::new(level, &lens, modality);
            let mut decs: Vec<BitDecoder> = outs.iter().map(|o| BitDecoder::new(o)).collect();
            let mut back = vec![0u8; data.len()];
            for t in 0..1000 {
                for (r, _) in lens.iter().enumerate().filter(|x| *x.1 > t) {
                    back[r * 1000 + t] = g.code(r, &mut decs[r], &np, 0);
                }
            }
            assert!(back == data, "level {level}");
            // Out-of-range rows code nothing.
            assert_eq!(g.code(9, &mut decs[0], &np, 0), 0);
        }
    }

    /// Flags-3 tuning on the dumps of [`tune`]: bits/byte of CM over the whole
    /// dump, flags 2 (`MIX_F2=1`) and CM groups of each G in `MIX_G` (comma
    /// list, 0 = the whole dump; default 4,16,0; `MIX_SHARE_FIN=1`: one final
    /// mixer per group). Also prints the CPU seconds of each coding.
    #[test]
    #[ignore]
    fn tune_group() {
        let gs: Vec<usize> = std::env::var("MIX_G").unwrap_or_else(|_| "4,16,0".into()).split(',').map(|x| x.parse().unwrap()).collect();
        let f2 = std::env::var("MIX_F2").is_ok();
        // Flags 2 with its rows in lockstep groups of this many (as the codec runs it; 0: one sub-stream after another).
        let f2i: usize = std::env::var("MIX_F2_LOCKSTEP").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let cmw = std::env::var("MIX_NOCM").is_err();
        let share = std::env::var("MIX_SHARE_FIN").is_ok();
        let mut tot = vec![0f64; 2 + gs.len()];
        let mut secs = vec![0f64; 2 + gs.len()];
        let mut raw = 0usize;
        for d in dumps() {
            let (name, modality) = dump_modality(&d.path);
            let (seg, n) = (d.seg, d.toks.len());
            let level = crate::neural::codec::cm_level(seg);
            let toks = &d.toks[..];
            let lens: Vec<usize> = toks.chunks(seg).map(|c| c.len()).collect();
            let mut c = vec![0f64; 2 + gs.len()];
            if cmw {
                let t0 = std::time::Instant::now();
                let mut whole = Cost(0.0);
                let mut bm = ByteModel::new(ByteParams::for_version(3, level, n, modality), n);
                for &b in toks {
                    bm.code(&mut whole, b);
                }
                c[0] = whole.0;
                secs[0] += t0.elapsed().as_secs_f64();
            }
            if f2 {
                let t0 = std::time::Instant::now();
                let g = if f2i == 0 { 1 } else { f2i };
                for (gi, gl) in lens.chunks(g).enumerate() {
                    let mut ms: Vec<CmMix> = gl.iter().map(|&l| CmMix::new(level, l, modality)).collect();
                    let mut cx = Cost(0.0);
                    for t in 0..gl[0] {
                        for (r, &l) in gl.iter().enumerate() {
                            if l <= t {
                                break;
                            }
                            let pos = (gi * g + r) * seg + t;
                            ms[r].code(&mut cx, &Path(d.node_path(pos)), toks[pos]);
                        }
                    }
                    c[1] += cx.0;
                }
                secs[1] += t0.elapsed().as_secs_f64();
            }
            for (k, &g) in gs.iter().enumerate() {
                let g = if g == 0 { lens.len().max(1) } else { g };
                let t0 = std::time::Instant::now();
                for (gi, gl) in lens.chunks(g).enumerate() {
                    let first = gi * g;
                    let mut grp = CmGroup::with_params(level, gl, modality, CmMixParams::for_level(level), share);
                    let mut costs: Vec<Cost> = gl.iter().map(|_| Cost(0.0)).collect();
                    for t in 0..gl[0] {
                        for (r, &l) in gl.iter().enumerate() {
                            if l <= t {
                                break;
                            }
                            let pos = (first + r) * seg + t;
                            grp.code(r, &mut costs[r], &Path(d.node_path(pos)), toks[pos]);
                        }
                    }
                    c[2 + k] += costs.iter().map(|x| x.0).sum::<f64>();
                }
                secs[2 + k] += t0.elapsed().as_secs_f64();
            }
            let nb = n as f64;
            raw += n;
            let gtxt: Vec<String> = gs.iter().enumerate().map(|(k, g)| format!("g{g}={:.3}", c[2 + k] / nb)).collect();
            println!("{name:>16} n={n:>7} seg={seg:>6} cm={:.3} f2={:.3} {}", c[0] / nb, c[1] / nb, gtxt.join(" "));
            for k in 0..c.len() {
                tot[k] += c[k];
            }
        }
        let gtxt: Vec<String> = gs.iter().enumerate().map(|(k, g)| format!("g{g}={:.0} ({:.2}s)", tot[2 + k] / 8.0, secs[2 + k])).collect();
        println!("TOTAL raw={raw} bytes cm={:.0} ({:.2}s) f2={:.0} ({:.2}s) {} share_fin={share}", tot[0] / 8.0, secs[0], tot[1] / 8.0, secs[1], gtxt.join(" "));
        // MIX_JSON=path appends one JSON line with the totals (bytes and CPU seconds of one thread).
        if let Ok(path) = std::env::var("MIX_JSON") {
            use std::io::Write;
            let groups: Vec<String> = gs.iter().enumerate().map(|(k, g)| format!("{{\"g\": {g}, \"bytes\": {:.0}, \"s\": {:.3}}}", tot[2 + k] / 8.0, secs[2 + k])).collect();
            let dir = std::env::var("MIX_TUNE_DIR").unwrap_or_default();
            let line = format!(
                "{{\"dumps\": \"{dir}\", \"raw\": {raw}, \"share_fin\": {share}, \"f2_lockstep\": {f2i}, \"cm_bytes\": {:.0}, \"cm_s\": {:.3}, \"f2_bytes\": {:.0}, \"f2_s\": {:.3}, \"groups\": [{}]}}\n",
                tot[0] / 8.0,
                secs[0],
                tot[1] / 8.0,
                secs[1],
                groups.join(", ")
            );
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            f.write_all(line.as_bytes()).unwrap();
        }
    }
}
