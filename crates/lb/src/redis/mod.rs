//! The shared [`Store`] for `PROXY_LOAD_BALANCER_TYPE=redis` (docs/design.md §2, §5, §9): every
//! proxy on one Redis agrees on which origins are alive, who owns each stream, and where each
//! session (HLS, WebRTC) goes.
//!
//! Needs Redis 6.2 or later (`GETEX`): a single node, a Sentinel-managed primary, or a Redis
//! Cluster ([`Topology`]). Every decision that reads and then writes runs in one Lua script, so
//! it is atomic across proxies, and uses Redis's clock (`TIME`), so proxies with skewed clocks
//! still agree on lease ends. The scripts derive keys from what they read (a stream's owner), so
//! on a cluster every key of a fleet carries one hash tag, the prefix (`{srs-proxy}:`), and
//! lives in one slot: one primary and its replicas hold the fleet, for availability, not
//! sharding (docs/design.md §9).
//!
//! # Key layout
//!
//! Every key starts with [`RedisSettings::prefix`] (`srs-proxy:` by default; `{srs-proxy}:` on a
//! cluster, see [`RedisSettings::key_prefix`]). `{id}` is an origin
//! id (`server/service/pid`), `{stream}` a stream key (`vhost/app/stream`).
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `origin:{id}` | string | the origin's [`OriginInfo`] as JSON; written by each heartbeat | `alive`: it vanishes when the origin is dead |
//! | `origins` | sorted set | origin ids scored by last heartbeat (Redis time, ms); lists origins without scanning the keyspace | none; entries older than `alive` are removed whenever it is read |
//! | `server:{server}` | string | the id last registered by SRS `server` id, to spot restarts (same server, new id) | `alive` |
//! | `owner:{stream}` | string | the id of the origin holding the stream's lease | `lease`, renewed by `pick` and `refresh_leases` |
//! | `streams:{id}` | sorted set | streams leased by the origin, scored by lease end (ms); its size is the origin's load | `lease` after its newest lease; ended leases are removed when counted |
//! | `aside:{id}` | string | `1` while the origin is set aside after a failed dial; `probe` while its endpoints await a successful reachability probe | the set-aside duration; [`StoreConfig::probe_hold`] |
//! | `endpoints:{id}` | string | the endpoints of the origin's last heartbeat, to see them move | `alive` |
//! | `down:{id}` | string | endpoint kinds its last probe could not reach, `,rtmp,http,`: no candidate for protocols needing them | [`StoreConfig::probe_hold`] after the probe |
//! | `{kind}:{session}` | string | a [`SessionRecord`] as JSON, under its kind ([`SessionKind::as_str`]) and id: `hls:{spbhid}`, `rtc:{ufrag}` | [`StoreConfig::session_alive`] of the kind (`hls_alive`, `rtc_alive`), renewed by every get and put |
//!
//! The default backend is never written to Redis (each proxy has it in its configuration); only
//! its `owner:`, `streams:` and `aside:` keys exist.
//!
//! # Faults
//!
//! Every call gives up after [`OP_TIMEOUT`] with [`StoreError::Unavailable`]. Calls share one
//! multiplexed connection; after any failure it is dropped, and the next call opens a new one:
//! from a deadpool pool on a single node (which checks an idle connection with a `PING`), from
//! the primary the Sentinels name now (checked with `ROLE`), or a cluster connection (which
//! follows `MOVED`/`ASK` and refreshes its slot map). So the store recovers by itself when Redis
//! comes back or fails over. Every operation is idempotent, so a call that finds the shared
//! connection broken (Redis restarted since its last use) or demoted (`READONLY`) is retried
//! once on a new connection. A script unknown to a node (`NOSCRIPT`: a restarted or newly
//! promoted node) is loaded and run again.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ::redis::Script;

use srs_cluster::{OriginInfo, Protocol, StreamKey};

use crate::store::{
    endpoints_fingerprint, OriginStatus, Registered, SessionKind, SessionRecord, Store,
    StoreConfig, StoreError, StoreHealth,
};

mod conn;

pub use conn::Topology;
use conn::{host_port, Conn, Connector, Timeouts};

/// Default [`RedisSettings::prefix`].
pub const DEFAULT_PREFIX: &str = "srs-proxy:";

/// Longest time one store call may take, connection included.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait for a pooled connection, for opening one, and for its health check.
const POOL_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait for the `PING` of [`Store::health`].
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the shared state lives (docs/design.md §2: PROXY_REDIS_HOST / _PORT / _PASSWORD / _DB,
/// and the Sentinel or Cluster variables of [`Topology`]).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Host name or IP address of the single node ([`Topology::Single`]).
    pub host: String,
    /// TCP port of the single node.
    pub port: u16,
    /// `AUTH` password of the data nodes (single, Sentinel-managed or cluster); empty for none.
    pub password: String,
    /// Database number (`SELECT`); must be 0 on a cluster.
    pub db: u32,
    /// Prefix of every key ([`DEFAULT_PREFIX`]), so proxy fleets can share one Redis. On a
    /// cluster it becomes a hash tag (`srs-proxy:` → `{srs-proxy}:`) putting every key of the
    /// fleet in one slot; it must then be non-empty and without braces.
    pub prefix: String,
    /// Single node, Sentinel or Cluster.
    pub topology: Topology,
}

impl Default for RedisSettings {
    /// `127.0.0.1:6379`, no password, db 0, [`DEFAULT_PREFIX`], single node: the
    /// docs/design.md §2 defaults.
    fn default() -> Self {
        RedisSettings {
            host: "127.0.0.1".into(),
            port: 6379,
            password: String::new(),
            db: 0,
            prefix: DEFAULT_PREFIX.into(),
            topology: Topology::Single,
        }
    }
}

impl RedisSettings {
    /// Where the data is, for messages: `host:port` (`[host]:port` for an IPv6 address) of the
    /// single node, `Sentinel master <name> via host:port,...`, or `cluster host:port,...`.
    pub fn addr(&self) -> String {
        let list = |nodes: &[(String, u16)]| {
            let all: Vec<String> = nodes.iter().map(|(h, p)| host_port(h, *p)).collect();
            all.join(",")
        };
        match &self.topology {
            Topology::Single => host_port(&self.host, self.port),
            Topology::Sentinel {
                sentinels, master, ..
            } => format!("Sentinel master {master} via {}", list(sentinels)),
            Topology::Cluster { nodes } => format!("cluster {}", list(nodes)),
        }
    }

    /// The prefix the keys really get: [`RedisSettings::prefix`], as a hash tag on a cluster.
    ///
    /// Errors: the reason, for a cluster prefix that is empty or holds a brace (its keys could
    /// land in several slots).
    pub fn key_prefix(&self) -> Result<String, String> {
        if !matches!(self.topology, Topology::Cluster { .. }) {
            return Ok(self.prefix.clone());
        }
        let name = self.prefix.strip_suffix(':').unwrap_or(&self.prefix);
        if name.is_empty() || name.contains(['{', '}']) {
            return Err(format!(
                "key prefix {:?} cannot be a cluster hash tag: it must be non-empty, without braces",
                self.prefix
            ));
        }
        Ok(format!("{{{name}}}:"))
    }
}

/// The Lua scripts; each is the common prelude followed by its own body.
struct Scripts {
    register: Script,
    pick: Script,
    refresh: Script,
    claim: Script,
    set_aside: Script,
    probe: Script,
    origins: Script,
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("common.lua"), include_str!($file)))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            register: script!("register.lua"),
            pick: script!("pick.lua"),
            refresh: script!("refresh.lua"),
            claim: script!("claim.lua"),
            set_aside: script!("set_aside.lua"),
            probe: script!("probe.lua"),
            origins: script!("origins.lua"),
        }
    }
}

/// The connection calls share while it works, and the primary it writes to when known.
type Shared = Option<(Conn, Option<String>)>;

/// The [`Store`] shared by many proxies through Redis; see the module docs for the key layout.
pub struct RedisStore {
    /// Where the data is ([`RedisSettings::addr`]), for messages.
    addr: String,
    topology: Topology,
    /// The prefix of every key ([`RedisSettings::key_prefix`]).
    prefix: String,
    /// `<prefix>origins`: the key every script declares, so that a cluster routes the script
    /// to the slot of the fleet's hash tag (docs/design.md §9).
    index: String,
    config: StoreConfig,
    connector: Connector,
    /// The connection calls share while it works (one round trip per call; a pooled connection
    /// would add a health-check `PING` to each).
    shared: Mutex<Shared>,
    /// The primary the last connection wrote to, for [`Store::health`] while none works.
    primary: Mutex<String>,
    scripts: Scripts,
}

impl RedisStore {
    /// Connects to Redis (the single node, the primary the Sentinels name, or the cluster) and
    /// checks it with a `PING`.
    ///
    /// Errors: [`StoreError::Unavailable`] naming [`RedisSettings::addr`] when Redis cannot be
    /// reached or refuses the password or database, e.g. "cannot reach Redis at
    /// 127.0.0.1:6379: ...", or when a setting cannot work (a cluster with a database other
    /// than 0 or a prefix unfit for a hash tag).
    pub async fn connect(
        settings: RedisSettings,
        config: StoreConfig,
    ) -> Result<RedisStore, StoreError> {
        let addr = settings.addr();
        let unreachable =
            |e: String| StoreError::Unavailable(format!("cannot reach Redis at {addr}: {e}"));
        let prefix = settings.key_prefix().map_err(unreachable)?;
        let timeouts = Timeouts {
            open: POOL_TIMEOUT,
            answer: OP_TIMEOUT,
        };
        let connector = Connector::new(
            &settings.topology,
            (&settings.host, settings.port),
            &settings.password,
            settings.db,
            timeouts,
        )
        .map_err(unreachable)?;
        let primary = match settings.topology {
            Topology::Single => host_port(&settings.host, settings.port),
            _ => String::new(),
        };
        let store = RedisStore {
            addr: addr.clone(),
            topology: settings.topology,
            index: format!("{prefix}origins"),
            prefix,
            config,
            connector,
            shared: Mutex::new(None),
            primary: Mutex::new(primary),
            scripts: Scripts::new(),
        };
        let ping = async {
            let (mut c, _) = store.connection().await?;
            ::redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(OP_TIMEOUT, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => return Err(unreachable(why)),
            Err(_) => return Err(unreachable(format!("no answer within {OP_TIMEOUT:?}"))),
        }
        tracing::info!(redis = %addr, prefix = %store.prefix, "connected to Redis");
        Ok(store)
    }

    /// The shared connection (and `true`), or a new one (and `false`).
    async fn connection(&self) -> Result<(Conn, bool), String> {
        if let Some((c, _)) = self.lock(&self.shared).clone() {
            return Ok((c, true));
        }
        let (c, primary) = self.connector.connect().await?;
        if let Some(primary) = &primary {
            let mut last = self.lock(&self.primary);
            if *last != *primary {
                if !last.is_empty() {
                    tracing::warn!(old = %last, new = %primary, "Redis primary changed");
                }
                last.clone_from(primary);
            }
        }
        *self.lock(&self.shared) = Some((c.clone(), primary));
        Ok((c, false))
    }

    fn lock<'a, T>(&self, slot: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        // Plain slots: a panicking holder cannot leave them half-written.
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a lease script (prefix, lease ms, default id, then stream/origin pairs) in one round
    /// trip for the whole batch.
    async fn lease_batch(
        &self,
        what: &str,
        script: &Script,
        leases: &[(StreamKey, String)],
    ) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let _count: i64 = self
            .call(what, |mut c| async move {
                let mut invocation = script.key(&self.index);
                invocation
                    .arg(&self.prefix)
                    .arg(millis(self.config.lease))
                    .arg(self.default_id());
                for (key, id) in leases {
                    invocation.arg(key.to_string()).arg(id);
                }
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(())
    }

    /// Runs `op` on a connection within [`OP_TIMEOUT`]; any failure drops the shared
    /// connection and becomes [`StoreError::Unavailable`] naming `what`.
    ///
    /// Every store operation is idempotent, so one that fails on a shared connection broken since
    /// its last use (Redis restarted, failed over) is retried once on a new connection: callers
    /// only see failures while Redis is really away. A `READONLY` refusal counts as broken: the
    /// node was demoted, and a new connection asks the Sentinels for the new primary
    /// (docs/design.md §9).
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = ::redis::RedisResult<T>>,
    {
        let attempt = async {
            let (c, reused) = self.connection().await?;
            match op(c).await {
                Ok(value) => Ok(value),
                Err(e) if reused && is_connection_error(&e) => {
                    self.lock(&self.shared).take();
                    let (c, _) = self.connection().await?;
                    op(c).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        };
        let why = match tokio::time::timeout(OP_TIMEOUT, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(why)) => why,
            Err(_) => format!("no answer within {OP_TIMEOUT:?}"),
        };
        self.lock(&self.shared).take();
        tracing::warn!(redis = %self.addr, "{what} failed: {why}");
        Err(StoreError::Unavailable(format!(
            "Redis at {}: {what}: {why}",
            self.addr
        )))
    }

    /// The primary holding the fleet's keys on `c`, asking the cluster which node serves the
    /// slot; the last known one otherwise.
    async fn current_primary(&self, c: &mut Conn) -> Result<String, String> {
        if matches!(self.topology, Topology::Cluster { .. }) {
            let primary = conn::slot_primary(c, &self.index).await?;
            self.lock(&self.primary).clone_from(&primary);
            return Ok(primary);
        }
        Ok(self.lock(&self.primary).clone())
    }

    /// The full name of key `{kind}:{id}`.
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// The default backend's id, or `""` when there is none (the scripts' convention).
    fn default_id(&self) -> &str {
        self.config
            .default_backend
            .as_ref()
            .map_or("", |d| d.id.as_str())
    }

    /// The origin with `id` from its JSON record, or the default backend for an empty record.
    fn decode_origin(&self, id: &str, json: &str) -> Result<OriginInfo, StoreError> {
        match &self.config.default_backend {
            Some(d) if json.is_empty() && d.id == id => Ok(d.clone()),
            _ => serde_json::from_str(json).map_err(|e| {
                StoreError::Unavailable(format!("corrupt record of origin {id} in Redis: {e}"))
            }),
        }
    }

    /// Stores `value` as JSON at `key` for `ttl`.
    async fn put_json<T: serde::Serialize + Sync>(
        &self,
        key: String,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode {key}: {e}")))?;
        let (key, json) = (&key, &json);
        self.call("SET", |mut c| async move {
            ::redis::cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// The JSON value at `key`, if any, its expiry moved to `ttl` from now.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        ttl: Duration,
    ) -> Result<Option<T>, StoreError> {
        let json: Option<String> = self
            .call("GETEX", |mut c| {
                let key = &key;
                async move {
                    ::redis::cmd("GETEX")
                        .arg(key)
                        .arg("PX")
                        .arg(millis(ttl))
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| StoreError::Unavailable(format!("corrupt record {key} in Redis: {e}")))
        })
        .transpose()
    }
}

/// Whether `e` says the connection is broken, or its node was demoted to a replica
/// (`READONLY`), rather than Redis refusing the command.
fn is_connection_error(e: &::redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
}

/// `d` in whole milliseconds, at least 1 (Redis refuses a zero expiry).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One row of the origins script: id, heartbeat age (ms), JSON, aside (`''`, `probe` or `1`),
/// leases, endpoint kinds held down (`,rtmp,http,` or `''`).
type OriginRow = (String, i64, String, String, i64, String);

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn register(&self, info: OriginInfo) -> Result<Registered, StoreError> {
        let json = serde_json::to_string(&info).map_err(|e| {
            StoreError::Unavailable(format!("cannot encode origin {}: {e}", info.id))
        })?;
        let endpoints = endpoints_fingerprint(&info);
        let hold = self.config.probe_hold.map_or(0, millis);
        let (info, json, endpoints) = (&info, &json, &endpoints);
        let (replaced, fresh, unverified): (String, i64, i64) = self
            .call("register", |mut c| async move {
                self.scripts
                    .register
                    .key(&self.index)
                    .arg(&self.prefix)
                    .arg(&info.id)
                    .arg(&info.server)
                    .arg(json)
                    .arg(millis(self.config.alive))
                    .arg(endpoints)
                    .arg(hold)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if !replaced.is_empty() {
            tracing::info!(old = %replaced, new = %info.id, "origin restarted; dropping its streams");
        }
        if fresh == 1 {
            tracing::info!(origin = %info.id, rtmp = ?info.rtmp, "origin registered");
        }
        Ok(Registered {
            unverified: unverified == 1,
        })
    }

    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError> {
        let default_offers = self
            .config
            .default_backend
            .as_ref()
            .is_some_and(|d| d.has(protocol));
        let seed: u32 = rand::random();
        let (kind, id, json): (String, String, String) = self
            .call("pick", |mut c| async move {
                let mut invocation = self.scripts.pick.key(&self.index);
                invocation
                    .arg(&self.prefix)
                    .arg(key.to_string())
                    .arg(millis(self.config.lease))
                    .arg(millis(self.config.alive))
                    .arg(seed)
                    .arg(self.default_id())
                    .arg(if default_offers { "1" } else { "0" })
                    .arg(
                        self.config
                            .load_limit
                            .map(|l| l.to_string())
                            .unwrap_or_default(),
                    );
                for field in protocol.required_endpoints() {
                    invocation.arg(*field);
                }
                invocation.invoke_async(&mut c).await
            })
            .await?;
        match kind.as_str() {
            "owner" => self.decode_origin(&id, &json),
            "new" => {
                tracing::debug!(stream = %key, origin = %id, "stream assigned");
                self.decode_origin(&id, &json)
            }
            "lacks" => Err(StoreError::OwnerLacksProtocol {
                owner: id,
                protocol,
            }),
            "none" => Err(StoreError::NoOrigin { protocol }),
            other => Err(StoreError::Unavailable(format!(
                "unexpected answer {other:?} from the pick script"
            ))),
        }
    }

    async fn origins(&self) -> Result<Vec<OriginStatus>, StoreError> {
        let rows: Vec<OriginRow> = self
            .call("origins", |mut c| async move {
                self.scripts
                    .origins
                    .key(&self.index)
                    .arg(&self.prefix)
                    .arg(millis(self.config.alive))
                    .arg(self.default_id())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut list = Vec::with_capacity(rows.len());
        for (id, age_ms, json, aside, streams, down) in rows {
            let is_default = json.is_empty() && id == self.default_id();
            list.push(OriginStatus {
                info: self.decode_origin(&id, &json)?,
                age_ms: u64::try_from(age_ms).unwrap_or(0),
                // The script lists only origins whose record has not expired.
                alive: true,
                aside: !aside.is_empty(),
                unverified: aside == "probe",
                down: down
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect(),
                streams: usize::try_from(streams).unwrap_or(0),
                is_default,
            });
        }
        // The default backend first, then by id.
        list.sort_by(|a, b| (!a.is_default, &a.info.id).cmp(&(!b.is_default, &b.info.id)));
        Ok(list)
    }

    async fn set_aside(&self, origin_id: &str, duration: Duration) -> Result<(), StoreError> {
        let known: i64 = self
            .call("set_aside", |mut c| async move {
                self.scripts
                    .set_aside
                    .key(&self.index)
                    .arg(&self.prefix)
                    .arg(origin_id)
                    .arg(millis(duration))
                    .arg(self.default_id())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if known == 1 {
            tracing::warn!(origin = %origin_id, ?duration, "origin set aside after a failed dial");
        }
        Ok(())
    }

    async fn probe_result(&self, origin_id: &str, down: &[&str]) -> Result<(), StoreError> {
        let Some(hold) = self.config.probe_hold else {
            return Ok(());
        };
        let down = if down.is_empty() {
            String::new()
        } else {
            format!(",{},", down.join(","))
        };
        let down = &down;
        let changed: i64 = self
            .call("probe", |mut c| async move {
                self.scripts
                    .probe
                    .key(&self.index)
                    .arg(&self.prefix)
                    .arg(origin_id)
                    .arg(millis(hold))
                    .arg(down)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if changed == 1 {
            tracing::info!(origin = %origin_id, %down, "origin probed; now a candidate");
        }
        Ok(())
    }

    async fn refresh_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError> {
        self.lease_batch("refresh_leases", &self.scripts.refresh, leases)
            .await
    }

    async fn claim_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError> {
        self.lease_batch("claim_leases", &self.scripts.claim, leases)
            .await
    }

    async fn health(&self) -> StoreHealth {
        let check = async {
            let (mut c, _) = self.connection().await?;
            if matches!(c, Conn::Node(_)) {
                // A demoted primary still answers PING; only a primary takes the writes.
                let role: Vec<::redis::Value> = ::redis::cmd("ROLE")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                match role.first() {
                    Some(::redis::Value::BulkString(r)) if r.as_slice() == b"master" => {}
                    _ => return Err("the node is not a primary".to_string()),
                }
            } else {
                ::redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.current_primary(&mut c).await
        };
        let outcome = match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
        };
        let up = match outcome {
            Ok(_) => true,
            Err(why) => {
                self.lock(&self.shared).take();
                tracing::warn!(redis = %self.addr, "health check failed: {why}");
                false
            }
        };
        StoreHealth {
            mode: self.topology.mode(),
            primary: self.lock(&self.primary).clone(),
            up,
        }
    }

    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let ttl = self.config.session_alive(record.kind);
        self.put_json(self.key(record.kind.as_str(), &record.id), record, ttl)
            .await
    }

    async fn get_session(
        &self,
        kind: SessionKind,
        id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let key = self.key(kind.as_str(), id);
        let record: Option<SessionRecord> = self
            .get_json(key.clone(), self.config.session_alive(kind))
            .await?;
        match record {
            Some(r) if r.kind != kind || r.id != id => Err(StoreError::Unavailable(format!(
                "corrupt record {key} in Redis: it holds {} session {}",
                r.kind, r.id
            ))),
            other => Ok(other),
        }
    }

    async fn delete_session(&self, kind: SessionKind, id: &str) -> Result<(), StoreError> {
        let key = self.key(kind.as_str(), id);
        let key = &key;
        self.call("DEL", |mut c| async move {
            ::redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
        })
        .await
    }
}
