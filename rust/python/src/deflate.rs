//! Bindings for the pinned deflate and PNG filters (`mmz.transform.png`).

use crate::errors::{to_py, PyResult};
use mmz_core::deflate::{self, DeflateParams};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn params(level: u8, mem_level: u8, strategy: u8, window_bits: u8) -> DeflateParams {
    DeflateParams {
        level,
        mem_level,
        strategy,
        window_bits,
    }
}

/// Engine id of the bundled zlib, as stored in PNG side info.
#[pyfunction]
pub fn deflate_engine() -> u8 {
    deflate::ENGINE_ZLIB
}

/// zlib-wrapped deflate of `data` with the pinned engine.
#[pyfunction]
pub fn zlib_deflate<'py>(
    py: Python<'py>,
    data: &[u8],
    level: u8,
    mem_level: u8,
    strategy: u8,
    window_bits: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let p = params(level, mem_level, strategy, window_bits);
    let out = py
        .allow_threads(|| deflate::zlib_deflate(data, &p))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// Parameters `(level, mem_level, strategy, window_bits)` that re-create
/// `target` from `data` exactly, or None (at most `max_tries` candidates).
#[pyfunction]
#[pyo3(signature = (data, target, max_tries=400))]
pub fn zlib_search(
    py: Python<'_>,
    data: &[u8],
    target: &[u8],
    max_tries: usize,
) -> PyResult<Option<(u8, u8, u8, u8)>> {
    let found = py
        .allow_threads(|| deflate::zlib_search(data, target, max_tries))
        .map_err(to_py)?;
    Ok(found.map(|p| (p.level, p.mem_level, p.strategy, p.window_bits)))
}

/// Undo PNG row filters: returns (filter byte per row, raw rows).
#[pyfunction]
pub fn png_unfilter<'py>(
    py: Python<'py>,
    data: &[u8],
    row_bytes: usize,
    bpp: usize,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (f, raw) = py
        .allow_threads(|| deflate::png_unfilter(data, row_bytes, bpp))
        .map_err(to_py)?;
    Ok((PyBytes::new(py, &f), PyBytes::new(py, &raw)))
}

/// Apply PNG row filters (inverse of `png_unfilter`).
#[pyfunction]
pub fn png_filter<'py>(
    py: Python<'py>,
    raw: &[u8],
    filters: &[u8],
    row_bytes: usize,
    bpp: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .allow_threads(|| deflate::png_filter(raw, filters, row_bytes, bpp))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// Register the functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> pyo3::PyResult<()> {
    m.add_function(wrap_pyfunction!(deflate_engine, m)?)?;
    m.add_function(wrap_pyfunction!(zlib_deflate, m)?)?;
    m.add_function(wrap_pyfunction!(zlib_search, m)?)?;
    m.add_function(wrap_pyfunction!(png_unfilter, m)?)?;
    m.add_function(wrap_pyfunction!(png_filter, m)?)?;
    Ok(())
}
