//! `mmz._core`: the PyO3 binding of mmz-core. Thin by design: argument
//! conversion, GIL release around every codec call, error mapping in `errors`.

mod coder;
mod deflate;
mod errors;
mod frame;
mod neural;

use pyo3::prelude::*;

/// XXH3-64 (seed 0) of `data`.
#[pyfunction]
fn xxh3(py: Python<'_>, data: &[u8]) -> u64 {
    py.allow_threads(|| mmz_core::checksum::xxh3(data))
}

/// Streaming XXH3-64.
#[pyclass(module = "mmz._core")]
struct Xxh3 {
    inner: mmz_core::checksum::StreamHash,
}

#[pymethods]
impl Xxh3 {
    #[new]
    fn new() -> Self {
        Xxh3 { inner: mmz_core::checksum::StreamHash::new() }
    }
    /// Feed bytes.
    fn update(&mut self, py: Python<'_>, data: &[u8]) {
        let inner = &mut self.inner;
        py.allow_threads(|| inner.update(data));
    }
    /// Digest of everything fed so far.
    fn digest(&self) -> u64 {
        self.inner.digest()
    }
}

/// Whether this build can encode and decode chunks with `codec` (a name such as "cm").
#[pyfunction]
fn codec_available(codec: &str) -> PyResult<bool> {
    Ok(mmz_core::codec::CodecId::from_name(codec).map_err(errors::to_py)?.available())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MmzCoreError", py.get_type::<errors::MmzCoreError>())?;
    m.add("CorruptDataError", py.get_type::<errors::CorruptDataError>())?;
    m.add("FORMAT_VERSION", mmz_core::frame::FORMAT_VERSION)?;
    m.add("COMPACT_VERSION", mmz_core::compact::COMPACT_VERSION)?;
    m.add("COMPACT_MAX_HEADER_LEN", mmz_core::compact::MAX_HEADER_LEN)?;
    m.add("FRAME_HEADER_LEN", mmz_core::frame::FRAME_HEADER_LEN)?;
    m.add("CHUNK_HEADER_LEN", mmz_core::frame::CHUNK_HEADER_LEN)?;
    m.add("TRAILER_FIXED_LEN", mmz_core::frame::TRAILER_FIXED_LEN)?;
    m.add("MAGIC", pyo3::types::PyBytes::new(py, &mmz_core::frame::MAGIC))?;
    m.add_function(wrap_pyfunction!(xxh3, m)?)?;
    deflate::register(m)?;
    coder::register(m)?;
    neural::register(m)?;
    m.add_function(wrap_pyfunction!(codec_available, m)?)?;
    m.add_class::<Xxh3>()?;
    m.add_function(wrap_pyfunction!(frame::frame_header, m)?)?;
    m.add_function(wrap_pyfunction!(frame::parse_frame_header, m)?)?;
    m.add_function(wrap_pyfunction!(frame::make_hint, m)?)?;
    m.add_function(wrap_pyfunction!(frame::encode_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(frame::encode_cm_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(frame::parse_chunk_header, m)?)?;
    m.add_function(wrap_pyfunction!(frame::decode_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(frame::trailer_len, m)?)?;
    m.add_function(wrap_pyfunction!(frame::build_trailer, m)?)?;
    m.add_function(wrap_pyfunction!(frame::parse_trailer, m)?)?;
    m.add_function(wrap_pyfunction!(frame::decompress_frames, m)?)?;
    m.add_function(wrap_pyfunction!(frame::compact_frame, m)?)?;
    m.add_function(wrap_pyfunction!(frame::parse_compact_header, m)?)?;
    m.add_function(wrap_pyfunction!(frame::decode_compact, m)?)?;
    Ok(())
}
