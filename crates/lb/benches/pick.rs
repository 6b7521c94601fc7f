//! `cargo bench -p srs-lb --bench pick`: latency and throughput of `Store::pick` for the memory
//! and Redis stores (the latter on its own `redis-server`), for a stream that is already owned
//! (the common case) and for new streams (an assignment among 10 origins).
//!
//! Latency is measured one pick at a time; picks/s with `CONCURRENCY` picks in flight.

// Shared with the tests, which use more of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;
use support::Settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_cluster::{OriginInfo, Protocol, StreamKey};
use srs_lb::{MemoryStore, RedisStore, Store, StoreConfig};

const ORIGINS: usize = 10;
const CONCURRENCY: usize = 32;

fn origin(i: usize) -> OriginInfo {
    let ip = format!("10.0.0.{i}");
    OriginInfo {
        rtmp: vec![format!("{ip}:1935")],
        http: vec![format!("{ip}:8080")],
        ..OriginInfo::new(&ip, &format!("origin{i}"), "svc", "1")
    }
}

fn stream(name: String) -> StreamKey {
    StreamKey {
        vhost: "__defaultVhost__".into(),
        app: "live".into(),
        stream: name,
    }
}

fn config() -> StoreConfig {
    StoreConfig::new(Duration::from_secs(600), None)
}

/// Picks `n` streams named by `name(i)` one at a time; returns (p50 µs, p99 µs).
async fn latency(store: &dyn Store, n: usize, name: impl Fn(usize) -> String) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let key = stream(name(i));
        let started = Instant::now();
        if let Err(e) = store.pick(&key, Protocol::Rtmp).await {
            panic!("pick failed: {e}");
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// Picks `n` streams named by `name(i)` with `CONCURRENCY` in flight; returns picks/s.
async fn throughput(
    store: Arc<dyn Store>,
    n: usize,
    name: impl Fn(usize) -> String + Send + Sync + Clone + 'static,
) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (store, name) = (Arc::clone(&store), name.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(CONCURRENCY) {
                    if let Err(e) = store.pick(&stream(name(i)), Protocol::Rtmp).await {
                        panic!("pick failed: {e}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn bench(label: &str, store: Arc<dyn Store>, n: usize) {
    for i in 0..ORIGINS {
        store.register(origin(i)).await.expect("register");
    }
    store
        .pick(&stream("owned".into()), Protocol::Rtmp)
        .await
        .expect("first pick");
    let (p50, p99) = latency(&*store, n, |_| "owned".into()).await;
    let rate = throughput(Arc::clone(&store), n, |_| "owned".into()).await;
    println!("| {label:<6} | owned stream | {p50:>9.1} | {p99:>9.1} | {rate:>10.0} |");
    let (p50, p99) = latency(&*store, n, |i| format!("seq{i}")).await;
    let rate = throughput(store, n, |i| format!("par{i}")).await;
    println!("| {label:<6} | new stream   | {p50:>9.1} | {p99:>9.1} | {rate:>10.0} |");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        println!(
            "pick over {ORIGINS} origins; picks/s with {CONCURRENCY} in flight; Redis on loopback\n"
        );
        println!("| store  | case         | p50 (µs)  | p99 (µs)  | picks/s    |");
        println!("|--------|--------------|-----------|-----------|------------|");
        bench(
            "memory",
            Arc::new(MemoryStore::with_config(config())),
            100_000,
        )
        .await;
        let server = support::RedisServer::start();
        let store = RedisStore::connect(server.settings(), config())
            .await
            .expect("connect to the bench redis-server");
        bench("redis", Arc::new(store), 10_000).await;
    });
}
