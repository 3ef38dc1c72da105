//! Reader (and a small writer) for the IDX format used by MNIST and Fashion-MNIST.
//!
//! An IDX file is a 4-byte magic `0 0 TYPE NDIM`, then `NDIM` big-endian `u32` dimensions,
//! then the elements in row-major order. Only the unsigned-byte element type (`0x08`) is
//! supported, which is all MNIST-like data sets use. Files may be gzip-compressed; gzip is
//! recognised by its magic bytes `1f 8b`, whatever the file is called.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::{Error, Result};

/// The IDX element type code for unsigned bytes, the only one supported.
pub const IDX_UBYTE: u8 = 0x08;

/// A decoded IDX array of unsigned bytes: its dimensions and its row-major data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed; every error names `path`.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if is_gzip(&bytes) {
        gunzip(&bytes, path)?
    } else {
        bytes
    };
    parse_idx(bytes, path)
}

/// The most bytes deflate can expand one input byte to (its maximum ratio is about 1032:1).
pub(crate) const DEFLATE_MAX_RATIO: usize = 1032;

/// The capacity to reserve for decompressing the gzip stream `bytes`: the size its trailer
/// records (modulo 2^32), but only as far as the input can justify it, so a corrupt
/// trailer never reserves gigabytes for a few bytes of input.
fn capacity_hint(bytes: &[u8]) -> usize {
    let recorded = if bytes.len() >= 4 {
        let t = &bytes[bytes.len() - 4..];
        u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize
    } else {
        0
    };
    recorded.min(bytes.len().saturating_mul(DEFLATE_MAX_RATIO))
}

/// Decompresses a whole gzip stream held in memory; errors name `path`.
pub(crate) fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity_hint(bytes));
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::data(path, format!("corrupt gzip stream: {e}")))?;
    Ok(out)
}

/// Name of an IDX element type code, for error messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

/// Parses the (already decompressed) bytes of an IDX file; `path` is only used in errors.
pub fn parse_idx(mut bytes: Vec<u8>, path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: {} bytes, shorter than the 4-byte magic",
                bytes.len()
            ),
        ));
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 NDIM",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != IDX_UBYTE {
        return Err(Error::data(
            path,
            format!(
                "unsupported IDX element type 0x{:02x} ({}); only unsigned byte (0x08) is supported",
                magic[2],
                type_name(magic[2])
            ),
        ));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(Error::data(path, "IDX header declares 0 dimensions"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::data(
            path,
            format!(
                "truncated header: {ndim} dimensions need {header} header bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::data(path, format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(Error::data(
            path,
            format!("truncated data: dimensions {dims:?} need {expected} bytes, found {found}"),
        ));
    }
    if found > expected {
        return Err(Error::data(
            path,
            format!(
                "{} trailing bytes: dimensions {dims:?} need {expected} bytes, found {found}",
                found - expected
            ),
        ));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Encodes dimensions and unsigned-byte data as IDX bytes (the inverse of [`parse_idx`]).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, IDX_UBYTE, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an IDX file, gzip-compressed when `gzip` is true (used by tests and tools).
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let raw = encode_idx(dims, data);
    let bytes = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).map_err(|e| Error::io(path, e))?;
        enc.finish().map_err(|e| Error::io(path, e))?
    } else {
        raw
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;

    #[test]
    fn parse_raw_and_gz() {
        let t = TempDir::new("idx_raw_gz");
        let data: Vec<u8> = (0..24).collect();
        let raw = t.path().join("a-idx3-ubyte");
        let gz = t.path().join("a-idx3-ubyte.gz");
        write_idx(&raw, &[2, 3, 4], &data, false).unwrap();
        write_idx(&gz, &[2, 3, 4], &data, true).unwrap();
        for p in [&raw, &gz] {
            let a = read_idx(p).unwrap();
            assert_eq!(a.dims, vec![2, 3, 4]);
            assert_eq!(a.data, data);
        }
        // gzip is detected by content, not by name.
        let hidden = t.path().join("gz-without-extension");
        std::fs::copy(&gz, &hidden).unwrap();
        assert_eq!(read_idx(&hidden).unwrap().data, data);
        assert!(is_gzip(&std::fs::read(&gz).unwrap()));
        assert!(!is_gzip(&std::fs::read(&raw).unwrap()));
    }

    fn err_of(t: &TempDir, name: &str, bytes: &[u8]) -> String {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains(name), "error does not name the file: {e}");
        e
    }

    #[test]
    fn wrong_magic() {
        let t = TempDir::new("idx_magic");
        let mut b = encode_idx(&[3], &[1, 2, 3]);
        b[0] = 1;
        let e = err_of(&t, "bad-magic.idx", &b);
        assert!(e.contains("not an IDX file"), "{e}");
        let e = err_of(&t, "tiny.idx", &[0, 0]);
        assert!(e.contains("4-byte magic"), "{e}");
    }

    #[test]
    fn wrong_type_byte() {
        let t = TempDir::new("idx_type");
        let mut b = encode_idx(&[4], &[0, 0, 0, 0]);
        b[2] = 0x0D;
        let e = err_of(&t, "floats.idx", &b);
        assert!(e.contains("0x0d") && e.contains("f32"), "{e}");
    }

    #[test]
    fn truncated_data() {
        let t = TempDir::new("idx_trunc");
        let b = encode_idx(&[2, 5], &[7; 10]);
        let e = err_of(&t, "short.idx", &b[..b.len() - 3]);
        assert!(
            e.contains("truncated") && e.contains("10") && e.contains("found 7"),
            "{e}"
        );
        let e = err_of(&t, "short-header.idx", &b[..9]);
        assert!(e.contains("truncated header"), "{e}");
        // A gzip stream cut short is also reported against the file.
        let gz = t.path().join("full.gz");
        write_idx(&gz, &[2, 5], &[7; 10], true).unwrap();
        let g = std::fs::read(&gz).unwrap();
        let e = err_of(&t, "cut.gz", &g[..g.len() - 6]);
        assert!(e.contains("gzip"), "{e}");
    }

    #[test]
    fn trailing_bytes() {
        let t = TempDir::new("idx_trail");
        let mut b = encode_idx(&[2, 2], &[1, 2, 3, 4]);
        b.extend_from_slice(&[9, 9]);
        let e = err_of(&t, "long.idx", &b);
        assert!(e.contains("2 trailing bytes"), "{e}");
    }

    /// A corrupt gzip trailer claiming 4 GiB reserves no more than the input can inflate to
    /// (it reserved 1 GiB for a 30-byte file).
    #[test]
    fn gzip_trailer_size_is_only_a_bounded_hint() {
        let t = TempDir::new("idx_gz_hint");
        let p = t.path().join("big-claim.gz");
        write_idx(&p, &[3], &[1, 2, 3], true).unwrap();
        let mut g = std::fs::read(&p).unwrap();
        assert_eq!(
            capacity_hint(&g),
            4 + 4 + 3,
            "an honest trailer is the exact size"
        );
        let n = g.len();
        g[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            capacity_hint(&g) <= n * DEFLATE_MAX_RATIO,
            "{}",
            capacity_hint(&g)
        );
        let e = err_of(&t, "big-claim.gz", &g);
        assert!(e.contains("gzip"), "{e}");
    }

    /// An IDX header claiming 10^12 images is an error, not an allocation.
    #[test]
    fn huge_claimed_dimensions_are_an_error_not_an_allocation() {
        let t = TempDir::new("idx_huge");
        let mut b = encode_idx(&[1, 28, 28], &[0; 784]);
        b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = err_of(&t, "huge-idx3-ubyte", &b);
        assert!(e.contains("truncated data"), "{e}");
    }

    #[test]
    fn missing_file_names_it() {
        let t = TempDir::new("idx_missing");
        let p = t.path().join("nope-idx1-ubyte");
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("nope-idx1-ubyte"), "{e}");
    }
}
