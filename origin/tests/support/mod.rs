//! Starting the `srs-origin` binary for the end-to-end tests of this crate.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running origin on free loopback ports, killed on drop.
pub struct Origin {
    child: Child,
    /// RTMP port.
    pub rtmp: u16,
    /// HTTP stream port.
    pub http: u16,
    /// HTTP API port.
    #[allow(dead_code)] // Not every test binary uses the API.
    pub api: u16,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(line: &str, name: &str) -> u16 {
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"));
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// Starts srs-origin with every listener on 127.0.0.1:0 plus `env`, and reads its ports from the
/// `srs-origin listening` line.
pub fn start_origin(env: &[(&str, &str)]) -> Origin {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srs-origin"));
    cmd.current_dir(std::env::temp_dir())
        .env("ORIGIN_RTMP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_API", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("srs-origin listening "), "{line:?}");
    Origin {
        rtmp: port_of(&line, "rtmp"),
        http: port_of(&line, "http"),
        api: port_of(&line, "api"),
        child,
    }
}
