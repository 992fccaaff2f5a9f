//! Deterministic inference engine for the RWKV-MoE predictor and the neural
//! chunk codec (codec id 3).
//!
//! * [`math`] — libm-free `exp`/`ln`/`sigmoid`/`tanh`/`softplus`;
//! * [`weights`] — the `MMZNW001` weight container and the in-memory model;
//! * [`engine`] — one recurrent step for a group of independent streams;
//! * [`mix`] — the network mixed with small per-sub-stream context models (payload flags 1);
//! * [`cmmix`] — the network mixed with the full CM byte model (payload flags 2, 3);
//! * [`samplemix`] — the network mixed with the CM sample model on whole samples (payload flags 4);
//! * [`codec`] — chunk payloads, golden probe, chunk records.

pub mod cmmix;
pub mod codec;
pub mod engine;
pub mod math;
pub mod mix;
pub mod samplemix;
pub mod weights;

#[cfg(test)]
mod golden;

pub use codec::{NeuralCodec, ENGINE_VERSION, PRECISION};
pub use weights::Model;
