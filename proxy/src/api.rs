//! The system API (origin registration, health, origins) and the HTTP API (versions) — SPEC §3.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::state::State;

/// Largest register body accepted; SRS heartbeats are well under 2 KiB.
const MAX_REGISTER_BODY: usize = 64 * 1024;

/// `{"code":N,"error":"..."}` with the matching HTTP status.
pub fn json_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "error": message.to_string()})),
    )
        .into_response()
}

fn versions() -> serde_json::Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    json!({
        "code": 0,
        "server": "srs-proxy",
        "pid": std::process::id().to_string(),
        "data": {
            "major": parts.next().unwrap_or(0),
            "minor": parts.next().unwrap_or(0),
            "revision": parts.next().unwrap_or(0),
            "version": version,
        }
    })
}

async fn get_versions() -> Json<serde_json::Value> {
    Json(versions())
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such API")
}

/// `POST /api/v1/srs/register`: an origin's heartbeat (SPEC §3).
async fn register(AxumState(state): AxumState<State>, body: Bytes) -> Response {
    let info = match srs_lb::register::parse_register(&body) {
        Ok(info) => info,
        Err(e) => {
            warn!(error = %e, "bad register request");
            return json_error(StatusCode::BAD_REQUEST, e);
        }
    };
    debug!(origin = %info.id, ip = %info.ip, "heartbeat");
    if let Err(e) = state.store.register(info).await {
        warn!(error = %e, "register failed");
        return json_error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    Json(json!({"code": 0, "pid": std::process::id().to_string()})).into_response()
}

/// `GET /api/v1/origins`: every known origin with liveness and stream count.
async fn origins(AxumState(state): AxumState<State>) -> Response {
    match state.store.origins().await {
        Ok(list) => Json(json!({"code": 0, "origins": list})).into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"code": 0, "status": "ok"}))
}

/// Serves the system API until shutdown starts.
pub async fn serve_system(state: State, listener: TcpListener) {
    let app = Router::new()
        .route("/api/v1/srs/register", post(register))
        .route("/api/v1/versions", get(get_versions))
        .route("/api/v1/origins", get(origins))
        .route("/healthz", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REGISTER_BODY))
        .with_state(state.clone());
    serve_router("system API", &state, listener, app).await;
}

/// Serves the HTTP API until shutdown starts.
pub async fn serve_http_api(state: State, listener: TcpListener) {
    let app = Router::new()
        .route("/api/v1/versions", get(get_versions))
        .fallback(not_found)
        .with_state(state.clone());
    serve_router("HTTP API", &state, listener, app).await;
}

/// Longest time a client may take to send a request's headers (also bounds idle keep-alive).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head buffered per connection.
const MAX_HEAD_SIZE: usize = 64 * 1024;

/// Runs an axum router on a listener until shutdown starts, then lets in-flight requests
/// (including streaming responses) finish under the lifecycle's drain.
///
/// Every connection is served by hyper with a timer, so a client that sends headers too slowly
/// or idles between requests is closed after [`HEADER_READ_TIMEOUT`]; each handler is given the
/// peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve_router(name: &str, state: &State, listener: TcpListener, app: Router) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_SIZE);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = state.lifecycle.stopping() => break,
        };
        let _ = socket.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        state.lifecycle.spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    // Tell keep-alive connections to close after their current response.
    tokio::spawn(graceful.shutdown());
    info!("{name} stopped accepting");
}
