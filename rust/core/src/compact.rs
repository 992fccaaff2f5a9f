//! The compact `.mmz` frame (format version 2; byte layout in docs/FORMAT.md).
//!
//! A version-1 frame spends 208 bytes on its header, chunk header and trailer,
//! which decides the size of small inputs. A compact frame holds at most one
//! chunk and no model ids in 7 + varint bytes of header and a 4-byte check:
//! 12 bytes for empty input, 12 + n for n stored bytes. The check is the low 32
//! bits of the xxh3 of the frame's bytes before it, XOR the low 32 bits of the
//! xxh3 of the original content, so one field covers the header, the payload
//! and the decoded content end to end. Writers use compact frames for small
//! inputs only (the policy lives in the Python frame writer); readers accept
//! any chunk length up to [`MAX_CHUNK`].

use crate::checksum::{xxh3, xxh3_32};
use crate::codec::{decompress_chunk, CodecId, MAX_CHUNK};
use crate::error::{MmzError, Result};
use crate::frame::{ChunkHeader, MAGIC};
use crate::hint::{Hint, Modality, HINT_BYTES};

/// Format version of a compact frame.
pub const COMPACT_VERSION: u8 = 2;
/// Size of the check that closes a compact frame.
pub const CHECK_LEN: usize = 4;
/// Longest header a compact frame can have (7 fixed, two 5-byte varints, a hint).
pub const MAX_HEADER_LEN: usize = 7 + 5 + 5 + HINT_BYTES;

const HINT_FLAG: u8 = 0x40;

/// The fields of a compact frame's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactHeader {
    /// Codec of the payload (store, order2 or cm).
    pub codec: CodecId,
    /// Level 1..=9 the payload was coded at.
    pub level: u8,
    /// Reversible transform applied before coding (0 = none).
    pub transform: u8,
    /// What the codec was told about the chunk (its modality is the frame's).
    pub hint: Hint,
    /// Decoded length of the chunk (the transformed stream).
    pub raw_len: u32,
    /// Payload length.
    pub payload_len: u32,
    /// Length of the serialized header (the payload starts here).
    pub header_len: usize,
}

impl CompactHeader {
    /// Total length of the frame this header starts.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len as usize + CHECK_LEN
    }

    /// Serialize (without the payload and check).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MAX_HEADER_LEN);
        b.extend_from_slice(&MAGIC);
        b.push(COMPACT_VERSION);
        let has_layout = self.hint.layout.is_some();
        b.push((self.codec as u8) | ((self.hint.modality as u8) << 3) | if has_layout { HINT_FLAG } else { 0 });
        b.push(self.level | (self.transform << 4));
        put_varint(&mut b, self.raw_len);
        if self.codec != CodecId::Store {
            put_varint(&mut b, self.payload_len);
        }
        if has_layout {
            b.extend_from_slice(&self.hint.to_bytes());
        }
        b
    }

    /// Parse the header at the start of `b`. `Ok(None)` means `b` ends before
    /// the header does (a streaming reader waits for more bytes).
    pub fn parse(b: &[u8]) -> Result<Option<Self>> {
        if b.len() < 7 {
            return Ok(None);
        }
        if b[0..4] != MAGIC {
            return Err(MmzError::NotMmz("missing magic bytes 89 4D 4D 5A".into()));
        }
        if b[4] != COMPACT_VERSION {
            return Err(MmzError::InvalidArgument(format!("format version {} is not a compact frame", b[4])));
        }
        let bad = |detail: &str| MmzError::corrupt("compact frame header", detail.to_string());
        let (flags, lv) = (b[5], b[6]);
        if flags & 0x80 != 0 {
            return Err(bad("reserved flag bit set"));
        }
        let codec = match CodecId::from_id(flags & 7) {
            Ok(c @ (CodecId::Store | CodecId::Order2 | CodecId::Cm)) => c,
            _ => return Err(bad("codec id not allowed in a compact frame")),
        };
        let modality = Modality::from_id((flags >> 3) & 7).map_err(|_| bad("unknown modality"))?;
        let (level, transform) = (lv & 15, lv >> 4);
        if !(1..=9).contains(&level) {
            return Err(bad("level outside 1..9"));
        }
        let mut pos = 7;
        let Some(raw_len) = get_varint(b, &mut pos)? else { return Ok(None) };
        let payload_len = if codec == CodecId::Store {
            raw_len
        } else {
            match get_varint(b, &mut pos)? {
                Some(n) => n,
                None => return Ok(None),
            }
        };
        if raw_len as usize > MAX_CHUNK || payload_len as usize > MAX_CHUNK + 1024 {
            return Err(bad("length out of range"));
        }
        let hint = if flags & HINT_FLAG != 0 {
            let Some(h) = b.get(pos..pos + HINT_BYTES) else { return Ok(None) };
            pos += HINT_BYTES;
            let hint = Hint::from_bytes(h)?;
            if hint.modality != modality || hint.layout.is_none() {
                return Err(bad("hint disagrees with the header"));
            }
            hint
        } else {
            Hint::bytes(modality)
        };
        Ok(Some(CompactHeader { codec, level, transform, hint, raw_len, payload_len, header_len: pos }))
    }
}

/// Append `v` as an unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Read a canonical LEB128 varint of at most 5 bytes at `*pos`; `Ok(None)` if `b` ends first.
fn get_varint(b: &[u8], pos: &mut usize) -> Result<Option<u32>> {
    let mut v: u64 = 0;
    for i in 0..5 {
        let Some(&byte) = b.get(*pos + i) else { return Ok(None) };
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if (byte == 0 && i > 0) || v > u64::from(u32::MAX) {
                return Err(MmzError::corrupt("compact frame header", "malformed length"));
            }
            *pos += i + 1;
            return Ok(Some(v as u32));
        }
    }
    Err(MmzError::corrupt("compact frame header", "malformed length"))
}

/// Build a compact frame from an encoded version-1 chunk record (`None` for
/// empty content), the frame's modality, level and transform, and the xxh3 of
/// the original content. Fails if the record cannot be carried compactly
/// (neural codec, or a hint whose modality is not the frame's).
pub fn compact_frame(
    record: Option<&[u8]>,
    modality: Modality,
    level: u8,
    transform: u8,
    content_hash: u64,
) -> Result<Vec<u8>> {
    if !(1..=9).contains(&level) || transform > 15 {
        return Err(MmzError::InvalidArgument(format!("level {level} / transform {transform} do not fit a compact frame")));
    }
    let (header, payload) = match record {
        None => (
            CompactHeader {
                codec: CodecId::Store,
                level,
                transform,
                hint: Hint::bytes(modality),
                raw_len: 0,
                payload_len: 0,
                header_len: 0,
            },
            &[][..],
        ),
        Some(rec) => {
            let h = ChunkHeader::parse(rec)?;
            let payload = rec
                .get(crate::frame::CHUNK_HEADER_LEN..)
                .filter(|p| p.len() == h.payload_len as usize)
                .ok_or_else(|| MmzError::InvalidArgument("chunk record length disagrees with its header".into()))?;
            if h.codec == CodecId::Neural || h.hint.modality != modality {
                return Err(MmzError::InvalidArgument("this chunk needs a version-1 frame".into()));
            }
            (
                CompactHeader {
                    codec: h.codec,
                    level: h.level,
                    transform,
                    hint: h.hint,
                    raw_len: h.raw_len,
                    payload_len: h.payload_len,
                    header_len: 0,
                },
                payload,
            )
        }
    };
    let mut out = header.to_bytes();
    out.extend_from_slice(payload);
    let check = xxh3_32(&out) ^ (content_hash as u32);
    out.extend_from_slice(&check.to_le_bytes());
    Ok(out)
}

/// A decoded compact frame.
#[derive(Debug, Clone)]
pub struct DecodedCompact {
    /// The parsed header.
    pub header: CompactHeader,
    /// The decoded chunk (the content itself when `header.transform == 0`).
    pub stream: Vec<u8>,
    /// The low 32 bits the xxh3 of the original content must have.
    pub content_check: u32,
}

/// Decode the compact frame at the start of `b` (which may hold more frames
/// after it). For transform 0 the content is verified here; otherwise the
/// caller inverts the transform and compares `content_check`.
pub fn decode_compact(b: &[u8]) -> Result<DecodedCompact> {
    let header = CompactHeader::parse(b)?.ok_or_else(|| MmzError::Truncated("compact frame header".into()))?;
    let end = header.frame_len();
    let frame = b.get(..end).ok_or_else(|| MmzError::Truncated("compact frame".into()))?;
    let body = &frame[..end - CHECK_LEN];
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&frame[end - CHECK_LEN..]);
    let content_check = u32::from_le_bytes(c) ^ xxh3_32(body);
    let damaged = || MmzError::corrupt("compact frame", "checksum mismatch (header, payload or content damaged)");
    let payload = &body[header.header_len..];
    let stream = decompress_chunk(payload, header.raw_len as usize, header.codec, header.level, &header.hint)
        .map_err(|e| if e.is_data_error() { damaged() } else { e })?;
    if stream.len() != header.raw_len as usize {
        return Err(damaged());
    }
    if header.transform == 0 && xxh3(&stream) as u32 != content_check {
        return Err(damaged());
    }
    Ok(DecodedCompact { header, stream, content_check })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_chunk;

    fn frame_of(data: &[u8], codec: CodecId, modality: Modality) -> Vec<u8> {
        let rec = (!data.is_empty()).then(|| encode_chunk(data, codec, 5, &Hint::bytes(modality)).unwrap());
        compact_frame(rec.as_deref(), modality, 5, 0, xxh3(data)).unwrap()
    }

    #[test]
    fn roundtrip_and_sizes() {
        let text = b"compact frames keep small inputs small. ".repeat(40);
        for (data, codec) in [(&b""[..], CodecId::Store), (&b"x"[..], CodecId::Store), (&text[..], CodecId::Cm)] {
            let f = frame_of(data, codec, Modality::Text);
            let d = decode_compact(&f).unwrap();
            assert_eq!(d.stream, data);
            assert_eq!(d.header.frame_len(), f.len());
        }
        assert_eq!(frame_of(b"", CodecId::Store, Modality::Binary).len(), 12);
        assert_eq!(frame_of(&[7u8; 100], CodecId::Store, Modality::Binary).len(), 112);
    }

    #[test]
    fn sample_hint_is_carried() {
        let layout = crate::hint::SampleLayout {
            channels: 1,
            bytes_per_sample: 2,
            big_endian: false,
            signed: true,
            width: 0,
            data_start: 4,
            data_end: 2004,
            first_sample: 0,
        };
        let hint = Hint { modality: Modality::Audio, layout: Some(layout) };
        let data: Vec<u8> = (0..2004u32).map(|i| ((i * 37) % 251) as u8).collect();
        let rec = encode_chunk(&data, CodecId::Cm, 5, &hint).unwrap();
        let f = compact_frame(Some(&rec), Modality::Audio, 5, 0, xxh3(&data)).unwrap();
        let d = decode_compact(&f).unwrap();
        assert_eq!(d.header.hint, hint);
        assert_eq!(d.stream, data);
    }

    #[test]
    fn every_bit_flip_and_truncation_is_detected() {
        let data = b"flip every bit of a compact frame ".repeat(8);
        for codec in [CodecId::Store, CodecId::Order2, CodecId::Cm] {
            let f = frame_of(&data, codec, Modality::Text);
            for i in 0..f.len() * 8 {
                let mut bad = f.clone();
                bad[i / 8] ^= 1 << (i % 8);
                // A non-zero transform leaves the content check to the caller: apply it as the caller does.
                let ok = decode_compact(&bad).map(|d| xxh3(&d.stream) as u32 == d.content_check && d.stream == data);
                assert!(!ok.unwrap_or(false), "{codec:?}: flip of bit {i} undetected");
            }
            for n in 0..f.len() {
                assert!(decode_compact(&f[..n]).is_err(), "{codec:?}: truncation at {n} undetected");
            }
        }
    }

    #[test]
    fn varints_are_canonical() {
        let mut pos = 0;
        assert_eq!(get_varint(&[0x80, 0x01], &mut pos).unwrap(), Some(128));
        assert!(get_varint(&[0x80, 0x00], &mut 0).is_err());
        assert!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f], &mut 0).is_err());
        assert_eq!(get_varint(&[0x80], &mut 0).unwrap(), None);
        let mut b = Vec::new();
        for v in [0u32, 127, 128, 16383, 16384, u32::MAX] {
            b.clear();
            put_varint(&mut b, v);
            assert_eq!(get_varint(&b, &mut 0).unwrap(), Some(v));
        }
    }

    #[test]
    fn neural_records_are_refused() {
        let rec = encode_chunk(b"abc", CodecId::Store, 5, &Hint::bytes(Modality::Text)).unwrap();
        assert!(compact_frame(Some(&rec), Modality::Binary, 5, 0, 0).is_err());
    }
}
