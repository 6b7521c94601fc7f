//! What every HTTP relay does with an origin (docs/design.md §6.2): build the origin request from
//! the client's, send it as the upstream connect step, and stream the origin's response back with
//! the end-to-end headers only.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use srs_cluster::{Protocol, StreamKey};
use srs_common::http::CloseConnection;
use tokio::task::AbortHandle;
use tracing::{debug, info, Span};

use super::json_error;
use crate::session::Session;
use crate::state::State;
use crate::upstream::{BoxError, ConnectError, Connected, ErrorChain, Pinned, UpstreamError};

/// Time allowed to read a whole small origin body (a playlist, a WebRTC answer).
pub const ORIGIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Body type of requests the proxy sends to origins.
pub type OriginBody = BoxBody<Bytes, hyper::Error>;

/// The HTTP client for origin requests.
pub type OriginClient = Client<HttpConnector, OriginBody>;

/// A client with a `dial_timeout` on each TCP dial, no Nagle, and idle connections kept 30 s.
pub fn client(dial_timeout: Duration) -> OriginClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(dial_timeout));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

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

/// The end-to-end headers of `headers`: all but the hop-by-hop ones ([`HOP_BY_HOP`]) and those
/// the `Connection` header names (RFC 9110 7.6.1), in order.
pub fn end_to_end(
    headers: &HeaderMap,
) -> impl Iterator<Item = (&HeaderName, &header::HeaderValue)> {
    let named: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    headers.iter().filter(move |(name, _)| {
        !HOP_BY_HOP.contains(&name.as_str())
            && !named.iter().any(|t| t.eq_ignore_ascii_case(name.as_str()))
    })
}

/// The request sent to an origin at `addr`: `method`, `path_and_query` and the end-to-end
/// `headers` (the client's `Host` included), with an empty body. With the `client` address,
/// `X-Forwarded-For` gets it appended to what the client sent and `X-Real-IP` is it
/// (docs/design.md §6.2); `Via` gets `1.1 {via}` (this proxy's id) appended, so a request that
/// loops back is recognised ([`looped`], RFC 9110 §7.6.3).
///
/// Errors: [`ConnectError::BadRequest`] when `http://{addr}{path_and_query}` is no valid URI.
pub fn origin_request(
    addr: &str,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    via: &str,
) -> Result<hyper::Request<OriginBody>, ConnectError> {
    origin_request_with_body(
        addr,
        method,
        path_and_query,
        headers,
        client,
        via,
        Bytes::new(),
    )
}

/// Whether a request already passed through the proxy `via` (its id in a `Via` entry): relaying
/// it again would loop (docs/design.md §6.2).
pub fn looped(headers: &HeaderMap, via: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| crate::loops::names(v, via))
}

/// [`origin_request`] with a body (WHIP/WHEP offers); the client's `Content-Type` is among the
/// headers kept, and the length is the body's.
///
/// Errors: as [`origin_request`].
pub fn origin_request_with_body(
    addr: &str,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    via: &str,
    body: Bytes,
) -> Result<hyper::Request<OriginBody>, ConnectError> {
    let target = format!("http://{addr}{path_and_query}")
        .parse::<Uri>()
        .map_err(|e| ConnectError::BadRequest(e.into()))?;
    let body = if body.is_empty() {
        Empty::<Bytes>::new().map_err(|e| match e {}).boxed()
    } else {
        Full::new(body).map_err(|e| match e {}).boxed()
    };
    let mut request = hyper::Request::builder()
        .method(method.clone())
        .uri(target)
        .body(body)
        .map_err(|e| ConnectError::BadRequest(e.into()))?;
    *request.headers_mut() = origin_headers(headers, client, via)?;
    Ok(request)
}

/// The headers relayed to an origin for a client request with `headers`: the end-to-end ones
/// (`Host` included, `Content-Length` left to the sender), `Via` with `1.1 {via}` appended, and
/// with the `client` address, `X-Forwarded-For` with it appended and `X-Real-IP` set to it
/// (docs/design.md §6.2).
///
/// Errors: [`ConnectError::BadRequest`] when the joined values are no valid header value.
pub fn origin_headers(
    headers: &HeaderMap,
    client: Option<IpAddr>,
    via: &str,
) -> Result<HeaderMap, ConnectError> {
    let mut out = HeaderMap::with_capacity(headers.len() + 3);
    for (name, value) in end_to_end(headers) {
        if name != header::CONTENT_LENGTH {
            out.append(name, value.clone());
        }
    }
    append_hop(&mut out, header::VIA, &format!("1.1 {via}"))?;
    if let Some(ip) = client {
        append_hop(&mut out, X_FORWARDED_FOR, &ip.to_string())?;
        let ip = HeaderValue::from_str(&ip.to_string())
            .map_err(|e| ConnectError::BadRequest(e.into()))?;
        out.insert(X_REAL_IP, ip);
    }
    Ok(out)
}

/// Appends `value` to the comma-separated list in `name` (`Via`, `X-Forwarded-For`), as one
/// header line. Earlier hops' values that are not text cannot be joined; they are dropped.
fn append_hop(out: &mut HeaderMap, name: HeaderName, value: &str) -> Result<(), ConnectError> {
    let mut hops: Vec<&str> = out
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    hops.push(value);
    let joined =
        HeaderValue::from_str(&hops.join(", ")).map_err(|e| ConnectError::BadRequest(e.into()))?;
    out.insert(name, joined);
    Ok(())
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Sends one request to an origin and waits at most `timeout` (`PROXY_ORIGIN_RESPONSE_TIMEOUT`)
/// for the response head: the connect step of the HTTP relays.
///
/// Errors: [`ConnectError::Unreachable`] when the dial fails, [`ConnectError::Timeout`] when the
/// origin stays silent (it is then set aside like an unreachable one), [`ConnectError::Failed`]
/// for a connection that broke after the dial.
pub async fn send(
    client: &OriginClient,
    addr: &str,
    request: hyper::Request<OriginBody>,
    timeout: Duration,
) -> Result<hyper::Response<Incoming>, ConnectError> {
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) if e.is_connect() => Err(ConnectError::Unreachable {
            addr: addr.to_string(),
            source: e.into(),
        }),
        Ok(Err(e)) => Err(ConnectError::Failed {
            addr: addr.to_string(),
            source: e.into(),
        }),
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

/// Sends the client's request (`method`, `path_and_query`, end-to-end `headers`, the `client`'s
/// address in `X-Forwarded-For`/`X-Real-IP`) to the owner of `key` over HTTP, `pinned` first when given, failing over as [`Upstream::connect`] does; returns
/// the origin that answered and its response head.
///
/// Errors: [`UpstreamError`]; [`upstream_error_response`] is the client's answer.
///
/// [`Upstream::connect`]: crate::upstream::Upstream::connect
pub async fn request_owner(
    state: &State,
    key: &StreamKey,
    pinned: Option<Pinned>,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Connected<hyper::Response<Incoming>>, UpstreamError> {
    state
        .upstream
        .connect(key, Protocol::Http, pinned, |target| {
            let request = origin_request(
                target.addr,
                method,
                path_and_query,
                headers,
                client,
                &state.proxy_id,
            );
            let addr = target.addr.to_string();
            let http = &state.http;
            let timeout = state.config.origin_response_timeout;
            async move { send(http, &addr, request?, timeout).await }
        })
        .await
}

/// The client's answer when no origin response could be had: 503 when the store has no origin,
/// 502 for an unreachable or failed origin, 504 for one that answered too late, 400 for a request
/// that cannot be relayed; the message gives the whole error chain.
pub fn upstream_error_response(error: &UpstreamError) -> Response {
    let status = match error {
        UpstreamError::Store { .. } | UpstreamError::NoEndpoint { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        UpstreamError::Connect { source, .. } => connect_error_status(source),
    };
    json_error(status, ErrorChain(error))
}

/// The status for one failed origin request (see [`upstream_error_response`]).
pub fn connect_error_status(error: &ConnectError) -> StatusCode {
    match error {
        ConnectError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        ConnectError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ConnectError::Unreachable { .. } | ConnectError::Failed { .. } => StatusCode::BAD_GATEWAY,
    }
}

/// How a relayed body is watched for progress (docs/design.md §6.2): with no frame taken for
/// `timeout` the connection is closed through `close`.
#[derive(Clone)]
pub struct Watch {
    /// `PROXY_IDLE_TIMEOUT`.
    pub timeout: Duration,
    /// The client connection's close handle; `None` (a request not served by
    /// [`srs_common::http::serve`]) leaves the body unwatched.
    pub close: Option<CloseConnection>,
}

impl Watch {
    /// The watch of a request to the HTTP stream listener: its connection's close handle and
    /// the configured idle timeout.
    pub fn of(state: &State, extensions: &axum::http::Extensions) -> Watch {
        Watch {
            timeout: state.config.idle_timeout,
            close: extensions.get::<CloseConnection>().cloned(),
        }
    }
}

/// The client's response for an origin response: status and end-to-end headers kept, body
/// streamed with backpressure, holding `session` (its lease and metrics) until the body ends or
/// the client goes away, and counting the body's bytes as they pass. The connection is closed
/// when the body makes no progress for the `watch` timeout (a stalled client or a silent
/// origin). The end is logged in `span` at info, or at debug when `quiet` (HLS segments).
pub fn stream_response(
    response: hyper::Response<Incoming>,
    session: Session,
    span: Span,
    quiet: bool,
    watch: Watch,
) -> Response {
    let (parts, body) = response.into_parts();
    let progress = Arc::new(Mutex::new(Progress {
        last: tokio::time::Instant::now(),
        waiting_on_origin: true,
        stalled: None,
    }));
    let watchdog = watch.close.map(|close| {
        let progress = Arc::clone(&progress);
        tokio::spawn(watchdog(progress, watch.timeout, close, span.clone())).abort_handle()
    });
    let body = CountingBody {
        session,
        inner: body,
        bytes: 0,
        started: Instant::now(),
        span,
        quiet,
        ended: None,
        progress,
        watchdog,
    };
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    let headers = out.headers_mut();
    for (name, value) in end_to_end(&parts.headers) {
        headers.append(name, value.clone());
    }
    out
}

/// What the body and its watchdog share.
struct Progress {
    /// When the body last handed hyper a frame (or the response started).
    last: tokio::time::Instant,
    /// Whether the last poll found the origin with nothing to send; otherwise hyper has not
    /// asked for more since the last frame, because the client is not taking what it has.
    waiting_on_origin: bool,
    /// Why the watchdog closed the connection.
    stalled: Option<String>,
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|p| p.into_inner())
}

/// Closes the connection once no frame has passed for `timeout`. It must be a task of its own:
/// hyper stops polling a body whose client does not read, so the body cannot time itself out.
async fn watchdog(
    progress: Arc<Mutex<Progress>>,
    timeout: Duration,
    close: CloseConnection,
    span: Span,
) {
    loop {
        let deadline = lock(&progress).last + timeout;
        if tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline).await;
            continue;
        }
        let reason = {
            let mut p = lock(&progress);
            let reason = if p.waiting_on_origin {
                format!("origin sent nothing for {timeout:?}")
            } else {
                format!("client took no bytes for {timeout:?}")
            };
            p.stalled = Some(reason.clone());
            reason
        };
        span.in_scope(|| info!(%reason, "closing the stalled session"));
        close.close();
        return;
    }
}

/// The origin's response body, counting bytes as they pass and logging the session's end when
/// dropped.
struct CountingBody {
    /// The session (lease, metrics, drain count) the response belongs to.
    session: Session,
    inner: Incoming,
    bytes: u64,
    started: Instant,
    span: Span,
    /// Log the end at debug rather than info.
    quiet: bool,
    ended: Option<String>,
    /// Shared with the watchdog.
    progress: Arc<Mutex<Progress>>,
    /// The watchdog task, stopped with the body.
    watchdog: Option<AbortHandle>,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.bytes += n;
                    this.session.sent_to_client(n);
                }
                let mut p = lock(&this.progress);
                p.last = tokio::time::Instant::now();
                p.waiting_on_origin = false;
            }
            Poll::Ready(Some(Err(e))) => this.ended = Some(format!("origin error: {e}")),
            Poll::Ready(None) => this.ended = Some("origin ended the stream".to_string()),
            Poll::Pending => lock(&this.progress).waiting_on_origin = true,
        }
        polled.map_err(BoxError::from)
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
        if let Some(watchdog) = &self.watchdog {
            watchdog.abort();
        }
        let _guard = self.span.enter();
        let stalled = lock(&self.progress).stalled.take();
        // hyper stops polling a body once its Content-Length is sent, so `ended` may be unset.
        let complete = self
            .inner
            .is_end_stream()
            .then_some("origin ended the stream");
        let reason = stalled
            .as_deref()
            .or(self.ended.as_deref())
            .or(complete)
            .unwrap_or("client went away");
        let duration_ms = self.started.elapsed().as_millis() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "example.com".parse().unwrap());
        h.insert(header::CONNECTION, "keep-alive, X-Hop".parse().unwrap());
        h.append(header::CONNECTION, "x-other".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.append("x-kept", "2".parse().unwrap());
        let kept: Vec<(String, String)> = end_to_end(&h)
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            kept,
            [
                ("host".to_string(), "example.com".to_string()),
                ("x-kept".to_string(), "1".to_string()),
                ("x-kept".to_string(), "2".to_string()),
            ]
        );
    }

    #[test]
    fn origin_request_keeps_host_and_query() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "play.example.com:18080".parse().unwrap());
        h.insert(header::CONNECTION, "close".parse().unwrap());
        let r = origin_request(
            "127.0.0.1:8080",
            &Method::GET,
            "/live/s.flv?token=x",
            &h,
            None,
            "p1",
        )
        .unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:8080/live/s.flv?token=x");
        assert_eq!(r.headers()[header::HOST], "play.example.com:18080");
        assert!(r.headers().get(header::CONNECTION).is_none());
        assert!(r.headers().get("x-forwarded-for").is_none());
        let bad =
            origin_request("127.0.0.1:8080", &Method::GET, "/a b", &h, None, "p1").unwrap_err();
        assert!(matches!(bad, ConnectError::BadRequest(_)));
    }

    #[test]
    fn via_marks_each_proxy_and_a_loop_is_seen() {
        let mut h = HeaderMap::new();
        h.insert(header::VIA, "1.1 cdn-edge".parse().unwrap());
        let r = origin_request("o:80", &Method::GET, "/a.flv", &h, None, "srs-proxy-1").unwrap();
        assert_eq!(r.headers()[header::VIA], "1.1 cdn-edge, 1.1 srs-proxy-1");
        assert!(looped(r.headers(), "srs-proxy-1"));
        assert!(!looped(r.headers(), "srs-proxy-2"));
        assert!(!looped(&HeaderMap::new(), "srs-proxy-1"));
    }

    #[test]
    fn origin_request_carries_the_client_address() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let r = origin_request("o:80", &Method::GET, "/a.flv", &h, Some(ip), "p1").unwrap();
        assert_eq!(r.headers()["x-forwarded-for"], "10.1.2.3");
        assert_eq!(r.headers()["x-real-ip"], "10.1.2.3");
        h.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "2.2.2.2, 3.3.3.3".parse().unwrap());
        let r = origin_request("o:80", &Method::GET, "/a.flv", &h, Some(ip), "p1").unwrap();
        let chain: Vec<_> = r.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(chain, ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3"]);
    }
}
