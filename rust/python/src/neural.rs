//! Bindings for the neural engine and codec (`mmz._core.NeuralEngine`).

use crate::errors::{to_py, PyResult};
use mmz_core::frame::ChunkHeader;
use mmz_core::hint::Hint;
use mmz_core::neural::{codec, engine, Model, NeuralCodec};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A loaded model (MMZNW001 container) with its golden probe hash.
#[pyclass(module = "mmz._core", frozen)]
pub struct NeuralEngine {
    inner: NeuralCodec,
}

#[pymethods]
impl NeuralEngine {
    /// Parse a weight container; `modalities` are the model's modality names in id order.
    #[new]
    fn new(py: Python<'_>, container: &[u8], modalities: Vec<String>) -> PyResult<Self> {
        let inner = py
            .allow_threads(|| Model::from_container(container).and_then(|m| NeuralCodec::new(m, modalities)))
            .map_err(to_py)?;
        Ok(NeuralEngine { inner })
    }

    /// Golden probe hash (XXH3 of the quantized CDFs of a fixed token sequence).
    #[getter]
    fn probe_hash(&self) -> u64 {
        self.inner.probe
    }

    /// Multiply-adds per token (active experts only).
    #[getter]
    fn macs_per_token(&self) -> u64 {
        self.inner.model.macs_per_token()
    }

    /// Width of the logits rows (largest vocabulary slice).
    #[getter]
    fn max_slice(&self) -> usize {
        self.inner.model.cfg.max_slice()
    }

    /// Which engine build runs ("avx512", "avx2" or "portable"; identical results).
    #[staticmethod]
    fn simd_path() -> &'static str {
        engine::simd_path()
    }

    /// Slice logits (float32 little-endian bytes, `rows x steps x max_slice`) for
    /// `tokens` (uint32 LE bytes, `rows x steps`) with one modality per row.
    fn run_logits<'py>(&self, py: Python<'py>, tokens: &[u8], mods: Vec<usize>, steps: usize) -> PyResult<Bound<'py, PyBytes>> {
        let toks: Vec<u32> = tokens.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let out = py.allow_threads(|| codec::run_logits(&self.inner.model, &toks, &mods, steps)).map_err(to_py)?;
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &bytes))
    }

    /// Neural payload only (no chunk header): the plain form, with `mixed`
    /// the network mixed with online context models (payload flags 1), with
    /// `cm_mixed` the network mixed with the full CM byte model (flags 2), with
    /// `cm_group` the network mixed with one CM byte model per group of sub-streams (flags 3).
    #[pyo3(signature = (data, level, hint, batch=64, threads=0, mixed=false, cm_mixed=false, cm_group=false))]
    #[allow(clippy::too_many_arguments)]
    fn encode_payload<'py>(&self, py: Python<'py>, data: &[u8], level: u8, hint: &[u8], batch: usize, threads: usize, mixed: bool, cm_mixed: bool, cm_group: bool) -> PyResult<Bound<'py, PyBytes>> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let out = py
            .allow_threads(|| {
                if cm_group {
                    self.inner.encode_cm_group(data, level, &hint, batch, threads)
                } else if cm_mixed {
                    self.inner.encode_cm_mixed(data, level, &hint, batch, threads)
                } else if mixed {
                    self.inner.encode_mixed(data, level, &hint, batch, threads)
                } else {
                    self.inner.encode(data, level, &hint, batch, threads)
                }
            })
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// `(plain, mixed, cm_mixed, cm_group)` payloads (flags 0, 1, 2, 3) from one network run
    /// (the mixed forms are None for a slice that is not 256 symbols wide).
    #[pyo3(signature = (data, level, hint, batch=64, threads=0))]
    #[allow(clippy::type_complexity)]
    fn encode_forms<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        level: u8,
        hint: &[u8],
        batch: usize,
        threads: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>, Option<Bound<'py, PyBytes>>, Option<Bound<'py, PyBytes>>)> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let f = py.allow_threads(|| self.inner.encode_forms(data, level, &hint, batch, threads, codec::Want::ALL)).map_err(to_py)?;
        let p = f.plain.unwrap_or_default();
        let b = |x: Option<Vec<u8>>| x.map(|m| PyBytes::new(py, &m));
        Ok((PyBytes::new(py, &p), b(f.mixed), b(f.cm_mixed), b(f.cm_group)))
    }

    /// The sample-mixed payload (flags 4: the CM sample model mixed with the network on whole
    /// samples), or None when the chunk hint has no sample region or the slice is not byte-wide.
    #[pyo3(signature = (data, level, hint, batch=64, threads=0))]
    fn encode_sample_mixed<'py>(&self, py: Python<'py>, data: &[u8], level: u8, hint: &[u8], batch: usize, threads: usize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let want = codec::Want { sample: true, ..codec::Want::default() };
        let f = py.allow_threads(|| self.inner.encode_forms(data, level, &hint, batch, threads, want)).map_err(to_py)?;
        Ok(f.sample.map(|m| PyBytes::new(py, &m)))
    }

    /// Inverse of `encode_payload`.
    #[pyo3(signature = (payload, raw_len, hint, batch=64, threads=0))]
    fn decode_payload<'py>(&self, py: Python<'py>, payload: &[u8], raw_len: usize, hint: &[u8], batch: usize, threads: usize) -> PyResult<Bound<'py, PyBytes>> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let out = py.allow_threads(|| self.inner.decode(payload, raw_len, &hint, batch, threads)).map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Tuning diagnostics: `(token-ordered bytes, seg, node P(1) as u16 LE bytes,
    /// 8 per byte)` (see `NeuralCodec::node_probs`).
    #[pyo3(signature = (data, level, hint, batch=64, threads=0))]
    fn node_probs<'py>(&self, py: Python<'py>, data: &[u8], level: u8, hint: &[u8], batch: usize, threads: usize) -> PyResult<(Bound<'py, PyBytes>, usize, Bound<'py, PyBytes>)> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let (t, seg, p) = py.allow_threads(|| self.inner.node_probs(data, level, &hint, batch, threads)).map_err(to_py)?;
        let pb: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok((PyBytes::new(py, &t), seg, PyBytes::new(py, &pb)))
    }

    /// Model cross-entropy (bits) of `data` under the codec's segmentation.
    #[pyo3(signature = (data, level, hint, batch=64, threads=0))]
    fn cross_entropy_bits(&self, py: Python<'_>, data: &[u8], level: u8, hint: &[u8], batch: usize, threads: usize) -> PyResult<f64> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        py.allow_threads(|| self.inner.cross_entropy_bits(data, level, &hint, batch, threads)).map_err(to_py)
    }

    /// Complete chunk record: cheapest of neural (codec 3), CM, stored.
    #[pyo3(signature = (data, level, hint, batch=64, threads=0))]
    fn encode_chunk<'py>(&self, py: Python<'py>, data: &[u8], level: u8, hint: &[u8], batch: usize, threads: usize) -> PyResult<Bound<'py, PyBytes>> {
        let hint = Hint::from_bytes(hint).map_err(to_py)?;
        let out = py.allow_threads(|| self.inner.encode_chunk(data, level, &hint, batch, threads)).map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Verify and decode a chunk record (any codec).
    #[pyo3(signature = (header, payload, batch=64, threads=0))]
    fn decode_chunk<'py>(&self, py: Python<'py>, header: &[u8], payload: &[u8], batch: usize, threads: usize) -> PyResult<Bound<'py, PyBytes>> {
        let h = ChunkHeader::parse(header).map_err(to_py)?;
        let out = py.allow_threads(|| self.inner.decode_chunk(&h, payload, batch, threads)).map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }
}

/// Register the neural classes and constants.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NeuralEngine>()?;
    m.add("NEURAL_ENGINE_VERSION", codec::ENGINE_VERSION)?;
    m.add("NEURAL_PRECISION", codec::PRECISION)?;
    m.add("NEURAL_FLAGS_MIX", codec::FLAGS_MIX)?;
    m.add("NEURAL_FLAGS_CM_MIX", codec::FLAGS_CM_MIX)?;
    m.add("NEURAL_FLAGS_CM_GROUP", codec::FLAGS_CM_GROUP)?;
    m.add("NEURAL_FLAGS_SAMPLE_MIX", codec::FLAGS_SAMPLE_MIX)?;
    Ok(())
}
