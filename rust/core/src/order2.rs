//! The simple codec: an adaptive bitwise model over order-1 and hashed order-2
//! byte contexts, averaged in the probability domain. It is codec id 1 in the
//! frame format and stays decodable forever; the context-mixing engine
//! (`crate::cm`) supersedes it for compression.

use crate::bitcoder::{BitDecoder, BitEncoder};
use crate::error::{MmzError, Result};

const O2_BITS: u32 = 20;

struct Model {
    o1: Vec<u16>,
    o2: Vec<u16>,
    c1: u32,
    c2: u32,
}

impl Model {
    fn new() -> Self {
        Model {
            o1: vec![32768; 1 << 16],
            o2: vec![32768; 1 << O2_BITS],
            c1: 0,
            c2: 0,
        }
    }

    #[inline(always)]
    fn slots(&self, node: u32) -> (usize, usize) {
        let i1 = ((self.c1 << 8) | node) as usize;
        let h = (self.c2 << 16 | self.c1 << 8 | node).wrapping_mul(0x9E37_79B1) >> (32 - O2_BITS);
        (i1, h as usize)
    }

    #[inline(always)]
    fn p1(&self, s: (usize, usize)) -> u32 {
        let p = (self.o1[s.0] as u32 + self.o2[s.1] as u32) >> 1;
        p.clamp(32, 65535 - 32)
    }

    #[inline(always)]
    fn update(&mut self, s: (usize, usize), bit: u32) {
        for (t, rate) in [(&mut self.o1[s.0], 4), (&mut self.o2[s.1], 4)] {
            if bit != 0 {
                *t += (65535 - *t) >> rate;
            } else {
                *t -= *t >> rate;
            }
        }
    }

    fn push_byte(&mut self, b: u8) {
        self.c2 = self.c1;
        self.c1 = b as u32;
    }
}

/// Compress `data` with the order-2 model.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut m = Model::new();
    let mut enc = BitEncoder::with_capacity(data.len() / 2 + 16);
    for &byte in data {
        let mut node = 1u32;
        for i in (0..8).rev() {
            let bit = (byte as u32 >> i) & 1;
            let s = m.slots(node);
            enc.encode(bit, m.p1(s));
            m.update(s, bit);
            node = (node << 1) | bit;
        }
        m.push_byte(byte);
    }
    enc.finish()
}

/// Decompress `raw_len` bytes from `payload`.
pub fn decompress(payload: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let mut m = Model::new();
    let mut dec = BitDecoder::new(payload);
    let mut out = Vec::with_capacity(raw_len);
    for _ in 0..raw_len {
        let mut node = 1u32;
        for _ in 0..8 {
            let s = m.slots(node);
            let bit = dec.decode(m.p1(s));
            m.update(s, bit);
            node = (node << 1) | bit;
        }
        let byte = (node & 0xFF) as u8;
        out.push(byte);
        m.push_byte(byte);
        if dec.overrun() > 8 {
            return Err(MmzError::Truncated("order-2 payload ended early".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_text_and_edge_cases() {
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(200);
        for input in [&b""[..], &b"x"[..], &[0u8; 5000][..], &text[..]] {
            let c = compress(input);
            assert_eq!(decompress(&c, input.len()).unwrap(), input);
        }
        assert!(compress(&text).len() < text.len() / 4);
    }
}
