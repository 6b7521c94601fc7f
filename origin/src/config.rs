//! Origin configuration from `ORIGIN_*` environment variables.
//!
//! Variables are read once at start-up with `envy`; a `.env` file in the working directory fills
//! in the ones that are not already set. Every value is validated here, so a bad one stops
//! start-up with a message naming the variable and the value.

pub use srs_common::env::ConfigError;
use srs_common::env::{parse_duration, parse_listen, parse_switch};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

/// One row of the table printed by `--help`: name, default, meaning.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "ORIGIN_RTMP_SERVER",
        "1935",
        "RTMP listener: port (all interfaces) or ip:port; 0 = any free port",
    ),
    (
        "ORIGIN_HTTP_SERVER",
        "8080",
        "HTTP stream listener (HTTP-FLV, HTTP-TS, HLS): port or ip:port",
    ),
    (
        "ORIGIN_HTTP_API",
        "1985",
        "HTTP API listener (SRS-style /api/v1/...): port or ip:port",
    ),
    (
        "ORIGIN_SRT_SERVER",
        "10080",
        "SRT listener (UDP; MPEG-TS publish with m=publish, play with m=request): port or ip:port",
    ),
    (
        "ORIGIN_WEBRTC_SERVER",
        "8000",
        "WebRTC media listener (UDP, one socket for all sessions; ICE-lite): port or ip:port",
    ),
    (
        "ORIGIN_CANDIDATE",
        "127.0.0.1",
        "IP address put in WebRTC answers' host candidate (with the real ORIGIN_WEBRTC_SERVER port)",
    ),
    (
        "ORIGIN_RTC_TOKEN",
        "",
        "when set, WHIP/WHEP and /rtc/v1/ JSON requests need Authorization: Bearer <token> (else 401)",
    ),
    (
        "ORIGIN_IP",
        "127.0.0.1",
        "address advertised to the proxy in the heartbeat",
    ),
    (
        "ORIGIN_DEVICE_ID",
        "",
        "device_id sent in the heartbeat (empty: omitted)",
    ),
    (
        "ORIGIN_SERVER_ID",
        "vid-<random>",
        "server id (API and heartbeat); random per run by default",
    ),
    (
        "ORIGIN_REGISTER_URL",
        "",
        "proxy register URL, e.g. http://127.0.0.1:12025/api/v1/srs/register (empty: no heartbeat)",
    ),
    (
        "ORIGIN_HEARTBEAT_INTERVAL",
        "9s",
        "time between heartbeats (Go-style duration: 9s, 500ms, 2m)",
    ),
    (
        "ORIGIN_PLAY_WAIT",
        "5s",
        "how long an RTMP player waits for a publisher (StreamNotFound), and an HLS playlist for a new stream's first segment",
    ),
    (
        "ORIGIN_PUBLISH_TIMEOUT",
        "30s",
        "an RTMP publisher that sends nothing for this long is closed",
    ),
    (
        "ORIGIN_HLS_FRAGMENT",
        "2s",
        "HLS segment length: segments are cut at the first keyframe after this long",
    ),
    (
        "ORIGIN_HLS_WINDOW",
        "10s",
        "HLS playlist length: the newest segments covering about this long are listed",
    ),
    (
        "ORIGIN_HLS_CTX",
        "on",
        "on: as SRS, .m3u8 without hls_ctx gets a master naming a session; off: the media playlist",
    ),
];

/// The validated configuration of one origin process.
#[derive(Debug, Clone)]
pub struct Config {
    /// RTMP listener address.
    pub rtmp_server: SocketAddr,
    /// HTTP stream listener address.
    pub http_server: SocketAddr,
    /// HTTP API listener address.
    pub http_api: SocketAddr,
    /// SRT listener address (UDP), advertised in the heartbeat's `srt` list.
    pub srt_server: SocketAddr,
    /// WebRTC media (UDP) listener address, advertised in the heartbeat's `rtc` list.
    pub rtc_server: SocketAddr,
    /// The address of the host candidate in WebRTC answers (the port is the bound one).
    pub candidate: IpAddr,
    /// Bearer token the WebRTC signalling routes require; `None`: no authorization.
    pub rtc_token: Option<String>,
    /// Address advertised in the heartbeat.
    pub ip: String,
    /// Heartbeat `device_id`; `None` leaves it out.
    pub device_id: Option<String>,
    /// Server id shown by the API and sent in the heartbeat.
    pub server_id: String,
    /// The proxy's register URL; `None` disables the heartbeat.
    pub register_url: Option<http::Uri>,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// How long an RTMP player waits for a publisher.
    pub play_wait: Duration,
    /// Idle time after which a silent RTMP publisher is closed.
    pub publish_timeout: Duration,
    /// Target HLS segment length.
    pub hls_fragment: Duration,
    /// Time span of the segments an HLS playlist lists.
    pub hls_window: Duration,
    /// Whether HLS playlists use SRS's `hls_ctx` session query.
    pub hls_ctx: bool,
}

/// The raw variables as strings; `envy` fills it from `ORIGIN_*`.
#[derive(Debug, Deserialize, Default)]
struct Raw {
    rtmp_server: Option<String>,
    http_server: Option<String>,
    http_api: Option<String>,
    srt_server: Option<String>,
    webrtc_server: Option<String>,
    candidate: Option<String>,
    rtc_token: Option<String>,
    ip: Option<String>,
    device_id: Option<String>,
    server_id: Option<String>,
    register_url: Option<String>,
    heartbeat_interval: Option<String>,
    play_wait: Option<String>,
    publish_timeout: Option<String>,
    hls_fragment: Option<String>,
    hls_window: Option<String>,
    hls_ctx: Option<String>,
}

impl Config {
    /// Reads and validates the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw: Raw = envy::prefixed("ORIGIN_")
            .from_env()
            .map_err(|e| ConfigError::new("ORIGIN_*", "", e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Reads and validates the configuration from explicit `(name, value)` pairs.
    #[cfg(test)]
    fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let raw: Raw = envy::prefixed("ORIGIN_")
            .from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .map_err(|e| ConfigError::new("ORIGIN_*", "", e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, ConfigError> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let ip = non_empty(raw.ip).unwrap_or_else(|| "127.0.0.1".to_string());
        if ip.contains(['/', ' ']) {
            return Err(ConfigError::new(
                "ORIGIN_IP",
                &ip,
                "expected an address or host name",
            ));
        }
        Ok(Self {
            rtmp_server: listen_addr("ORIGIN_RTMP_SERVER", raw.rtmp_server, 1935)?,
            http_server: listen_addr("ORIGIN_HTTP_SERVER", raw.http_server, 8080)?,
            http_api: listen_addr("ORIGIN_HTTP_API", raw.http_api, 1985)?,
            srt_server: listen_addr("ORIGIN_SRT_SERVER", raw.srt_server, 10080)?,
            rtc_server: listen_addr("ORIGIN_WEBRTC_SERVER", raw.webrtc_server, 8000)?,
            candidate: candidate("ORIGIN_CANDIDATE", raw.candidate)?,
            rtc_token: given(raw.rtc_token),
            ip,
            device_id: non_empty(raw.device_id),
            server_id: non_empty(raw.server_id).unwrap_or_else(|| format!("vid-{}", random_id(7))),
            register_url: non_empty(raw.register_url)
                .map(|v| register_url("ORIGIN_REGISTER_URL", &v))
                .transpose()?,
            heartbeat_interval: duration(
                "ORIGIN_HEARTBEAT_INTERVAL",
                raw.heartbeat_interval,
                "9s",
            )?,
            play_wait: duration("ORIGIN_PLAY_WAIT", raw.play_wait, "5s")?,
            publish_timeout: duration("ORIGIN_PUBLISH_TIMEOUT", raw.publish_timeout, "30s")?,
            hls_fragment: duration("ORIGIN_HLS_FRAGMENT", raw.hls_fragment, "2s")?,
            hls_window: duration("ORIGIN_HLS_WINDOW", raw.hls_window, "10s")?,
            hls_ctx: on_off("ORIGIN_HLS_CTX", raw.hls_ctx, true)?,
        })
    }
}

/// The `ORIGIN_*` variables set in the environment that this program does not know.
pub fn unknown_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("ORIGIN_") && !VARIABLES.iter().any(|(name, _, _)| name == k))
        .collect()
}

/// The `--help` text: usage and the variable table.
pub fn help_text() -> String {
    let mut out = String::from(
        "srs-origin: a small live-media origin (RTMP, SRT and WebRTC publish/play, HTTP-FLV, HTTP-TS, HLS, SRS-style API and heartbeat)\n\n\
         Usage: srs-origin [--help | --version]\n\n\
         Configured by environment variables (a .env file in the working directory fills in unset ones):\n\n",
    );
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() {
            "(empty)"
        } else {
            default
        };
        out.push_str(&format!("  {name:<26} default {default:<14} {meaning}\n"));
    }
    out.push_str(
        "\nHTTP routes (ORIGIN_HTTP_SERVER):\n  \
         GET /app/stream.flv          live HTTP-FLV\n  \
         GET /app/stream.ts           live HTTP-TS (MPEG-TS: H.264 + AAC)\n  \
         GET /app/stream.m3u8         HLS: master playlist -> /app/stream.m3u8?hls_ctx=ID (media playlist)\n  \
         GET /app/stream-SEQ.ts       HLS segment SEQ of stream `stream` (when it has one; else the live\n  \
         \x20                            stream named `stream-SEQ`, unless the query has hls_ctx)\n",
    );
    out.push_str(
        "\nSRT (ORIGIN_SRT_SERVER, UDP, live mode, MPEG-TS payload):\n  \
         streamid=#!::r=app/stream,m=publish   publish (one publisher per stream, SRT or RTMP)\n  \
         streamid=#!::r=app/stream,m=request   play (also without m=, or streamid=app/stream)\n  \
         rejections (wire 2000+HTTP code, libsrt's SRT_REJX_* 1000+): 1409 already published,\n  \
         \x20 1404 nobody publishes it (no wait), 1400 bad streamid, 1402 too many sessions\n  \
         an SRT stream also plays as GET /app/stream.ts (not as FLV, RTMP or HLS)\n",
    );
    out.push_str(
        "\nWebRTC (signalling on ORIGIN_HTTP_API, media on ORIGIN_WEBRTC_SERVER; H.264, VP8, Opus):\n  \
         POST /rtc/v1/whip/?app=live&stream=s   WHIP publish: body an SDP offer (application/sdp)\n  \
         POST /rtc/v1/whep/?app=live&stream=s   WHEP play; answered at once, media when published\n  \
         \x20 -> 201, SDP answer, Location: /rtc/v1/whip/?app=live&stream=s&session=<id> (whep alike)\n  \
         DELETE <Location>                      ends the session (200; unknown: 404)\n  \
         POST /rtc/v1/publish/ and /rtc/v1/play/ SRS's JSON API: {\"streamurl\":\"webrtc://host/app/stream\",\"sdp\":...}\n  \
         errors: 400 bad request or SDP, 401 token, 409 already published, 413 SDP over 64 KiB,\n  \
         \x20 503 over 1024 sessions\n",
    );
    out.push_str(
        "\nLogging: RUST_LOG (default info), to stderr. On start, one line is printed to stdout:\n  \
         srs-origin listening rtmp=<addr> http=<addr> api=<addr> srt=<addr> rtc=<addr>\n",
    );
    out
}

/// A random lowercase alphanumeric id of `len` characters, like SRS's server and service ids.
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A value, or `None` when unset or empty.
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parses a listen address (see [`srs_common::env::parse_listen`]); unset means all
/// interfaces on `default`.
fn listen_addr(name: &str, value: Option<String>, default: u16) -> Result<SocketAddr, ConfigError> {
    match given(value) {
        Some(v) => parse_listen(name, &v),
        None => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), default)),
    }
}

/// Parses the candidate address: an IP literal (a host candidate cannot be a name); unset means
/// 127.0.0.1.
fn candidate(name: &str, value: Option<String>) -> Result<IpAddr, ConfigError> {
    match given(value) {
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError::new(name, &v, "expected an IP address such as 192.0.2.10")),
        None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

/// Parses a Go-style duration such as `9s`, `500ms` or `2m`; unset means `default`.
fn duration(name: &str, value: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    parse_duration(name, &given(value).unwrap_or_else(|| default.to_string()))
}

/// Parses a switch: `on` or `off` (also `true`/`false`, `1`/`0`, any case); unset means `default`.
fn on_off(name: &str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match given(value) {
        Some(v) => parse_switch(name, &v),
        None => Ok(default),
    }
}

/// Validates the register URL: an absolute `http://` URL (the heartbeat client speaks plain HTTP).
fn register_url(name: &str, value: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = value
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(name, value, format!("not a URL ({e})")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(ConfigError::new(
            name,
            value,
            "expected an http:// URL with a host",
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::from_pairs(&[]).unwrap();
        assert_eq!(c.rtmp_server, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(c.http_server, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.http_api, "0.0.0.0:1985".parse().unwrap());
        assert_eq!(c.srt_server, "0.0.0.0:10080".parse().unwrap());
        assert_eq!(c.rtc_server, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.candidate, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(c.rtc_token.is_none());
        assert_eq!(c.ip, "127.0.0.1");
        assert!(c.device_id.is_none());
        assert!(c.server_id.starts_with("vid-") && c.server_id.len() == 11);
        assert!(c.register_url.is_none());
        assert_eq!(c.heartbeat_interval, Duration::from_secs(9));
        assert_eq!(c.play_wait, Duration::from_secs(5));
        assert_eq!(c.hls_fragment, Duration::from_secs(2));
        assert_eq!(c.hls_window, Duration::from_secs(10));
        assert!(c.hls_ctx);
    }

    #[test]
    fn explicit_values() {
        let c = Config::from_pairs(&[
            ("ORIGIN_RTMP_SERVER", "127.0.0.1:0"),
            ("ORIGIN_HTTP_SERVER", "0"),
            ("ORIGIN_HTTP_API", ":1986"),
            ("ORIGIN_SRT_SERVER", "127.0.0.1:0"),
            ("ORIGIN_WEBRTC_SERVER", "0"),
            ("ORIGIN_CANDIDATE", "192.0.2.10"),
            ("ORIGIN_RTC_TOKEN", "s3cret"),
            ("ORIGIN_DEVICE_ID", "origin2"),
            ("ORIGIN_SERVER_ID", "vid-abc"),
            (
                "ORIGIN_REGISTER_URL",
                "http://127.0.0.1:12025/api/v1/srs/register",
            ),
            ("ORIGIN_HEARTBEAT_INTERVAL", "500ms"),
            ("ORIGIN_HLS_FRAGMENT", "1s"),
            ("ORIGIN_HLS_WINDOW", "4s"),
            ("ORIGIN_HLS_CTX", "OFF"),
        ])
        .unwrap();
        assert_eq!(c.rtmp_server, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.http_server.port(), 0);
        assert_eq!(c.http_api, "0.0.0.0:1986".parse().unwrap());
        assert_eq!(c.srt_server, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.rtc_server.port(), 0);
        assert_eq!(c.candidate.to_string(), "192.0.2.10");
        assert_eq!(c.rtc_token.as_deref(), Some("s3cret"));
        assert_eq!(c.device_id.as_deref(), Some("origin2"));
        assert_eq!(c.server_id, "vid-abc");
        assert_eq!(c.register_url.unwrap().port_u16(), Some(12025));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.hls_fragment, Duration::from_secs(1));
        assert_eq!(c.hls_window, Duration::from_secs(4));
        assert!(!c.hls_ctx);
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let e = Config::from_pairs(&[("ORIGIN_RTMP_SERVER", "nope")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_RTMP_SERVER");
        assert!(e.to_string().contains("\"nope\""));
        let e = Config::from_pairs(&[("ORIGIN_HEARTBEAT_INTERVAL", "9 parsecs")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_HEARTBEAT_INTERVAL");
        let e = Config::from_pairs(&[("ORIGIN_REGISTER_URL", "https://x/y")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_REGISTER_URL");
        let e = Config::from_pairs(&[("ORIGIN_HTTP_API", "70000")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_HTTP_API");
        let e = Config::from_pairs(&[("ORIGIN_SRT_SERVER", "udp://x")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_SRT_SERVER");
        let e = Config::from_pairs(&[("ORIGIN_CANDIDATE", "origin.example.com")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_CANDIDATE");
        let e = Config::from_pairs(&[("ORIGIN_WEBRTC_SERVER", "x:y")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_WEBRTC_SERVER");
        let e = Config::from_pairs(&[("ORIGIN_HLS_CTX", "maybe")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_HLS_CTX");
        let e = Config::from_pairs(&[("ORIGIN_HLS_FRAGMENT", "0s")]).unwrap_err();
        assert_eq!(e.name, "ORIGIN_HLS_FRAGMENT");
    }

    #[test]
    fn readme_and_help_list_every_variable() {
        let readme = include_str!("../README.md");
        let help = help_text();
        for (name, _, _) in VARIABLES {
            assert!(
                readme.contains(&format!("| {name} |")),
                "README lacks {name}"
            );
            assert!(help.contains(name), "--help lacks {name}");
        }
    }
}
