//! WebRTC in a real browser: headless Chromium, driven by playwright-core from Node
//! (`tests/browser/webrtc.mjs`), publishes its fake camera with the proxy's `whip.html` and
//! plays it back with `whep.html`, through srs-proxy's signalling and UDP relay to srs-origin.
//!
//! Without chromium, node or npm the test says so and passes, unless `CI` is set: there it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use srs_e2e::{metric, Origin, Proc, Proxy, TempDir};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Frames the player must decode, and how long the script may take to get there.
const FRAMES: u32 = 50;
const TIMEOUT_SECONDS: u32 = 40;
/// Seconds the player plays on after that, so the relay carries a few seconds of media.
const HOLD_SECONDS: u32 = 4;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// What the test needs and this machine lacks.
fn missing_tools() -> Vec<&'static str> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push("chromium");
    }
    for tool in ["node", "npm"] {
        if !runs(tool) {
            missing.push(tool);
        }
    }
    missing
}

/// `npm ci` in tests/browser unless node_modules already holds what package-lock.json pins
/// (npm writes node_modules/.package-lock.json on install).
fn install_playwright() {
    let dir = browser_dir();
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    if installed.is_some() && installed >= locked {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("run npm ci");
    assert!(
        output.status.success(),
        "npm ci in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn webrtc_datagrams(proxy: &Proxy, outcome: &str) -> f64 {
    metric(
        &proxy.metrics(),
        "srs_proxy_udp_datagrams_total",
        &[("listener", "webrtc"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[test]
fn chromium_publishes_with_whip_and_plays_with_whep_through_the_proxy() {
    let missing = missing_tools();
    if !missing.is_empty() {
        let what = missing.join(", ");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs {what} for the browser test: run deploy/setup.sh"
        );
        eprintln!("skipped: install {what} (bash deploy/setup.sh)");
        return;
    }
    install_playwright();
    let dir = TempDir::new("browser");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let _origin = Origin::start(
        &dir,
        "origin",
        &proxy.register_url(),
        &[("ORIGIN_CANDIDATE", "127.0.0.1")],
    );
    proxy.wait_origins(1);

    let started = Instant::now();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("webrtc.mjs"))
        .args(["--base", &format!("http://{}", proxy.http)])
        .args(["--app", "live", "--stream", "browser"])
        .args(["--frames", &FRAMES.to_string()])
        .args(["--timeout", &TIMEOUT_SECONDS.to_string()])
        .args(["--hold", &HOLD_SECONDS.to_string()])
        // Chromium's profile goes in the test's directory, kept when the test fails.
        .env("TMPDIR", dir.path());
    let mut node = Proc::spawn("webrtc", cmd, &dir);
    let limit = Duration::from_secs(u64::from(TIMEOUT_SECONDS + HOLD_SECONDS + 30));
    let status = node.wait_exit(limit);
    let log = node.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "webrtc.mjs ({status:?} after {:?}):\n{log}",
        started.elapsed()
    );
    let line = log
        .lines()
        .find(|l| l.starts_with("{\"ok\":"))
        .unwrap_or_else(|| panic!("no result line:\n{log}"));
    let result: serde_json::Value = serde_json::from_str(line).expect("result JSON");
    eprintln!("browser result in {:?}: {result}", started.elapsed());
    let frames = result["framesDecoded"].as_u64().unwrap_or(0);
    assert!(frames > u64::from(FRAMES), "{result}");
    // The pages' DELETEs went through the proxy to the origin.
    for page in ["whip", "whep"] {
        assert_eq!(result["deleted"][page]["status"], 200, "{page}: {result}");
    }

    // The media went through the proxy's WebRTC port both ways.
    let to_origin = webrtc_datagrams(&proxy, "to_origin");
    let to_client = webrtc_datagrams(&proxy, "to_client");
    eprintln!("webrtc datagrams: to_origin {to_origin}, to_client {to_client}");
    assert!(to_origin > 500.0, "datagrams to the origin: {to_origin}");
    assert!(to_client > 500.0, "datagrams to the clients: {to_client}");
    let text = proxy.metrics();
    for direction in ["publish", "play"] {
        let sessions = metric(
            &text,
            "srs_proxy_sessions_total",
            &[("protocol", "webrtc"), ("direction", direction)],
        );
        assert_eq!(sessions, Some(1.0), "{direction} sessions");
    }
}
