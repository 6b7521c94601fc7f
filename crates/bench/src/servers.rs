//! Starting the servers under test on free loopback ports: srs-origin, srs-proxy (optionally
//! under heaptrack) and haproxy as the plain TCP relay floor.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use srs_test_support::{drain, free_port, on_free_port, read_listening, Proc};

use crate::http;
use crate::procs;

/// Time a server gets to print its listening line or accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the binaries and logs are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Directory holding `srs-origin` and `srs-proxy`.
    pub bin_dir: PathBuf,
    /// Directory for this run's logs and config files.
    pub log_dir: PathBuf,
}

/// A running srs-origin.
pub struct Origin {
    /// The process.
    pub proc: Proc,
    /// RTMP listener.
    pub rtmp: SocketAddr,
    /// HTTP-FLV listener.
    pub http: SocketAddr,
    /// SRT listener (UDP).
    pub srt: SocketAddr,
    /// HTTP API (WHIP/WHEP signalling).
    pub api: SocketAddr,
}

/// A running srs-proxy.
pub struct Proxy {
    /// The process (heaptrack's wrapper script when profiled).
    pub proc: Proc,
    /// Pid of srs-proxy itself.
    pub pid: u32,
    /// RTMP listener.
    pub rtmp: SocketAddr,
    /// HTTP stream listener.
    pub http: SocketAddr,
    /// SRT listener (UDP).
    pub srt: SocketAddr,
    /// System API (register, origins, metrics).
    pub system: SocketAddr,
    /// HTTP API (WHIP/WHEP signalling).
    pub api: SocketAddr,
}

/// A running haproxy in TCP mode in front of an origin.
pub struct Haproxy {
    /// The process.
    pub proc: Proc,
    /// Relays to the origin's RTMP listener.
    pub rtmp: SocketAddr,
    /// Relays to the origin's HTTP listener.
    pub http: SocketAddr,
}

/// Starts srs-origin; it heartbeats every second to `register_url` when given.
pub fn start_origin(paths: &Paths, register_url: Option<&str>) -> anyhow::Result<Origin> {
    let mut cmd = Command::new(paths.bin_dir.join("srs-origin"));
    cmd.current_dir(&paths.log_dir)
        .env("ORIGIN_RTMP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_API", "127.0.0.1:0")
        .env("ORIGIN_SRT_SERVER", "127.0.0.1:0")
        .env("ORIGIN_WEBRTC_SERVER", "127.0.0.1:0")
        .env("ORIGIN_IP", "127.0.0.1")
        .env("ORIGIN_DEVICE_ID", "bench-origin")
        .env("ORIGIN_HEARTBEAT_INTERVAL", "1s");
    if let Some(url) = register_url {
        cmd.env("ORIGIN_REGISTER_URL", url);
    }
    let (proc, stdout) = Proc::try_spawn_piped("srs-origin", cmd, &paths.log_dir)?;
    let pairs = read_listening(stdout, "srs-origin listening", START_TIMEOUT)
        .with_context(|| format!("srs-origin did not start:\n{}", proc.log_tail(10)))?;
    Ok(Origin {
        rtmp: addr(&pairs, "rtmp")?,
        http: addr(&pairs, "http")?,
        srt: addr(&pairs, "srt")?,
        api: addr(&pairs, "api")?,
        proc,
    })
}

/// Starts srs-proxy with the memory store and `env` set, under `heaptrack -o <prefix>` when
/// given.
pub fn start_proxy(
    paths: &Paths,
    heaptrack: Option<&Path>,
    env: &[(&str, &str)],
) -> anyhow::Result<Proxy> {
    let binary = paths.bin_dir.join("srs-proxy");
    let mut cmd = match heaptrack {
        Some(prefix) => {
            let mut c = Command::new("heaptrack");
            c.arg("-o").arg(prefix).arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    cmd.current_dir(&paths.log_dir)
        .env("PROXY_LOAD_BALANCER_TYPE", "memory")
        .env("PROXY_RTMP_SERVER", "127.0.0.1:0")
        .env("PROXY_HTTP_SERVER", "127.0.0.1:0")
        .env("PROXY_HTTP_API", "127.0.0.1:0")
        .env("PROXY_SYSTEM_API", "127.0.0.1:0")
        .env("PROXY_WEBRTC_SERVER", "127.0.0.1:0")
        .env("PROXY_WEBRTC_CANDIDATE", "127.0.0.1")
        .env("PROXY_SRT_SERVER", "127.0.0.1:0")
        // The benchmark stops it with SIGTERM only under heaptrack, after its clients left.
        .env("PROXY_GRACE_QUIT_TIMEOUT", "1s")
        .env("PROXY_FORCE_QUIT_TIMEOUT", "2s");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let (proc, stdout) = Proc::try_spawn_piped("srs-proxy", cmd, &paths.log_dir)?;
    let pairs = read_listening(stdout, "srs-proxy listening", START_TIMEOUT)
        .with_context(|| format!("srs-proxy did not start:\n{}", proc.log_tail(10)))?;
    let pid = match heaptrack {
        Some(_) => procs::child_named(proc.pid(), "srs-proxy")
            .ok_or_else(|| anyhow!("srs-proxy not found under heaptrack"))?,
        None => proc.pid(),
    };
    Ok(Proxy {
        pid,
        rtmp: addr(&pairs, "rtmp")?,
        http: addr(&pairs, "http")?,
        srt: addr(&pairs, "srt")?,
        system: addr(&pairs, "system")?,
        api: addr(&pairs, "api")?,
        proc,
    })
}

impl Proxy {
    /// The register URL origins heartbeat to.
    pub fn register_url(&self) -> String {
        format!("http://{}/api/v1/srs/register", self.system)
    }

    /// Waits until one live origin is registered.
    pub async fn wait_origin(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(body) = http_get(self.system, "/api/v1/origins").await {
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let live = v["origins"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|o| o["alive"] == true));
                if live {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no origin registered with srs-proxy within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A counter of `GET /metrics` whose line has every `label="value"` of `labels`; 0 when
    /// absent (not counted yet).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let body = http_get(self.system, "/metrics").await?;
        let text = String::from_utf8_lossy(&body);
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let value = text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
            .find(|l| wanted.iter().all(|w| l.contains(w.as_str())))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok());
        Ok(value.unwrap_or(0.0))
    }
}

/// Starts haproxy (mode tcp, one process, its default thread count) relaying two free ports to
/// the origin's RTMP and HTTP listeners, admitting at least `clients` connections; other
/// ports are tried when one was taken meanwhile.
pub fn start_haproxy(paths: &Paths, origin: &Origin, clients: usize) -> anyhow::Result<Haproxy> {
    let maxconn = (clients + 64).max(9500);
    let started = on_free_port("haproxy", |rtmp_port| {
        let http_port = free_port();
        {
            let rtmp = SocketAddr::from(([127, 0, 0, 1], rtmp_port));
            let http = SocketAddr::from(([127, 0, 0, 1], http_port));
            let config = format!(
                "global\n  maxconn {maxconn}\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                 timeout client 60s\n  timeout server 60s\n\n\
                 listen rtmp\n  bind {rtmp}\n  server origin {}\n\n\
                 listen http\n  bind {http}\n  server origin {}\n",
                origin.rtmp, origin.http
            );
            let file = paths.log_dir.join("haproxy.cfg");
            std::fs::write(&file, config).map_err(|source| srs_test_support::Error::Io {
                path: file.clone(),
                source,
            })?;
            let mut cmd = Command::new("haproxy");
            cmd.arg("-db").arg("-f").arg(&file);
            let (mut proc, stdout) = Proc::try_spawn_piped("haproxy", cmd, &paths.log_dir)?;
            drain(stdout);
            // haproxy prints no address line; it exits when it cannot bind.
            proc.wait_listening(rtmp_port, START_TIMEOUT)?;
            proc.wait_listening(http_port, START_TIMEOUT)?;
            Ok(Haproxy { proc, rtmp, http })
        }
    })?;
    Ok(started)
}

/// The address under `key` of a listening line.
fn addr(pairs: &HashMap<String, SocketAddr>, key: &str) -> anyhow::Result<SocketAddr> {
    pairs
        .get(key)
        .copied()
        .ok_or_else(|| anyhow!("no {key}= in the listening line"))
}

/// GETs `path` from `addr` and returns the body of a 200 response (at most 1 MiB).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<Bytes> {
    let exchange = async {
        let (mut sender, conn) = http::connect(addr, Duration::from_secs(5)).await?;
        let conn = tokio::spawn(conn);
        let response = sender.send_request(http::get(addr, path)?).await?;
        if response.status() != hyper::StatusCode::OK {
            bail!("GET {path}: HTTP {}", response.status());
        }
        let body = Limited::new(response.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| anyhow!("GET {path}: {e}"))?
            .to_bytes();
        conn.abort();
        Ok(body)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| anyhow!("GET {path}: timed out"))?
}
