//! HTTP-FLV and HTTP-TS relayed from the stream's owner origin (docs/design.md §6.2).
//!
//! A relayed response keeps the origin's status and end-to-end headers; its body streams with
//! backpressure: the origin body is polled only as fast as the client takes it, and dropping the
//! client's connection drops the origin connection. A session where the client takes nothing, or
//! the origin sends nothing, for `PROXY_IDLE_TIMEOUT` is closed.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use srs_cluster::StreamKey;
use tracing::{info, info_span, warn};

use super::origin::{request_owner, stream_response, upstream_error_response, Watch};
use super::{client_addr, client_ip, json_error};
use crate::session::{ClientProtocol, Direction};
use crate::state::State;
use crate::upstream::ErrorChain;

/// The relayed stream formats, chosen by the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// `.flv`: HTTP-FLV.
    Flv,
    /// `.ts`: HTTP-TS.
    Ts,
}

impl StreamFormat {
    /// The format of a request path, by the extension of its last segment.
    pub fn from_path(path: &str) -> Option<StreamFormat> {
        let last = path.rsplit('/').next().unwrap_or("");
        if last.ends_with(".flv") {
            Some(StreamFormat::Flv)
        } else if last.ends_with(".ts") {
            Some(StreamFormat::Ts)
        } else {
            None
        }
    }

    fn protocol(self) -> ClientProtocol {
        match self {
            StreamFormat::Flv => ClientProtocol::HttpFlv,
            StreamFormat::Ts => ClientProtocol::HttpTs,
        }
    }
}

/// Relays one HTTP-FLV or HTTP-TS request from the stream's owner origin.
pub async fn relay(state: State, format: StreamFormat, request: Request) -> Response {
    let id = state.session_id();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let uri = request.uri().clone();
    let key = match StreamKey::from_http(host.as_deref(), uri.path(), uri.query()) {
        Ok(key) => key,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad stream URL: {e}")),
    };
    let protocol = format.protocol();
    let span = info_span!("session", id, proto = %protocol, stream = %key);
    let client = client_addr(&request);
    let ip = client_ip(&request);
    let (parts, _body) = request.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let connected = request_owner(&state, &key, None, &parts.method, pq, &parts.headers, ip).await;
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            span.in_scope(|| warn!(error = %ErrorChain(&e), "no origin response"));
            return upstream_error_response(&e);
        }
    };
    let response = connected.conn;
    span.in_scope(|| {
        info!(client = %client, origin = %connected.origin_id, addr = %connected.addr, status = response.status().as_u16(), "session started");
    });
    let session = state.open_session(protocol, Direction::Play, key, connected.origin_id);
    let watch = Watch::of(&state, &parts.extensions);
    stream_response(response, session, span, false, watch)
}
