//! Bounds before trust (docs/design.md §7): PROXY_MAX_CONNECTIONS (at the limit a new connection
//! is closed at once and counted, a live stream is unharmed, and permits come back when
//! connections close), and the tight limits of a client whose session is not set up yet.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use srs_e2e::{assert_played, metric, play, publish, runtime, wait_until, Origin, Proxy, TempDir};

/// Whether the proxy closes a new connection to `addr` within 2 s without a byte sent.
fn closed_at_once(addr: std::net::SocketAddr) -> bool {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        // A reset is a close too; a timeout means the connection was kept.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_over_the_limit_are_refused_and_live_streams_go_on() {
    let dir = TempDir::new("limits");
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_MAX_CONNECTIONS", "3"),
            ("PROXY_SETUP_TIMEOUT", "60s"),
        ],
    );
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/limit"), 60);
    wait_until(Duration::from_secs(20), "publishing", || {
        origin.publishing("live", "limit")
    });
    // The publisher holds one permit; two idle connections take the rest.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(proxy.rtmp).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(
        closed_at_once(proxy.rtmp),
        "a fourth RTMP connection must be closed"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let refused = metric(
        &proxy.metrics(),
        "srs_proxy_connections_refused_total",
        &[("listener", "rtmp")],
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    // Other listeners have their own limits: HTTP-FLV plays, and the stream is unharmed.
    let flv = play(
        &dir,
        "play-flv",
        &proxy.http_url("live/limit.flv"),
        25,
        Duration::from_secs(20),
    );
    assert_played(&flv, 25, "HTTP-FLV while RTMP is at its limit");
    assert!(origin.publishing("live", "limit"));
    // Closed connections give their permits back.
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let rtmp = play(
        &dir,
        "play-rtmp",
        &proxy.rtmp_url("live/limit"),
        25,
        Duration::from_secs(20),
    );
    assert_played(&rtmp, 25, "RTMP once connections closed");
}

/// The chunks of a client that, after the handshake, raises its chunk size to 4096 and starts
/// `streams` video messages of 60,000 bytes on as many chunk streams, sending 14 of their 15
/// chunks: partial messages the proxy has to hold.
fn partial_messages(streams: u8) -> Vec<u8> {
    const CHUNK: usize = 4096;
    let mut out = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0];
    for csid in 4..4 + streams {
        let length: u32 = 60_000;
        out.push(csid);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&length.to_be_bytes()[1..]);
        out.push(9);
        out.extend_from_slice(&1u32.to_le_bytes());
        for chunk in 0..14 {
            if chunk > 0 {
                out.push(0xC0 | csid);
            }
            out.resize(out.len() + CHUNK, 0x17);
        }
    }
    out
}

/// Opens `clients` RTMP connections to `addr`; each completes the handshake, then sends
/// [`partial_messages`] of `streams` chunk streams and keeps its connection.
fn park_partial_messages(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    clients: usize,
    streams: u8,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    rt.block_on(async move {
        let attack = std::sync::Arc::new(partial_messages(streams));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let attack = attack.clone();
            tasks.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let rtmp = srs_rtmp::io::RtmpStream::connect(
                    tcp,
                    srs_rtmp::chunk::Limits::default(),
                    Duration::from_secs(10),
                )
                .await
                .expect("handshake");
                let (mut tcp, _) = rtmp.into_parts();
                // The proxy may close mid-write; that is the point.
                let _ = tcp.write_all(&attack).await;
                tcp
            }));
        }
        let mut clients = Vec::new();
        for t in tasks {
            clients.push(t.await.expect("client task"));
        }
        clients
    })
}

/// How many of `clients` the proxy closes within `limit` each.
fn closed_by_the_proxy(
    rt: &tokio::runtime::Runtime,
    clients: Vec<tokio::net::TcpStream>,
    limit: Duration,
) -> usize {
    use tokio::io::AsyncReadExt;
    rt.block_on(async move {
        let mut closed = 0;
        for mut tcp in clients {
            let mut buf = [0u8; 4096];
            let ended = tokio::time::timeout(limit, async {
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await
            .is_ok();
            closed += usize::from(ended);
        }
        closed
    })
}

#[test]
fn clients_without_a_session_hold_little_memory() {
    const CLIENTS: usize = 100;
    let dir = TempDir::new("limits-setup");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_SETUP_TIMEOUT", "30s")]);
    let before = proxy.rss_kib();
    let rt = runtime();
    // Each client sends about 1 MB of partial messages (16 chunk streams) and keeps its
    // connection: the full limits would let the proxy park all of it, 100 MB here.
    let clients = park_partial_messages(&rt, proxy.rtmp, CLIENTS, 16);
    std::thread::sleep(Duration::from_millis(500));
    let during = proxy.rss_kib();
    assert!(
        during < before + 24 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    let closed = closed_by_the_proxy(&rt, clients, Duration::from_secs(3));
    assert_eq!(closed, CLIENTS, "every over-limit client is disconnected");
    let log = proxy.proc.log_text();
    assert!(
        log.contains("partial messages exceed limit"),
        "{}",
        proxy.proc.log_tail(20)
    );
}

#[test]
fn memory_is_given_back_after_a_burst() {
    const CLIENTS: usize = 200;
    let dir = TempDir::new("limits-burst");
    // Loose setup limits, so that each client parks ~400 KB (7 chunk streams) until the setup deadline.
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_SETUP_TIMEOUT", "3s"),
            ("PROXY_SETUP_MAX_MESSAGE_SIZE", "8388608"),
        ],
    );
    let before = proxy.rss_kib();
    let rt = runtime();
    let clients = park_partial_messages(&rt, proxy.rtmp, CLIENTS, 7);
    std::thread::sleep(Duration::from_millis(500));
    let peak = proxy.rss_kib();
    eprintln!("RSS before {before} KiB, during the burst {peak} KiB");
    assert!(
        peak > before + 48 * 1024,
        "the burst did not take memory: {before} KiB, then {peak} KiB"
    );
    let closed = closed_by_the_proxy(&rt, clients, Duration::from_secs(10));
    assert_eq!(closed, CLIENTS, "closed at the setup deadline");
    let released = Instant::now();
    wait_until(
        Duration::from_secs(20),
        "memory given back once the burst ended",
        || proxy.rss_kib() < before + 16 * 1024,
    );
    eprintln!(
        "RSS {} KiB {:?} after the burst ended",
        proxy.rss_kib(),
        released.elapsed()
    );
}
