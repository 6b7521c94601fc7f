//! Highly available Redis for the store's failover tests: a Sentinel-managed primary and
//! replica ([`RedisSentinels`]) and a Redis Cluster ([`RedisCluster`]), built from [`Redis`]
//! launchers (free ports with retry, killed on drop, logs in temp dirs kept on failure).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::FromRedisValue;

use crate::{on_free_port, Error, Proc, Redis, TempDir};

/// How long a set may take to become ready: replicas synced, Sentinels aware of each other.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound on every connection and reply of the checks.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one command on the server at 127.0.0.1:`port`.
///
/// Errors: what the connection or the server said, as text.
pub fn redis_query<T: FromRedisValue>(port: u16, args: &[&str]) -> Result<T, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("port {port}: {e}"))?;
    let mut c = client
        .get_connection_with_timeout(QUERY_TIMEOUT)
        .map_err(|e| format!("port {port}: {e}"))?;
    c.set_read_timeout(Some(QUERY_TIMEOUT))
        .and_then(|()| c.set_write_timeout(Some(QUERY_TIMEOUT)))
        .map_err(|e| format!("port {port}: {e}"))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c).map_err(|e| format!("port {port}: {e}"))
}

/// The `field:value` lines of an `INFO` reply as a map.
fn info(port: u16, section: &str) -> Result<HashMap<String, String>, String> {
    let text: String = redis_query(port, &["INFO", section])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// Polls `check` every 50 ms until it returns a value; after `limit`, the last reason it gave.
fn poll<T>(
    name: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, Error> {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(why) if Instant::now() >= deadline => {
                return Err(Error::NotReady {
                    name: name.to_string(),
                    why: format!("not within {limit:?}: {why}"),
                    log_tail: String::new(),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A primary, one replica and three Sentinels (quorum 2) monitoring them as [`Self::MASTER`],
/// all on 127.0.0.1, quick to fail over: a primary that does not answer for 1 s is down.
pub struct RedisSentinels {
    /// The two data nodes; which one is primary changes with failovers.
    nodes: Vec<Redis>,
    sentinels: Vec<Redis>,
}

impl RedisSentinels {
    /// The name the Sentinels monitor the primary under.
    pub const MASTER: &'static str = "mymaster";

    /// Starts the set; returns once the replica is in sync and every Sentinel knows the replica
    /// and the two other Sentinels (so a failover can be agreed on at once).
    pub fn start() -> RedisSentinels {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisSentinels::start`], returning the failure.
    pub fn try_start() -> Result<RedisSentinels, Error> {
        let primary = Redis::try_start_with(&[])?;
        let replica_of = primary.port.to_string();
        let replica = Redis::try_start_with(&["--replicaof", "127.0.0.1", &replica_of])?;
        let conf = format!(
            "sentinel monitor {m} 127.0.0.1 {p} 2\n\
             sentinel down-after-milliseconds {m} 1000\n\
             sentinel failover-timeout {m} 1500\n",
            m = Self::MASTER,
            p = primary.port
        );
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(on_free_port("redis-sentinel", |port| {
                Redis::try_start_as(port, Some(conf.clone()), false, &["--sentinel"])
            })?);
        }
        let set = RedisSentinels {
            nodes: vec![primary, replica],
            sentinels,
        };
        poll("Redis replica", READY_TIMEOUT, || {
            let link = info(set.nodes[1].port, "replication")?;
            match link.get("master_link_status").map(String::as_str) {
                Some("up") => Ok(()),
                other => Err(format!("master_link_status {other:?}")),
            }
        })?;
        for s in &set.sentinels {
            poll("Redis Sentinel", READY_TIMEOUT, || {
                let m: HashMap<String, String> =
                    redis_query(s.port, &["SENTINEL", "MASTER", Self::MASTER])?;
                let n = |k: &str| m.get(k).cloned().unwrap_or_default();
                if n("num-slaves") == "1" && n("num-other-sentinels") == "2" {
                    Ok(())
                } else {
                    Err(format!(
                        "{} replicas, {} other Sentinels known",
                        n("num-slaves"),
                        n("num-other-sentinels")
                    ))
                }
            })?;
        }
        Ok(set)
    }

    /// The Sentinels' `127.0.0.1:port` addresses.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Redis::addr).collect()
    }

    /// The port of the primary the first answering Sentinel names.
    ///
    /// Errors: the last Sentinel's reason when none answers.
    pub fn primary_port(&self) -> Result<u16, String> {
        let mut why = String::from("no Sentinel");
        for s in &self.sentinels {
            match redis_query::<(String, u16)>(
                s.port,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER],
            ) {
                Ok((_, port)) => return Ok(port),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// SIGKILLs the current primary; returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().unwrap_or_else(|e| panic!("{e}"));
        for node in &mut self.nodes {
            if node.port == port {
                node.stop();
            }
        }
        port
    }

    /// Waits up to `limit` until the Sentinels name a primary other than `old` that calls
    /// itself primary; returns its port.
    pub fn wait_promoted(&self, old: u16, limit: Duration) -> u16 {
        poll("Sentinel failover", limit, || {
            let port = self.primary_port()?;
            if port == old {
                return Err(format!("the Sentinels still name {old}"));
            }
            let role: Vec<redis::Value> = redis_query(port, &["ROLE"])?;
            match role.first() {
                Some(redis::Value::BulkString(r)) if r.as_slice() == b"master" => Ok(port),
                _ => Err(format!("{port} is not primary yet")),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A Redis Cluster of three primaries with one replica each, on 127.0.0.1, made with
/// `redis-cli --cluster create`; a node silent for 1 s (`cluster-node-timeout`) fails over.
pub struct RedisCluster {
    nodes: Vec<Redis>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the six nodes and creates the cluster; returns once every node says
    /// `cluster_state:ok` and every replica is in sync.
    pub fn start() -> RedisCluster {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisCluster::start`], returning the failure.
    pub fn try_start() -> Result<RedisCluster, Error> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(on_free_port("redis-server (cluster)", |port| {
                Redis::try_start_as(
                    port,
                    None,
                    true,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })?);
        }
        let dir = TempDir::try_new("redis-cluster")?;
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        cmd.args(nodes.iter().map(Redis::addr));
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let mut create = Proc::try_spawn("redis-cli-cluster-create", cmd, &dir)?;
        match create.wait_exit(READY_TIMEOUT) {
            Some(status) if status.success() => {}
            outcome => {
                return Err(Error::NotReady {
                    name: "redis-cli --cluster create".into(),
                    why: format!("ended with {outcome:?}"),
                    log_tail: create.log_tail(20),
                })
            }
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        for node in &cluster.nodes {
            poll("Redis Cluster node", READY_TIMEOUT, || {
                let state = info_cluster(node.port)?;
                let repl = info(node.port, "replication")?;
                let synced = repl.get("role").map(String::as_str) == Some("master")
                    || repl.get("master_link_status").map(String::as_str) == Some("up");
                if state == "ok" && synced {
                    Ok(())
                } else {
                    Err(format!("cluster_state {state}, replica synced {synced}"))
                }
            })?;
        }
        Ok(cluster)
    }

    /// Every node's `127.0.0.1:port` address.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::addr).collect()
    }

    /// The port of the primary serving `key`'s hash slot, asked of the running nodes.
    ///
    /// Errors: the last node's reason when none tells.
    pub fn primary_of(&mut self, key: &str) -> Result<u16, String> {
        let mut why = String::from("no node runs");
        for node in self
            .nodes
            .iter_mut()
            .filter_map(|n| n.running().then_some(&*n))
        {
            match slot_primary(node.port, key) {
                Ok(port) => return Ok(port),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        for node in &mut self.nodes {
            if node.port == port {
                node.stop();
            }
        }
    }

    /// Waits up to `limit` until a node other than `old` is primary of `key`'s slot and the
    /// cluster is `ok` again; returns its port.
    pub fn wait_promoted(&mut self, key: &str, old: u16, limit: Duration) -> u16 {
        let deadline = Instant::now() + limit;
        loop {
            let outcome = self.primary_of(key).and_then(|port| {
                if port == old {
                    return Err(format!("{old} still serves the slot"));
                }
                match info_cluster(port)?.as_str() {
                    "ok" => Ok(port),
                    state => Err(format!("cluster_state {state} on {port}")),
                }
            });
            match outcome {
                Ok(port) => return port,
                Err(why) if Instant::now() >= deadline => {
                    panic!("no failover of {key:?} within {limit:?}: {why}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The `cluster_state` of the node on `port`.
fn info_cluster(port: u16) -> Result<String, String> {
    let text: String = redis_query(port, &["CLUSTER", "INFO"])?;
    text.lines()
        .find_map(|l| l.strip_prefix("cluster_state:"))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| format!("port {port}: no cluster_state"))
}

/// The primary's port for `key`'s slot, as the node on `port` sees it.
fn slot_primary(port: u16, key: &str) -> Result<u16, String> {
    let slot: i64 = redis_query(port, &["CLUSTER", "KEYSLOT", key])?;
    let ranges: Vec<redis::Value> = redis_query(port, &["CLUSTER", "SLOTS"])?;
    for range in ranges {
        // [start, end, [host, port, id], replicas...]
        let parsed: Result<(i64, i64, (String, u16)), _> = match range {
            redis::Value::Array(f) if f.len() >= 3 => {
                let primary = match &f[2] {
                    redis::Value::Array(p) if p.len() >= 2 => {
                        redis::Value::Array(vec![p[0].clone(), p[1].clone()])
                    }
                    _ => continue,
                };
                FromRedisValue::from_redis_value(redis::Value::Array(vec![
                    f[0].clone(),
                    f[1].clone(),
                    primary,
                ]))
            }
            _ => continue,
        };
        if let Ok((start, end, (_, primary))) = parsed {
            if (start..=end).contains(&slot) {
                return Ok(primary);
            }
        }
    }
    Err(format!("port {port}: no primary for slot {slot}"))
}
