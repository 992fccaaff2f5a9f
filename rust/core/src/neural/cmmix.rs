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

use super::mix::{mix_sets, train_sets, BitIo, NodeSource, StreamMix};
use crate::ctxmix::bytes::{ByteModel, ByteParams};
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
        CmMixParams {
            sets: 3,
            lr: 12,
            lr_shift: 14,
            blend: [2, 1, 1],
            apm_rate: 6,
            w0: [40000, 24000],
            small: true,
        }
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

#[inline(always)]
fn to12(p16: u32) -> i32 {
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
        self.x = [
            st_nn,
            st_cm,
            sm16.map(|p| t.stretch(to12(p))).unwrap_or(0),
            256,
        ];
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
        let boost = if self.bits_seen < 4096 {
            3
        } else if self.bits_seen < 32768 {
            2
        } else {
            1
        };
        let lr = self.p.lr as i64 * boost;
        let ns = self.p.sets.clamp(1, 3);
        train_sets(
            t,
            &mut self.w,
            &self.sel[..ns],
            &self.x,
            &self.dots,
            target,
            lr,
            self.p.lr_shift,
        );
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
        let mut br = Bridge {
            io,
            nn,
            fin: &mut self.fin,
            small: self.small.as_mut(),
            c0: 1,
            depth: 0,
        };
        self.cm.code(&mut br, byte);
        let b = (br.c0 & 0xFF) as u8;
        if let Some(s) = self.small.as_mut() {
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
        let text =
            b"the CM model and the network are mixed bit by bit in this stream. ".repeat(150);
        for level in [1, 5, 9] {
            let n = roundtrip(&text, level);
            assert!(
                n * 20 < text.len(),
                "level {level}: {n} bytes for {}",
                text.len()
            );
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
            let name = d.path.file_stem().unwrap().to_string_lossy().to_string();
            let kind = name
                .split_once('_')
                .map(|x| x.1)
                .unwrap_or("text")
                .trim_end_matches(|c: char| c.is_ascii_digit());
            let modality = match kind {
                "structured" => Modality::Structured,
                "gene" => Modality::Gene,
                "image" | "medical" => Modality::Image,
                "speech" | "music" | "audio" => Modality::Audio,
                _ => Modality::Text,
            };
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
                let mut cm = ByteModel::new(
                    ByteParams::for_version(3, level, chunk.len(), modality),
                    chunk.len(),
                );
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
            best += c[4].min(if quick {
                f64::MAX
            } else {
                c[3].min(c[1]).min(c[0])
            });
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
}
