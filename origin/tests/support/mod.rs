//! Starting the `srs-origin` binary for the end-to-end tests of this crate.

use std::process::Command;
use std::time::Duration;

use srs_test_support::{binary, read_listening, Proc, TempDir};

/// A running origin on free loopback ports, killed on drop; its log is in a temp dir kept when
/// the test fails.
pub struct Origin {
    _proc: Proc,
    /// Its working directory, for its log and those of the test's other processes.
    #[allow(dead_code)] // Not every test binary starts other processes.
    pub dir: TempDir,
    /// RTMP port.
    pub rtmp: u16,
    /// HTTP stream port.
    pub http: u16,
    /// HTTP API port.
    #[allow(dead_code)] // Not every test binary uses the API.
    pub api: u16,
    /// SRT (UDP) port.
    #[allow(dead_code)] // Not every test binary uses SRT.
    pub srt: u16,
}

impl Origin {
    /// The origin's log so far.
    #[allow(dead_code)] // Not every test binary reads it.
    pub fn log(&self) -> String {
        self._proc.log_text()
    }
}

/// Starts srs-origin with every listener on 127.0.0.1:0 plus `env`, and reads its ports from the
/// `srs-origin listening` line.
pub fn start_origin(env: &[(&str, &str)]) -> Origin {
    let dir = TempDir::new("origin-test");
    let exe = binary(
        "srs-origin",
        "srs-origin",
        option_env!("CARGO_BIN_EXE_srs-origin"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(exe);
    cmd.current_dir(&dir)
        .env("ORIGIN_RTMP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_API", "127.0.0.1:0")
        .env("ORIGIN_SRT_SERVER", "127.0.0.1:0")
        .env("ORIGIN_WEBRTC_SERVER", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (proc, stdout) = Proc::spawn_piped("srs-origin", cmd, &dir);
    let pairs = read_listening(stdout, "srs-origin listening", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("srs-origin did not start: {e}\n{}", proc.log_tail(20)));
    let port = |name: &str| {
        pairs
            .get(name)
            .map(|a| a.port())
            .unwrap_or_else(|| panic!("no {name}= in {pairs:?}"))
    };
    Origin {
        rtmp: port("rtmp"),
        http: port("http"),
        api: port("api"),
        srt: port("srt"),
        _proc: proc,
        dir,
    }
}
