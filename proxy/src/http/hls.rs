//! HLS through the proxy (docs/design.md §6.3). Playlists are fetched from the stream's owner origin and
//! every URI in them is rewritten to carry an HLS session id as `spbhid=<id>`
//! ([`srs_hls::SESSION_PARAM`]); the id is recorded in the shared store, so playlist and segment
//! requests carrying it, arriving at any proxy replica, are relayed from the same origin.
//!
//! Routes (GET and HEAD; [`is_hls`] says which requests come here):
//! - `/app/stream.m3u8[?query]` without `spbhid`: a new session. The stream's owner is picked as
//!   for HTTP-FLV (set aside and re-picked when unreachable), the playlist is fetched at the same
//!   path and query with the client's `Host`, rewritten, and returned with the origin's status.
//!   An origin error status (404 for an unknown stream) is passed on with the origin's body, and
//!   no session is created.
//! - any path with `spbhid=<id>` (playlists, `.ts`, `.m4s`, `.mp4`, `.aac`, keys...): the
//!   session's origin is asked for the same path with the query minus `spbhid`. Playlists (a
//!   `.m3u8` path, or a GET answered with an HLS content type) are rewritten again with the same
//!   id; everything else streams through like HTTP-FLV.
//!
//! Rules:
//! - Session ids are 128 bits from `rand`'s thread RNG (a CSPRNG seeded by the OS), as 32
//!   lowercase hex digits. Anything else is treated as unknown without asking the store.
//! - An unknown or expired id is a 404 ("unknown or expired HLS session"), never a relay to a
//!   newly picked origin: segment names and SRS's `hls_ctx` only mean something to the origin
//!   that wrote the playlist.
//! - Key match: an id is accepted only for paths inside its stream's app directory (`/live/..`
//!   for `live/livestream`); elsewhere the answer is 403. The vhost is not compared, since
//!   segment URIs do not repeat a playlist's `vhost=` parameter, and segment names need not
//!   contain the stream name (SRS's `hls_ts_file` is configurable).
//! - Traversal: paths with a `.`/`..` segment, an encoded slash or backslash, or bad
//!   percent-encoding are refused with 400 before any origin is contacted
//!   ([`srs_hls::clean_request_path`]); the origin is sent the normalised path.
//! - A request holds its stream's lease while it is relayed; reading the session record refreshes
//!   it for PROXY_HLS_ALIVE_DURATION.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use srs_cluster::{query_param, StreamKey};
use srs_lb::{SessionKind, SessionRecord};
use tracing::{debug, info, info_span, warn, Span};

use super::origin::{
    end_to_end, request_owner, stream_response, upstream_error_response, Watch, ORIGIN_BODY_TIMEOUT,
};
use super::{client_addr, client_ip, json_error};
use crate::session::{ClientProtocol, Direction, Session};
use crate::state::State;
use crate::upstream::{ErrorChain, Pinned};
use srs_hls::{clean_request_path, rewrite_playlist, without_param, CleanPath, SESSION_PARAM};

/// Largest playlist the proxy rewrites; a bigger one is answered with 502.
pub const MAX_PLAYLIST_BYTES: usize = 2 * 1024 * 1024;

/// The content type of rewritten playlists (RFC 8216 4).
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

/// Request headers not sent when fetching a playlist: it must arrive whole, uncompressed and
/// fresh, since the proxy parses it and every copy carries a different session id.
const PLAYLIST_REQUEST_DROP: &[HeaderName] = &[
    header::ACCEPT_ENCODING,
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// Origin response headers not copied onto a rewritten playlist: they describe the origin's
/// bytes, not the rewritten ones.
const PLAYLIST_RESPONSE_DROP: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::ACCEPT_RANGES,
];

/// Whether a request on the HTTP stream listener is HLS: it carries `spbhid`, or its path ends
/// in `.m3u8`.
pub fn is_hls(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| query_param(q, SESSION_PARAM).is_some())
        || is_playlist_path(uri.path())
}

/// Whether the last path segment ends in `.m3u8` (any case).
fn is_playlist_path(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    last.to_ascii_lowercase().ends_with(".m3u8")
}

/// Whether a content type is one of the HLS playlist types (RFC 8216 4).
fn is_playlist_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/vnd.apple.mpegurl")
        || mime.eq_ignore_ascii_case("audio/mpegurl")
        || mime.eq_ignore_ascii_case("application/x-mpegurl")
}

/// A new HLS session id: 128 random bits as 32 lowercase hex digits.
fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether `id` has the shape of an id from [`new_session_id`].
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `segments` (a decoded request path) lie inside the directory of `app`.
fn under_app(segments: &[String], app: &str) -> bool {
    let app: Vec<&str> = app.split('/').collect();
    segments.len() > app.len() && segments.iter().zip(&app).all(|(s, a)| s == a)
}

/// One HLS request, checked and ready to be relayed.
struct HlsRequest {
    method: Method,
    headers: HeaderMap,
    path: CleanPath,
    query: String,
    host: Option<String>,
    client: String,
    client_ip: Option<std::net::IpAddr>,
    /// How a relayed body is watched for progress.
    watch: Watch,
}

impl HlsRequest {
    /// The path and query for the origin, `spbhid` removed.
    fn origin_target(&self) -> String {
        let query = without_param(&self.query, SESSION_PARAM);
        if query.is_empty() {
            self.path.path.clone()
        } else {
            format!("{}?{query}", self.path.path)
        }
    }
}

/// Serves one HLS request (see the module docs).
pub async fn serve(state: State, request: Request) -> Response {
    let client = client_addr(&request);
    let client_ip = client_ip(&request);
    let (parts, _body) = request.into_parts();
    let path = match clean_request_path(parts.uri.path()) {
        Ok(path) => path,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad HLS path: {e}")),
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let query = parts.uri.query().unwrap_or("").to_string();
    let id = query_param(&query, SESSION_PARAM).map(str::to_string);
    let watch = Watch::of(&state, &parts.extensions);
    let request = HlsRequest {
        method: parts.method,
        headers: parts.headers,
        path,
        query,
        host,
        client,
        client_ip,
        watch,
    };
    match id {
        Some(id) => existing_session(state, request, &id).await,
        None => new_session(state, request).await,
    }
}

/// A playlist request without a session: picks the owner, fetches, records a new session.
async fn new_session(state: State, request: HlsRequest) -> Response {
    let query = (!request.query.is_empty()).then_some(request.query.as_str());
    let key = match StreamKey::from_http(request.host.as_deref(), &request.path.path, query) {
        Ok(key) => key,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad stream URL: {e}")),
    };
    let hls_id = new_session_id();
    let span = info_span!("hls", id = state.session_id(), spbhid = %hls_id, stream = %key);
    let target = request.origin_target();
    let headers = playlist_request_headers(&request.headers);
    let connected = request_owner(
        &state,
        &key,
        None,
        &Method::GET,
        &target,
        &headers,
        request.client_ip,
    )
    .await;
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            span.in_scope(|| warn!(error = %ErrorChain(&e), "no origin response"));
            return upstream_error_response(&e);
        }
    };
    let (origin_id, addr, response) = (connected.origin_id, connected.addr, connected.conn);
    let session = state.open_session(
        ClientProtocol::Hls,
        Direction::Play,
        key.clone(),
        origin_id.clone(),
    );
    let status = response.status();
    if !status.is_success() {
        span.in_scope(|| {
            info!(client = %request.client, origin = %origin_id, %addr, status = status.as_u16(), "playlist refused by the origin");
        });
        return stream_response(response, session, span, false, request.watch);
    }
    let playlist = match rewritten(response, &request, &addr, &hls_id, &session, &span).await {
        Ok(playlist) => playlist,
        Err(response) => return response,
    };
    let record = SessionRecord {
        kind: SessionKind::Hls,
        id: hls_id,
        key,
        origin_id: origin_id.clone(),
        origin_addr: addr.clone(),
        direction: None,
        origin_api: None,
        secret: None,
    };
    if let Err(e) = state.store.put_session(&record).await {
        span.in_scope(|| warn!(error = %e, "cannot record the HLS session"));
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot record the HLS session: {e}"),
        );
    }
    span.in_scope(|| {
        info!(client = %request.client, origin = %origin_id, %addr, status = status.as_u16(), "new HLS session");
    });
    playlist
}

/// A request carrying `spbhid`: relayed from the session's origin. When that origin is
/// unreachable it is set aside and the session moves to the stream's live owner (re-picked if
/// need be) instead of pinning the player to a dead origin.
async fn existing_session(state: State, request: HlsRequest, id: &str) -> Response {
    let unknown = || json_error(StatusCode::NOT_FOUND, "unknown or expired HLS session");
    if !is_session_id(id) {
        return unknown();
    }
    let record = match state.store.get_session(SessionKind::Hls, id).await {
        Ok(Some(record)) => record,
        Ok(None) => return unknown(),
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    if !under_app(&request.path.segments, &record.key.app) {
        return json_error(
            StatusCode::FORBIDDEN,
            format!(
                "the HLS session belongs to stream {}; this path is outside /{}/",
                record.key, record.key.app
            ),
        );
    }
    let span = info_span!("hls", id = state.session_id(), spbhid = %id, stream = %record.key);
    let playlist_path = is_playlist_path(&request.path.path);
    let (method, headers) = if playlist_path {
        (Method::GET, playlist_request_headers(&request.headers))
    } else {
        (request.method.clone(), request.headers.clone())
    };
    let target = request.origin_target();
    let pinned = Pinned {
        id: record.origin_id.clone(),
        addr: record.origin_addr.clone(),
    };
    let connected = request_owner(
        &state,
        &record.key,
        Some(pinned),
        &method,
        &target,
        &headers,
        request.client_ip,
    )
    .await;
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            span.in_scope(|| warn!(origin = %record.origin_id, error = %ErrorChain(&e), "HLS origin request failed"));
            return upstream_error_response(&e);
        }
    };
    let (origin_id, addr, response) = (connected.origin_id, connected.addr, connected.conn);
    if origin_id != record.origin_id {
        let moved = SessionRecord {
            origin_id: origin_id.clone(),
            origin_addr: addr.clone(),
            ..record.clone()
        };
        match state.store.put_session(&moved).await {
            Ok(()) => span
                .in_scope(|| info!(from = %record.origin_id, to = %origin_id, "HLS session moved")),
            Err(e) => {
                span.in_scope(|| warn!(error = %e, "cannot record the moved HLS session"));
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot record the HLS session: {e}"),
                );
            }
        }
    }
    let session = state.open_session(
        ClientProtocol::Hls,
        Direction::Play,
        record.key.clone(),
        origin_id,
    );
    let status = response.status();
    let is_playlist =
        playlist_path || (method == Method::GET && is_playlist_type(response.headers()));
    span.in_scope(|| {
        debug!(client = %request.client, path = %request.path.path, status = status.as_u16(), is_playlist, "HLS relay");
    });
    if is_playlist && status.is_success() {
        return rewritten(response, &request, &addr, id, &session, &span)
            .await
            .unwrap_or_else(|response| response);
    }
    stream_response(response, session, span, true, request.watch.clone())
}

/// The client's headers minus [`PLAYLIST_REQUEST_DROP`].
fn playlist_request_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for name in PLAYLIST_REQUEST_DROP {
        headers.remove(name);
    }
    headers
}

/// Reads a playlist response (bounded in size and time) and rewrites it for session `id`; the
/// response carries the origin's status and end-to-end headers, with the playlist's own type and
/// length. Failures are the client's 502/504.
async fn rewritten(
    response: hyper::Response<Incoming>,
    request: &HlsRequest,
    origin_addr: &str,
    id: &str,
    session: &Session,
    span: &Span,
) -> Result<Response, Response> {
    let (head, body) = response.into_parts();
    let bytes = read_bounded(body).await.inspect_err(|_| {
        span.in_scope(|| warn!(origin = %origin_addr, "cannot read the playlist"));
    })?;
    let mut local = vec![origin_addr];
    local.extend(request.host.as_deref());
    let target = srs_hls::Target {
        playlist_path: &request.path.path,
        local_authorities: &local,
        session_id: id,
    };
    let playlist = rewrite_playlist(&bytes, &target).map_err(|e| {
        span.in_scope(|| warn!(origin = %origin_addr, error = %e, "bad playlist from the origin"));
        json_error(
            StatusCode::BAD_GATEWAY,
            format!("bad playlist from origin {origin_addr}: {e}"),
        )
    })?;
    session.sent_to_client(playlist.len() as u64);
    let mut out = Response::builder().status(head.status);
    for (name, value) in end_to_end(&head.headers) {
        if !PLAYLIST_RESPONSE_DROP.contains(name) {
            out = out.header(name, value);
        }
    }
    out.header(header::CONTENT_TYPE, PLAYLIST_CONTENT_TYPE)
        .header(header::CONTENT_LENGTH, playlist.len())
        .body(Body::from(playlist))
        .map_err(|e| json_error(StatusCode::BAD_GATEWAY, e))
}

/// The whole body, at most [`MAX_PLAYLIST_BYTES`], within [`ORIGIN_BODY_TIMEOUT`].
async fn read_bounded(body: Incoming) -> Result<bytes::Bytes, Response> {
    let collect = Limited::new(body, MAX_PLAYLIST_BYTES).collect();
    match tokio::time::timeout(ORIGIN_BODY_TIMEOUT, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(json_error(
            StatusCode::BAD_GATEWAY,
            format!("playlist from the origin is larger than {MAX_PLAYLIST_BYTES} bytes"),
        )),
        Ok(Err(e)) => Err(json_error(
            StatusCode::BAD_GATEWAY,
            format!("reading the playlist from the origin failed: {e}"),
        )),
        Err(_) => Err(json_error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the origin did not send the playlist within {ORIGIN_BODY_TIMEOUT:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_hex() {
        let a = new_session_id();
        let b = new_session_id();
        assert!(is_session_id(&a) && is_session_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!is_session_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_session_id("abc"));
    }

    #[test]
    fn dispatch() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(is_hls(&uri("/live/s.m3u8")));
        assert!(is_hls(&uri("/live/S.M3U8?token=1")));
        assert!(is_hls(&uri("/live/s-0.ts?hls_ctx=1&spbhid=x")));
        assert!(is_hls(&uri("/live/init.mp4?spbhid")));
        assert!(!is_hls(&uri("/live/s.ts")));
        assert!(!is_hls(&uri("/live/s.flv?spbhidx=1")));
    }

    #[test]
    fn key_match_is_the_app_directory() {
        let segs = |p: &str| clean_request_path(p).unwrap().segments;
        assert!(under_app(&segs("/live/s-0.ts"), "live"));
        assert!(under_app(&segs("/live/s/0.ts"), "live"));
        assert!(under_app(&segs("/a/b/s.m3u8"), "a/b"));
        assert!(!under_app(&segs("/a/s.m3u8"), "a/b"));
        assert!(!under_app(&segs("/other/s-0.ts"), "live"));
        assert!(!under_app(&segs("/live"), "live"));
        assert!(!under_app(&segs("/livex/s.ts"), "live"));
    }

    #[test]
    fn playlist_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_playlist_type(&h));
        h.insert(header::CONTENT_TYPE, "video/mp2t".parse().unwrap());
        assert!(!is_playlist_type(&h));
        h.insert(
            header::CONTENT_TYPE,
            "Application/X-MpegURL; charset=utf-8".parse().unwrap(),
        );
        assert!(is_playlist_type(&h));
    }
}
