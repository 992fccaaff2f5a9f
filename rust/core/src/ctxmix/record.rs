//! Record-length detection for binary tables (CM payload version 5).
//!
//! Tables of fixed-size records (ELF symbol and relocation tables, arrays of
//! structs, database pages) repeat some byte values at a constant distance:
//! a type code, a flag byte, the high bytes of a growing offset. The detector
//! watches, per byte value, the gaps between its last occurrences; a value
//! seen four times at one gap votes for that gap, and a gap that outvotes the
//! current record length by [`SWITCH`] becomes the new one. Both coder sides
//! run it over the same history, so it needs nothing in the payload, and it
//! follows a binary from one table to the next.

/// Longest record length detected.
pub const MAX_LEN: u32 = 1024;

/// Votes a challenger needs (net of the current length's) to become the record length.
const SWITCH: u32 = 12;

/// Equal gaps in a row (beyond the first) that make an occurrence a vote.
const RUN: u8 = 2;

/// The detector's state: per byte value its last position, last gap and how
/// many times in a row that gap repeated; two challenger lengths with their
/// votes; the current record length (0: none yet).
#[derive(Clone)]
pub struct RecordLen {
    last: [u32; 256],
    gap: [u32; 256],
    run: [u8; 256],
    cand: [(u32, u32); 2],
    len: u32,
}

impl Default for RecordLen {
    fn default() -> Self {
        RecordLen { last: [0; 256], gap: [0; 256], run: [0; 256], cand: [(0, 0); 2], len: 0 }
    }
}

impl RecordLen {
    /// The current record length (0 until one is detected).
    #[inline(always)]
    pub fn record_len(&self) -> u32 {
        self.len
    }

    /// Observe byte `b`, the `pos`-th byte of the chunk (1-based).
    #[inline(always)]
    pub fn push(&mut self, b: u8, pos: u32) {
        let i = b as usize;
        let g = pos.wrapping_sub(self.last[i]);
        let fresh = self.last[i] == 0;
        self.last[i] = pos;
        if fresh {
            return;
        }
        if g == self.gap[i] {
            self.run[i] = self.run[i].saturating_add(1);
        } else {
            self.gap[i] = g;
            self.run[i] = 0;
        }
        if self.run[i] >= RUN && (2..=MAX_LEN).contains(&g) {
            self.vote(g);
        }
    }

    /// One vote for record length `g`.
    #[inline(always)]
    fn vote(&mut self, g: u32) {
        if g == self.len {
            for c in &mut self.cand {
                c.1 = c.1.saturating_sub(1);
            }
            return;
        }
        let k = if self.cand[0].0 == g {
            0
        } else if self.cand[1].0 == g {
            1
        } else {
            // Replace the weaker challenger (the second on a tie).
            let k = if self.cand[0].1 < self.cand[1].1 { 0 } else { 1 };
            self.cand[k] = (g, 0);
            k
        };
        self.cand[k].1 += 1;
        if self.cand[k].1 >= SWITCH {
            self.len = g;
            self.cand = [(0, 0); 2];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8]) -> Vec<u32> {
        let mut r = RecordLen::default();
        data.iter()
            .enumerate()
            .map(|(i, &b)| {
                r.push(b, i as u32 + 1);
                r.record_len()
            })
            .collect()
    }

    /// Records of `n` bytes: a constant tag, a counter and noise.
    fn table(n: usize, records: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        let mut v = Vec::new();
        for k in 0..records {
            v.push(0x12);
            v.push(k as u8);
            for _ in 2..n {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push(if s >> 30 == 0 { (s >> 20) as u8 } else { 0 });
            }
        }
        v
    }

    #[test]
    fn finds_the_record_length_of_a_table_and_follows_a_change() {
        let mut data = table(24, 200, 1);
        let first = data.len();
        data.extend(table(16, 400, 2));
        let lens = run(&data);
        assert_eq!(lens[first - 1], 24);
        assert_eq!(*lens.last().unwrap(), 16);
        // Detected within a few dozen records.
        assert!(lens.iter().position(|&l| l == 24).unwrap() < 40 * 24);
    }

    #[test]
    fn text_and_noise_settle_on_nothing_long_lived() {
        let mut s = 5u32;
        let noise: Vec<u8> = (0..50_000)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 24) as u8
            })
            .collect();
        let lens = run(&noise);
        // Random bytes rarely repeat a gap three times: few switches at most.
        let switches = lens.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches < 20, "{switches} switches on noise");
        // Runs of one byte are gap 1, never a record.
        assert!(run(&[7u8; 5000]).iter().all(|&l| l == 0));
        assert!(run(&[]).is_empty());
    }
}
