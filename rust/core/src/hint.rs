//! What a codec is told about a chunk: its modality and, for images and audio,
//! where the samples are and how they are laid out. A hint is serialized into
//! every chunk header (24 bytes) so each chunk decodes alone.

use crate::error::{MmzError, Result};

/// Modality of a chunk, as detected by `mmz.modality` (or overridden by the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Modality {
    /// Unknown binary data.
    Binary = 0,
    /// Natural-language text.
    Text = 1,
    /// SQL, CSV/TSV, JSON, source code.
    Structured = 2,
    /// FASTA / FASTQ.
    Gene = 3,
    /// Pixel data.
    Image = 4,
    /// PCM audio.
    Audio = 5,
}

impl Modality {
    /// All modalities in id order.
    pub const ALL: [Modality; 6] = [
        Modality::Binary,
        Modality::Text,
        Modality::Structured,
        Modality::Gene,
        Modality::Image,
        Modality::Audio,
    ];

    /// Parse the id stored on disk.
    pub fn from_id(id: u8) -> Result<Self> {
        Modality::ALL
            .get(id as usize)
            .copied()
            .ok_or_else(|| MmzError::corrupt("modality", format!("unknown modality id {id}")))
    }

    /// The user-facing name (`binary`, `text`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Modality::Binary => "binary",
            Modality::Text => "text",
            Modality::Structured => "structured",
            Modality::Gene => "gene",
            Modality::Image => "image",
            Modality::Audio => "audio",
        }
    }

    /// Parse a user-facing name.
    pub fn from_name(name: &str) -> Result<Self> {
        Modality::ALL
            .iter()
            .copied()
            .find(|m| m.name() == name)
            .ok_or_else(|| MmzError::InvalidArgument(format!("unknown modality {name:?}")))
    }
}

/// Layout of the sample region of a chunk. Bytes outside `[data_start, data_end)`
/// (headers, trailing chunks) are coded as plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleLayout {
    /// Samples per pixel (image) or per frame (audio): 1..=4 (images), 1..=8 (audio).
    pub channels: u8,
    /// Bytes per sample: 1, 2 or 3.
    pub bytes_per_sample: u8,
    /// Samples are big-endian (PNM 16-bit) rather than little-endian (WAV).
    pub big_endian: bool,
    /// Audio samples of 16/24 bits are signed; 8-bit WAV is unsigned.
    pub signed: bool,
    /// Image width in pixels (0 for audio).
    pub width: u32,
    /// Offset in the chunk where the first whole sample starts.
    pub data_start: u32,
    /// Offset in the chunk where the sample region ends (exclusive).
    pub data_end: u32,
    /// Index (in samples, counted from the start of the image/stream) of the
    /// sample at `data_start`; gives the column and channel phase of chunks
    /// cut from the middle of an image.
    pub first_sample: u64,
}

/// Everything a codec knows about a chunk besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// Modality of the chunk.
    pub modality: Modality,
    /// Sample layout for images and audio; `None` for byte-oriented data.
    pub layout: Option<SampleLayout>,
}

/// Serialized size of a hint in a chunk header.
pub const HINT_BYTES: usize = 28;

impl Hint {
    /// A hint for plain bytes of the given modality.
    pub fn bytes(modality: Modality) -> Self {
        Hint {
            modality,
            layout: None,
        }
    }

    /// Serialize to the fixed 28-byte on-disk form (see docs/FORMAT.md).
    pub fn to_bytes(&self) -> [u8; HINT_BYTES] {
        let mut out = [0u8; HINT_BYTES];
        out[0] = self.modality as u8;
        if let Some(l) = self.layout {
            out[1] = 1;
            out[2] = l.channels;
            out[3] = l.bytes_per_sample;
            out[4] = (l.big_endian as u8) | ((l.signed as u8) << 1);
            out[8..12].copy_from_slice(&l.width.to_le_bytes());
            out[12..16].copy_from_slice(&l.data_start.to_le_bytes());
            out[16..20].copy_from_slice(&l.data_end.to_le_bytes());
            out[20..28].copy_from_slice(&l.first_sample.to_le_bytes());
        }
        out
    }

    /// Parse the on-disk form, validating every field.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != HINT_BYTES {
            return Err(MmzError::corrupt(
                "chunk hint",
                format!("length {} != {HINT_BYTES}", b.len()),
            ));
        }
        let modality = Modality::from_id(b[0])?;
        let layout = match b[1] {
            0 => None,
            1 => {
                let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let mut fs = [0u8; 8];
                fs.copy_from_slice(&b[20..28]);
                let l = SampleLayout {
                    channels: b[2],
                    bytes_per_sample: b[3],
                    big_endian: b[4] & 1 != 0,
                    signed: b[4] & 2 != 0,
                    width: u32_at(8),
                    data_start: u32_at(12),
                    data_end: u32_at(16),
                    first_sample: u64::from_le_bytes(fs),
                };
                if l.channels == 0
                    || l.channels > 16
                    || !(1..=3).contains(&l.bytes_per_sample)
                    || l.data_start > l.data_end
                {
                    return Err(MmzError::corrupt("chunk hint", "invalid sample layout"));
                }
                Some(l)
            }
            k => {
                return Err(MmzError::corrupt(
                    "chunk hint",
                    format!("unknown layout kind {k}"),
                ))
            }
        };
        Ok(Hint { modality, layout })
    }

    /// Check the layout against the chunk length; codecs may assume a valid hint.
    pub fn validate(&self, chunk_len: usize) -> Result<()> {
        if let Some(l) = self.layout {
            if l.data_end as usize > chunk_len {
                return Err(MmzError::InvalidArgument(format!(
                    "hint sample region ends at {} beyond chunk length {chunk_len}",
                    l.data_end
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_roundtrip() {
        let h = Hint {
            modality: Modality::Audio,
            layout: Some(SampleLayout {
                channels: 2,
                bytes_per_sample: 2,
                big_endian: false,
                signed: true,
                width: 0,
                data_start: 44,
                data_end: 1000,
                first_sample: 7,
            }),
        };
        assert_eq!(Hint::from_bytes(&h.to_bytes()).unwrap(), h);
        let b = Hint::bytes(Modality::Text);
        assert_eq!(Hint::from_bytes(&b.to_bytes()).unwrap(), b);
        let mut bad = h.to_bytes();
        bad[0] = 99;
        assert!(Hint::from_bytes(&bad).is_err());
    }
}
