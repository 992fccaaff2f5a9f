//! Shared fuzz entry points: each must return normally (errors are fine) for
//! every input; a panic, abort or out-of-bounds access is a bug.

use mmz_core::batch::{BatchDecoder, RowKind};
use mmz_core::coder::{self, RangeDecoder};
use mmz_core::frame;

/// Parse and decode `.mmz` frames from arbitrary bytes.
pub fn frame_decode(data: &[u8]) {
    if let Ok(frames) = frame::decode_frames(data) {
        // A successful decode must be reproducible.
        let again = frame::decode_frames(data);
        assert!(again.is_ok(), "frame decode not deterministic");
        drop(frames);
    }
    let _ = frame::decompress_frames(data);
}

/// Decode arbitrary bytes as range-coded streams. The first bytes choose the
/// alphabet, precision and model; the rest is the stream.
pub fn range_decode(data: &[u8]) {
    let (head, stream) = data.split_at(data.len().min(4));
    let h = |i: usize| head.get(i).copied().unwrap_or(0) as usize;
    // Mostly small alphabets (fast executions); bit 7 of byte 3 selects up to 65,536.
    let span = if h(3) & 0x80 != 0 { 65_535 } else { 1_023 };
    let v = 2 + (h(0) << 8 | h(1)) % span;
    let precision = 12 + (h(2) % 13) as u32;
    let mode = h(3) % 4;
    let steps = if v > 4096 { 4 } else { 64 };
    let v = if (v as u64) > (1u64 << precision) { 1usize << precision.min(16) } else { v };
    let probs: Vec<f32> = (0..v).map(|i| 1.0 / (1 + (i * 7919) % 1013) as f32).collect();
    match mode {
        0 => {
            let mut d = RangeDecoder::new(stream.to_vec());
            let mut sc = Vec::new();
            for _ in 0..steps {
                match d.decode_probs(&probs, precision, &mut sc) {
                    Ok(s) => assert!((s as usize) < v, "symbol out of range"),
                    Err(_) => break,
                }
            }
        }
        1 => {
            if let Ok(out) = coder::decode_static(stream, steps * 4, &probs, precision) {
                assert!(out.iter().all(|&s| (s as usize) < v));
            }
        }
        2 => {
            if let Ok(out) = coder::decode_adaptive(stream, steps * 4, v) {
                assert!(out.iter().all(|&s| (s as usize) < v));
            }
        }
        _ => {
            let streams: Vec<Vec<u8>> = stream.chunks(7).map(|c| c.to_vec()).take(8).collect();
            if let Ok(mut d) = BatchDecoder::new(if streams.is_empty() { vec![vec![]] } else { streams }, precision) {
                let b = d.batch();
                let rows: Vec<f32> = (0..b).flat_map(|_| probs.iter().copied()).collect();
                let mut out = vec![0u32; b];
                for kind in [RowKind::Probs, RowKind::Logits] {
                    if d.decode_step(&rows, v, &mut out, kind).is_err() {
                        break;
                    }
                    assert!(out.iter().all(|&s| (s as usize) < v));
                }
            }
        }
    }
}
