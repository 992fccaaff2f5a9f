//! Property tests for the range coder, CDF quantization and lockstep batches.

use mmz_core::batch::{BatchDecoder, BatchEncoder, RowKind};
use mmz_core::coder::{self, RangeDecoder, RangeEncoder};
use mmz_core::quant;
use proptest::prelude::*;

fn row_strategy(max_v: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0.0f32..1.0,
            1 => Just(0.0f32),
            1 => Just(1.0f32),
            1 => 1e-9f32..1e-6,
            1 => prop::num::f32::ANY,
        ],
        2..=max_v,
    )
}

fn check_freqs(f: &[u32], precision: u32) {
    assert!(f.iter().all(|&x| x >= 1), "a frequency below 1");
    assert_eq!(f.iter().map(|&x| x as u64).sum::<u64>(), 1u64 << precision);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn quantization_invariants(row in row_strategy(600), precision in 12u32..=24, scale in prop_oneof![Just(1.0f32), Just(1e-30), Just(1e30)]) {
        let row: Vec<f32> = row.iter().map(|&x| x * scale).collect();
        let f = quant::quantize_probs_vec(&row, precision).unwrap();
        check_freqs(&f, precision);
        // Deterministic, and identical between the dispatched and the portable kernels.
        let mut g = vec![0; row.len()];
        quant::quantize_probs_portable(&row, precision, &mut g).unwrap();
        prop_assert_eq!(&f, &g);
        let mut start = 0u32;
        for (s, &fs) in f.iter().enumerate() {
            prop_assert_eq!(quant::row_interval(&row, precision, s).unwrap(), (start, fs));
            prop_assert_eq!(quant::row_interval_portable(&row, precision, s).unwrap(), (start, fs));
            start += fs;
        }
    }

    #[test]
    fn logits_invariants(row in prop::collection::vec(-80.0f32..80.0, 2..400), precision in 12u32..=24) {
        let mut f = vec![0; row.len()];
        let mut sc = Vec::new();
        quant::quantize_logits(&row, precision, &mut f, &mut sc).unwrap();
        check_freqs(&f, precision);
        // The largest logit gets the largest frequency.
        let imax = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
        prop_assert_eq!(f[imax], *f.iter().max().unwrap());
    }

    #[test]
    fn roundtrip_random_rows(v in 2usize..300, n in 1usize..400, precision in 12u32..=24, seed in any::<u64>()) {
        prop_assume!(v as u64 <= 1 << precision);
        let mut st = seed | 1;
        let mut next = move || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
        let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..v).map(|_| {
            let r = next();
            // Mix of heavy skew and flat rows.
            if r % 5 == 0 { 0.0 } else { ((r >> 11) as f32 / (1u64 << 53) as f32).powi((r % 7) as i32 * 3) }
        }).collect()).collect();
        let syms: Vec<u32> = (0..n).map(|_| (next() % v as u64) as u32).collect();
        let mut enc = RangeEncoder::new();
        for (r, &s) in rows.iter().zip(&syms) {
            enc.encode_probs(s, r, precision).unwrap();
        }
        let data = enc.finish();
        let mut dec = RangeDecoder::new(data);
        let mut sc = Vec::new();
        for (r, &s) in rows.iter().zip(&syms) {
            prop_assert_eq!(dec.decode_probs(r, precision, &mut sc).unwrap(), s);
        }
    }

    #[test]
    fn roundtrip_extreme_skew(n in 1usize..3000, seed in any::<u64>(), rare_every in 1usize..50) {
        // p ~ 1 for symbol 1, the others sit at the 2^-24 floor.
        let probs = [0.0f32, 1.0, 0.0];
        let f = quant::quantize_probs_vec(&probs, 24).unwrap();
        prop_assert_eq!(&f, &vec![1, (1 << 24) - 2, 1]);
        let syms: Vec<u32> = (0..n).map(|i| if i % rare_every == 0 { ((seed >> (i % 64)) & 1) as u32 * 2 } else { 1 }).collect();
        let data = coder::encode_static(&syms, &probs, 24).unwrap();
        prop_assert_eq!(coder::decode_static(&data, n, &probs, 24).unwrap(), syms.clone());
        let data = coder::encode_adaptive(&syms, 3).unwrap();
        prop_assert_eq!(coder::decode_adaptive(&data, n, 3).unwrap(), syms);
    }

    #[test]
    fn roundtrip_integer_freqs(freqs in prop::collection::vec(0u32..5000, 2..200), n in 1usize..500, seed in any::<u64>()) {
        prop_assume!(freqs.iter().filter(|&&f| f > 0).count() >= 1);
        let live: Vec<u32> = freqs.iter().enumerate().filter(|(_, &f)| f > 0).map(|(i, _)| i as u32).collect();
        let syms: Vec<u32> = (0..n).map(|i| live[(seed.rotate_left(i as u32 % 64) as usize ^ i) % live.len()]).collect();
        let data = coder::encode_static_freqs(&syms, &freqs).unwrap();
        prop_assert_eq!(coder::decode_static_freqs(&data, n, &freqs).unwrap(), syms.clone());
        let mut enc = RangeEncoder::new();
        for &s in &syms { enc.encode_freqs(s, &freqs).unwrap(); }
        let mut dec = RangeDecoder::new(enc.finish());
        for &s in &syms { prop_assert_eq!(dec.decode_freqs(&freqs).unwrap(), s); }
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..64), v in 2usize..70000) {
        let v = v.min(65536);
        let probs: Vec<f32> = (0..v).map(|i| 1.0 / (1 + i % 97) as f32).collect();
        let _ = coder::decode_static(&data, 200, &probs, 24);
        let _ = coder::decode_adaptive(&data, 200, v);
        let mut dec = RangeDecoder::new(data);
        let mut sc = Vec::new();
        for _ in 0..50 {
            match dec.decode_probs(&probs, 24, &mut sc) {
                Ok(s) => prop_assert!((s as usize) < v),
                Err(_) => break,
            }
        }
    }
}

#[test]
fn alphabet_extremes() {
    for &(v, precision) in &[(2usize, 12u32), (2, 24), (65_536, 17), (65_536, 24)] {
        let mut st = 99u64;
        let mut next = || {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            st >> 33
        };
        let rows: Vec<Vec<f32>> = (0..20).map(|_| (0..v).map(|_| (next() % 1000) as f32 * 1e-3).collect()).collect();
        let syms: Vec<u32> = (0..200).map(|_| (next() % v as u64) as u32).collect();
        let mut enc = RangeEncoder::new();
        for (i, &s) in syms.iter().enumerate() {
            enc.encode_probs(s, &rows[i % rows.len()], precision).unwrap();
        }
        let mut dec = RangeDecoder::new(enc.finish());
        let mut sc = Vec::new();
        for (i, &s) in syms.iter().enumerate() {
            assert_eq!(dec.decode_probs(&rows[i % rows.len()], precision, &mut sc).unwrap(), s);
        }
        let data = coder::encode_static(&syms, &rows[0], precision).unwrap();
        assert_eq!(coder::decode_static(&data, syms.len(), &rows[0], precision).unwrap(), syms);
    }
    // 65,536 symbols do not fit 16-bit precision with a floor of 1 each... exactly: 2^16 slots, all ones.
    let f = quant::quantize_probs_vec(&vec![0.5f32; 65_536], 16).unwrap();
    assert!(f.iter().all(|&x| x == 1));
    assert!(quant::quantize_probs_vec(&vec![0.5f32; 65_537], 24).is_err());
    assert!(quant::quantize_probs_vec(&[0.5f32; 4], 11).is_err());
    assert!(quant::quantize_probs_vec(&[0.5f32; 4], 25).is_err());
}

#[test]
fn batch_of_1_equals_batch_of_512() {
    let (b, v, n) = (512usize, 64usize, 40usize);
    let mut st = 7u64;
    let mut next = || {
        st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        st >> 33
    };
    let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..b * v).map(|_| ((next() % 1000) as f32 * 1e-3).powi(3)).collect()).collect();
    let syms: Vec<Vec<u32>> = (0..n).map(|_| (0..b).map(|_| (next() % v as u64) as u32).collect()).collect();
    for kind in [RowKind::Probs, RowKind::Logits] {
        let mut big = BatchEncoder::new(b, 24).unwrap();
        for t in 0..n {
            big.encode_step(&rows[t], v, &syms[t], kind).unwrap();
        }
        let streams = big.finish();
        for i in (0..b).step_by(37) {
            let mut one = BatchEncoder::new(1, 24).unwrap();
            for t in 0..n {
                one.encode_step(&rows[t][i * v..(i + 1) * v], v, &syms[t][i..i + 1], kind).unwrap();
            }
            assert_eq!(one.finish()[0], streams[i], "stream {i}");
        }
        let mut dec = BatchDecoder::new(streams, 24).unwrap();
        let mut out = vec![0u32; b];
        for t in 0..n {
            dec.decode_step(&rows[t], v, &mut out, kind).unwrap();
            assert_eq!(out, syms[t]);
        }
    }
}

#[test]
fn coded_size_near_entropy() {
    // 200k symbols from a static skewed distribution: size within 0.1% + 8 bytes of the ideal.
    let v = 256usize;
    let probs: Vec<f32> = (0..v).map(|i| 1.0 / (1.0 + i as f32).powf(1.3)).collect();
    let f = quant::quantize_probs_vec(&probs, 24).unwrap();
    let cdf = coder::freqs_to_cdf(&f);
    let mut st = 3u64;
    let syms: Vec<u32> = (0..200_000)
        .map(|_| {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let q = ((st >> 33) % (1 << 24)) as u32;
            (cdf.partition_point(|&c| c <= q) - 1) as u32
        })
        .collect();
    let ideal_bits: f64 = syms.iter().map(|&s| -((f[s as usize] as f64) / (1u64 << 24) as f64).log2()).sum();
    let data = coder::encode_static(&syms, &probs, 24).unwrap();
    let ideal = ideal_bits / 8.0;
    assert!((data.len() as f64) <= ideal * 1.001 + 8.0, "{} bytes vs ideal {ideal}", data.len());
}
