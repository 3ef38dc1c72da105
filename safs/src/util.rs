//! Small file helpers shared by the stages.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `path` with its extension replaced (`a/b.safetensors` -> `a/b.json`).
pub fn with_extension(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

/// Writes `bytes` to `path` through a temporary file, synced to disk, and a rename: a
/// reader sees the old file or the new one, never part of one, whenever the writer dies.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes).and_then(|()| {
        // Without the sync a power cut after the rename can leave an empty file (ext4).
        std::fs::File::open(&tmp)?.sync_all()
    });
    if let Err(e) = written {
        // A full disk: do not leave the partial temporary file taking space.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent(path)
}

/// Flushes the folder holding `path` to disk, so that a rename into it survives a power
/// cut (POSIX leaves that to the folder's own sync).
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Flushes the file at `path` to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}
