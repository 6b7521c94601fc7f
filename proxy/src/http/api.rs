//! The system API (origin registration, health, readiness, origins, streams, metrics) and the
//! HTTP API (versions) — docs/design.md §3, §7.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State as AxumState};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use srs_cluster::StreamKey;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::{json_error, serve_router};
use crate::rtc::signalling::{self, Api};
use crate::session::Direction;
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

/// Whether a register request carries `token` as `Authorization: Bearer <token>` or as the
/// `token` query parameter; compared in constant time (docs/design.md §3).
fn authorized(token: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let matches = |given: &str| bool::from(given.as_bytes().ct_eq(token.as_bytes()));
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .any(|(_, given)| matches(given.trim()));
    let query = uri
        .query()
        .and_then(|q| srs_cluster::query_param(q, "token"))
        .is_some_and(matches);
    bearer || query
}

/// `POST /api/v1/srs/register`: an origin's heartbeat (docs/design.md §3).
async fn register(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(token) = &state.config.register_token {
        if !authorized(token, &headers, &uri) {
            warn!("register request without the right token");
            let mut response = json_error(StatusCode::UNAUTHORIZED, "register needs the token");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    let info = match srs_cluster::parse_register(&body) {
        Ok(info) => info,
        Err(e) => {
            warn!(error = %e, "bad register request");
            return json_error(StatusCode::BAD_REQUEST, e);
        }
    };
    if let Some(outside) = crate::loops::outside_networks(&state.config.origin_networks, &info) {
        warn!(origin = %info.id, %outside, "register refused");
        return json_error(StatusCode::BAD_REQUEST, outside);
    }
    if let Some(own) = crate::loops::own_endpoint(&state.config, &info) {
        warn!(origin = %info.id, %own, "register refused: the proxy would relay to itself");
        return json_error(
            StatusCode::BAD_REQUEST,
            format!("{own}: the proxy would relay to itself"),
        );
    }
    debug!(origin = %info.id, ip = %info.ip, "heartbeat");
    match state.store.register(info.clone()).await {
        Ok(registered) if registered.unverified => state.prober.probe_registration(info).await,
        Ok(_) => {}
        Err(e) => {
            warn!(error = %e, "register failed");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    }
    Json(json!({"code": 0, "pid": std::process::id().to_string()})).into_response()
}

/// `GET /api/v1/origins`: every known origin with liveness, stream count, whether it is out of
/// the picks, and this proxy's last reachability probe of it (`probe`: `reachable`, `error`,
/// `ago_ms`; absent when this proxy never probed it).
async fn origins(AxumState(state): AxumState<State>) -> Response {
    let list = match state.store.origins().await {
        Ok(list) => list,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let entries: Vec<serde_json::Value> = list
        .into_iter()
        .map(|o| {
            let probe = state.prober.last(&o.info.id);
            let mut entry = json!(o);
            if let (Some(p), Some(fields)) = (probe, entry.as_object_mut()) {
                let ago_ms = u64::try_from(p.at.elapsed().as_millis()).unwrap_or(u64::MAX);
                let mut probe = json!(p);
                probe["ago_ms"] = json!(ago_ms);
                fields.insert("probe".into(), probe);
            }
            entry
        })
        .collect();
    Json(json!({"code": 0, "origins": entries})).into_response()
}

/// `GET /api/v1/streams`: every stream with a session on this proxy (docs/design.md §7).
async fn streams(AxumState(state): AxumState<State>) -> Response {
    Json(json!({"code": 0, "streams": state.leases.streams()})).into_response()
}

/// `GET /api/v1/streams/{vhost}/{app}/{stream}`: one stream (`app` may hold slashes); 404 when
/// it has no session here.
async fn stream(
    AxumState(state): AxumState<State>,
    Path((vhost, rest)): Path<(String, String)>,
) -> Response {
    let Some((app, stream)) = rest.rsplit_once('/') else {
        return json_error(
            StatusCode::NOT_FOUND,
            "expected /api/v1/streams/vhost/app/stream",
        );
    };
    let key = StreamKey {
        vhost,
        app: app.to_string(),
        stream: stream.to_string(),
    };
    match state.leases.stream(&key) {
        Some(s) => Json(json!({"code": 0, "stream": s})).into_response(),
        None => json_error(StatusCode::NOT_FOUND, format!("no session of {key} here")),
    }
}

/// `GET /readyz`: 200 while the proxy admits clients and its store answers, else 503 with the
/// reason. Every listener is bound before any is served (docs/design.md §2), so an answer here
/// means all of them are.
async fn ready(AxumState(state): AxumState<State>) -> Response {
    if !state.lifecycle.is_admitting() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "draining: shutting down");
    }
    let store = state.store.health().await;
    if !store.up {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store {} {} does not answer", store.mode, store.primary),
        );
    }
    Json(json!({"code": 0, "status": "ready", "store": store.mode})).into_response()
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
        .route("/api/v1/streams", get(streams))
        .route("/api/v1/streams/{vhost}/{*rest}", get(stream))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REGISTER_BODY))
        .with_state(state.clone());
    serve_router("system API", "system", &state, listener, app).await;
}

/// `DELETE` under `/rtc/` ends a WebRTC session (its `Location`); anything else is unknown.
async fn http_api_fallback(AxumState(state): AxumState<State>, request: Request) -> Response {
    if request.method() == Method::DELETE && request.uri().path().starts_with("/rtc/") {
        return signalling::delete(state, request).await;
    }
    not_found().await
}

/// One WebRTC offer route: `api` in `direction`.
fn rtc_offer(api: Api, direction: Direction) -> axum::routing::MethodRouter<State> {
    post(
        move |AxumState(state): AxumState<State>, request: Request| {
            signalling::offer(state, api, direction, request)
        },
    )
    // Origins give Locations on the offer's path; DELETE there ends the session.
    .delete(|AxumState(state): AxumState<State>, request: Request| {
        signalling::delete(state, request)
    })
}

/// Serves the HTTP API until admission stops: WHIP/WHEP and SRS's JSON API (docs/design.md
/// §6.5), versions; CORS for browsers.
pub async fn serve_http_api(state: State, listener: TcpListener) {
    let mut app = Router::new().route("/api/v1/versions", get(get_versions));
    for (path, api, direction) in [
        ("/rtc/v1/whip/", Api::Whip, Direction::Publish),
        ("/rtc/v1/whep/", Api::Whip, Direction::Play),
        ("/rtc/v1/publish/", Api::Json, Direction::Publish),
        ("/rtc/v1/play/", Api::Json, Direction::Play),
    ] {
        app = app
            .route(path, rtc_offer(api, direction))
            .route(path.trim_end_matches('/'), rtc_offer(api, direction));
    }
    let app = app
        .fallback(http_api_fallback)
        .layer(DefaultBodyLimit::max(signalling::MAX_BODY))
        .layer(srs_common::http::cors())
        .with_state(state.clone());
    serve_router("HTTP API", "api", &state, listener, app).await;
}
