//! `srs-proxy`: stateless proxy load balancer for live-media origin servers.
//!
//! Configuration is by environment variables only (docs/design.md §2); see `srs-proxy --help`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::{info, warn};

use srs_proxy::config::{self, Config, LoadBalancerType};
use srs_proxy::lifecycle::{self, Lifecycle};
use srs_proxy::rtc::RtcRelay;
use srs_proxy::srt::{self, SrtRelay};
use srs_proxy::state::{Inner, State};
use srs_proxy::udp::UdpEndpoint;
use srs_proxy::{http, leases, rtmp, udp};

fn main() -> std::process::ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{}", config::help_text());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!("srs-proxy: unknown argument {arg:?}; it is configured by environment variables (see --help)");
        return std::process::ExitCode::from(2);
    }
    // webrtc-sdp warns of every attribute it does not know, and browsers' offers have several.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,webrtc_sdp=error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Every connection and WebRTC/SRT session holds a descriptor; the soft limit is often 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-files limit"),
        Err(e) => warn!(error = %e, "cannot raise the open-files limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("srs-proxy: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srs-proxy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Binds a TCP listener (`SO_REUSEADDR` as tokio sets it; `SO_REUSEPORT` with `reuse_port`, for
/// restarts on the same ports, docs/design.md §7), naming the variable on failure.
fn bind(var: &str, addr: SocketAddr, reuse_port: bool) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        TcpListener::from_std(socket.into())
    };
    listen().with_context(|| format!("cannot listen on {addr} ({var})"))
}

/// Binds a UDP listener, naming the variable on failure.
fn bind_udp(var: &str, addr: SocketAddr, reuse_port: bool) -> anyhow::Result<UdpEndpoint> {
    UdpEndpoint::bind(addr, reuse_port)
        .with_context(|| format!("cannot listen on UDP {addr} ({var})"))
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let store: Arc<dyn srs_lb::store::Store> = match config.load_balancer {
        LoadBalancerType::Memory => Arc::new(srs_lb::store::MemoryStore::with_config(
            config.store_config(),
        )),
        LoadBalancerType::Redis => {
            let settings = config.redis_settings();
            let store = srs_lb::redis::RedisStore::connect(settings, config.store_config())
                .await
                .context("PROXY_LOAD_BALANCER_TYPE=redis")?;
            Arc::new(store)
        }
    };

    // Before any client can connect: the memory floor must not include a burst.
    let trimmer = srs_proxy::memory::Trimmer::at_start();
    let reuse = config.reuse_port;
    let rtmp_listener = bind("PROXY_RTMP_SERVER", config.rtmp_server, reuse)?;
    let http_listener = bind("PROXY_HTTP_SERVER", config.http_server, reuse)?;
    let api_listener = bind("PROXY_HTTP_API", config.http_api, reuse)?;
    let system_listener = bind("PROXY_SYSTEM_API", config.system_api, reuse)?;
    let webrtc_endpoint = bind_udp("PROXY_WEBRTC_SERVER", config.webrtc_server, reuse)?;
    let srt_endpoint = bind_udp("PROXY_SRT_SERVER", config.srt_server, reuse)?;

    let lifecycle = Lifecycle::new();
    let rtmp_addr = rtmp_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;
    let system_addr = system_listener.local_addr()?;
    let webrtc_addr = webrtc_endpoint.local_addr()?;
    let srt_addr = srt_endpoint.local_addr()?;
    // Ports may be 0: rewritten WebRTC answers, the player pages and the loop check (a
    // registration naming one of these) use the bound ones.
    let mut config = config;
    config.webrtc_server = webrtc_addr;
    config.http_api = api_addr;
    config.rtmp_server = rtmp_addr;
    config.http_server = http_addr;
    config.srt_server = srt_addr;
    config.system_api = system_addr;
    let state: State = Inner::new(config.clone(), store, lifecycle.clone());

    info!(
        rtmp = %rtmp_addr, http = %http_addr, api = %api_addr, system = %system_addr,
        srt = %srt_addr, webrtc = %webrtc_addr,
        load_balancer = ?config.load_balancer, "srs-proxy started"
    );
    // Tests and scripts read the bound ports from this line (ports may be 0 = any free port).
    println!(
        "srs-proxy listening rtmp={rtmp_addr} http={http_addr} api={api_addr} system={system_addr} srt={srt_addr} webrtc={webrtc_addr}"
    );

    tokio::spawn(leases::keep_alive(state.clone()));
    tokio::spawn(state.prober.clone().run());
    tokio::spawn(srs_proxy::memory::release_after_bursts(trimmer));
    lifecycle.spawn(rtmp::serve(state.clone(), rtmp_listener));
    lifecycle.spawn(http::api::serve_system(state.clone(), system_listener));
    lifecycle.spawn(http::api::serve_http_api(state.clone(), api_listener));
    lifecycle.spawn(http::serve_streams(state.clone(), http_listener));
    let srt_endpoint = Arc::new(srt_endpoint);
    let (srt_events, srt_rx) = tokio::sync::mpsc::channel(srt::EVENT_QUEUE);
    let srt = SrtRelay::new(
        state.clone(),
        srt_endpoint.clone(),
        srt_events,
        std::time::Instant::now(),
    );
    lifecycle.spawn(udp::serve(
        "srt",
        srt_endpoint,
        srt,
        srt_rx,
        lifecycle.clone(),
    ));
    let webrtc_endpoint = Arc::new(webrtc_endpoint);
    let webrtc = RtcRelay::new(
        state.clone(),
        webrtc_endpoint.clone(),
        state.rtc_events.clone(),
    );
    let webrtc_events = state
        .take_rtc_events()
        .context("the WebRTC relay's events were taken")?;
    lifecycle.spawn(udp::serve(
        "webrtc",
        webrtc_endpoint,
        webrtc,
        webrtc_events,
        lifecycle.clone(),
    ));

    lifecycle::wait_for_signal().await;
    info!(
        grace = ?config.grace_quit, force = ?config.force_quit,
        "shutting down: no new sessions, draining the active ones"
    );
    lifecycle.stop_admitting(config.force_quit);
    if lifecycle.drain(config.grace_quit).await {
        info!("all sessions drained");
    } else {
        warn!(
            sessions = lifecycle.active_sessions(),
            "grace period over, closing remaining sessions"
        );
    }
    lifecycle.stop(Duration::from_secs(1)).await;
    Ok(())
}
