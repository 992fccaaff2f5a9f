//! Binary arithmetic coder for bitwise models (the simple order-2 codec and the
//! context-mixing engine). Carry-less 32-bit design: the interval `[x1, x2]`
//! shrinks with each bit and leading bytes are shifted out once they agree.
//! Probabilities are 16-bit: `p1` is P(bit = 1) scaled to `1..=65535`.

/// Encoder half: append bits, then [`BitEncoder::finish`].
pub struct BitEncoder {
    x1: u32,
    x2: u32,
    out: Vec<u8>,
}

impl Default for BitEncoder {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
fn split(x1: u32, x2: u32, p1: u32) -> u32 {
    debug_assert!((1..=65535).contains(&p1));
    x1 + (((x2 - x1) as u64 * p1 as u64) >> 16) as u32
}

impl BitEncoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        BitEncoder { x1: 0, x2: u32::MAX, out: Vec::new() }
    }

    /// A fresh encoder with reserved output capacity.
    pub fn with_capacity(n: usize) -> Self {
        BitEncoder { x1: 0, x2: u32::MAX, out: Vec::with_capacity(n) }
    }

    /// Code one bit with P(bit = 1) = `p1` / 65536; `p1` must be in `1..=65535`.
    #[inline(always)]
    pub fn encode(&mut self, bit: u32, p1: u32) {
        let xmid = split(self.x1, self.x2, p1);
        if bit != 0 {
            self.x2 = xmid;
        } else {
            self.x1 = xmid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.out.push((self.x2 >> 24) as u8);
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
        }
    }

    /// Flush the final state and return the coded bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&self.x1.to_be_bytes());
        self.out
    }
}

/// Decoder half. Reading past the end yields zero bytes; a damaged stream
/// therefore decodes to wrong bits, which the frame's checksums catch.
pub struct BitDecoder<'a> {
    x1: u32,
    x2: u32,
    x: u32,
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitDecoder<'a> {
    /// Start decoding `data`.
    pub fn new(data: &'a [u8]) -> Self {
        let mut d = BitDecoder { x1: 0, x2: u32::MAX, x: 0, data, pos: 0 };
        for _ in 0..4 {
            d.x = (d.x << 8) | d.next_byte();
        }
        d
    }

    #[inline(always)]
    fn next_byte(&mut self) -> u32 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as u32
    }

    /// Decode one bit coded with the same `p1` the encoder used.
    #[inline(always)]
    pub fn decode(&mut self, p1: u32) -> u32 {
        let xmid = split(self.x1, self.x2, p1);
        let bit = if self.x <= xmid {
            self.x2 = xmid;
            1
        } else {
            self.x1 = xmid + 1;
            0
        };
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
            self.x = (self.x << 8) | self.next_byte();
        }
        bit
    }

    /// [`BitDecoder::decode`] without a branch on the decoded bit (the same
    /// integers): the interval update is a pair of selects, so a bit the
    /// branch predictor would guess wrong costs no pipeline flush.
    #[inline(always)]
    pub fn decode_select(&mut self, p1: u32) -> u32 {
        let xmid = split(self.x1, self.x2, p1);
        let one = self.x <= xmid;
        self.x2 = std::hint::select_unpredictable(one, xmid, self.x2);
        self.x1 = std::hint::select_unpredictable(one, self.x1, xmid + 1);
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
            self.x = (self.x << 8) | self.next_byte();
        }
        one as u32
    }

    /// Bytes consumed beyond the end of the input (a sign of truncation when large).
    pub fn overrun(&self) -> usize {
        self.pos.saturating_sub(self.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_mixed_probabilities() {
        let mut state = 12345u32;
        let mut bits = Vec::new();
        let mut probs = Vec::new();
        for _ in 0..100_000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let p = 1 + (state >> 8) % 65535;
            let bit = ((state >> 3) % 65536 < p) as u32;
            bits.push(bit);
            probs.push(p);
        }
        let mut e = BitEncoder::new();
        for (&b, &p) in bits.iter().zip(&probs) {
            e.encode(b, p);
        }
        let out = e.finish();
        let mut d = BitDecoder::new(&out);
        let mut s = BitDecoder::new(&out);
        for (&b, &p) in bits.iter().zip(&probs) {
            assert_eq!(d.decode(p), b);
            // The branch-free decoder reads the same bits and keeps the same state.
            assert_eq!(s.decode_select(p), b);
            assert_eq!((s.x1, s.x2, s.x, s.pos), (d.x1, d.x2, d.x, d.pos));
        }
    }

    #[test]
    fn extreme_probabilities() {
        let mut e = BitEncoder::new();
        let pattern = [1u32, 0, 0, 1, 1, 1, 0];
        for i in 0..10_000 {
            let b = pattern[i % pattern.len()];
            e.encode(b, if i % 2 == 0 { 1 } else { 65535 });
        }
        let out = e.finish();
        let mut d = BitDecoder::new(&out);
        let mut s = BitDecoder::new(&out);
        for i in 0..10_000 {
            let b = pattern[i % pattern.len()];
            let p = if i % 2 == 0 { 1 } else { 65535 };
            assert_eq!(d.decode(p), b);
            assert_eq!(s.decode_select(p), b);
        }
    }
}
