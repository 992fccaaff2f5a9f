//! Quick throughput check of the float-row range coder (not the benchmark of
//! record; that is bench/coder_bench.py). Usage: coder_speed V ROWS N
use mmz_core::coder::{RangeDecoder, RangeEncoder};

/// Thread CPU time in seconds (the machine is shared; wall time mostly measures waiting).
fn cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (v, rows, n) = (
        a.first().copied().unwrap_or(256),
        a.get(1).copied().unwrap_or(64),
        a.get(2).copied().unwrap_or(100_000),
    );
    let mut st = 1u64;
    let mut next = || {
        st = st
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (st >> 40) as u32
    };
    let pool: Vec<f32> = (0..rows * v)
        .map(|_| ((next() % 10000) as f32 / 10000.0).powi(4) + 1e-7)
        .collect();
    let syms: Vec<u32> = (0..n).map(|_| next() % v as u32).collect();
    for _ in 0..3 {
        let t = cpu();
        let mut enc = RangeEncoder::new();
        for (i, &s) in syms.iter().enumerate() {
            let r = i % rows;
            enc.encode_probs(s, &pool[r * v..(r + 1) * v], 24).unwrap();
        }
        let data = enc.finish();
        let te = cpu() - t;
        let t = cpu();
        let mut dec = RangeDecoder::new(data);
        let mut sc = Vec::new();
        for (i, &s) in syms.iter().enumerate() {
            let r = i % rows;
            assert_eq!(
                dec.decode_probs(&pool[r * v..(r + 1) * v], 24, &mut sc)
                    .unwrap(),
                s
            );
        }
        let td = cpu() - t;
        // The pipelined form: one call per pass over the (cache-resident) pool.
        let mut dec = RangeDecoder::new(enc_again(&syms, &pool, v, rows));
        let (mut out, mut part) = (Vec::with_capacity(n), Vec::new());
        let t0 = cpu();
        for c in 0..n.div_ceil(rows) {
            let k = rows.min(n - c * rows);
            dec.decode_probs_rows(&pool[..k * v], v, 24, &mut part)
                .unwrap();
            out.extend_from_slice(&part);
        }
        let tp = cpu() - t0;
        assert_eq!(out, syms);
        println!(
            "V={v} rows={rows}: enc {:.3} M/s  dec {:.3} M/s  dec rows {:.3} M/s",
            n as f64 / te / 1e6,
            n as f64 / td / 1e6,
            n as f64 / tp / 1e6
        );
    }
}

fn enc_again(syms: &[u32], pool: &[f32], v: usize, rows: usize) -> Vec<u8> {
    let mut enc = RangeEncoder::new();
    for (i, &s) in syms.iter().enumerate() {
        let r = i % rows;
        enc.encode_probs(s, &pool[r * v..(r + 1) * v], 24).unwrap();
    }
    enc.finish()
}
