//! `B` independent range-coded streams stepping in lockstep: one probability
//! row per stream per step. Each stream's bytes depend only on its own rows
//! and symbols, so a batch of 1 and a batch of 512 give identical streams.
//! Large batches are spread over rayon's pool.

use crate::coder::{RangeDecoder, RangeEncoder};
use crate::error::{MmzError, Result};
use crate::quant;
use rayon::prelude::*;

/// Below this many probabilities per step the work stays on the calling thread.
const PAR_MIN_ELEMS: usize = 1 << 15;

fn use_par(b: usize, v: usize) -> bool {
    b >= 2 && b.saturating_mul(v) >= PAR_MIN_ELEMS && rayon::current_num_threads() > 1
}

fn check_shape(rows_len: usize, b: usize, v: usize, what: &str) -> Result<()> {
    if b == 0 || rows_len != b.saturating_mul(v) {
        return Err(MmzError::InvalidArgument(format!(
            "{what} has {rows_len} values, expected batch {b} x alphabet {v}"
        )));
    }
    Ok(())
}

/// Whether `encode_step`/`decode_step` rows are probabilities or logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// Float32 probabilities (any non-negative scale).
    Probs,
    /// Float32 logits (softmax implied, deterministic exp).
    Logits,
}

/// Lockstep encoder for `B` streams.
#[derive(Clone, Debug)]
pub struct BatchEncoder {
    precision: u32,
    encs: Vec<RangeEncoder>,
    scratch: Vec<Vec<f32>>,
    /// Quantizer working memory shared by the streams on the sequential path.
    quant_scratch: Vec<u32>,
}

impl BatchEncoder {
    /// `batch` streams at `precision` bits (12..=24).
    pub fn new(batch: usize, precision: u32) -> Result<Self> {
        quant::check_params(precision, 2)?;
        if batch == 0 {
            return Err(MmzError::InvalidArgument("batch must be at least 1".into()));
        }
        Ok(BatchEncoder {
            precision,
            encs: vec![RangeEncoder::new(); batch],
            scratch: vec![Vec::new(); batch],
            quant_scratch: Vec::new(),
        })
    }

    /// Number of streams.
    pub fn batch(&self) -> usize {
        self.encs.len()
    }

    /// CDF precision in bits.
    pub fn precision(&self) -> u32 {
        self.precision
    }

    /// Code `symbols[b]` in stream `b` under row `b` of `rows` (`B x V`, row-major).
    pub fn encode_step(
        &mut self,
        rows: &[f32],
        v: usize,
        symbols: &[u32],
        kind: RowKind,
    ) -> Result<()> {
        let b = self.encs.len();
        check_shape(rows.len(), b, v, "probability matrix")?;
        quant::check_params(self.precision, v)?;
        if symbols.len() != b {
            return Err(MmzError::InvalidArgument(format!(
                "got {} symbols for a batch of {b}",
                symbols.len()
            )));
        }
        if let Some(&s) = symbols.iter().find(|&&s| s as usize >= v) {
            return Err(MmzError::InvalidArgument(format!(
                "symbol {s} out of range for alphabet of {v}"
            )));
        }
        let p = self.precision;
        let one =
            |enc: &mut RangeEncoder, row: &[f32], s: u32, scratch: &mut Vec<f32>| -> Result<()> {
                let row = match kind {
                    RowKind::Probs => row,
                    RowKind::Logits => {
                        scratch.clear();
                        scratch.resize(row.len(), 0.0);
                        quant::logits_to_weights(row, scratch)?;
                        &scratch[..]
                    }
                };
                enc.encode_probs(s, row, p)?;
                Ok(())
            };
        if use_par(b, v) {
            self.encs
                .par_iter_mut()
                .zip(rows.par_chunks(v))
                .zip(symbols.par_iter())
                .zip(self.scratch.par_iter_mut())
                .try_for_each(|(((e, r), &s), sc)| one(e, r, s, sc))
        } else if kind == RowKind::Probs {
            // One quantizer buffer for all streams (it stays in the L1 cache).
            let sc = &mut self.quant_scratch;
            self.encs
                .iter_mut()
                .zip(rows.chunks(v))
                .zip(symbols)
                .try_for_each(|((e, r), &s)| e.encode_probs_in(s, r, p, sc))
        } else {
            self.encs
                .iter_mut()
                .zip(rows.chunks(v))
                .zip(symbols)
                .zip(self.scratch.iter_mut())
                .try_for_each(|(((e, r), &s), sc)| one(e, r, s, sc))
        }
    }

    /// Flush every stream; returns one byte vector per stream.
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.encs.into_iter().map(RangeEncoder::finish).collect()
    }
}

/// Lockstep decoder for `B` streams.
#[derive(Clone, Debug)]
pub struct BatchDecoder {
    precision: u32,
    decs: Vec<RangeDecoder>,
    scratch: Vec<(Vec<u32>, Vec<f32>)>,
}

impl BatchDecoder {
    /// Decode the given streams at `precision` bits.
    pub fn new(streams: Vec<Vec<u8>>, precision: u32) -> Result<Self> {
        quant::check_params(precision, 2)?;
        if streams.is_empty() {
            return Err(MmzError::InvalidArgument("need at least one stream".into()));
        }
        let n = streams.len();
        Ok(BatchDecoder {
            precision,
            decs: streams.into_iter().map(RangeDecoder::new).collect(),
            scratch: vec![(Vec::new(), Vec::new()); n],
        })
    }

    /// Number of streams.
    pub fn batch(&self) -> usize {
        self.decs.len()
    }

    /// Decode one symbol per stream under row `b` of `rows` into `out[b]`.
    pub fn decode_step(
        &mut self,
        rows: &[f32],
        v: usize,
        out: &mut [u32],
        kind: RowKind,
    ) -> Result<()> {
        let b = self.decs.len();
        check_shape(rows.len(), b, v, "probability matrix")?;
        quant::check_params(self.precision, v)?;
        if out.len() != b {
            return Err(MmzError::InvalidArgument(format!(
                "output has {} slots for a batch of {b}",
                out.len()
            )));
        }
        let p = self.precision;
        let one = |d: &mut RangeDecoder,
                   row: &[f32],
                   o: &mut u32,
                   sc: &mut (Vec<u32>, Vec<f32>)|
         -> Result<()> {
            let (freqs, w) = sc;
            let row = match kind {
                RowKind::Probs => row,
                RowKind::Logits => {
                    w.clear();
                    w.resize(row.len(), 0.0);
                    quant::logits_to_weights(row, w)?;
                    &w[..]
                }
            };
            *o = d.decode_probs(row, p, freqs)?;
            Ok(())
        };
        if use_par(b, v) {
            self.decs
                .par_iter_mut()
                .zip(rows.par_chunks(v))
                .zip(out.par_iter_mut())
                .zip(self.scratch.par_iter_mut())
                .try_for_each(|(((d, r), o), sc)| one(d, r, o, sc))
        } else if kind == RowKind::Probs {
            // Row b + 1's preparation overlaps row b's search (same symbols).
            crate::coder::decode_rows_pipelined(&mut self.decs, rows, v, p, out).map_err(|(_, e)| e)
        } else {
            self.decs
                .iter_mut()
                .zip(rows.chunks(v))
                .zip(out.iter_mut())
                .zip(self.scratch.iter_mut())
                .try_for_each(|(((d, r), o), sc)| one(d, r, o, sc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_matches_single() {
        let (b, v, n) = (9usize, 50usize, 300usize);
        let mut st = 1u64;
        let mut next = || {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1);
            (st >> 40) as u32
        };
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..b * v).map(|_| (next() % 500) as f32 * 0.01).collect())
            .collect();
        let syms: Vec<Vec<u32>> = (0..n)
            .map(|_| (0..b).map(|_| next() % v as u32).collect())
            .collect();
        for kind in [RowKind::Probs, RowKind::Logits] {
            let mut be = BatchEncoder::new(b, 20).unwrap();
            for t in 0..n {
                be.encode_step(&rows[t], v, &syms[t], kind).unwrap();
            }
            let streams = be.finish();
            for (i, stream) in streams.iter().enumerate() {
                let mut one = BatchEncoder::new(1, 20).unwrap();
                for t in 0..n {
                    one.encode_step(&rows[t][i * v..(i + 1) * v], v, &syms[t][i..i + 1], kind)
                        .unwrap();
                }
                assert_eq!(&one.finish()[0], stream);
            }
            let mut bd = BatchDecoder::new(streams, 20).unwrap();
            let mut out = vec![0u32; b];
            for t in 0..n {
                bd.decode_step(&rows[t], v, &mut out, kind).unwrap();
                assert_eq!(out, syms[t]);
            }
        }
    }
}
