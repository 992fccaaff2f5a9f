//! Bindings for the frame format: headers, chunk records, trailers.

use crate::errors::{to_py, PyResult};
use mmz_core::codec::CodecId;
use mmz_core::compact::{self, CompactHeader, COMPACT_VERSION};
use mmz_core::frame::{self, ChunkEntry, ChunkHeader, FrameHeader, Trailer};
use mmz_core::hint::{Hint, Modality, SampleLayout};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

fn id32(v: Option<&[u8]>, what: &str) -> PyResult<Option<[u8; 32]>> {
    match v {
        None => Ok(None),
        Some(b) => {
            let a: [u8; 32] = b
                .try_into()
                .map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("{what} must be 32 bytes")))?;
            Ok(Some(a))
        }
    }
}

/// Serialize a frame header.
#[pyfunction]
#[pyo3(signature = (modality, level, transform, codec, chunk_size, model_id=None, tokenizer_id=None))]
#[allow(clippy::too_many_arguments)]
pub fn frame_header<'py>(
    py: Python<'py>,
    modality: &str,
    level: u8,
    transform: u8,
    codec: &str,
    chunk_size: u32,
    model_id: Option<&[u8]>,
    tokenizer_id: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let h = FrameHeader {
        modality: Modality::from_name(modality).map_err(to_py)?,
        level,
        transform,
        codec: CodecId::from_name(codec).map_err(to_py)?,
        chunk_size,
        model_id: id32(model_id, "model_id")?,
        tokenizer_id: id32(tokenizer_id, "tokenizer_id")?,
    };
    Ok(PyBytes::new(py, &h.to_bytes()))
}

/// Parse a frame header into a dict.
#[pyfunction]
pub fn parse_frame_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let h = FrameHeader::parse(data).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("modality", h.modality.name())?;
    d.set_item("level", h.level)?;
    d.set_item("transform", h.transform)?;
    d.set_item("codec", h.codec.name())?;
    d.set_item("chunk_size", h.chunk_size)?;
    d.set_item("model_id", h.model_id.map(|m| PyBytes::new(py, &m)))?;
    d.set_item("tokenizer_id", h.tokenizer_id.map(|m| PyBytes::new(py, &m)))?;
    Ok(d)
}

/// Serialize a chunk hint (28 bytes). `layout` is `None` for byte data, else a
/// tuple `(channels, bytes_per_sample, big_endian, signed, width, data_start, data_end, first_sample)`.
#[pyfunction]
#[pyo3(signature = (modality, layout=None))]
#[allow(clippy::type_complexity)]
pub fn make_hint<'py>(
    py: Python<'py>,
    modality: &str,
    layout: Option<(u8, u8, bool, bool, u32, u32, u32, u64)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let layout = layout.map(|(channels, bytes_per_sample, big_endian, signed, width, data_start, data_end, first_sample)| {
        SampleLayout { channels, bytes_per_sample, big_endian, signed, width, data_start, data_end, first_sample }
    });
    let hint = Hint { modality: Modality::from_name(modality).map_err(to_py)?, layout };
    let bytes = hint.to_bytes();
    Hint::from_bytes(&bytes).map_err(to_py)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Compress one chunk into a complete chunk record (header + payload). The GIL
/// is released while coding.
#[pyfunction]
pub fn encode_chunk<'py>(py: Python<'py>, data: &[u8], codec: &str, level: u8, hint: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let codec = CodecId::from_name(codec).map_err(to_py)?;
    let hint = Hint::from_bytes(hint).map_err(to_py)?;
    let rec = py.allow_threads(|| frame::encode_chunk(data, codec, level, &hint)).map_err(to_py)?;
    Ok(PyBytes::new(py, &rec))
}

/// Compress one chunk with the CM codec as CM payload `version` (1..=5) into a
/// complete chunk record; every version decodes. GIL released.
#[pyfunction]
pub fn encode_cm_chunk<'py>(py: Python<'py>, data: &[u8], level: u8, hint: &[u8], version: u8) -> PyResult<Bound<'py, PyBytes>> {
    let hint = Hint::from_bytes(hint).map_err(to_py)?;
    let rec = py.allow_threads(|| frame::encode_cm_chunk(data, level, &hint, version)).map_err(to_py)?;
    Ok(PyBytes::new(py, &rec))
}

/// Parse a 64-byte chunk header into a dict.
#[pyfunction]
pub fn parse_chunk_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let h = ChunkHeader::parse(data).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("codec", h.codec.name())?;
    d.set_item("level", h.level)?;
    d.set_item("raw_len", h.raw_len)?;
    d.set_item("payload_len", h.payload_len)?;
    d.set_item("raw_hash", h.raw_hash)?;
    d.set_item("modality", h.hint.modality.name())?;
    Ok(d)
}

/// Verify and decode one chunk (its 64-byte header and payload). GIL released.
#[pyfunction]
pub fn decode_chunk<'py>(py: Python<'py>, header: &[u8], payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let h = ChunkHeader::parse(header).map_err(to_py)?;
    let out = py.allow_threads(|| frame::decode_chunk(&h, payload)).map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// Total trailer length announced by its first 32 bytes.
#[pyfunction]
pub fn trailer_len(fixed: &[u8]) -> PyResult<usize> {
    Trailer::announced_len(fixed).map_err(to_py)
}

/// Serialize a trailer; `chunks` is a list of `(offset, payload_len, raw_len)`.
#[pyfunction]
pub fn build_trailer<'py>(
    py: Python<'py>,
    content_len: u64,
    content_hash: u64,
    stream_len: u64,
    chunks: Vec<(u64, u32, u32)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let t = Trailer {
        content_len,
        content_hash,
        stream_len,
        chunks: chunks.into_iter().map(|(offset, payload_len, raw_len)| ChunkEntry { offset, payload_len, raw_len }).collect(),
    };
    Ok(PyBytes::new(py, &t.to_bytes()))
}

/// Parse a whole trailer into a dict with `content_len`, `content_hash`,
/// `stream_len` and `chunks` (list of `(offset, payload_len, raw_len)`).
#[pyfunction]
pub fn parse_trailer<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let t = Trailer::parse(data).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("content_len", t.content_len)?;
    d.set_item("content_hash", t.content_hash)?;
    d.set_item("stream_len", t.stream_len)?;
    let v: Vec<(u64, u32, u32)> = t.chunks.iter().map(|e| (e.offset, e.payload_len, e.raw_len)).collect();
    d.set_item("chunks", v)?;
    Ok(d)
}

/// Decode concatenated transform-free frames held in memory (GIL released).
#[pyfunction]
pub fn decompress_frames<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let out = py.allow_threads(|| frame::decompress_frames(data)).map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

fn compact_dict<'py>(py: Python<'py>, h: &CompactHeader) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", COMPACT_VERSION)?;
    d.set_item("modality", h.hint.modality.name())?;
    d.set_item("level", h.level)?;
    d.set_item("transform", h.transform)?;
    d.set_item("codec", h.codec.name())?;
    d.set_item("raw_len", h.raw_len)?;
    d.set_item("payload_len", h.payload_len)?;
    d.set_item("header_len", h.header_len)?;
    d.set_item("frame_len", h.frame_len())?;
    Ok(d)
}

/// Build a compact (version 2) frame from one encoded chunk record (`None` for
/// empty content) and the xxh3 of the original content.
#[pyfunction]
#[pyo3(signature = (record, modality, level, transform, content_hash))]
pub fn compact_frame<'py>(
    py: Python<'py>,
    record: Option<&[u8]>,
    modality: &str,
    level: u8,
    transform: u8,
    content_hash: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let modality = Modality::from_name(modality).map_err(to_py)?;
    let f = compact::compact_frame(record, modality, level, transform, content_hash).map_err(to_py)?;
    Ok(PyBytes::new(py, &f))
}

/// Parse the compact frame header at the start of `data`: a dict with its
/// fields plus `header_len` and `frame_len`, or `None` if `data` ends first.
#[pyfunction]
pub fn parse_compact_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyDict>>> {
    match CompactHeader::parse(data).map_err(to_py)? {
        None => Ok(None),
        Some(h) => Ok(Some(compact_dict(py, &h)?)),
    }
}

/// Verify and decode the compact frame at the start of `data` (GIL released).
/// Returns `(header dict, stream, content_check)`; for transform 0 the stream
/// is the content and is already verified, otherwise the caller inverts the
/// transform and compares the low 32 bits of its xxh3 with `content_check`.
#[pyfunction]
pub fn decode_compact<'py>(py: Python<'py>, data: &[u8]) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyBytes>, u32)> {
    let d = py.allow_threads(|| compact::decode_compact(data)).map_err(to_py)?;
    Ok((compact_dict(py, &d.header)?, PyBytes::new(py, &d.stream), d.content_check))
}
