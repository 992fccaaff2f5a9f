//! Development tool: CM byte-model cost (bits/byte, from the model's own probabilities) of files
//! under an alternative list of hashed contexts, to choose context sets per modality.
//! `CTX=O2,O3,O4,Word,Column cargo run -p mmz-core --release --example cm_ctx_eval -- LEVEL FILE...`
//! (`CTX` unset: the level's own list for the binary modality, payload version `VERSION` (3); `MATCH_MIN=N`
//! `LIMIT=N`, `LR=N` and `LR_FINAL=N` override the match model's shortest match, the counter limit
//! and the mixer learning rates). Prints one line
//! per file (name, bytes, cost in bytes, bits/byte) and the total.

use mmz_core::ctxmix::bytes::{ByteModel, ByteParams, Ctx, MAX_CTX};
use mmz_core::ctxmix::Io;
use mmz_core::hint::Modality;

/// Sums the ideal code length of every coded bit.
struct Cost(f64);

impl Io for Cost {
    fn bit(&mut self, p16: u32, bit: u32) -> u32 {
        let p1 = p16 as f64 / 65536.0;
        self.0 -= if bit != 0 { p1.log2() } else { (1.0 - p1).log2() };
        bit
    }
}

fn parse_ctx(name: &str) -> Ctx {
    match name {
        "O2" => Ctx::O2,
        "O3" => Ctx::O3,
        "O4" => Ctx::O4,
        "O5" => Ctx::O5,
        "O6" => Ctx::O6,
        "Word" => Ctx::Word,
        "Word2" => Ctx::Word2,
        "Sparse" => Ctx::Sparse,
        "Above" => Ctx::Above,
        "Column" => Ctx::Column,
        "Skip1" => Ctx::Skip1,
        "Skip2" => Ctx::Skip2,
        "Align" => Ctx::Align,
        "Dword" => Ctx::Dword,
        "Rec" => Ctx::Rec,
        "Rec2" => Ctx::Rec2,
        _ => panic!("unknown context {name}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let level: u8 = args.first().and_then(|s| s.parse().ok()).expect("usage: LEVEL FILE...");
    let list: Option<Vec<Ctx>> = std::env::var("CTX").ok().map(|s| s.split(',').map(parse_ctx).collect());
    let (mut total_in, mut total_bits) = (0usize, 0f64);
    for path in &args[1..] {
        let data = std::fs::read(path).expect("read");
        let version = std::env::var("VERSION").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
        let mut p = ByteParams::for_version(version, level, data.len(), Modality::Binary);
        if let Some(l) = &list {
            assert!(l.len() <= MAX_CTX);
            p.ctx[..l.len()].copy_from_slice(l);
            p.contexts = l.len();
            p.rec = l.iter().any(|c| matches!(c, Ctx::Rec | Ctx::Rec2));
        }
        if let Some(v) = std::env::var("MATCH_MIN").ok().and_then(|s| s.parse().ok()) {
            p.match_min = v;
        }
        if let Some(v) = std::env::var("LIMIT").ok().and_then(|s| s.parse().ok()) {
            p.limit = v;
        }
        if let Some(v) = std::env::var("LR").ok().and_then(|s| s.parse().ok()) {
            p.lr = v;
        }
        if let Some(v) = std::env::var("LR_FINAL").ok().and_then(|s| s.parse().ok()) {
            p.lr_final = v;
        }
        let mut m = ByteModel::new(p, data.len());
        let mut io = Cost(0.0);
        for &b in &data {
            m.code(&mut io, b);
        }
        println!("{path}\t{}\t{:.0}\t{:.4}", data.len(), io.0 / 8.0, io.0 / data.len() as f64);
        total_in += data.len();
        total_bits += io.0;
    }
    println!("total\t{total_in}\t{:.0}\t{:.4}", total_bits / 8.0, total_bits / total_in as f64);
}
