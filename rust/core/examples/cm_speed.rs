//! Single-thread timing of the CM engine on whole files (one chunk per file):
//! `cargo run --release -p mmz-core --example cm_speed -- LEVEL RUNS FILE...`.
//! Prints one JSON object per file: bytes, compressed bytes, bits/byte and the
//! best-of-RUNS compress / decompress MB per CPU second. `CM_MOD=binary` sets the hint's
//! modality (text), `CM_VERSION=N` writes payload version N rather than the newest.

/// CPU seconds of this thread (the machine is shared, wall time is not per core).
fn cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

use mmz_core::ctxmix;
use mmz_core::hint::{Hint, Modality};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: cm_speed LEVEL RUNS FILE...");
        std::process::exit(2);
    }
    let level: u8 = args[0].parse().unwrap_or(5);
    let runs: usize = args[1].parse().unwrap_or(1);
    // CM_MOD=name: the chunks' modality (default text).
    let version: Option<u8> = std::env::var("CM_VERSION").ok().and_then(|v| v.parse().ok());
    let modality = std::env::var("CM_MOD").ok().and_then(|m| Modality::from_name(&m).ok()).unwrap_or(Modality::Text);
    let hint = Hint::bytes(modality);
    // CM_HEAD=n: only the first n bytes of each file; CM_NODEC=1: skip decoding (ratio only).
    let head: usize = std::env::var("CM_HEAD").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    let nodec = std::env::var_os("CM_NODEC").is_some();
    let (mut tot_raw, mut tot_comp) = (0usize, 0usize);
    for f in &args[2..] {
        let data = match std::fs::read(f) {
            Ok(mut d) => {
                d.truncate(head);
                d
            }
            Err(e) => {
                eprintln!("{f}: {e}");
                continue;
            }
        };
        let (mut tc, mut td) = (f64::MAX, f64::MAX);
        let mut clen = 0;
        for _ in 0..runs.max(1) {
            let t0 = cpu();
            let c = match version {
                Some(v) => ctxmix::compress_version(&data, level, &hint, v),
                None => ctxmix::compress(&data, level, &hint),
            }
            .unwrap_or_default();
            let t1 = cpu();
            let d = if nodec { data.clone() } else { ctxmix::decompress(&c, data.len(), level, &hint).unwrap_or_default() };
            let t2 = cpu();
            if d != data {
                eprintln!("{f}: round trip failed");
                std::process::exit(1);
            }
            clen = c.len();
            tc = tc.min(t1 - t0);
            td = td.min(t2 - t1);
        }
        tot_raw += data.len();
        tot_comp += clen;
        let mb = data.len() as f64 / 1e6;
        println!(
            "{{\"file\": \"{f}\", \"level\": {level}, \"bytes\": {}, \"comp_bytes\": {clen}, \"bpb\": {:.4}, \"comp_MBps\": {:.3}, \"decomp_MBps\": {:.3}}}",
            data.len(),
            8.0 * clen as f64 / data.len().max(1) as f64,
            mb / tc,
            mb / td
        );
    }
    println!("{{\"total_bytes\": {tot_raw}, \"total_comp\": {tot_comp}, \"bpb\": {:.4}}}", 8.0 * tot_comp as f64 / tot_raw.max(1) as f64);
}
