//! The engine's weight container (`MMZNW001`) and the in-memory model.
//!
//! Container (all little-endian; written by `mmz.neural.weights.pack`):
//!
//! ```text
//! magic  b"MMZNW001"
//! u32    number of config integers K, then K x i32 (see `CONFIG_FIELDS`)
//! u32    number of tensors T, then per tensor:
//!        u32 name length, name (UTF-8), u32 ndim, ndim x u32 dims, prod(dims) x f32
//! ```
//! Tensor names and shapes are those of `weights.safetensors` (SPEC.md §4). At load,
//! `[out, in]` linear weights are transposed to `[in, out]` so that every matrix
//! product runs with the output channel innermost (vectorised) and the input
//! channel as the sequential summation index.

use crate::error::{MmzError, Result};
use std::collections::HashMap;

/// Order of the config integers in the container header.
pub const CONFIG_FIELDS: [&str; 17] = [
    "d_model", "n_layer", "head_size", "ffn_mult", "n_experts", "top_k", "moe_v", "moe_ffn", "fade",
    "fade_kernel", "decay_lora", "aaa_lora", "mv_lora", "gate_lora", "n_mod", "prefix_base", "vocab_size",
];

const MAGIC: &[u8; 8] = b"MMZNW001";

fn bad(detail: impl Into<String>) -> MmzError {
    MmzError::InvalidArgument(format!("neural weight container: {}", detail.into()))
}

/// Architecture of a model (SPEC.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Width `d`.
    pub d: usize,
    /// Layers `L`.
    pub n_layer: usize,
    /// Head size `N`.
    pub head_size: usize,
    /// FFN multiplier.
    pub ffn_mult: usize,
    /// Experts `E`.
    pub n_experts: usize,
    /// Active experts `K`.
    pub top_k: usize,
    /// MoE on the time-mix V projection.
    pub moe_v: bool,
    /// MoE channel mix.
    pub moe_ffn: bool,
    /// FADE local stream.
    pub fade: bool,
    /// FADE kernel length.
    pub fade_kernel: usize,
    /// LoRA ranks.
    pub decay_lora: usize,
    /// LoRA rank of `a`.
    pub aaa_lora: usize,
    /// LoRA rank of the v-residual.
    pub mv_lora: usize,
    /// LoRA rank of the gate.
    pub gate_lora: usize,
    /// Modalities `M`.
    pub n_mod: usize,
    /// First prefix token.
    pub prefix_base: usize,
    /// Vocabulary size `V`.
    pub vocab_size: usize,
    /// Output slice `(start, size)` per modality.
    pub slices: Vec<(usize, usize)>,
}

impl Config {
    /// Heads `H`.
    pub fn n_head(&self) -> usize {
        self.d / self.head_size
    }
    /// Expert hidden width `F`.
    pub fn ffn_hidden(&self) -> usize {
        self.d * self.ffn_mult / if self.moe_ffn { 2 } else { 1 }
    }
    /// Largest slice.
    pub fn max_slice(&self) -> usize {
        self.slices.iter().map(|s| s.1).max().unwrap_or(0)
    }
    /// Floats of one stream's state (att_x, wkv, ffn_x[, fade hist] per layer).
    pub fn state_len(&self) -> usize {
        self.n_layer * self.layer_state_len()
    }
    /// Floats of one layer's state.
    pub fn layer_state_len(&self) -> usize {
        let fade = if self.fade { (self.fade_kernel - 1) * self.d } else { 0 };
        2 * self.d + self.d * self.head_size + fade
    }

    fn validate(&self) -> Result<()> {
        let ok = self.d > 0
            && self.d <= 8192
            && self.head_size > 0
            && self.d.is_multiple_of(self.head_size)
            && self.n_layer >= 1
            && self.n_layer <= 256
            && self.n_experts >= 1
            && self.n_experts <= 64
            && (1..=self.n_experts).contains(&self.top_k)
            && self.ffn_mult >= 1
            && self.ffn_mult <= 64
            && (!self.fade || (2..=64).contains(&self.fade_kernel))
            && self.n_mod >= 1
            && self.slices.len() == self.n_mod
            && self.prefix_base + self.n_mod <= self.vocab_size
            && self.slices.iter().all(|&(s, n)| (2..=65_536).contains(&n) && s + n <= self.vocab_size)
            && [self.decay_lora, self.aaa_lora, self.mv_lora, self.gate_lora].iter().all(|&r| (1..=4096).contains(&r));
        if ok {
            Ok(())
        } else {
            Err(bad(format!("inconsistent config {self:?}")))
        }
    }
}

/// A matrix stored `[n_in, n_out]` (output innermost).
#[derive(Debug, Clone)]
pub struct Mat {
    /// Row-major `[n_in][n_out]`.
    pub w: Vec<f32>,
    /// Inputs (summation length).
    pub n_in: usize,
    /// Outputs.
    pub n_out: usize,
    /// Every weight is finite: then `0 * w` is `±0` and adding it to an
    /// accumulator never changes its bits, so skipping exactly-zero inputs and
    /// multiplying them out give the same result (the engine then uses the
    /// branch-free dense kernel for the post-ReLU products).
    pub finite: bool,
    /// The same weights panel-major for the AVX-512 kernel: output columns
    /// `o .. o + P` (`P` = 32, then one panel of 16 if at least 16 remain) are
    /// stored contiguously as `[n_in][P]` starting at float `o * n_in`, so the
    /// kernel streams each panel sequentially. Columns past the last panel are
    /// only in `w`.
    pub panels: Vec<f32>,
    /// `panels` as IEEE binary16 bits when every one of its weights is exactly
    /// a binary16 value (the shipped models store fp16 weights), else empty.
    /// Widening binary16 to binary32 is exact, so a kernel that reads these
    /// computes bit for bit what it computes from `panels`, with half the
    /// memory traffic (at one or two rows the products are bound by it).
    pub panels16: Vec<u16>,
    /// `w` as binary16 bits under the same condition (for the AVX2 kernel), else empty.
    pub w16: Vec<u16>,
}

impl Mat {
    /// Wrap `[n_in][n_out]` row-major weights.
    pub fn new(w: Vec<f32>, n_in: usize, n_out: usize) -> Mat {
        let finite = w.iter().all(|v| v.is_finite());
        let mut panels = Vec::with_capacity(w.len());
        let mut o = 0;
        for width in [32usize, 16] {
            while o + width <= n_out {
                for i in 0..n_in {
                    panels.extend_from_slice(&w[i * n_out + o..i * n_out + o + width]);
                }
                o += width;
                if width == 16 {
                    break;
                }
            }
        }
        let w16 = w.iter().map(|&v| f16_exact(v)).collect::<Option<Vec<u16>>>().unwrap_or_default();
        // The panels hold a subset of `w`: binary16 whenever all of `w` is.
        let panels16 = if w16.len() == w.len() {
            panels.iter().map(|&v| f16_exact(v)).collect::<Option<Vec<u16>>>().unwrap_or_default()
        } else {
            Vec::new()
        };
        Mat { w, n_in, n_out, finite, panels, panels16, w16 }
    }
}

/// The binary32 value of IEEE binary16 bits `h` (exact: every binary16 value
/// is a binary32 value).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        0 => {
            // ±0 or a subnormal: man · 2^-24, exact in binary32.
            let mag = man as f32 * f32::from_bits(0x3380_0000);
            return f32::from_bits(sign | mag.to_bits());
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// `v` as binary16 bits if `v` is exactly a binary16 value (NaN never is:
/// its payload would not survive), else `None`.
pub fn f16_exact(v: f32) -> Option<u16> {
    if v.is_nan() {
        return None;
    }
    let bits = v.to_bits();
    let sign = ((bits >> 31) as u16) << 15;
    let a = v.abs();
    let cand = if a == 0.0 {
        sign
    } else if a.is_infinite() {
        sign | 0x7c00
    } else if a < f32::from_bits(0x3880_0000) {
        // Below 2^-14: a binary16 subnormal m · 2^-24 with m < 1024.
        let m = a * f32::from_bits(0x4b80_0000);
        if m.fract() != 0.0 || m >= 1024.0 {
            return None;
        }
        sign | m as u16
    } else {
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        if e > 15 {
            return None;
        }
        sign | (((e + 15) as u16) << 10) | ((bits >> 13) & 0x3ff) as u16
    };
    (f16_to_f32(cand).to_bits() == bits).then_some(cand)
}

/// A top-k router.
#[derive(Debug, Clone)]
pub struct Router {
    /// `[d, E]`.
    pub w: Mat,
    /// `[M, E]`.
    pub mod_bias: Vec<f32>,
}

/// FADE weights of one layer.
#[derive(Debug, Clone)]
pub struct FadeW {
    /// `[K_f, d]`.
    pub conv: Vec<f32>,
    /// Gate `[d, d]` and its bias.
    pub gate: Mat,
    /// Gate bias `[d]`.
    pub gate_b: Vec<f32>,
    /// Refiner `[d, d/2]`, `[d, d/2]`, `[d/2, d]`.
    pub ref_u: Mat,
    /// See `ref_u`.
    pub ref_v: Mat,
    /// See `ref_u`.
    pub ref_o: Mat,
}

/// One block's weights.
#[derive(Debug, Clone)]
pub struct Layer {
    /// LN before the time mix.
    pub ln1: (Vec<f32>, Vec<f32>),
    /// LN before the channel mix.
    pub ln2: (Vec<f32>, Vec<f32>),
    /// Token-shift mixes r, w, k, v, a, g.
    pub x_mix: [Vec<f32>; 6],
    /// Decay bias and LoRA.
    pub w0: Vec<f32>,
    /// `[d, decay_lora]`.
    pub w1: Mat,
    /// `[decay_lora, d]`.
    pub w2: Mat,
    /// In-context learning rate bias and LoRA.
    pub a0: Vec<f32>,
    /// `[d, aaa_lora]`.
    pub a1: Mat,
    /// `[aaa_lora, d]`.
    pub a2: Mat,
    /// V-residual (layers >= 1).
    pub v_res: Option<(Vec<f32>, Mat, Mat)>,
    /// Gate LoRA.
    pub g1: Mat,
    /// `[gate_lora, d]`.
    pub g2: Mat,
    /// `k_k`, `k_a` `[d]`, `r_k` `[H*N]`.
    pub k_k: Vec<f32>,
    /// See `k_k`.
    pub k_a: Vec<f32>,
    /// See `k_k`.
    pub r_k: Vec<f32>,
    /// Receptance, key, output (transposed).
    pub receptance: Mat,
    /// See `receptance`.
    pub key: Mat,
    /// See `receptance`.
    pub output: Mat,
    /// Value experts (transposed).
    pub value: Vec<Mat>,
    /// V router.
    pub v_router: Option<Router>,
    /// GroupNorm affine.
    pub ln_x: (Vec<f32>, Vec<f32>),
    /// Channel-mix token shift.
    pub ffn_x_k: Vec<f32>,
    /// FFN experts: key `[d, F]`, value `[F, d]`.
    pub ffn_key: Vec<Mat>,
    /// See `ffn_key`.
    pub ffn_value: Vec<Mat>,
    /// FFN router.
    pub ffn_router: Option<Router>,
    /// FADE.
    pub fade: Option<FadeW>,
}

/// A loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Architecture.
    pub cfg: Config,
    /// `[V, d]` embedding rows.
    pub emb: Vec<f32>,
    /// Layer-0 LN.
    pub ln0: (Vec<f32>, Vec<f32>),
    /// Blocks.
    pub layers: Vec<Layer>,
    /// Final LN.
    pub ln_out: (Vec<f32>, Vec<f32>),
    /// Per modality: head slice transposed to `[d, size]`.
    pub heads: Vec<Mat>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad("length overflow"))?;
        let s = self.b.get(self.pos..end).ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

struct Store {
    t: Tensors,
}

impl Store {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (dims, data) = self.t.remove(name).ok_or_else(|| bad(format!("missing tensor {name}")))?;
        if dims != shape {
            return Err(bad(format!("tensor {name} has shape {dims:?}, expected {shape:?}")));
        }
        Ok(data)
    }
    /// `[n_in, n_out]` stored as is (LoRA matrices).
    fn mat(&mut self, name: &str, n_in: usize, n_out: usize) -> Result<Mat> {
        Ok(Mat::new(self.get(name, &[n_in, n_out])?, n_in, n_out))
    }
    /// A linear `[out, in]` transposed to `[in, out]`.
    fn linear(&mut self, name: &str, n_out: usize, n_in: usize) -> Result<Mat> {
        let w = self.get(name, &[n_out, n_in])?;
        Ok(Mat::new(transpose(&w, n_out, n_in), n_in, n_out))
    }
    fn ln(&mut self, prefix: &str, d: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.get(&format!("{prefix}.weight"), &[d])?, self.get(&format!("{prefix}.bias"), &[d])?))
    }
    fn router(&mut self, prefix: &str, cfg: &Config) -> Result<Router> {
        Ok(Router {
            w: self.linear(&format!("{prefix}.weight"), cfg.n_experts, cfg.d)?,
            mod_bias: self.get(&format!("{prefix}.mod_bias"), &[cfg.n_mod, cfg.n_experts])?,
        })
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

fn parse(bytes: &[u8]) -> Result<(Config, Tensors)> {
    let mut r = Reader { b: bytes, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(bad("bad magic (expected MMZNW001)"));
    }
    let k = r.u32()? as usize;
    if !(CONFIG_FIELDS.len()..=CONFIG_FIELDS.len() + 2 * 1024).contains(&k) {
        return Err(bad(format!("{k} config integers")));
    }
    let mut ints = Vec::with_capacity(k);
    for _ in 0..k {
        let v = r.u32()? as i32;
        if v < 0 {
            return Err(bad("negative config value"));
        }
        ints.push(v as usize);
    }
    let n_mod = ints[14];
    if k != CONFIG_FIELDS.len() + 2 * n_mod {
        return Err(bad("config length does not match the modality count"));
    }
    let slices = (0..n_mod).map(|i| (ints[17 + 2 * i], ints[18 + 2 * i])).collect();
    let cfg = Config {
        d: ints[0],
        n_layer: ints[1],
        head_size: ints[2],
        ffn_mult: ints[3],
        n_experts: ints[4],
        top_k: ints[5],
        moe_v: ints[6] != 0,
        moe_ffn: ints[7] != 0,
        fade: ints[8] != 0,
        fade_kernel: ints[9],
        decay_lora: ints[10],
        aaa_lora: ints[11],
        mv_lora: ints[12],
        gate_lora: ints[13],
        n_mod,
        prefix_base: ints[15],
        vocab_size: ints[16],
        slices,
    };
    cfg.validate()?;
    let nt = r.u32()? as usize;
    if nt > 100_000 {
        return Err(bad("too many tensors"));
    }
    let mut t = HashMap::new();
    for _ in 0..nt {
        let nl = r.u32()? as usize;
        let name = std::str::from_utf8(r.take(nl)?).map_err(|_| bad("tensor name is not UTF-8"))?.to_string();
        let nd = r.u32()? as usize;
        if nd > 8 {
            return Err(bad(format!("tensor {name} has {nd} dims")));
        }
        let mut dims = Vec::with_capacity(nd);
        let mut count: usize = 1;
        for _ in 0..nd {
            let dim = r.u32()? as usize;
            count = count.checked_mul(dim).ok_or_else(|| bad("tensor size overflow"))?;
            dims.push(dim);
        }
        let raw = r.take(count.checked_mul(4).ok_or_else(|| bad("tensor size overflow"))?)?;
        let data = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        t.insert(name, (dims, data));
    }
    if r.pos != bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Ok((cfg, t))
}

impl Model {
    /// Parse a `MMZNW001` container.
    pub fn from_container(bytes: &[u8]) -> Result<Model> {
        let (cfg, tensors) = parse(bytes)?;
        let mut s = Store { t: tensors };
        let d = cfg.d;
        let (h, n) = (cfg.n_head(), cfg.head_size);
        let f = cfg.ffn_hidden();
        let emb = s.get("emb.weight", &[cfg.vocab_size, d])?;
        let head_full = s.get("head", &[cfg.vocab_size, d])?;
        let heads = cfg
            .slices
            .iter()
            .map(|&(st, sz)| Mat::new(transpose(&head_full[st * d..(st + sz) * d], sz, d), d, sz))
            .collect();
        let ln0 = s.ln("blocks.0.ln0", d)?;
        let ln_out = s.ln("ln_out", d)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let p = format!("blocks.{l}.");
            let a = format!("{p}att.");
            let mut mix = Vec::new();
            for nm in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
                mix.push(s.get(&format!("{a}{nm}"), &[d])?);
            }
            let x_mix: [Vec<f32>; 6] = mix.try_into().map_err(|_| bad("token-shift mixes"))?;
            let n_v = if cfg.moe_v { cfg.n_experts } else { 1 };
            let value = (0..n_v).map(|e| s.linear(&format!("{a}value.{e}.weight"), d, d)).collect::<Result<Vec<_>>>()?;
            let n_f = if cfg.moe_ffn { cfg.n_experts } else { 1 };
            let ffn_key = (0..n_f).map(|e| s.linear(&format!("{p}ffn.key.{e}"), f, d)).collect::<Result<Vec<_>>>()?;
            let ffn_value =
                (0..n_f).map(|e| s.linear(&format!("{p}ffn.value.{e}"), d, f)).collect::<Result<Vec<_>>>()?;
            let v_res = if l > 0 {
                Some((
                    s.get(&format!("{a}v0"), &[d])?,
                    s.mat(&format!("{a}v1"), d, cfg.mv_lora)?,
                    s.mat(&format!("{a}v2"), cfg.mv_lora, d)?,
                ))
            } else {
                None
            };
            let fade = if cfg.fade {
                let fp = format!("{p}fade.");
                Some(FadeW {
                    conv: s.get(&format!("{fp}conv"), &[cfg.fade_kernel, d])?,
                    gate: s.linear(&format!("{fp}gate.weight"), d, d)?,
                    gate_b: s.get(&format!("{fp}gate.bias"), &[d])?,
                    ref_u: s.linear(&format!("{fp}ref_u.weight"), d / 2, d)?,
                    ref_v: s.linear(&format!("{fp}ref_v.weight"), d / 2, d)?,
                    ref_o: s.linear(&format!("{fp}ref_o.weight"), d, d / 2)?,
                })
            } else {
                None
            };
            layers.push(Layer {
                ln1: s.ln(&format!("{p}ln1"), d)?,
                ln2: s.ln(&format!("{p}ln2"), d)?,
                x_mix,
                w0: s.get(&format!("{a}w0"), &[d])?,
                w1: s.mat(&format!("{a}w1"), d, cfg.decay_lora)?,
                w2: s.mat(&format!("{a}w2"), cfg.decay_lora, d)?,
                a0: s.get(&format!("{a}a0"), &[d])?,
                a1: s.mat(&format!("{a}a1"), d, cfg.aaa_lora)?,
                a2: s.mat(&format!("{a}a2"), cfg.aaa_lora, d)?,
                v_res,
                g1: s.mat(&format!("{a}g1"), d, cfg.gate_lora)?,
                g2: s.mat(&format!("{a}g2"), cfg.gate_lora, d)?,
                k_k: s.get(&format!("{a}k_k"), &[d])?,
                k_a: s.get(&format!("{a}k_a"), &[d])?,
                r_k: s.get(&format!("{a}r_k"), &[h, n])?,
                receptance: s.linear(&format!("{a}receptance.weight"), d, d)?,
                key: s.linear(&format!("{a}key.weight"), d, d)?,
                output: s.linear(&format!("{a}output.weight"), d, d)?,
                value,
                v_router: if cfg.moe_v { Some(s.router(&format!("{a}v_router"), &cfg)?) } else { None },
                ln_x: s.ln(&format!("{a}ln_x"), d)?,
                ffn_x_k: s.get(&format!("{p}ffn.x_k"), &[d])?,
                ffn_key,
                ffn_value,
                ffn_router: if cfg.moe_ffn { Some(s.router(&format!("{p}ffn.router"), &cfg)?) } else { None },
                fade,
            });
        }
        Ok(Model { cfg, emb, ln0, layers, ln_out, heads })
    }

    /// Multiply-adds of one step (active experts only), for throughput reports.
    pub fn macs_per_token(&self) -> u64 {
        let c = &self.cfg;
        let (d, f) = (c.d as u64, c.ffn_hidden() as u64);
        let k_v = if c.moe_v { c.top_k as u64 } else { 1 };
        let k_f = if c.moe_ffn { c.top_k as u64 } else { 1 };
        let lora = (c.decay_lora + c.aaa_lora + c.gate_lora) as u64 * 2 * d;
        let wkv = (c.n_head() * c.head_size * c.head_size) as u64 * 3;
        let mut att = (3 + k_v) * d * d + lora + wkv + 2 * c.n_experts as u64 * d;
        att += 2 * k_f * d * f;
        if c.fade {
            att += d * d + 3 * d * (d / 2);
        }
        let vres = (c.n_layer as u64 - 1) * 2 * d * c.mv_lora as u64;
        c.n_layer as u64 * att + vres + d * c.max_slice() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary16_value_round_trips() {
        for h in 0..=u16::MAX {
            let v = f16_to_f32(h);
            if v.is_nan() {
                assert_eq!(f16_exact(v), None);
                continue;
            }
            assert_eq!(f16_exact(v), Some(h), "{h:#06x} = {v:e}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("f16c") {
                // SAFETY: F16C checked just above.
                let hw = unsafe { hw_f16(h) };
                assert_eq!(hw.to_bits(), v.to_bits(), "{h:#06x}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "f16c")]
    unsafe fn hw_f16(h: u16) -> f32 {
        use core::arch::x86_64::*;
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
    }

    #[test]
    fn values_off_the_binary16_grid_are_refused() {
        for v in [1.0 + 1.0 / 4096.0, 65_520.0, 1e-8, 3.5 * f32::from_bits(0x3380_0000), f32::MAX, f32::MIN_POSITIVE, f32::NAN, 0.1] {
            assert_eq!(f16_exact(v), None, "{v:e}");
        }
        assert_eq!(f16_exact(65_504.0), Some(0x7bff));
        assert_eq!(f16_exact(-0.0), Some(0x8000));
        assert_eq!(f16_exact(f32::NEG_INFINITY), Some(0xfc00));
        let mut w = vec![0.5f32; 32];
        let m = Mat::new(w.clone(), 2, 16);
        assert_eq!((m.panels16, m.w16), (vec![0x3800u16; 32], vec![0x3800u16; 32]));
        w[17] = 0.1;
        let m = Mat::new(w, 2, 16);
        assert_eq!(m.panels.len(), 32);
        assert!(m.panels16.is_empty() && m.w16.is_empty(), "one non-binary16 weight keeps the matrix binary32");
    }
}
