//! Temporary directories removed after a passing test and kept after a failing one.

use std::path::{Path, PathBuf};

use crate::Error;

/// A fresh directory under the system temp dir. Dropped while the thread panics (a failing
/// test) it is kept and its path printed, so logs can be read; otherwise it is removed.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `srs-<tag>-<pid>-<random>`.
    pub fn try_new(tag: &str) -> Result<TempDir, Error> {
        let path = std::env::temp_dir().join(format!(
            "srs-{tag}-{}-{:016x}",
            std::process::id(),
            random()
        ));
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir { path })
    }

    /// [`TempDir::try_new`], panicking on failure.
    pub fn new(tag: &str) -> TempDir {
        Self::try_new(tag).unwrap_or_else(|e| panic!("temp dir: {e}"))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- kept {} for its logs ----", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// 64 random bits from the standard library's randomly seeded hasher.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_when_the_test_passes() {
        let dir = TempDir::new("tempdir-pass");
        std::fs::write(dir.join("log"), "x").unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn kept_when_the_test_panics() {
        let (tx, rx) = std::sync::mpsc::channel();
        let result = std::thread::spawn(move || {
            let dir = TempDir::new("tempdir-panic");
            tx.send(dir.path().to_path_buf()).unwrap();
            panic!("failing test");
        })
        .join();
        assert!(result.is_err());
        let path = rx.recv().unwrap();
        assert!(path.is_dir(), "{} must be kept", path.display());
        std::fs::remove_dir_all(path).unwrap();
    }
}
