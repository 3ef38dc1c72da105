//! Small file helpers shared by the stages.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `path` with its extension replaced (`a/b.safetensors` -> `a/b.json`).
pub fn with_extension(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
