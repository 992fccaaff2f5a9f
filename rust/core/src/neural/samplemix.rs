//! Mixing of the network with the CM sample model inside a sample region
//! (neural payload flags = 4, see docs/FORMAT.md "Sample-mixed form").
//!
//! The CM engine codes image and audio samples with its sample model
//! ([`SampleModel`]): the residual against a blend of integer predictors is
//! binarized as zero flag, sign, unary exponent and mantissa bits. Those
//! decisions do not follow the network's byte tree, but each one splits a
//! contiguous range of residuals, hence of sample values, in two, and the
//! network's distribution over the sample's first token (its most significant
//! byte, token order) gives the mass of any value range: exactly for 8-bit
//! samples, and for wider samples with the mass of a most-significant-byte
//! value spread evenly over its low bytes. So every sample-model decision gets
//! the network's probability of the same outcome, and a small integer mixer
//! (three weight sets: decision class x network confidence x model
//! confidence, decision class x activity, decision class x disagreement) with
//! two APMs combines the two. Bytes outside whole samples (headers, samples cut
//! by the sub-stream boundary) are coded by the flags-1 model. A sub-stream
//! sees only its own past, so lockstep groups and threads do not change the
//! output; everything is integer arithmetic.

use super::cmmix::to12;
use super::mix::{mix_sets, train_sets, BitIo, NodeProbs, StreamMix};
use crate::ctxmix::prim::{tables, Apm, Tables};
use crate::ctxmix::sample::{SampleModel, SampleRow};
use crate::ctxmix::{region, Io, Split};
use crate::hint::Hint;

/// CM payload version whose sample-model parameters this form uses (pinned).
pub const SAMPLE_PARAMS_VERSION: u8 = 3;

/// Mixer inputs: network, sample model, bias.
const N_IN: usize = 3;
/// Decision classes (see [`class`]).
const NCLS: usize = 16;
const SETS0: usize = NCLS * 8 * 8;
const SETS1: usize = NCLS * 16;
const SETS2: usize = NCLS * 16;

/// Compact class of a sample-model decision id: zero flag, sign, exponent
/// steps 0..9 (later ones share the last), mantissa depth 0..3.
#[inline(always)]
fn class(did: usize) -> usize {
    match did {
        0 => 0,
        1 => 1,
        2..=31 => 2 + (did - 2).min(9),
        _ => 12 + (did - 32).min(3),
    }
}

/// The network's distribution over one sample's values, as cumulative masses
/// in sample-offset order (offset = value − smallest value).
struct NetTable {
    /// `cum[k]` = total frequency of the most-significant-byte bins below bin `k` (offset order).
    cum: [u64; 257],
    /// `freq[k]` = frequency of bin `k` (offset order).
    freq: [u64; 256],
    /// log2 of the values per bin (0 for 8-bit samples).
    low_bits: u32,
}

impl NetTable {
    fn new() -> Self {
        NetTable { cum: [0; 257], freq: [0; 256], low_bits: 0 }
    }

    /// Load the network's 256 frequencies of a sample's first byte; `signed`
    /// samples store their offset's top bit inverted.
    fn load(&mut self, freqs: &[u32], bits: u32, signed: bool) {
        let flip = if signed { 0x80 } else { 0 };
        self.low_bits = bits - 8;
        let mut s = 0u64;
        for k in 0..256 {
            let f = freqs.get(k ^ flip).copied().unwrap_or(1) as u64;
            self.freq[k] = f;
            self.cum[k] = s;
            s += f;
        }
        self.cum[256] = s;
    }

    /// Mass of the offsets below `u` (0 ≤ u ≤ 2^bits), in units of 2^-low_bits frequency.
    #[inline(always)]
    fn below(&self, u: i64) -> u64 {
        let h = (u >> self.low_bits) as usize;
        if h >= 256 {
            return self.cum[256] << self.low_bits;
        }
        let rem = (u & ((1i64 << self.low_bits) - 1)) as u64;
        (self.cum[h] << self.low_bits) + rem * self.freq[h]
    }

    /// Mass of the residuals `[a, b]` around the prediction at offset `p_off`.
    fn mass(&self, a: i64, b: i64, p_off: i64, bits: u32) -> u64 {
        if a > b {
            return 0;
        }
        let full = 1i64 << bits;
        let s = (p_off + a).rem_euclid(full);
        let len = (b - a + 1).min(full);
        if s + len <= full {
            self.below(s + len) - self.below(s)
        } else {
            (self.below(full) - self.below(s)) + self.below(s + len - full)
        }
    }

    /// The network's 16-bit P(1) of a decision.
    fn p16(&self, sp: &Split) -> u32 {
        let (m1, m0) = if sp.nz {
            let z = self.mass(0, 0, sp.p_off, sp.bits);
            (self.below(1i64 << sp.bits) - z, z)
        } else {
            (self.mass(sp.one.0, sp.one.1, sp.p_off, sp.bits), self.mass(sp.zero.0, sp.zero.1, sp.p_off, sp.bits))
        };
        let n = m1 + m0;
        if n == 0 {
            return 32768;
        }
        ((((m1 as u128) << 16) / n as u128) as u32).clamp(1, 65535)
    }
}

/// The final mixer of the network and the sample model, with two APMs.
struct SampleFinal {
    t: &'static Tables,
    w: Vec<i32>,
    x: [i32; N_IN],
    sel: [usize; 3],
    dots: [i32; 3],
    apm_did: Apm,
    apm_nn: Apm,
    bits_seen: u32,
}

impl SampleFinal {
    fn new() -> Self {
        let n = SETS0 + SETS1 + SETS2;
        let mut w = vec![0i32; n * N_IN];
        for s in 0..n {
            w[s * N_IN] = 16000;
            w[s * N_IN + 1] = 56000;
        }
        SampleFinal {
            t: tables(),
            w,
            x: [0; N_IN],
            sel: [0; 3],
            dots: [0; 3],
            apm_did: Apm::new(NCLS * 64, 6),
            apm_nn: Apm::new(NCLS * 16, 6),
            bits_seen: 0,
        }
    }

    fn predict(&mut self, sm16: u32, nn16: u32, sp: &Split) -> u32 {
        let t = self.t;
        let st_nn = t.stretch(to12(nn16));
        let st_sm = t.stretch(to12(sm16));
        self.x = [st_nn, st_sm, 256];
        let c = class(sp.did);
        let cn = (st_nn.unsigned_abs() as usize >> 8).min(7);
        let cs = (st_sm.unsigned_abs() as usize >> 8).min(7);
        let dis = ((st_nn - st_sm).unsigned_abs() as usize >> 7).min(15);
        self.sel[0] = (c * 8 + cn) * 8 + cs;
        self.sel[1] = SETS0 + c * 16 + (sp.act >> 2).min(15);
        self.sel[2] = SETS0 + SETS1 + c * 16 + dis;
        let pmix = t.squash(mix_sets(&self.w, &self.sel, &self.x, &mut self.dots));
        let a1 = self.apm_did.p(t, pmix, c * 64 + sp.act.min(63));
        let nb = ((st_nn + 2048) as usize >> 8).min(15);
        let a2 = self.apm_nn.p(t, pmix, c * 16 + nb);
        ((pmix as u32 * 16 * 2 + a1 + a2) / 4).clamp(1, 65535)
    }

    fn update(&mut self, bit: u32) {
        let t = self.t;
        let boost = if self.bits_seen < 4096 { 3 } else if self.bits_seen < 32768 { 2 } else { 1 };
        train_sets(t, &mut self.w, &self.sel, &self.x, &self.dots, (bit as i32) << 12, 12 * boost, 14);
        self.apm_did.update(bit);
        self.apm_nn.update(bit);
        self.bits_seen = self.bits_seen.saturating_add(1);
    }
}

/// The [`Io`] the sample model codes through: mixes with the network, codes, learns.
struct Bridge<'a, B> {
    io: &'a mut B,
    fin: &'a mut SampleFinal,
    net: &'a NetTable,
}

impl<B: BitIo> Io for Bridge<'_, B> {
    const SPLITS: bool = true;

    #[inline(always)]
    fn bit(&mut self, p16: u32, bit: u32) -> u32 {
        self.io.bit(p16, bit) & 1
    }

    #[inline(always)]
    fn bit_split(&mut self, p16: u32, bit: u32, split: &Split) -> u32 {
        let nn16 = self.net.p16(split);
        let p = self.fin.predict(p16, nn16, split);
        let b = self.io.bit(p, bit) & 1;
        self.fin.update(b);
        b
    }
}

/// Bound on the image-row state of one group's sub-streams (72 bytes per row
/// sample each): groups above it are neither written nor read.
pub const ROW_STATE_MAX: usize = 512 << 20;

/// Whether a group of `rows` live sub-streams of a chunk with `hint` keeps its
/// per-sub-stream image-row state within [`ROW_STATE_MAX`] (audio has none).
pub fn group_fits(hint: &Hint, rows: usize) -> bool {
    let rowlen = hint.layout.map(|l| l.width as usize * l.channels as usize).unwrap_or(0);
    rowlen.saturating_mul(72).saturating_mul(rows) <= ROW_STATE_MAX
}

/// Where one sub-stream's whole samples lie: the sub-stream offset of the
/// first, their count, and the stream index of the first.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    count: usize,
    first_sample: u64,
}

/// One sub-stream of a group: its samples, predictor state and flags-1 model.
struct Row {
    span: Option<Span>,
    /// The sub-stream's predictor state while another sub-stream's is in the shared model.
    state: Option<SampleRow>,
    small: StreamMix,
    /// Position (bytes) in the sub-stream.
    t: usize,
    /// The current sample's bytes after the first (already coded).
    pending: [u8; 3],
    npend: usize,
    pnext: usize,
}

/// The model of one group of consecutive sub-streams of the flags-4 form: one
/// CM sample model (counters sized for the group's samples, mixer, APMs) and
/// one final mixer shared by the group; each sub-stream keeps its own
/// predictor state ([`SampleRow`]: sample history, predictor errors, NLMS
/// filters) and its own flags-1 model for the bytes outside whole samples.
/// Bytes must be coded step-major, sub-stream minor, as the lockstep network
/// run visits them.
pub struct SampleGroup {
    model: Option<SampleModel>,
    /// The sub-stream whose predictor state is in `model`.
    held: usize,
    rows: Vec<Row>,
    fin: SampleFinal,
    net: NetTable,
    bps: usize,
    bits: u32,
    signed: bool,
}

impl SampleGroup {
    /// A fresh group of sub-streams of `lens` bytes starting at token-order
    /// offset `offset` of a chunk of `chunk_len` bytes with `hint` (consecutive
    /// sub-streams, each starting where the previous one ends), at `level`.
    pub fn new(level: u8, hint: &Hint, chunk_len: usize, offset: usize, lens: &[usize]) -> Self {
        let reg = region(hint, chunk_len);
        let layout = hint.layout.unwrap_or_default();
        let mut at = offset;
        let spans: Vec<Option<Span>> = lens
            .iter()
            .map(|&len| {
                let off = at;
                at += len;
                let r = reg.as_ref()?;
                let end = off + len;
                // first whole sample at or after `off`, and the samples ending by `end`
                let first = off.saturating_sub(r.start).div_ceil(r.bps);
                let last = (end.saturating_sub(r.start) / r.bps).min(r.count);
                (end > r.start && first < last).then(|| Span { start: r.start + first * r.bps - off, count: last - first, first_sample: layout.first_sample.wrapping_add(first as u64) })
            })
            .collect();
        let total: usize = spans.iter().flatten().map(|s| s.count).sum();
        let held = spans.iter().position(Option::is_some).unwrap_or(0);
        let model = spans.get(held).copied().flatten().map(|sp| {
            let mut l = layout;
            l.first_sample = sp.first_sample;
            SampleModel::new(&l, total, level, SAMPLE_PARAMS_VERSION)
        });
        let rows = spans
            .iter()
            .zip(lens)
            .enumerate()
            .map(|(r, (&span, &len))| {
                let state = match (&model, span) {
                    (Some(m), Some(sp)) if r != held => Some(m.new_row(sp.first_sample, sp.count)),
                    _ => None,
                };
                Row { span, state, small: StreamMix::new(len), t: 0, pending: [0; 3], npend: 0, pnext: 0 }
            })
            .collect();
        let (bps, signed) = reg.map(|r| (r.bps, r.signed)).unwrap_or((1, false));
        SampleGroup { model, held, rows, fin: SampleFinal::new(), net: NetTable::new(), bps, bits: 8 * bps as u32, signed }
    }

    /// Code sub-stream `r`'s next byte under the network's quantized row
    /// `freqs` (256 frequencies) and its node probabilities `np`. `sub` is the
    /// sub-stream's token-order bytes when encoding (`None` when decoding);
    /// returns the byte (0 for a sub-stream outside the group). A sample's
    /// bytes after its first come back without coding (they were coded with
    /// the first).
    pub fn code<I: BitIo>(&mut self, r: usize, io: &mut I, freqs: &[u32], np: &NodeProbs, sub: Option<&[u8]>) -> u8 {
        let bps = self.bps;
        let Some(row) = self.rows.get_mut(r) else {
            return 0;
        };
        let t = row.t;
        row.t += 1;
        if row.pnext < row.npend {
            let b = row.pending[row.pnext];
            row.pnext += 1;
            return b;
        }
        row.npend = 0;
        row.pnext = 0;
        let sample = row.span.filter(|sp| t >= sp.start && (t - sp.start) % bps == 0 && (t - sp.start) / bps < sp.count);
        let (Some(sp), Some(model)) = (sample, self.model.as_mut()) else {
            let byte = sub.and_then(|d| d.get(t)).copied().unwrap_or(0);
            return row.small.code(io, np, byte);
        };
        if r != self.held {
            let Some(mut st) = row.state.take() else {
                return 0;
            };
            model.swap_row(&mut st);
            if let Some(h) = self.rows.get_mut(self.held) {
                h.state = Some(st);
            }
            self.held = r;
        }
        let i = (t - sp.start) / bps;
        let bits = self.bits;
        let mut known = 0i32;
        if let Some(bytes) = sub.and_then(|d| d.get(t..t + bps)) {
            let mut u = 0u32;
            for &x in bytes {
                u = (u << 8) | x as u32;
            }
            known = if self.signed { ((u << (32 - bits)) as i32) >> (32 - bits) } else { u as i32 };
        }
        self.net.load(freqs, bits, self.signed);
        let mut br = Bridge { io, fin: &mut self.fin, net: &self.net };
        let v = model.code(&mut br, i, known) as u32;
        let Some(row) = self.rows.get_mut(r) else {
            return 0;
        };
        for j in 0..bps {
            row.pending[j] = (v >> (8 * (bps - 1 - j))) as u8;
        }
        row.npend = bps;
        row.pnext = 1;
        row.pending[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitcoder::{BitDecoder, BitEncoder};
    use crate::hint::{Modality, SampleLayout};

    /// A fake network row: a peaked distribution around `centre` (token order byte).
    fn row(centre: u8) -> Vec<u32> {
        (0..256u32).map(|k| 1 + (4096 >> ((k as i32 - centre as i32).unsigned_abs().min(12))) as u32).collect()
    }

    /// Encode `chunk` as sub-streams of `seg` bytes in groups of `g`, decode, compare; code bytes.
    fn roundtrip(chunk: &[u8], hint: &Hint, seg: usize, g: usize, level: u8) -> usize {
        let subs: Vec<&[u8]> = chunk.chunks(seg).collect();
        let mut total = 0;
        for (gi, grp) in subs.chunks(g).enumerate() {
            let lens: Vec<usize> = grp.iter().map(|s| s.len()).collect();
            let off = gi * g * seg;
            let steps = lens[0];
            let mut encs: Vec<BitEncoder> = grp.iter().map(|s| BitEncoder::with_capacity(s.len())).collect();
            let mut m = SampleGroup::new(level, hint, chunk.len(), off, &lens);
            let mut np = NodeProbs::default();
            let mut prev = vec![0u8; grp.len()];
            for t in 0..steps {
                for (r, sub) in grp.iter().enumerate().filter(|(_, s)| s.len() > t) {
                    let f = row(prev[r]);
                    np.load(&f);
                    prev[r] = m.code(r, &mut encs[r], &f, &np, Some(sub));
                    assert_eq!(prev[r], sub[t]);
                }
            }
            let codes: Vec<Vec<u8>> = encs.into_iter().map(BitEncoder::finish).collect();
            total += codes.iter().map(Vec::len).sum::<usize>();
            let mut decs: Vec<BitDecoder> = codes.iter().map(|c| BitDecoder::new(c)).collect();
            let mut m = SampleGroup::new(level, hint, chunk.len(), off, &lens);
            let mut prev = vec![0u8; grp.len()];
            for t in 0..steps {
                for (r, sub) in grp.iter().enumerate().filter(|(_, s)| s.len() > t) {
                    let f = row(prev[r]);
                    np.load(&f);
                    prev[r] = m.code(r, &mut decs[r], &f, &np, None);
                    assert_eq!(prev[r], sub[t], "group {gi} sub-stream {r} byte {t}");
                }
            }
        }
        total
    }

    #[test]
    fn net_table_masses_add_up() {
        let f: Vec<u32> = (0..256u32).map(|k| 1 + k % 7).collect();
        let mut nt = NetTable::new();
        for (bits, signed) in [(8u32, false), (16, true), (16, false), (24, true)] {
            nt.load(&f, bits, signed);
            let full = 1i64 << bits;
            let half = full / 2;
            let total = nt.below(full);
            for p_off in [0, 1, half - 1, half, full - 1] {
                assert_eq!(nt.mass(-half, half - 1, p_off, bits), total);
                assert_eq!(nt.mass(-half, -1, p_off, bits) + nt.mass(0, 0, p_off, bits) + nt.mass(1, half - 1, p_off, bits), total);
                assert_eq!(nt.mass(3, 2, p_off, bits), 0);
            }
        }
        // 8-bit: the mass of one residual is the network's frequency of that value
        nt.load(&f, 8, false);
        assert_eq!(nt.mass(5, 5, 100, 8), f[105] as u64);
        assert_eq!(nt.mass(-3, -3, 1, 8), f[254] as u64);
    }

    #[test]
    fn image_and_audio_roundtrip_across_sub_streams() {
        let mut img = vec![7u8; 5];
        for y in 0..30u32 {
            for x in 0..40u32 {
                for c in 0..3u32 {
                    img.push(((x * 5 + y * 3 + c * 50 + (x * y) % 7) & 255) as u8);
                }
            }
        }
        img.extend_from_slice(b"tail");
        let l = SampleLayout { channels: 3, bytes_per_sample: 1, big_endian: false, signed: false, width: 40, data_start: 5, data_end: 5 + 3600, first_sample: 0 };
        let h = Hint { modality: Modality::Image, layout: Some(l) };
        for (seg, g) in [(1000, 1), (1000, 3), (4096, 2)] {
            roundtrip(&img, &h, seg, g, 5);
        }
        // sharing the statistics pays on a repetitive image cut into many sub-streams
        assert!(roundtrip(&img, &h, 600, 6, 5) < roundtrip(&img, &h, 600, 1, 5));
        // 16-bit signed audio in token order (most significant byte first), odd header length
        let mut au = vec![1u8, 2, 3];
        for t in 0..3000i32 {
            let v = (((t * 37) % 2000 - 1000) * 20 + (t % 5)) as i16;
            au.extend_from_slice(&v.to_be_bytes());
        }
        au.push(9);
        let l = SampleLayout { channels: 2, bytes_per_sample: 2, big_endian: true, signed: true, width: 0, data_start: 3, data_end: au.len() as u32 - 1, first_sample: 0 };
        let h = Hint { modality: Modality::Audio, layout: Some(l) };
        for (seg, g) in [(1000, 1), (1000, 4), (4096, 2), (1 << 14, 1)] {
            roundtrip(&au, &h, seg, g, 9);
        }
    }
}
