//! The three ways the Redis store reaches its data (docs/design.md §9): one node, the primary a
//! set of Sentinels names, or a Redis Cluster.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use ::redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisFuture, Value,
};
use deadpool_redis::{Manager, Pool, Runtime};

/// Connections in the single-node pool; calls share one multiplexed connection, so few are
/// needed.
const POOL_SIZE: usize = 4;

/// Where the data lives besides [`super::RedisSettings`]'s host and port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Topology {
    /// One node at `host:port` (PROXY_REDIS_HOST, _PORT).
    #[default]
    Single,
    /// The primary the Sentinels name, looked up again after every failure, so a failover is
    /// followed without a restart (PROXY_REDIS_SENTINEL_ADDRS, _MASTER, _PASSWORD).
    Sentinel {
        /// The Sentinels' `(host, port)`, asked in this order.
        sentinels: Vec<(String, u16)>,
        /// The monitored primary's name (`sentinel monitor <name> ...`).
        master: String,
        /// `AUTH` password of the Sentinels; empty for none. The data nodes use
        /// [`super::RedisSettings::password`].
        password: String,
    },
    /// A Redis Cluster found through these seed nodes' `(host, port)`; every key carries the
    /// fleet's hash tag, so all of them live in one slot (PROXY_REDIS_CLUSTER_ADDRS).
    Cluster {
        /// Seed nodes; any reachable one reveals the rest.
        nodes: Vec<(String, u16)>,
    },
}

impl Topology {
    /// `redis`, `sentinel` or `cluster`: the `mode` of [`crate::StoreHealth`].
    pub fn mode(&self) -> &'static str {
        match self {
            Topology::Single => "redis",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }
}

/// `host:port`, `[host]:port` for an IPv6 address.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A connection of any mode: a handle on a multiplexed socket, cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    /// To one node (single, or the primary Sentinel named).
    Node(MultiplexedConnection),
    /// To a cluster: routes each command by its first key, follows MOVED and ASK.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens new connections in the configured mode.
pub(crate) enum Connector {
    /// A deadpool pool on the one node; it checks an idle connection with a `PING`.
    Single(Pool),
    /// Asks the Sentinels for the primary on every new connection.
    Sentinel {
        /// Sentinel keeps its connections to the Sentinels, hence `&mut` and the lock.
        sentinel: tokio::sync::Mutex<Sentinel>,
        master: String,
        node: SentinelNodeConnectionInfo,
        config: AsyncConnectionConfig,
    },
    /// A cluster client; each connection discovers the slots from the seed nodes.
    Cluster(ClusterClient),
}

/// Timeouts of a new connection: `open` for the dial and the handshake, `answer` per reply.
#[derive(Clone, Copy)]
pub(crate) struct Timeouts {
    pub open: Duration,
    pub answer: Duration,
}

impl Connector {
    /// A connector for `topology`; `host`, `port`, `password` and `db` are
    /// [`super::RedisSettings`]'s.
    ///
    /// Errors: the reason, when a setting cannot make a connection (e.g. a database other
    /// than 0 on a cluster).
    pub(crate) fn new(
        topology: &Topology,
        (host, port): (&str, u16),
        password: &str,
        db: u32,
        timeouts: Timeouts,
    ) -> Result<Connector, String> {
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(db));
        if !password.is_empty() {
            redis = redis.set_password(password);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.open))
            .set_response_timeout(Some(timeouts.answer));
        match topology {
            Topology::Single => {
                let info = tcp_info(host, port)?.set_redis_settings(redis);
                let manager = Manager::new_with_config(info, config).map_err(|e| e.to_string())?;
                let pool = Pool::builder(manager)
                    .max_size(POOL_SIZE)
                    .wait_timeout(Some(timeouts.open))
                    .create_timeout(Some(timeouts.open))
                    .recycle_timeout(Some(timeouts.open))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Connector::Single(pool))
            }
            Topology::Sentinel {
                sentinels,
                master,
                password: sentinel_password,
            } => {
                let mut auth = RedisConnectionInfo::default();
                if !sentinel_password.is_empty() {
                    auth = auth.set_password(sentinel_password);
                }
                let infos = sentinels
                    .iter()
                    .map(|(h, p)| Ok(tcp_info(h, *p)?.set_redis_settings(auth.clone())))
                    .collect::<Result<Vec<_>, String>>()?;
                let sentinel = Sentinel::build(infos).map_err(|e| e.to_string())?;
                Ok(Connector::Sentinel {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    master: master.clone(),
                    node: SentinelNodeConnectionInfo::default().set_redis_connection_info(redis),
                    config,
                })
            }
            Topology::Cluster { nodes } => {
                if db != 0 {
                    return Err(format!("a Redis Cluster has database 0 only, not {db}"));
                }
                let seeds = nodes
                    .iter()
                    .map(|(h, p)| tcp_info(h, *p))
                    .collect::<Result<Vec<_>, String>>()?;
                let mut builder = ClusterClientBuilder::new(seeds)
                    .connection_timeout(timeouts.open)
                    .response_timeout(timeouts.answer);
                if !password.is_empty() {
                    builder = builder.password(password);
                }
                let client = builder.build().map_err(|e| e.to_string())?;
                Ok(Connector::Cluster(client))
            }
        }
    }

    /// A new connection and the address of the node it writes to (`None` for a cluster, whose
    /// primary depends on the slot: see [`slot_primary`]).
    pub(crate) async fn connect(&self) -> Result<(Conn, Option<String>), String> {
        match self {
            Connector::Single(pool) => {
                let pooled = pool.get().await.map_err(|e| e.to_string())?;
                // A multiplexed connection is a handle on one socket: the clone serves any
                // number of callers, and the pooled object goes back to be health-checked.
                let c = MultiplexedConnection::clone(&pooled);
                Ok((Conn::Node(c), None))
            }
            Connector::Sentinel {
                sentinel,
                master,
                node,
                config,
            } => {
                // The lookup checks that the named node calls itself primary (`ROLE`), so a
                // demoted primary a Sentinel still names is not taken.
                let client = sentinel
                    .lock()
                    .await
                    .async_master_for(master, Some(node))
                    .await
                    .map_err(|e| format!("Sentinel lookup of {master:?}: {e}"))?;
                let addr = client.get_connection_info().addr().to_string();
                let c = client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
                    .map_err(|e| format!("primary {addr}: {e}"))?;
                Ok((Conn::Node(c), Some(addr)))
            }
            Connector::Cluster(client) => {
                let c = client
                    .get_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((Conn::Cluster(c), None))
            }
        }
    }
}

fn tcp_info(host: &str, port: u16) -> Result<ConnectionInfo, String> {
    ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()
        .map_err(|e| e.to_string())
}

/// The `host:port` of the cluster primary serving `key`'s slot, from `CLUSTER SLOTS`.
///
/// Errors: the reason, when the cluster does not answer or no range holds the slot.
pub(crate) async fn slot_primary(c: &mut Conn, key: &str) -> Result<String, String> {
    let slot: i64 = ::redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    let ranges: Vec<Value> = ::redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    // Each range is [start, end, [host, port, id, ...] of the primary, replicas...].
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        if !(*start..=*end).contains(&slot) {
            continue;
        }
        if let (Some(host), Some(Value::Int(port))) = (primary.first(), primary.get(1)) {
            let host = match host {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => continue,
            };
            let port = u16::try_from(*port).map_err(|_| format!("bad port {port}"))?;
            return Ok(host_port(&host, port));
        }
    }
    Err(format!("no primary serves slot {slot}"))
}
