//! End-to-end test harness: starts the real `srs-proxy` and `srs-origin` binaries (and ffmpeg,
//! ffprobe, nginx) on free loopback ports, and stops everything it started when dropped.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which `make test` does);
//! they are found next to the test executable's `deps/` directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of a workspace binary in the same target directory as the running test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// A fresh directory for one test's logs and files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "srs-e2e-{tag}-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A free TCP port on 127.0.0.1 (bound then released; for servers that cannot take port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is killed and reaped when dropped; its stderr goes to a log file.
pub struct Proc {
    /// Short name for messages.
    pub name: String,
    child: Option<Child>,
    /// Where stderr is written.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr to `<dir>/<name>.log`.
    pub fn spawn(name: &str, cmd: Command, dir: &Path) -> Proc {
        Self::start(name, cmd, dir, false).0
    }

    /// Spawns `cmd` with stderr to `<dir>/<name>.log`; stdout is returned for the caller to read.
    pub fn spawn_piped(name: &str, cmd: Command, dir: &Path) -> (Proc, std::process::ChildStdout) {
        let (proc, stdout) = Self::start(name, cmd, dir, true);
        (proc, stdout.expect("piped stdout"))
    }

    fn start(
        name: &str,
        mut cmd: Command,
        dir: &Path,
        pipe: bool,
    ) -> (Proc, Option<std::process::ChildStdout>) {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let stdout = if pipe {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone().expect("log file"))
        };
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(file));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take();
        (
            Proc {
                name: name.to_string(),
                child: Some(child),
                log,
            },
            stdout,
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (e.g. `libc::SIGKILL`, `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Waits up to `limit` for exit; returns the exit status when it exited.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The stderr log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log.display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Reads stdout until a line starting with `prefix`; parses its `key=addr` pairs.
fn read_listening(
    stdout: std::process::ChildStdout,
    prefix: &'static str,
    limit: Duration,
) -> Vec<(String, SocketAddr)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.starts_with(prefix) => {
                    let _ = tx.send(line.clone());
                    // Keep draining so the child never blocks on a full pipe.
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no `{prefix}` line within {limit:?}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|a| (k.to_string(), a)))
        .collect()
}

fn addr_of(pairs: &[(String, SocketAddr)], key: &str) -> SocketAddr {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no {key}= in listening line"))
}

/// A running srs-proxy on free loopback ports.
pub struct Proxy {
    /// The process.
    pub proc: Proc,
    /// RTMP listener.
    pub rtmp: SocketAddr,
    /// HTTP stream listener.
    pub http: SocketAddr,
    /// HTTP API listener.
    pub api: SocketAddr,
    /// System API listener.
    pub system: SocketAddr,
}

impl Proxy {
    /// Starts srs-proxy with every listener on 127.0.0.1:0 plus `env` overrides.
    pub fn start(dir: &Path, name: &str, env: &[(&str, &str)]) -> Proxy {
        let mut cmd = Command::new(bin("srs-proxy"));
        cmd.current_dir(dir)
            .env("RUST_LOG", "info,srs_proxy=debug")
            .env("PROXY_RTMP_SERVER", "127.0.0.1:0")
            .env("PROXY_HTTP_SERVER", "127.0.0.1:0")
            .env("PROXY_HTTP_API", "127.0.0.1:0")
            .env("PROXY_SYSTEM_API", "127.0.0.1:0")
            .env("PROXY_WEBRTC_SERVER", "127.0.0.1:0")
            .env("PROXY_SRT_SERVER", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (proc, stdout) = Proc::spawn_piped(name, cmd, dir);
        let pairs = read_listening(stdout, "srs-proxy listening", Duration::from_secs(20));
        Proxy {
            proc,
            rtmp: addr_of(&pairs, "rtmp"),
            http: addr_of(&pairs, "http"),
            api: addr_of(&pairs, "api"),
            system: addr_of(&pairs, "system"),
        }
    }

    /// The register URL origins heartbeat to.
    pub fn register_url(&self) -> String {
        format!("http://{}/api/v1/srs/register", self.system)
    }

    /// `rtmp://proxy/app/stream`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}/{}", self.rtmp, path)
    }

    /// `http://proxy/path`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}/{}", self.http, path)
    }

    /// The proxy's `/api/v1/origins` list.
    pub fn origins(&self) -> serde_json::Value {
        get_json(&format!("http://{}/api/v1/origins", self.system))
    }

    /// Waits until `n` live origins are registered.
    pub fn wait_origins(&self, n: usize) {
        wait_until(Duration::from_secs(20), "origins registered", || {
            let v = self.origins();
            let live = v["origins"]
                .as_array()
                .map(|a| a.iter().filter(|o| o["alive"] == true).count())
                .unwrap_or(0);
            live >= n
        });
    }
}

/// A running srs-origin on free loopback ports.
pub struct Origin {
    /// The process.
    pub proc: Proc,
    /// RTMP listener.
    pub rtmp: SocketAddr,
    /// HTTP stream listener.
    pub http: SocketAddr,
    /// HTTP API listener.
    pub api: SocketAddr,
}

impl Origin {
    /// Starts srs-origin heartbeating to `register_url` (empty: none) every 1s.
    pub fn start(dir: &Path, name: &str, register_url: &str, env: &[(&str, &str)]) -> Origin {
        let mut cmd = Command::new(bin("srs-origin"));
        cmd.current_dir(dir)
            .env("RUST_LOG", "info")
            .env("ORIGIN_RTMP_SERVER", "127.0.0.1:0")
            .env("ORIGIN_HTTP_SERVER", "127.0.0.1:0")
            .env("ORIGIN_HTTP_API", "127.0.0.1:0")
            .env("ORIGIN_IP", "127.0.0.1")
            .env("ORIGIN_DEVICE_ID", name)
            .env("ORIGIN_REGISTER_URL", register_url)
            .env("ORIGIN_HEARTBEAT_INTERVAL", "1s");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (proc, stdout) = Proc::spawn_piped(name, cmd, dir);
        let pairs = read_listening(stdout, "srs-origin listening", Duration::from_secs(20));
        Origin {
            proc,
            rtmp: addr_of(&pairs, "rtmp"),
            http: addr_of(&pairs, "http"),
            api: addr_of(&pairs, "api"),
        }
    }

    /// The origin's `/api/v1/streams` list.
    pub fn streams(&self) -> Vec<serde_json::Value> {
        get_json(&format!("http://{}/api/v1/streams", self.api))["streams"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The named stream (`app/stream`) when the origin has it.
    pub fn stream(&self, app: &str, name: &str) -> Option<serde_json::Value> {
        self.streams()
            .into_iter()
            .find(|s| s["app"] == app && s["name"] == name)
    }

    /// True while the named stream has an active publisher here.
    pub fn publishing(&self, app: &str, name: &str) -> bool {
        self.stream(app, name)
            .map(|s| s["publish"]["active"] == true)
            .unwrap_or(false)
    }
}

/// GET a JSON document (any status); panics on transport errors.
pub fn get_json(url: &str) -> serde_json::Value {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => r.into_json().unwrap_or(serde_json::Value::Null),
        Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or(serde_json::Value::Null),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Status and body of an HTTP request; transport errors become status 0.
pub fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let req = ureq::request(method, url).timeout(Duration::from_secs(10));
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    match result {
        Ok(r) => {
            let status = r.status();
            (status, r.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `cond` every 100 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Starts ffmpeg publishing a generated source (lavfi testsrc + sine, libx264 + AAC, FLV) to `url`
/// at real-time speed, for up to `seconds`.
pub fn publish(dir: &Path, name: &str, url: &str, seconds: u32) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url]);
    Proc::spawn(name, cmd, dir)
}

/// What a player saw: codecs of the input streams and video frames decoded.
#[derive(Debug, Default)]
pub struct PlayResult {
    /// `Video: h264 ...` seen.
    pub h264: bool,
    /// `Audio: aac ...` seen.
    pub aac: bool,
    /// Video frames decoded.
    pub frames: u64,
    /// ffmpeg's exit success.
    pub success: bool,
    /// ffmpeg's stderr.
    pub log: String,
}

/// Plays `url` with ffmpeg, decoding up to `frames` video frames into the null muxer, within
/// `limit` (killed after it).
pub fn play(dir: &Path, name: &str, url: &str, frames: u32, limit: Duration) -> PlayResult {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "info", "-nostats"])
        .args(["-rw_timeout", "15000000"])
        .args(["-i", url])
        .args([
            "-map",
            "0:v",
            "-map",
            "0:a?",
            "-frames:v",
            &frames.to_string(),
        ])
        .args(["-progress", "pipe:1", "-f", "null", "-"]);
    let (mut proc, stdout) = Proc::spawn_piped(name, cmd, dir);
    let (tx, rx) = mpsc::channel();
    {
        std::thread::spawn(move || {
            let mut frames = 0u64;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(v) = line.strip_prefix("frame=") {
                    frames = v.trim().parse().unwrap_or(frames);
                }
            }
            let _ = tx.send(frames);
        });
    }
    let status = proc.wait_exit(limit);
    if status.is_none() {
        proc.signal(libc::SIGKILL);
        proc.wait_exit(Duration::from_secs(5));
    }
    let frames = rx.recv_timeout(Duration::from_secs(5)).unwrap_or(0);
    let log = proc.log_text();
    PlayResult {
        h264: log.contains("Video: h264"),
        aac: log.contains("Audio: aac"),
        frames,
        success: status.map(|s| s.success()).unwrap_or(false),
        log,
    }
}

/// Asserts a play decoded at least `min_frames` of H.264 with AAC audio.
pub fn assert_played(result: &PlayResult, min_frames: u64, what: &str) {
    assert!(
        result.h264 && result.aac && result.frames >= min_frames,
        "{what}: h264={} aac={} frames={} (want >= {min_frames})\n{}",
        result.h264,
        result.aac,
        result.frames,
        result.log
    );
}

/// Opens a TCP connection, writes `bytes`, and returns how the server reacted within `limit`:
/// `Ok(n)` with the bytes read before the server closed, `Err` when still open at the deadline.
pub fn send_and_wait_close(
    addr: SocketAddr,
    bytes: &[u8],
    limit: Duration,
) -> Result<usize, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + limit;
    let mut total = 0;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Ok(total),
        }
    }
    Err(format!(
        "connection still open after {limit:?} ({total} bytes read)"
    ))
}

/// Sends `request` verbatim over TCP (no URL normalisation) and returns the status code.
pub fn raw_http_status(addr: SocketAddr, request: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(request.as_bytes()).expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A real `redis-server` on a free loopback port, stopped when dropped.
pub struct Redis {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Redis {
    /// Starts redis-server (no persistence) on a free port and waits until it accepts.
    pub fn start(dir: &Path) -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: dir.to_path_buf(),
            proc: None,
        };
        r.restart();
        r
    }

    /// Stops the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(libc::SIGKILL);
            p.wait_exit(Duration::from_secs(5));
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        let proc = Proc::spawn(&format!("redis-{}", self.port), cmd, &self.dir);
        self.proc = Some(proc);
        let port = self.port;
        wait_until(Duration::from_secs(10), "redis-server accepting", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// The proxy variables that point at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PROXY_LOAD_BALANCER_TYPE", "redis".to_string()),
            ("PROXY_REDIS_HOST", "127.0.0.1".to_string()),
            ("PROXY_REDIS_PORT", self.port.to_string()),
        ]
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Origin ids named by the "session started" lines of `log` for `stream` (a stream key).
pub fn origins_in_log(log: &str, stream: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("session started") && l.contains(stream))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("origin="))
                .map(str::to_string)
        })
        .collect()
}

/// A reply read whole: status, headers (names lowercase) and body bytes.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Every header, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GETs `url` and reads the whole reply, whatever its status; panics on transport errors.
pub fn get_reply(url: &str) -> HttpReply {
    let response = match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            let value = response.header(&n)?.to_string();
            Some((n.to_ascii_lowercase(), value))
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
    HttpReply {
        status,
        headers,
        body,
    }
}

/// A static file server (`python3 -m http.server`) on a free loopback port; its access log is
/// its log file.
pub struct StaticServer {
    /// The process (stderr: one access-log line per request).
    pub proc: Proc,
    /// Its port.
    pub port: u16,
}

impl StaticServer {
    /// Serves `root` on a free port, logging to `<dir>/<name>.log`; waits until it accepts.
    pub fn start(dir: &Path, name: &str, root: &Path) -> StaticServer {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-u", "-m", "http.server", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--directory"])
            .arg(root);
        let proc = Proc::spawn(name, cmd, dir);
        wait_until(Duration::from_secs(10), "static server accepting", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        StaticServer { proc, port }
    }

    /// The request lines logged so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.proc
            .log_text()
            .lines()
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect()
    }

    /// Registers this server with `proxy` as an origin (id `server`/1/1) offering only HTTP.
    pub fn register(&self, proxy: &Proxy, server: &str) {
        let body = format!(
            r#"{{"ip":"127.0.0.1","server":"{server}","service":"1","pid":"1","rtmp":["1"],"http":["{}"]}}"#,
            self.port
        );
        let (status, reply) = http("POST", &proxy.register_url(), Some(&body));
        assert_eq!(status, 200, "register {server}: {reply}");
    }
}

/// The value of one Prometheus sample (`name{labels}`) in a proxy's `/metrics`, 0 when absent.
pub fn metric(proxy: &Proxy, sample: &str) -> f64 {
    let (_, text) = http("GET", &format!("http://{}/metrics", proxy.system), None);
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
