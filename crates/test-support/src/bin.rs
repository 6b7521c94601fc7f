//! Finding a workspace binary, building it when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::Error;

/// Serialises builds started by the tests of one process (cargo locks across processes).
static BUILD: Mutex<()> = Mutex::new(());

/// The path of binary `name` of workspace package `package`.
///
/// `cargo_bin_exe` is `option_env!("CARGO_BIN_EXE_<name>")` from a test of the package that
/// defines the binary; other callers pass `None`. Without it the binary is the one next to
/// the running executable (`target/<profile>/<name>`), and when that is missing it is built
/// with `cargo build -p <package> --bin <name>` in the same profile and target directory.
pub fn binary(package: &str, name: &str, cargo_bin_exe: Option<&str>) -> Result<PathBuf, Error> {
    if let Some(path) = cargo_bin_exe.map(PathBuf::from).filter(|p| p.exists()) {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let profile_dir = profile_dir(&exe);
    let path = profile_dir.join(name);
    let _build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return Ok(path);
    }
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-p", package, "--bin", name]);
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let command = format!("{cmd:?}");
    let status = cmd.status().map_err(|source| Error::Spawn {
        name: "cargo build".to_string(),
        program: command.clone(),
        source,
    })?;
    if status.success() && path.exists() {
        Ok(path)
    } else {
        Err(Error::Build {
            command,
            status: status.to_string(),
            binary: path,
        })
    }
}

/// `target/<profile>` for a test (`target/<profile>/deps/<test>`) or a binary
/// (`target/<profile>/<bin>`).
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_of_tests_and_binaries() {
        assert_eq!(
            profile_dir(Path::new("/t/target/debug/deps/e2e-0123")),
            Path::new("/t/target/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/t/target/release/srs-bench")),
            Path::new("/t/target/release")
        );
    }
}
