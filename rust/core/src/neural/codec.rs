//! The neural chunk codec (codec id 3): bytes → tokens → S sub-streams coded
//! by the engine in lockstep groups → payload. Layout in docs/FORMAT.md,
//! "Neural codec".

use super::engine::{self, step};
use super::cmmix::{CmGroup, CmMix};
use super::mix::{NodeProbs, StreamMix};
use super::samplemix::SampleGroup;
use crate::bitcoder::{BitDecoder, BitEncoder};
use super::weights::Model;
use crate::checksum::xxh3;
use crate::codec::{compress_chunk, CodecId};
use crate::coder::{RangeDecoder, RangeEncoder};
use crate::error::{MmzError, Result};
use crate::frame::{self, ChunkHeader};
use crate::hint::{Hint, Modality};
use crate::quant;
use rayon::prelude::*;

/// Numeric version of the engine arithmetic and payload layout. Bumped whenever
/// any computed bit could change; a payload with another version is refused.
pub const ENGINE_VERSION: u8 = 1;
/// CDF precision (bits) of the coded distributions.
pub const PRECISION: u32 = 20;
/// Fixed payload header bytes before the per-stream lengths.
pub const PAYLOAD_FIXED: usize = 20;
/// Payload flags value: each sub-stream is the range code of the network's
/// byte distributions (the original form).
pub const FLAGS_PLAIN: u8 = 0;
/// Payload flags value: each sub-stream is a binary arithmetic code of the
/// bitwise mix of the network with the sub-stream's own context models
/// ([`super::mix`], version 1 of that model).
pub const FLAGS_MIX: u8 = 1;
/// Payload flags value: each sub-stream is a binary arithmetic code of the
/// bitwise mix of the network with the full CM byte model of the sub-stream
/// (and the flags-1 model), see [`super::cmmix`] (version 1 of that model).
pub const FLAGS_CM_MIX: u8 = 2;
/// Payload flags value: like [`FLAGS_CM_MIX`], but each CM group of `G`
/// consecutive sub-streams shares one CM byte model ([`super::cmmix::CmGroup`],
/// version 1 of that model); `G` follows the fixed header.
pub const FLAGS_CM_GROUP: u8 = 3;
/// Payload flags value: inside the chunk hint's sample region, each whole
/// sample of a sub-stream is coded by the CM sample model mixed, decision by
/// decision, with the network's probability of the same value set; each
/// group of `G` consecutive sub-streams shares one sample model's statistics
/// ([`super::samplemix::SampleGroup`], version 1 of that model; `G` follows the
/// fixed header as in flags 3); other bytes by the flags-1 model.
pub const FLAGS_SAMPLE_MIX: u8 = 4;

/// Sub-streams per CM group of the flags-3 form for sub-streams of `seg`
/// bytes and `streams` sub-streams in the chunk (a function of the level and
/// the sub-stream count only, never of the batch or thread count). Levels
/// 1-6 (4/16 KiB sub-streams): up to 32 sub-streams, so the 64 sub-streams of
/// 256 KiB at level 1 still form two groups for two threads. Levels 7-9 (the
/// max preset, 64 KiB sub-streams): the whole chunk (up to [`CM_GROUP_MAX`]
/// sub-streams), because the shared CM only passes CM alone when it sees about
/// as much of the chunk as CM does; such a group's network steps are split
/// across threads instead ([`step_rows`]). See docs/BENCHMARKS.md, "Neural +
/// shared CM".
pub fn cm_group_len(seg: usize, streams: usize) -> usize {
    if seg < 1 << 16 {
        streams.clamp(1, 32)
    } else {
        streams.clamp(1, CM_GROUP_MAX)
    }
}

/// Sub-streams per model group of the flags-4 form (a function of the
/// segment length and sub-stream count only). Levels 1-6 (4/16 KiB
/// sub-streams): half the chunk's sub-streams, rounded up, at most 32, so a
/// chunk of two or more sub-streams always gives both threads a group (it
/// costs 0-0.4% against one group on the small media set). Levels 7-9: the
/// whole chunk, as [`cm_group_len`] (sharing paid more there on images and
/// speech). See docs/BENCHMARKS.md, "Neural + CM sample model".
pub fn sample_group_len(seg: usize, streams: usize) -> usize {
    if seg < 1 << 16 {
        streams.div_ceil(2).clamp(1, 32)
    } else {
        cm_group_len(seg, streams)
    }
}

/// Largest CM group length a reader accepts (bounds a decoder's memory: every
/// sub-stream of a group is live at once).
pub const CM_GROUP_MAX: usize = 1024;

/// Level whose CM byte-model parameters the flags-2 form uses for sub-streams
/// of `seg` bytes. The CM parameters depend on the level only through the
/// groups 1-3 / 4-6 / 7-9, which are also the groups of [`segment_len`], so the
/// decoder recovers them from the payload's segment length.
pub fn cm_level(seg: usize) -> u8 {
    match seg {
        0..=4096 => 1,
        4097..=16384 => 5,
        _ => 9,
    }
}

/// Segment length (bytes per sub-stream) for a level.
pub fn segment_len(level: u8) -> usize {
    match level {
        0..=3 => 1 << 12,
        4..=6 => 1 << 14,
        _ => 1 << 16,
    }
}

/// Model modality index used for a chunk modality (binary is coded as text; a
/// modality missing from the model uses model modality 0).
pub fn model_modality(model: &Model, hint: &Hint, names: &[String]) -> Result<usize> {
    let want = match hint.modality {
        Modality::Binary => "text",
        m => m.name(),
    };
    // A modality the model lacks is coded with the model's first modality.
    let idx = names.iter().position(|n| n == want).unwrap_or(0);
    if idx >= model.cfg.n_mod {
        return Err(MmzError::InvalidArgument("modality index beyond the model's slices".into()));
    }
    Ok(idx)
}

/// Reorder bytes into token order (in place): inside the hint's sample region,
/// multi-byte little-endian samples are reversed to most-significant first (the
/// training layout). The permutation is its own inverse.
pub fn to_token_order(data: &mut [u8], hint: &Hint) {
    if let Some(l) = hint.layout {
        let w = l.bytes_per_sample as usize;
        if w > 1 && !l.big_endian {
            let end = (l.data_end as usize).min(data.len());
            let start = (l.data_start as usize).min(end);
            for s in data[start..end].chunks_exact_mut(w) {
                s.reverse();
            }
        }
    }
}

/// Per-stream token counts for `n` bytes at segment length `seg` (non-increasing).
fn stream_lens(n: usize, seg: usize) -> Vec<usize> {
    (0..n.div_ceil(seg)).map(|i| seg.min(n - i * seg)).collect()
}

/// Rows per lockstep group: at most `batch`, but small enough that every
/// thread gets a group (a chunk with fewer than `batch × threads` streams would
/// otherwise leave threads idle). Any grouping computes the same bits.
fn group_size(batch: usize, streams: usize, threads: usize) -> usize {
    let t = if threads == 0 { rayon::current_num_threads() } else { threads };
    batch.max(1).min(streams.div_ceil(t.max(1)).max(1))
}

fn pool(threads: usize) -> Result<Option<rayon::ThreadPool>> {
    if threads == 0 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(Some)
        .map_err(|e| MmzError::InvalidArgument(format!("thread pool: {e}")))
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(match pool(threads)? {
        Some(p) => p.install(f),
        None => f(),
    })
}

/// Fewest rows per block when a lockstep step is split across threads
/// (smaller blocks reuse each weight fetch over fewer rows).
const PAR_STEP_ROWS: usize = 24;

/// One engine step for `states.len()` rows. A large group (a flags-3 CM group
/// can hold a whole chunk's sub-streams) is split into blocks of at least
/// [`PAR_STEP_ROWS`] rows that run on the current rayon pool, so its network
/// work uses every thread while its CM coding stays in order. Rows are
/// independent, so any split computes the same logits.
pub(crate) fn step_rows(model: &Model, states: &mut [Vec<f32>], toks: &[u32], mods: &[usize], logits: &mut [f32]) -> Result<()> {
    let rows = states.len();
    let threads = rayon::current_num_threads().max(1);
    let parts = (rows / PAR_STEP_ROWS).min(threads);
    if parts < 2 {
        return step(model, states, toks, mods, logits);
    }
    let per = rows.div_ceil(parts);
    let ms = logits.len() / rows; // rows >= 2 * PAR_STEP_ROWS here
    states
        .par_chunks_mut(per)
        .zip(toks.par_chunks(per))
        .zip(mods.par_chunks(per))
        .zip(logits.par_chunks_mut(per * ms))
        .try_for_each(|(((s, t), m), l)| step(model, s, t, m, l))
}

/// Runs the streams of one group in lockstep. `visit(row, t, weights)` is called
/// with the softmax weights of row `row` at step `t` and returns the byte to feed.
/// `split`: the caller has fewer groups than threads, so each step may be
/// split across the pool ([`step_rows`]; the same logits either way).
fn run_group<V>(model: &Model, m: usize, lens: &[usize], split: bool, mut visit: V) -> Result<()>
where
    V: FnMut(usize, usize, &[f32]) -> Result<u8>,
{
    let cfg = &model.cfg;
    let (start, size) = cfg.slices[m];
    let ms = cfg.max_slice();
    let rows = lens.len();
    let mut states: Vec<Vec<f32>> = (0..rows).map(|_| engine::zero_state(model)).collect();
    let mut toks = vec![(cfg.prefix_base + m) as u32; rows];
    let mods = vec![m; rows];
    let mut logits = vec![0f32; rows * ms];
    let mut w = vec![0f32; size];
    let tmax = lens.first().copied().unwrap_or(0);
    for t in 0..tmax {
        let active = lens.iter().take_while(|&&l| l > t).count();
        if split {
            step_rows(model, &mut states[..active], &toks[..active], &mods[..active], &mut logits[..active * ms])?;
        } else {
            step(model, &mut states[..active], &toks[..active], &mods[..active], &mut logits[..active * ms])?;
        }
        for r in 0..active {
            quant::logits_to_weights(&logits[r * ms..r * ms + size], &mut w)?;
            let b = visit(r, t, &w)?;
            toks[r] = (start + b as usize) as u32;
        }
    }
    Ok(())
}

/// Fingerprint of the engine's arithmetic on this model: XXH3 of every
/// quantized frequency row over a fixed token sequence per modality (64 steps).
pub fn probe_hash(model: &Model) -> Result<u64> {
    let mut all = Vec::new();
    for m in 0..model.cfg.n_mod {
        let mut st = 0x9E37_79B9_7F4A_7C15u64 ^ m as u64;
        let lens = [64usize];
        let mut freqs = vec![0u32; model.cfg.slices[m].1];
        run_group(model, m, &lens, false, |_, _, w| {
            quant::quantize_probs(w, PRECISION, &mut freqs)?;
            all.extend(freqs.iter().flat_map(|f| f.to_le_bytes()));
            st = st.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            Ok((st >> 56) as u8)
        })?;
    }
    Ok(xxh3(&all))
}

/// Raw slice logits for explicit token sequences (conformance / golden tests):
/// `tokens` holds `rows × steps` global token ids, output `rows × steps × max_slice`.
pub fn run_logits(model: &Model, tokens: &[u32], mods: &[usize], steps: usize) -> Result<Vec<f32>> {
    let rows = mods.len();
    if tokens.len() != rows * steps {
        return Err(MmzError::InvalidArgument("run_logits: tokens must be rows x steps".into()));
    }
    let ms = model.cfg.max_slice();
    let mut states: Vec<Vec<f32>> = (0..rows).map(|_| engine::zero_state(model)).collect();
    let mut out = vec![0f32; rows * steps * ms];
    let mut lg = vec![0f32; rows * ms];
    let mut tk = vec![0u32; rows];
    for t in 0..steps {
        for r in 0..rows {
            tk[r] = tokens[r * steps + t];
        }
        step(model, &mut states, &tk, mods, &mut lg)?;
        for r in 0..rows {
            out[(r * steps + t) * ms..(r * steps + t + 1) * ms].copy_from_slice(&lg[r * ms..(r + 1) * ms]);
        }
    }
    Ok(out)
}

/// Which payload forms [`NeuralCodec::encode_forms`] produces.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    /// Flags 0: the network alone.
    pub plain: bool,
    /// Flags 1: network + small per-sub-stream context models.
    pub mixed: bool,
    /// Flags 2: network + the full CM byte model (+ the flags-1 model).
    pub cm_mixed: bool,
    /// Flags 3: network + one CM byte model per group of sub-streams (+ the flags-1 model).
    pub cm_group: bool,
    /// Flags 4: network + the CM sample model on whole samples (chunks with a sample region only).
    pub sample: bool,
}

impl Want {
    /// Every form.
    pub const ALL: Want = Want { plain: true, mixed: true, cm_mixed: true, cm_group: true, sample: true };
}

/// Payloads of [`NeuralCodec::encode_forms`] (`None` where not requested, or
/// a mixed form for a slice that is not 256 symbols wide).
#[derive(Clone, Debug, Default)]
pub struct Forms {
    /// Flags 0.
    pub plain: Option<Vec<u8>>,
    /// Flags 1.
    pub mixed: Option<Vec<u8>>,
    /// Flags 2.
    pub cm_mixed: Option<Vec<u8>>,
    /// Flags 3 (flags 2 for a chunk of one sub-stream, where the two models are the same; `None`
    /// for a chunk that gets the sample form, whose lockstep groups differ).
    pub cm_group: Option<Vec<u8>>,
    /// Flags 4 (`None` also when the chunk has no sample region).
    pub sample: Option<Vec<u8>>,
}

/// How one chunk is cut for the engine (see [`NeuralCodec::plan`]).
struct Plan {
    m: usize,
    toks: Vec<u8>,
    seg: usize,
    lens: Vec<usize>,
    batch: usize,
}

/// A loaded model with what the codec needs.
pub struct NeuralCodec {
    /// Weights.
    pub model: Model,
    /// Modality names in model order.
    pub modalities: Vec<String>,
    /// [`probe_hash`] of `model`, computed at construction.
    pub probe: u64,
}

impl NeuralCodec {
    /// Wrap a model (computes the probe hash).
    pub fn new(model: Model, modalities: Vec<String>) -> Result<Self> {
        if modalities.len() != model.cfg.n_mod {
            return Err(MmzError::InvalidArgument("modality names do not match the model".into()));
        }
        let probe = probe_hash(&model)?;
        Ok(NeuralCodec { model, modalities, probe })
    }

    /// Model slice, token-ordered bytes and sub-stream segmentation of `data`
    /// (shared by [`NeuralCodec::encode`] and [`NeuralCodec::cross_entropy_bits`]).
    fn plan(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Plan> {
        let m = model_modality(&self.model, hint, &self.modalities)?;
        let mut toks = data.to_vec();
        to_token_order(&mut toks, hint);
        let seg = segment_len(level);
        let lens = stream_lens(toks.len(), seg);
        let batch = group_size(batch, lens.len(), threads);
        Ok(Plan { m, toks, seg, lens, batch })
    }

    /// Neural payload of `data` in the plain form (flags 0). `batch` = streams per
    /// lockstep group (weights are reused across a group), groups run on rayon
    /// (`threads`, 0 = global pool).
    pub fn encode(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        self.encode_forms(data, level, hint, batch, threads, Want { plain: true, ..Want::default() })?
            .plain
            .ok_or_else(|| MmzError::InvalidArgument("plain neural payload not produced".into()))
    }

    /// Neural payload of `data` in the mixed form (flags 1, network + online context models).
    pub fn encode_mixed(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        self.encode_forms(data, level, hint, batch, threads, Want { mixed: true, ..Want::default() })?
            .mixed
            .ok_or_else(|| MmzError::InvalidArgument("mixed neural payload not produced".into()))
    }

    /// Neural payload of `data` in the CM-mixed form (flags 2, network + the full CM byte model).
    pub fn encode_cm_mixed(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        self.encode_forms(data, level, hint, batch, threads, Want { cm_mixed: true, ..Want::default() })?
            .cm_mixed
            .ok_or_else(|| MmzError::InvalidArgument("CM-mixed neural payload not produced".into()))
    }

    /// Neural payload of `data` in the CM-group form (flags 3, network + one CM byte model per group of sub-streams).
    pub fn encode_cm_group(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        self.encode_forms(data, level, hint, batch, threads, Want { cm_group: true, ..Want::default() })?
            .cm_group
            .ok_or_else(|| MmzError::InvalidArgument("CM-group neural payload not produced".into()))
    }

    /// Whether the mixed form applies to modality slice `m` (byte slices only).
    fn mixable(&self, m: usize) -> bool {
        self.model.cfg.slices.get(m).is_some_and(|s| s.1 == 256)
    }

    /// The requested payload forms of `data` from one run of the network
    /// (`None` where not requested, or a mixed form for a slice that is not 256 wide).
    pub fn encode_forms(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize, want: Want) -> Result<Forms> {
        let Plan { m, toks, seg, lens, batch } = self.plan(data, level, hint, batch, threads)?;
        let plain = want.plain;
        let mixed = want.mixed && self.mixable(m);
        let cmx = want.cm_mixed && self.mixable(m);
        let sglen = sample_group_len(seg, lens.len());
        let smx = want.sample && self.mixable(m) && crate::ctxmix::region(hint, toks.len()).is_some() && super::samplemix::group_fits(hint, sglen);
        // Flags 3 and 4 each need their own lockstep groups: a chunk with the sample form gets no flags 3.
        let cmg = want.cm_group && self.mixable(m) && !smx;
        if !(plain || mixed || cmx || cmg || smx) {
            return Ok(Forms::default());
        }
        let (cml, modality) = (cm_level(seg), hint.modality);
        let chunk_len = toks.len();
        // With the flags-3/4 forms the lockstep groups are their model groups (the other forms do not depend on the grouping).
        let glen = if smx { sglen } else { cm_group_len(seg, lens.len()) };
        let batch = if cmg || smx { glen } else { batch };
        let groups: Vec<(usize, &[usize])> = lens.chunks(batch).enumerate().map(|(g, l)| (g * batch, l)).collect();
        let model = &self.model;
        let toks = &toks;
        type Coded = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);
        let coded: Vec<Result<Coded>> = in_pool(threads, || {
            let split = groups.len() < rayon::current_num_threads();
            groups
                .par_iter()
                .map(|&(first, gl)| {
                    let rows = gl.len();
                    let mut encs = if plain { vec![RangeEncoder::new(); rows] } else { Vec::new() };
                    let mut bencs: Vec<BitEncoder> = if mixed { (0..rows).map(|_| BitEncoder::with_capacity(seg / 2)).collect() } else { Vec::new() };
                    let mut cencs: Vec<BitEncoder> = if cmx { (0..rows).map(|_| BitEncoder::with_capacity(seg / 2)).collect() } else { Vec::new() };
                    let mut cms: Vec<CmMix> = if cmx { gl.iter().map(|&l| CmMix::new(cml, l, modality)).collect() } else { Vec::new() };
                    let mut gencs: Vec<BitEncoder> = if cmg { (0..rows).map(|_| BitEncoder::with_capacity(seg / 2)).collect() } else { Vec::new() };
                    let mut grp = cmg.then(|| CmGroup::new(cml, gl, modality));
                    let mut sencs: Vec<BitEncoder> = if smx { (0..rows).map(|_| BitEncoder::with_capacity(seg / 2)).collect() } else { Vec::new() };
                    let mut sgrp = smx.then(|| SampleGroup::new(cml, hint, chunk_len, first * seg, gl));
                    // A flags-1 model of its own only where the group's small model is not that model.
                    let mut mixes: Vec<Option<StreamMix>> = if mixed {
                        (0..rows).map(|r| (!grp.as_ref().is_some_and(|g| g.side_matches(r, seg))).then(|| StreamMix::new(seg))).collect()
                    } else {
                        Vec::new()
                    };
                    let mut freqs = vec![0u32; 256];
                    let mut np = NodeProbs::default();
                    run_group(model, m, gl, split, |r, t, w| {
                        let b = toks[(first + r) * seg + t];
                        if plain {
                            encs[r].encode_probs(b as u32, w, PRECISION)?;
                        }
                        if mixed || cmx || cmg || smx {
                            quant::quantize_probs(w, PRECISION, &mut freqs)?;
                            np.load(&freqs);
                        }
                        let mut side = None;
                        if mixed {
                            match mixes[r].as_mut() {
                                Some(mx) => {
                                    mx.code(&mut bencs[r], &np, b);
                                }
                                None => side = Some(&mut bencs[r]),
                            }
                        }
                        if cmx {
                            cms[r].code(&mut cencs[r], &np, b);
                        }
                        if let Some(g) = grp.as_mut() {
                            g.code_with_side(r, &mut gencs[r], &np, b, side);
                        }
                        if let Some(g) = sgrp.as_mut() {
                            let at = (first + r) * seg;
                            g.code(r, &mut sencs[r], &freqs, &np, toks.get(at..at + gl[r]));
                        }
                        Ok(b)
                    })?;
                    Ok((
                        encs.into_iter().map(RangeEncoder::finish).collect(),
                        bencs.into_iter().map(BitEncoder::finish).collect(),
                        cencs.into_iter().map(BitEncoder::finish).collect(),
                        gencs.into_iter().map(BitEncoder::finish).collect(),
                        sencs.into_iter().map(BitEncoder::finish).collect(),
                    ))
                })
                .collect()
        })?;
        let mut ps = Vec::with_capacity(lens.len());
        let mut ms = Vec::with_capacity(lens.len());
        let mut cs = Vec::with_capacity(lens.len());
        let mut gs = Vec::with_capacity(lens.len());
        let mut ss = Vec::with_capacity(lens.len());
        for g in coded {
            let (p, x, y, z, q) = g?;
            ps.extend(p);
            ms.extend(x);
            cs.extend(y);
            gs.extend(z);
            ss.extend(q);
        }
        let assemble = |flags: u8, streams: &[Vec<u8>]| {
            let mut out = Vec::with_capacity(PAYLOAD_FIXED + 4 + 4 * streams.len() + streams.iter().map(Vec::len).sum::<usize>());
            out.extend_from_slice(&[ENGINE_VERSION, PRECISION as u8, m as u8, flags]);
            out.extend_from_slice(&self.probe.to_le_bytes());
            out.extend_from_slice(&(seg as u32).to_le_bytes());
            out.extend_from_slice(&(streams.len() as u32).to_le_bytes());
            if flags == FLAGS_CM_GROUP || flags == FLAGS_SAMPLE_MIX {
                out.extend_from_slice(&(glen as u32).to_le_bytes());
            }
            for s in streams {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            }
            for s in streams {
                out.extend_from_slice(s);
            }
            out
        };
        Ok(Forms {
            plain: plain.then(|| assemble(FLAGS_PLAIN, &ps)),
            mixed: mixed.then(|| assemble(FLAGS_MIX, &ms)),
            cm_mixed: cmx.then(|| assemble(FLAGS_CM_MIX, &cs)),
            // One sub-stream: the CM group is exactly the flags-2 model, written as flags 2 (no `G` field).
            cm_group: cmg.then(|| assemble(if lens.len() <= 1 { FLAGS_CM_MIX } else { FLAGS_CM_GROUP }, &gs)),
            sample: smx.then(|| assemble(FLAGS_SAMPLE_MIX, &ss)),
        })
    }

    /// Inverse of [`NeuralCodec::encode`]; `raw_len` from the chunk header.
    pub fn decode(&self, payload: &[u8], raw_len: usize, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        let c = |d: &str| MmzError::corrupt("neural payload", d.to_string());
        if payload.len() < PAYLOAD_FIXED {
            return Err(MmzError::Truncated("neural payload header".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
        if payload[0] != ENGINE_VERSION {
            return Err(MmzError::corrupt(
                "neural payload",
                format!("engine version {} (this build computes version {ENGINE_VERSION}); upgrade mmz", payload[0]),
            ));
        }
        let flags = payload[3];
        if payload[1] as u32 != PRECISION || !matches!(flags, FLAGS_PLAIN | FLAGS_MIX | FLAGS_CM_MIX | FLAGS_CM_GROUP | FLAGS_SAMPLE_MIX) {
            return Err(c("unsupported precision or flags"));
        }
        let m = model_modality(&self.model, hint, &self.modalities)?;
        if payload[2] as usize != m {
            return Err(c("modality differs from the chunk hint"));
        }
        if flags != FLAGS_PLAIN && !self.mixable(m) {
            return Err(c("mixed form on a slice that is not 256 symbols wide"));
        }
        let mut pb = [0u8; 8];
        pb.copy_from_slice(&payload[4..12]);
        let probe = u64::from_le_bytes(pb);
        if probe != self.probe {
            return Err(MmzError::corrupt(
                "neural payload",
                format!(
                    "engine/model mismatch: the encoder's golden probe hash was {probe:016x}, this engine computes \
                     {:016x} with this model; refusing to decode (wrong model, or a non-conforming engine build)",
                    self.probe
                ),
            ));
        }
        let seg = u32_at(12) as usize;
        let ns = u32_at(16) as usize;
        if seg == 0 || seg > crate::codec::MAX_CHUNK {
            return Err(c("bad segment length"));
        }
        let lens = stream_lens(raw_len, seg);
        if lens.len() != ns {
            return Err(c("stream count does not match the raw length"));
        }
        // Flags 3 and 4: the model group length follows the fixed header.
        let (glen, table) = if flags == FLAGS_CM_GROUP || flags == FLAGS_SAMPLE_MIX {
            if payload.len() < PAYLOAD_FIXED + 4 {
                return Err(MmzError::Truncated("neural CM group length".into()));
            }
            let g = u32_at(PAYLOAD_FIXED) as usize;
            if g == 0 || g > ns.max(1) || g > CM_GROUP_MAX {
                return Err(c("bad CM group length"));
            }
            if flags == FLAGS_SAMPLE_MIX && !super::samplemix::group_fits(hint, g) {
                return Err(c("sample-mixed group exceeds the reader's memory bound"));
            }
            (g, PAYLOAD_FIXED + 4)
        } else {
            (0, PAYLOAD_FIXED)
        };
        let table_end = ns.checked_mul(4).and_then(|x| x.checked_add(table)).ok_or_else(|| c("overflow"))?;
        if payload.len() < table_end {
            return Err(MmzError::Truncated("neural stream table".into()));
        }
        let mut streams: Vec<&[u8]> = Vec::with_capacity(ns);
        let mut pos = table_end;
        for i in 0..ns {
            let n = u32_at(table + 4 * i) as usize;
            let s = payload.get(pos..pos.saturating_add(n)).ok_or_else(|| MmzError::Truncated("neural stream".into()))?;
            streams.push(s);
            pos += n;
        }
        if pos != payload.len() {
            return Err(c("trailing bytes after the streams"));
        }
        // Flags 3 and 4 decode each model group as one lockstep group (its coding order).
        let batch = if flags == FLAGS_CM_GROUP || flags == FLAGS_SAMPLE_MIX { glen } else { group_size(batch, lens.len(), threads) };
        let model = &self.model;
        let size = model.cfg.slices[m].1;
        let groups: Vec<(&[usize], &[&[u8]])> = lens.chunks(batch).zip(streams.chunks(batch)).collect();
        let decoded: Vec<Result<Vec<Vec<u8>>>> = in_pool(threads, || {
            let split = groups.len() < rayon::current_num_threads();
            groups
                .into_par_iter()
                .enumerate()
                .map(|(gi, (gl, gs))| {
                    let mut outs: Vec<Vec<u8>> = gl.iter().map(|&l| Vec::with_capacity(l)).collect();
                    if flags == FLAGS_MIX {
                        let mut decs: Vec<BitDecoder> = gs.iter().map(|s| BitDecoder::new(s)).collect();
                        let mut mixes: Vec<StreamMix> = gl.iter().map(|_| StreamMix::new(seg)).collect();
                        let mut freqs = vec![0u32; 256];
                        let mut np = NodeProbs::default();
                        run_group(model, m, gl, split, |r, _t, w| {
                            quant::quantize_probs(w, PRECISION, &mut freqs)?;
                            np.load(&freqs);
                            let b = mixes[r].code(&mut decs[r], &np, 0);
                            outs[r].push(b);
                            Ok(b)
                        })?;
                        // A stream that needed far more bytes than it holds is damaged.
                        if decs.iter().any(|d| d.overrun() > 8) {
                            return Err(MmzError::corrupt("neural payload", "mixed sub-stream overrun"));
                        }
                    } else if flags == FLAGS_CM_MIX {
                        let mut decs: Vec<BitDecoder> = gs.iter().map(|s| BitDecoder::new(s)).collect();
                        let (cml, modality) = (cm_level(seg), hint.modality);
                        let mut cms: Vec<CmMix> = gl.iter().map(|&l| CmMix::new(cml, l, modality)).collect();
                        let mut freqs = vec![0u32; 256];
                        let mut np = NodeProbs::default();
                        run_group(model, m, gl, split, |r, _t, w| {
                            quant::quantize_probs(w, PRECISION, &mut freqs)?;
                            np.load(&freqs);
                            let b = cms[r].code(&mut decs[r], &np, 0);
                            outs[r].push(b);
                            Ok(b)
                        })?;
                        if decs.iter().any(|d| d.overrun() > 8) {
                            return Err(MmzError::corrupt("neural payload", "CM-mixed sub-stream overrun"));
                        }
                    } else if flags == FLAGS_SAMPLE_MIX {
                        let mut decs: Vec<BitDecoder> = gs.iter().map(|s| BitDecoder::new(s)).collect();
                        let mut grp = SampleGroup::new(cm_level(seg), hint, raw_len, gi * batch * seg, gl);
                        let mut freqs = vec![0u32; 256];
                        let mut np = NodeProbs::default();
                        run_group(model, m, gl, split, |r, _t, w| {
                            quant::quantize_probs(w, PRECISION, &mut freqs)?;
                            np.load(&freqs);
                            let b = grp.code(r, &mut decs[r], &freqs, &np, None);
                            outs[r].push(b);
                            Ok(b)
                        })?;
                        if decs.iter().any(|d| d.overrun() > 8) {
                            return Err(MmzError::corrupt("neural payload", "sample-mixed sub-stream overrun"));
                        }
                    } else if flags == FLAGS_CM_GROUP {
                        let mut decs: Vec<BitDecoder> = gs.iter().map(|s| BitDecoder::new(s)).collect();
                        let mut grp = CmGroup::new(cm_level(seg), gl, hint.modality);
                        let mut freqs = vec![0u32; 256];
                        let mut np = NodeProbs::default();
                        run_group(model, m, gl, split, |r, _t, w| {
                            quant::quantize_probs(w, PRECISION, &mut freqs)?;
                            np.load(&freqs);
                            let b = grp.code(r, &mut decs[r], &np, 0);
                            outs[r].push(b);
                            Ok(b)
                        })?;
                        if decs.iter().any(|d| d.overrun() > 8) {
                            return Err(MmzError::corrupt("neural payload", "CM-group sub-stream overrun"));
                        }
                    } else {
                        let mut decs: Vec<RangeDecoder> = gs.iter().map(|s| RangeDecoder::new(s.to_vec())).collect();
                        let mut scratch = Vec::with_capacity(size);
                        run_group(model, m, gl, split, |r, _t, w| {
                            let s = decs[r].decode_probs(w, PRECISION, &mut scratch)?;
                            let b = u8::try_from(s).map_err(|_| MmzError::corrupt("neural payload", "symbol out of range"))?;
                            outs[r].push(b);
                            Ok(b)
                        })?;
                    }
                    Ok(outs)
                })
                .collect()
        })?;
        let mut out = Vec::with_capacity(raw_len);
        for g in decoded {
            for s in g? {
                out.extend_from_slice(&s);
            }
        }
        to_token_order(&mut out, hint);
        Ok(out)
    }

    /// Diagnostics for tuning the mixer: the token-ordered bytes, the segment
    /// length and, per byte, the network's 16-bit P(1) at each of the 8 nodes on
    /// the byte's path (the inputs [`super::mix::StreamMix`] receives).
    pub fn node_probs(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<(Vec<u8>, usize, Vec<u16>)> {
        let Plan { m, toks, seg, lens, batch } = self.plan(data, level, hint, batch, threads)?;
        if !self.mixable(m) {
            return Err(MmzError::InvalidArgument("node probabilities need a 256-symbol slice".into()));
        }
        let model = &self.model;
        let tk = &toks;
        let parts: Vec<Result<Vec<u16>>> = in_pool(threads, || {
            lens.par_chunks(batch)
                .enumerate()
                .map(|(g, gl)| {
                    let first = g * batch;
                    let mut out = vec![0u16; gl.iter().sum::<usize>() * 8];
                    let mut freqs = vec![0u32; 256];
                    let mut np = NodeProbs::default();
                    run_group(model, m, gl, false, |r, t, w| {
                        let b = tk[(first + r) * seg + t];
                        quant::quantize_probs(w, PRECISION, &mut freqs)?;
                        np.load(&freqs);
                        let base = (r * seg + t) * 8;
                        for d in 0..8u32 {
                            if let Some(o) = out.get_mut(base + d as usize) {
                                *o = np.p16(b as u32 >> (8 - d), d) as u16;
                            }
                        }
                        Ok(b)
                    })?;
                    Ok(out)
                })
                .collect()
        })?;
        let mut all = Vec::with_capacity(toks.len() * 8);
        for p in parts {
            all.extend(p?);
        }
        Ok((toks, seg, all))
    }

    /// Model cross-entropy of `data` in bits under the same segmentation as
    /// [`NeuralCodec::encode`] (float softmax, before quantization).
    pub fn cross_entropy_bits(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<f64> {
        let Plan { m, toks, seg, lens, batch } = self.plan(data, level, hint, batch, threads)?;
        let model = &self.model;
        let toks = &toks;
        let parts: Vec<Result<f64>> = in_pool(threads, || {
            lens.par_chunks(batch)
                .enumerate()
                .map(|(g, gl)| {
                    let mut bits = 0f64;
                    run_group(model, m, gl, false, |r, t, w| {
                        let b = toks[(g * batch + r) * seg + t];
                        let tot: f64 = w.iter().map(|&x| x as f64).sum();
                        bits -= (w[b as usize] as f64 / tot).log2();
                        Ok(b)
                    })?;
                    Ok(bits)
                })
                .collect()
        })?;
        parts.into_iter().sum()
    }

    /// A complete chunk record (64-byte header + payload) holding the cheapest
    /// of: the sample-mixed (chunks with a sample region) or CM-group (other
    /// chunks), mixed and plain neural payloads (all from one network run), the
    /// CM codec (or stored, as `codec::compress_chunk` decides). The
    /// CM-mixed form (flags 2) is no longer written: flags 3 codes at least as
    /// small on the measured sets at a fraction of its memory.
    pub fn encode_chunk(&self, data: &[u8], level: u8, hint: &Hint, batch: usize, threads: usize) -> Result<Vec<u8>> {
        let (mut codec, mut payload) = compress_chunk(data, CodecId::Cm, level, hint)?;
        if !data.is_empty() {
            // A chunk with a sample region gets flags 4 instead of flags 3 (encode_forms; flags 3's CM
            // byte model never won a sample chunk measured).
            let f = self.encode_forms(data, level, hint, batch, threads, Want { cm_mixed: false, ..Want::ALL })?;
            for neural in [f.sample, f.cm_group, f.mixed, f.plain].into_iter().flatten() {
                if neural.len() < payload.len() {
                    codec = CodecId::Neural;
                    payload = neural;
                }
            }
        }
        Ok(frame::chunk_record(data, codec, level, hint, &payload))
    }

    /// Verify and decode one chunk record of any codec (codec 3 here, others via `frame::decode_chunk`).
    pub fn decode_chunk(&self, header: &ChunkHeader, payload: &[u8], batch: usize, threads: usize) -> Result<Vec<u8>> {
        if header.codec != CodecId::Neural {
            return frame::decode_chunk(header, payload);
        }
        frame::decode_chunk_with(header, payload, |p| {
            header.hint.validate(header.raw_len as usize).map_err(|e| MmzError::corrupt("chunk hint", e.to_string()))?;
            self.decode(p, header.raw_len as usize, &header.hint, batch, threads)
        })
    }
}
