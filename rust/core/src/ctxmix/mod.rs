//! The context-mixing engine (codec id 2, `cm`).
//!
//! Bytes outside a hint's sample region go through [`bytes::ByteModel`], an
//! lpaq-class bitwise model (hashed order-1..6 and word contexts, match model,
//! gated mixer, APM stages). Whole samples inside the region (images: hint
//! width > 0; audio: width == 0) go through [`sample::SampleModel`], which
//! codes each sample's residual against a blend of integer predictors. All
//! model arithmetic is integer, so encoder and decoder agree on every CPU.
//!
//! Payload: one version byte, then the binary arithmetic code. Version 5 is
//! written for binary chunks and version 3 for every other modality (for which
//! versions 3 to 5 are the same model); versions 1 to 5 are read. Version 2 changes the byte model
//! ([`bytes_v1`] is frozen, [`bytes`] is versions 2 and 3) and the audio sample
//! predictor (an NLMS cascade with stereo decorrelation, see `sample.rs`, which
//! takes the version). Version 3 changes the byte model at levels 4-9 only
//! (gated by `bytes::ByteParams::for_version`: FASTA/FASTQ contexts for gene
//! chunks, young-counter inputs, a fourth mixer weight set, an order-1 APM at
//! levels 4-6); samples code as in version 2. Version 4 changes the hashed
//! contexts of binary chunks only (sparse, 32-bit field and alignment contexts
//! at every level). Version 5 adds, again for binary chunks only, two record
//! contexts keyed by a record length detected on the fly (`record.rs`).
//! docs/FORMAT.md lists the differences.
//!
//! Memory bound per chunk (tables scale down for small chunks): levels 1-3
//! about 25 MiB (v5 binary: 30 MiB), 4-6 about 60 MiB (v1 payloads: 120 MiB; v3 gene chunks: 75 MiB;
//! v4/v5 binary chunks: 90 MiB), 7-9 about 200 MiB (v3 gene and v4/v5 binary chunks: 230 MiB),
//! plus the sample model
//! for image/audio chunks (<= 64 MiB of counters at levels <= 6, 4 bytes per
//! sample, and for images 72 bytes per row sample) and ~2x the chunk.

pub mod bytes;
pub mod bytes_v1;
pub mod mix2;
pub mod prim;
pub mod record;
pub mod sample;

use crate::bitcoder::{BitDecoder, BitEncoder};
use crate::error::{MmzError, Result};
use crate::hint::{Hint, Modality};
use sample::SampleModel;

/// Newest payload version: [`compress`] writes it for binary chunks (see
/// [`version_for`]); [`decompress`] reads versions 1 to this one.
const VERSION: u8 = 5;

/// The payload version [`compress`] writes for a chunk of `modality`: 5 for
/// binary chunks, 3 for the rest (versions 4 and 5 only change binary chunks,
/// so the other modalities keep their version-3 bytes).
pub fn version_for(modality: Modality) -> u8 {
    if modality == Modality::Binary {
        VERSION
    } else {
        3
    }
}

/// The byte model of a payload version.
enum Bytes {
    V1(Box<bytes_v1::ByteModel>),
    V2(Box<bytes::ByteModel>),
}

impl Bytes {
    fn new(version: u8, level: u8, len: usize, modality: Modality) -> Self {
        if version == 1 {
            Bytes::V1(Box::new(bytes_v1::ByteModel::new(bytes_v1::ByteParams::for_level(level, len), len)))
        } else {
            Bytes::V2(Box::new(bytes::ByteModel::new(bytes::ByteParams::for_version(version, level, len, modality), len)))
        }
    }
    #[inline(always)]
    fn code<I: Io>(&mut self, io: &mut I, byte: u8) -> u8 {
        match self {
            Bytes::V1(m) => m.code(io, byte),
            Bytes::V2(m) => m.code(io, byte),
        }
    }
    #[inline(always)]
    fn push(&mut self, b: u8) {
        match self {
            Bytes::V1(m) => m.push(b),
            Bytes::V2(m) => m.push(b),
        }
    }
}

/// One coded binary decision: the encoder codes `bit`, the decoder returns the decoded bit.
pub trait Io {
    /// True when the models are told the byte being coded before its bits are
    /// coded (encoding): they may then prefetch exactly the memory the byte's
    /// later bits will touch. Timing only: the probabilities do not depend on it.
    const KNOWN: bool = false;
    /// True when the sample model should describe each decision's value sets
    /// ([`Split`]) through [`Io::bit_split`] (the neural sample-mixed form); the
    /// CM codec's own coders leave it false, and then no split is computed.
    const SPLITS: bool = false;
    /// Code a bit with P(1) = `p16` / 65536 (`1..=65535`); returns the actual bit.
    fn bit(&mut self, p16: u32, bit: u32) -> u32;
    /// A sample-model decision with the residual values each outcome stands
    /// for (called instead of [`Io::bit`] only when [`Io::SPLITS`] is true).
    #[inline(always)]
    fn bit_split(&mut self, p16: u32, bit: u32, _split: &Split) -> u32 {
        self.bit(p16, bit)
    }
}

/// The residual values a binary decision of the sample model separates: the
/// outcome 1 stands for the residuals `e` in `one`, 0 for those in `zero`
/// (inclusive ranges inside `[-2^(bits-1), 2^(bits-1))`; empty when the first
/// bound exceeds the second). For the zero flag (`nz`), `zero` is `(0, 0)` and
/// 1 stands for every other residual. Residual `e` codes the sample whose
/// offset from the smallest sample value is `(p_off + e) mod 2^bits`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Split {
    /// Decision id of the sample model (0 zero flag, 1 sign, 2.. exponent, 32.. mantissa).
    pub did: usize,
    /// The sample's activity bucket (0..=63).
    pub act: usize,
    /// Offset of the prediction from the smallest sample value.
    pub p_off: i64,
    /// Sample width in bits.
    pub bits: u32,
    /// Whether this is the zero flag (1 = every residual but 0).
    pub nz: bool,
    /// Residuals coded by a 1.
    pub one: (i64, i64),
    /// Residuals coded by a 0.
    pub zero: (i64, i64),
}

struct Enc(BitEncoder);
impl Io for Enc {
    const KNOWN: bool = true;
    #[inline(always)]
    fn bit(&mut self, p16: u32, bit: u32) -> u32 {
        self.0.encode(bit, p16);
        bit
    }
}

struct Dec<'a>(BitDecoder<'a>);
impl Io for Dec<'_> {
    #[inline(always)]
    fn bit(&mut self, p16: u32, _bit: u32) -> u32 {
        self.0.decode_select(p16)
    }
}

/// The usable sample region of a hint: (start, samples, bytes per sample, big endian, signed).
pub(crate) struct Region {
    pub(crate) start: usize,
    pub(crate) count: usize,
    pub(crate) bps: usize,
    big_endian: bool,
    pub(crate) signed: bool,
}

pub(crate) fn region(hint: &Hint, len: usize) -> Option<Region> {
    let l = hint.layout?;
    let bps = l.bytes_per_sample as usize;
    let start = l.data_start as usize;
    let end = (l.data_end as usize).min(len);
    if !(1..=3).contains(&bps) || l.channels == 0 || start >= end {
        return None;
    }
    if (l.width as u64) * (l.channels as u64) > 1 << 20 {
        return None;
    }
    let count = (end - start) / bps;
    if count == 0 {
        return None;
    }
    Some(Region { start, count, bps, big_endian: l.big_endian, signed: l.signed })
}

fn read_sample(b: &[u8], r: &Region) -> i32 {
    let mut u: u32 = 0;
    if r.big_endian {
        for &x in b {
            u = (u << 8) | x as u32;
        }
    } else {
        for &x in b.iter().rev() {
            u = (u << 8) | x as u32;
        }
    }
    let bits = 8 * r.bps as u32;
    if r.signed {
        ((u << (32 - bits)) as i32) >> (32 - bits)
    } else {
        u as i32
    }
}

fn write_sample(v: i32, r: &Region, out: &mut [u8; 3]) {
    let u = v as u32;
    for (j, o) in out.iter_mut().enumerate().take(r.bps) {
        let shift = if r.big_endian { 8 * (r.bps - 1 - j) } else { 8 * j };
        *o = (u >> shift) as u8;
    }
}

fn run<I: Io>(io: &mut I, data: Option<&[u8]>, len: usize, level: u8, hint: &Hint, version: u8) -> Vec<u8> {
    let mut bm = Bytes::new(version, level, len, hint.modality);
    let mut reg = region(hint, len).map(|r| {
        let l = hint.layout.unwrap_or_default();
        let sm = SampleModel::new(&l, r.count, level, version);
        (r, sm)
    });
    let mut out = Vec::with_capacity(len);
    let mut pos = 0usize;
    while pos < len {
        if let Some((r, sm)) = reg.as_mut() {
            if pos >= r.start && pos < r.start + r.count * r.bps {
                let i = (pos - r.start) / r.bps;
                let known = data.and_then(|d| d.get(pos..pos + r.bps)).map(|b| read_sample(b, r)).unwrap_or(0);
                let v = sm.code(io, i, known);
                let mut buf = [0u8; 3];
                write_sample(v, r, &mut buf);
                for &b in &buf[..r.bps] {
                    out.push(b);
                    bm.push(b);
                }
                pos += r.bps;
                continue;
            }
        }
        let known = data.and_then(|d| d.get(pos)).copied().unwrap_or(0);
        out.push(bm.code(io, known));
        pos += 1;
    }
    out
}

/// Compress a chunk at `level` (1..=9) with the given hint.
pub fn compress(data: &[u8], level: u8, hint: &Hint) -> Result<Vec<u8>> {
    compress_version(data, level, hint, version_for(hint.modality))
}

/// Compress a chunk as payload `version` (1..=5) rather than [`version_for`]'s: every
/// version decodes, and on some small binary chunks the text context lists of versions
/// 2-3 code smaller than version 5's binary ones, so a writer may try both.
pub fn compress_version(data: &[u8], level: u8, hint: &Hint, version: u8) -> Result<Vec<u8>> {
    if !(1..=VERSION).contains(&version) {
        return Err(MmzError::InvalidArgument(format!("cm payload version {version} outside 1..={VERSION}")));
    }
    let mut enc = Enc(BitEncoder::with_capacity(data.len() / 2 + 16));
    let _ = run(&mut enc, Some(data), data.len(), level, hint, version);
    let mut out = vec![version];
    out.extend_from_slice(&enc.0.finish());
    Ok(out)
}

/// Decompress `raw_len` bytes coded by [`compress`] with the same level and hint.
pub fn decompress(payload: &[u8], raw_len: usize, level: u8, hint: &Hint) -> Result<Vec<u8>> {
    let (&ver, body) = payload.split_first().ok_or_else(|| MmzError::Truncated("empty cm payload".into()))?;
    if !(1..=VERSION).contains(&ver) {
        return Err(MmzError::corrupt("cm payload", format!("unknown engine version {ver}")));
    }
    let mut dec = Dec(BitDecoder::new(body));
    let out = run(&mut dec, None, raw_len, level, hint, ver);
    if dec.0.overrun() > 8 {
        return Err(MmzError::Truncated("cm payload ended early".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::SampleLayout;

    fn rt(data: &[u8], level: u8, hint: &Hint) -> usize {
        let c = compress(data, level, hint).unwrap();
        let d = decompress(&c, data.len(), level, hint).unwrap();
        assert_eq!(d, data);
        c.len()
    }

    #[test]
    fn every_payload_version_can_be_written_and_decodes() {
        let data: Vec<u8> = b"\x7fELF\x02\x01\x01 small binary header, strings: libfoo.so.1 GLIBC_2.34 "
            .iter()
            .cycle()
            .take(3000)
            .copied()
            .collect();
        for modality in [Modality::Binary, Modality::Text] {
            let hint = Hint::bytes(modality);
            for version in 1..=VERSION {
                for level in [1u8, 5, 9] {
                    let c = compress_version(&data, level, &hint, version).unwrap();
                    assert_eq!(c[0], version);
                    assert_eq!(decompress(&c, data.len(), level, &hint).unwrap(), data);
                }
            }
            assert!(compress_version(&data, 5, &hint, 0).is_err());
            assert!(compress_version(&data, 5, &hint, VERSION + 1).is_err());
        }
    }

    #[test]
    fn bytes_roundtrip() {
        let mut s = 1u32;
        let mut v = Vec::new();
        for i in 0..20000u32 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.push(if i % 3 == 0 { (s >> 24) as u8 } else { b"hello world "[(i % 12) as usize] });
        }
        for level in [1, 5, 9] {
            rt(&v, level, &Hint::bytes(Modality::Text));
        }
        rt(&[], 5, &Hint::bytes(Modality::Text));
        rt(&[7], 5, &Hint::bytes(Modality::Text));
        let mut fq = Vec::new();
        for r in 0..300u32 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            fq.extend_from_slice(format!("@read{r} lane:{}\n", s >> 28).as_bytes());
            fq.extend((0..40).map(|i| b"ACGT"[((s >> (i % 24)) & 3) as usize]));
            fq.extend_from_slice(b"\n+\n");
            fq.extend((0..40).map(|i| b"#5?@AI"[((s >> (i % 20)) % 6) as usize]));
            fq.push(b'\n');
        }
        fq.extend_from_slice(b">chr1 test\nACGTacgtNNNNacgt\nTTGA");
        for level in [1, 5, 9] {
            rt(&fq, level, &Hint::bytes(Modality::Gene));
        }
        let z = vec![0u8; 100_000];
        assert!(rt(&z, 5, &Hint::bytes(Modality::Binary)) < 200);
    }

    #[test]
    fn versions() {
        let v: Vec<u8> = b"version test, version test, version test".repeat(50);
        let h = Hint::bytes(Modality::Text);
        let c = compress(&v, 5, &h).unwrap();
        assert_eq!(c[0], 3);
        let mut bad = c.clone();
        bad[0] = VERSION + 1;
        assert!(decompress(&bad, v.len(), 5, &h).is_err());
        // The same body read as version 1 runs the v1 model: it must not come out as the input.
        bad[0] = 1;
        assert!(decompress(&bad, v.len(), 5, &h).map(|d| d != v).unwrap_or(true));
        // Versions 4 and 5 change binary chunks only: a text body read as either decodes the same.
        for same in [4, 5] {
            bad[0] = same;
            assert_eq!(decompress(&bad, v.len(), 5, &h).unwrap(), v);
        }
        // Binary chunks are written as version 5, and their body read as version 4 is not the input.
        let hb = Hint::bytes(Modality::Binary);
        let mut vb = v.clone();
        vb.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
        for level in [1, 5, 9] {
            let mut cb = compress(&vb, level, &hb).unwrap();
            assert_eq!(cb[0], 5);
            assert_eq!(decompress(&cb, vb.len(), level, &hb).unwrap(), vb);
            cb[0] = 4;
            assert!(decompress(&cb, vb.len(), level, &hb).map(|d| d != vb).unwrap_or(true));
        }
    }

    #[test]
    fn samples_roundtrip() {
        let mut img = vec![1u8, 2, 3];
        for y in 0..40u32 {
            for x in 0..50u32 {
                for c in 0..3u32 {
                    img.push(((x * 3 + y * 2 + c * 40) & 255) as u8);
                }
            }
        }
        img.push(9);
        let l = SampleLayout { channels: 3, bytes_per_sample: 1, big_endian: false, signed: false, width: 50, data_start: 3, data_end: 3 + 6000, first_sample: 7 };
        rt(&img, 5, &Hint { modality: Modality::Image, layout: Some(l) });
        let mut au = vec![0u8; 10];
        for t in 0..5000i32 {
            let v = ((t * 37) % 2000 - 1000) as i16 * 20;
            au.extend_from_slice(&v.to_le_bytes());
        }
        au.push(1);
        for (ch, be, bps) in [(2u8, false, 2u8), (1, true, 2), (1, false, 3), (2, false, 1)] {
            let l = SampleLayout { channels: ch, bytes_per_sample: bps, big_endian: be, signed: bps > 1, width: 0, data_start: 10, data_end: au.len() as u32 - 1, first_sample: 1 };
            rt(&au, 5, &Hint { modality: Modality::Audio, layout: Some(l) });
        }
    }
}
