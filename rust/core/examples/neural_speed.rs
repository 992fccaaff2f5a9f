//! Engine throughput probe for profiling (not part of the library):
//! `cargo run --release -p mmz-core --example neural_speed -- MODEL.mmznw FILE [BYTES] [BATCH] [THREADS] [MODALITY]`
//! Prints process CPU seconds and wall seconds of one encode and one decode.

use mmz_core::hint::{Hint, Modality};
use mmz_core::neural::Model;
use mmz_core::neural::NeuralCodec;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let model = Model::from_container(&std::fs::read(&a[1])?)?;
    let names = ["text", "structured", "gene", "image", "audio"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let c = NeuralCodec::new(model, names)?;
    if a[2] == "step" {
        // Engine only: `step ROWS STEPS REPS`, minimum wall time per token over REPS runs.
        let rows: usize = a[3].parse()?;
        let steps: usize = a[4].parse()?;
        let reps: usize = a[5].parse()?;
        let toks: Vec<u32> = (0..rows * steps)
            .map(|i| ((i * 7919) % 256) as u32)
            .collect();
        let mods = vec![0usize; rows];
        let mut best = f64::INFINITY;
        let mut best_cpu = f64::INFINITY;
        let mut h = 0;
        for _ in 0..reps {
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let lg = mmz_core::neural::codec::run_logits(&c.model, &toks, &mods, steps)?;
            best = best.min(t0.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - c0);
            h = mmz_core::checksum::xxh3(
                &lg.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
            );
        }
        let per_tok = best / (rows * steps) as f64;
        let gf = 2.0 * c.model.macs_per_token() as f64 / per_tok / 1e9;
        let cpu_tok = best_cpu / (rows * steps) as f64;
        let gfc = 2.0 * c.model.macs_per_token() as f64 / cpu_tok / 1e9;
        println!(
            "rows {rows} steps {steps}: wall {:.1} us/token = {:.1} KB/s, {gf:.1} GFLOP/s; cpu {:.1} us/token = {:.1} KB/s, {gfc:.1} GFLOP/s; logits {h:016x}",
            per_tok * 1e6,
            1e-3 / per_tok,
            cpu_tok * 1e6,
            1e-3 / cpu_tok
        );
        return Ok(());
    }
    let nbytes: usize = a.get(3).map_or(Ok(65536), |s| s.parse())?;
    let batch: usize = a.get(4).map_or(Ok(64), |s| s.parse())?;
    let threads: usize = a.get(5).map_or(Ok(1), |s| s.parse())?;
    let modality = match a.get(6).map(String::as_str) {
        Some("image") => Modality::Image,
        Some("audio") => Modality::Audio,
        _ => Modality::Text,
    };
    let data = std::fs::read(&a[2])?;
    let data = &data[..nbytes.min(data.len())];
    let hint = Hint::bytes(modality);
    println!("probe {:016x}", c.probe);
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let p = c.encode(data, 1, &hint, batch, threads)?;
    let (c1, w1) = (cpu_seconds(), Instant::now());
    let out = c.decode(&p, data.len(), &hint, batch, threads)?;
    let (c2, w2) = (cpu_seconds(), Instant::now());
    assert_eq!(out, data);
    let kb = data.len() as f64 / 1e3;
    println!(
        "bytes {} payload {} xxh {:016x} enc cpu {:.3}s wall {:.3}s ({:.1} KB/s cpu)  dec cpu {:.3}s wall {:.3}s ({:.1} KB/s cpu)",
        data.len(),
        p.len(),
        mmz_core::checksum::xxh3(&p),
        c1 - c0,
        (w1 - w0).as_secs_f64(),
        kb / (c1 - c0),
        c2 - c1,
        (w2 - w1).as_secs_f64(),
        kb / (c2 - c1)
    );
    Ok(())
}
