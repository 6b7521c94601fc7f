//! The contract of [`Store`] (docs/design.md §5, §9), run against both
//! implementations and every Redis mode: each test function takes a [`Backend`] and runs once as
//! `memory::NAME` and once as `redis_store::NAME`, the latter on its own real `redis-server`;
//! `sentinel::contract_then_failover` and `cluster::contract_then_failover` run them all in turn
//! on one Sentinel-managed pair or one Redis Cluster (a fresh key prefix each), then fail the
//! primary over and run the pick, lease and session cases again. Redis-only tests (races
//! between proxies, faults, settings) follow in `redis_only`.
//!
//! Time is real (Redis keeps its own clock), so durations are short but keep margins of at least
//! a quarter of a second for loaded machines.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_cluster::{OriginInfo, Protocol, StreamKey};
use srs_lb::{
    MemoryStore, RedisSettings, RedisStore, SessionKind, SessionRecord, Store, StoreConfig,
    StoreError, Topology,
};
use srs_test_support::{RedisCluster, RedisSentinels};
use support::{RedisServer, Settings};
use tokio::time::sleep;

/// Long enough that nothing dies by accident during a test.
const LONG: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum Backend {
    Memory,
    /// A fresh `redis-server` for each store.
    Redis,
    /// A Sentinel set or a cluster shared by the tests run in turn on it: each store gets a key
    /// prefix of its own from `prefixes`.
    Shared {
        settings: RedisSettings,
        prefixes: Arc<dyn Fn() -> String + Send + Sync>,
    },
}

/// A store under test, and the Redis server behind it, if any.
struct Harness {
    store: Arc<dyn Store>,
    _server: Option<RedisServer>,
}

impl std::ops::Deref for Harness {
    type Target = dyn Store;
    fn deref(&self) -> &dyn Store {
        &*self.store
    }
}

impl Backend {
    async fn open(&self, config: StoreConfig) -> Harness {
        match self {
            Backend::Memory => Harness {
                store: Arc::new(MemoryStore::with_config(config)),
                _server: None,
            },
            Backend::Redis => {
                let server = RedisServer::start();
                let store = RedisStore::connect(server.settings(), config)
                    .await
                    .expect("connect to the test redis-server");
                Harness {
                    store: Arc::new(store),
                    _server: Some(server),
                }
            }
            Backend::Shared { settings, prefixes } => {
                let settings = RedisSettings {
                    prefix: prefixes(),
                    ..settings.clone()
                };
                let store = RedisStore::connect(settings, config)
                    .await
                    .expect("connect to the test Redis set");
                Harness {
                    store: Arc::new(store),
                    _server: None,
                }
            }
        }
    }
}

/// `test-N:` prefixes, N counting up.
fn numbered_prefixes() -> Arc<dyn Fn() -> String + Send + Sync> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("test-{n}:")
    })
}

/// Settings of a store on `nodes` of `topology` (default prefix, no password).
fn ha_settings(topology: Topology) -> RedisSettings {
    RedisSettings {
        topology,
        ..RedisSettings::default()
    }
}

/// `127.0.0.1:port` strings as `(host, port)` pairs.
fn pairs(addrs: &[String]) -> Vec<(String, u16)> {
    addrs
        .iter()
        .map(|a| {
            let (host, port) = a.rsplit_once(':').expect("host:port");
            (host.to_string(), port.parse().expect("port"))
        })
        .collect()
}

/// Settings with every lifetime `LONG` except those a test overrides.
fn config() -> StoreConfig {
    StoreConfig {
        alive: LONG,
        lease: LONG,
        hls_alive: LONG,
        rtc_alive: LONG,
        default_backend: None,
        load_limit: None,
        probe_hold: None,
    }
}

/// An origin `server/svc/pid` offering RTMP and HTTP.
fn origin(server: &str, pid: &str) -> OriginInfo {
    let ip = "10.0.0.1";
    OriginInfo {
        rtmp: vec![format!("{ip}:1935")],
        http: vec![format!("{ip}:8080")],
        ..OriginInfo::new(ip, server, "svc", pid)
    }
}

fn stream(name: &str) -> StreamKey {
    StreamKey {
        vhost: "__defaultVhost__".into(),
        app: "live".into(),
        stream: name.into(),
    }
}

async fn pick_id(store: &dyn Store, name: &str, protocol: Protocol) -> String {
    match store.pick(&stream(name), protocol).await {
        Ok(info) => info.id,
        Err(e) => panic!("pick {name} over {protocol}: {e}"),
    }
}

/// `(id, streams)` of every live origin, as listed.
async fn loads(store: &dyn Store) -> Vec<(String, usize)> {
    let list = store.origins().await.expect("origins");
    list.into_iter()
        .filter(|s| s.alive)
        .map(|s| (s.info.id, s.streams))
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        /// Every case in turn, named for failure messages.
        async fn all_cases(backend: &Backend) {
            $(
                eprintln!("contract case {}", stringify!($name));
                $name(backend.clone()).await;
            )*
        }

        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Memory).await
            })*
        }
        mod redis_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Redis).await
            })*
        }
    };
}

contract!(
    registration_and_sticky_owner,
    liveness_expires,
    capability_filtering,
    owner_lacking_protocol,
    fewest_streams_spreads_evenly,
    load_limit_steers_new_streams,
    dead_owner_is_replaced,
    restart_reassigns,
    set_aside_reassigns_and_expires,
    restarted_origin_is_not_aside,
    unverified_origins_wait_for_a_probe,
    leases_expire_unless_refreshed,
    expired_leases_stop_counting,
    publisher_claims_override_a_wrong_owner,
    hls_sessions,
    rtc_sessions,
    default_backend,
);

/// The cases that must pass again after a failover: picks, leases, sessions.
async fn after_failover_cases(backend: &Backend) {
    registration_and_sticky_owner(backend.clone()).await;
    leases_expire_unless_refreshed(backend.clone()).await;
    publisher_claims_override_a_wrong_owner(backend.clone()).await;
    hls_sessions(backend.clone()).await;
}

/// A store on a Redis set that registered an origin and picked stream `s` before a failover:
/// after it, the same store instance (no restart) answers again within `limit`, with the owner
/// it had. Returns how long calls failed.
async fn survives_failover(store: &RedisStore, limit: Duration, fail: impl FnOnce()) -> Duration {
    store.register(origin("a", "1")).await.unwrap();
    store.register(origin("b", "1")).await.unwrap();
    let owner = pick_id(store, "s", Protocol::Rtmp).await;
    // Let the replica receive the last writes: replication is asynchronous.
    sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    fail();
    loop {
        let call = Instant::now();
        match store.pick(&stream("s"), Protocol::Rtmp).await {
            Ok(info) => {
                assert_eq!(info.id, owner, "the owner survives the failover");
                break;
            }
            Err(StoreError::Unavailable(why)) => {
                // Fails fast while the store fails over.
                assert!(call.elapsed() < Duration::from_millis(2500), "{why}");
                assert!(
                    started.elapsed() < limit,
                    "not back within {limit:?}: {why}"
                );
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        sleep(Duration::from_millis(50)).await;
    }
    let gap = started.elapsed();
    // Writes work again: a script on the new primary (NOSCRIPT there: loaded again).
    store.register(origin("c", "1")).await.unwrap();
    pick_id(store, "t", Protocol::Rtmp).await;
    gap
}

mod sentinel {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contract_then_failover() {
        let mut set = RedisSentinels::start();
        let settings = ha_settings(Topology::Sentinel {
            sentinels: pairs(&set.sentinel_addrs()),
            master: RedisSentinels::MASTER.into(),
            password: String::new(),
        });
        let backend = Backend::Shared {
            settings: settings.clone(),
            prefixes: numbered_prefixes(),
        };
        all_cases(&backend).await;

        let store = RedisStore::connect(settings.clone(), config())
            .await
            .unwrap();
        let first = set.primary_port().unwrap();
        let health = store.health().await;
        assert_eq!(
            (health.mode, health.primary.as_str(), health.up),
            ("sentinel", format!("127.0.0.1:{first}").as_str(), true)
        );
        let mut killed = 0;
        let gap = survives_failover(&store, Duration::from_secs(15), || {
            killed = set.kill_primary();
        })
        .await;
        eprintln!("Sentinel failover (SIGKILL of the primary): calls failed for {gap:?}");
        let promoted = set.wait_promoted(killed, Duration::from_secs(5));
        let health = store.health().await;
        assert_eq!(health.primary, format!("127.0.0.1:{promoted}"));
        assert!(health.up);
        after_failover_cases(&backend).await;
    }
}

mod cluster {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contract_then_failover() {
        let mut cluster = RedisCluster::start();
        let settings = ha_settings(Topology::Cluster {
            nodes: pairs(&cluster.addrs()),
        });
        let backend = Backend::Shared {
            settings: settings.clone(),
            prefixes: numbered_prefixes(),
        };
        all_cases(&backend).await;

        // The default prefix is the hash tag `{srs-proxy}`: every key in one slot.
        let store = RedisStore::connect(settings.clone(), config())
            .await
            .unwrap();
        let slot_key = "{srs-proxy}:origins";
        let first = cluster.primary_of(slot_key).unwrap();
        let health = store.health().await;
        assert_eq!(
            (health.mode, health.primary.as_str(), health.up),
            ("cluster", format!("127.0.0.1:{first}").as_str(), true)
        );
        let gap = survives_failover(&store, Duration::from_secs(15), || cluster.kill(first)).await;
        eprintln!("Cluster failover (SIGKILL of the slot's primary): calls failed for {gap:?}");
        let promoted = cluster.wait_promoted(slot_key, first, Duration::from_secs(5));
        let health = store.health().await;
        assert_eq!(health.primary, format!("127.0.0.1:{promoted}"));

        // The cases again, on prefixes whose slot the promoted replica now serves.
        let mut on_promoted = Vec::new();
        for n in 0.. {
            let prefix = format!("after-{n}");
            if cluster
                .primary_of(&format!("{{{prefix}}}:origins"))
                .unwrap()
                == promoted
            {
                on_promoted.push(format!("{prefix}:"));
                if on_promoted.len() == 8 {
                    break;
                }
            }
        }
        let queue = std::sync::Mutex::new(on_promoted);
        let backend = Backend::Shared {
            settings,
            prefixes: Arc::new(move || {
                let mut q = queue.lock().unwrap();
                q.pop().expect("enough prefixes on the promoted node")
            }),
        };
        after_failover_cases(&backend).await;
    }
}

async fn registration_and_sticky_owner(backend: Backend) {
    let store = backend.open(config()).await;
    assert!(store.origins().await.unwrap().is_empty());
    store.register(origin("b", "1")).await.unwrap();
    store.register(origin("a", "1")).await.unwrap();
    // A heartbeat refreshes, it does not duplicate.
    store.register(origin("a", "1")).await.unwrap();
    let list = store.origins().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].info, origin("a", "1"));
    assert_eq!(list[1].info.id, "b/svc/1");
    for s in &list {
        assert!(s.alive && !s.aside && !s.is_default && s.streams == 0);
        assert!(s.age_ms < 5_000, "age {}", s.age_ms);
    }
    let first = pick_id(&*store, "s", Protocol::Rtmp).await;
    for _ in 0..10 {
        assert_eq!(pick_id(&*store, "s", Protocol::Http).await, first);
    }
}

async fn liveness_expires(backend: Backend) {
    let alive = Duration::from_millis(1000);
    let store = backend.open(StoreConfig { alive, ..config() }).await;
    store.register(origin("a", "1")).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
    sleep(Duration::from_millis(1300)).await;
    for name in ["s", "t"] {
        assert_eq!(
            store.pick(&stream(name), Protocol::Rtmp).await,
            Err(StoreError::NoOrigin {
                protocol: Protocol::Rtmp
            })
        );
    }
    // Listed as dead (memory) or not at all (Redis: the record expired).
    assert!(loads(&*store).await.is_empty());
    store.register(origin("a", "1")).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
}

async fn capability_filtering(backend: Backend) {
    let store = backend.open(config()).await;
    let mut rtmp_only = origin("a", "1");
    rtmp_only.http.clear();
    let mut rtc_without_api = origin("c", "1");
    rtc_without_api.rtc = vec!["10.0.0.1:8000".into()];
    let mut webrtc = origin("d", "1");
    webrtc.http.clear();
    webrtc.api = vec!["10.0.0.1:1985".into()];
    webrtc.rtc = vec!["10.0.0.1:8000".into()];
    for o in [&rtmp_only, &origin("b", "1"), &rtc_without_api, &webrtc] {
        store.register(o.clone()).await.unwrap();
    }
    for i in 0..6 {
        let id = pick_id(&*store, &format!("h{i}"), Protocol::Http).await;
        assert!(id == "b/svc/1" || id == "c/svc/1", "{id} has no http");
    }
    for i in 0..3 {
        assert_eq!(
            pick_id(&*store, &format!("w{i}"), Protocol::Rtc).await,
            "d/svc/1"
        );
    }
    assert_eq!(
        store.pick(&stream("x"), Protocol::Srt).await,
        Err(StoreError::NoOrigin {
            protocol: Protocol::Srt
        })
    );
}

async fn owner_lacking_protocol(backend: Backend) {
    let store = backend.open(config()).await;
    let mut rtmp_only = origin("a", "1");
    rtmp_only.http.clear();
    store.register(rtmp_only).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
    store.register(origin("b", "1")).await.unwrap();
    assert_eq!(
        store.pick(&stream("s"), Protocol::Http).await,
        Err(StoreError::OwnerLacksProtocol {
            owner: "a/svc/1".into(),
            protocol: Protocol::Http
        })
    );
    // The stream did not move.
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
}

async fn fewest_streams_spreads_evenly(backend: Backend) {
    let store = backend.open(config()).await;
    store.register(origin("a", "1")).await.unwrap();
    store.register(origin("b", "1")).await.unwrap();
    for i in 0..10 {
        pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await;
    }
    assert_eq!(
        loads(&*store).await,
        [("a/svc/1".to_string(), 5), ("b/svc/1".to_string(), 5)]
    );
    // A newcomer takes the next streams until it catches up.
    store.register(origin("c", "1")).await.unwrap();
    for i in 10..15 {
        assert_eq!(
            pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await,
            "c/svc/1"
        );
    }
    // Re-picking owned streams does not change the counts.
    for i in 0..15 {
        pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await;
    }
    let counts: Vec<usize> = loads(&*store).await.into_iter().map(|(_, n)| n).collect();
    assert_eq!(counts, [5, 5, 5]);
}

async fn load_limit_steers_new_streams(backend: Backend) {
    let config = StoreConfig {
        load_limit: Some(0.9),
        ..config()
    };
    let store = backend.open(config).await;
    let loaded = |server: &str, load: Option<f64>| OriginInfo {
        load,
        ..origin(server, "1")
    };
    store.register(loaded("a", Some(2.0))).await.unwrap();
    store.register(loaded("b", Some(0.5))).await.unwrap();
    // An origin that reports no load is not above the limit.
    store.register(loaded("c", None)).await.unwrap();
    for i in 0..6 {
        let id = pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await;
        assert_ne!(id, "a/svc/1", "overloaded origin chosen for s{i}");
    }
    // The fewest-streams rule applies among the rest.
    assert_eq!(
        loads(&*store).await,
        [
            ("a/svc/1".to_string(), 0),
            ("b/svc/1".to_string(), 3),
            ("c/svc/1".to_string(), 3)
        ]
    );
    let listed = store.origins().await.expect("origins");
    assert_eq!(listed[0].info.load, Some(2.0), "{listed:?}");

    // Every candidate above the limit: the choice still succeeds, by fewest streams.
    store.register(loaded("b", Some(1.5))).await.unwrap();
    store.register(loaded("c", Some(1.0))).await.unwrap();
    for i in 6..9 {
        assert_eq!(
            pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await,
            "a/svc/1"
        );
    }
    // Owned streams stay where they are whatever the loads.
    for i in 0..6 {
        pick_id(&*store, &format!("s{i}"), Protocol::Rtmp).await;
    }
    let counts: Vec<usize> = loads(&*store).await.into_iter().map(|(_, n)| n).collect();
    assert_eq!(counts, [3, 3, 3]);
}

async fn dead_owner_is_replaced(backend: Backend) {
    let alive = Duration::from_millis(1000);
    let store = backend.open(StoreConfig { alive, ..config() }).await;
    store.register(origin("a", "1")).await.unwrap();
    for name in ["s", "t"] {
        assert_eq!(pick_id(&*store, name, Protocol::Rtmp).await, "a/svc/1");
    }
    store.register(origin("b", "1")).await.unwrap();
    // Still alive: sticky, although b is emptier.
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
    // Only b keeps heartbeating.
    for _ in 0..3 {
        sleep(Duration::from_millis(450)).await;
        store.register(origin("b", "1")).await.unwrap();
    }
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "b/svc/1");
    assert_eq!(loads(&*store).await, [("b/svc/1".to_string(), 1)]);
    assert_eq!(pick_id(&*store, "t", Protocol::Rtmp).await, "b/svc/1");
}

async fn restart_reassigns(backend: Backend) {
    let store = backend.open(config()).await;
    store.register(origin("a", "1")).await.unwrap();
    store.register(origin("b", "1")).await.unwrap();
    let mut on_a = None;
    for i in 0..4 {
        let name = format!("s{i}");
        if pick_id(&*store, &name, Protocol::Rtmp).await == "a/svc/1" {
            on_a = Some(name);
        }
    }
    let on_a = on_a.expect("fewest-streams puts two of four streams on a");
    store.register(origin("a", "2")).await.unwrap();
    let listed: Vec<String> = loads(&*store).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed, ids(&["a/svc/2", "b/svc/1"]));
    // b holds 2 streams, the restarted a none: the orphan goes to the new a.
    assert_eq!(pick_id(&*store, &on_a, Protocol::Rtmp).await, "a/svc/2");
}

async fn set_aside_reassigns_and_expires(backend: Backend) {
    let store = backend.open(config()).await;
    let (a, b) = (origin("a", "1"), origin("b", "1"));
    store.register(a.clone()).await.unwrap();
    store.register(b.clone()).await.unwrap();
    let first = pick_id(&*store, "s", Protocol::Rtmp).await;
    let (first, other) = if first == a.id { (&a, &b) } else { (&b, &a) };
    store
        .set_aside(&first.id, Duration::from_millis(1000))
        .await
        .unwrap();
    // Unknown ids are ignored.
    store.set_aside("nobody/svc/1", LONG).await.unwrap();
    // Still heartbeating, but aside: the stream moves now, and new streams avoid it.
    store.register(first.clone()).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, other.id);
    for i in 0..4 {
        assert_eq!(
            pick_id(&*store, &format!("n{i}"), Protocol::Rtmp).await,
            other.id
        );
    }
    let list = store.origins().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().any(|s| s.info.id == first.id && s.aside));
    assert!(list.iter().any(|s| s.info.id == other.id && !s.aside));
    sleep(Duration::from_millis(1250)).await;
    // Quarantine over: the fewest-streams choice prefers the emptied origin again.
    assert_eq!(pick_id(&*store, "later", Protocol::Rtmp).await, first.id);
}

async fn unverified_origins_wait_for_a_probe(backend: Backend) {
    let store = backend
        .open(StoreConfig {
            probe_hold: Some(Duration::from_millis(800)),
            ..config()
        })
        .await;
    let a = origin("a", "1");
    assert!(store.register(a.clone()).await.unwrap().unverified);
    let no_origin =
        |r: Result<OriginInfo, StoreError>| matches!(r, Err(StoreError::NoOrigin { .. }));
    assert!(no_origin(store.pick(&stream("s"), Protocol::Rtmp).await));
    let list = store.origins().await.unwrap();
    assert!(list[0].aside && list[0].unverified, "{list:?}");
    // The same endpoints again: still waiting, no new probe asked for.
    assert!(!store.register(a.clone()).await.unwrap().unverified);
    store.probe_result(&a.id, &[]).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, a.id);
    let list = store.origins().await.unwrap();
    assert!(!list[0].aside && !list[0].unverified, "{list:?}");
    assert!(list[0].down.is_empty(), "{list:?}");

    // A probe that cannot reach `rtmp`: RTMP streams move, HTTP is still served there.
    let b = origin("b", "1");
    assert!(store.register(b.clone()).await.unwrap().unverified);
    store.probe_result(&b.id, &[]).await.unwrap();
    store.probe_result(&a.id, &["rtmp"]).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, b.id);
    for i in 0..4 {
        let name = format!("r{i}");
        assert_eq!(pick_id(&*store, &name, Protocol::Rtmp).await, b.id);
    }
    assert_eq!(pick_id(&*store, "h", Protocol::Http).await, a.id);
    let list = store.origins().await.unwrap();
    let a_status = list.iter().find(|o| o.info.id == a.id).unwrap();
    assert_eq!(a_status.down, ["rtmp"], "{list:?}");
    assert!(!a_status.aside, "{list:?}");

    // A good probe brings `rtmp` back, but does not end a set-aside after a failed dial.
    store.probe_result(&a.id, &[]).await.unwrap();
    store.set_aside(&b.id, LONG).await.unwrap();
    assert_eq!(pick_id(&*store, "t", Protocol::Rtmp).await, a.id);
    store.probe_result(&b.id, &[]).await.unwrap();
    assert_eq!(pick_id(&*store, "u", Protocol::Rtmp).await, a.id);

    // Moved endpoints are unverified again; an unanswered hold ends by itself.
    let mut moved = a.clone();
    moved.rtmp = vec!["127.0.0.1:2".to_string()];
    assert!(store.register(moved).await.unwrap().unverified);
    assert!(no_origin(store.pick(&stream("v"), Protocol::Rtmp).await));
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(pick_id(&*store, "v", Protocol::Rtmp).await, a.id);
    // Unknown ids are ignored.
    store.probe_result("nobody/svc/1", &["rtmp"]).await.unwrap();
}

async fn restarted_origin_is_not_aside(backend: Backend) {
    let store = backend.open(config()).await;
    store.register(origin("a", "1")).await.unwrap();
    store.set_aside("a/svc/1", LONG).await.unwrap();
    assert!(matches!(
        store.pick(&stream("s"), Protocol::Rtmp).await,
        Err(StoreError::NoOrigin { .. })
    ));
    store.register(origin("a", "2")).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/2");
}

async fn leases_expire_unless_refreshed(backend: Backend) {
    let lease = Duration::from_millis(1000);
    let store = backend.open(StoreConfig { lease, ..config() }).await;
    store.register(origin("a", "1")).await.unwrap();
    for name in ["picked", "refreshed", "idle", "moved"] {
        assert_eq!(pick_id(&*store, name, Protocol::Rtmp).await, "a/svc/1");
    }
    sleep(Duration::from_millis(500)).await;
    pick_id(&*store, "picked", Protocol::Rtmp).await;
    let refresh = [
        (stream("refreshed"), "a/svc/1".to_string()),
        // Not the owner: ignored.
        (stream("moved"), "b/svc/1".to_string()),
        // No lease (e.g. lost with a Redis restart) but a live origin: taken again.
        (stream("vanished"), "a/svc/1".to_string()),
        // No lease and an unknown origin: ignored.
        (stream("ghost"), "z/svc/1".to_string()),
    ];
    store.refresh_leases(&refresh).await.unwrap();
    store.refresh_leases(&[]).await.unwrap();
    // `idle` and `moved` ended at 1 s; the others last until 1.5 s.
    sleep(Duration::from_millis(750)).await;
    assert_eq!(loads(&*store).await, [("a/svc/1".to_string(), 3)]);
    store.register(origin("b", "1")).await.unwrap();
    // Owned streams stay; unowned ones go by fewest streams (b: 0, a: 3).
    assert_eq!(
        pick_id(&*store, "vanished", Protocol::Rtmp).await,
        "a/svc/1"
    );
    assert_eq!(pick_id(&*store, "picked", Protocol::Rtmp).await, "a/svc/1");
    assert_eq!(
        pick_id(&*store, "refreshed", Protocol::Rtmp).await,
        "a/svc/1"
    );
    assert_eq!(pick_id(&*store, "idle", Protocol::Rtmp).await, "b/svc/1");
    assert_eq!(pick_id(&*store, "moved", Protocol::Rtmp).await, "b/svc/1");
}

async fn expired_leases_stop_counting(backend: Backend) {
    let lease = Duration::from_millis(1000);
    let store = backend.open(StoreConfig { lease, ..config() }).await;
    store.register(origin("a", "1")).await.unwrap();
    store.register(origin("b", "1")).await.unwrap();
    let mut on_b = Vec::new();
    for i in 0..4 {
        let name = format!("s{i}");
        if pick_id(&*store, &name, Protocol::Rtmp).await == "b/svc/1" {
            on_b.push((stream(&name), "b/svc/1".to_string()));
        }
    }
    assert_eq!(on_b.len(), 2);
    // Only b's sessions stay active.
    for _ in 0..3 {
        sleep(Duration::from_millis(450)).await;
        store.refresh_leases(&on_b).await.unwrap();
    }
    assert_eq!(
        loads(&*store).await,
        [("a/svc/1".to_string(), 0), ("b/svc/1".to_string(), 2)]
    );
    for i in 0..2 {
        assert_eq!(
            pick_id(&*store, &format!("new{i}"), Protocol::Rtmp).await,
            "a/svc/1"
        );
    }
}

async fn hls_sessions(backend: Backend) {
    let hls_alive = Duration::from_millis(1000);
    let store = backend
        .open(StoreConfig {
            hls_alive,
            ..config()
        })
        .await;
    sessions_expire_unless_read(&*store, SessionKind::Hls, SessionKind::Rtc).await;
}

async fn rtc_sessions(backend: Backend) {
    let rtc_alive = Duration::from_millis(1000);
    let store = backend
        .open(StoreConfig {
            rtc_alive,
            ..config()
        })
        .await;
    sessions_expire_unless_read(&*store, SessionKind::Rtc, SessionKind::Hls).await;
}

/// A record of `kind` at `id` served by origin `origin`.
fn session(kind: SessionKind, id: &str, origin: &str) -> SessionRecord {
    SessionRecord {
        kind,
        id: id.into(),
        key: stream("s"),
        origin_id: format!("{origin}/svc/1"),
        origin_addr: "10.0.0.1:8080".into(),
        direction: None,
        origin_api: None,
        secret: None,
    }
}

/// `kind` lives 1 s, `other` [`LONG`]: records of `kind` expire unless read, a put replaces, and
/// a record is never found under the other kind with the same id.
async fn sessions_expire_unless_read(store: &dyn Store, kind: SessionKind, other: SessionKind) {
    assert_eq!(store.get_session(kind, "read").await.unwrap(), None);
    store
        .put_session(&session(kind, "read", "x"))
        .await
        .unwrap();
    store
        .put_session(&session(kind, "read", "a"))
        .await
        .unwrap();
    store
        .put_session(&session(kind, "unread", "b"))
        .await
        .unwrap();
    let long_lived = session(other, "shared", "c");
    store.put_session(&long_lived).await.unwrap();
    store
        .put_session(&session(kind, "shared", "d"))
        .await
        .unwrap();
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.get_session(kind, "read").await.unwrap(),
        Some(session(kind, "read", "a"))
    );
    // `unread` and `shared` ended at 1 s; `read` was refreshed until 1.5 s.
    sleep(Duration::from_millis(750)).await;
    assert_eq!(
        store.get_session(kind, "read").await.unwrap(),
        Some(session(kind, "read", "a"))
    );
    assert_eq!(store.get_session(kind, "unread").await.unwrap(), None);
    assert_eq!(store.get_session(other, "read").await.unwrap(), None);
    assert_eq!(store.get_session(kind, "shared").await.unwrap(), None);
    assert_eq!(
        store.get_session(other, "shared").await.unwrap(),
        Some(long_lived)
    );
    // A WebRTC-like record keeps its direction and secret; a delete forgets it, only it, and
    // deleting what is not there is no error.
    let full = SessionRecord {
        direction: Some(srs_cluster::Direction::Play),
        origin_api: Some("10.0.0.1:1985".into()),
        secret: Some("i88l69038v2nnw146o9vme3y048w7j59".into()),
        ..session(kind, "full", "e")
    };
    store.put_session(&full).await.unwrap();
    assert_eq!(store.get_session(kind, "full").await.unwrap(), Some(full));
    store.delete_session(kind, "full").await.unwrap();
    store.delete_session(kind, "full").await.unwrap();
    assert_eq!(store.get_session(kind, "full").await.unwrap(), None);
    assert_eq!(
        store.get_session(kind, "read").await.unwrap(),
        Some(session(kind, "read", "a"))
    );
}

async fn default_backend(backend: Backend) {
    let default = origin("default", "0");
    let store = backend
        .open(StoreConfig {
            alive: Duration::from_millis(500),
            default_backend: Some(default.clone()),
            ..config()
        })
        .await;
    // Always alive, with no registration.
    sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.pick(&stream("s"), Protocol::Http).await,
        Ok(default.clone())
    );
    assert!(matches!(
        store.pick(&stream("t"), Protocol::Srt).await,
        Err(StoreError::NoOrigin { .. })
    ));
    // It competes like any origin: a newcomer gets the next stream.
    store.register(origin("a", "1")).await.unwrap();
    assert_eq!(pick_id(&*store, "t", Protocol::Rtmp).await, "a/svc/1");
    let list = store.origins().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0].is_default && list[0].alive && list[0].streams == 1 && list[0].age_ms == 0);
    assert_eq!(list[0].info, default);
    assert!(!list[1].is_default);
    // It can be set aside like any origin.
    store.set_aside(&default.id, LONG).await.unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, "a/svc/1");
}

/// Tests of what only a shared store has: several proxies, a server that goes away, settings.
mod redis_only {
    use super::*;

    async fn connect(server: &RedisServer) -> RedisStore {
        RedisStore::connect(server.settings(), config())
            .await
            .expect("connect to the test redis-server")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_picks_agree() {
        let server = RedisServer::start();
        let proxies = [
            Arc::new(connect(&server).await),
            Arc::new(connect(&server).await),
        ];
        for name in ["a", "b", "c"] {
            proxies[0].register(origin(name, "1")).await.unwrap();
        }
        for round in 0..5 {
            let key = stream(&format!("race{round}"));
            let picks: Vec<_> = (0..50)
                .map(|i| {
                    let store = Arc::clone(&proxies[i % 2]);
                    let key = key.clone();
                    tokio::spawn(async move { store.pick(&key, Protocol::Rtmp).await })
                })
                .collect();
            let mut winners = std::collections::BTreeSet::new();
            for pick in picks {
                winners.insert(pick.await.expect("task").expect("pick").id);
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        }
        // One lease per stream, spread by fewest streams.
        let counts: Vec<usize> = loads(&*proxies[1])
            .await
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert!(counts.iter().all(|n| (1..=2).contains(n)), "{counts:?}");
    }

    #[tokio::test]
    async fn unavailable_while_down_then_recovers() {
        let mut server = RedisServer::start();
        let port = server.port;
        let store = connect(&server).await;
        store.register(origin("a", "1")).await.unwrap();
        assert_eq!(pick_id(&store, "s", Protocol::Rtmp).await, "a/svc/1");

        server.stop();
        let started = Instant::now();
        let outcomes = [
            store.pick(&stream("s"), Protocol::Rtmp).await.map(|_| ()),
            store.register(origin("a", "1")).await.map(|_| ()),
            store.get_session(SessionKind::Hls, "h").await.map(|_| ()),
            store
                .refresh_leases(&[(stream("s"), "a/svc/1".into())])
                .await,
        ];
        for outcome in outcomes {
            match outcome {
                Err(StoreError::Unavailable(why)) => {
                    assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}")
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // Same store, new server (empty: no persistence, scripts not loaded).
        let mut server = RedisServer::start_on(port);
        store.register(origin("a", "1")).await.unwrap();
        assert_eq!(pick_id(&store, "s", Protocol::Rtmp).await, "a/svc/1");
        assert_eq!(loads(&store).await, [("a/svc/1".to_string(), 1)]);

        // A restart between two calls is not seen by the next call.
        server.stop();
        let _server = RedisServer::start_on(port);
        store.register(origin("a", "1")).await.unwrap();
        assert_eq!(pick_id(&store, "s", Protocol::Rtmp).await, "a/svc/1");
    }

    #[tokio::test]
    async fn connect_to_closed_port_names_the_address() {
        let port = srs_test_support::free_port();
        let settings = srs_lb::RedisSettings {
            port,
            ..srs_lb::RedisSettings::default()
        };
        let started = Instant::now();
        let err = match RedisStore::connect(settings, config()).await {
            Ok(_) => panic!("nothing listens on {port}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("cannot reach Redis at 127.0.0.1:{port}: ")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn password_and_db_are_honoured() {
        let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
        let err = match RedisStore::connect(server.settings(), config()).await {
            Ok(_) => panic!("connected without the password"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&format!("127.0.0.1:{}", server.port)), "{err}");

        let settings = srs_lb::RedisSettings {
            password: "s3cret".into(),
            db: 3,
            ..server.settings()
        };
        let store = RedisStore::connect(settings, config())
            .await
            .expect("connect");
        store.register(origin("a", "1")).await.unwrap();

        let url = format!("redis://:s3cret@127.0.0.1:{}/", server.port);
        let mut raw = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("raw connection");
        let key = "srs-proxy:origin:a/svc/1";
        let in_db0: bool = redis::cmd("EXISTS").arg(key).query(&mut raw).unwrap();
        redis::cmd("SELECT").arg(3).query::<()>(&mut raw).unwrap();
        let in_db3: bool = redis::cmd("EXISTS").arg(key).query(&mut raw).unwrap();
        assert!(!in_db0 && in_db3);
    }

    #[tokio::test]
    async fn prefixes_separate_fleets() {
        let server = RedisServer::start();
        let open = |prefix: &str| {
            let settings = srs_lb::RedisSettings {
                prefix: prefix.into(),
                ..server.settings()
            };
            RedisStore::connect(settings, config())
        };
        let (one, two) = (open("one:").await.unwrap(), open("two:").await.unwrap());
        one.register(origin("a", "1")).await.unwrap();
        assert_eq!(loads(&one).await.len(), 1);
        assert!(loads(&two).await.is_empty());
        assert!(matches!(
            two.pick(&stream("s"), Protocol::Rtmp).await,
            Err(StoreError::NoOrigin { .. })
        ));
    }

    #[tokio::test]
    async fn key_layout() {
        let server = RedisServer::start();
        let store = RedisStore::connect(
            server.settings(),
            StoreConfig {
                alive: Duration::from_secs(30),
                lease: Duration::from_secs(15),
                ..config()
            },
        )
        .await
        .unwrap();
        store.register(origin("a", "1")).await.unwrap();
        pick_id(&store, "s", Protocol::Rtmp).await;
        store
            .set_aside("a/svc/1", Duration::from_secs(5))
            .await
            .unwrap();
        let hls = session(SessionKind::Hls, "h", "a");
        store.put_session(&hls).await.unwrap();
        let rtc = session(SessionKind::Rtc, "u", "a");
        store.put_session(&rtc).await.unwrap();

        let mut raw = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port))
            .and_then(|c| c.get_connection())
            .expect("raw connection");
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
        keys.sort();
        // The stream's lease went with the set-aside origin.
        assert_eq!(
            keys,
            ids(&[
                "srs-proxy:aside:a/svc/1",
                "srs-proxy:endpoints:a/svc/1",
                "srs-proxy:hls:h",
                "srs-proxy:origin:a/svc/1",
                "srs-proxy:origins",
                "srs-proxy:rtc:u",
                "srs-proxy:server:a",
            ])
        );
        let mut ttl = |key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(&mut raw).unwrap() };
        assert!((29_000..=30_000).contains(&ttl("srs-proxy:origin:a/svc/1")));
        assert!((4_000..=5_000).contains(&ttl("srs-proxy:aside:a/svc/1")));
        assert_eq!(ttl("srs-proxy:origins"), -1);
        assert!((59_000..=60_000).contains(&ttl("srs-proxy:hls:h")));
        assert!((59_000..=60_000).contains(&ttl("srs-proxy:rtc:u")));

        store.register(origin("b", "1")).await.unwrap();
        pick_id(&store, "t", Protocol::Rtmp).await;
        assert!((14_000..=15_000).contains(&ttl("srs-proxy:owner:__defaultVhost__/live/t")));
        assert!((14_000..=15_000).contains(&ttl("srs-proxy:streams:b/svc/1")));

        let mut get = |key: &str| -> String { redis::cmd("GET").arg(key).query(&mut raw).unwrap() };
        let record = get("srs-proxy:origin:a/svc/1");
        assert_eq!(
            serde_json::from_str::<OriginInfo>(&record).unwrap(),
            origin("a", "1")
        );
        assert_eq!(get("srs-proxy:owner:__defaultVhost__/live/t"), "b/svc/1");
        let record = get("srs-proxy:rtc:u");
        assert_eq!(serde_json::from_str::<SessionRecord>(&record).unwrap(), rtc);
        assert_eq!(
            serde_json::from_str::<SessionRecord>(&get("srs-proxy:hls:h")).unwrap(),
            hls
        );
    }
}

async fn publisher_claims_override_a_wrong_owner(backend: Backend) {
    let store = backend.open(config()).await;
    store.register(origin("a", "1")).await.unwrap();
    store.register(origin("b", "1")).await.unwrap();
    let first = pick_id(&*store, "s", Protocol::Rtmp).await;
    let other = if first == "a/svc/1" {
        "b/svc/1"
    } else {
        "a/svc/1"
    };
    // The publisher is on `other`: its claim moves the stream and the load with it.
    store
        .claim_leases(&[(stream("s"), other.to_string())])
        .await
        .unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, other);
    let mut l = loads(&*store).await;
    l.sort();
    let expected_a = usize::from(other == "a/svc/1");
    assert_eq!(
        l,
        [
            ("a/svc/1".to_string(), expected_a),
            ("b/svc/1".to_string(), 1 - expected_a)
        ]
    );
    // Claims for an origin set aside, or unknown, change nothing.
    store
        .set_aside(&first, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .claim_leases(&[
            (stream("s"), first.clone()),
            (stream("s"), "z/svc/1".to_string()),
        ])
        .await
        .unwrap();
    assert_eq!(pick_id(&*store, "s", Protocol::Rtmp).await, other);
}
