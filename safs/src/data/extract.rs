//! Our extraction policy for tar archives (the CIFAR-10 tarball), on top of the `tar` crate.
//!
//! The crate reads the blocks: header checksums, octal and base-256 numbers, the ustar
//! `prefix` field, pax records. This module decides what lands on disk, treating the
//! archive as hostile:
//!
//! * only regular files and directories are extracted; links, devices, FIFOs and sparse
//!   files are skipped, so nothing written can point outside the destination;
//! * names that are absolute, hold `..`, a NUL byte, bytes that are not UTF-8, or a
//!   component longer than [`NAME_MAX`] are refused (not silently rewritten);
//! * long names (GNU `L` entries, the pax `path` record) are read here, from headers at
//!   most [`MAX_EXTENSION`] bytes long, so a header's size never decides an allocation:
//!   file bodies are streamed to disk in small blocks;
//! * every error is a [`crate::Error`] naming the archive and the offset or entry at fault.
//!
//! The crate runs in raw mode (it hands over every header, extension headers included), and
//! its own `unpack` is not used: it would rewrite absolute names and skip `..` silently,
//! create links, and set permissions and times taken from the archive.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tar::{Archive, EntryType, PaxExtensions};

use crate::{Error, Result};

/// The longest GNU long-name or pax extended header read (bytes).
pub const MAX_EXTENSION: u64 = 1 << 20;

/// The longest file name component most file systems take.
pub const NAME_MAX: usize = 255;

const BLOCK: u64 = 512;

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
pub fn extract_tar_from(reader: impl Read, archive: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let mut tar = Archive::new(reader);
    let mut entries = tar.entries().map_err(|e| Error::io(archive, e))?.raw(true);
    let mut written = Vec::new();
    // Where the next header starts: what an error in reading it names.
    let mut next: u64 = 0;
    // The name an extension header (GNU `L`, pax `x`) gave the next entry.
    let mut long_name: Option<Vec<u8>> = None;
    loop {
        let at = next;
        let bad = |msg: String| Error::data(archive, format!("tar header at offset {at}: {msg}"));
        let mut entry = match entries.next() {
            None => {
                // A missing end-of-archive marker is tolerated, as GNU tar does.
                return match long_name {
                    Some(_) => Err(bad("a long name for an entry that never comes".into())),
                    None => Ok(written),
                };
            }
            Some(Err(e)) => return Err(bad(format!("corrupt or truncated archive: {e}"))),
            Some(Ok(e)) => e,
        };
        let header_at = entry.raw_header_position();
        let bad =
            |msg: String| Error::data(archive, format!("tar header at offset {header_at}: {msg}"));
        let size = entry.size();
        let body_at = entry.raw_file_position();
        next = size
            .checked_next_multiple_of(BLOCK)
            .and_then(|s| s.checked_add(body_at))
            .ok_or_else(|| bad(format!("size {size} overflows")))?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::GNULongName | EntryType::XHeader => {
                if long_name.is_some() {
                    return Err(bad("two long names for one entry".into()));
                }
                let body = read_extension(&mut entry, size, body_at).map_err(bad)?;
                long_name = if kind == EntryType::GNULongName {
                    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    Some(body[..end].to_vec())
                } else {
                    pax_path(&body).map_err(|m| bad(format!("pax header: {m}")))?
                };
            }
            EntryType::Regular | EntryType::Directory => {
                let raw = match long_name.take() {
                    Some(n) => n,
                    None => entry.header().path_bytes().into_owned(),
                };
                let name = String::from_utf8_lossy(&raw).into_owned();
                let rel = safe_relative(&raw).map_err(bad)?;
                let target = dest.join(&rel);
                // A file where the archive put a folder before (or the reverse) is the
                // archive's fault: the error names the entry, and the path it could not
                // create.
                let cannot = |p: &Path, e: std::io::Error| {
                    bad(format!(
                        "entry {name:?}: cannot create {}: {e}",
                        p.display()
                    ))
                };
                if kind == EntryType::Directory || raw.ends_with(b"/") {
                    std::fs::create_dir_all(&target).map_err(|e| cannot(&target, e))?;
                } else {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| cannot(parent, e))?;
                    }
                    let mut out = File::create(&target).map_err(|e| cannot(&target, e))?;
                    let copied = std::io::copy(&mut entry, &mut out).map_err(|e| {
                        bad(format!("entry {name:?}: reading its content failed: {e}"))
                    })?;
                    if copied != size {
                        return Err(bad(format!(
                            "entry {name:?}: the archive is truncated at offset {} \
                             ({copied} of {size} bytes)",
                            body_at + copied
                        )));
                    }
                    out.flush().map_err(|e| Error::io(&target, e))?;
                    written.push(target);
                }
            }
            // Long link names and global pax headers: skipped (the crate skips bodies).
            EntryType::GNULongLink | EntryType::XGlobalHeader => {}
            // Links, devices, FIFOs, sparse files, ...: skipped, and so is a long name
            // meant for one of them.
            _ => long_name = None,
        }
    }
}

/// The body of an extension header, refused when it claims more than [`MAX_EXTENSION`]
/// bytes; the buffer grows as bytes arrive, so a short archive reserves only what it holds.
fn read_extension(
    entry: &mut impl Read,
    size: u64,
    at: u64,
) -> std::result::Result<Vec<u8>, String> {
    if size > MAX_EXTENSION {
        return Err(format!(
            "an extended header of {size} bytes (at most {MAX_EXTENSION} are taken)"
        ));
    }
    let mut body = Vec::new();
    entry
        .take(size)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the extended header failed: {e}"))?;
    if body.len() as u64 != size {
        return Err(format!(
            "the archive is truncated at offset {} inside an extended header",
            at + body.len() as u64
        ));
    }
    Ok(body)
}

/// The `path` record of a pax extended header (`"<len> path=<value>\n"` records); refuses a
/// `size` record (it would override the header's, and this reader does not honour it).
fn pax_path(body: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut path = None;
    for rec in PaxExtensions::new(body) {
        let rec = rec.map_err(|e| format!("malformed record: {e}"))?;
        match rec.key_bytes() {
            b"path" => path = Some(rec.value_bytes().to_vec()),
            b"size" => return Err("a pax `size` record (not supported)".into()),
            _ => {}
        }
    }
    Ok(path)
}

/// `name` as a relative path without `..` (nor a NUL, bytes that are not UTF-8, or a
/// component longer than [`NAME_MAX`]), or an error.
fn safe_relative(raw: &[u8]) -> std::result::Result<PathBuf, String> {
    let lossy = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(format!(
            "refusing the entry name {lossy:?}: it holds a NUL byte"
        ));
    }
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err(format!(
            "refusing the entry name {lossy:?}: it is not UTF-8"
        ));
    };
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
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

    /// A tar archive built with the `tar` crate's writer: `(name, content)` pairs, a name
    /// ending in `/` being a directory. Long names get the writer's GNU `L` entries.
    pub(crate) fn build_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            if name.ends_with('/') {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// gzip of `raw`.
    pub(crate) fn gzip(raw: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    /// One raw ustar entry (header, content, padding) with `name` written as is: the
    /// crate's writer refuses the unsafe names these tests need.
    fn raw_entry(name: &[u8], kind: EntryType, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(kind);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    fn pax(records: &str) -> Vec<u8> {
        let rec = format!(" {records}\n");
        let rec = format!("{}{rec}", rec.len() + 2);
        raw_entry(b"PaxHeaders/x", EntryType::XHeader, rec.as_bytes())
    }

    fn end() -> Vec<u8> {
        vec![0; 1024]
    }

    fn sample() -> Vec<u8> {
        let long = format!("top/{}/deep.txt", "d".repeat(120));
        let mut tar = build_tar(&[
            ("top/", b""),
            ("top/a.bin", &[7u8; 1000]),
            ("top/empty", b""),
            (&long, b"long"),
        ]);
        tar.truncate(tar.len() - 1024);
        tar.extend(pax("path=top/pax-name.txt"));
        tar.extend(raw_entry(b"top/short", EntryType::Regular, b"pax"));
        tar.extend(raw_entry(b"top/link", EntryType::Symlink, b""));
        tar.extend(raw_entry(
            b"./top/exact512",
            EntryType::Regular,
            &[1u8; 512],
        ));
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
        let run = |bytes: &[u8]| {
            std::fs::write(&arch, bytes).unwrap();
            let e = extract_tar(&arch, &out).unwrap_err().to_string();
            assert!(e.contains("bad.tar"), "{e}");
            e
        };
        // Corrupt checksum in the second header (offset 512).
        let mut tar = sample();
        tar[512 + 3] ^= 1;
        let e = run(&tar);
        assert!(e.contains("offset 512") && e.contains("checksum"), "{e}");
        // Truncated inside a file body: the error names the entry.
        let e = run(&sample()[..512 * 2 + 100]);
        assert!(e.contains("truncated") && e.contains("top/a.bin"), "{e}");
        // Truncated inside a header.
        let e = run(&sample()[..512 + 100]);
        assert!(e.contains("offset 512") && e.contains("truncated"), "{e}");
        // Truncated gzip stream.
        let gz = gzip(&sample());
        run(&gz[..gz.len() / 2]);
        // Escaping names are refused, not rewritten: nothing is written.
        for name in ["../evil", "/etc/evil", "a/../../evil", "/abs"] {
            let _ = std::fs::remove_dir_all(&out);
            let mut tar = raw_entry(name.as_bytes(), EntryType::Regular, b"x");
            tar.extend(end());
            let e = run(&tar);
            assert!(e.contains("unsafe") && e.contains(name), "{name}: {e}");
            assert!(!out.exists(), "{name}");
        }
        assert!(!t.path().join("evil").exists());
        // So is the same through a pax name, and a NUL inside a pax name.
        for (rec, want) in [
            ("path=../../evil", "unsafe"),
            ("path=top/a\0b", "NUL"),
            ("size=3", "size"),
        ] {
            let mut tar = pax(rec);
            tar.extend(raw_entry(b"top/short", EntryType::Regular, b"xyz"));
            tar.extend(end());
            let e = run(&tar);
            assert!(e.contains(want) && e.contains("offset"), "{rec}: {e}");
        }
        // A long name that claims more than the cap is refused before it is read.
        let mut tar = raw_entry(b"././@LongLink", EntryType::GNULongName, b"");
        tar[124..136].copy_from_slice(b"77777777777\0");
        let mut h = tar::Header::from_byte_slice(&tar[..512]).clone();
        h.set_cksum();
        tar[..512].copy_from_slice(h.as_bytes());
        let e = run(&tar);
        assert!(e.contains("extended header") && e.contains("bytes"), "{e}");
        // A name whose bytes are not UTF-8, a component too long, and a file where a
        // folder must go.
        let mut long = build_tar(&[(&"a".repeat(300), b"x")]);
        long.truncate(long.len() - 1024);
        let bad_utf8 = raw_entry(&[b'a', 0xff, 0xfe], EntryType::Regular, b"x");
        let clash = build_tar(&[("f", b"x"), ("f/g", b"y")]);
        for (tar, want) in [
            (long, "longer than 255"),
            (bad_utf8, "not UTF-8"),
            (clash, "cannot create"),
        ] {
            let _ = std::fs::remove_dir_all(&out);
            let e = run(&[tar, end()].concat());
            assert!(e.contains(want), "{want}: {e}");
        }
        // A long name for no entry; not a tar at all.
        let e = run(&raw_entry(b"././@LongLink", EntryType::GNULongName, b"x\0"));
        assert!(e.contains("never comes"), "{e}");
        let e = run(&[b'x'; 2000]);
        assert!(e.contains("offset 0"), "{e}");
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
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let arch = t.path().join("sys.tar.gz");
        for format in ["gnu", "posix"] {
            let st = std::process::Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-czf")
                .arg(&arch)
                .arg("-C")
                .arg(t.path().join("src"))
                .arg("cifar-10-batches-bin")
                .status()
                .unwrap();
            assert!(st.success());
            let out = t.path().join(format!("out-{format}"));
            let files = extract_tar(&arch, &out).unwrap();
            assert_eq!(files.len(), 2, "{format}");
            let d = out.join("cifar-10-batches-bin");
            assert_eq!(
                std::fs::read(d.join("data_batch_1.bin")).unwrap(),
                vec![3u8; 6146]
            );
            assert_eq!(std::fs::read(d.join(&long)).unwrap(), b"long name");
            assert!(std::fs::symlink_metadata(d.join("link")).is_err());
        }
    }
}
