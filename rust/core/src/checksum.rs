//! Checksums used by the frame format: XXH3-64 (seed 0) everywhere.

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// XXH3-64 of `data` with seed 0.
pub fn xxh3(data: &[u8]) -> u64 {
    xxh3_64(data)
}

/// Low 32 bits of XXH3-64, used to protect small headers.
pub fn xxh3_32(data: &[u8]) -> u32 {
    (xxh3_64(data) & 0xFFFF_FFFF) as u32
}

/// Streaming XXH3-64 for content checksums over many chunks.
#[derive(Clone, Default)]
pub struct StreamHash(Xxh3);

impl StreamHash {
    /// A fresh hasher (seed 0).
    pub fn new() -> Self {
        StreamHash(Xxh3::new())
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest of everything fed so far.
    pub fn digest(&self) -> u64 {
        self.0.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut h = StreamHash::new();
        for part in data.chunks(333) {
            h.update(part);
        }
        assert_eq!(h.digest(), xxh3(&data));
        assert_ne!(xxh3(b"a"), xxh3(b"b"));
    }
}
