//! Stable-Rust randomized stand-in for `cargo fuzz` (no coverage guidance):
//! feeds random and mutated-valid inputs to the same entry points as the
//! libFuzzer targets for a fixed time and fails on the first panic.
//!
//! Usage: stable_fuzz <frame_decode|range_decode> <seconds> [seed]
//!        stable_fuzz seeds <frame_decode|range_decode> <dir>   (write seed inputs for libFuzzer)

use mmz_core::codec::CodecId;
use mmz_core::hint::Modality;
use mmz_core::{coder, frame};
use std::panic;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 => d.truncate(rng.below(d.len() + 1)),
            3 => {
                let i = rng.below(d.len() + 1);
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                d.splice(i..i, extra);
            }
            _ => {
                if d.len() > 2 {
                    let a = rng.below(d.len());
                    let b = rng.below(d.len());
                    d.swap(a, b);
                }
            }
        }
    }
    d
}

fn seeds(target: &str, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog 0123456789 ".repeat(40);
    if target == "frame_decode" {
        for codec in [CodecId::Store, CodecId::Order2, CodecId::Cm] {
            for chunk in [64usize, 1000] {
                if let Ok(f) = frame::compress_frame(&text, codec, 1, Modality::Text, chunk) {
                    out.push(f);
                }
            }
        }
    } else {
        for mode in 0u8..4 {
            let probs: Vec<f32> = (0..300).map(|i| 1.0 / (1 + (i * 7919) % 1013) as f32).collect();
            let syms: Vec<u32> = (0..200).map(|_| rng.below(300) as u32).collect();
            let mut head = vec![0u8, 42, 12, mode];
            // (v = 2 + 42 = 44 symbols: a valid stream decodes a while before failing.)
            if let Ok(s) = coder::encode_static(&syms, &probs, 24) {
                head.extend(s);
            }
            out.push(head);
        }
    }
    out.push(Vec::new());
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("seeds") {
        let target = args.get(2).cloned().unwrap_or_default();
        let dir = std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| ".".into()));
        let mut rng = Rng(7);
        for (i, s) in seeds(&target, &mut rng).iter().enumerate() {
            if let Err(e) = std::fs::write(dir.join(format!("seed-{i}")), s) {
                eprintln!("cannot write seeds to {}: {e}", dir.display());
                std::process::exit(2);
            }
        }
        return;
    }
    let target = args.get(1).map(String::as_str).unwrap_or("range_decode").to_string();
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0x9E37_79B9_7F4A_7C15);
    let run: fn(&[u8]) = match target.as_str() {
        "frame_decode" => mmz_fuzz::frame_decode,
        "range_decode" => mmz_fuzz::range_decode,
        other => {
            eprintln!("unknown target {other}; use frame_decode or range_decode");
            std::process::exit(2);
        }
    };
    let mut rng = Rng(seed | 1);
    let corpus = seeds(&target, &mut rng);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut execs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let input = if rng.below(4) == 0 {
                (0..rng.below(512)).map(|_| rng.next() as u8).collect()
            } else {
                let pick = rng.below(corpus.len());
                mutate(&mut rng, &corpus[pick])
            };
            if panic::catch_unwind(|| run(&input)).is_err() {
                let path = format!("crash-{target}-{execs}.bin");
                let _ = std::fs::write(&path, &input);
                eprintln!("{target}: panic after {execs} inputs; input saved to {path}");
                std::process::exit(1);
            }
            execs += 1;
        }
    }
    println!("{target}: {execs} inputs in {secs} s, no panics");
}
