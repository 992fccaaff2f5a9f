//! Development tool: CM bits/byte of 16-bit PCM WAV files (raw PCM bytes as the denominator).
//! `cargo run -p mmz-core --release --example cm_audio_eval -- LEVEL [--verify] FILE...`
//! Prints one line per file (name, pcm bytes, cm bytes) and the total.

use mmz_core::ctxmix;
use mmz_core::hint::{Hint, Modality, SampleLayout};

fn layout(w: &[u8]) -> Option<SampleLayout> {
    let mut p = 12usize;
    let mut channels = 1u8;
    let mut bits = 16u16;
    while p + 8 <= w.len() {
        let id = &w[p..p + 4];
        let n = u32::from_le_bytes([w[p + 4], w[p + 5], w[p + 6], w[p + 7]]) as usize;
        if id == b"fmt " && p + 24 <= w.len() {
            channels = w[p + 10];
            bits = u16::from_le_bytes([w[p + 22], w[p + 23]]);
        }
        if id == b"data" {
            let start = p + 8;
            let end = (start + n).min(w.len());
            let bps = (bits / 8).max(1) as usize;
            let end = start + (end - start) / bps * bps;
            return Some(SampleLayout {
                channels,
                bytes_per_sample: bps as u8,
                big_endian: false,
                signed: bps > 1,
                width: 0,
                data_start: start as u32,
                data_end: end as u32,
                first_sample: 0,
            });
        }
        p += 8 + n + (n & 1);
    }
    None
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let level: u8 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let verify = args.iter().any(|a| a == "--verify");
    let (mut raw, mut comp) = (0usize, 0usize);
    let t0 = std::time::Instant::now();
    for f in args.iter().skip(1).filter(|a| !a.starts_with("--")) {
        let data = std::fs::read(f).unwrap();
        let Some(l) = layout(&data) else { continue };
        let hint = Hint {
            modality: Modality::Audio,
            layout: Some(l),
        };
        let c = ctxmix::compress(&data, level, &hint).unwrap();
        if verify {
            let d = ctxmix::decompress(&c, data.len(), level, &hint).unwrap();
            assert!(d == data, "{f}: round trip differs");
        }
        let pcm = (l.data_end - l.data_start) as usize;
        raw += pcm;
        comp += c.len();
        println!(
            "{}\t{}\t{}",
            f.rsplit('/').next().unwrap_or(f),
            pcm,
            c.len()
        );
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "TOTAL\t{raw}\t{comp}\t{:.4}\t{:.3} MB/s",
        8.0 * comp as f64 / raw.max(1) as f64,
        raw as f64 / 1e6 / s
    );
}
