//! Development tool: CM bits/byte of PCM WAV files (raw PCM bytes as the denominator), coded
//! whole (one chunk per file, no frame header).
//! `cargo run -p mmz-core --release --example cm_audio_eval -- LEVEL [--verify] [--json OUT] FILE...`
//! Prints one line per file (name, PCM bytes, CM bytes) and the total; `--json` also writes them.

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
            let end = start.saturating_add(n).min(w.len());
            let bps = (bits / 8).clamp(1, 3) as usize;
            let end = start + (end - start) / bps * bps;
            return Some(SampleLayout {
                channels,
                bytes_per_sample: bps as u8,
                big_endian: false,
                signed: bps > 1,
                width: 0,
                data_start: u32::try_from(start).ok()?,
                data_end: u32::try_from(end).ok()?,
                first_sample: 0,
            });
        }
        p = p.saturating_add(8 + n + (n & 1));
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let level: u8 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let verify = args.iter().any(|a| a == "--verify");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let (mut raw, mut comp) = (0usize, 0usize);
    let mut rows = Vec::new();
    let t0 = std::time::Instant::now();
    let files = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && Some(*a) != json.as_ref());
    for f in files {
        let data = std::fs::read(f)?;
        let Some(l) = layout(&data) else { continue };
        let hint = Hint {
            modality: Modality::Audio,
            layout: Some(l),
        };
        let c = ctxmix::compress(&data, level, &hint)?;
        if verify && ctxmix::decompress(&c, data.len(), level, &hint)? != data {
            return Err(format!("{f}: round trip differs").into());
        }
        let pcm = (l.data_end - l.data_start) as usize;
        raw += pcm;
        comp += c.len();
        let name = f.rsplit('/').next().unwrap_or(f);
        println!("{name}\t{pcm}\t{}", c.len());
        rows.push(format!(
            "{{\"file\": \"{}\", \"pcm_bytes\": {pcm}, \"cm_bytes\": {}}}",
            name.replace(['"', '\\'], "_"),
            c.len()
        ));
    }
    let s = t0.elapsed().as_secs_f64();
    let bpb = 8.0 * comp as f64 / raw.max(1) as f64;
    println!(
        "TOTAL\t{raw}\t{comp}\t{bpb:.4}\t{:.3} MB/s",
        raw as f64 / 1e6 / s
    );
    if let Some(out) = json {
        let body = format!(
            "{{\"level\": {level}, \"verified\": {verify}, \"pcm_bytes\": {raw}, \"cm_bytes\": {comp}, \"bits_per_byte\": {bpb:.4}, \"wall_s\": {s:.2}, \"files\": [\n{}\n]}}\n",
            rows.join(",\n")
        );
        std::fs::write(out, body)?;
    }
    Ok(())
}
