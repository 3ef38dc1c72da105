//! A minimal reader of tar archives (ustar, GNU and pax headers), plain or gzip-compressed,
//! enough to unpack the CIFAR-10 tarball without another crate.
//!
//! Regular files and directories are extracted; links, devices and FIFOs are skipped.
//! Long names come from GNU `L` entries, pax `path` records or the ustar `prefix` field.
//! Every header checksum is verified; names that are absolute or contain `..` are refused.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::{Error, Result};

const BLOCK: usize = 512;

/// Extracts the tar archive at `archive` (gzip-compressed or not, told by its magic bytes)
/// into `dest`, returning the paths of the regular files written, in archive order.
pub fn extract_tar(archive: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let mut f = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(archive, e))?;
    let reader = BufReader::new(std::io::Cursor::new(magic[..n].to_vec()).chain(f));
    if n == 2 && magic == [0x1f, 0x8b] {
        extract_tar_from(MultiGzDecoder::new(reader), archive, dest)
    } else {
        extract_tar_from(reader, archive, dest)
    }
}

/// Extracts the (uncompressed) tar stream `reader` into `dest`; errors name `archive`.
pub fn extract_tar_from(
    mut reader: impl Read,
    archive: &Path,
    dest: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut offset: u64 = 0;
    let mut long_name: Option<String> = None;
    let mut header = [0u8; BLOCK];
    loop {
        if !read_block(&mut reader, &mut header, archive, offset)? {
            // A missing end-of-archive marker is tolerated, as GNU tar does.
            return Ok(written);
        }
        let at = offset;
        offset += BLOCK as u64;
        if header.iter().all(|&b| b == 0) {
            return Ok(written);
        }
        let bad = |msg: String| Error::data(archive, format!("tar header at offset {at}: {msg}"));
        check_sum(&header).map_err(bad)?;
        let size = octal(&header[124..136]).map_err(|m| bad(format!("size field: {m}")))?;
        let kind = header[156];
        let gnu = &header[257..265] == b"ustar  \0";
        let mut name = match long_name.take() {
            Some(n) => n,
            None => {
                let base = text(&header[..100]);
                let prefix = if !gnu && &header[257..262] == b"ustar" {
                    text(&header[345..500])
                } else {
                    String::new()
                };
                if prefix.is_empty() {
                    base
                } else {
                    format!("{prefix}/{base}")
                }
            }
        };
        let padded = size
            .checked_next_multiple_of(BLOCK as u64)
            .ok_or_else(|| bad(format!("size {size} overflows")))?;
        match kind {
            // GNU long name, pax extended header: the next entry's name.
            b'L' | b'x' => {
                let body = read_body(&mut reader, size, archive, offset)?;
                long_name = if kind == b'L' {
                    Some(text(&body))
                } else {
                    pax_path(&body).map_err(|m| bad(format!("pax header: {m}")))?
                };
                skip(&mut reader, padded - size, archive, offset + size)?;
            }
            b'0' | 0 | b'5' => {
                if name.starts_with("./") && name.len() > 2 {
                    name = name[2..].to_string();
                }
                let rel = safe_relative(&name).map_err(bad)?;
                let target = dest.join(&rel);
                // A file where the archive put a folder before (or the reverse) is the
                // archive's fault: the error names it, and the path it could not create.
                let cannot = |p: &Path, e: std::io::Error| {
                    bad(format!(
                        "entry {name:?}: cannot create {}: {e}",
                        p.display()
                    ))
                };
                if kind == b'5' || name.ends_with('/') {
                    std::fs::create_dir_all(&target).map_err(|e| cannot(&target, e))?;
                    skip(&mut reader, padded, archive, offset)?;
                } else {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| cannot(parent, e))?;
                    }
                    let mut out = File::create(&target).map_err(|e| cannot(&target, e))?;
                    let copied = std::io::copy(&mut (&mut reader).take(size), &mut out)
                        .map_err(|e| Error::io(archive, e))?;
                    if copied != size {
                        return Err(truncated(archive, offset + copied));
                    }
                    out.flush().map_err(|e| Error::io(&target, e))?;
                    skip(&mut reader, padded - size, archive, offset + size)?;
                    written.push(target);
                }
            }
            // Global pax headers, links, devices, FIFOs, ...: skipped.
            _ => skip(&mut reader, padded, archive, offset)?,
        }
        offset += padded;
    }
}

fn truncated(archive: &Path, at: u64) -> Error {
    Error::data(archive, format!("tar archive truncated at offset {at}"))
}

/// Reads one block; `false` at a clean end of stream, an error in the middle of a block.
fn read_block(r: &mut impl Read, buf: &mut [u8; BLOCK], archive: &Path, at: u64) -> Result<bool> {
    let mut got = 0;
    while got < BLOCK {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(truncated(archive, at + got as u64)),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(archive, e)),
        }
    }
    Ok(true)
}

fn read_body(r: &mut impl Read, size: u64, archive: &Path, at: u64) -> Result<Vec<u8>> {
    if size > 1 << 20 {
        return Err(Error::data(
            archive,
            format!("tar extended header at offset {at} is {size} bytes long"),
        ));
    }
    // Grown as the bytes arrive, so a header claiming 1 MiB in a short archive reserves
    // only what the archive holds.
    let mut body = Vec::new();
    r.take(size)
        .read_to_end(&mut body)
        .map_err(|e| Error::io(archive, e))?;
    if body.len() as u64 != size {
        return Err(truncated(archive, at + body.len() as u64));
    }
    Ok(body)
}

fn skip(r: &mut impl Read, n: u64, archive: &Path, at: u64) -> Result<()> {
    let skipped =
        std::io::copy(&mut r.take(n), &mut std::io::sink()).map_err(|e| Error::io(archive, e))?;
    if skipped != n {
        return Err(truncated(archive, at + skipped));
    }
    Ok(())
}

/// A NUL-terminated header field as text.
fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// A numeric header field: octal digits (space/NUL padded) or GNU base-256.
fn octal(field: &[u8]) -> std::result::Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err("negative base-256 number".into());
        }
        let mut v: u64 = (field[0] & 0x3f) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or("base-256 number overflows")?;
        }
        return Ok(v);
    }
    let s = text(field);
    let s = s.trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal number"))
}

/// Verifies the header checksum (unsigned sum with the checksum field as spaces; the
/// signed sum of some old tars is accepted too).
fn check_sum(h: &[u8; BLOCK]) -> std::result::Result<(), String> {
    let want = octal(&h[148..156]).map_err(|m| format!("checksum field: {m}"))?;
    let spaces = 8 * b' ' as u64;
    let unsigned: u64 = h[..148]
        .iter()
        .chain(&h[156..])
        .map(|&b| b as u64)
        .sum::<u64>()
        + spaces;
    let signed: i64 = h[..148]
        .iter()
        .chain(&h[156..])
        .map(|&b| b as i8 as i64)
        .sum::<i64>()
        + spaces as i64;
    if want == unsigned || want as i64 == signed {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch (stored {want}, computed {unsigned}): not a tar file or corrupt"
        ))
    }
}

/// The `path` record of a pax extended header (`"<len> path=<value>\n"` records).
fn pax_path(body: &[u8]) -> std::result::Result<Option<String>, String> {
    let mut rest = body;
    let mut path = None;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad record length")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(format!("record length {len} does not fit"));
        }
        let rec = &rest[sp + 1..len - 1];
        if let Some(v) = rec.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    Ok(path)
}

/// The longest file name component most file systems take.
const NAME_MAX: usize = 255;

/// `name` as a relative path without `..` (nor a NUL, bytes that are not UTF-8, or a
/// component longer than [`NAME_MAX`]), or an error.
fn safe_relative(name: &str) -> std::result::Result<PathBuf, String> {
    if name.contains('\0') {
        return Err(format!(
            "refusing the entry name {name:?}: it holds a NUL byte"
        ));
    }
    // Names are decoded lossily: bytes that are not UTF-8 became U+FFFD.
    if name.contains('\u{FFFD}') {
        return Err(format!("refusing the entry name {name:?}: it is not UTF-8"));
    }
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) if s.len() > NAME_MAX => {
                return Err(format!(
                    "refusing the entry name {name:?}: a component is longer than {NAME_MAX} bytes"
                ))
            }
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return Err(format!("refusing the unsafe entry name {name:?}")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("empty entry name {name:?}"));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::test_util::TempDir;

    /// One ustar header (with checksum) for `name` of type `kind` and `size` bytes.
    pub(crate) fn header(name: &str, kind: u8, size: usize) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0001750");
        h[116..123].copy_from_slice(b"0001750");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"14717375170");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    /// A tar entry: header, content, zero padding.
    pub(crate) fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = header(name, kind, data.len()).to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    /// Two zero blocks closing an archive.
    pub(crate) fn end() -> Vec<u8> {
        vec![0; 2 * BLOCK]
    }

    pub(crate) fn gzip(raw: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        let long = format!("top/{}/deep.txt", "d".repeat(120));
        let mut tar = Vec::new();
        tar.extend(entry("top/", b'5', b""));
        tar.extend(entry("top/a.bin", b'0', &[7u8; 1000]));
        tar.extend(entry("top/empty", b'0', b""));
        tar.extend(entry("././@LongLink", b'L', format!("{long}\0").as_bytes()));
        tar.extend(entry("top/ddddd-truncated", b'0', b"long"));
        let rec = " path=top/pax-name.txt\n";
        let rec = format!("{}{rec}", rec.len() + 2);
        tar.extend(entry("PaxHeaders/x", b'x', rec.as_bytes()));
        tar.extend(entry("top/short", b'0', b"pax"));
        tar.extend(entry("top/link", b'2', b""));
        tar.extend(entry("./top/exact512", b'0', &[1u8; 512]));
        tar.extend(end());
        tar
    }

    #[test]
    fn extracts_built_archive_plain_and_gz() {
        for gz in [false, true] {
            let t = TempDir::new("tar_built");
            let bytes = if gz { gzip(&sample()) } else { sample() };
            let arch = t.path().join("a.tar.gz");
            std::fs::write(&arch, bytes).unwrap();
            let out = t.path().join("out");
            let files = extract_tar(&arch, &out).unwrap();
            let long = format!("top/{}/deep.txt", "d".repeat(120));
            let names: Vec<String> = files
                .iter()
                .map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                names,
                vec![
                    "top/a.bin".to_string(),
                    "top/empty".into(),
                    long.clone(),
                    "top/pax-name.txt".into(),
                    "top/exact512".into()
                ]
            );
            assert_eq!(
                std::fs::read(out.join("top/a.bin")).unwrap(),
                vec![7u8; 1000]
            );
            assert_eq!(std::fs::read(out.join("top/empty")).unwrap(), b"");
            assert_eq!(std::fs::read(out.join(&long)).unwrap(), b"long");
            assert_eq!(std::fs::read(out.join("top/pax-name.txt")).unwrap(), b"pax");
            assert_eq!(
                std::fs::read(out.join("top/exact512")).unwrap(),
                vec![1u8; 512]
            );
            assert!(!out.join("top/link").exists());
            assert!(!out.join("top/short").exists());
        }
    }

    #[test]
    fn corrupt_truncated_and_unsafe_archives_are_refused() {
        let t = TempDir::new("tar_bad");
        let out = t.path().join("out");
        let arch = t.path().join("bad.tar");
        // Corrupt checksum in the second header (offset 512).
        let mut tar = sample();
        tar[BLOCK + 3] ^= 1;
        std::fs::write(&arch, &tar).unwrap();
        let e = extract_tar(&arch, &out).unwrap_err().to_string();
        assert!(
            e.contains("bad.tar") && e.contains("offset 512") && e.contains("checksum"),
            "{e}"
        );
        // Truncated inside a file body.
        std::fs::write(&arch, &sample()[..BLOCK * 2 + 100]).unwrap();
        let e = extract_tar(&arch, &out).unwrap_err().to_string();
        assert!(e.contains("bad.tar") && e.contains("truncated"), "{e}");
        // Truncated gzip stream.
        let gz = gzip(&sample());
        std::fs::write(&arch, &gz[..gz.len() / 2]).unwrap();
        assert!(extract_tar(&arch, &out).is_err());
        // Escaping names.
        for name in ["../evil", "/etc/evil", "a/../../evil"] {
            let mut tar = entry(name, b'0', b"x");
            tar.extend(end());
            std::fs::write(&arch, &tar).unwrap();
            let e = extract_tar(&arch, &out).unwrap_err().to_string();
            assert!(e.contains("unsafe"), "{name}: {e}");
        }
        assert!(!t.path().join("evil").exists());
        // A NUL inside a long (pax) name is the archive's fault, and named as such (it was
        // an I/O error naming the file it tried to create).
        let rec = " path=top/a\0b\n";
        let rec = format!("{}{rec}", rec.len() + 2);
        let mut tar = entry("PaxHeaders/x", b'x', rec.as_bytes());
        tar.extend(entry("top/short", b'0', b"x"));
        tar.extend(end());
        std::fs::write(&arch, &tar).unwrap();
        let e = extract_tar(&arch, &out).unwrap_err().to_string();
        assert!(e.contains("bad.tar") && e.contains("NUL"), "{e}");
        // So is a name whose bytes are not UTF-8 (they were decoded into U+FFFD, three
        // bytes each, past the file system's limit: "File name too long" naming the
        // target), a component too long, and a file where a folder must go.
        let long = format!("{}\0", "a".repeat(300));
        let mut tar = entry("././@LongLink", b'L', long.as_bytes());
        tar.extend(entry("ignored", b'0', b"x"));
        let mut bad_utf8 = entry("ignored", b'0', b"x");
        bad_utf8[..100].fill(0xff);
        bad_utf8[148..156].copy_from_slice(b"        ");
        let sum: u32 = bad_utf8[..512].iter().map(|&b| b as u32).sum();
        bad_utf8[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut clash = entry("f", b'0', b"x");
        clash.extend(entry("f/g", b'0', b"y"));
        for (tar, want) in [
            (tar, "longer than 255"),
            (bad_utf8, "not UTF-8"),
            (clash, "cannot create"),
        ] {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::write(&arch, [tar, end()].concat()).unwrap();
            let e = extract_tar(&arch, &out).unwrap_err().to_string();
            assert!(e.contains("bad.tar") && e.contains(want), "{want}: {e}");
        }
        // Not a tar at all.
        std::fs::write(&arch, vec![b'x'; 2000]).unwrap();
        assert!(extract_tar(&arch, &out).is_err());
        assert_eq!(octal(b"0000017\0").unwrap(), 15);
        assert_eq!(
            octal(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap(),
            1 << 32
        );
    }

    #[test]
    fn reads_what_system_tar_writes() {
        // An independent writer, when the machine has one.
        if std::process::Command::new("tar")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("no tar command; skipped");
            return;
        }
        let t = TempDir::new("tar_system");
        let src = t.path().join("src/cifar-10-batches-bin");
        std::fs::create_dir_all(&src).unwrap();
        let long = "n".repeat(150);
        std::fs::write(src.join("data_batch_1.bin"), vec![3u8; 3073 * 2]).unwrap();
        std::fs::write(src.join(&long), b"long name").unwrap();
        let arch = t.path().join("sys.tar.gz");
        let st = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&arch)
            .arg("-C")
            .arg(t.path().join("src"))
            .arg("cifar-10-batches-bin")
            .status()
            .unwrap();
        assert!(st.success());
        let out = t.path().join("out");
        let files = extract_tar(&arch, &out).unwrap();
        assert_eq!(files.len(), 2);
        let d = out.join("cifar-10-batches-bin");
        assert_eq!(
            std::fs::read(d.join("data_batch_1.bin")).unwrap(),
            vec![3u8; 6146]
        );
        assert_eq!(std::fs::read(d.join(&long)).unwrap(), b"long name");
    }
}
