//! What the workspace's tests and benchmark need to drive real programs: child processes that
//! never outlive the test ([`Proc`]), workspace binaries built on demand ([`binary`]), free
//! ports for servers that cannot take port 0 ([`on_free_port`]), temporary directories kept
//! when a test fails ([`TempDir`]), a real `redis-server` ([`Redis`]), a Sentinel-managed pair
//! ([`RedisSentinels`]) and a Redis Cluster ([`RedisCluster`]), ffmpeg/ffprobe helpers
//! ([`media`]) and Prometheus text reading ([`metric`]).

mod bin;
mod error;
pub mod media;
mod metrics;
mod port;
mod process;
mod redis;
mod redis_ha;
mod tempdir;

use std::time::{Duration, Instant};

pub use bin::binary;
pub use error::Error;
pub use metrics::metric;
pub use port::{free_port, listens_on, on_free_port, PORT_TRIES};
pub use process::{drain, read_listening, send_signal, Proc};
pub use redis::Redis;
pub use redis_ha::{redis_query, RedisCluster, RedisSentinels};
pub use tempdir::TempDir;

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
