//! HTTP-FLV and HTTP-TS relayed from the stream's owner origin (docs/design.md §6.2).
//!
//! A relayed response keeps the origin's status and end-to-end headers; its body streams with
//! backpressure, and dropping the client's connection drops the origin connection. A session
//! where the client takes nothing, or the origin sends nothing, for `PROXY_IDLE_TIMEOUT` is
//! closed. Two paths:
//! - [`relay_head_level`], for requests the listener's router sees first ([`head_level`]):
//!   only the heads are parsed and rewritten; the body moves socket to socket ([`pump`]);
//! - [`relay`], for those on a connection already handed to hyper (after another request): the
//!   body streams through hyper, watched by [`super::origin::Watch`].

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::Response;
use http_body_util::BodyExt;
use srs_cluster::{Protocol, StreamKey};
use srs_common::http::{HEADER_READ_TIMEOUT, MAX_HEAD_SIZE};
use srs_http1::{BodyLength, ChunkedBody, RequestHead, ResponseHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Layer;
use tracing::{info, info_span, warn};

use super::origin::{self, request_owner, stream_response, upstream_error_response, Watch};
use super::pump::{self, Framing, Pump};
use super::{client_addr, client_ip, hls, json_error};
use crate::session::{ClientProtocol, Direction};
use crate::state::{State, ORIGIN_DIAL_TIMEOUT};
use crate::upstream::{BoxError, ConnectError, ErrorChain};

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

/// What the client connection does after a response served at the head level.
pub enum After {
    /// Read the next request; the bytes are its start, already read.
    KeepAlive(Vec<u8>),
    /// Close the connection.
    Close,
}

/// The format of a request the head-level relay serves: GET or HEAD of an origin-form `.flv`
/// or `.ts` target that is not HLS, without a body, that did not come back through this proxy
/// (`via`); `None` leaves the request to hyper.
pub fn head_level(head: &RequestHead, via: &str) -> Option<StreamFormat> {
    if !(head.method == Method::GET || head.method == Method::HEAD) || !head.target.starts_with('/')
    {
        return None;
    }
    let uri: Uri = head.target.parse().ok()?;
    if hls::is_hls(&uri)
        || srs_http1::request_body(&head.headers) != Ok(BodyLength::Empty)
        || origin::looped(&head.headers, via)
    {
        return None;
    }
    StreamFormat::from_path(uri.path())
}

/// The origin's side of a head-level relay: its socket, response head, the body framing it
/// announced for this request, and body bytes read with the head.
struct OriginResponse {
    socket: TcpStream,
    head: ResponseHead,
    body: BodyLength,
    start: Vec<u8>,
}

/// Relays one HTTP-FLV/TS request at the head level (docs/design.md §6.2): the client's head
/// (`head`, whose connection is `client` from `peer`; `pending` holds bytes read after it) is
/// rewritten and sent to the owner origin, the origin's response head rewritten and sent back,
/// then the body moved by [`pump::Pump`]. Answers errors itself as the hyper path does.
pub async fn relay_head_level(
    state: &State,
    client: &TcpStream,
    peer: SocketAddr,
    format: StreamFormat,
    head: RequestHead,
    mut pending: Vec<u8>,
) -> After {
    let host = head
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    // head_level parsed it already.
    let Ok(uri) = head.target.parse::<Uri>() else {
        return After::Close;
    };
    let key = match StreamKey::from_http(host.as_deref(), uri.path(), uri.query()) {
        Ok(key) => key,
        Err(e) => {
            let answer = json_error(StatusCode::BAD_REQUEST, format!("bad stream URL: {e}"));
            return respond(client, &head, answer, pending).await;
        }
    };
    let id = state.session_id();
    let protocol = format.protocol();
    let span = info_span!("session", id, proto = %protocol, stream = %key);
    let dial = state
        .upstream
        .connect(&key, Protocol::Http, None, |target| {
            ask_origin(state, target.addr.to_string(), &head, peer.ip())
        });
    let connected = tokio::select! {
        connected = dial => connected,
        _ = crate::upstream::client_gone(client) => {
            span.in_scope(|| info!("client went away while its origin was asked; stopped"));
            return After::Close;
        }
    };
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            span.in_scope(|| warn!(error = %ErrorChain(&e), "no origin response"));
            return respond(client, &head, upstream_error_response(&e), pending).await;
        }
    };
    let OriginResponse {
        socket: origin,
        head: response,
        body,
        mut start,
    } = connected.conn;
    let status = response.status;
    span.in_scope(|| {
        info!(client = %peer, origin = %connected.origin_id, addr = %connected.addr, status = status.as_u16(), "session started");
    });
    let session = state.open_session(protocol, Direction::Play, key, connected.origin_id);
    let client_http11 = head.version == Version::HTTP_11;
    let mut headers = HeaderMap::with_capacity(response.headers.len() + 4);
    for (name, value) in origin::end_to_end(&response.headers) {
        headers.append(name, value.clone());
    }
    let framing = match body {
        BodyLength::Empty => Framing::Length(0),
        BodyLength::Length(n) => Framing::Length(n),
        BodyLength::Chunked => {
            headers.remove(header::CONTENT_LENGTH);
            if client_http11 {
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                Framing::Chunked(ChunkedBody::new())
            } else {
                Framing::Dechunk(ChunkedBody::new())
            }
        }
        BodyLength::UntilClose => Framing::UntilClose,
    };
    drop(response);
    let delimited = !matches!(framing, Framing::Dechunk(_) | Framing::UntilClose);
    let keep_alive = head.keep_alive() && delimited;
    let started = Instant::now();
    let headers = finish_headers(&head, status, headers, keep_alive).await;
    let mut out = Vec::with_capacity(512);
    srs_http1::write_response_head(&mut out, status, &headers);
    // What a long session holds is what it needs to move bytes: no heads.
    drop((head, headers, host, uri));
    let written = write_all(client, &out, state.config.idle_timeout).await;
    drop(out);
    let end = match written {
        Err(_) => pump::End::ClientGone,
        Ok(()) => {
            let mut pump = Pump::new(
                &origin,
                client,
                framing,
                &session,
                state.config.idle_timeout,
                state.config.http_splice,
            );
            let end = pump.run(&mut start).await;
            let (sent, spliced) = (pump.sent(), pump.spliced());
            pending.extend_from_slice(&pump.into_pipelined());
            span.in_scope(|| {
                info!(
                    duration_ms = started.elapsed().as_millis() as u64,
                    bytes_to_client = sent,
                    bytes_spliced = spliced,
                    bytes_from_client = 0u64,
                    reason = %end.reason(),
                    "session ended"
                );
            });
            end
        }
    };
    drop(origin);
    drop(session);
    match end {
        pump::End::Complete if keep_alive => After::KeepAlive(pending),
        _ => After::Close,
    }
}

/// The connect step of the head-level relay at the origin `addr`: dial, send the rewritten
/// request head, read the response head (bounded by [`MAX_HEAD_SIZE`]), all within
/// `PROXY_ORIGIN_RESPONSE_TIMEOUT`.
///
/// Errors: [`ConnectError::Unreachable`] for a failed dial, [`ConnectError::Timeout`] for an
/// origin that sent no head in time, [`ConnectError::Failed`] for a broken connection or head,
/// [`ConnectError::BadRequest`] for client headers that cannot be relayed.
async fn ask_origin(
    state: &State,
    addr: String,
    head: &RequestHead,
    client: IpAddr,
) -> Result<OriginResponse, ConnectError> {
    let mut headers = origin::origin_headers(&head.headers, Some(client), &state.proxy_id)?;
    if !headers.contains_key(header::HOST) {
        // As an HTTP client does for a request without one (RFC 9112 §3.2).
        let host = HeaderValue::from_str(&addr).map_err(|e| ConnectError::BadRequest(e.into()))?;
        headers.insert(header::HOST, host);
    }
    // The origin connection serves this one response.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut request = Vec::with_capacity(512);
    srs_http1::write_request_head(&mut request, &head.method, &head.target, &headers);
    let timeout = state.config.origin_response_timeout;
    let failed = |source: BoxError| ConnectError::Failed {
        addr: addr.clone(),
        source,
    };
    let exchange = async {
        let dial = tokio::time::timeout(ORIGIN_DIAL_TIMEOUT, TcpStream::connect(&addr)).await;
        let mut socket = match dial {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => {
                return Err(ConnectError::Unreachable {
                    addr: addr.clone(),
                    source: e.into(),
                })
            }
            Err(e) => {
                return Err(ConnectError::Unreachable {
                    addr: addr.clone(),
                    source: e.into(),
                })
            }
        };
        let _ = socket.set_nodelay(true);
        socket
            .write_all(&request)
            .await
            .map_err(|e| failed(e.into()))?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            if socket
                .read_buf(&mut buf)
                .await
                .map_err(|e| failed(e.into()))?
                == 0
            {
                return Err(failed("the origin closed before its response head".into()));
            }
            let Some((response, len)) =
                ResponseHead::parse(&buf, MAX_HEAD_SIZE).map_err(|e| failed(e.into()))?
            else {
                continue;
            };
            if response.status.is_informational() {
                // 100 Continue and 103 Early Hints precede the real head.
                buf.drain(..len);
                continue;
            }
            let body = srs_http1::response_body(&head.method, response.status, &response.headers)
                .map_err(|e| failed(e.into()))?;
            return Ok(OriginResponse {
                socket,
                head: response,
                body,
                // Only the body bytes read with the head: the session keeps no head buffer.
                start: buf[len..].to_vec(),
            });
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.clone(),
            after: timeout,
        }),
    }
}

/// The client's response headers once the relay's own are added: `Connection: close` when the
/// connection ends after this response (HTTP/1.1 clients), `Connection: keep-alive` when it
/// persists (HTTP/1.0 clients that asked for it), `Date` when the origin sent none
/// (RFC 9110 §6.6.1), and the CORS headers the listener's layer gives every response.
async fn finish_headers(
    request: &RequestHead,
    status: StatusCode,
    mut headers: HeaderMap,
    keep_alive: bool,
) -> HeaderMap {
    if !keep_alive && request.version == Version::HTTP_11 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else if keep_alive && request.version == Version::HTTP_10 {
        // An HTTP/1.0 connection persists only when the response says so (RFC 9112 C.2.2).
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    if !headers.contains_key(header::DATE) {
        if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
            headers.insert(header::DATE, date);
        }
    }
    with_cors(request, status, headers).await
}

/// `headers` as the listener's CORS layer ([`srs_common::http::cors`]) leaves them on a
/// response to `request`: the layer itself runs on the heads, so both paths answer alike.
async fn with_cors(request: &RequestHead, status: StatusCode, headers: HeaderMap) -> HeaderMap {
    let mut req = http::Request::new(());
    *req.method_mut() = request.method.clone();
    *req.version_mut() = request.version;
    *req.headers_mut() = request.headers.clone();
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let mut response = Some(response);
    let service = srs_common::http::cors().layer(tower::service_fn(move |_| {
        std::future::ready(Ok::<_, Infallible>(response.take().unwrap_or_default()))
    }));
    match tower::ServiceExt::oneshot(service, req).await {
        Ok(response) => response.into_parts().0.headers,
        Err(never) => match never {},
    }
}

/// Sends a response the proxy made itself (an error) with its whole body and `Content-Length`.
async fn respond(
    client: &TcpStream,
    request: &RequestHead,
    answer: Response,
    pending: Vec<u8>,
) -> After {
    let (parts, body) = answer.into_parts();
    // The proxy's own bodies are in memory; collecting cannot wait.
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return After::Close;
    };
    let mut headers = parts.headers;
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let keep_alive = request.keep_alive();
    let headers = finish_headers(request, parts.status, headers, keep_alive).await;
    let mut out = Vec::with_capacity(512 + body.len());
    srs_http1::write_response_head(&mut out, parts.status, &headers);
    if request.method != Method::HEAD {
        out.extend_from_slice(&body);
    }
    match write_all(client, &out, HEADER_READ_TIMEOUT).await {
        Ok(()) if keep_alive => After::KeepAlive(pending),
        _ => After::Close,
    }
}

/// Writes `bytes` to the client within `limit`.
async fn write_all(client: &TcpStream, mut bytes: &[u8], limit: Duration) -> io::Result<()> {
    let write = async {
        while !bytes.is_empty() {
            client.writable().await?;
            match client.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}
