//! One writer per run folder: an exclusive `flock` on `run.lock`, held while a run writes.
//!
//! The kernel drops the lock when its process ends, however it ends (SIGKILL, a cluster's
//! time limit), so a lock is never stale; the file's text (process id and host) only names
//! the holder in the error a second writer gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = "run.lock";

/// A held run-folder lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of run folder `root`, or fails naming the process that holds it.
    pub fn acquire(root: &Path) -> Result<Self> {
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Config(format!(
                    "run folder {} is in use by {} (lock {}); wait for that run to end or stop \
                     it, then run again",
                    root.display(),
                    if holder.is_empty() {
                        "another process"
                    } else {
                        holder
                    },
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "this host".into());
        let me = format!("process {} on {host}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_ends() {
        let dir = TempDir::new("run-lock");
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        let pid = std::process::id().to_string();
        assert!(
            err.contains("in use by process") && err.contains(&pid),
            "{err}"
        );
        assert!(first.path().ends_with(LOCK_FILE));
        drop(first);
        // Released: the next writer takes it (the file stays, holding the new owner).
        let second = RunLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(second.path()).unwrap();
        assert!(text.starts_with(&format!("process {pid} on ")), "{text}");
    }
}
