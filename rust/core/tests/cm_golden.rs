//! Golden payloads of the context-mixing engine.
//!
//! Each case is an input (an excerpt of a bundled sample file under `data/sample/`, or
//! deterministic synthetic pixels) plus the CM payload an earlier engine version wrote for it,
//! committed under `tests/golden/cm/`. Every released payload version must keep decoding to
//! the same bytes, so these tests fail if a model change is not gated on the payload version.
//!
//! Regenerate payloads of the *current* version (only when adding a new version's files):
//! `MMZ_WRITE_CM_GOLDEN=1 cargo test -p mmz-core --release --test cm_golden`.

use std::path::PathBuf;

use mmz_core::ctxmix;
use mmz_core::hint::{Hint, Modality, SampleLayout};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(rel: &str, max: usize) -> Vec<u8> {
    let mut v = std::fs::read(repo().join("data/sample").join(rel)).expect("bundled sample file");
    v.truncate(max);
    v
}

/// Offset of the PCM data of a canonical RIFF/WAVE file and its channel count.
fn wav_layout(w: &[u8]) -> SampleLayout {
    let mut p = 12usize;
    let mut channels = 1u8;
    while p + 8 <= w.len() {
        let id = &w[p..p + 4];
        let n = u32::from_le_bytes([w[p + 4], w[p + 5], w[p + 6], w[p + 7]]) as usize;
        if id == b"fmt " {
            channels = w[p + 10];
        }
        if id == b"data" {
            let start = p + 8;
            let end = (start + n).min(w.len());
            let end = start + (end - start) / 2 * 2;
            return SampleLayout {
                channels,
                bytes_per_sample: 2,
                big_endian: false,
                signed: true,
                width: 0,
                data_start: start as u32,
                data_end: end as u32,
                first_sample: 0,
            };
        }
        p += 8 + n + (n & 1);
    }
    panic!("no data chunk in bundled WAV sample");
}

/// A smooth synthetic RGB image with texture and edges (deterministic).
fn synthetic_rgb(w: u32, h: u32) -> Vec<u8> {
    let mut s = 0x1234_5678u32;
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (s >> 29) as i32;
            let edge = if (x / 17 + y / 11) % 3 == 0 { 60 } else { 0 };
            for c in 0..3 {
                let base = (x * (c + 1) + y * (3 - c)) as i32 / 2 + edge + noise;
                v.push(base.clamp(0, 255) as u8);
            }
        }
    }
    v
}

/// A 16-bit big-endian grey ramp with noise (PNM-style medical layout).
fn synthetic_gray16(w: u32, h: u32) -> Vec<u8> {
    let mut s = 99u32;
    let mut v = Vec::with_capacity((w * h * 2) as usize);
    for y in 0..h {
        for x in 0..w {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let val = (x * 37 + y * 23 + ((x * y) % 97) * 5) as i32 * 3 + (s >> 27) as i32;
            v.extend_from_slice(&(val.clamp(0, 4095) as u16).to_be_bytes());
        }
    }
    v
}

/// Binary-like records (deterministic): a table of little-endian 32-bit fields (ids, small
/// counts, offsets), NUL-terminated names, and a stretch of pseudo-random bytes.
fn synthetic_binary(records: u32) -> Vec<u8> {
    let mut s = 7u32;
    let mut v = Vec::new();
    for i in 0..records {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.extend_from_slice(&(i + 1000).to_le_bytes());
        v.extend_from_slice(&(s >> 28).to_le_bytes());
        v.extend_from_slice(&(0x40_0000 + i * 48 + (s >> 30)).to_le_bytes());
        v.extend_from_slice(&[(s >> 8) as u8, 0, 0, 0]);
    }
    for i in 0..records / 4 {
        v.extend_from_slice(format!("sym_{}_{}\0", i % 37, i / 3).as_bytes());
    }
    for _ in 0..2048 {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((s >> 24) as u8);
    }
    v
}

struct Case {
    name: &'static str,
    data: Vec<u8>,
    level: u8,
    hint: Hint,
}

fn cases() -> Vec<Case> {
    let text = sample("text/debian_handbook_en.txt", 48 << 10);
    let wav = sample("music/hydrogen_ColomboAcousticDrumkit__hihat-closed-1.wav", 1 << 20);
    let speech = sample("speech/asterisk_agent-alreadyon.wav", 1 << 20);
    let rgb = synthetic_rgb(96, 64);
    let g16 = synthetic_gray16(64, 48);
    let img = |w: u32, ch: u8, bps: u8, be: bool, len: usize| SampleLayout {
        channels: ch,
        bytes_per_sample: bps,
        big_endian: be,
        signed: false,
        width: w,
        data_start: 0,
        data_end: len as u32,
        first_sample: 0,
    };
    let bin = synthetic_binary(1500);
    vec![
        Case { name: "bin_l1", data: bin.clone(), level: 1, hint: Hint::bytes(Modality::Binary) },
        Case { name: "bin_l5", data: bin.clone(), level: 5, hint: Hint::bytes(Modality::Binary) },
        Case { name: "bin_l9", data: bin, level: 9, hint: Hint::bytes(Modality::Binary) },
        Case { name: "text_l1", data: text.clone(), level: 1, hint: Hint::bytes(Modality::Text) },
        Case { name: "text_l5", data: text.clone(), level: 5, hint: Hint::bytes(Modality::Text) },
        Case { name: "text_l9", data: text, level: 9, hint: Hint::bytes(Modality::Text) },
        Case {
            name: "sql_l5",
            data: sample("structured/rdatasets_sqlite_dump_head.sql", 32 << 10),
            level: 5,
            hint: Hint::bytes(Modality::Structured),
        },
        Case {
            name: "fastq_l5",
            data: sample("gene/solexa_s_1_sequence.fastq", 32 << 10),
            level: 5,
            hint: Hint::bytes(Modality::Gene),
        },
        Case {
            name: "music_l5",
            hint: Hint { modality: Modality::Audio, layout: Some(wav_layout(&wav)) },
            data: wav,
            level: 5,
        },
        Case {
            name: "speech_l9",
            hint: Hint { modality: Modality::Audio, layout: Some(wav_layout(&speech)) },
            data: speech,
            level: 9,
        },
        Case {
            name: "rgb_l5",
            hint: Hint { modality: Modality::Image, layout: Some(img(96, 3, 1, false, rgb.len())) },
            data: rgb,
            level: 5,
        },
        Case {
            name: "gray16_l5",
            hint: Hint { modality: Modality::Image, layout: Some(img(64, 1, 2, true, g16.len())) },
            data: g16,
            level: 5,
        },
    ]
}

fn golden_dir() -> PathBuf {
    repo().join("tests/golden/cm")
}

#[test]
fn released_payload_versions_still_decode() {
    let write = std::env::var_os("MMZ_WRITE_CM_GOLDEN").is_some();
    let mut checked = 0;
    for c in cases() {
        if write {
            let payload = ctxmix::compress(&c.data, c.level, &c.hint).unwrap();
            let path = golden_dir().join(format!("v{}_{}.bin", payload[0], c.name));
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(path, payload).unwrap();
        }
        let mut found = 0;
        for entry in std::fs::read_dir(golden_dir()).expect("tests/golden/cm exists") {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if !file.ends_with(&format!("_{}.bin", c.name)) {
                continue;
            }
            let payload = std::fs::read(&path).unwrap();
            let out = ctxmix::decompress(&payload, c.data.len(), c.level, &c.hint)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(out == c.data, "{file}: decoded bytes differ from the input");
            found += 1;
        }
        assert!(found >= 1, "no golden payload for case {}", c.name);
        checked += found;
    }
    assert!(checked >= 12);
}

#[test]
fn current_version_roundtrips_golden_inputs() {
    for c in cases() {
        let payload = ctxmix::compress(&c.data, c.level, &c.hint).unwrap();
        let out = ctxmix::decompress(&payload, c.data.len(), c.level, &c.hint).unwrap();
        assert!(out == c.data, "{}: round trip differs", c.name);
        assert!(payload.len() < c.data.len(), "{}: no compression ({} bytes)", c.name, payload.len());
    }
}
