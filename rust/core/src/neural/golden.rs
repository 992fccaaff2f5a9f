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

/// `n` pseudo-random bytes from the test LCG, advancing its state `st`.
fn lcg_noise(st: &mut u32, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (*st >> 24) as u8
        })
        .collect()
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
    // Payloads written before the mixed form existed (flags 0) keep these bytes.
    let f = c.encode_forms(&golden_text(), 1, &Hint::bytes(Modality::Text), 1, 1, super::codec::Want::ALL).expect("forms");
    assert_eq!(f.plain.as_deref(), Some(&payload[..]), "plain form from the three-form pass");
    let mixed = f.mixed.expect("tiny model slices are 256 wide");
    assert_eq!(mixed[3], super::codec::FLAGS_MIX);
    assert_eq!(mixed.len() as u64, golden("mixed_payload_len"), "mixed payload length");
    assert_eq!(xxh3(&mixed), golden("mixed_payload"), "mixed payload hash");
    let h = Hint::bytes(Modality::Text);
    assert_eq!(c.decode(&mixed, golden_text().len(), &h, 1, 1).expect("mixed decodes"), golden_text());
    // The CM-mixed form (flags 2).
    let cmx = f.cm_mixed.expect("tiny model slices are 256 wide");
    assert_eq!(cmx[3], super::codec::FLAGS_CM_MIX);
    assert_eq!(cmx.len() as u64, golden("cm_mixed_payload_len"), "CM-mixed payload length");
    assert_eq!(xxh3(&cmx), golden("cm_mixed_payload"), "CM-mixed payload hash");
    assert_eq!(c.decode(&cmx, golden_text().len(), &h, 1, 1).expect("CM-mixed decodes"), golden_text());
    // The CM-group form (flags 3): 3 sub-streams in one group (pins the shared model's bits, e.g.
    // across CM engine speed work: a new per-stream field of `ByteModel` belongs in `RowState`).
    let long = golden_text().repeat(40);
    let grp = c.encode_cm_group(&long, 1, &h, 1, 1).expect("CM-group form");
    assert_eq!(grp[3], super::codec::FLAGS_CM_GROUP);
    assert_eq!(grp.len() as u64, golden("cm_group_payload_len"), "CM-group payload length");
    assert_eq!(xxh3(&grp), golden("cm_group_payload"), "CM-group payload hash");
    assert_eq!(c.decode(&grp, long.len(), &h, 2, 2).expect("CM-group decodes"), long);
    // The sample-mixed form (flags 4): an 8-bit RGB image of 4 sub-streams in two groups.
    let (img, ih) = golden_image(200);
    let want = super::codec::Want { sample: true, ..Default::default() };
    let smx = c.encode_forms(&img, 1, &ih, 1, 1, want).expect("sample form").sample.expect("the image has samples");
    assert_eq!(smx[3], super::codec::FLAGS_SAMPLE_MIX);
    assert_eq!(smx.len() as u64, golden("sample_payload_len"), "sample-mixed payload length");
    assert_eq!(xxh3(&smx), golden("sample_payload"), "sample-mixed payload hash");
    assert_eq!(c.decode(&smx, img.len(), &ih, 2, 2).expect("sample-mixed decodes"), img);
}

/// A 7-byte header, then `rows` rows of a 24-pixel-wide RGB image, then a 3-byte tail (as in
/// make_golden.py), and its hint.
fn golden_image(rows: u32) -> (Vec<u8>, Hint) {
    let mut v = b"header:".to_vec();
    for y in 0..rows {
        for x in 0..24u32 {
            for ch in 0..3u32 {
                v.push(((x * 7 + y * 3 + ch * 60 + (x * y) % 11) & 255) as u8);
            }
        }
    }
    let end = v.len() as u32;
    v.extend_from_slice(b"end");
    let l = SampleLayout { channels: 3, bytes_per_sample: 1, big_endian: false, signed: false, width: 24, data_start: 7, data_end: end, first_sample: 0 };
    (v, Hint { modality: Modality::Image, layout: Some(l) })
}

#[test]
fn sample_form_invariance_roundtrip_and_damage() {
    use super::codec::{Want, FLAGS_SAMPLE_MIX, PAYLOAD_FIXED};
    let c = codec();
    let want = Want { sample: true, ..Want::default() };
    let enc = |d: &[u8], level: u8, h: &Hint, b: usize, t: usize| c.encode_forms(d, level, h, b, t, want).expect("encode").sample;
    let (img, ih) = golden_image(200);
    // 16-bit signed stereo audio, little-endian, after a 44-byte header (5 sub-streams at level 1)
    let mut au = vec![0u8; 44];
    let mut st = 5u32;
    for t in 0..5000i32 {
        let v = ((t * 91) % 3000 - 1500) * 9 + (lcg_noise(&mut st, 1)[0] as i32 >> 5);
        au.extend_from_slice(&(v as i16).to_le_bytes());
        au.extend_from_slice(&((v / 2) as i16).to_le_bytes());
    }
    let al = SampleLayout { channels: 2, bytes_per_sample: 2, big_endian: false, signed: true, width: 0, data_start: 44, data_end: au.len() as u32, first_sample: 0 };
    let ah = Hint { modality: Modality::Audio, layout: Some(al) };
    let clip = |h: Hint, n: usize| {
        let mut l = h.layout.unwrap_or_default();
        l.data_end = l.data_end.min(n as u32);
        Hint { layout: Some(l), ..h }
    };
    for (data, hint, level) in [(img.clone(), ih, 1u8), (au.clone(), ah, 1), (au[..1001].to_vec(), clip(ah, 1001), 5), (img[..9].to_vec(), clip(ih, 9), 9)] {
        let m1 = enc(&data, level, &hint, 1, 1).expect("a sample region");
        assert_eq!(m1[3], FLAGS_SAMPLE_MIX);
        assert_eq!(enc(&data, level, &hint, 4, 2).expect("b4"), m1);
        assert_eq!(enc(&data, level, &hint, 64, 2).expect("b64"), m1);
        assert_eq!(c.decode(&m1, data.len(), &hint, 64, 2).expect("dec"), data);
        assert_eq!(c.decode(&m1, data.len(), &hint, 1, 1).expect("dec"), data);
        for cut in [0, 3, 22, m1.len().saturating_sub(1)] {
            if cut < m1.len() {
                assert!(c.decode(&m1[..cut], data.len(), &hint, 1, 1).is_err(), "cut {cut}");
            }
        }
        // A damaged stream never decodes to the input.
        let mut bad = m1.clone();
        let k = PAYLOAD_FIXED + 4 + 4 * data.len().div_ceil(super::codec::segment_len(level)) + 2;
        if k < bad.len() {
            bad[k] ^= 0x21;
            assert!(c.decode(&bad, data.len(), &hint, 1, 1).map(|d| d != data).unwrap_or(true));
        }
        // The chunk record is never larger than the sample form or the CM codec, and decodes.
        let rec = c.encode_chunk(&data, level, &hint, 8, 2).expect("record");
        let (_, cm) = crate::codec::compress_chunk(&data, crate::codec::CodecId::Cm, level, &hint).expect("cm");
        assert!(rec.len() - 64 <= m1.len().min(cm.len()));
        let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
        assert_eq!(c.decode_chunk(&h, &rec[64..], 1, 2).expect("chunk"), data);
    }
    // No sample region: no sample form.
    assert!(enc(&golden_text(), 1, &Hint::bytes(Modality::Text), 1, 1).is_none());
    // Sharing the sample model across a group beats a cold model per sub-stream (G = 1).
    let grouped = enc(&img, 1, &ih, 1, 1).expect("grouped");
    let g = u32::from_le_bytes([grouped[PAYLOAD_FIXED], grouped[PAYLOAD_FIXED + 1], grouped[PAYLOAD_FIXED + 2], grouped[PAYLOAD_FIXED + 3]]);
    assert_eq!(g as usize, super::codec::sample_group_len(4096, 4));
    assert_eq!(g, 2);
    let mut alone = 0;
    for (i, p) in img.chunks(4096).enumerate() {
        // the same sub-stream coded as a chunk of its own
        let mut l = ih.layout.unwrap_or_default();
        l.data_start = if i == 0 { 7 } else { 0 };
        l.data_end = p.len() as u32 - if i == 3 { 3 } else { 0 };
        l.first_sample = (i * 4096).saturating_sub(7) as u64;
        let h = Hint { modality: Modality::Image, layout: Some(l) };
        alone += enc(p, 1, &h, 1, 1).expect("part").len();
    }
    assert!(grouped.len() < alone, "grouped {} alone {alone}", grouped.len());
}

#[test]
fn cm_mixed_form_invariance_roundtrip_and_damage() {
    let c = codec();
    let mut st = 11u32;
    let text: Vec<u8> = (0..20_000u32)
        .map(|i| {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if st >> 29 == 0 { (st >> 20) as u8 } else { b"the CM engine as the network's mixing partner; "[(i % 47) as usize] }
        })
        .collect();
    let noise = lcg_noise(&mut st, 9000);
    let text_hint = Hint::bytes(Modality::Text);
    let gene_hint = Hint::bytes(Modality::Gene);
    for (data, hint, level) in [
        (text.clone(), text_hint, 1u8),
        (text.clone(), gene_hint, 5),
        (noise, text_hint, 1),
        (vec![], text_hint, 1),
        (vec![7u8], text_hint, 1),
        (b"ab".to_vec(), text_hint, 9),
    ] {
        // B = 1, 4, 64 and 1 or 2 threads give the same bytes; decoding with any grouping inverts them.
        let m1 = c.encode_cm_mixed(&data, level, &hint, 1, 1).expect("b1");
        assert_eq!(m1[3], super::codec::FLAGS_CM_MIX);
        assert_eq!(c.encode_cm_mixed(&data, level, &hint, 4, 2).expect("b4"), m1);
        assert_eq!(c.encode_cm_mixed(&data, level, &hint, 64, 2).expect("b64"), m1);
        assert_eq!(c.decode(&m1, data.len(), &hint, 64, 2).expect("dec"), data);
        assert_eq!(c.decode(&m1, data.len(), &hint, 1, 1).expect("dec"), data);
        for cut in [0, 3, 19, m1.len().saturating_sub(1)] {
            if cut < m1.len() {
                assert!(c.decode(&m1[..cut], data.len(), &hint, 1, 1).is_err(), "cut {cut}");
            }
        }
    }
    // The CM partner learns the repeated phrase far better than the small flags-1 models alone.
    let mixed = c.encode_mixed(&text, 1, &text_hint, 8, 1).expect("mixed");
    let cmx = c.encode_cm_mixed(&text, 1, &text_hint, 8, 1).expect("cm mixed");
    assert!(cmx.len() < mixed.len(), "cm-mixed {} mixed {}", cmx.len(), mixed.len());
    // Flags 4 is refused; a damaged stream never decodes to the input.
    let mut bad = cmx.clone();
    bad[3] = 4;
    assert!(c.decode(&bad, text.len(), &text_hint, 1, 1).is_err());
    let mut bad = cmx.clone();
    let k = bad.len() / 2;
    bad[k] ^= 0x10;
    if let Ok(out) = c.decode(&bad, text.len(), &text_hint, 1, 1) {
        assert_ne!(out, text);
    }
    // The same body read as the flags-1 form does not decode to the input.
    let mut as1 = cmx.clone();
    as1[3] = super::codec::FLAGS_MIX;
    assert!(c.decode(&as1, text.len(), &text_hint, 1, 1).map(|d| d != text).unwrap_or(true));
    let rec = c.encode_chunk(&text, 1, &text_hint, 8, 2).expect("record");
    let (_, cm) = crate::codec::compress_chunk(&text, crate::codec::CodecId::Cm, 1, &text_hint).expect("cm");
    assert!(rec.len() - 64 <= cmx.len().min(mixed.len()).min(cm.len()));
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 1, 2).expect("chunk"), text);
    let rec = crate::frame::chunk_record(&text, crate::codec::CodecId::Neural, 1, &text_hint, &cmx);
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 2, 1).expect("chunk"), text);
    let mut bad = rec.clone();
    let k = 64 + (rec.len() - 64) / 2;
    bad[k] ^= 1;
    assert!(c.decode_chunk(&h, &bad[64..], 1, 1).is_err());
}

#[test]
fn cm_group_form_invariance_roundtrip_and_damage() {
    use super::codec::{cm_group_len, FLAGS_CM_GROUP, PAYLOAD_FIXED};
    let c = codec();
    let mut st = 17u32;
    let mut phrase = |n: usize, p: &[u8]| -> Vec<u8> {
        (0..n)
            .map(|i| {
                st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if st >> 29 == 0 { (st >> 20) as u8 } else { p[i % p.len()] }
            })
            .collect::<Vec<u8>>()
    };
    // 37 sub-streams at level 1 (4 KiB): groups of 32 and 5, the last sub-stream 370 bytes.
    let long = phrase(36 * 4096 + 370, b"one CM model shared by a group of sub-streams; ");
    let gene = phrase(20_000, b">r1\nACGTTGCAAC\nGGTACCA\n");
    let noise = lcg_noise(&mut st, 9000);
    let text_hint = Hint::bytes(Modality::Text);
    let gene_hint = Hint::bytes(Modality::Gene);
    assert!(cm_group_len(4096, 37) < 37 && 37 % cm_group_len(4096, 37) != 0, "the test needs S not a multiple of G");
    for (data, hint, level) in [
        (long.clone(), text_hint, 1u8),
        (gene.clone(), gene_hint, 5),
        (noise, text_hint, 1),
        (vec![], text_hint, 1),
        (vec![7u8], text_hint, 1),
        (b"ab".to_vec(), text_hint, 9),
        (long[..1000].to_vec(), text_hint, 5),
    ] {
        // B = 1, 4, 64 and 1 or 2 threads give the same bytes; decoding with any batch/threads inverts them.
        let m1 = c.encode_cm_group(&data, level, &hint, 1, 1).expect("b1");
        if data.len() > super::codec::segment_len(level) {
            assert_eq!(m1[3], FLAGS_CM_GROUP);
        } else {
            // One sub-stream: a group of one codes exactly as flags 2 and is written as flags 2.
            assert_eq!(m1, c.encode_cm_mixed(&data, level, &hint, 1, 1).expect("flags 2"));
        }
        assert_eq!(c.encode_cm_group(&data, level, &hint, 4, 2).expect("b4"), m1);
        assert_eq!(c.encode_cm_group(&data, level, &hint, 64, 2).expect("b64"), m1);
        assert_eq!(c.decode(&m1, data.len(), &hint, 64, 2).expect("dec"), data);
        assert_eq!(c.decode(&m1, data.len(), &hint, 1, 1).expect("dec"), data);
        for cut in [0, 3, 19, 22, m1.len().saturating_sub(1)] {
            if cut < m1.len() {
                assert!(c.decode(&m1[..cut], data.len(), &hint, 1, 1).is_err(), "cut {cut}");
            }
        }
        // The same bytes come out of the all-forms pass.
        let f = c.encode_forms(&data, level, &hint, 3, 2, super::codec::Want::ALL).expect("forms");
        assert_eq!(f.cm_group.as_deref(), Some(&m1[..]));
        // The flags-1 form written from the group's small models (where they are the flags-1
        // model: every sub-stream here but a short last one) equals the one coded on its own.
        let alone = c.encode_mixed(&data, level, &hint, 1, 1).expect("flags 1 alone");
        assert_eq!(f.mixed.as_deref(), Some(&alone[..]), "flags 1 from the group, {} bytes", data.len());
    }
    let m = c.encode_cm_group(&long, 1, &text_hint, 8, 2).expect("long");
    let g = u32::from_le_bytes([m[PAYLOAD_FIXED], m[PAYLOAD_FIXED + 1], m[PAYLOAD_FIXED + 2], m[PAYLOAD_FIXED + 3]]);
    assert_eq!(g as usize, cm_group_len(4096, 37));
    // Sharing the CM model across sub-streams beats a CM model per sub-stream here.
    let cmx = c.encode_cm_mixed(&long, 1, &text_hint, 8, 2).expect("cm mixed");
    assert!(m.len() < cmx.len(), "cm-group {} cm-mixed {}", m.len(), cmx.len());
    // A bad group length is refused; another valid one never decodes to the input.
    for bad_g in [0u32, 38, u32::MAX] {
        let mut bad = m.clone();
        bad[PAYLOAD_FIXED..PAYLOAD_FIXED + 4].copy_from_slice(&bad_g.to_le_bytes());
        assert!(c.decode(&bad, long.len(), &text_hint, 1, 1).is_err(), "G = {bad_g}");
    }
    // G above the reader's limit is refused even when the chunk has that many sub-streams.
    let mut bad = m.clone();
    let over = super::codec::CM_GROUP_MAX as u32 + 1;
    bad[16..20].copy_from_slice(&over.to_le_bytes());
    bad[PAYLOAD_FIXED..PAYLOAD_FIXED + 4].copy_from_slice(&over.to_le_bytes());
    let e = c.decode(&bad, over as usize * 4096, &text_hint, 1, 1).unwrap_err();
    assert!(e.to_string().contains("group length"), "{e}");
    let mut bad = m.clone();
    bad[PAYLOAD_FIXED..PAYLOAD_FIXED + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(c.decode(&bad, long.len(), &text_hint, 1, 1).map(|d| d != long).unwrap_or(true));
    // A damaged stream never decodes to the input; read as flags 2 it does not either.
    let mut bad = m.clone();
    let k = bad.len() / 2;
    bad[k] ^= 0x10;
    assert!(c.decode(&bad, long.len(), &text_hint, 1, 1).map(|d| d != long).unwrap_or(true));
    let mut as2 = m.clone();
    as2[3] = super::codec::FLAGS_CM_MIX;
    assert!(c.decode(&as2, long.len(), &text_hint, 1, 1).map(|d| d != long).unwrap_or(true));
    // The chunk record is never larger than flags 3 and decodes; a damaged flags-3 record is refused.
    let rec = c.encode_chunk(&long, 1, &text_hint, 8, 2).expect("record");
    assert!(rec.len() - 64 <= m.len());
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 1, 2).expect("chunk"), long);
    let rec = crate::frame::chunk_record(&long, crate::codec::CodecId::Neural, 1, &text_hint, &m);
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 64, 2).expect("chunk"), long);
    for k in [64 + 30, 64 + (rec.len() - 64) / 2, rec.len() - 1] {
        let mut bad = rec.clone();
        bad[k] ^= 4;
        assert!(c.decode_chunk(&h, &bad[64..], 1, 1).is_err(), "byte {k}");
    }
}

#[test]
fn mixed_form_invariance_roundtrip_and_damage() {
    let c = codec();
    let hint = Hint::bytes(Modality::Text);
    let mut st = 5u32;
    let text: Vec<u8> = (0..30_000u32)
        .map(|i| {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if st >> 29 == 0 { (st >> 20) as u8 } else { b"mixing the network with context models; "[(i % 40) as usize] }
        })
        .collect();
    let noise = lcg_noise(&mut st, 9000);
    for data in [text.clone(), noise, vec![], vec![7u8], b"ab".to_vec()] {
        // level 1: 4 KiB segments; B = 1, 4, 64 and 1 or 2 threads give the same bytes.
        let m1 = c.encode_mixed(&data, 1, &hint, 1, 1).expect("b1");
        assert_eq!(c.encode_mixed(&data, 1, &hint, 4, 2).expect("b4"), m1);
        assert_eq!(c.encode_mixed(&data, 1, &hint, 64, 2).expect("b64"), m1);
        assert_eq!(c.decode(&m1, data.len(), &hint, 64, 2).expect("dec"), data);
        assert_eq!(c.decode(&m1, data.len(), &hint, 1, 1).expect("dec"), data);
        for cut in [0, 3, 19, m1.len().saturating_sub(1)] {
            if cut < m1.len() {
                assert!(c.decode(&m1[..cut], data.len(), &hint, 1, 1).is_err(), "cut {cut}");
            }
        }
    }
    // Mixing learns the repeated phrase that the tiny network cannot predict.
    let plain = c.encode(&text, 1, &hint, 8, 1).expect("plain");
    let mixed = c.encode_mixed(&text, 1, &hint, 8, 1).expect("mixed");
    assert!(mixed.len() * 2 < plain.len(), "mixed {} plain {}", mixed.len(), plain.len());
    // Unknown flags are refused; a damaged stream never decodes to the input.
    let mut bad = mixed.clone();
    bad[3] = 4;
    assert!(c.decode(&bad, text.len(), &hint, 1, 1).is_err());
    let mut bad = mixed.clone();
    let k = bad.len() / 2;
    bad[k] ^= 0x10;
    if let Ok(out) = c.decode(&bad, text.len(), &hint, 1, 1) {
        assert_ne!(out, text);
    }
    // The chunk record is never larger than the mixed, plain or CM payload.
    let rec = c.encode_chunk(&text, 1, &hint, 8, 2).expect("record");
    let (_, cm) = crate::codec::compress_chunk(&text, crate::codec::CodecId::Cm, 1, &hint).expect("cm");
    assert!(rec.len() - 64 <= mixed.len().min(plain.len()).min(cm.len()));
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 1, 2).expect("chunk"), text);
    // A mixed-form record decodes; a damaged one is refused by the checksums.
    let rec = crate::frame::chunk_record(&text, crate::codec::CodecId::Neural, 1, &hint, &mixed);
    let h = crate::frame::ChunkHeader::parse(&rec).expect("header");
    assert_eq!(c.decode_chunk(&h, &rec[64..], 1, 2).expect("chunk"), text);
    let mut bad = rec.clone();
    let k = 64 + (rec.len() - 64) / 2;
    bad[k] ^= 1;
    assert!(c.decode_chunk(&h, &bad[64..], 1, 1).is_err());
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

/// A lockstep step split across threads (large flags-3 groups) computes the
/// same logits and states as one engine call over all rows.
#[test]
fn split_step_matches_one_step() {
    use super::codec::step_rows;
    use super::engine::{step, zero_state};
    let c = codec();
    let model = &c.model;
    let rows = 150;
    let ms = model.cfg.max_slice();
    let mods: Vec<usize> = (0..rows).map(|r| r % model.cfg.n_mod).collect();
    let mut one: Vec<Vec<f32>> = (0..rows).map(|_| zero_state(model)).collect();
    let mut split = one.clone();
    let (mut l1, mut l2) = (vec![0f32; rows * ms], vec![1f32; rows * ms]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
    for t in 0..6 {
        let toks: Vec<u32> = (0..rows)
            .map(|r| {
                let (start, size) = model.cfg.slices[mods[r]];
                (start + (r * 7 + t * 13) % size) as u32
            })
            .collect();
        step(model, &mut one, &toks, &mods, &mut l1).expect("one step");
        pool.install(|| step_rows(model, &mut split, &toks, &mods, &mut l2)).expect("split step");
        assert!(l1.iter().zip(&l2).all(|(a, b)| a.to_bits() == b.to_bits()), "logits differ at step {t}");
    }
    assert!(one.iter().zip(&split).all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())), "states differ");
}
