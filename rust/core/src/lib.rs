//! mmz-core: the exact, fast half of mmz.
//!
//! * [`coder`] — multi-symbol range coder; [`quant`] — deterministic CDF quantization;
//!   [`batch`] — lockstep batches of range-coded streams.
//! * [`bitcoder`] — binary arithmetic coder for bitwise models.
//! * [`order2`] — the simple adaptive order-2 codec.
//! * [`codec`] — codec ids and chunk (de)compression dispatch.
//! * [`deflate`] — pinned zlib deflate and PNG filters (exact PNG re-encoding).
//! * [`frame`] — the `.mmz` frame format with checksums.
//! * [`hint`] — modality and sample layout passed to codecs.
//! * [`neural`] — deterministic RWKV-MoE inference engine and the neural codec.
//! * [`checksum`] — XXH3-64.
//!
//! Nothing here panics on input-driven paths: errors are [`error::MmzError`].

pub mod batch;
pub mod bitcoder;
pub mod checksum;
pub mod codec;
pub mod compact;
pub mod coder;
pub mod ctxmix;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod hint;
pub mod neural;
pub mod order2;
pub mod quant;

pub use error::{MmzError, Result};
