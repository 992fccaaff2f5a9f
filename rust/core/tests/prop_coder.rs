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
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            st >> 33
        };
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..v).map(|_| (next() % 1000) as f32 * 1e-3).collect())
            .collect();
        let syms: Vec<u32> = (0..200).map(|_| (next() % v as u64) as u32).collect();
        let mut enc = RangeEncoder::new();
        for (i, &s) in syms.iter().enumerate() {
            enc.encode_probs(s, &rows[i % rows.len()], precision)
                .unwrap();
        }
        let mut dec = RangeDecoder::new(enc.finish());
        let mut sc = Vec::new();
        for (i, &s) in syms.iter().enumerate() {
            assert_eq!(
                dec.decode_probs(&rows[i % rows.len()], precision, &mut sc)
                    .unwrap(),
                s
            );
        }
        let data = coder::encode_static(&syms, &rows[0], precision).unwrap();
        assert_eq!(
            coder::decode_static(&data, syms.len(), &rows[0], precision).unwrap(),
            syms
        );
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
    // 512 x 64 runs the streams in parallel; 16 x 256 and 3 x 256 take the
    // sequential paths (the pipelined decoder, the shared quantizer buffer).
    for (b, v) in [(512usize, 64usize), (16, 256), (3, 256)] {
        check_batch_vs_single(b, v);
    }
}

fn check_batch_vs_single(b: usize, v: usize) {
    let n = 40usize;
    let mut st = 7u64;
    let mut next = || {
        st = st
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        st >> 33
    };
    let mut rows: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..b * v)
                .map(|_| ((next() % 1000) as f32 * 1e-3).powi(3))
                .collect()
        })
        .collect();
    // Some rows for the general path: a NaN, an all-zero row.
    rows[3][5] = f32::NAN;
    rows[7][..v].fill(0.0);
    let syms: Vec<Vec<u32>> = (0..n)
        .map(|_| (0..b).map(|_| (next() % v as u64) as u32).collect())
        .collect();
    for kind in [RowKind::Probs, RowKind::Logits] {
        let mut big = BatchEncoder::new(b, 24).unwrap();
        for t in 0..n {
            big.encode_step(&rows[t], v, &syms[t], kind).unwrap();
        }
        let streams = big.finish();
        for i in (0..b).step_by(37) {
            let mut one = BatchEncoder::new(1, 24).unwrap();
            for t in 0..n {
                one.encode_step(&rows[t][i * v..(i + 1) * v], v, &syms[t][i..i + 1], kind)
                    .unwrap();
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
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let q = ((st >> 33) % (1 << 24)) as u32;
            (cdf.partition_point(|&c| c <= q) - 1) as u32
        })
        .collect();
    let ideal_bits: f64 = syms
        .iter()
        .map(|&s| -((f[s as usize] as f64) / (1u64 << 24) as f64).log2())
        .sum();
    let data = coder::encode_static(&syms, &probs, 24).unwrap();
    let ideal = ideal_bits / 8.0;
    assert!(
        (data.len() as f64) <= ideal * 1.001 + 8.0,
        "{} bytes vs ideal {ideal}",
        data.len()
    );
}

/// Rows that stress the quantization kernels: NaN, infinities, negatives, -0.0,
/// denormals, all-zero, huge and tiny scales, ties for the maximum, random bit patterns.
fn adversarial_row(max_v: usize) -> impl Strategy<Value = Vec<f32>> {
    let entry = prop_oneof![
        6 => 0.0f32..1.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(f32::NAN),
        1 => Just(-f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => -10.0f32..0.0,
        1 => Just(f32::MIN_POSITIVE),
        1 => (1u32..0x80_0000).prop_map(f32::from_bits),
        1 => Just(f32::MAX),
        1 => 1e30f32..3e38,
        1 => 2.0e9f32..3.0e9,
        1 => Just(1.0f32),
        1 => any::<u32>().prop_map(f32::from_bits),
    ];
    let row = prop::collection::vec(entry, 2..=max_v);
    prop_oneof![
        6 => row,
        1 => (2usize..=max_v).prop_map(|v| vec![0.0f32; v]),
        1 => (2usize..=max_v, any::<u32>()).prop_map(|(v, b)| vec![f32::from_bits(b); v]),
        1 => (2usize..=max_v, 1u32..0x80_0000).prop_map(|(v, b)| (0..v).map(|i| f32::from_bits(b >> (i % 23))).collect()),
    ]
}

/// Every kernel this CPU supports (portable, AVX2, AVX-512) against the literal reference.
fn check_all_kernels(row: &[f32], precision: u32) -> Result<(), TestCaseError> {
    let want = quant::quantize_probs_reference(row, precision).unwrap();
    check_freqs(&want, precision);
    let mut scratch = Vec::new();
    for k in quant::Kernel::available() {
        let mut got = vec![0u32; row.len()];
        quant::quantize_probs_with(k, row, precision, &mut got).unwrap();
        prop_assert_eq!(&got, &want, "fill, kernel {:?}", k);
        let mut start = 0u32;
        for (s, &fs) in want.iter().enumerate() {
            prop_assert_eq!(
                quant::row_interval_with(k, row, precision, s, &mut scratch).unwrap(),
                (start, fs),
                "interval {} {:?}",
                s,
                k
            );
            // The decoder's search: first, last and a middle target of the interval.
            for q in [start, start + fs - 1, start + fs / 2] {
                let got = quant::row_locate_with(k, row, precision, q, &mut scratch).unwrap();
                prop_assert_eq!(got, (s as u32, start, fs), "locate q={} {:?}", q, k);
            }
            start += fs;
        }
        prop_assert!(
            quant::row_locate_with(k, row, precision, 1 << precision, &mut scratch).is_err()
        );
        prop_assert!(quant::row_interval_with(k, row, precision, row.len(), &mut scratch).is_err());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn kernels_match_reference(row in adversarial_row(300), precision in 12u32..=24) {
        prop_assume!(row.len() as u64 <= 1 << precision);
        check_all_kernels(&row, precision)?;
    }

    #[test]
    fn kernels_match_reference_scaled(row in row_strategy(200), precision in 12u32..=24,
                                      scale in prop_oneof![Just(1.0f32), Just(1e-38), Just(1e-44), Just(1e30), Just(3e9)]) {
        let row: Vec<f32> = row.iter().map(|&x| x * scale).collect();
        prop_assume!(row.len() as u64 <= 1 << precision);
        check_all_kernels(&row, precision)?;
    }
}

#[test]
fn kernels_match_reference_wide_rows() {
    // Lengths around the SIMD widths and block size, and large alphabets.
    let mut st = 17u64;
    let mut next = || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        st
    };
    for &v in &[
        2usize, 15, 16, 17, 63, 64, 65, 127, 129, 1000, 4097, 16_384, 65_536,
    ] {
        for precision in [17u32, 20, 24] {
            if v as u64 > 1 << precision {
                continue;
            }
            let row: Vec<f32> = (0..v)
                .map(|_| {
                    let r = next();
                    match r % 11 {
                        0 => f32::NAN,
                        1 => -1.0,
                        2 => 0.0,
                        3 => f32::from_bits((r >> 20) as u32 & 0x7F_FFFF),
                        _ => ((r >> 11) as f64 / (1u64 << 53) as f64).powi(4) as f32,
                    }
                })
                .collect();
            let want = quant::quantize_probs_reference(&row, precision).unwrap();
            let cdf = coder::freqs_to_cdf(&want);
            let mut scratch = Vec::new();
            for k in quant::Kernel::available() {
                let mut got = vec![0u32; v];
                quant::quantize_probs_with(k, &row, precision, &mut got).unwrap();
                assert_eq!(got, want, "v={v} {k:?}");
                for _ in 0..200 {
                    let s = (next() % v as u64) as usize;
                    assert_eq!(
                        quant::row_interval_with(k, &row, precision, s, &mut scratch).unwrap(),
                        (cdf[s], want[s])
                    );
                    let q = (next() % (1u64 << precision)) as u32;
                    let i = cdf.partition_point(|&c| c <= q) - 1;
                    assert_eq!(
                        quant::row_locate_with(k, &row, precision, q, &mut scratch).unwrap(),
                        (i as u32, cdf[i], want[i])
                    );
                }
            }
        }
    }
}

/// 256-entry rows for the prepared-row decoder path (`quant::RowPrep`): mostly
/// finite rows (so the fast form is taken), peaked rows like a model's, and
/// occasionally a NaN or infinity (general path).
fn row256() -> impl Strategy<Value = Vec<f32>> {
    let finite = prop_oneof![
        8 => 0.0f32..1.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => -10.0f32..0.0,
        1 => (1u32..0x80_0000).prop_map(f32::from_bits),
        1 => Just(f32::MAX),
        1 => 1e30f32..3e38,
        1 => 1e-38f32..1e-30,
    ];
    let scale = prop_oneof![
        Just(1.0f32),
        Just(1e-38),
        Just(1e-44),
        Just(1e30),
        Just(3e9),
        Just(0.5)
    ];
    prop_oneof![
        6 => (prop::collection::vec(finite, 256), scale).prop_map(|(r, s)| r.iter().map(|&x| x * s).collect::<Vec<f32>>()),
        2 => (0usize..256, 0.5f32..1.0, prop::collection::vec(0.0f32..1e-4, 256)).prop_map(|(at, big, mut r)| {
            r[at] = big;
            r
        }),
        1 => any::<u32>().prop_map(|b| vec![f32::from_bits(b); 256]),
        1 => Just(vec![0.0f32; 256]),
        1 => (prop::collection::vec(0.0f32..1.0, 256), 0usize..256, prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(-f32::NAN)])
            .prop_map(|(mut r, at, x)| {
                r[at] = x;
                r
            }),
    ]
}

/// `row_prepare` + `row_search` (every kernel) against the literal reference.
fn check_prepared(row: &[f32], precision: u32) -> Result<(), TestCaseError> {
    let want = quant::quantize_probs_reference(row, precision).unwrap();
    let mut scratch = Vec::new();
    for k in quant::Kernel::available() {
        let mut prep = quant::RowPrep::new();
        quant::row_prepare(k, row, precision, &mut prep).unwrap();
        let mut start = 0u32;
        for (s, &fs) in want.iter().enumerate() {
            for q in [start, start + fs - 1, start + fs / 2] {
                let got = quant::row_search(k, &prep, row, precision, q, &mut scratch).unwrap();
                prop_assert_eq!(got, (s as u32, start, fs), "search q={} {:?}", q, k);
            }
            start += fs;
        }
        prop_assert!(
            quant::row_search(k, &prep, row, precision, 1 << precision, &mut scratch).is_err()
        );
    }
    Ok(())
}

/// `decode_probs_rows` (the pipelined decoder) must give exactly what
/// `decode_probs` gives row by row, also on a stream that is not the encoding
/// of these rows (same symbols up to the same error).
fn check_rows_decoder(
    rows: &[Vec<f32>],
    syms: &[u32],
    garbage: &[u8],
) -> Result<(), TestCaseError> {
    let v = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut enc = RangeEncoder::new();
    for (row, &s) in rows.iter().zip(syms) {
        enc.encode_probs(s, row, 24).unwrap();
    }
    let data = enc.finish();
    for stream in [data, garbage.to_vec()] {
        let mut one = RangeDecoder::new(stream.clone());
        let mut sc = Vec::new();
        let mut want = Vec::new();
        let mut want_err = false;
        for row in rows {
            match one.decode_probs(row, 24, &mut sc) {
                Ok(s) => want.push(s),
                Err(_) => {
                    want_err = true;
                    break;
                }
            }
        }
        let mut all = RangeDecoder::new(stream);
        let mut got = Vec::new();
        let res = all.decode_probs_rows(&flat, v, 24, &mut got);
        prop_assert_eq!(res.is_err(), want_err);
        prop_assert_eq!(&got, &want);
        if !want_err {
            prop_assert_eq!(all.overrun(), one.overrun());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn prepared_rows_match_reference(row in row256(), precision in 12u32..=24) {
        check_prepared(&row, precision)?;
    }

    #[test]
    fn rows_decoder_matches_row_by_row(rows in prop::collection::vec(row256(), 1..12), seed in any::<u64>(),
                                        garbage in prop::collection::vec(any::<u8>(), 0..40)) {
        // Codable symbols only (frequency >= 1 always holds); pick them from the seed.
        let syms: Vec<u32> = (0..rows.len()).map(|i| ((seed >> (i % 56)) as u32).wrapping_mul(2654435761) % 256).collect();
        check_rows_decoder(&rows, &syms, &garbage)?;
    }

    #[test]
    fn rows_decoder_other_widths(rows in prop::collection::vec(prop::collection::vec(0.0f32..1.0, 7), 1..20)) {
        let syms: Vec<u32> = (0..rows.len() as u32).map(|i| i % 7).collect();
        check_rows_decoder(&rows, &syms, &[1, 2, 3])?;
    }
}
