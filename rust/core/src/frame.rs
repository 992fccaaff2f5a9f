//! The `.mmz` frame format (version 1; byte layout in docs/FORMAT.md).
//!
//! A frame is a header, chunk records (each decodable alone: own header,
//! hint, payload checksum and raw checksum) and a trailer carrying the
//! original length, the chunk table and a whole-content checksum. The writer
//! never seeks, so stdin -> stdout streaming works; concatenated frames decode
//! to the concatenation of their contents.

use crate::checksum::{xxh3, xxh3_32, StreamHash};
use crate::codec::{compress_chunk, decompress_chunk, CodecId, MAX_CHUNK};
use crate::error::{MmzError, Result};
use crate::hint::{Hint, Modality, HINT_BYTES};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = [0x89, b'M', b'M', b'Z'];
/// Last four bytes of every frame.
pub const END_MAGIC: [u8; 4] = [b'Z', b'M', b'M', 0x89];
/// The version of the full frame this module writes and parses.
pub const FORMAT_VERSION: u8 = 1;
/// The newest format version this build reads (2 = the compact frame, `crate::compact`).
pub const NEWEST_VERSION: u8 = crate::compact::COMPACT_VERSION;
/// Size of the frame header.
pub const FRAME_HEADER_LEN: usize = 84;
/// Size of a chunk record header (including the hint).
pub const CHUNK_HEADER_LEN: usize = 64;
/// Size of the fixed part of the trailer (before the chunk table).
pub const TRAILER_FIXED_LEN: usize = 32;
/// Size of the trailer's closing part (length, checksum, end magic).
pub const TRAILER_TAIL_LEN: usize = 12;
/// Size of one chunk-table entry.
pub const TABLE_ENTRY_LEN: usize = 16;
/// Record tag of a chunk.
pub const TAG_CHUNK: u8 = b'C';
/// Record tag of the trailer.
pub const TAG_TRAILER: u8 = b'T';
/// Largest chunk count a trailer may announce (bounds allocation on bad input).
pub const MAX_CHUNKS: u32 = 1 << 26;

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// The frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// Modality detected for the whole input (informational; chunks carry their own).
    pub modality: Modality,
    /// Compression level 1..=9.
    pub level: u8,
    /// Reversible transform applied before chunking (0 = none; ids owned by `mmz.transform`).
    pub transform: u8,
    /// Codec requested by the user (informational; chunks record the codec used).
    pub codec: CodecId,
    /// Nominal raw bytes per chunk.
    pub chunk_size: u32,
    /// sha256 of the model weights file, if a model was used.
    pub model_id: Option<[u8; 32]>,
    /// sha256 of the tokenizer model, if one was used.
    pub tokenizer_id: Option<[u8; 32]>,
}

impl FrameHeader {
    /// Serialize (84 bytes, checksum included).
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT_VERSION;
        b[5] = (self.model_id.is_some() as u8) | ((self.tokenizer_id.is_some() as u8) << 1);
        b[6] = self.modality as u8;
        b[7] = self.level;
        b[8] = self.transform;
        b[9] = self.codec as u8;
        b[12..16].copy_from_slice(&self.chunk_size.to_le_bytes());
        if let Some(m) = self.model_id {
            b[16..48].copy_from_slice(&m);
        }
        if let Some(t) = self.tokenizer_id {
            b[48..80].copy_from_slice(&t);
        }
        let c = xxh3_32(&b[..80]);
        b[80..84].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Parse and validate a header from the first 84 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 4 || b[0..4] != MAGIC {
            return Err(MmzError::NotMmz("missing magic bytes 89 4D 4D 5A".into()));
        }
        if b.len() < 5 {
            return Err(MmzError::Truncated("frame header".into()));
        }
        if b[4] > NEWEST_VERSION || b[4] == 0 {
            return Err(MmzError::UnsupportedVersion { found: b[4], supported: NEWEST_VERSION });
        }
        if b[4] != FORMAT_VERSION {
            return Err(MmzError::InvalidArgument(format!("format version {} is a compact frame", b[4])));
        }
        if b.len() < FRAME_HEADER_LEN {
            return Err(MmzError::Truncated("frame header".into()));
        }
        if u32_at(b, 80) != xxh3_32(&b[..80]) {
            return Err(MmzError::corrupt("frame header", "checksum mismatch"));
        }
        let flags = b[5];
        let id_at = |i: usize| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&b[i..i + 32]);
            a
        };
        Ok(FrameHeader {
            modality: Modality::from_id(b[6])?,
            level: b[7],
            transform: b[8],
            codec: CodecId::from_id(b[9])?,
            chunk_size: u32_at(b, 12),
            model_id: (flags & 1 != 0).then(|| id_at(16)),
            tokenizer_id: (flags & 2 != 0).then(|| id_at(48)),
        })
    }
}

/// Header of one chunk record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Codec that produced the payload.
    pub codec: CodecId,
    /// Level the payload was coded at.
    pub level: u8,
    /// Decoded length.
    pub raw_len: u32,
    /// Payload length.
    pub payload_len: u32,
    /// XXH3-64 of the decoded bytes.
    pub raw_hash: u64,
    /// XXH3-64 of the payload.
    pub payload_hash: u64,
    /// What the codec was told about the chunk.
    pub hint: Hint,
}

impl ChunkHeader {
    /// Serialize (64 bytes, checksum included).
    pub fn to_bytes(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0] = TAG_CHUNK;
        b[1] = self.codec as u8;
        b[2] = self.level;
        b[4..8].copy_from_slice(&self.raw_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        b[12..20].copy_from_slice(&self.raw_hash.to_le_bytes());
        b[20..28].copy_from_slice(&self.payload_hash.to_le_bytes());
        b[28..28 + HINT_BYTES].copy_from_slice(&self.hint.to_bytes());
        let c = xxh3_32(&b[..60]);
        b[60..64].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Parse and validate a chunk header (64 bytes, starting with the tag).
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < CHUNK_HEADER_LEN {
            return Err(MmzError::Truncated("chunk header".into()));
        }
        if b[0] != TAG_CHUNK {
            return Err(MmzError::corrupt("chunk header", format!("bad record tag 0x{:02x}", b[0])));
        }
        if u32_at(b, 60) != xxh3_32(&b[..60]) {
            return Err(MmzError::corrupt("chunk header", "checksum mismatch"));
        }
        let h = ChunkHeader {
            codec: CodecId::from_id(b[1])?,
            level: b[2],
            raw_len: u32_at(b, 4),
            payload_len: u32_at(b, 8),
            raw_hash: u64_at(b, 12),
            payload_hash: u64_at(b, 20),
            hint: Hint::from_bytes(&b[28..28 + HINT_BYTES])?,
        };
        if h.raw_len as usize > MAX_CHUNK || h.payload_len as usize > MAX_CHUNK + 1024 {
            return Err(MmzError::corrupt("chunk header", "length out of range"));
        }
        Ok(h)
    }
}

/// A complete chunk record for `data` coded by `codec` as `payload`: the
/// 64-byte header (with the raw and payload checksums), then the payload.
pub fn chunk_record(data: &[u8], codec: CodecId, level: u8, hint: &Hint, payload: &[u8]) -> Vec<u8> {
    let header = ChunkHeader {
        codec,
        level,
        raw_len: data.len() as u32,
        payload_len: payload.len() as u32,
        raw_hash: xxh3(data),
        payload_hash: xxh3(payload),
        hint: *hint,
    };
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// Compress `data` into one complete chunk record (header + payload).
pub fn encode_chunk(data: &[u8], codec: CodecId, level: u8, hint: &Hint) -> Result<Vec<u8>> {
    let (used, payload) = compress_chunk(data, codec, level, hint)?;
    Ok(chunk_record(data, used, level, hint, &payload))
}

/// A CM chunk record written as CM payload `version` (a writer's alternative for
/// small chunks; see [`crate::codec::compress_cm_version`]).
pub fn encode_cm_chunk(data: &[u8], level: u8, hint: &Hint, version: u8) -> Result<Vec<u8>> {
    let (used, payload) = crate::codec::compress_cm_version(data, level, hint, version)?;
    Ok(chunk_record(data, used, level, hint, &payload))
}

/// Check the payload against `header` (length, checksum), decode it with
/// `decode`, and check the decoded bytes' checksum: damage is reported before
/// decoding, and no unverified byte is returned.
pub fn decode_chunk_with(
    header: &ChunkHeader,
    payload: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    if payload.len() != header.payload_len as usize {
        return Err(MmzError::Truncated("chunk payload".into()));
    }
    if xxh3(payload) != header.payload_hash {
        return Err(MmzError::corrupt("chunk payload", "checksum mismatch"));
    }
    let out = decode(payload)?;
    if xxh3(&out) != header.raw_hash {
        return Err(MmzError::corrupt("chunk data", "decoded bytes fail their checksum"));
    }
    Ok(out)
}

/// Verify and decode one chunk payload described by `header` (built-in codecs).
pub fn decode_chunk(header: &ChunkHeader, payload: &[u8]) -> Result<Vec<u8>> {
    decode_chunk_with(header, payload, |p| {
        decompress_chunk(p, header.raw_len as usize, header.codec, header.level, &header.hint)
    })
}

/// One entry of the trailer's chunk table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Offset of the chunk record from the start of the frame.
    pub offset: u64,
    /// Payload length.
    pub payload_len: u32,
    /// Decoded length.
    pub raw_len: u32,
}

/// The frame trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the original content (after the inverse transform).
    pub content_len: u64,
    /// XXH3-64 of the original content.
    pub content_hash: u64,
    /// Sum of the chunks' decoded lengths (the transformed stream).
    pub stream_len: u64,
    /// One entry per chunk, in order.
    pub chunks: Vec<ChunkEntry>,
}

impl Trailer {
    /// Total serialized length of a trailer with `n` chunks.
    pub fn len_for(n: usize) -> usize {
        TRAILER_FIXED_LEN + n * TABLE_ENTRY_LEN + TRAILER_TAIL_LEN
    }

    /// Serialize.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.chunks.len();
        let total = Self::len_for(n);
        let mut b = Vec::with_capacity(total);
        b.push(TAG_TRAILER);
        b.extend_from_slice(&[0, 0, 0]);
        b.extend_from_slice(&(n as u32).to_le_bytes());
        b.extend_from_slice(&self.content_len.to_le_bytes());
        b.extend_from_slice(&self.content_hash.to_le_bytes());
        b.extend_from_slice(&self.stream_len.to_le_bytes());
        for e in &self.chunks {
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.payload_len.to_le_bytes());
            b.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        b.extend_from_slice(&(total as u32).to_le_bytes());
        let c = xxh3_32(&b);
        b.extend_from_slice(&c.to_le_bytes());
        b.extend_from_slice(&END_MAGIC);
        b
    }

    /// Total trailer length announced by its fixed part (first 32 bytes).
    pub fn announced_len(fixed: &[u8]) -> Result<usize> {
        if fixed.len() < TRAILER_FIXED_LEN {
            return Err(MmzError::Truncated("frame trailer".into()));
        }
        if fixed[0] != TAG_TRAILER {
            return Err(MmzError::corrupt("frame trailer", format!("bad record tag 0x{:02x}", fixed[0])));
        }
        let n = u32_at(fixed, 4);
        if n > MAX_CHUNKS {
            return Err(MmzError::corrupt("frame trailer", "chunk count out of range"));
        }
        Ok(Self::len_for(n as usize))
    }

    /// Parse and validate a whole trailer.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let total = Self::announced_len(b)?;
        if b.len() < total {
            return Err(MmzError::Truncated("frame trailer".into()));
        }
        let b = &b[..total];
        let body = total - 8;
        if u32_at(b, body - 4) as usize != total || u32_at(b, body) != xxh3_32(&b[..body]) {
            return Err(MmzError::corrupt("frame trailer", "checksum mismatch"));
        }
        if b[total - 4..] != END_MAGIC {
            return Err(MmzError::corrupt("frame trailer", "missing end magic"));
        }
        let n = u32_at(b, 4) as usize;
        let chunks = (0..n)
            .map(|i| {
                let o = TRAILER_FIXED_LEN + i * TABLE_ENTRY_LEN;
                ChunkEntry { offset: u64_at(b, o), payload_len: u32_at(b, o + 8), raw_len: u32_at(b, o + 12) }
            })
            .collect();
        Ok(Trailer { content_len: u64_at(b, 8), content_hash: u64_at(b, 16), stream_len: u64_at(b, 24), chunks })
    }
}

/// What a frame records about its original content, for checking it after the inverse transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCheck {
    /// A full frame's trailer: the content length and XXH3-64.
    Full { len: u64, hash: u64 },
    /// A compact frame: the low 32 bits of the content's XXH3-64.
    Low32(u32),
}

impl ContentCheck {
    /// Whether `content` (after the inverse transform) is what the frame recorded.
    pub fn matches(&self, content: &[u8]) -> bool {
        match *self {
            ContentCheck::Full { len, hash } => content.len() as u64 == len && xxh3(content) == hash,
            ContentCheck::Low32(c) => xxh3(content) as u32 == c,
        }
    }
}

/// A decoded frame: its header, the decoded chunk stream and its content check.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// The frame header (for a compact frame: its fields, `chunk_size` = the chunk's length, no ids).
    pub header: FrameHeader,
    /// Concatenated decoded chunks (the content itself when `header.transform == 0`).
    pub stream: Vec<u8>,
    /// What the original content must match (already verified when `header.transform == 0`).
    pub content: ContentCheck,
}

/// Builds a frame in memory chunk by chunk (the Python layer streams the same
/// records to a file itself).
pub struct FrameWriter {
    out: Vec<u8>,
    entries: Vec<ChunkEntry>,
    stream_len: u64,
}

impl FrameWriter {
    /// Start a frame with `header`.
    pub fn new(header: &FrameHeader) -> Self {
        FrameWriter { out: header.to_bytes().to_vec(), entries: Vec::new(), stream_len: 0 }
    }

    /// Append an already encoded chunk record.
    pub fn push_record(&mut self, record: &[u8]) -> Result<()> {
        let h = ChunkHeader::parse(record)?;
        self.entries.push(ChunkEntry { offset: self.out.len() as u64, payload_len: h.payload_len, raw_len: h.raw_len });
        self.stream_len += h.raw_len as u64;
        self.out.extend_from_slice(record);
        Ok(())
    }

    /// Close the frame with the content length and checksum.
    pub fn finish(mut self, content_len: u64, content_hash: u64) -> Vec<u8> {
        let t = Trailer { content_len, content_hash, stream_len: self.stream_len, chunks: self.entries };
        self.out.extend_from_slice(&t.to_bytes());
        self.out
    }
}

/// Compress `data` into one frame with no transform, cutting it into
/// `chunk_size` pieces that all get `hint`'s modality.
pub fn compress_frame(data: &[u8], codec: CodecId, level: u8, modality: Modality, chunk_size: usize) -> Result<Vec<u8>> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK {
        return Err(MmzError::InvalidArgument(format!("chunk size {chunk_size} outside 1..={MAX_CHUNK}")));
    }
    let header = FrameHeader {
        modality,
        level,
        transform: 0,
        codec,
        chunk_size: chunk_size as u32,
        model_id: None,
        tokenizer_id: None,
    };
    let mut w = FrameWriter::new(&header);
    let hint = Hint::bytes(modality);
    for part in data.chunks(chunk_size) {
        w.push_record(&encode_chunk(part, codec, level, &hint)?)?;
    }
    Ok(w.finish(data.len() as u64, xxh3(data)))
}

/// Decode every frame in `data` (concatenated frames allowed). Frames without a
/// transform have their content checksum verified here; for transformed frames
/// the caller inverts the transform and checks `trailer.content_hash`.
pub fn decode_frames(data: &[u8]) -> Result<Vec<DecodedFrame>> {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    let mut index = 0usize;
    loop {
        let rest = &data[pos..];
        if rest.is_empty() && index > 0 {
            break;
        }
        let frame_start = pos;
        if rest.len() > 4 && rest[0..4] == MAGIC && rest[4] == crate::compact::COMPACT_VERSION {
            let d = crate::compact::decode_compact(rest).map_err(|e| annotate(e, index, None))?;
            pos += d.header.frame_len();
            let header = FrameHeader {
                modality: d.header.hint.modality,
                level: d.header.level,
                transform: d.header.transform,
                codec: d.header.codec,
                chunk_size: d.header.raw_len,
                model_id: None,
                tokenizer_id: None,
            };
            frames.push(DecodedFrame { header, stream: d.stream, content: ContentCheck::Low32(d.content_check) });
            index += 1;
            continue;
        }
        let header = FrameHeader::parse(rest).map_err(|e| annotate(e, index, None))?;
        pos += FRAME_HEADER_LEN;
        let mut stream = Vec::new();
        let mut hash = StreamHash::new();
        let mut chunk = 0usize;
        let mut entries = Vec::new();
        let trailer = loop {
            let tag = *data.get(pos).ok_or_else(|| annotate(MmzError::Truncated("record".into()), index, Some(chunk)))?;
            if tag == TAG_TRAILER {
                let t = Trailer::parse(&data[pos..]).map_err(|e| annotate(e, index, None))?;
                pos += Trailer::len_for(t.chunks.len());
                break t;
            }
            let h = ChunkHeader::parse(&data[pos..]).map_err(|e| annotate(e, index, Some(chunk)))?;
            let start = pos + CHUNK_HEADER_LEN;
            let end = start + h.payload_len as usize;
            let payload = data
                .get(start..end)
                .ok_or_else(|| annotate(MmzError::Truncated("chunk payload".into()), index, Some(chunk)))?;
            let out = decode_chunk(&h, payload).map_err(|e| annotate(e, index, Some(chunk)))?;
            entries.push(ChunkEntry { offset: (pos - frame_start) as u64, payload_len: h.payload_len, raw_len: h.raw_len });
            hash.update(&out);
            stream.extend_from_slice(&out);
            pos = end;
            chunk += 1;
        };
        if trailer.chunks != entries || trailer.stream_len != stream.len() as u64 {
            return Err(annotate(MmzError::corrupt("frame trailer", "chunk table disagrees with the chunks"), index, None));
        }
        if header.transform == 0 && (trailer.content_len != stream.len() as u64 || trailer.content_hash != hash.digest()) {
            return Err(annotate(MmzError::corrupt("frame content", "whole-content checksum mismatch"), index, None));
        }
        let content = ContentCheck::Full { len: trailer.content_len, hash: trailer.content_hash };
        frames.push(DecodedFrame { header, stream, content });
        index += 1;
    }
    Ok(frames)
}

/// Decode concatenated frames without transforms into their concatenated content.
pub fn decompress_frames(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for f in decode_frames(data)? {
        if f.header.transform != 0 {
            return Err(MmzError::InvalidArgument(format!(
                "frame uses transform {}; decode it through the mmz Python package",
                f.header.transform
            )));
        }
        out.extend_from_slice(&f.stream);
    }
    Ok(out)
}

/// Prefix an error with the frame and chunk it concerns.
fn annotate(e: MmzError, frame: usize, chunk: Option<usize>) -> MmzError {
    let place = match chunk {
        Some(c) => format!("frame {frame}, chunk {c}"),
        None => format!("frame {frame}"),
    };
    match e {
        MmzError::Corrupt { what, detail } => MmzError::Corrupt { what: format!("{place}: {what}"), detail },
        MmzError::Truncated(what) => MmzError::Truncated(format!("{place}: {what}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        b"mmz frames carry checksums; every chunk decodes alone.\n".repeat(300)
    }

    #[test]
    fn roundtrip_and_concatenation() {
        let data = sample();
        let a = compress_frame(&data, CodecId::Order2, 5, Modality::Text, 4096).unwrap();
        let b = compress_frame(b"", CodecId::Order2, 5, Modality::Binary, 4096).unwrap();
        assert_eq!(decompress_frames(&a).unwrap(), data);
        assert_eq!(decompress_frames(&b).unwrap(), b"");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        both.extend_from_slice(&a);
        let mut expect = data.clone();
        expect.extend_from_slice(&data);
        assert_eq!(decompress_frames(&both).unwrap(), expect);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let data = b"hello hello hello mmz".repeat(20);
        let frame = compress_frame(&data, CodecId::Order2, 5, Modality::Text, 100).unwrap();
        for i in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decompress_frames(&bad).is_err(), "flip of bit {i} undetected");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let data = b"truncate me ".repeat(50);
        let frame = compress_frame(&data, CodecId::Order2, 5, Modality::Text, 128).unwrap();
        for n in 0..frame.len() {
            assert!(decompress_frames(&frame[..n]).is_err(), "truncation at {n} undetected");
        }
    }

    #[test]
    fn versions_mix_and_content_checks_match() {
        let data = sample();
        let full = compress_frame(&data, CodecId::Cm, 5, Modality::Text, 4096).unwrap();
        let rec = encode_chunk(&data[..500], CodecId::Cm, 5, &Hint::bytes(Modality::Text)).unwrap();
        let small = crate::compact::compact_frame(Some(&rec), Modality::Text, 5, 0, xxh3(&data[..500])).unwrap();
        let mut both = full.clone();
        both.extend_from_slice(&small);
        both.extend_from_slice(&full);
        let frames = decode_frames(&both).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(matches!(frames[1].content, ContentCheck::Low32(_)));
        assert!(matches!(frames[0].content, ContentCheck::Full { .. }));
        for f in &frames {
            assert!(f.content.matches(&f.stream));
            let mut other = f.stream.clone();
            other[0] ^= 1;
            assert!(!f.content.matches(&other));
        }
        assert_eq!(frames[1].stream, &data[..500]);
    }

    #[test]
    fn newer_version_is_refused() {
        let mut frame = compress_frame(b"x", CodecId::Store, 5, Modality::Binary, 16).unwrap();
        frame[4] = 9;
        assert!(matches!(decompress_frames(&frame), Err(MmzError::UnsupportedVersion { found: 9, .. })));
    }
}
