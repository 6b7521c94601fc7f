//! The HTTP stream listener: `GET /app/stream.flv` serves HTTP-FLV.
//!
//! Requests are dispatched on the path's extension so other formats (`.ts`, `.m3u8`) can be
//! added beside `.flv`; unknown extensions get a 404 with a short text body.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{Bytes, BytesMut};
use tracing::Instrument;

use crate::hub::{Hub, Player};
use crate::media::Media;
use srs_lb::key::StreamKey;

/// Flush a response chunk once this many bytes are batched.
const CHUNK_BYTES: usize = 64 * 1024;

/// The router of the HTTP stream listener.
pub fn router(hub: Hub) -> Router {
    Router::new().fallback(dispatch).with_state(hub)
}

async fn dispatch(
    State(hub): State<Hub>,
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
    match ext {
        "flv" => serve_flv(&hub, key, method == Method::HEAD),
        _ => text(StatusCode::NOT_FOUND, "not found: unsupported extension\n"),
    }
}

/// Streams a live FLV: header, then the player's start sequence and live tags.
fn serve_flv(hub: &Hub, key: StreamKey, head_only: bool) -> Response {
    let Some(player) = hub.play(&key) else {
        return text(StatusCode::NOT_FOUND, "stream not found\n");
    };
    let body = if head_only {
        Body::empty()
    } else {
        let cid = crate::config::random_id(8);
        let span = tracing::info_span!("http-flv", id = %cid, stream = %key);
        span.in_scope(|| tracing::info!("player joined"));
        Body::from_stream(flv_stream(player, span))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/x-flv"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
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

/// Logs, in the player's span, when an HTTP-FLV player's stream ends, whatever the reason.
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
