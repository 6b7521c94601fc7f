//! Everything HTTP in the proxy (docs/design.md §6.2, §6.3): the HTTP stream listener (HTTP-FLV,
//! HTTP-TS, HLS, static files), the HTTP API and the system API, and what their relays share:
//! origin requests, hop-by-hop filtering, response streaming ([`origin`]), JSON errors, and the
//! CORS layer ([`srs_common::http::cors`]).
//!
//! - [`stream`]: HTTP-FLV and HTTP-TS relayed from the stream's owner;
//! - [`hls`]: HLS with playlist rewriting and sessions shared through the store;
//! - [`api`]: the system API (register, origins, health, metrics) and the HTTP API (versions;
//!   WHIP/WHEP go there);
//! - [`players`]: the player pages, served when there are no static files.

pub mod api;
pub mod hls;
pub mod origin;
pub mod players;
pub mod pump;
pub mod stream;

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use srs_common::http::{Hyper, Rewind, HEADER_READ_TIMEOUT, MAX_HEAD_SIZE};
use tokio::net::{TcpListener, TcpStream};
use tower_http::services::ServeDir;

use crate::admission::ConnectionLimit;
use crate::state::State;

/// `{"code":N,"error":"..."}` with the matching HTTP status.
pub fn json_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "error": message.to_string()})),
    )
        .into_response()
}

/// 508 for a request that already passed through this proxy (its `Via` names it): relaying it
/// again would loop through a registration that points at a proxy (docs/design.md §6.2).
pub fn loop_refusal(state: &State, request: &Request) -> Option<Response> {
    if !origin::looped(request.headers(), &state.proxy_id) {
        return None;
    }
    tracing::warn!(path = %request.uri().path(), via = ?request.headers().get(axum::http::header::VIA), "request looped back to this proxy; refused");
    Some(json_error(
        StatusCode::LOOP_DETECTED,
        "the request came back to this proxy (Via): an origin registration points at a proxy",
    ))
}

/// The client's address, for logs (empty when unknown).
pub fn client_addr(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// The client's IP address, for `X-Forwarded-For` (`None` when unknown).
pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Dispatches one request on the HTTP stream listener: HLS first (a `.ts` carrying an HLS
/// session id is a segment, not the HTTP-TS stream), then HTTP-FLV/TS, then static files or,
/// without them, the player pages.
async fn handle(AxumState(state): AxumState<State>, request: Request) -> Response {
    if let Some(looped) = loop_refusal(&state, &request) {
        return looped;
    }
    let readable = request.method() == Method::GET || request.method() == Method::HEAD;
    if hls::is_hls(request.uri()) {
        return if readable {
            hls::serve(state, request).await
        } else {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "HLS is read with GET")
        };
    }
    match stream::StreamFormat::from_path(request.uri().path()) {
        Some(format) if readable => stream::relay(state, format, request).await,
        Some(_) => json_error(StatusCode::METHOD_NOT_ALLOWED, "streams are read with GET"),
        None => match &state.config.static_files {
            Some(dir) => {
                let result = tower::ServiceExt::oneshot(ServeDir::new(dir), request).await;
                match result {
                    Ok(r) => r.map(Body::new),
                    Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            None if players::is_players(request.uri().path()) => {
                players::serve(&state.config, &request)
            }
            None => json_error(StatusCode::NOT_FOUND, "no such stream or file"),
        },
    }
}

/// The HTTP stream listener's router.
fn streams_router(state: State) -> Router {
    Router::new()
        .fallback(handle)
        .layer(srs_common::http::cors())
        .with_state(state)
}

/// Serves the HTTP stream listener until admission stops: every connection goes through
/// [`route_connection`], at most PROXY_MAX_CONNECTIONS at once.
pub async fn serve_streams(state: State, listener: TcpListener) {
    let app = streams_router(state.clone());
    let lifecycle = state.lifecycle.clone();
    let limit = ConnectionLimit::new("http", state.config.max_connections, &state.metrics);
    srs_common::http::serve_routed(
        "HTTP stream server",
        listener,
        app,
        state.lifecycle.no_longer_admitting(),
        move |fut| lifecycle.spawn(fut),
        |peer| limit.admit(peer),
        |socket, hyper| route_connection(state.clone(), socket, hyper),
    )
    .await;
}

/// One connection of the HTTP stream listener (docs/design.md §6.2): its request heads are read
/// here (bounded by [`MAX_HEAD_SIZE`] and [`HEADER_READ_TIMEOUT`]); HTTP-FLV/TS requests
/// ([`stream::head_level`]) are relayed at the head level, and after a finished response the
/// next request is read the same way. The first request of another kind (HLS, pages, errors,
/// anything that does not parse) hands the connection, with the bytes read, to hyper for good.
/// An idle connection closes once the proxy stops admitting.
async fn route_connection(state: State, socket: TcpStream, hyper: Hyper) {
    let peer = hyper.peer();
    let mut buf = Vec::new();
    loop {
        let stop = state.lifecycle.no_longer_admitting();
        let read = tokio::select! {
            read = read_head(&socket, &mut buf) => read,
            _ = stop, if buf.is_empty() => return,
        };
        let Some(head) = read else { return };
        let Some((head, len)) = head else {
            return hyper.serve(Rewind::new(buf, socket)).await;
        };
        let Some(format) = stream::head_level(&head, &state.proxy_id) else {
            return hyper.serve(Rewind::new(buf, socket)).await;
        };
        // A streaming session keeps no head buffer: only the bytes after the head, if any.
        let rest = std::mem::take(&mut buf)[len..].to_vec();
        match stream::relay_head_level(&state, &socket, peer, format, head, rest).await {
            stream::After::KeepAlive(rest) if state.lifecycle.is_admitting() => buf = rest,
            _ => return,
        }
    }
}

/// Reads until `buf` holds a whole request head, within [`HEADER_READ_TIMEOUT`]:
/// `Some(Some(head))` then, `Some(None)` for bytes that are no head this path serves (a
/// malformed or oversized head, another HTTP version: hyper answers them), `None` when the
/// connection closed or timed out.
async fn read_head(
    socket: &TcpStream,
    buf: &mut Vec<u8>,
) -> Option<Option<(srs_http1::RequestHead, usize)>> {
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    loop {
        if !buf.is_empty() {
            match srs_http1::RequestHead::parse(buf, MAX_HEAD_SIZE) {
                Ok(Some(head)) => return Some(Some(head)),
                Ok(None) => {}
                Err(_) => return Some(None),
            }
        }
        let read = tokio::time::timeout_at(deadline, async {
            loop {
                socket.readable().await?;
                buf.reserve(4096);
                match socket.try_read_buf(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(_)) => {}
        }
    }
}

/// Runs an axum router on a listener until admission stops; connection tasks are spawned on the
/// lifecycle (see [`srs_common::http::serve`]), at most PROXY_MAX_CONNECTIONS at once
/// (`limit`: the listener's label in the metrics).
pub async fn serve_router(
    name: &str,
    limit: &'static str,
    state: &State,
    listener: TcpListener,
    app: Router,
) {
    let lifecycle = state.lifecycle.clone();
    let limit = ConnectionLimit::new(limit, state.config.max_connections, &state.metrics);
    srs_common::http::serve(
        name,
        listener,
        app,
        state.lifecycle.no_longer_admitting(),
        move |fut| lifecycle.spawn(fut),
        |peer| limit.admit(peer),
    )
    .await;
}
