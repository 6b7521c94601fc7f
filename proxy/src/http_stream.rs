//! The HTTP stream listener: HTTP-FLV and HTTP-TS relayed from the owner origin (docs/design.md §6), HLS
//! (see [`crate::hls`]), and static files.
//!
//! A relayed response keeps the origin's status and headers (hop-by-hop headers dropped, CORS
//! added); its body streams with backpressure: the origin body is polled only as fast as the
//! client takes it, and dropping the client's connection drops the origin connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use srs_cluster::OriginInfo;
use srs_cluster::Protocol;
use srs_cluster::StreamKey;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tracing::{debug, info, info_span, warn, Span};

use crate::api::{json_error, serve_router};
use crate::leases::LeaseGuard;
use crate::leases::Role;
use crate::metrics::{SessionGuard, SessionKind};
use crate::state::{OriginBody, State, MAX_DIAL_ATTEMPTS};

/// Time allowed for the origin to answer with response headers.
pub(crate) const ORIGIN_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers that belong to one hop and are never copied (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header belongs to one hop only ([`HOP_BY_HOP`]).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Adds the CORS headers every stream response carries.
pub fn add_cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
}

/// The relayed stream formats, chosen by the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Flv,
    Ts,
}

impl StreamKind {
    fn from_path(path: &str) -> Option<StreamKind> {
        let last = path.rsplit('/').next().unwrap_or("");
        if last.ends_with(".flv") {
            Some(StreamKind::Flv)
        } else if last.ends_with(".ts") {
            Some(StreamKind::Ts)
        } else {
            None
        }
    }

    fn metrics_kind(self) -> SessionKind {
        match self {
            StreamKind::Flv => SessionKind::HttpFlv,
            StreamKind::Ts => SessionKind::HttpTs,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StreamKind::Flv => "http-flv",
            StreamKind::Ts => "http-ts",
        }
    }
}

fn with_cors(mut response: Response) -> Response {
    add_cors(response.headers_mut());
    response
}

/// Dispatches one request on the HTTP stream listener.
async fn handle(AxumState(state): AxumState<State>, request: Request) -> Response {
    if request.method() == Method::OPTIONS {
        return with_cors(StatusCode::NO_CONTENT.into_response());
    }
    let readable = request.method() == Method::GET || request.method() == Method::HEAD;
    // Checked first: a `.ts` with an HLS session id is a segment, not the HTTP-TS stream.
    if crate::hls::is_hls(request.uri()) {
        return with_cors(if readable {
            crate::hls::serve(state, request).await
        } else {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "HLS is read with GET")
        });
    }
    let kind = StreamKind::from_path(request.uri().path());
    match kind {
        Some(kind) if readable => with_cors(relay(state, kind, request).await),
        Some(_) => with_cors(json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "streams are read with GET",
        )),
        None => match &state.config.static_files {
            Some(dir) => {
                let result = tower::ServiceExt::oneshot(ServeDir::new(dir), request).await;
                match result {
                    Ok(r) => r.map(Body::new),
                    Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            None => with_cors(json_error(StatusCode::NOT_FOUND, "no such stream or file")),
        },
    }
}

/// Relays one HTTP-FLV or HTTP-TS request from the stream's owner origin.
async fn relay(state: State, kind: StreamKind, request: Request) -> Response {
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
    let span = info_span!("session", id, proto = kind.name(), stream = %key);
    let client_addr = client_addr(&request);
    let (parts, _body) = request.into_parts();
    let started = Instant::now();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let build = |addr: &str| origin_request(addr, &parts.method, pq, &parts.headers);
    let (origin, addr, response) = match request_owner(&state, &key, &span, build).await {
        Ok(answered) => answered,
        Err(response) => return response,
    };
    {
        let _guard = span.enter();
        info!(client = %client_addr, origin = %origin.id, %addr, status = response.status().as_u16(), "session started");
    }
    let lease = state.leases.hold(key, origin.id.clone(), Role::Play);
    let session = state.metrics.session(kind.metrics_kind());
    stream_response(response, lease, session, started, span, false)
}

/// The client's address, for logs (empty when unknown).
pub(crate) fn client_addr(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// Why an origin request got no response.
#[derive(Debug)]
pub(crate) enum OriginFailure {
    /// The TCP dial was refused or timed out: evidence the origin is down (docs/design.md §5).
    Unreachable(String),
    /// The connection failed after the dial.
    Failed(String),
    /// No response head within [`ORIGIN_RESPONSE_TIMEOUT`].
    Timeout,
}

impl OriginFailure {
    /// The client's answer: 502, or 504 for a timeout, with a reason naming the origin.
    pub(crate) fn response(&self, addr: &str) -> Response {
        match self {
            OriginFailure::Unreachable(e) => json_error(
                StatusCode::BAD_GATEWAY,
                format!("origin {addr} unreachable: {e}"),
            ),
            OriginFailure::Failed(e) => json_error(
                StatusCode::BAD_GATEWAY,
                format!("origin {addr} failed: {e}"),
            ),
            OriginFailure::Timeout => json_error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("origin {addr} did not answer within {ORIGIN_RESPONSE_TIMEOUT:?}"),
            ),
        }
    }
}

/// Sends one request to an origin and waits at most [`ORIGIN_RESPONSE_TIMEOUT`] for the
/// response head.
pub(crate) async fn send_to_origin(
    state: &State,
    request: hyper::Request<OriginBody>,
) -> Result<hyper::Response<Incoming>, OriginFailure> {
    match tokio::time::timeout(ORIGIN_RESPONSE_TIMEOUT, state.http.request(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) if e.is_connect() => Err(OriginFailure::Unreachable(e.to_string())),
        Ok(Err(e)) => Err(OriginFailure::Failed(e.to_string())),
        Err(_) => Err(OriginFailure::Timeout),
    }
}

/// Picks the owner of `key` and sends it the request `build` makes for the owner's `host:port`.
/// An unreachable owner is set aside and the stream picked again at once (docs/design.md §5), up to
/// [`MAX_DIAL_ATTEMPTS`] origins. Returns the origin, its address and its response head, or the
/// error response for the client (503 no origin, 502/504 origin failures, 400 bad URL).
pub(crate) async fn request_owner(
    state: &State,
    key: &StreamKey,
    span: &Span,
    build: impl Fn(&str) -> Result<hyper::Request<OriginBody>, String>,
) -> Result<(OriginInfo, String, hyper::Response<Incoming>), Response> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let origin = match state.pick(key, Protocol::Http).await {
            Ok(origin) => origin,
            Err(e) => {
                let _guard = span.enter();
                warn!(error = %e, "no origin for request");
                return Err(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no origin available for {key}: {e}"),
                ));
            }
        };
        let Some(addr) = origin.endpoint(Protocol::Http).map(str::to_string) else {
            return Err(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("origin {} has no http endpoint", origin.id),
            ));
        };
        let request = build(&addr).map_err(|e| json_error(StatusCode::BAD_REQUEST, e))?;
        match send_to_origin(state, request).await {
            Ok(response) => return Ok((origin, addr, response)),
            Err(OriginFailure::Unreachable(e)) => {
                let _guard = span.enter();
                warn!(origin = %origin.id, %addr, error = %e, "origin unreachable; setting it aside");
                state.origin_unreachable(&origin.id).await;
                if attempt >= MAX_DIAL_ATTEMPTS {
                    return Err(OriginFailure::Unreachable(e).response(&addr));
                }
            }
            Err(failure) => {
                let _guard = span.enter();
                warn!(origin = %origin.id, %addr, error = ?failure, "origin request failed");
                return Err(failure.response(&addr));
            }
        }
    }
}

/// The client's response for an origin response: status and end-to-end headers kept, body
/// streamed with backpressure, holding `lease` until the body ends or the client goes away. The
/// end is logged in `span` at info, or at debug when `quiet` (HLS segments).
pub(crate) fn stream_response(
    response: hyper::Response<Incoming>,
    lease: LeaseGuard,
    session: SessionGuard,
    started: Instant,
    span: Span,
    quiet: bool,
) -> Response {
    let (parts, body) = response.into_parts();
    let mut out = Response::builder().status(parts.status);
    for (name, value) in parts.headers.iter() {
        if !is_hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    let body = CountingBody {
        _lease: lease,
        session,
        inner: body,
        bytes: 0,
        started,
        span,
        quiet,
        ended: None,
    };
    out.body(Body::new(body))
        .unwrap_or_else(|e| json_error(StatusCode::BAD_GATEWAY, e))
}

/// The request sent to an origin at `addr`: `method`, `path_and_query` and the end-to-end
/// `headers` (the client's `Host` included).
pub(crate) fn origin_request(
    addr: &str,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<hyper::Request<OriginBody>, String> {
    let target = format!("http://{addr}{path_and_query}")
        .parse::<Uri>()
        .map_err(|e| format!("bad URL: {e}"))?;
    let mut builder = hyper::Request::builder().method(method.clone()).uri(target);
    for (name, value) in headers.iter() {
        if !is_hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
        .map_err(|e| e.to_string())
}

/// The origin's response body, counting bytes and logging the session's end when dropped.
struct CountingBody {
    /// Keeps the stream's lease while the response streams.
    _lease: LeaseGuard,
    /// Counts the session in the metrics.
    session: SessionGuard,
    inner: Incoming,
    bytes: u64,
    started: Instant,
    span: Span,
    /// Log the end at debug rather than info.
    quiet: bool,
    ended: Option<String>,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => this.ended = Some(format!("origin error: {e}")),
            Poll::Ready(None) => this.ended = Some("origin ended the stream".to_string()),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountingBody {
    fn drop(&mut self) {
        let _guard = self.span.enter();
        // hyper stops polling a body once its Content-Length is sent, so `ended` may be unset.
        let complete = self
            .inner
            .is_end_stream()
            .then_some("origin ended the stream");
        let reason = self
            .ended
            .as_deref()
            .or(complete)
            .unwrap_or("client went away");
        let duration_ms = self.started.elapsed().as_millis() as u64;
        self.session.add_bytes(self.bytes, 0);
        if self.quiet {
            debug!(
                duration_ms,
                bytes_to_client = self.bytes,
                reason,
                "relay ended"
            );
        } else {
            info!(
                duration_ms,
                bytes_to_client = self.bytes,
                bytes_from_client = 0u64,
                reason,
                "session ended"
            );
        }
    }
}

/// Serves the HTTP stream listener until shutdown starts.
pub async fn serve(state: State, listener: TcpListener) {
    let app = Router::new().fallback(handle).with_state(state.clone());
    serve_router("HTTP stream server", &state, listener, app).await;
}
