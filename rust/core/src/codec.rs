//! Chunk codecs: the id written to each chunk header and the dispatch to the
//! engine that (de)compresses it. Ids are forever: a codec that ever shipped
//! keeps its id and stays decodable.

use crate::error::{MmzError, Result};
use crate::hint::Hint;
use crate::order2;

/// Largest raw length of one chunk (1 GiB); bounds decoder allocations.
pub const MAX_CHUNK: usize = 1 << 30;

/// Codec id stored in chunk headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CodecId {
    /// Bytes stored verbatim.
    Store = 0,
    /// The simple adaptive order-2 bitwise model.
    Order2 = 1,
    /// The context-mixing engine.
    Cm = 2,
    /// The neural codec (network mixed with CM).
    Neural = 3,
}

impl CodecId {
    /// Parse the on-disk id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(CodecId::Store),
            1 => Ok(CodecId::Order2),
            2 => Ok(CodecId::Cm),
            3 => Ok(CodecId::Neural),
            other => Err(MmzError::UnknownCodec(other)),
        }
    }

    /// User-facing name.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::Store => "store",
            CodecId::Order2 => "order2",
            CodecId::Cm => "cm",
            CodecId::Neural => "neural",
        }
    }

    /// Parse a user-facing name.
    pub fn from_name(name: &str) -> Result<Self> {
        [CodecId::Store, CodecId::Order2, CodecId::Cm, CodecId::Neural]
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| MmzError::InvalidArgument(format!("unknown codec {name:?}")))
    }

    /// Whether this build can encode and decode chunks with this codec.
    pub fn available(self) -> bool {
        matches!(self, CodecId::Store | CodecId::Order2 | CodecId::Cm)
    }
}

/// Compress one chunk with `codec` at `level` (1..=9). Returns the codec actually
/// used: a chunk the codec would expand is stored instead.
pub fn compress_chunk(data: &[u8], codec: CodecId, level: u8, hint: &Hint) -> Result<(CodecId, Vec<u8>)> {
    check_chunk(data, level, hint)?;
    let payload = match codec {
        CodecId::Store => return Ok((CodecId::Store, data.to_vec())),
        CodecId::Order2 => order2::compress(data),
        CodecId::Cm => crate::ctxmix::compress(data, level, hint)?,
        CodecId::Neural => {
            return Err(MmzError::InvalidArgument(format!("codec {} is not available in this build", codec.name())))
        }
    };
    Ok(stored_if_larger(codec, data, payload))
}

/// `(codec, payload)`, or the data stored when the payload would not be smaller.
fn stored_if_larger(codec: CodecId, data: &[u8], payload: Vec<u8>) -> (CodecId, Vec<u8>) {
    if payload.len() >= data.len() {
        (CodecId::Store, data.to_vec())
    } else {
        (codec, payload)
    }
}

fn check_chunk(data: &[u8], level: u8, hint: &Hint) -> Result<()> {
    if data.len() > MAX_CHUNK {
        return Err(MmzError::InvalidArgument(format!("chunk of {} bytes exceeds {MAX_CHUNK}", data.len())));
    }
    if !(1..=9).contains(&level) {
        return Err(MmzError::InvalidArgument(format!("level {level} outside 1..=9")));
    }
    hint.validate(data.len())
}

/// As [`compress_chunk`] with the CM codec, writing CM payload `version`
/// (see [`crate::ctxmix::compress_version`]).
pub fn compress_cm_version(data: &[u8], level: u8, hint: &Hint, version: u8) -> Result<(CodecId, Vec<u8>)> {
    check_chunk(data, level, hint)?;
    let payload = crate::ctxmix::compress_version(data, level, hint, version)?;
    Ok(stored_if_larger(CodecId::Cm, data, payload))
}

/// Decompress one chunk payload back to `raw_len` bytes.
pub fn decompress_chunk(payload: &[u8], raw_len: usize, codec: CodecId, level: u8, hint: &Hint) -> Result<Vec<u8>> {
    if raw_len > MAX_CHUNK {
        return Err(MmzError::corrupt("chunk header", format!("raw length {raw_len} exceeds {MAX_CHUNK}")));
    }
    hint.validate(raw_len).map_err(|e| MmzError::corrupt("chunk hint", e.to_string()))?;
    let out = match codec {
        CodecId::Store => {
            if payload.len() != raw_len {
                return Err(MmzError::corrupt("stored chunk", "payload length differs from raw length"));
            }
            payload.to_vec()
        }
        CodecId::Order2 => order2::decompress(payload, raw_len)?,
        CodecId::Cm => crate::ctxmix::decompress(payload, raw_len, level, hint)?,
        CodecId::Neural => return Err(MmzError::UnknownCodec(codec as u8)),
    };
    let _ = level;
    if out.len() != raw_len {
        return Err(MmzError::corrupt("chunk payload", "decoded length differs from header"));
    }
    Ok(out)
}
