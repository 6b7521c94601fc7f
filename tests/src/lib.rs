//! End-to-end test harness: starts the real `srs-proxy` and `srs-origin` binaries (and ffmpeg,
//! nginx, python's http.server) on free loopback ports, and stops everything it started when
//! dropped. Processes, ports, temp dirs, Redis and ffmpeg come from `srs-test-support`; the
//! binaries are built on first use when missing.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use srs_test_support::media::{assert_played, play, publish, PlayResult};
pub use srs_test_support::{
    free_port, metric, on_free_port, read_listening, wait_until, Error, Proc, Redis,
    RedisSentinels, TempDir,
};

/// How long a server gets to print its listening line or accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of a workspace binary whose package has the binary's name (`srs-proxy`, `srs-origin`).
pub fn bin(name: &str) -> PathBuf {
    srs_test_support::binary(name, name, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Spawns `cmd` and reads the addresses of its `prefix` line (`key=ip:port` pairs).
fn spawn_listening(
    name: &str,
    cmd: Command,
    dir: &Path,
    prefix: &'static str,
) -> (Proc, std::collections::HashMap<String, SocketAddr>) {
    let (proc, stdout) = Proc::spawn_piped(name, cmd, dir);
    match read_listening(stdout, prefix, START_TIMEOUT) {
        Ok(pairs) => (proc, pairs),
        Err(e) => panic!("{name} did not start: {e}\n{}", proc.log_tail(20)),
    }
}

fn addr_of(pairs: &std::collections::HashMap<String, SocketAddr>, key: &str) -> SocketAddr {
    *pairs
        .get(key)
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
    /// SRT listener (UDP).
    pub srt: SocketAddr,
    /// WebRTC media listener (UDP).
    pub webrtc: SocketAddr,
}

impl Proxy {
    /// The srs-proxy command with every listener on 127.0.0.1:0, run in `dir`.
    pub fn command(dir: &Path) -> Command {
        let mut cmd = Command::new(bin("srs-proxy"));
        cmd.current_dir(dir)
            .env("RUST_LOG", "info,srs_proxy=debug")
            .env("PROXY_RTMP_SERVER", "127.0.0.1:0")
            .env("PROXY_HTTP_SERVER", "127.0.0.1:0")
            .env("PROXY_HTTP_API", "127.0.0.1:0")
            .env("PROXY_SYSTEM_API", "127.0.0.1:0")
            .env("PROXY_WEBRTC_SERVER", "127.0.0.1:0")
            .env("PROXY_SRT_SERVER", "127.0.0.1:0");
        cmd
    }

    /// Starts srs-proxy with every listener on 127.0.0.1:0 plus `env` overrides.
    pub fn start(dir: &Path, name: &str, env: &[(&str, &str)]) -> Proxy {
        let mut cmd = Self::command(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (proc, pairs) = spawn_listening(name, cmd, dir, "srs-proxy listening");
        Proxy {
            proc,
            rtmp: addr_of(&pairs, "rtmp"),
            http: addr_of(&pairs, "http"),
            api: addr_of(&pairs, "api"),
            system: addr_of(&pairs, "system"),
            srt: addr_of(&pairs, "srt"),
            webrtc: addr_of(&pairs, "webrtc"),
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

    /// Registers origin `server/s/1` at 127.0.0.1 with the given RTMP and HTTP ports, as a
    /// heartbeat would; returns the status and body of the answer.
    pub fn register_ports(&self, server: &str, rtmp: u16, http_port: u16) -> (u16, String) {
        let body = format!(
            r#"{{"ip":"127.0.0.1","server":"{server}","service":"s","pid":"1","rtmp":["{rtmp}"],"http":["{http_port}"]}}"#
        );
        http("POST", &self.register_url(), Some(&body))
    }

    /// The proxy's resident set size, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid()))
            .expect("proxy status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// The proxy's open file descriptors.
    pub fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.proc.pid()))
            .map(|d| d.count())
            .unwrap_or(usize::MAX)
    }

    /// Waits until `n` live origins are registered and candidates (reached by the proxy's probe,
    /// not set aside).
    pub fn wait_origins(&self, n: usize) {
        wait_until(Duration::from_secs(20), "origins registered", || {
            let v = self.origins();
            let live = v["origins"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|o| o["alive"] == true && o["aside"] == false)
                        .count()
                })
                .unwrap_or(0);
            live >= n
        });
    }
}

/// A two-thread tokio runtime for tests that drive async clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
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
    /// SRT listener (UDP).
    pub srt: SocketAddr,
    /// WebRTC media listener (UDP).
    pub rtc: SocketAddr,
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
            .env("ORIGIN_SRT_SERVER", "127.0.0.1:0")
            .env("ORIGIN_WEBRTC_SERVER", "127.0.0.1:0")
            .env("ORIGIN_IP", "127.0.0.1")
            .env("ORIGIN_DEVICE_ID", name)
            .env("ORIGIN_REGISTER_URL", register_url)
            .env("ORIGIN_HEARTBEAT_INTERVAL", "1s");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (proc, pairs) = spawn_listening(name, cmd, dir, "srs-origin listening");
        Origin {
            proc,
            rtmp: addr_of(&pairs, "rtmp"),
            http: addr_of(&pairs, "http"),
            api: addr_of(&pairs, "api"),
            srt: addr_of(&pairs, "srt"),
            rtc: addr_of(&pairs, "rtc"),
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

/// The proxy variables that point at `redis`.
pub fn redis_env(redis: &Redis) -> Vec<(&'static str, String)> {
    vec![
        ("PROXY_LOAD_BALANCER_TYPE", "redis".to_string()),
        ("PROXY_REDIS_HOST", "127.0.0.1".to_string()),
        ("PROXY_REDIS_PORT", redis.port.to_string()),
    ]
}

/// The proxy variables that point at the Sentinels of `set`.
pub fn sentinel_env(set: &RedisSentinels) -> Vec<(&'static str, String)> {
    vec![
        ("PROXY_LOAD_BALANCER_TYPE", "redis".to_string()),
        ("PROXY_REDIS_SENTINEL_ADDRS", set.sentinel_addrs().join(",")),
        (
            "PROXY_REDIS_SENTINEL_MASTER",
            RedisSentinels::MASTER.to_string(),
        ),
    ]
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

/// A static file server (python's `http.server`) on a free loopback port; its access log is its
/// log file, with a `headers {json}` line after each request line.
pub struct StaticServer {
    /// The process (stderr: one access-log line and one headers line per request).
    pub proc: Proc,
    /// Its port.
    pub port: u16,
}

/// python's `SimpleHTTPRequestHandler`, logging each request's headers as JSON after its line.
const STATIC_SERVER: &str = r#"
import functools, http.server, json, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        super().log_request(code, size)
        headers = {k.lower(): v for k, v in self.headers.items()}
        sys.stderr.write("headers " + json.dumps(headers) + "\n")
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"#;

impl StaticServer {
    /// Serves `root` on a free port, logging to `<dir>/<name>.log`; waits until it listens.
    pub fn start(dir: &Path, name: &str, root: &Path) -> StaticServer {
        on_free_port(name, |port| {
            let mut cmd = Command::new("python3");
            cmd.args(["-u", "-c", STATIC_SERVER, &port.to_string()])
                .arg(root);
            let mut proc = Proc::try_spawn(name, cmd, dir)?;
            proc.wait_listening(port, Duration::from_secs(10))?;
            Ok(StaticServer { proc, port })
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The request lines logged so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.proc
            .log_text()
            .lines()
            .filter(|l| !l.starts_with("headers "))
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect()
    }

    /// Each request logged so far with its headers (names lowercase), in order.
    pub fn requests_with_headers(&self) -> Vec<(String, serde_json::Value)> {
        let log = self.proc.log_text();
        let mut out = Vec::new();
        let mut line = None;
        for l in log.lines() {
            match l.strip_prefix("headers ") {
                Some(json) => {
                    if let Some(request) = line.take() {
                        let headers = serde_json::from_str(json).unwrap_or_else(|e| {
                            panic!("headers line {json:?} of {}: {e}", self.proc.name())
                        });
                        out.push((request, headers));
                    }
                }
                None => line = l.split('"').nth(1).map(str::to_string),
            }
        }
        out
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

impl Proxy {
    /// The proxy's `GET /metrics` text; read samples with [`metric`].
    pub fn metrics(&self) -> String {
        let (status, text) = http("GET", &format!("http://{}/metrics", self.system), None);
        assert_eq!(status, 200, "GET /metrics: {text}");
        text
    }

    /// The `/api/v1/origins` entries, each checked to be an object with an `id`.
    pub fn origin_list(&self) -> Vec<serde_json::Value> {
        let reply = self.origins();
        let list = reply["origins"]
            .as_array()
            .unwrap_or_else(|| panic!("/api/v1/origins without an origins list: {reply}"));
        for o in list {
            assert!(o["info"]["id"].is_string(), "origin without an id: {o}");
        }
        list.clone()
    }

    /// The `/api/v1/origins` entry of the origin registered with `device_id` (an [`Origin`]'s
    /// name); panics when there is none.
    pub fn origin_entry(&self, device_id: &str) -> serde_json::Value {
        let list = self.origin_list();
        list.iter()
            .find(|o| o["info"]["device_id"] == device_id)
            .cloned()
            .unwrap_or_else(|| panic!("no origin {device_id} in {list:?}"))
    }

    /// The streams leased to the origin registered with `device_id`, by `/api/v1/origins`.
    pub fn origin_streams(&self, device_id: &str) -> u64 {
        let entry = self.origin_entry(device_id);
        entry["streams"]
            .as_u64()
            .unwrap_or_else(|| panic!("no stream count: {entry}"))
    }
}
