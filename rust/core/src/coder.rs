//! Multi-symbol range coder (alphabets of 2..=65,536 symbols, totals up to 2^24).
//!
//! 64-bit state with carry propagation (documented in docs/FORMAT.md, "Range coder"):
//! the encoder keeps `low` (u64) and `range` (u64, `>= 2^56` between symbols).
//! Coding the interval `[start, start + freq)` of a total `T` sets
//! `r = floor(range / T)`, `low += r * start` (a carry out of bit 63 is added
//! into the bytes already written), `range = r * freq`, then while
//! `range < 2^56` the top byte of `low` is written and `low`, `range` shift
//! left by 8. `finish` writes the top byte of `low + 2^56 - 1` (with carry)
//! and drops trailing zero bytes, because the decoder reads zeros past the end.

use crate::error::{MmzError, Result};
use crate::quant;

const TOP: u64 = 1 << 56;
/// Largest total a coded distribution may have.
pub const MAX_TOTAL: u32 = 1 << quant::MAX_PRECISION;

/// Range encoder: feed intervals or probability rows, then [`RangeEncoder::finish`].
#[derive(Clone, Debug)]
pub struct RangeEncoder {
    low: u64,
    range: u64,
    out: Vec<u8>,
    /// Working memory of the float-row quantizer (no coder state).
    scratch: Vec<u32>,
}

impl Default for RangeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeEncoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        RangeEncoder {
            low: 0,
            range: u64::MAX,
            out: Vec::new(),
            scratch: Vec::new(),
        }
    }

    #[cold]
    fn carry(&mut self) {
        #[cfg(test)]
        tests::CARRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for b in self.out.iter_mut().rev() {
            let (nb, c) = b.overflowing_add(1);
            *b = nb;
            if !c {
                return;
            }
        }
    }

    #[inline(always)]
    fn add_low(&mut self, x: u64) {
        let (l, c) = self.low.overflowing_add(x);
        self.low = l;
        if c {
            self.carry();
        }
    }

    #[inline(always)]
    fn put(&mut self, r: u64, start: u32, freq: u32) {
        self.add_low(r * start as u64);
        self.range = r * freq as u64;
        // Branch-free renormalisation (the loop below, done at once; see the
        // decoder's `take`): with range >= 2^32 at most 3 bytes move. Four are
        // appended, then the surplus is cut, so no data-dependent branch remains.
        if self.range >= 1 << 32 {
            let sh = self.range.leading_zeros() & !7; // 8 x whole zero bytes, <= 24
            let len = self.out.len();
            let b = self.low.to_be_bytes();
            self.out.extend_from_slice(&[b[0], b[1], b[2], b[3]]);
            self.out.truncate(len + (sh / 8) as usize);
            self.low <<= sh;
            self.range <<= sh;
            return;
        }
        while self.range < TOP {
            self.out.push((self.low >> 56) as u8);
            self.low <<= 8;
            self.range <<= 8;
        }
    }

    /// Code `[start, start + freq)` out of `2^precision` (caller guarantees validity).
    #[inline(always)]
    pub(crate) fn put_pow2(&mut self, start: u32, freq: u32, precision: u32) {
        self.put(self.range >> precision, start, freq);
    }

    /// Code the interval `[start, start + freq)` of a distribution with total `total`.
    pub fn encode_interval(&mut self, start: u32, freq: u32, total: u32) -> Result<()> {
        if total == 0 || total > MAX_TOTAL || freq == 0 || start as u64 + freq as u64 > total as u64
        {
            return Err(MmzError::InvalidArgument(format!(
                "bad interval: start {start}, freq {freq}, total {total} (need freq >= 1, start + freq <= total <= 2^24)"
            )));
        }
        self.put(self.range / total as u64, start, freq);
        Ok(())
    }

    /// Code `symbol` under float32 probabilities `probs` quantized at `precision` bits.
    #[inline]
    pub fn encode_probs(&mut self, symbol: u32, probs: &[f32], precision: u32) -> Result<()> {
        let (start, freq) =
            quant::row_interval_in(probs, precision, symbol as usize, &mut self.scratch)?;
        self.put_pow2(start, freq, precision);
        Ok(())
    }

    /// [`Self::encode_probs`] with the caller's quantizer working memory (one
    /// buffer shared by many encoders stays in the L1 cache).
    #[inline]
    pub fn encode_probs_in(
        &mut self,
        symbol: u32,
        probs: &[f32],
        precision: u32,
        scratch: &mut Vec<u32>,
    ) -> Result<()> {
        let (start, freq) = quant::row_interval_in(probs, precision, symbol as usize, scratch)?;
        self.put_pow2(start, freq, precision);
        Ok(())
    }

    /// Code `symbol` under integer frequencies (any total in `1..=2^24`).
    pub fn encode_freqs(&mut self, symbol: u32, freqs: &[u32]) -> Result<()> {
        let total = quant::check_freqs(freqs)?;
        let s = symbol as usize;
        let start: u32 = freqs
            .get(..s)
            .map(|f| f.iter().sum())
            .ok_or_else(|| bad_symbol(symbol, freqs.len()))?;
        let freq = freqs
            .get(s)
            .copied()
            .ok_or_else(|| bad_symbol(symbol, freqs.len()))?;
        self.encode_interval(start, freq, total)
    }

    /// Bytes written so far (excluding the pending state).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True when nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Flush and return the coded bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.add_low(TOP - 1);
        self.out.push((self.low >> 56) as u8);
        while self.out.last() == Some(&0) {
            self.out.pop();
        }
        self.out
    }
}

fn bad_symbol(symbol: u32, v: usize) -> MmzError {
    MmzError::InvalidArgument(format!("symbol {symbol} out of range for alphabet of {v}"))
}

fn corrupt(detail: &str) -> MmzError {
    MmzError::corrupt("range-coded stream", detail)
}

/// Range decoder over an owned byte stream. Bytes past the end read as zero;
/// an impossible state is reported as [`MmzError::Corrupt`], never a panic.
#[derive(Clone, Debug)]
pub struct RangeDecoder {
    code: u64,
    range: u64,
    data: Vec<u8>,
    pos: usize,
}

impl RangeDecoder {
    /// Start decoding `data`.
    pub fn new(data: Vec<u8>) -> Self {
        let mut d = RangeDecoder {
            code: 0,
            range: u64::MAX,
            data,
            pos: 0,
        };
        for _ in 0..8 {
            d.code = (d.code << 8) | d.next_byte();
        }
        d
    }

    #[inline(always)]
    fn next_byte(&mut self) -> u64 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b as u64
    }

    /// Scaled target `q` in `[0, total)` and the step `r`.
    #[inline(always)]
    fn target(&self, r: u64, total: u32) -> Result<u32> {
        let q = self.code / r;
        if q >= total as u64 {
            return Err(corrupt("decoder state outside the coded interval"));
        }
        Ok(q as u32)
    }

    #[inline(always)]
    fn take(&mut self, r: u64, start: u32, freq: u32) {
        self.code = self.code.wrapping_sub(r.wrapping_mul(start as u64));
        self.range = r.wrapping_mul(freq as u64);
        // Branch-free renormalisation (the loop below, done at once): the
        // number of bytes to shift in is data-dependent, so a loop mispredicts
        // often. With range >= 2^32 (always after a valid step: r >= 2^32,
        // freq >= 1) at most 3 bytes move, and 8 readable bytes make it exact.
        if self.range >= 1 << 32 {
            if let Some(w) = self.data.get(self.pos..self.pos + 8) {
                let word = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                let sh = self.range.leading_zeros() & !7; // 8 x whole zero bytes, <= 24
                self.code = (self.code << sh) | ((word >> (63 - sh)) >> 1);
                self.range <<= sh;
                self.pos += (sh / 8) as usize;
                return;
            }
        }
        while self.range < TOP {
            if self.range == 0 {
                // Only reachable if a caller-supplied interval was empty; keep going safely.
                self.range = 1;
            }
            self.code = (self.code << 8) | self.next_byte();
            self.range <<= 8;
        }
    }

    /// Decode with a caller-supplied lookup: `find(q)` must return
    /// `(symbol, start, freq)` with `start <= q < start + freq <= total`.
    #[inline]
    pub fn decode_with<F>(&mut self, total: u32, find: F) -> Result<u32>
    where
        F: FnOnce(u32) -> Result<(u32, u32, u32)>,
    {
        if total == 0 || total > MAX_TOTAL {
            return Err(MmzError::InvalidArgument(format!(
                "total must be in 1..=2^24, got {total}"
            )));
        }
        let r = self.range / total as u64;
        let q = self.target(r, total)?;
        let (sym, start, freq) = find(q)?;
        if freq == 0 || start > q || q - start >= freq {
            return Err(corrupt(
                "symbol lookup returned an interval not containing the target",
            ));
        }
        self.take(r, start, freq);
        Ok(sym)
    }

    /// Decode one symbol under float32 probabilities quantized at `precision`;
    /// `scratch` is working memory reused between calls (resized as needed).
    #[inline]
    pub fn decode_probs(
        &mut self,
        probs: &[f32],
        precision: u32,
        scratch: &mut Vec<u32>,
    ) -> Result<u32> {
        quant::check_params(precision, probs.len())?;
        let r = self.range >> precision;
        let q = self.target(r, 1 << precision)?;
        let (sym, start, freq) = quant::row_locate(probs, precision, q, scratch)?;
        if freq == 0 || start > q || q - start >= freq {
            return Err(corrupt(
                "symbol lookup returned an interval not containing the target",
            ));
        }
        self.take(r, start, freq);
        Ok(sym)
    }

    /// Decode one symbol under a row prepared by [`quant::row_prepare`] (kernel
    /// `k`, the same `probs` and `precision`); the same result as [`Self::decode_probs`].
    #[inline]
    pub fn decode_prepared(
        &mut self,
        k: quant::Kernel,
        prep: &quant::RowPrep,
        probs: &[f32],
        precision: u32,
        scratch: &mut Vec<u32>,
    ) -> Result<u32> {
        let r = self.range >> precision;
        let q = self.target(r, 1 << precision)?;
        let (sym, start, freq) = quant::row_search(k, prep, probs, precision, q, scratch)?;
        if freq == 0 || start > q || q - start >= freq {
            return Err(corrupt(
                "symbol lookup returned an interval not containing the target",
            ));
        }
        self.take(r, start, freq);
        Ok(sym)
    }

    /// Decode one symbol per row of `rows` (whole rows of `v` floats) into `out`
    /// (cleared first): the same symbols as [`Self::decode_probs`] row by row,
    /// with the rows' preparation pipelined (see [`decode_rows_pipelined`]).
    pub fn decode_probs_rows(
        &mut self,
        rows: &[f32],
        v: usize,
        precision: u32,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        quant::check_params(precision, v)?;
        if !rows.len().is_multiple_of(v) {
            return Err(MmzError::InvalidArgument(format!(
                "{} floats are not whole rows of {v}",
                rows.len()
            )));
        }
        out.clear();
        out.resize(rows.len() / v, 0);
        let n = decode_rows_pipelined(std::slice::from_mut(self), rows, v, precision, out);
        match n {
            Ok(()) => Ok(()),
            Err((done, e)) => {
                out.truncate(done);
                Err(e)
            }
        }
    }

    /// Decode one symbol under integer frequencies (any total in `1..=2^24`).
    pub fn decode_freqs(&mut self, freqs: &[u32]) -> Result<u32> {
        let total = quant::check_freqs(freqs)?;
        self.decode_freqs_unchecked(freqs, total)
    }

    /// `freqs` must sum to `total` (checked by the caller).
    #[inline]
    pub(crate) fn decode_freqs_unchecked(&mut self, freqs: &[u32], total: u32) -> Result<u32> {
        self.decode_with(total, |q| find_in_freqs(freqs, q))
    }

    /// Decode one symbol under a CDF table (`cdf[0] = 0`, non-decreasing,
    /// `cdf[V] = total`), by binary search.
    #[inline]
    pub(crate) fn decode_cdf_unchecked(&mut self, cdf: &[u32]) -> Result<u32> {
        let total = cdf.last().copied().unwrap_or(0);
        self.decode_with(total, |q| {
            // First index with cdf[i] > q, minus one.
            let i = cdf.partition_point(|&c| c <= q);
            let s = i.checked_sub(1).ok_or_else(|| corrupt("CDF lookup"))?;
            match (cdf.get(s), cdf.get(i)) {
                (Some(&a), Some(&b)) => Ok((s as u32, a, b - a)),
                _ => Err(corrupt("CDF lookup")),
            }
        })
    }

    /// Bytes read beyond the end of the input.
    pub fn overrun(&self) -> usize {
        self.pos.saturating_sub(self.data.len())
    }
}

/// Find the symbol whose interval holds `q` (chunked linear scan).
#[inline]
pub(crate) fn find_in_freqs(freqs: &[u32], q: u32) -> Result<(u32, u32, u32)> {
    const CH: usize = 64;
    let mut cum = 0u32;
    for (ci, chunk) in freqs.chunks(CH).enumerate() {
        let cs: u32 = chunk.iter().fold(0u32, |a, &f| a.wrapping_add(f));
        if cum.wrapping_add(cs) > q {
            for (j, &f) in chunk.iter().enumerate() {
                if cum + f > q {
                    return Ok(((ci * CH + j) as u32, cum, f));
                }
                cum += f;
            }
            break;
        }
        cum = cum.wrapping_add(cs);
    }
    Err(corrupt("target beyond the frequency total"))
}

/// Build a CDF table (`V + 1` entries) from frequencies.
pub fn freqs_to_cdf(freqs: &[u32]) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(freqs.len() + 1);
    let mut c = 0u32;
    cdf.push(0);
    for &f in freqs {
        c = c.wrapping_add(f);
        cdf.push(c);
    }
    cdf
}

/// Encode a whole sequence under one static distribution given as float32 probabilities.
pub fn encode_static(symbols: &[u32], probs: &[f32], precision: u32) -> Result<Vec<u8>> {
    let freqs = quant::quantize_probs_vec(probs, precision)?;
    encode_static_freqs(symbols, &freqs)
}

/// Encode a whole sequence under one static integer distribution (total `1..=2^24`).
pub fn encode_static_freqs(symbols: &[u32], freqs: &[u32]) -> Result<Vec<u8>> {
    let mut enc = RangeEncoder::new();
    enc.out.reserve(symbols.len() / 2);
    enc.encode_all_freqs(symbols, freqs)?;
    Ok(enc.finish())
}

impl RangeEncoder {
    /// Append `symbols`, all under one static integer distribution (total `1..=2^24`).
    pub fn encode_all_freqs(&mut self, symbols: &[u32], freqs: &[u32]) -> Result<()> {
        let total = quant::check_freqs(freqs)?;
        let cdf = freqs_to_cdf(freqs);
        let pow2 = total.is_power_of_two();
        let shift = total.trailing_zeros();
        for &s in symbols {
            let (a, b) = match (cdf.get(s as usize), cdf.get(s as usize + 1)) {
                (Some(&a), Some(&b)) if b > a => (a, b),
                _ => {
                    return Err(MmzError::InvalidArgument(format!(
                        "symbol {s} is outside the alphabet of {} or has zero frequency",
                        freqs.len()
                    )))
                }
            };
            if pow2 {
                self.put_pow2(a, b - a, shift);
            } else {
                self.put(self.range / total as u64, a, b - a);
            }
        }
        Ok(())
    }

    /// Append `symbols`, all under one static float32 distribution.
    pub fn encode_all_probs(
        &mut self,
        symbols: &[u32],
        probs: &[f32],
        precision: u32,
    ) -> Result<()> {
        let freqs = quant::quantize_probs_vec(probs, precision)?;
        self.encode_all_freqs(symbols, &freqs)
    }

    /// A copy of the bytes [`RangeEncoder::finish`] would return now; the encoder stays usable.
    pub fn snapshot(&self) -> Vec<u8> {
        RangeEncoder {
            low: self.low,
            range: self.range,
            out: self.out.clone(),
            scratch: Vec::new(),
        }
        .finish()
    }
}

impl RangeDecoder {
    /// Decode `n` symbols under one static integer distribution.
    pub fn decode_all_freqs(&mut self, n: usize, freqs: &[u32]) -> Result<Vec<u32>> {
        quant::check_freqs(freqs)?;
        let cdf = freqs_to_cdf(freqs);
        let mut out = Vec::with_capacity(n.min(1 << 24));
        for _ in 0..n {
            out.push(self.decode_cdf_unchecked(&cdf)?);
        }
        Ok(out)
    }

    /// Decode `n` symbols under one static float32 distribution.
    pub fn decode_all_probs(
        &mut self,
        n: usize,
        probs: &[f32],
        precision: u32,
    ) -> Result<Vec<u32>> {
        let freqs = quant::quantize_probs_vec(probs, precision)?;
        self.decode_all_freqs(n, &freqs)
    }
}

/// Decode `n` symbols coded by [`encode_static`] with the same probabilities.
pub fn decode_static(data: &[u8], n: usize, probs: &[f32], precision: u32) -> Result<Vec<u32>> {
    let freqs = quant::quantize_probs_vec(probs, precision)?;
    decode_static_freqs(data, n, &freqs)
}

/// Decode `n` symbols coded by [`encode_static_freqs`].
pub fn decode_static_freqs(data: &[u8], n: usize, freqs: &[u32]) -> Result<Vec<u32>> {
    RangeDecoder::new(data.to_vec()).decode_all_freqs(n, freqs)
}

/// Adaptive counting model: every symbol starts with count 1; each coded
/// symbol adds `INCREMENT`; when the total exceeds `limit` every count becomes
/// `(c + 1) / 2`. Cumulative counts come from a Fenwick tree (O(log V)).
#[derive(Clone, Debug)]
pub struct AdaptiveModel {
    counts: Vec<u32>,
    tree: Vec<u32>, // 1-based Fenwick tree, tree[0] unused
    total: u32,
    limit: u32,
    top_step: usize,
}

impl AdaptiveModel {
    /// Count added per coded symbol.
    pub const INCREMENT: u32 = 24;

    /// A fresh model for an alphabet of `v` symbols (2..=65536).
    pub fn new(v: usize) -> Result<Self> {
        if !(2..=quant::MAX_ALPHABET).contains(&v) {
            return Err(MmzError::InvalidArgument(format!(
                "alphabet size must be in 2..={}, got {v}",
                quant::MAX_ALPHABET
            )));
        }
        let limit = (1u32 << 16).max(8 * v as u32);
        let mut m = AdaptiveModel {
            counts: vec![1; v],
            tree: vec![0; v + 1],
            total: v as u32,
            limit,
            top_step: 1 << (usize::BITS - 1 - v.leading_zeros()),
        };
        m.rebuild();
        Ok(m)
    }

    fn rebuild(&mut self) {
        self.tree.iter_mut().for_each(|t| *t = 0);
        for (i, &c) in self.counts.iter().enumerate() {
            if let Some(t) = self.tree.get_mut(i + 1) {
                *t += c;
            }
        }
        let n = self.counts.len();
        for i in 1..=n {
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let ti = self.tree.get(i).copied().unwrap_or(0);
                if let Some(t) = self.tree.get_mut(j) {
                    *t += ti;
                }
            }
        }
        self.total = self.counts.iter().sum();
    }

    fn cum(&self, s: usize) -> u32 {
        let mut i = s;
        let mut acc = 0;
        while i > 0 {
            acc += self.tree.get(i).copied().unwrap_or(0);
            i &= i - 1;
        }
        acc
    }

    /// `(symbol, start, freq)` for a target `q < total`.
    fn find(&self, q: u32) -> Result<(u32, u32, u32)> {
        let n = self.counts.len();
        let mut pos = 0usize;
        let mut rem = q;
        let mut step = self.top_step;
        while step > 0 {
            let nxt = pos + step;
            if nxt <= n {
                let t = self.tree.get(nxt).copied().unwrap_or(u32::MAX);
                if t <= rem {
                    pos = nxt;
                    rem -= t;
                }
            }
            step >>= 1;
        }
        let f = self
            .counts
            .get(pos)
            .copied()
            .ok_or_else(|| corrupt("adaptive model lookup"))?;
        Ok((pos as u32, q - rem, f))
    }

    fn update(&mut self, s: usize) {
        if let Some(c) = self.counts.get_mut(s) {
            *c += Self::INCREMENT;
        } else {
            return;
        }
        self.total += Self::INCREMENT;
        if self.total > self.limit {
            self.counts.iter_mut().for_each(|c| *c = c.div_ceil(2));
            self.rebuild();
        } else {
            let mut i = s + 1;
            while let Some(t) = self.tree.get_mut(i) {
                *t += Self::INCREMENT;
                i += i & i.wrapping_neg();
            }
        }
    }
}

/// Encode a whole sequence with a fresh [`AdaptiveModel`] over `v` symbols.
pub fn encode_adaptive(symbols: &[u32], v: usize) -> Result<Vec<u8>> {
    let mut model = AdaptiveModel::new(v)?;
    let mut enc = RangeEncoder::new();
    for &s in symbols {
        let su = s as usize;
        let freq = model
            .counts
            .get(su)
            .copied()
            .ok_or_else(|| bad_symbol(s, v))?;
        let start = model.cum(su);
        enc.put(enc.range / model.total as u64, start, freq);
        model.update(su);
    }
    Ok(enc.finish())
}

/// Decode `n` symbols coded by [`encode_adaptive`].
pub fn decode_adaptive(data: &[u8], n: usize, v: usize) -> Result<Vec<u32>> {
    let mut model = AdaptiveModel::new(v)?;
    let mut dec = RangeDecoder::new(data.to_vec());
    let mut out = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let s = dec.decode_with(model.total, |q| model.find(q))?;
        model.update(s as usize);
        out.push(s);
    }
    Ok(out)
}

/// Decode `out.len()` symbols, symbol `i` under row `i` of `rows` (`v` floats
/// each) with decoder `decs[i % decs.len()]`: one decoder for the rows of one
/// stream, or B decoders for one lockstep step of B streams. The same symbols
/// as calling [`RangeDecoder::decode_probs`] in that order. For 256-entry rows
/// on AVX-512 the rows' preparation runs as a software pipeline: while row `i`
/// is searched, row `i + 1` gets stage 3, row `i + 2` stage 2 and row `i + 3`
/// stage 1 (see [`quant::RowPrep`]); none of that depends on the coded bits,
/// so the CPU overlaps the chains. On error returns how many symbols were
/// decoded before it. `precision`, `v` and the shapes must be checked by the caller.
pub(crate) fn decode_rows_pipelined(
    decs: &mut [RangeDecoder],
    rows: &[f32],
    v: usize,
    precision: u32,
    out: &mut [u32],
) -> std::result::Result<(), (usize, MmzError)> {
    let n = out.len();
    let nd = decs.len().max(1);
    let mut scratch = Vec::new();
    let k = quant::Kernel::best();
    let row = |i: usize| rows.get(i * v..(i + 1) * v);
    let missing = |i: usize| {
        (
            i,
            MmzError::InvalidArgument("fewer rows than symbols".into()),
        )
    };
    if v != quant::SMALL || !quant::prep_stages(k) {
        for (i, o) in out.iter_mut().enumerate() {
            let (p, d) = (
                row(i).ok_or_else(|| missing(i))?,
                decs.get_mut(i % nd).ok_or_else(|| missing(i))?,
            );
            *o = d
                .decode_probs(p, precision, &mut scratch)
                .map_err(|e| (i, e))?;
        }
        return Ok(());
    }
    let mut ring: [quant::RowPrep; 4] = Default::default();
    // Fill the pipeline: row 0 fully, row 1 to stage 2, row 2 to stage 1.
    for (i, prep) in ring.iter_mut().enumerate().take(3.min(n)) {
        let p = row(i).ok_or_else(|| missing(i))?;
        quant::prep_stage1(p, prep);
        if i < 2 {
            quant::prep_stage2(p, precision, prep).map_err(|e| (0, e))?;
        }
        if i < 1 {
            quant::prep_stage3(precision, prep).map_err(|e| (0, e))?;
        }
    }
    for i in 0..n {
        let p = row(i).ok_or_else(|| missing(i))?;
        let [r0, r1, r2, r3] = &mut ring;
        // Row j lives in slot j % 4; rotate the four borrows instead of the data.
        let (now, s3, s2, s1) = match i % 4 {
            0 => (r0, r1, r2, r3),
            1 => (r1, r2, r3, r0),
            2 => (r2, r3, r0, r1),
            _ => (r3, r0, r1, r2),
        };
        let d = decs.get_mut(i % nd).ok_or_else(|| missing(i))?;
        let o = out.get_mut(i).ok_or_else(|| missing(i))?;
        *o = d
            .decode_prepared(k, now, p, precision, &mut scratch)
            .map_err(|e| (i, e))?;
        if i + 1 < n {
            quant::prep_stage3(precision, s3).map_err(|e| (i + 1, e))?;
        }
        if i + 2 < n {
            quant::prep_stage2(row(i + 2).ok_or_else(|| missing(i + 2))?, precision, s2)
                .map_err(|e| (i + 1, e))?;
        }
        if i + 3 < n {
            quant::prep_stage1(row(i + 3).ok_or_else(|| missing(i + 3))?, s1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Carries seen by the encoder (checks that tests reach the carry path).
    pub(super) static CARRIES: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    fn lcg(state: &mut u64) -> u32 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 33) as u32
    }

    #[test]
    fn roundtrip_probs_rows() {
        let mut st = 7u64;
        let v = 37;
        let mut rows = Vec::new();
        let mut syms = Vec::new();
        let mut enc = RangeEncoder::new();
        for _ in 0..5000 {
            let row: Vec<f32> = (0..v)
                .map(|_| (lcg(&mut st) % 1000) as f32 / 1000.0)
                .collect();
            let s = lcg(&mut st) % v as u32;
            enc.encode_probs(s, &row, 16).unwrap();
            rows.push(row);
            syms.push(s);
        }
        let data = enc.finish();
        let mut dec = RangeDecoder::new(data);
        let mut scratch = Vec::new();
        for (row, &s) in rows.iter().zip(&syms) {
            assert_eq!(dec.decode_probs(row, 16, &mut scratch).unwrap(), s);
        }
    }

    #[test]
    fn carries_and_skew() {
        // Alternate near-certain and near-impossible symbols to force long 0xFF runs and carries.
        let freqs = [1u32, (1 << 24) - 2, 1];
        let mut st = 3u64;
        let syms: Vec<u32> = (0..20000)
            .map(|i| {
                if i % 97 == 0 {
                    [0, 2][(lcg(&mut st) & 1) as usize]
                } else {
                    1
                }
            })
            .collect();
        let before = CARRIES.load(std::sync::atomic::Ordering::Relaxed);
        let data = encode_static_freqs(&syms, &freqs).unwrap();
        assert!(
            CARRIES.load(std::sync::atomic::Ordering::Relaxed) > before,
            "no carry exercised"
        );
        assert_eq!(
            decode_static_freqs(&data, syms.len(), &freqs).unwrap(),
            syms
        );
    }

    #[test]
    fn adaptive_roundtrip() {
        let mut st = 11u64;
        for v in [2usize, 3, 256, 1000, 65536] {
            let syms: Vec<u32> = (0..20000)
                .map(|_| (lcg(&mut st) % 7).min(v as u32 - 1) * ((v as u32 - 1) / 7).max(1))
                .collect();
            let data = encode_adaptive(&syms, v).unwrap();
            assert_eq!(
                decode_adaptive(&data, syms.len(), v).unwrap(),
                syms,
                "v={v}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut st = 5u64;
        let probs: Vec<f32> = (0..300).map(|i| 1.0 / (1 + i) as f32).collect();
        let freqs = quant::quantize_probs_vec(&probs, 24).unwrap();
        for len in 0..200 {
            let data: Vec<u8> = (0..len).map(|_| lcg(&mut st) as u8).collect();
            let _ = decode_static_freqs(&data, 500, &freqs);
            let _ = decode_adaptive(&data, 500, 300);
            let mut d = RangeDecoder::new(data);
            let mut sc = Vec::new();
            for _ in 0..100 {
                if d.decode_probs(&probs, 24, &mut sc).is_err() {
                    break;
                }
            }
        }
    }
}
