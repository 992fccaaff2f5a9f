//! Pinned deflate for exact PNG re-encoding, plus PNG row (un)filtering.
//!
//! Re-creating an encoder's zlib stream byte-for-byte needs the *same* deflate
//! implementation on the encoding and the decoding machine. The system zlib is
//! not that (zlib, zlib-ng and patched builds emit different bytes), so the
//! core links the bundled, statically built zlib of the `libz-sys` crate
//! (version pinned in `Cargo.lock`). [`ENGINE_ZLIB`] names it in side info;
//! an unknown engine id is an error, never a silent mismatch.
//!
//! All functions are safe on arbitrary input: parameters are validated and
//! every failure is an [`MmzError`].

use crate::error::{MmzError, Result};
use libz_sys as z;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

/// Engine id of the bundled stock zlib (libz-sys, feature `static`).
pub const ENGINE_ZLIB: u8 = 1;

/// Output granularity of one `deflate()` call. Part of the format: level-0
/// (stored) block sizes depend on it, so it must never change for engine 1.
const OUT_STEP: usize = 1 << 16;

/// Parameters of one `deflateInit2` call (zlib wrapper, method 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// Compression level 0..=9.
    pub level: u8,
    /// memLevel 1..=9.
    pub mem_level: u8,
    /// Strategy 0..=4 (default, filtered, huffman-only, rle, fixed).
    pub strategy: u8,
    /// Window bits 9..=15 (zlib header).
    pub window_bits: u8,
}

impl DeflateParams {
    fn validate(&self) -> Result<()> {
        if self.level > 9
            || !(1..=9).contains(&self.mem_level)
            || self.strategy > 4
            || !(9..=15).contains(&self.window_bits)
        {
            return Err(MmzError::InvalidArgument(format!(
                "invalid deflate parameters {self:?}"
            )));
        }
        Ok(())
    }
}

/// One live zlib deflate stream, ended on drop.
struct Deflater {
    strm: Box<MaybeUninit<z::z_stream>>,
}

impl Deflater {
    fn new(p: &DeflateParams) -> Result<Self> {
        p.validate()?;
        // zalloc/zfree must be null (zlib defaults), which zeroed memory gives.
        let mut strm: Box<MaybeUninit<z::z_stream>> = Box::new(MaybeUninit::zeroed());
        // SAFETY: `strm` is zero-initialised memory of the right type; deflateInit2_
        // initialises it; version/size are the values the library was built with.
        let rc = unsafe {
            z::deflateInit2_(
                strm.as_mut_ptr(),
                c_int::from(p.level),
                z::Z_DEFLATED,
                c_int::from(p.window_bits),
                c_int::from(p.mem_level),
                c_int::from(p.strategy),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(MmzError::InvalidArgument(format!(
                "deflateInit2 failed ({rc}) for {p:?}"
            )));
        }
        Ok(Deflater { strm })
    }

    /// Run the whole of `input` through deflate with Z_FINISH, handing each
    /// output piece (at most [`OUT_STEP`] bytes) to `sink`; `sink` returns
    /// false to abort. Returns true when the stream finished.
    fn run(&mut self, input: &[u8], mut sink: impl FnMut(&[u8]) -> bool) -> Result<bool> {
        let mut out = vec![0u8; OUT_STEP];
        let mut pos = 0usize;
        loop {
            // Feed input in pieces that fit a uInt.
            let feed = (input.len() - pos).min(u32::MAX as usize >> 1);
            // SAFETY: pointers stay valid for the call; the stream was initialised
            // in `new`; zlib reads `avail_in` bytes and writes `avail_out` bytes.
            let (rc, used, produced) = unsafe {
                let s = &mut *self.strm.as_mut_ptr();
                s.next_in = input.as_ptr().add(pos) as *mut u8;
                s.avail_in = feed as z::uInt;
                s.next_out = out.as_mut_ptr();
                s.avail_out = OUT_STEP as z::uInt;
                let last = pos + feed == input.len();
                let rc = z::deflate(s, if last { z::Z_FINISH } else { z::Z_NO_FLUSH });
                (
                    rc,
                    feed - s.avail_in as usize,
                    OUT_STEP - s.avail_out as usize,
                )
            };
            pos += used;
            if rc != z::Z_OK && rc != z::Z_STREAM_END && rc != z::Z_BUF_ERROR {
                return Err(MmzError::corrupt(
                    "deflate",
                    format!("zlib deflate returned {rc}"),
                ));
            }
            if produced > 0 && !sink(&out[..produced]) {
                return Ok(false);
            }
            if rc == z::Z_STREAM_END {
                return Ok(true);
            }
            if rc == z::Z_BUF_ERROR && produced == 0 && used == 0 {
                return Err(MmzError::corrupt("deflate", "zlib made no progress"));
            }
        }
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_ in `new`.
        unsafe {
            z::deflateEnd(self.strm.as_mut_ptr());
        }
    }
}

/// Compress `data` into a zlib stream with the pinned engine.
pub fn zlib_deflate(data: &[u8], p: &DeflateParams) -> Result<Vec<u8>> {
    let mut d = Deflater::new(p)?;
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    d.run(data, |piece| {
        out.extend_from_slice(piece);
        true
    })?;
    Ok(out)
}

/// True when deflating `data` with `p` yields exactly `target`. Aborts at the
/// first output piece that differs.
pub fn zlib_matches(data: &[u8], target: &[u8], p: &DeflateParams) -> Result<bool> {
    let mut d = Deflater::new(p)?;
    let mut pos = 0usize;
    let finished = d.run(data, |piece| {
        let end = pos + piece.len();
        if end > target.len() || target[pos..end] != *piece {
            return false;
        }
        pos = end;
        true
    })?;
    Ok(finished && pos == target.len())
}

/// zlib's FLEVEL header field for a parameter set.
fn flevel(level: u8, strategy: u8) -> u8 {
    if strategy >= 2 || level < 2 {
        0
    } else if level < 6 {
        1
    } else if level == 6 {
        2
    } else {
        3
    }
}

/// Candidate parameter sets consistent with the zlib header of `target`,
/// likeliest first (level 6 / memLevel 8-9 / default or filtered first).
pub fn candidates(target: &[u8]) -> Vec<DeflateParams> {
    let (cmf, flg) = match target {
        [a, b, ..] => (*a, *b),
        _ => return Vec::new(),
    };
    if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 || flg & 0x20 != 0 {
        return Vec::new();
    }
    let wbits = (cmf >> 4) + 8;
    if !(9..=15).contains(&wbits) {
        return Vec::new();
    }
    let want = flg >> 6;
    let levels = [6u8, 9, 1, 5, 2, 3, 4, 7, 8, 0];
    let mems = [9u8, 8, 7, 6, 5, 4, 3, 2, 1];
    let strategies = [1u8, 0, 2, 3, 4];
    let mut out = Vec::new();
    for &mem_level in &mems {
        for &strategy in &strategies {
            for &level in &levels {
                if flevel(level, strategy) != want {
                    continue;
                }
                // Huffman-only and RLE ignore the level above 0: try one.
                if (2..=3).contains(&strategy) && level > 1 {
                    continue;
                }
                out.push(DeflateParams {
                    level,
                    mem_level,
                    strategy,
                    window_bits: wbits,
                });
            }
        }
    }
    // Keep memLevel 9/8 with the common strategies ahead of the exotic rest.
    out.sort_by_key(|p| {
        let mem_rank = match p.mem_level {
            9 | 8 => 0,
            _ => 1,
        };
        let strat_rank = if p.strategy <= 1 { 0 } else { 1 };
        (mem_rank, strat_rank)
    });
    out
}

/// Find parameters that re-create `target` from `data`, trying at most
/// `max_tries` candidates. `None` if none matches.
pub fn zlib_search(data: &[u8], target: &[u8], max_tries: usize) -> Result<Option<DeflateParams>> {
    for p in candidates(target).into_iter().take(max_tries) {
        if zlib_matches(data, target, &p)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

#[inline]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let pa = (p - i16::from(a)).abs();
    let pb = (p - i16::from(b)).abs();
    let pc = (p - i16::from(c)).abs();
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

fn check_geometry(len: usize, row_bytes: usize, bpp: usize, rows: usize) -> Result<()> {
    if bpp == 0 || bpp > 8 || row_bytes == 0 {
        return Err(MmzError::InvalidArgument(format!(
            "bad PNG geometry: row_bytes={row_bytes} bpp={bpp}"
        )));
    }
    let need = row_bytes
        .checked_add(1)
        .and_then(|r| r.checked_mul(rows))
        .ok_or_else(|| MmzError::corrupt("png", "image size overflows"))?;
    if len != need {
        return Err(MmzError::corrupt(
            "png",
            format!("filtered data is {len} bytes, expected {need}"),
        ));
    }
    Ok(())
}

/// Undo PNG filtering. `data` is `rows` × (1 filter byte + `row_bytes`).
/// Returns (filter type per row, raw rows concatenated).
pub fn png_unfilter(data: &[u8], row_bytes: usize, bpp: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let rows = data.len() / (row_bytes.max(1) + 1);
    check_geometry(data.len(), row_bytes, bpp, rows)?;
    let mut filters = Vec::with_capacity(rows);
    let mut raw = vec![0u8; rows * row_bytes];
    let zero = vec![0u8; row_bytes];
    for y in 0..rows {
        let src = &data[y * (row_bytes + 1)..(y + 1) * (row_bytes + 1)];
        let ft = src[0];
        let src = &src[1..];
        filters.push(ft);
        let (done, rest) = raw.split_at_mut(y * row_bytes);
        let prev: &[u8] = if y == 0 {
            &zero
        } else {
            &done[(y - 1) * row_bytes..]
        };
        let cur = &mut rest[..row_bytes];
        match ft {
            0 => cur.copy_from_slice(src),
            1 => {
                for i in 0..row_bytes {
                    let a = if i >= bpp { cur[i - bpp] } else { 0 };
                    cur[i] = src[i].wrapping_add(a);
                }
            }
            2 => {
                for i in 0..row_bytes {
                    cur[i] = src[i].wrapping_add(prev[i]);
                }
            }
            3 => {
                for i in 0..row_bytes {
                    let a = if i >= bpp { cur[i - bpp] } else { 0 };
                    cur[i] = src[i].wrapping_add(((u16::from(a) + u16::from(prev[i])) >> 1) as u8);
                }
            }
            4 => {
                for i in 0..row_bytes {
                    let (a, c) = if i >= bpp {
                        (cur[i - bpp], prev[i - bpp])
                    } else {
                        (0, 0)
                    };
                    cur[i] = src[i].wrapping_add(paeth(a, prev[i], c));
                }
            }
            _ => {
                return Err(MmzError::corrupt(
                    "png",
                    format!("row {y} has invalid filter type {ft}"),
                ))
            }
        }
    }
    Ok((filters, raw))
}

/// Apply PNG filtering: the inverse of [`png_unfilter`].
pub fn png_filter(raw: &[u8], filters: &[u8], row_bytes: usize, bpp: usize) -> Result<Vec<u8>> {
    let rows = filters.len();
    if raw.len() != rows.saturating_mul(row_bytes) {
        return Err(MmzError::corrupt(
            "png",
            format!(
                "{} raw bytes do not fill {rows} rows of {row_bytes}",
                raw.len()
            ),
        ));
    }
    check_geometry(rows * (row_bytes + 1), row_bytes, bpp, rows)?;
    let mut out = Vec::with_capacity(rows * (row_bytes + 1));
    let zero = vec![0u8; row_bytes];
    for (y, &ft) in filters.iter().enumerate() {
        let cur = &raw[y * row_bytes..(y + 1) * row_bytes];
        let prev: &[u8] = if y == 0 {
            &zero
        } else {
            &raw[(y - 1) * row_bytes..y * row_bytes]
        };
        out.push(ft);
        match ft {
            0 => out.extend_from_slice(cur),
            1 => out.extend(
                (0..row_bytes)
                    .map(|i| cur[i].wrapping_sub(if i >= bpp { cur[i - bpp] } else { 0 })),
            ),
            2 => out.extend((0..row_bytes).map(|i| cur[i].wrapping_sub(prev[i]))),
            3 => out.extend((0..row_bytes).map(|i| {
                let a = if i >= bpp { cur[i - bpp] } else { 0 };
                cur[i].wrapping_sub(((u16::from(a) + u16::from(prev[i])) >> 1) as u8)
            })),
            4 => out.extend((0..row_bytes).map(|i| {
                let (a, c) = if i >= bpp {
                    (cur[i - bpp], prev[i - bpp])
                } else {
                    (0, 0)
                };
                cur[i].wrapping_sub(paeth(a, prev[i], c))
            })),
            _ => {
                return Err(MmzError::corrupt(
                    "png",
                    format!("row {y} has invalid filter type {ft}"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut x = 12345u32;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((i / 7) as u8).wrapping_add((x >> 28) as u8)
            })
            .collect()
    }

    #[test]
    fn deflate_search_finds_own_params() {
        let data = sample(200_000);
        for &(level, mem_level, strategy) in &[(6u8, 9u8, 1u8), (9, 8, 0), (1, 8, 0), (3, 9, 1)] {
            let p = DeflateParams {
                level,
                mem_level,
                strategy,
                window_bits: 15,
            };
            let z = zlib_deflate(&data, &p).unwrap();
            let found = zlib_search(&data, &z, 1000).unwrap().unwrap();
            assert_eq!(zlib_deflate(&data, &found).unwrap(), z);
            assert!(zlib_matches(&data, &z, &p).unwrap());
            let mut bad = z.clone();
            let k = bad.len() / 2;
            bad[k] ^= 1;
            assert!(!zlib_matches(&data, &bad, &p).unwrap());
        }
    }

    #[test]
    fn filter_roundtrip_all_types() {
        let (row_bytes, bpp, rows) = (37usize, 3usize, 11usize);
        let raw = sample(row_bytes * rows);
        let filters: Vec<u8> = (0..rows).map(|y| (y % 5) as u8).collect();
        let f = png_filter(&raw, &filters, row_bytes, bpp).unwrap();
        let (ft, back) = png_unfilter(&f, row_bytes, bpp).unwrap();
        assert_eq!(ft, filters);
        assert_eq!(back, raw);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(png_unfilter(&[9, 1, 2], 2, 1).is_err());
        assert!(png_unfilter(&[0, 1], 2, 1).is_err());
        assert!(png_filter(&[0; 4], &[0], 2, 1).is_err());
        assert!(candidates(&[0, 0]).is_empty());
        assert!(zlib_deflate(
            b"x",
            &DeflateParams {
                level: 10,
                mem_level: 8,
                strategy: 0,
                window_bits: 15
            }
        )
        .is_err());
    }
}
