//! Proxy configuration from environment variables (docs/design.md §2).
//!
//! Variables are read once at start-up with `envy`; a `.env` file in the working directory fills
//! in variables that are not already set. Every value is validated here so that a bad one stops
//! start-up with a message naming the variable and the value.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use srs_cluster::OriginInfo;
pub use srs_common::env::ConfigError;
use srs_common::env::{parse_duration, parse_listen, parse_port, parse_switch};

/// One row of the variable table printed by `--help`: name, default, meaning.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "PROXY_RTMP_SERVER",
        "11935",
        "RTMP listener (TCP): port or ip:port",
    ),
    (
        "PROXY_HTTP_SERVER",
        "18080",
        "HTTP stream listener: HTTP-FLV, HTTP-TS, HLS, static files",
    ),
    (
        "PROXY_HTTP_API",
        "11985",
        "HTTP API listener: WHIP/WHEP and SRS's WebRTC JSON API, versions",
    ),
    (
        "PROXY_WEBRTC_SERVER",
        "18000",
        "WebRTC media (UDP): every session's STUN, DTLS, SRTP",
    ),
    (
        "PROXY_WEBRTC_CANDIDATE",
        "",
        "address written into the WebRTC answers' candidates, what clients reach (empty: the origin's candidate address)",
    ),
    (
        "PROXY_SRT_SERVER",
        "20080",
        "SRT listener (UDP) for every SRT caller",
    ),
    (
        "PROXY_SYSTEM_API",
        "12025",
        "system API: origin registration, health, origins, metrics",
    ),
    (
        "PROXY_REUSE_PORT",
        "off",
        "on: every listener sets SO_REUSEPORT, so a new process can bind the ports before this one drains",
    ),
    (
        "PROXY_MAX_CONNECTIONS",
        "10000",
        "open connections per TCP listener at most; beyond, new ones are closed at once",
    ),
    (
        "PROXY_STATIC_FILES",
        "",
        "directory served at / by the HTTP stream listener (empty: none)",
    ),
    ("PROXY_LOAD_BALANCER_TYPE", "memory", "memory or redis"),
    ("PROXY_REDIS_HOST", "127.0.0.1", "Redis host"),
    ("PROXY_REDIS_PORT", "6379", "Redis port"),
    ("PROXY_REDIS_PASSWORD", "", "Redis password"),
    ("PROXY_REDIS_DB", "0", "Redis database (0 on a cluster)"),
    (
        "PROXY_REDIS_SENTINEL_ADDRS",
        "",
        "Sentinels host:port,...: find and follow the primary through them (instead of HOST/PORT)",
    ),
    (
        "PROXY_REDIS_SENTINEL_MASTER",
        "",
        "the primary's name at the Sentinels (needed with SENTINEL_ADDRS)",
    ),
    ("PROXY_REDIS_SENTINEL_PASSWORD", "", "Sentinels' password"),
    (
        "PROXY_REDIS_CLUSTER_ADDRS",
        "",
        "Redis Cluster seed nodes host:port,... (instead of HOST/PORT; not with SENTINEL_ADDRS)",
    ),
    (
        "PROXY_REDIS_KEY_PREFIX",
        "srs-proxy:",
        "prefix of every Redis key, so fleets can share one Redis (a hash tag on a cluster)",
    ),
    (
        "PROXY_HTTP_API_AUTH_ENABLED",
        "off",
        "on: origin registration needs PROXY_HTTP_API_AUTH_TOKEN",
    ),
    (
        "PROXY_HTTP_API_AUTH_TYPE",
        "bearer",
        "bearer (the only type): Authorization: Bearer <token> or ?token=<token>",
    ),
    (
        "PROXY_HTTP_API_AUTH_TOKEN",
        "",
        "the token origins register with (required when auth is on)",
    ),
    (
        "PROXY_DEFAULT_BACKEND_ENABLED",
        "off",
        "on: a fixed origin that needs no registration",
    ),
    (
        "PROXY_DEFAULT_BACKEND_IP",
        "127.0.0.1",
        "default origin address",
    ),
    (
        "PROXY_DEFAULT_BACKEND_RTMP",
        "1935",
        "default origin RTMP port",
    ),
    (
        "PROXY_DEFAULT_BACKEND_HTTP",
        "8080",
        "default origin HTTP port",
    ),
    (
        "PROXY_DEFAULT_BACKEND_API",
        "1985",
        "default origin HTTP API port",
    ),
    (
        "PROXY_DEFAULT_BACKEND_RTC",
        "8000",
        "default origin WebRTC port (UDP)",
    ),
    (
        "PROXY_DEFAULT_BACKEND_SRT",
        "10080",
        "default origin SRT port (UDP)",
    ),
    (
        "PROXY_SERVER_ALIVE_DURATION",
        "30s",
        "an origin with no heartbeat for this long is dead",
    ),
    (
        "PROXY_ORIGIN_SERVER_TTL",
        "",
        "alias of PROXY_SERVER_ALIVE_DURATION (both set and different: start-up fails)",
    ),
    (
        "PROXY_HLS_ALIVE_DURATION",
        "120s",
        "an HLS session idle this long is forgotten",
    ),
    (
        "PROXY_RTC_ALIVE_DURATION",
        "120s",
        "a WebRTC session idle this long is forgotten",
    ),
    (
        "PROXY_GRACE_QUIT_TIMEOUT",
        "20s",
        "on SIGTERM/SIGINT: stop accepting, drain this long",
    ),
    (
        "PROXY_FORCE_QUIT_TIMEOUT",
        "30s",
        "hard exit this long after SIGTERM/SIGINT",
    ),
    (
        "PROXY_RTMP_TIMEOUT",
        "10s",
        "bound on each wait on an origin's RTMP handshake and command answers",
    ),
    (
        "PROXY_SETUP_TIMEOUT",
        "10s",
        "an RTMP client must finish the handshake and connect + publish/play within this",
    ),
    (
        "PROXY_SETUP_MAX_MESSAGE_SIZE",
        "65536",
        "largest RTMP message (bytes) a client may send before its session is set up",
    ),
    (
        "PROXY_ORIGIN_RESPONSE_TIMEOUT",
        "10s",
        "an origin that has not sent an HTTP relay's response head this long is set aside",
    ),
    (
        "PROXY_IDLE_TIMEOUT",
        "30s",
        "a relayed session is closed when either side makes no progress this long",
    ),
    (
        "PROXY_HTTP_SPLICE",
        "off",
        "off: HTTP-FLV/TS bodies are copied through a 32 KiB user-space buffer; on: bodies that pass unchanged move origin to client with splice(2) (Linux)",
    ),
    (
        "PROXY_STREAM_LEASE_DURATION",
        "15s",
        "a stream with no active session on any proxy this long is unowned",
    ),
    (
        "PROXY_ORIGIN_NETWORKS",
        "",
        "comma-separated CIDRs (e.g. 10.0.0.0/8,fd00::/8) origin endpoints must be in; others are refused at registration (empty: any)",
    ),
    (
        "PROXY_ORIGIN_LOAD_LIMIT",
        "",
        "load per CPU (e.g. 0.9) above which an origin gets new streams only when all are above it (empty: off)",
    ),
];

/// Which store holds origins and stream ownership (docs/design.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancerType {
    /// This process only.
    Memory,
    /// Shared by every proxy on the same Redis.
    Redis,
}

/// Redis connection settings (`PROXY_REDIS_*`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Password; empty means none.
    pub password: String,
    /// Database number.
    pub db: u32,
    /// Single node (`host`, `port`), Sentinel or Cluster (docs/design.md §9).
    pub topology: srs_lb::Topology,
    /// Prefix of every key (`PROXY_REDIS_KEY_PREFIX`).
    pub key_prefix: String,
}

/// The validated configuration of one proxy process.
#[derive(Debug, Clone)]
pub struct Config {
    /// RTMP listener address.
    pub rtmp_server: SocketAddr,
    /// HTTP stream listener address.
    pub http_server: SocketAddr,
    /// HTTP API listener address.
    pub http_api: SocketAddr,
    /// WebRTC UDP address; once bound, the bound one (its port goes into rewritten answers).
    pub webrtc_server: SocketAddr,
    /// The address written into rewritten WebRTC candidates (`PROXY_WEBRTC_CANDIDATE`); `None`
    /// keeps the origin's (docs/design.md §6.5).
    pub webrtc_candidate: Option<String>,
    /// SRT UDP address (reserved).
    pub srt_server: SocketAddr,
    /// System API listener address.
    pub system_api: SocketAddr,
    /// Whether every listener, TCP and UDP, sets `SO_REUSEPORT` (`PROXY_REUSE_PORT`).
    pub reuse_port: bool,
    /// Open connections per TCP listener at most (`PROXY_MAX_CONNECTIONS`, docs/design.md §7).
    pub max_connections: usize,
    /// Directory served at `/` by the HTTP stream listener.
    pub static_files: Option<String>,
    /// Store kind.
    pub load_balancer: LoadBalancerType,
    /// Redis settings, used when `load_balancer` is Redis.
    pub redis: RedisConfig,
    /// The fixed origin, when `PROXY_DEFAULT_BACKEND_ENABLED=on`.
    pub default_backend: Option<OriginInfo>,
    /// Heartbeat age after which an origin is dead.
    pub server_alive: Duration,
    /// HLS session idle expiry.
    pub hls_alive: Duration,
    /// WebRTC session idle expiry.
    pub rtc_alive: Duration,
    /// Drain time after SIGTERM/SIGINT.
    pub grace_quit: Duration,
    /// Hard exit time after SIGTERM/SIGINT.
    pub force_quit: Duration,
    /// Timeout of each RTMP wait (handshake, command exchange, dial).
    pub rtmp_timeout: Duration,
    /// Bound on an RTMP client's handshake and connect + publish/play together
    /// (`PROXY_SETUP_TIMEOUT`, docs/design.md §7).
    pub setup_timeout: Duration,
    /// Largest RTMP message a client may send before its session is set up, bytes; partial
    /// data is held up to twice this (`PROXY_SETUP_MAX_MESSAGE_SIZE`, docs/design.md §7).
    pub setup_max_message_size: u32,
    /// How long an HTTP relay waits for the origin's response head (docs/design.md §5.3).
    pub origin_response_timeout: Duration,
    /// A relayed RTMP or HTTP session with no progress on one side this long is closed.
    pub idle_timeout: Duration,
    /// Whether HTTP-FLV/TS bodies that pass unchanged move with splice(2) through a pipe
    /// instead of a user-space copy (`PROXY_HTTP_SPLICE`, docs/design.md §6.2); off where the
    /// OS has no splice.
    pub http_splice: bool,
    /// Stream ownership lease; active sessions refresh it every third of it.
    pub stream_lease: Duration,
    /// The token origins must register with, when `PROXY_HTTP_API_AUTH_ENABLED=on`.
    pub register_token: Option<String>,
    /// Load per CPU above which an origin gets no new stream while another candidate is below it
    /// (`PROXY_ORIGIN_LOAD_LIMIT`, docs/design.md §5.1); `None`: off.
    pub origin_load_limit: Option<f64>,
    /// Networks every registered endpoint must be in (`PROXY_ORIGIN_NETWORKS`, docs/design.md
    /// §3); empty: any address.
    pub origin_networks: Vec<ipnet::IpNet>,
}

/// The raw variables as strings; `envy` fills it from `PROXY_*`.
#[derive(Debug, Deserialize, Default)]
struct Raw {
    rtmp_server: Option<String>,
    http_server: Option<String>,
    http_api: Option<String>,
    webrtc_server: Option<String>,
    webrtc_candidate: Option<String>,
    srt_server: Option<String>,
    system_api: Option<String>,
    static_files: Option<String>,
    max_connections: Option<String>,
    reuse_port: Option<String>,
    load_balancer_type: Option<String>,
    redis_host: Option<String>,
    redis_port: Option<String>,
    redis_password: Option<String>,
    redis_db: Option<String>,
    redis_sentinel_addrs: Option<String>,
    redis_sentinel_master: Option<String>,
    redis_sentinel_password: Option<String>,
    redis_cluster_addrs: Option<String>,
    redis_key_prefix: Option<String>,
    http_api_auth_enabled: Option<String>,
    http_api_auth_type: Option<String>,
    http_api_auth_token: Option<String>,
    origin_server_ttl: Option<String>,
    default_backend_enabled: Option<String>,
    default_backend_ip: Option<String>,
    default_backend_rtmp: Option<String>,
    default_backend_http: Option<String>,
    default_backend_api: Option<String>,
    default_backend_rtc: Option<String>,
    default_backend_srt: Option<String>,
    server_alive_duration: Option<String>,
    hls_alive_duration: Option<String>,
    rtc_alive_duration: Option<String>,
    grace_quit_timeout: Option<String>,
    force_quit_timeout: Option<String>,
    rtmp_timeout: Option<String>,
    origin_response_timeout: Option<String>,
    setup_timeout: Option<String>,
    setup_max_message_size: Option<String>,
    idle_timeout: Option<String>,
    http_splice: Option<String>,
    stream_lease_duration: Option<String>,
    origin_load_limit: Option<String>,
    origin_networks: Option<String>,
}

/// The Redis mode the Sentinel and Cluster variables ask for (docs/design.md §9).
///
/// Errors: a malformed address list, Sentinels without a master name or the reverse, or both
/// Sentinel and Cluster addresses (naming both variables).
fn redis_topology(raw: &Raw) -> Result<srs_lb::Topology, ConfigError> {
    let sentinels = value_or_default("PROXY_REDIS_SENTINEL_ADDRS", &raw.redis_sentinel_addrs);
    let master = value_or_default("PROXY_REDIS_SENTINEL_MASTER", &raw.redis_sentinel_master);
    let cluster = value_or_default("PROXY_REDIS_CLUSTER_ADDRS", &raw.redis_cluster_addrs);
    if !sentinels.is_empty() && !cluster.is_empty() {
        return Err(ConfigError::new(
            "PROXY_REDIS_SENTINEL_ADDRS and PROXY_REDIS_CLUSTER_ADDRS",
            &format!("{sentinels} and {cluster}"),
            "set one of them: Sentinel and Cluster are two ways to run Redis",
        ));
    }
    if !cluster.is_empty() {
        return Ok(srs_lb::Topology::Cluster {
            nodes: parse_addrs("PROXY_REDIS_CLUSTER_ADDRS", &cluster)?,
        });
    }
    match (sentinels.is_empty(), master.is_empty()) {
        (true, true) => Ok(srs_lb::Topology::Single),
        (false, false) => Ok(srs_lb::Topology::Sentinel {
            sentinels: parse_addrs("PROXY_REDIS_SENTINEL_ADDRS", &sentinels)?,
            master,
            password: value_or_default(
                "PROXY_REDIS_SENTINEL_PASSWORD",
                &raw.redis_sentinel_password,
            ),
        }),
        (false, true) => Err(ConfigError::new(
            "PROXY_REDIS_SENTINEL_MASTER",
            "",
            "needed with PROXY_REDIS_SENTINEL_ADDRS: the name the Sentinels monitor the primary under",
        )),
        (true, false) => Err(ConfigError::new(
            "PROXY_REDIS_SENTINEL_ADDRS",
            "",
            "needed with PROXY_REDIS_SENTINEL_MASTER: the Sentinels' host:port list",
        )),
    }
}

/// `PROXY_SERVER_ALIVE_DURATION`, or its alias `PROXY_ORIGIN_SERVER_TTL` (docs/design.md §2).
///
/// Errors: a malformed value, or both set to different durations (naming both variables).
fn server_alive(raw: &Raw) -> Result<Duration, ConfigError> {
    const NAME: &str = "PROXY_SERVER_ALIVE_DURATION";
    const ALIAS: &str = "PROXY_ORIGIN_SERVER_TTL";
    let alias = raw.origin_server_ttl.as_deref().map(str::trim);
    let alias = match alias.filter(|v| !v.is_empty()) {
        Some(v) => Some((v, parse_duration(ALIAS, v)?)),
        None => None,
    };
    match (&raw.server_alive_duration, alias) {
        (None, Some((_, ttl))) => Ok(ttl),
        (Some(value), Some((ttl_value, ttl))) => {
            let alive = parse_duration(NAME, value.trim())?;
            if alive != ttl {
                return Err(ConfigError::new(
                    "PROXY_SERVER_ALIVE_DURATION and PROXY_ORIGIN_SERVER_TTL",
                    &format!("{} and {ttl_value}", value.trim()),
                    "one is an alias of the other: set one, or both to the same duration",
                ));
            }
            Ok(alive)
        }
        (value, None) => parse_duration(NAME, &value_or_default(NAME, value)),
    }
}

/// `PROXY_ORIGIN_LOAD_LIMIT`: a positive load per CPU, or `None` when unset or empty.
///
/// Errors: anything but a finite number above 0.
fn origin_load_limit(raw: &Raw) -> Result<Option<f64>, ConfigError> {
    const NAME: &str = "PROXY_ORIGIN_LOAD_LIMIT";
    let value = value_or_default(NAME, &raw.origin_load_limit);
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<f64>() {
        Ok(limit) if limit.is_finite() && limit > 0.0 => Ok(Some(limit)),
        _ => Err(ConfigError::new(
            NAME,
            &value,
            "expected a load per CPU above 0, e.g. 0.9",
        )),
    }
}

/// `PROXY_ORIGIN_NETWORKS`: comma-separated CIDRs; a bare address is a one-address network.
fn origin_networks(raw: &Raw) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    const NAME: &str = "PROXY_ORIGIN_NETWORKS";
    let value = value_or_default(NAME, &raw.origin_networks);
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        NAME,
                        &value,
                        format!("{n:?} is no CIDR network; expected e.g. 10.0.0.0/8,fd00::/8"),
                    )
                })
        })
        .collect()
}

/// `PROXY_MAX_CONNECTIONS`: a whole number of at least 1.
fn max_connections(raw: &Raw) -> Result<usize, ConfigError> {
    const NAME: &str = "PROXY_MAX_CONNECTIONS";
    let value = value_or_default(NAME, &raw.max_connections);
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ConfigError::new(
            NAME,
            &value,
            "expected a whole number of at least 1",
        )),
    }
}

/// `PROXY_SETUP_MAX_MESSAGE_SIZE`: bytes, from 1 KiB (a `connect` must fit) to 8 MiB (the
/// limit once a session is set up).
fn setup_max_message_size(raw: &Raw) -> Result<u32, ConfigError> {
    const NAME: &str = "PROXY_SETUP_MAX_MESSAGE_SIZE";
    let value = value_or_default(NAME, &raw.setup_max_message_size);
    match value.parse::<u32>() {
        Ok(n) if (1024..=8 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            NAME,
            &value,
            "expected bytes from 1024 to 8388608",
        )),
    }
}

/// The register token when `PROXY_HTTP_API_AUTH_ENABLED=on` (docs/design.md §3).
///
/// Errors: a type other than `bearer`, or auth on without a token.
fn register_token(raw: &Raw) -> Result<Option<String>, ConfigError> {
    const ENABLED: &str = "PROXY_HTTP_API_AUTH_ENABLED";
    if !parse_switch(
        ENABLED,
        &value_or_default(ENABLED, &raw.http_api_auth_enabled),
    )? {
        return Ok(None);
    }
    let kind = value_or_default("PROXY_HTTP_API_AUTH_TYPE", &raw.http_api_auth_type);
    if kind != "bearer" {
        return Err(ConfigError::new(
            "PROXY_HTTP_API_AUTH_TYPE",
            &kind,
            "expected bearer (the only type)",
        ));
    }
    let token = value_or_default("PROXY_HTTP_API_AUTH_TOKEN", &raw.http_api_auth_token);
    if token.is_empty() {
        return Err(ConfigError::new(
            "PROXY_HTTP_API_AUTH_TOKEN",
            "",
            "needed with PROXY_HTTP_API_AUTH_ENABLED=on: the token origins register with",
        ));
    }
    Ok(Some(token))
}

/// Parses `host:port,host:port,...` (`[v6]:port` for IPv6 addresses), at least one.
///
/// Errors: an empty list or a malformed entry, naming `name`.
fn parse_addrs(name: &str, value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let mut addrs = Vec::new();
    for entry in value.split(',').map(str::trim) {
        let bad = || ConfigError::new(name, value, format!("expected host:port, got {entry:?}"));
        let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        let port = parse_port(name, port).map_err(|_| bad())?;
        addrs.push((host.to_string(), port));
    }
    Ok(addrs)
}

/// Looks up a variable's default in [`VARIABLES`].
fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, _)| *d)
        .unwrap_or("")
}

/// Returns the value, or the variable's default when unset.
fn value_or_default(name: &str, v: &Option<String>) -> String {
    match v {
        Some(s) => s.trim().to_string(),
        None => default_of(name).to_string(),
    }
}

impl Config {
    /// The store settings these variables describe.
    pub fn store_config(&self) -> srs_lb::store::StoreConfig {
        srs_lb::store::StoreConfig {
            alive: self.server_alive,
            lease: self.stream_lease,
            hls_alive: self.hls_alive,
            rtc_alive: self.rtc_alive,
            default_backend: self.default_backend.clone(),
            load_limit: self.origin_load_limit,
            probe_hold: Some(crate::probe::PROBE_HOLD),
        }
    }

    /// The Redis settings these variables describe.
    pub fn redis_settings(&self) -> srs_lb::redis::RedisSettings {
        srs_lb::redis::RedisSettings {
            host: self.redis.host.clone(),
            port: self.redis.port,
            password: self.redis.password.clone(),
            db: self.redis.db,
            topology: self.redis.topology.clone(),
            prefix: self.redis.key_prefix.clone(),
        }
    }

    /// Loads `.env` (when present) and then the process environment.
    ///
    /// Errors: a `.env` file that cannot be parsed, or any variable that fails validation.
    pub fn from_env() -> anyhow::Result<Config> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => anyhow::bail!("cannot load .env: {e}"),
        }
        let raw: Raw = envy::prefixed("PROXY_")
            .from_env()
            .map_err(|e| anyhow::anyhow!("reading PROXY_* variables: {e}"))?;
        Ok(Config::from_raw(raw)?)
    }

    /// Builds a configuration from `(name, value)` pairs, as if they were the environment.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Config, anyhow::Error> {
        let raw: Raw = envy::prefixed("PROXY_")
            .from_iter(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .map_err(|e| anyhow::anyhow!("reading PROXY_* variables: {e}"))?;
        Ok(Config::from_raw(raw)?)
    }

    fn from_raw(raw: Raw) -> Result<Config, ConfigError> {
        let listen =
            |name: &str, v: &Option<String>| parse_listen(name, &value_or_default(name, v));
        let duration =
            |name: &str, v: &Option<String>| parse_duration(name, &value_or_default(name, v));

        let lb_value = value_or_default("PROXY_LOAD_BALANCER_TYPE", &raw.load_balancer_type);
        let load_balancer = match lb_value.as_str() {
            "memory" => LoadBalancerType::Memory,
            "redis" => LoadBalancerType::Redis,
            _ => {
                return Err(ConfigError::new(
                    "PROXY_LOAD_BALANCER_TYPE",
                    &lb_value,
                    "expected memory or redis",
                ))
            }
        };

        let redis_port = value_or_default("PROXY_REDIS_PORT", &raw.redis_port);
        let redis_db = value_or_default("PROXY_REDIS_DB", &raw.redis_db);
        let redis = RedisConfig {
            host: value_or_default("PROXY_REDIS_HOST", &raw.redis_host),
            port: parse_port("PROXY_REDIS_PORT", &redis_port)?,
            password: value_or_default("PROXY_REDIS_PASSWORD", &raw.redis_password),
            db: redis_db.parse().map_err(|_| {
                ConfigError::new("PROXY_REDIS_DB", &redis_db, "expected a database number")
            })?,
            topology: redis_topology(&raw)?,
            key_prefix: value_or_default("PROXY_REDIS_KEY_PREFIX", &raw.redis_key_prefix),
        };
        let settings = srs_lb::redis::RedisSettings {
            topology: redis.topology.clone(),
            prefix: redis.key_prefix.clone(),
            ..srs_lb::redis::RedisSettings::default()
        };
        if let Err(reason) = settings.key_prefix() {
            return Err(ConfigError::new(
                "PROXY_REDIS_KEY_PREFIX",
                &redis.key_prefix,
                reason,
            ));
        }
        if matches!(redis.topology, srs_lb::Topology::Cluster { .. }) && redis.db != 0 {
            return Err(ConfigError::new(
                "PROXY_REDIS_DB",
                &redis_db,
                "a Redis Cluster has database 0 only (PROXY_REDIS_CLUSTER_ADDRS is set)",
            ));
        }

        let enabled = value_or_default(
            "PROXY_DEFAULT_BACKEND_ENABLED",
            &raw.default_backend_enabled,
        );
        let default_backend = if parse_switch("PROXY_DEFAULT_BACKEND_ENABLED", &enabled)? {
            let ip = value_or_default("PROXY_DEFAULT_BACKEND_IP", &raw.default_backend_ip);
            if ip.parse::<IpAddr>().is_err() {
                return Err(ConfigError::new(
                    "PROXY_DEFAULT_BACKEND_IP",
                    &ip,
                    "expected an IP address",
                ));
            }
            let port = |name: &str, v: &Option<String>| -> Result<String, ConfigError> {
                let value = value_or_default(name, v);
                let p = parse_port(name, &value)?;
                Ok(host_port(&ip, p))
            };
            Some(OriginInfo {
                id: "default-backend".to_string(),
                device_id: Some("default-backend".to_string()),
                ip: ip.clone(),
                server: "default-backend".to_string(),
                service: "default".to_string(),
                pid: "0".to_string(),
                rtmp: vec![port(
                    "PROXY_DEFAULT_BACKEND_RTMP",
                    &raw.default_backend_rtmp,
                )?],
                http: vec![port(
                    "PROXY_DEFAULT_BACKEND_HTTP",
                    &raw.default_backend_http,
                )?],
                api: vec![port("PROXY_DEFAULT_BACKEND_API", &raw.default_backend_api)?],
                rtc: vec![port("PROXY_DEFAULT_BACKEND_RTC", &raw.default_backend_rtc)?],
                srt: vec![port("PROXY_DEFAULT_BACKEND_SRT", &raw.default_backend_srt)?],
                load: None,
            })
        } else {
            None
        };

        let static_files = raw
            .static_files
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(dir) = &static_files {
            if !std::path::Path::new(dir).is_dir() {
                return Err(ConfigError::new(
                    "PROXY_STATIC_FILES",
                    dir,
                    "not a directory",
                ));
            }
        }

        let config = Config {
            rtmp_server: listen("PROXY_RTMP_SERVER", &raw.rtmp_server)?,
            http_server: listen("PROXY_HTTP_SERVER", &raw.http_server)?,
            http_api: listen("PROXY_HTTP_API", &raw.http_api)?,
            webrtc_server: listen("PROXY_WEBRTC_SERVER", &raw.webrtc_server)?,
            webrtc_candidate: webrtc_candidate(&raw)?,
            srt_server: listen("PROXY_SRT_SERVER", &raw.srt_server)?,
            system_api: listen("PROXY_SYSTEM_API", &raw.system_api)?,
            reuse_port: parse_switch(
                "PROXY_REUSE_PORT",
                &value_or_default("PROXY_REUSE_PORT", &raw.reuse_port),
            )?,
            static_files,
            max_connections: max_connections(&raw)?,
            load_balancer,
            redis,
            default_backend,
            server_alive: server_alive(&raw)?,
            hls_alive: duration("PROXY_HLS_ALIVE_DURATION", &raw.hls_alive_duration)?,
            rtc_alive: duration("PROXY_RTC_ALIVE_DURATION", &raw.rtc_alive_duration)?,
            grace_quit: duration("PROXY_GRACE_QUIT_TIMEOUT", &raw.grace_quit_timeout)?,
            force_quit: duration("PROXY_FORCE_QUIT_TIMEOUT", &raw.force_quit_timeout)?,
            rtmp_timeout: duration("PROXY_RTMP_TIMEOUT", &raw.rtmp_timeout)?,
            origin_response_timeout: duration(
                "PROXY_ORIGIN_RESPONSE_TIMEOUT",
                &raw.origin_response_timeout,
            )?,
            idle_timeout: duration("PROXY_IDLE_TIMEOUT", &raw.idle_timeout)?,
            setup_timeout: duration("PROXY_SETUP_TIMEOUT", &raw.setup_timeout)?,
            setup_max_message_size: setup_max_message_size(&raw)?,
            http_splice: parse_switch(
                "PROXY_HTTP_SPLICE",
                &value_or_default("PROXY_HTTP_SPLICE", &raw.http_splice),
            )?,
            stream_lease: duration("PROXY_STREAM_LEASE_DURATION", &raw.stream_lease_duration)?,
            register_token: register_token(&raw)?,
            origin_load_limit: origin_load_limit(&raw)?,
            origin_networks: origin_networks(&raw)?,
        };
        Ok(config)
    }
}

/// `PROXY_WEBRTC_CANDIDATE`: empty is `None`; else a host name or IP address, one token.
fn webrtc_candidate(raw: &Raw) -> Result<Option<String>, ConfigError> {
    let value = raw.webrtc_candidate.as_deref().map(str::trim).unwrap_or("");
    if value.is_empty() {
        return Ok(None);
    }
    let host_name = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if value.parse::<std::net::IpAddr>().is_err() && !host_name {
        return Err(ConfigError::new(
            "PROXY_WEBRTC_CANDIDATE",
            value,
            "not an IP address or host name",
        ));
    }
    Ok(Some(value.to_string()))
}

/// `ip:port`, with IPv6 literals bracketed.
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The `--help` text: usage and every variable with its default.
pub fn help_text() -> String {
    let mut s = String::from(
        "srs-proxy: stateless proxy load balancer for live-media origin servers\n\n\
         Usage: srs-proxy [--help]\n\n\
         Configured only by environment variables (a .env file in the working directory fills in\n\
         unset ones). Ports alone mean all interfaces; ip:port is accepted. Durations are\n\
         Go-style: 30s, 500ms, 2m.\n\n",
    );
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() {
            "(empty)"
        } else {
            default
        };
        s.push_str(&format!("  {name:<32} {default:<10} {meaning}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_spec() {
        let c = Config::from_pairs([]).unwrap();
        assert_eq!(c.rtmp_server.port(), 11935);
        assert_eq!(c.http_server.port(), 18080);
        assert_eq!(c.http_api.port(), 11985);
        assert_eq!(c.webrtc_server.port(), 18000);
        assert_eq!(c.srt_server.port(), 20080);
        assert_eq!(c.system_api.port(), 12025);
        assert!(c.rtmp_server.ip().is_unspecified());
        assert_eq!(c.load_balancer, LoadBalancerType::Memory);
        assert_eq!(c.server_alive, Duration::from_secs(30));
        assert_eq!(c.hls_alive, Duration::from_secs(120));
        assert_eq!(c.grace_quit, Duration::from_secs(20));
        assert_eq!(c.force_quit, Duration::from_secs(30));
        assert!(c.default_backend.is_none());
        assert_eq!(c.redis.port, 6379);
        assert_eq!(c.stream_lease, Duration::from_secs(15));
        assert_eq!(c.origin_response_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert!(!c.http_splice);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::from_pairs([("PROXY_RTMP_SERVER", "nope")]).unwrap_err();
        assert!(e.to_string().contains("PROXY_RTMP_SERVER"), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = Config::from_pairs([("PROXY_LOAD_BALANCER_TYPE", "etcd")]).unwrap_err();
        assert!(e.to_string().contains("PROXY_LOAD_BALANCER_TYPE"), "{e}");
        let e = Config::from_pairs([("PROXY_SERVER_ALIVE_DURATION", "soon")]).unwrap_err();
        assert!(e.to_string().contains("PROXY_SERVER_ALIVE_DURATION"), "{e}");
        let e = Config::from_pairs([("PROXY_DEFAULT_BACKEND_ENABLED", "maybe")]).unwrap_err();
        assert!(
            e.to_string().contains("PROXY_DEFAULT_BACKEND_ENABLED"),
            "{e}"
        );
    }

    #[test]
    fn webrtc_candidate_is_one_address() {
        assert_eq!(Config::from_pairs([]).unwrap().webrtc_candidate, None);
        for good in ["203.0.113.7", "2001:db8::1", "rtc.example.com"] {
            let c = Config::from_pairs([("PROXY_WEBRTC_CANDIDATE", good)]).unwrap();
            assert_eq!(c.webrtc_candidate.as_deref(), Some(good));
        }
        let e = Config::from_pairs([("PROXY_WEBRTC_CANDIDATE", "a b")]).unwrap_err();
        assert!(e.to_string().contains("PROXY_WEBRTC_CANDIDATE"), "{e}");
    }

    #[test]
    fn max_connections_is_a_positive_count() {
        assert_eq!(Config::from_pairs([]).unwrap().max_connections, 10_000);
        let c = Config::from_pairs([("PROXY_MAX_CONNECTIONS", "5")]).unwrap();
        assert_eq!(c.max_connections, 5);
        for bad in ["0", "-1", "many"] {
            let e = Config::from_pairs([("PROXY_MAX_CONNECTIONS", bad)]).unwrap_err();
            assert!(e.to_string().contains("PROXY_MAX_CONNECTIONS"), "{e}");
        }
    }

    #[test]
    fn origin_networks_are_cidrs() {
        assert!(Config::from_pairs([]).unwrap().origin_networks.is_empty());
        let c = Config::from_pairs([("PROXY_ORIGIN_NETWORKS", "10.0.0.0/8, 127.0.0.1,fd00::/8")])
            .unwrap();
        assert_eq!(c.origin_networks.len(), 3);
        assert!(c.origin_networks[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        let e = Config::from_pairs([("PROXY_ORIGIN_NETWORKS", "10.0.0.0/8,nope")]).unwrap_err();
        assert!(e.to_string().contains("PROXY_ORIGIN_NETWORKS"), "{e}");
    }

    #[test]
    fn origin_load_limit_is_a_positive_number() {
        assert_eq!(Config::from_pairs([]).unwrap().origin_load_limit, None);
        let c = Config::from_pairs([("PROXY_ORIGIN_LOAD_LIMIT", "0.9")]).unwrap();
        assert_eq!(c.origin_load_limit, Some(0.9));
        assert_eq!(c.store_config().load_limit, Some(0.9));
        for bad in ["0", "-1", "high", "NaN", "inf"] {
            let e = Config::from_pairs([("PROXY_ORIGIN_LOAD_LIMIT", bad)]).unwrap_err();
            let head = format!("PROXY_ORIGIN_LOAD_LIMIT=\"{bad}\": ");
            assert!(e.to_string().starts_with(&head), "{e}");
        }
    }

    #[test]
    fn redis_modes_from_variables() {
        let c = Config::from_pairs([]).unwrap();
        assert_eq!(c.redis_settings().topology, srs_lb::Topology::Single);
        let c = Config::from_pairs([
            ("PROXY_REDIS_SENTINEL_ADDRS", "s1:26379, [::1]:26380"),
            ("PROXY_REDIS_SENTINEL_MASTER", "mymaster"),
            ("PROXY_REDIS_SENTINEL_PASSWORD", "pw"),
        ])
        .unwrap();
        assert_eq!(
            c.redis_settings().topology,
            srs_lb::Topology::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("::1".into(), 26380)],
                master: "mymaster".into(),
                password: "pw".into(),
            }
        );
        let c = Config::from_pairs([("PROXY_REDIS_CLUSTER_ADDRS", "a:7000,b:7001")]).unwrap();
        assert_eq!(
            c.redis_settings().topology,
            srs_lb::Topology::Cluster {
                nodes: vec![("a".into(), 7000), ("b".into(), 7001)],
            }
        );
    }

    #[test]
    fn bad_redis_modes_name_the_variables() {
        let err = |pairs: &[(&str, &str)]| {
            Config::from_pairs(pairs.iter().copied())
                .unwrap_err()
                .to_string()
        };
        let e = err(&[
            ("PROXY_REDIS_SENTINEL_ADDRS", "s:26379"),
            ("PROXY_REDIS_SENTINEL_MASTER", "m"),
            ("PROXY_REDIS_CLUSTER_ADDRS", "c:7000"),
        ]);
        assert!(
            e.contains("PROXY_REDIS_SENTINEL_ADDRS") && e.contains("PROXY_REDIS_CLUSTER_ADDRS"),
            "{e}"
        );
        let e = err(&[("PROXY_REDIS_SENTINEL_ADDRS", "s:26379")]);
        assert!(e.starts_with("PROXY_REDIS_SENTINEL_MASTER="), "{e}");
        let e = err(&[("PROXY_REDIS_SENTINEL_MASTER", "m")]);
        assert!(e.starts_with("PROXY_REDIS_SENTINEL_ADDRS="), "{e}");
        for bad in ["s", "s:", ":26379", "s:99999", "s:1,", "a b:1"] {
            let e = err(&[
                ("PROXY_REDIS_SENTINEL_ADDRS", bad),
                ("PROXY_REDIS_SENTINEL_MASTER", "m"),
            ]);
            assert!(e.starts_with("PROXY_REDIS_SENTINEL_ADDRS="), "{bad}: {e}");
        }
        let e = err(&[("PROXY_REDIS_CLUSTER_ADDRS", "c:x")]);
        assert!(e.starts_with("PROXY_REDIS_CLUSTER_ADDRS="), "{e}");
        let e = err(&[
            ("PROXY_REDIS_CLUSTER_ADDRS", "c:7000"),
            ("PROXY_REDIS_DB", "2"),
        ]);
        assert!(e.starts_with("PROXY_REDIS_DB="), "{e}");
        let e = err(&[
            ("PROXY_REDIS_CLUSTER_ADDRS", "c:7000"),
            ("PROXY_REDIS_KEY_PREFIX", "{a}:"),
        ]);
        assert!(e.starts_with("PROXY_REDIS_KEY_PREFIX="), "{e}");
        let c = Config::from_pairs([("PROXY_REDIS_KEY_PREFIX", "fleet-b:")]).unwrap();
        assert_eq!(c.redis_settings().prefix, "fleet-b:");
    }

    #[test]
    fn default_backend_built_from_ports() {
        let c = Config::from_pairs([
            ("PROXY_DEFAULT_BACKEND_ENABLED", "on"),
            ("PROXY_DEFAULT_BACKEND_IP", "10.0.0.5"),
            ("PROXY_DEFAULT_BACKEND_RTMP", "19350"),
        ])
        .unwrap();
        let b = c.default_backend.unwrap();
        assert_eq!(b.rtmp, vec!["10.0.0.5:19350".to_string()]);
        assert_eq!(b.http, vec!["10.0.0.5:8080".to_string()]);
        let e = Config::from_pairs([
            ("PROXY_DEFAULT_BACKEND_ENABLED", "on"),
            ("PROXY_DEFAULT_BACKEND_HTTP", "0"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("PROXY_DEFAULT_BACKEND_HTTP"), "{e}");
    }

    #[test]
    fn alive_duration_alias() {
        let c = Config::from_pairs([("PROXY_ORIGIN_SERVER_TTL", "5s")]).unwrap();
        assert_eq!(c.server_alive, Duration::from_secs(5));
        let c = Config::from_pairs([
            ("PROXY_ORIGIN_SERVER_TTL", "5s"),
            ("PROXY_SERVER_ALIVE_DURATION", "5000ms"),
        ])
        .unwrap();
        assert_eq!(c.server_alive, Duration::from_secs(5));
        let e = Config::from_pairs([
            ("PROXY_ORIGIN_SERVER_TTL", "5s"),
            ("PROXY_SERVER_ALIVE_DURATION", "6s"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("PROXY_SERVER_ALIVE_DURATION") && e.contains("PROXY_ORIGIN_SERVER_TTL"),
            "{e}"
        );
        let e = Config::from_pairs([("PROXY_ORIGIN_SERVER_TTL", "soon")]).unwrap_err();
        assert!(e.to_string().starts_with("PROXY_ORIGIN_SERVER_TTL="), "{e}");
    }

    #[test]
    fn register_auth() {
        assert!(Config::from_pairs([]).unwrap().register_token.is_none());
        let c = Config::from_pairs([
            ("PROXY_HTTP_API_AUTH_ENABLED", "on"),
            ("PROXY_HTTP_API_AUTH_TOKEN", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.register_token.as_deref(), Some("s3cret"));
        let e = Config::from_pairs([("PROXY_HTTP_API_AUTH_ENABLED", "on")]).unwrap_err();
        assert!(
            e.to_string().starts_with("PROXY_HTTP_API_AUTH_TOKEN="),
            "{e}"
        );
        let e = Config::from_pairs([
            ("PROXY_HTTP_API_AUTH_ENABLED", "on"),
            ("PROXY_HTTP_API_AUTH_TYPE", "basic"),
            ("PROXY_HTTP_API_AUTH_TOKEN", "t"),
        ])
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("PROXY_HTTP_API_AUTH_TYPE=\"basic\""),
            "{e}"
        );
    }

    #[test]
    fn help_lists_every_variable() {
        let h = help_text();
        for (name, _, _) in VARIABLES {
            assert!(h.contains(name));
        }
    }
}
