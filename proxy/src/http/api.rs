//! The system API (origin registration, health, origins) and the HTTP API (versions) — docs/design.md §3.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::{json_error, serve_router};
use crate::state::State;

/// Largest register body accepted; SRS heartbeats are well under 2 KiB.
const MAX_REGISTER_BODY: usize = 64 * 1024;

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

/// `POST /api/v1/srs/register`: an origin's heartbeat (docs/design.md §3).
async fn register(AxumState(state): AxumState<State>, body: Bytes) -> Response {
    let info = match srs_cluster::parse_register(&body) {
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

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
async fn metrics(AxumState(state): AxumState<State>) -> Response {
    let origins = match state.store.origins().await {
        Ok(list) => list,
        Err(e) => {
            warn!(error = %e, "metrics: cannot list origins");
            Vec::new()
        }
    };
    let store = state.store.health().await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(&origins, &store),
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"code": 0, "status": "ok"}))
}

/// Serves the system API until admission stops.
pub async fn serve_system(state: State, listener: TcpListener) {
    let app = Router::new()
        .route("/api/v1/srs/register", post(register))
        .route("/api/v1/versions", get(get_versions))
        .route("/api/v1/origins", get(origins))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REGISTER_BODY))
        .with_state(state.clone());
    serve_router("system API", &state, listener, app).await;
}

/// Serves the HTTP API until admission stops.
pub async fn serve_http_api(state: State, listener: TcpListener) {
    let app = Router::new()
        .route("/api/v1/versions", get(get_versions))
        .fallback(not_found)
        .with_state(state.clone());
    serve_router("HTTP API", &state, listener, app).await;
}
