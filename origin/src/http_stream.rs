//! The HTTP stream listener, dispatching on the path's extension:
//!
//! - `GET /app/stream.flv`: live HTTP-FLV.
//! - `GET /app/stream.ts`: live HTTP-TS, the same fan-out remuxed to MPEG-TS; for a stream
//!   published over SRT, its TS packets as they come (after PAT, PMT and the last keyframe on).
//! - `GET /app/stream.m3u8`: HLS. With `hls_ctx` on (SRS's default shape), a request without an
//!   `hls_ctx` query gets a one-variant master playlist pointing at
//!   `/app/stream.m3u8?hls_ctx=<id>`, which gets the media playlist; with it off, the media
//!   playlist comes at once.
//! - `GET /app/stream-<seq>.ts`: HLS segment `<seq>` of `app/stream`.
//!
//! `.ts` names are ambiguous: `live/x-1.ts` is segment 1 of `live/x` or the live stream
//! `live/x-1`. The rule: a name of the form `<stream>-<digits>` is a segment when `<stream>` is
//! published and still has that segment; otherwise it is the live stream of that whole name.
//! A `.ts` request carrying `hls_ctx` is always a segment request (404 once the segment is gone).
//!
//! Unknown extensions, and streams nobody publishes, get a 404 with a short text body.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{Bytes, BytesMut};
use tracing::Instrument;

use crate::hls::{self, HlsSettings};
use crate::hub::{Hub, Player, TsPlayer};
use crate::media::{Media, MediaKind};
use srs_cluster::{query_param, StreamKey};
use srs_ts::Remuxer;

/// Flush a response chunk once this many bytes are batched.
const CHUNK_BYTES: usize = 64 * 1024;

/// Length of the random `hls_ctx` session ids, as SRS's.
const HLS_CTX_LEN: usize = 8;

/// What the HTTP stream handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The streams.
    pub hub: Hub,
    /// HLS serving settings (`hls_ctx`).
    pub hls: HlsSettings,
    /// How long a playlist request waits for a published stream's first segment.
    pub hls_wait: Duration,
}

/// The router of the HTTP stream listener.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(srs_common::http::cors())
        .with_state(state)
}

async fn dispatch(
    State(state): State<HttpState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are supported\n",
        );
    }
    let path = uri.path();
    let Some((_, ext)) = path.rsplit_once('.').filter(|(base, _)| !base.is_empty()) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let Ok(key) = StreamKey::from_http(host, path, uri.query()) else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: expected /app/stream.ext\n",
        );
    };
    let head_only = method == Method::HEAD;
    match ext {
        "flv" => serve_flv(&state.hub, key, head_only),
        "m3u8" => serve_m3u8(&state, key, path, uri.query()).await,
        "ts" => serve_ts(&state.hub, key, uri.query(), head_only),
        _ => text(StatusCode::NOT_FOUND, "not found: unsupported extension\n"),
    }
}

/// Serves an HLS playlist: SRS's master playlist for a new `hls_ctx` session, or the media
/// playlist. A published stream without a finished segment yet is waited for, up to
/// `hls_wait`, so players that start right after the publisher do not fail.
async fn serve_m3u8(
    state: &HttpState,
    key: StreamKey,
    path: &str,
    query: Option<&str>,
) -> Response {
    if !state.hub.hls_ready(&key, state.hls_wait).await {
        return text(
            StatusCode::NOT_FOUND,
            "stream not found or no HLS segment yet\n",
        );
    }
    let query = query.unwrap_or("");
    let ctx = query_param(query, "hls_ctx").filter(|c| !c.is_empty());
    let others = without_param(query, "hls_ctx");
    if state.hls.ctx && ctx.is_none() {
        let ctx = crate::config::random_id(HLS_CTX_LEN);
        return playlist_response(hls::master_playlist(path, &ctx, others.as_deref()));
    }
    // Segment URIs keep the session id and the other parameters (vhost, tokens).
    let segment_query = match (ctx, others) {
        (Some(ctx), Some(o)) => Some(format!("hls_ctx={ctx}&{o}")),
        (Some(ctx), None) => Some(format!("hls_ctx={ctx}")),
        (None, o) => o,
    };
    // The stream's name as sent (still percent-encoded), so relative segment URIs resolve
    // next to the playlist.
    let name = path
        .rsplit('/')
        .next()
        .and_then(|last| last.strip_suffix(".m3u8"))
        .unwrap_or(&key.stream);
    match state
        .hub
        .with_hls(&key, |h| h.media_playlist(name, segment_query.as_deref()))
    {
        Some(body) => playlist_response(body),
        None => text(StatusCode::NOT_FOUND, "stream not found\n"),
    }
}

/// `query` without its `name=` parameters, `None` when nothing is left.
fn without_param(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

fn playlist_response(body: String) -> Response {
    let mut response = whole_body("application/vnd.apple.mpegurl", Bytes::from(body));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Serves a `.ts` request: an HLS segment or the live HTTP-TS stream (see the module docs for
/// the naming rule).
fn serve_ts(hub: &Hub, key: StreamKey, query: Option<&str>, head_only: bool) -> Response {
    let segment_only = query.is_some_and(|q| query_param(q, "hls_ctx").is_some());
    if let Some((stream, seq)) = hls::parse_segment_name(&key.stream) {
        let owner = StreamKey {
            stream: stream.to_string(),
            ..key.clone()
        };
        if let Some(data) = hub.with_hls(&owner, |h| h.segment(seq)).flatten() {
            return whole_body("video/mp2t", data);
        }
    }
    if segment_only {
        return text(StatusCode::NOT_FOUND, "HLS segment not found\n");
    }
    serve_live_ts(hub, key, head_only)
}

/// A 200 response with a whole body: its type and Content-Length.
fn whole_body(content_type: &'static str, body: Bytes) -> Response {
    let len = body.len();
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// Streams live MPEG-TS: an SRT stream's packets as they come, or for an FLV stream PAT/PMT,
/// then the player's start sequence and live messages remuxed.
fn serve_live_ts(hub: &Hub, key: StreamKey, head_only: bool) -> Response {
    if let Some(player) = hub.play_ts(&key) {
        return live_response(&key, head_only, "video/mp2t", "http-ts", |span| {
            Body::from_stream(ts_passthrough(player, span))
        });
    }
    serve_live(
        hub,
        key,
        head_only,
        "video/mp2t",
        "http-ts",
        |player, span| Body::from_stream(ts_stream(player, span)),
    )
}

/// Answers a live-stream request: 404 when nobody publishes `key`, else the streaming response
/// (`Content-Type`, no caching) whose body, unless `head_only`, `body` builds from a new
/// player of the stream and its tracing span.
fn serve_live(
    hub: &Hub,
    key: StreamKey,
    head_only: bool,
    content_type: &'static str,
    protocol: &'static str,
    body: impl FnOnce(Player, tracing::Span) -> Body,
) -> Response {
    let Some(player) = hub.play(&key) else {
        return text(StatusCode::NOT_FOUND, "stream not found\n");
    };
    live_response(&key, head_only, content_type, protocol, |span| {
        body(player, span)
    })
}

/// The streaming response of a live player of `key`, whose body, unless `head_only`, `body`
/// builds from the player's tracing span.
fn live_response(
    key: &StreamKey,
    head_only: bool,
    content_type: &'static str,
    protocol: &'static str,
    body: impl FnOnce(tracing::Span) -> Body,
) -> Response {
    let body = if head_only {
        Body::empty()
    } else {
        let cid = crate::config::random_id(8);
        let span = tracing::info_span!("player", protocol, id = %cid, stream = %key);
        span.in_scope(|| tracing::info!("player joined"));
        body(span)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The MPEG-TS byte stream of one player, pulled like [`flv_stream`] so a slow client falls
/// behind and is dropped by the hub, and a client that goes away drops the player.
fn ts_stream(
    player: Player,
    span: tracing::Span,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    struct State {
        player: Player,
        remuxer: Remuxer,
        warned: bool,
        guard: LeaveLog,
    }
    let state = State {
        player,
        remuxer: Remuxer::new(),
        warned: false,
        guard: LeaveLog(span),
    };
    futures_util::stream::unfold(state, |mut state| {
        let span = state.guard.0.clone();
        async move {
            let mut out = Vec::new();
            // Messages that produce no bytes (headers, frames before the first keyframe) must
            // not end up as empty chunks.
            while out.is_empty() {
                let first = state.player.recv().await?;
                remux(&mut state.remuxer, &first, &mut out, &mut state.warned);
                while out.len() < CHUNK_BYTES {
                    match state.player.try_recv() {
                        Some(m) => remux(&mut state.remuxer, &m, &mut out, &mut state.warned),
                        None => break,
                    }
                }
            }
            Some((Ok(Bytes::from(out)), state))
        }
        .instrument(span)
    })
}

/// The packets of an MPEG-TS (SRT) stream for one player, batched up to [`CHUNK_BYTES`] and
/// pulled like [`flv_stream`].
fn ts_passthrough(
    player: TsPlayer,
    span: tracing::Span,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let state = (player, LeaveLog(span));
    futures_util::stream::unfold(state, |(mut player, guard)| {
        let span = guard.0.clone();
        async move {
            let first = player.recv().await?;
            let mut out = BytesMut::from(&first[..]);
            while out.len() < CHUNK_BYTES {
                match player.try_recv() {
                    Some(chunk) => out.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Some((Ok(out.freeze()), (player, guard)))
        }
        .instrument(span)
    })
}

fn remux(remuxer: &mut Remuxer, m: &Media, out: &mut Vec<u8>, warned: &mut bool) {
    let result = match m.kind {
        MediaKind::Video => remuxer.push_video(m.timestamp, &m.payload, out),
        MediaKind::Audio => remuxer.push_audio(m.timestamp, &m.payload, out),
        MediaKind::Data => return,
    };
    if let Err(e) = result {
        // An unsupported codec would otherwise log every frame.
        if *warned {
            tracing::debug!(error = %e, "message skipped");
        } else {
            *warned = true;
            tracing::warn!(error = %e, "message skipped (further ones logged at debug)");
        }
    }
}

/// Streams a live FLV: header, then the player's start sequence and live tags.
fn serve_flv(hub: &Hub, key: StreamKey, head_only: bool) -> Response {
    serve_live(
        hub,
        key,
        head_only,
        "video/x-flv",
        "http-flv",
        |player, span| Body::from_stream(flv_stream(player, span)),
    )
}

/// The FLV byte stream of one player. It pulls from the player's bounded hub queue only as fast
/// as the client reads, so a slow client falls behind and is dropped by the hub; when the
/// client goes away the stream, and with it the player, is dropped.
fn flv_stream(
    player: Player,
    span: tracing::Span,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    struct State {
        player: Player,
        header_sent: bool,
        guard: LeaveLog,
    }
    let state = State {
        player,
        header_sent: false,
        guard: LeaveLog(span),
    };
    futures_util::stream::unfold(state, |mut state| {
        let span = state.guard.0.clone();
        async move {
            let mut out = BytesMut::new();
            if !state.header_sent {
                state.header_sent = true;
                out.extend_from_slice(&srs_rtmp::flv::flv_header(true, true));
            }
            let first = state.player.recv().await?;
            write_tag(&mut out, &first);
            while out.len() < CHUNK_BYTES {
                match state.player.try_recv() {
                    Some(m) => write_tag(&mut out, &m),
                    None => break,
                }
            }
            Some((Ok(out.freeze()), state))
        }
        .instrument(span)
    })
}

/// Logs, in the player's span, when an HTTP-FLV or HTTP-TS player's stream ends, whatever the reason.
struct LeaveLog(tracing::Span);

impl Drop for LeaveLog {
    fn drop(&mut self) {
        self.0.in_scope(|| tracing::info!("player left"));
    }
}

fn write_tag(out: &mut BytesMut, m: &Media) {
    srs_rtmp::flv::write_tag(out, m.kind.type_id(), m.timestamp, &m.payload);
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
