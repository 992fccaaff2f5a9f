//! Bindings for the range coder, CDF quantization and lockstep batches.
//! Arrays cross zero-copy when they are C-contiguous with the right dtype
//! (float32 probabilities, uint32 symbols/frequencies); other inputs are
//! converted once. The GIL is released around all coding work.

use crate::errors::{to_py, PyResult};
use mmz_core::batch::{self, RowKind};
use mmz_core::{coder, quant};
use numpy::{
    AllowTypeChange, PyArray1, PyArrayDyn, PyArrayLike1, PyArrayLikeDyn, PyArrayMethods,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

type F32Arr<'py> = PyArrayLikeDyn<'py, f32, AllowTypeChange>;
type U32Arr<'py> = PyArrayLikeDyn<'py, u32, AllowTypeChange>;
type Syms<'py> = PyArrayLike1<'py, u32, AllowTypeChange>;

fn slice<'a, T: numpy::Element>(
    a: &'a numpy::PyReadonlyArrayDyn<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be C-contiguous (use numpy.ascontiguousarray)"
        ))
    })
}

/// `(rows, V)` of a 1-D (one row) or 2-D array.
fn rows_cols(shape: &[usize], what: &str) -> PyResult<(usize, usize)> {
    match *shape {
        [v] => Ok((1, v)),
        [r, v] => Ok((r, v)),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be 1-D or 2-D, got {} dimensions",
            shape.len()
        ))),
    }
}

fn sym_slice<'a>(s: &'a Syms<'_>) -> PyResult<&'a [u32]> {
    s.as_slice()
        .map_err(|_| PyValueError::new_err("symbols must be a contiguous 1-D integer array"))
}

#[derive(Clone, Copy)]
enum Model {
    Probs,
    Logits,
}

fn to_kind(m: Model) -> RowKind {
    match m {
        Model::Probs => RowKind::Probs,
        Model::Logits => RowKind::Logits,
    }
}

/// Quantize a logits row into float weights if needed (into `scratch`).
fn weights<'a>(row: &'a [f32], m: Model, scratch: &'a mut Vec<f32>) -> mmz_core::Result<&'a [f32]> {
    match m {
        Model::Probs => Ok(row),
        Model::Logits => {
            scratch.clear();
            scratch.resize(row.len(), 0.0);
            quant::logits_to_weights(row, scratch)?;
            Ok(&scratch[..])
        }
    }
}

fn quantize_any<'py>(
    py: Python<'py>,
    a: F32Arr<'py>,
    precision: u32,
    m: Model,
) -> PyResult<Bound<'py, PyArrayDyn<u32>>> {
    let shape = a.shape().to_vec();
    let (_, v) = rows_cols(&shape, "probabilities")?;
    let data = slice(&a, "probabilities")?;
    let out = py
        .allow_threads(|| -> mmz_core::Result<Vec<u32>> {
            let mut out = vec![0u32; data.len()];
            let mut sc = Vec::new();
            for (row, o) in data.chunks(v.max(1)).zip(out.chunks_mut(v.max(1))) {
                let w = weights(row, m, &mut sc)?;
                quant::quantize_probs(w, precision, o)?;
            }
            Ok(out)
        })
        .map_err(to_py)?;
    let arr = PyArray1::from_vec(py, out);
    arr.reshape(shape)
}

/// Quantize float32 probabilities (1-D row or 2-D rows) to uint32 frequencies
/// that are all >= 1 and sum to exactly 2**precision per row (deterministic on every CPU).
#[pyfunction]
#[pyo3(signature = (probs, precision=24))]
pub fn quantize_probs<'py>(
    py: Python<'py>,
    probs: F32Arr<'py>,
    precision: u32,
) -> PyResult<Bound<'py, PyArrayDyn<u32>>> {
    quantize_any(py, probs, precision, Model::Probs)
}

/// Like `quantize_probs`, for logits (softmax with a deterministic, libm-free exp).
#[pyfunction]
#[pyo3(signature = (logits, precision=24))]
pub fn quantize_logits<'py>(
    py: Python<'py>,
    logits: F32Arr<'py>,
    precision: u32,
) -> PyResult<Bound<'py, PyArrayDyn<u32>>> {
    quantize_any(py, logits, precision, Model::Logits)
}

/// Range encoder (64-bit low with carry propagation).
#[pyclass(module = "mmz._core")]
pub struct RangeEncoder {
    inner: coder::RangeEncoder,
    precision: u32,
}

impl RangeEncoder {
    fn encode_rows(
        &mut self,
        py: Python<'_>,
        symbols: Syms<'_>,
        probs: F32Arr<'_>,
        m: Model,
    ) -> PyResult<()> {
        let (rows, v) = rows_cols(probs.shape(), "probabilities")?;
        let syms = sym_slice(&symbols)?;
        let data = slice(&probs, "probabilities")?;
        let (enc, p) = (&mut self.inner, self.precision);
        if probs.ndim() == 1 {
            return py
                .allow_threads(|| {
                    let mut sc = Vec::new();
                    let w = weights(data, m, &mut sc)?;
                    enc.encode_all_probs(syms, w, p)
                })
                .map_err(to_py);
        }
        if rows != syms.len() {
            return Err(PyValueError::new_err(format!(
                "{} symbols but {rows} probability rows",
                syms.len()
            )));
        }
        py.allow_threads(|| {
            let mut sc = Vec::new();
            for (row, &s) in data.chunks(v.max(1)).zip(syms) {
                let w = weights(row, m, &mut sc)?;
                enc.encode_probs(s, w, p)?;
            }
            Ok(())
        })
        .map_err(to_py)
    }
}

#[pymethods]
impl RangeEncoder {
    #[new]
    #[pyo3(signature = (precision=24))]
    fn new(precision: u32) -> PyResult<Self> {
        quant::check_params(precision, 2).map_err(to_py)?;
        Ok(RangeEncoder {
            inner: coder::RangeEncoder::new(),
            precision,
        })
    }

    /// Encode `symbols` under float32 probabilities: a 1-D array (one static
    /// distribution for all symbols) or a 2-D array with one row per symbol.
    fn encode(&mut self, py: Python<'_>, symbols: Syms<'_>, probs: F32Arr<'_>) -> PyResult<()> {
        self.encode_rows(py, symbols, probs, Model::Probs)
    }

    /// Like `encode`, with logits instead of probabilities.
    fn encode_logits(
        &mut self,
        py: Python<'_>,
        symbols: Syms<'_>,
        logits: F32Arr<'_>,
    ) -> PyResult<()> {
        self.encode_rows(py, symbols, logits, Model::Logits)
    }

    /// Encode under integer frequencies (1-D static or 2-D per symbol; any
    /// total up to 2**24; zero entries allowed for symbols never coded).
    fn encode_freqs(
        &mut self,
        py: Python<'_>,
        symbols: Syms<'_>,
        freqs: U32Arr<'_>,
    ) -> PyResult<()> {
        let (rows, v) = rows_cols(freqs.shape(), "freqs")?;
        let syms = sym_slice(&symbols)?;
        let data = slice(&freqs, "freqs")?;
        let enc = &mut self.inner;
        if freqs.ndim() == 1 {
            return py
                .allow_threads(|| enc.encode_all_freqs(syms, data))
                .map_err(to_py);
        }
        if rows != syms.len() {
            return Err(PyValueError::new_err(format!(
                "{} symbols but {rows} frequency rows",
                syms.len()
            )));
        }
        py.allow_threads(|| {
            data.chunks(v.max(1))
                .zip(syms)
                .try_for_each(|(row, &s)| enc.encode_freqs(s, row))
        })
        .map_err(to_py)
    }

    /// Encode under a CDF (`V + 1` non-decreasing entries starting at 0; 1-D static or 2-D per symbol).
    fn encode_cdf(&mut self, py: Python<'_>, symbols: Syms<'_>, cdf: U32Arr<'_>) -> PyResult<()> {
        let (rows, w) = rows_cols(cdf.shape(), "cdf")?;
        let syms = sym_slice(&symbols)?;
        let data = slice(&cdf, "cdf")?;
        let enc = &mut self.inner;
        if cdf.ndim() == 1 {
            return py
                .allow_threads(|| enc.encode_all_freqs(syms, &quant::cdf_to_freqs(data)?))
                .map_err(to_py);
        }
        if rows != syms.len() {
            return Err(PyValueError::new_err(format!(
                "{} symbols but {rows} CDF rows",
                syms.len()
            )));
        }
        py.allow_threads(|| {
            data.chunks(w.max(1))
                .zip(syms)
                .try_for_each(|(row, &s)| enc.encode_freqs(s, &quant::cdf_to_freqs(row)?))
        })
        .map_err(to_py)
    }

    /// The compressed bytes so far (the encoder remains usable).
    fn get_compressed<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let out = py.allow_threads(|| self.inner.snapshot());
        PyBytes::new(py, &out)
    }

    /// CDF precision in bits.
    #[getter]
    fn precision(&self) -> u32 {
        self.precision
    }
}

/// Range decoder over a byte string produced by `RangeEncoder`.
#[pyclass(module = "mmz._core")]
pub struct RangeDecoder {
    inner: coder::RangeDecoder,
    precision: u32,
}

impl RangeDecoder {
    fn decode_rows<'py>(
        &mut self,
        py: Python<'py>,
        probs: F32Arr<'py>,
        n: Option<usize>,
        m: Model,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let (rows, v) = rows_cols(probs.shape(), "probabilities")?;
        let data = slice(&probs, "probabilities")?;
        let (dec, p) = (&mut self.inner, self.precision);
        let out = if probs.ndim() == 1 {
            let n = n.ok_or_else(|| {
                PyValueError::new_err("pass n= (number of symbols) with a 1-D distribution")
            })?;
            py.allow_threads(|| {
                let mut sc = Vec::new();
                let w = weights(data, m, &mut sc)?;
                dec.decode_all_probs(n, w, p)
            })
        } else {
            if n.is_some_and(|n| n != rows) {
                return Err(PyValueError::new_err(
                    "n must equal the number of rows for 2-D probabilities",
                ));
            }
            py.allow_threads(|| {
                if matches!(m, Model::Probs) && v >= 2 {
                    // All rows at once: the decoder pipelines their preparation.
                    let mut out = Vec::new();
                    return dec.decode_probs_rows(data, v, p, &mut out).map(|()| out);
                }
                let (mut sc, mut fq) = (Vec::new(), Vec::new());
                data.chunks(v.max(1))
                    .map(|row| {
                        let w = weights(row, m, &mut sc)?;
                        dec.decode_probs(w, p, &mut fq)
                    })
                    .collect::<mmz_core::Result<Vec<u32>>>()
            })
        }
        .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    }
}

#[pymethods]
impl RangeDecoder {
    #[new]
    #[pyo3(signature = (data, precision=24))]
    fn new(data: &[u8], precision: u32) -> PyResult<Self> {
        quant::check_params(precision, 2).map_err(to_py)?;
        Ok(RangeDecoder {
            inner: coder::RangeDecoder::new(data.to_vec()),
            precision,
        })
    }

    /// Decode one symbol per row of 2-D float32 probabilities, or `n` symbols
    /// under a 1-D static distribution. Returns uint32 symbols.
    #[pyo3(signature = (probs, n=None))]
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        probs: F32Arr<'py>,
        n: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        self.decode_rows(py, probs, n, Model::Probs)
    }

    /// Like `decode`, with logits.
    #[pyo3(signature = (logits, n=None))]
    fn decode_logits<'py>(
        &mut self,
        py: Python<'py>,
        logits: F32Arr<'py>,
        n: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        self.decode_rows(py, logits, n, Model::Logits)
    }

    /// Decode under integer frequencies (2-D: one symbol per row; 1-D: `n` symbols).
    #[pyo3(signature = (freqs, n=None))]
    fn decode_freqs<'py>(
        &mut self,
        py: Python<'py>,
        freqs: U32Arr<'py>,
        n: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let (rows, v) = rows_cols(freqs.shape(), "freqs")?;
        let data = slice(&freqs, "freqs")?;
        let dec = &mut self.inner;
        let out = if freqs.ndim() == 1 {
            let n = n.ok_or_else(|| {
                PyValueError::new_err("pass n= (number of symbols) with 1-D freqs")
            })?;
            py.allow_threads(|| dec.decode_all_freqs(n, data))
        } else {
            if n.is_some_and(|n| n != rows) {
                return Err(PyValueError::new_err(
                    "n must equal the number of rows for 2-D freqs",
                ));
            }
            py.allow_threads(|| {
                data.chunks(v.max(1))
                    .map(|row| dec.decode_freqs(row))
                    .collect()
            })
        }
        .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Decode under a CDF (2-D: one symbol per row; 1-D: `n` symbols).
    #[pyo3(signature = (cdf, n=None))]
    fn decode_cdf<'py>(
        &mut self,
        py: Python<'py>,
        cdf: U32Arr<'py>,
        n: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let (rows, w) = rows_cols(cdf.shape(), "cdf")?;
        let data = slice(&cdf, "cdf")?;
        let dec = &mut self.inner;
        let out = if cdf.ndim() == 1 {
            let n = n.ok_or_else(|| {
                PyValueError::new_err("pass n= (number of symbols) with a 1-D cdf")
            })?;
            py.allow_threads(|| dec.decode_all_freqs(n, &quant::cdf_to_freqs(data)?))
        } else {
            if n.is_some_and(|n| n != rows) {
                return Err(PyValueError::new_err(
                    "n must equal the number of rows for a 2-D cdf",
                ));
            }
            py.allow_threads(|| {
                data.chunks(w.max(1))
                    .map(|row| dec.decode_freqs(&quant::cdf_to_freqs(row)?))
                    .collect()
            })
        }
        .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Bytes read past the end of the data (zeros are implied there).
    #[getter]
    fn overrun(&self) -> usize {
        self.inner.overrun()
    }
}

fn batch_rows<'a>(probs: &'a F32Arr<'_>, b: usize) -> PyResult<(&'a [f32], usize)> {
    let (rows, v) = rows_cols(probs.shape(), "probabilities")?;
    if probs.ndim() != 2 || rows != b {
        return Err(PyValueError::new_err(format!(
            "probabilities must have shape (batch={b}, V), got {:?}",
            probs.shape()
        )));
    }
    Ok((slice(probs, "probabilities")?, v))
}

/// `batch` independent range-coded streams stepping in lockstep.
#[pyclass(module = "mmz._core")]
pub struct BatchEncoder {
    inner: Option<batch::BatchEncoder>,
}

impl BatchEncoder {
    fn step(
        &mut self,
        py: Python<'_>,
        probs: F32Arr<'_>,
        symbols: Syms<'_>,
        m: Model,
    ) -> PyResult<()> {
        let enc = self
            .inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("BatchEncoder already finished"))?;
        let (data, v) = batch_rows(&probs, enc.batch())?;
        let syms = sym_slice(&symbols)?;
        py.allow_threads(|| enc.encode_step(data, v, syms, to_kind(m)))
            .map_err(to_py)
    }
}

#[pymethods]
impl BatchEncoder {
    #[new]
    #[pyo3(signature = (batch, precision=24))]
    fn new(batch: usize, precision: u32) -> PyResult<Self> {
        Ok(BatchEncoder {
            inner: Some(batch::BatchEncoder::new(batch, precision).map_err(to_py)?),
        })
    }

    /// Code `symbols[b]` in stream `b` under row `b` of float32 `probs` (shape `(batch, V)`).
    fn encode_step(
        &mut self,
        py: Python<'_>,
        probs: F32Arr<'_>,
        symbols: Syms<'_>,
    ) -> PyResult<()> {
        self.step(py, probs, symbols, Model::Probs)
    }

    /// Like `encode_step`, with logits.
    fn encode_step_logits(
        &mut self,
        py: Python<'_>,
        logits: F32Arr<'_>,
        symbols: Syms<'_>,
    ) -> PyResult<()> {
        self.step(py, logits, symbols, Model::Logits)
    }

    /// Flush all streams; returns one `bytes` per stream. The encoder cannot be used afterwards.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let enc = self
            .inner
            .take()
            .ok_or_else(|| PyValueError::new_err("BatchEncoder already finished"))?;
        let streams = py.allow_threads(|| enc.finish());
        Ok(streams.iter().map(|s| PyBytes::new(py, s)).collect())
    }

    /// Number of streams.
    #[getter]
    fn batch(&self) -> usize {
        self.inner.as_ref().map_or(0, |e| e.batch())
    }
}

/// Decoder for the streams of a `BatchEncoder`.
#[pyclass(module = "mmz._core")]
pub struct BatchDecoder {
    inner: batch::BatchDecoder,
}

impl BatchDecoder {
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        probs: F32Arr<'py>,
        m: Model,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let b = self.inner.batch();
        let (data, v) = batch_rows(&probs, b)?;
        let dec = &mut self.inner;
        let out = py
            .allow_threads(|| {
                let mut out = vec![0u32; b];
                dec.decode_step(data, v, &mut out, to_kind(m)).map(|_| out)
            })
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    }
}

#[pymethods]
impl BatchDecoder {
    #[new]
    #[pyo3(signature = (streams, precision=24))]
    fn new(streams: Vec<Vec<u8>>, precision: u32) -> PyResult<Self> {
        Ok(BatchDecoder {
            inner: batch::BatchDecoder::new(streams, precision).map_err(to_py)?,
        })
    }

    /// Decode one symbol per stream under float32 `probs` (shape `(batch, V)`).
    fn decode_step<'py>(
        &mut self,
        py: Python<'py>,
        probs: F32Arr<'py>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        self.step(py, probs, Model::Probs)
    }

    /// Like `decode_step`, with logits.
    fn decode_step_logits<'py>(
        &mut self,
        py: Python<'py>,
        logits: F32Arr<'py>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        self.step(py, logits, Model::Logits)
    }

    /// Number of streams.
    #[getter]
    fn batch(&self) -> usize {
        self.inner.batch()
    }
}

/// Encode `symbols` with an adaptive counting model over `alphabet_size` symbols.
#[pyfunction]
pub fn encode_adaptive<'py>(
    py: Python<'py>,
    symbols: Syms<'py>,
    alphabet_size: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let syms = sym_slice(&symbols)?;
    let out = py
        .allow_threads(|| coder::encode_adaptive(syms, alphabet_size))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// Decode `n` symbols written by `encode_adaptive`.
#[pyfunction]
pub fn decode_adaptive<'py>(
    py: Python<'py>,
    data: &[u8],
    n: usize,
    alphabet_size: usize,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let out = py
        .allow_threads(|| coder::decode_adaptive(data, n, alphabet_size))
        .map_err(to_py)?;
    Ok(PyArray1::from_vec(py, out))
}

/// Register this module's classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> pyo3::PyResult<()> {
    m.add_class::<RangeEncoder>()?;
    m.add_class::<RangeDecoder>()?;
    m.add_class::<BatchEncoder>()?;
    m.add_class::<BatchDecoder>()?;
    m.add_function(wrap_pyfunction!(quantize_probs, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_logits, m)?)?;
    m.add_function(wrap_pyfunction!(encode_adaptive, m)?)?;
    m.add_function(wrap_pyfunction!(decode_adaptive, m)?)?;
    m.add("CODER_MIN_PRECISION", quant::MIN_PRECISION)?;
    m.add("CODER_MAX_PRECISION", quant::MAX_PRECISION)?;
    Ok(())
}
