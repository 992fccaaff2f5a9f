//! The one place where core errors become Python exceptions.

use mmz_core::MmzError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    _core,
    MmzCoreError,
    PyException,
    "Base class of every mmz error."
);
create_exception!(
    _core,
    CorruptDataError,
    MmzCoreError,
    "The compressed data is damaged or truncated."
);

/// Convert a core error into the matching Python exception.
pub fn to_py(e: MmzError) -> PyErr {
    if e.is_data_error() {
        CorruptDataError::new_err(e.to_string())
    } else {
        MmzCoreError::new_err(e.to_string())
    }
}

/// Result alias for binding functions.
pub type PyResult<T> = Result<T, PyErr>;
