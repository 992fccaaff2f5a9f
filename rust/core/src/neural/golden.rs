//! Golden-vector and invariance tests of the engine (also run under qemu by
//! bench/qemu_golden.sh). Vectors: tests/golden/neural/ (make_golden.py).

use super::codec::{run_logits, NeuralCodec, PRECISION};
use super::weights::Model;
use crate::checksum::xxh3;
use crate::hint::{Hint, Modality, SampleLayout};
use crate::quant;

const CONTAINER: &[u8] = include_bytes!("../../../../tests/golden/neural/tiny.mmznw");
const GOLDEN: &str = include_str!("../../../../tests/golden/neural/golden.txt");
const ROWS: usize = 2;
const STEPS: usize = 40;

fn golden(key: &str) -> u64 {
    GOLDEN
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

fn codec() -> NeuralCodec {
    let model = Model::from_container(CONTAINER).expect("golden container parses");
    NeuralCodec::new(model, vec!["text".into(), "image".into()]).expect("codec")
}

fn golden_text() -> Vec<u8> {
    b"golden vector: the quick brown fox jumps over the lazy dog 0123456789".repeat(3)
}

#[test]
fn golden_vectors() {
    let c = codec();
    let mut st: u64 = 12345;
    let mut toks = vec![0u32; ROWS * STEPS];
    for r in 0..ROWS {
        toks[r * STEPS] = 512 + r as u32;
        for s in 1..STEPS {
            st = (st * 1_103_515_245 + 12345) % (1 << 31);
            toks[r * STEPS + s] = 256 * r as u32 + ((st >> 16) % 256) as u32;
        }
    }
    let lg = run_logits(&c.model, &toks, &[0, 1], STEPS).expect("run");
    let bytes: Vec<u8> = lg.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut cdfs = Vec::new();
    let mut out = vec![0u32; 256];
    let mut scratch = Vec::new();
    for row in lg.chunks_exact(256) {
        quant::quantize_logits(row, PRECISION, &mut out, &mut scratch).expect("quant");
        cdfs.extend(out.iter().flat_map(|f| f.to_le_bytes()));
    }
    let payload = c.encode(&golden_text(), 1, &Hint::bytes(Modality::Text), 1, 1).expect("encode");
    assert_eq!(c.probe, golden("probe"), "probe hash");
    assert_eq!(xxh3(&bytes), golden("logits"), "logits bits");
    assert_eq!(xxh3(&cdfs), golden("cdfs"), "CDF hash");
    assert_eq!(payload.len() as u64, golden("payload_len"), "payload length");
    assert_eq!(xxh3(&payload), golden("payload"), "payload hash");
}

#[test]
fn batch_and_thread_invariance_and_roundtrip() {
    let c = codec();
    let mut data = Vec::new();
    let mut st = 99u32;
    for i in 0..20_000u32 {
        st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push(if i % 7 == 0 { (st >> 24) as u8 } else { b"abcabcabd"[(i % 9) as usize] });
    }
    let hint = Hint {
        modality: Modality::Image,
        layout: Some(SampleLayout {
            channels: 1,
            bytes_per_sample: 2,
            big_endian: false,
            signed: false,
            width: 64,
            data_start: 3,
            data_end: 19_000,
            first_sample: 0,
        }),
    };
    // level 1: 4096-byte segments -> 5 streams.
    let p1 = c.encode(&data, 1, &hint, 1, 1).expect("b1");
    let p4 = c.encode(&data, 1, &hint, 4, 2).expect("b4");
    let p64 = c.encode(&data, 1, &hint, 64, 2).expect("b64");
    assert_eq!(p1, p4);
    assert_eq!(p1, p64);
    assert_eq!(c.decode(&p64, data.len(), &hint, 1, 1).expect("dec"), data);
    assert_eq!(c.decode(&p1, data.len(), &hint, 3, 2).expect("dec"), data);
    // A payload claiming another probe hash is refused.
    let mut bad = p1.clone();
    bad[4] ^= 1;
    let e = c.decode(&bad, data.len(), &hint, 1, 1).unwrap_err();
    assert!(e.to_string().contains("probe"), "{e}");
    // Truncation and garbage never panic.
    for cut in [0, 5, 19, 30, p1.len() - 1] {
        assert!(c.decode(&p1[..cut], data.len(), &hint, 1, 1).is_err());
    }
    let rec = c.encode_chunk(&data, 1, &hint, 8, 1).expect("record");
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 2, 1).expect("chunk"), data);
}

#[test]
fn container_errors_are_values() {
    for cut in [0, 7, 8, 40, 100, CONTAINER.len() - 1] {
        assert!(Model::from_container(&CONTAINER[..cut]).is_err());
    }
    let mut bad = CONTAINER.to_vec();
    bad[12] = 0xFF; // d_model negative/huge
    assert!(Model::from_container(&bad).is_err());
}
