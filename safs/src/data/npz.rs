//! A strict reader of `.npz` archives as `np.savez` writes them: a zip file of stored
//! (uncompressed) `.npy` entries, zip64 extra fields included.
//!
//! The whole file is read once and every length, count and offset in it is checked against
//! the bytes actually there before anything is allocated, so a corrupt header claiming
//! 10^12 elements is an error, not an allocation. Every entry's CRC-32 is verified.
//! Compressed entries (`np.savez_compressed`), encrypted entries, archives split over
//! several disks, structured dtypes, big-endian arrays and Fortran order with more than one
//! non-trivial axis are refused. Every error names the file (and the entry at fault).

use std::path::Path;

use super::pickle::{NdArray, NpDtype};
use crate::{Error, Result};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const END64_LOCATOR: u32 = 0x0706_4b50;
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads every array of the npz archive at `path`, in archive order, names without
/// `.npy`.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NdArray)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npz(&bytes, path)
}

/// Parses the bytes of an npz archive; `path` is only used in errors.
pub fn parse_npz(bytes: &[u8], path: &Path) -> Result<Vec<(String, NdArray)>> {
    let zip = Zip { bytes, path };
    let entries = zip.central_directory()?;
    let mut out: Vec<(String, NdArray)> = Vec::new();
    for e in entries {
        let data = zip.entry_data(&e)?;
        let name = e.name.strip_suffix(".npy").unwrap_or(&e.name).to_string();
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Error::data(
                path,
                format!("the npz holds two arrays named '{name}'"),
            ));
        }
        let array = parse_npy(data)
            .map_err(|m| Error::data(path, format!("npz entry '{}': {m}", e.name)))?;
        out.push((name, array));
    }
    Ok(out)
}

/// One central-directory record.
struct Entry {
    name: String,
    method: u16,
    flags: u16,
    crc: u32,
    size: u64,
    compressed: u64,
    offset: u64,
}

struct Zip<'a> {
    bytes: &'a [u8],
    path: &'a Path,
}

/// Little-endian reads that fail past the end.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl Zip<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::data(self.path, msg.into())
    }

    /// `n` bytes at `at`, or an error saying what they were for.
    fn slice(&self, at: u64, n: u64, what: &str) -> Result<&[u8]> {
        let len = self.bytes.len() as u64;
        match at.checked_add(n) {
            Some(end) if end <= len => Ok(&self.bytes[at as usize..end as usize]),
            _ => Err(self.err(format!(
                "not a complete npz (zip) archive: {what} needs bytes {at}..{} but the file \
                 has {len}",
                at.saturating_add(n)
            ))),
        }
    }

    /// The entry count, size and offset of the central directory.
    fn end_record(&self) -> Result<(u64, u64, u64)> {
        let b = self.bytes;
        // The end record is 22 bytes and a comment of at most 65535; its comment length
        // must reach exactly to the end of the file.
        let lowest = b.len().saturating_sub(22 + 0xffff);
        let found = (lowest..=b.len().saturating_sub(22)).rev().find(|&at| {
            u32_at(b, at) == Some(END)
                && u16_at(b, at + 20).is_some_and(|c| at + 22 + c as usize == b.len())
        });
        let Some(at) = found else {
            return Err(self.err(
                "not an npz (zip) archive: no end-of-central-directory record (np.load reads \
                 .npz files written by np.savez)",
            ));
        };
        let field = |off: usize| u16_at(b, at + off).unwrap_or(0);
        if field(4) != 0 || field(6) != 0 {
            return Err(self.err("zip archives split over several disks are not supported"));
        }
        let mut count = u16_at(b, at + 10).unwrap_or(0) as u64;
        let mut size = u32_at(b, at + 12).unwrap_or(0) as u64;
        let mut offset = u32_at(b, at + 16).unwrap_or(0) as u64;
        if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
            // Zip64: a locator just before the end record points at the zip64 end record.
            let loc = at
                .checked_sub(20)
                .filter(|&l| u32_at(b, l) == Some(END64_LOCATOR))
                .ok_or_else(|| self.err("zip64 archive without its end-record locator"))?;
            let rec = u64_at(b, loc + 8).unwrap_or(u64::MAX);
            let r = self.slice(rec, 56, "the zip64 end record")?;
            if u32_at(r, 0) != Some(END64) {
                return Err(self.err(format!("no zip64 end record at offset {rec}")));
            }
            count = u64_at(r, 32).unwrap_or(0);
            size = u64_at(r, 40).unwrap_or(0);
            offset = u64_at(r, 48).unwrap_or(0);
        }
        Ok((count, size, offset))
    }

    fn central_directory(&self) -> Result<Vec<Entry>> {
        let (count, size, offset) = self.end_record()?;
        let dir = self.slice(offset, size, "the central directory")?;
        // Each record takes at least 46 bytes: a count the directory cannot hold is a lie.
        if count > size / 46 {
            return Err(self.err(format!(
                "the zip end record claims {count} entries but the central directory has only \
                 {size} bytes"
            )));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut at = 0usize;
        for i in 0..count {
            let bad = |what: &str| {
                self.err(format!(
                    "central directory record {i} (offset {}): {what}",
                    offset + at as u64
                ))
            };
            if u32_at(dir, at) != Some(CENTRAL) {
                return Err(bad("bad signature"));
            }
            let fixed = dir.get(at..at + 46).ok_or_else(|| bad("truncated"))?;
            let f16 = |o: usize| u16_at(fixed, o).unwrap_or(0);
            let f32 = |o: usize| u32_at(fixed, o).unwrap_or(0);
            let (name_len, extra_len, comment_len) =
                (f16(28) as usize, f16(30) as usize, f16(32) as usize);
            let name_at = at + 46;
            let extra_at = name_at + name_len;
            let end = extra_at + extra_len + comment_len;
            if end > dir.len() {
                return Err(bad("runs past the central directory"));
            }
            let name = std::str::from_utf8(&dir[name_at..extra_at])
                .map_err(|_| bad("entry name is not UTF-8"))?
                .to_string();
            let mut e = Entry {
                name,
                flags: f16(8),
                method: f16(10),
                crc: f32(16),
                compressed: f32(20) as u64,
                size: f32(24) as u64,
                offset: f32(42) as u64,
            };
            zip64_extra(&dir[extra_at..extra_at + extra_len], &mut e).map_err(|m| bad(&m))?;
            entries.push(e);
            at = end;
        }
        Ok(entries)
    }

    /// The stored bytes of entry `e`, CRC-checked.
    fn entry_data(&self, e: &Entry) -> Result<&[u8]> {
        let bad = |what: String| self.err(format!("npz entry '{}': {what}", e.name));
        if e.flags & 1 != 0 {
            return Err(bad("encrypted entries are not supported".into()));
        }
        match e.method {
            0 => {}
            8 => {
                return Err(bad(
                    "the entry is deflate-compressed (np.savez_compressed); only np.savez \
                     archives with stored entries are supported (the pickle edition is read \
                     too)"
                        .into(),
                ))
            }
            m => return Err(bad(format!("unsupported zip compression method {m}"))),
        }
        if e.compressed != e.size {
            return Err(bad(format!(
                "a stored entry of {} bytes claims {} uncompressed",
                e.compressed, e.size
            )));
        }
        let local = self.slice(e.offset, 30, "a local file header")?;
        if u32_at(local, 0) != Some(LOCAL) {
            return Err(bad(format!("no local file header at offset {}", e.offset)));
        }
        let name_len = u16_at(local, 26).unwrap_or(0) as u64;
        let extra_len = u16_at(local, 28).unwrap_or(0) as u64;
        let name = self.slice(e.offset + 30, name_len, "a local file name")?;
        if name != e.name.as_bytes() {
            return Err(bad(format!(
                "the local header at offset {} names '{}'",
                e.offset,
                String::from_utf8_lossy(name)
            )));
        }
        let data = self.slice(e.offset + 30 + name_len + extra_len, e.size, "entry data")?;
        let mut crc = flate2::Crc::new();
        crc.update(data);
        if crc.sum() != e.crc {
            return Err(bad(format!(
                "CRC-32 mismatch (stored {:08x}, computed {:08x}): the file is corrupt",
                e.crc,
                crc.sum()
            )));
        }
        Ok(data)
    }
}

/// Applies a zip64 extended-information field (id 1) of `extra` to the fields of `e` that
/// hold their 32-bit placeholder 0xffffffff, in the order the format gives them.
fn zip64_extra(extra: &[u8], e: &mut Entry) -> std::result::Result<(), String> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at).unwrap_or(0);
        let n = u16_at(extra, at + 2).unwrap_or(0) as usize;
        let body = extra
            .get(at + 4..at + 4 + n)
            .ok_or("an extra field runs past its record")?;
        if id == 1 {
            let mut k = 0;
            for field in [&mut e.size, &mut e.compressed, &mut e.offset] {
                if *field == 0xffff_ffff {
                    *field = u64_at(body, k).ok_or("a zip64 field is cut short")?;
                    k += 8;
                }
            }
        }
        at += 4 + n;
    }
    Ok(())
}

/// Parses one `.npy` entry: its header dict and its little-endian C-order data, whose
/// length must be exactly what the shape and dtype need.
pub fn parse_npy(b: &[u8]) -> std::result::Result<NdArray, String> {
    if !b.starts_with(NPY_MAGIC) || b.len() < 10 {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match b[6] {
        1 => (u16_at(b, 8).unwrap_or(0) as usize, 10),
        2 | 3 => (u32_at(b, 8).ok_or("truncated .npy header")? as usize, 12),
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let header = start
        .checked_add(len)
        .and_then(|end| b.get(start..end))
        .ok_or_else(|| {
            format!(
                "the .npy header claims {len} bytes, {} are there",
                b.len() - start.min(b.len())
            )
        })?;
    let header =
        std::str::from_utf8(header).map_err(|_| "the .npy header is not text".to_string())?;
    let h = NpyHeader::parse(header)?;
    let dtype =
        NpDtype::from_code(&h.descr).ok_or_else(|| format!("unsupported dtype {:?}", h.descr))?;
    if h.descr.starts_with('>') && dtype.itemsize() > 1 {
        return Err(format!("big-endian dtype {:?} is not supported", h.descr));
    }
    if h.fortran && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let want = h
        .shape
        .iter()
        .try_fold(dtype.itemsize(), |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows", h.shape))?;
    let data = &b[start + len..];
    if data.len() != want {
        return Err(format!(
            "shape {:?} of {:?} needs {want} data bytes, the entry has {}",
            h.shape,
            h.descr,
            data.len()
        ));
    }
    Ok(NdArray {
        dtype,
        shape: h.shape,
        data: data.to_vec(),
    })
}

/// The three keys of a `.npy` header.
struct NpyHeader {
    descr: String,
    fortran: bool,
    shape: Vec<usize>,
}

impl NpyHeader {
    /// Parses the Python dict literal numpy writes, e.g.
    /// `{'descr': '<f8', 'fortran_order': False, 'shape': (4, 768), }`.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut p = Lit {
            s: text.trim_end_matches(['\n', ' ', '\0']).as_bytes(),
            at: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.space();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.space();
            p.expect(b':')?;
            p.space();
            match key.as_str() {
                "descr" if descr.is_none() => {
                    if p.peek() == Some(b'[') {
                        return Err("structured dtypes are not supported".into());
                    }
                    descr = Some(p.string()?);
                }
                "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
                "shape" if shape.is_none() => shape = Some(p.tuple()?),
                k => {
                    return Err(format!(
                        "unexpected or repeated key {k:?} in the .npy header"
                    ))
                }
            }
            p.space();
            if !p.eat(b',') {
                p.space();
                p.expect(b'}')?;
                break;
            }
        }
        p.space();
        if p.at != p.s.len() {
            return Err("text follows the .npy header's dict".into());
        }
        match (descr, fortran, shape) {
            (Some(descr), Some(fortran), Some(shape)) => Ok(Self {
                descr,
                fortran,
                shape,
            }),
            _ => Err("the .npy header lacks descr, fortran_order or shape".into()),
        }
    }
}

/// A cursor over a Python literal.
struct Lit<'a> {
    s: &'a [u8],
    at: usize,
}

impl Lit<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn space(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c == b' ' || c == b'\t' || c == b'\n')
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "bad .npy header: expected '{}' at offset {}",
                c as char, self.at
            ))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = self.peek().filter(|&c| c == b'\'' || c == b'"');
        let q =
            q.ok_or_else(|| format!("bad .npy header: expected a string at offset {}", self.at))?;
        let start = self.at + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("bad .npy header: unterminated string")?;
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(v);
            }
        }
        Err(format!(
            "bad .npy header: expected True or False at offset {}",
            self.at
        ))
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.space();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.at;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.at += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| format!("bad .npy header: bad dimension at offset {start}"))?;
            dims.push(d);
            if dims.len() > 32 {
                return Err("the .npy shape has more than 32 dimensions".into());
            }
            self.space();
            if !self.eat(b',') {
                self.space();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::fixture;
    use crate::data::test_util::TempDir;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn reads_numpy_and_candle_archives() {
        // np.savez: zip64 extra fields in the local headers.
        let a = read_npz(&fixture("imagenet16_train_data_batch_1.npz")).unwrap();
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["data", "labels", "mean"]);
        assert_eq!(
            (a[0].1.dtype, a[0].1.shape.clone()),
            (NpDtype::U8, vec![4, 768])
        );
        assert_eq!(a[1].1.to_i64().unwrap(), vec![1, 120, 121, 1000]);
        assert_eq!(a[2].1.dtype, NpDtype::F64);
        // Candle's writer (the zip crate).
        let t = TempDir::new("npz_candle");
        let p = t.path().join("c.npz");
        let x = Tensor::new(&[[1u32, 2, 3], [4, 5, 6]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        Tensor::write_npz(&[("x", &x), ("y", &y)], &p).unwrap();
        let a = read_npz(&p).unwrap();
        assert_eq!(a[0].1.shape, vec![2, 3]);
        assert_eq!(a[0].1.to_i64().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(
            (a[1].1.dtype, a[1].1.data.clone()),
            (NpDtype::F32, 0.5f32.to_le_bytes().to_vec())
        );
        let _ = DType::U8;
    }

    /// An npy header claiming 10^12 x 768 elements is an error, not an allocation (Candle's
    /// reader, used before, allocated the claimed size: a capacity-overflow panic, or an
    /// abort when the claim fits in the address space).
    #[test]
    fn huge_claimed_shape_is_an_error_not_an_allocation() {
        let npy = |h: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16 + 1).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.push(b'\n');
            b
        };
        let e = parse_npy(&npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 768), }",
        ))
        .unwrap_err();
        assert!(e.contains("needs 768000000000000 data bytes"), "{e}");
        let e = parse_npy(&npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, \
             4294967296), }",
        ))
        .unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn corrupt_archives_are_named_errors() {
        let good = std::fs::read(fixture("imagenet16_train_data_batch_1.npz")).unwrap();
        let p = Path::new("bad.npz");
        let err = |b: &[u8]| parse_npz(b, p).unwrap_err().to_string();
        // A flipped data byte fails the CRC.
        let mut b = good.clone();
        b[200] ^= 1;
        let e = err(&b);
        assert!(e.contains("bad.npz") && e.contains("CRC"), "{e}");
        // Cut short: no end record.
        assert!(err(&good[..good.len() - 30]).contains("end-of-central-directory"));
        // An entry count the directory cannot hold.
        let mut b = good.clone();
        let n = b.len();
        b[n - 12..n - 10].copy_from_slice(&[0xfe, 0xff]);
        assert!(err(&b).contains("claims 65534 entries"), "{}", err(&b));
        // np.savez_compressed is explained.
        let c = std::fs::read(fixture("imagenet16_compressed.npz")).unwrap();
        assert!(err(&c).contains("savez_compressed"));
        assert!(err(b"").contains("bad.npz"));
    }
}
