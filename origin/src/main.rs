//! `srs-origin`: a small live-media origin server.
//!
//! RTMP publish and play, SRT (MPEG-TS) publish and play, WebRTC publish and play (WHIP, WHEP),
//! HTTP-FLV, HTTP-TS and HLS out, an SRS-compatible HTTP API, and an SRS-style heartbeat to the proxy's register API. Configured by `ORIGIN_*` environment variables (`--help`).

mod api;
mod config;
mod heartbeat;
mod hls;
mod http_stream;
mod hub;
mod media;
mod rtc;
mod rtmp_server;
mod srt_server;
mod ts_cache;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::hub::{Hub, HubLimits};

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srs-origin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    if let Some(arg) = std::env::args().nth(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{}", config::help_text());
                return Ok(());
            }
            "-V" | "--version" => {
                println!("srs-origin {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; srs-origin is configured by environment variables, see --help"),
        }
    }
    // A missing .env is fine; a malformed one is not.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            return Err(e).context("reading .env");
        }
    }
    init_tracing();
    let config = Config::from_env().context("invalid configuration")?;
    for name in config::unknown_variables() {
        tracing::warn!("ignoring unknown variable {name}; see --help");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(config))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn bind(name: &str, addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{name}={addr}: cannot listen"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("{name}={addr}: no local address"))?;
    Ok((listener, local))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let (rtmp, rtmp_addr) = bind("ORIGIN_RTMP_SERVER", config.rtmp_server).await?;
    let (http, http_addr) = bind("ORIGIN_HTTP_SERVER", config.http_server).await?;
    let (api, api_addr) = bind("ORIGIN_HTTP_API", config.http_api).await?;
    let srt_name = "ORIGIN_SRT_SERVER";
    let (srt, srt_addr) = srt_server::bind(config.srt_server)
        .await
        .with_context(|| format!("{srt_name}={}: cannot listen", config.srt_server))?;
    let hub = Hub::new(HubLimits::default(), hls_settings(&config));
    let (rtc, rtc_task, rtc_addr) =
        rtc::sfu::bind(config.rtc_server, config.candidate, hub.clone())
            .await
            .with_context(|| {
                format!("ORIGIN_WEBRTC_SERVER={}: cannot listen", config.rtc_server)
            })?;

    // Tests read the real ports from this line when they ask for port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "srs-origin listening rtmp={rtmp_addr} http={http_addr} api={api_addr} srt={srt_addr} rtc={rtc_addr}"
    )
    .and_then(|()| stdout.flush())
    .context("writing to stdout")?;
    drop(stdout);

    let identity = api::Identity {
        server: config.server_id.clone(),
        service: config::random_id(8),
        pid: std::process::id().to_string(),
    };
    tracing::info!(
        rtmp = %rtmp_addr, http = %http_addr, api = %api_addr, srt = %srt_addr, rtc = %rtc_addr,
        candidate = %config.candidate,
        server = %identity.server, service = %identity.service,
        "srs-origin started"
    );

    let hls = hls_settings(&config);
    let rtmp_settings = rtmp_server::Settings {
        play_wait: config.play_wait,
        publish_timeout: config.publish_timeout,
    };
    let mut rtmp_task = tokio::spawn(rtmp_server::serve(rtmp, hub.clone(), rtmp_settings));
    let srt_settings = srt_server::Settings {
        publish_timeout: config.publish_timeout,
    };
    let mut srt_task = tokio::spawn(srt_server::serve(srt, hub.clone(), srt_settings));
    let http_state = http_stream::HttpState {
        hub: hub.clone(),
        hls,
        hls_wait: config.play_wait,
    };
    let mut http_task = tokio::spawn(serve_http("HTTP", http, http_stream::router(http_state)));
    let signalling = rtc::signalling::router(rtc, config.rtc_token.clone(), identity.clone());
    let mut api_task = tokio::spawn(serve_http(
        "API",
        api,
        api::router(hub.clone(), identity.clone(), signalling),
    ));
    let mut rtc_task = tokio::spawn(rtc::sfu::serve(rtc_task));

    if let Some(url) = config.register_url.clone() {
        let body = srs_cluster::RegisterBody {
            device_id: config.device_id.clone(),
            ip: config.ip.clone(),
            server: identity.server.clone(),
            service: identity.service.clone(),
            pid: identity.pid.clone(),
            rtmp: vec![rtmp_addr.port().to_string()],
            http: vec![http_addr.port().to_string()],
            api: vec![api_addr.port().to_string()],
            srt: vec![heartbeat::udp_endpoint(srt_addr)],
            rtc: vec![heartbeat::udp_endpoint(rtc_addr)],
            summaries: None,
        };
        tracing::info!(%url, interval = ?config.heartbeat_interval, "heartbeat enabled");
        tokio::spawn(heartbeat::run(url, body, config.heartbeat_interval));
    }

    tokio::select! {
        r = shutdown_signal() => {
            r?;
            tracing::info!("signal received, exiting");
            Ok(())
        }
        r = &mut rtmp_task => server_ended("RTMP", r.map(|r| r.map_err(anyhow::Error::from))),
        r = &mut http_task => server_ended("HTTP", r.map(Ok)),
        r = &mut api_task => server_ended("API", r.map(Ok)),
        r = &mut srt_task => server_ended("SRT", r.map(Ok)),
        r = &mut rtc_task => server_ended("WebRTC", r.map(Ok)),
    }
}

fn hls_settings(config: &Config) -> hls::HlsSettings {
    hls::HlsSettings {
        fragment: config.hls_fragment,
        window: config.hls_window,
        ctx: config.hls_ctx,
    }
}

/// Serves an HTTP router for the life of the process, with bounded request heads.
async fn serve_http(name: &'static str, listener: TcpListener, app: axum::Router) {
    srs_common::http::serve(
        name,
        listener,
        app,
        std::future::pending(),
        |task| {
            tokio::spawn(task);
        },
        |_| Some(()),
    )
    .await;
}

fn server_ended(
    name: &str,
    result: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match result {
        Ok(Ok(())) => bail!("{name} server stopped"),
        Ok(Err(e)) => Err(e).context(format!("{name} server failed")),
        Err(e) => Err(e).context(format!("{name} server crashed")),
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
