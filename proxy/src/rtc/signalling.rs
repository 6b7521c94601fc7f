//! WebRTC signalling through the proxy (docs/design.md §6.5): WHIP (`POST /rtc/v1/whip/`), WHEP
//! (`POST /rtc/v1/whep/`), SRS's JSON API (`POST /rtc/v1/publish/`, `/rtc/v1/play/`) and the
//! `DELETE` of a session, on the HTTP API listener.
//!
//! An offer is checked (an SDP, with an ICE ufrag), the stream's owner is picked among origins
//! with `api` and `rtc` endpoints, and the request goes to the owner's API with its path, query,
//! headers (an `Authorization` included) and the client's address in `X-Forwarded-For`. A
//! successful answer has its candidates rewritten to the proxy's UDP port and its `Location`
//! pointed back at the proxy; the session is recorded in the store under the ICE username its
//! connectivity checks will carry (`answerUfrag:offerUfrag`), so the UDP relay of any proxy on
//! the store can route it. Anything else from the origin reaches the client as it came.

use std::fmt::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use srs_cluster::{Direction, Protocol, StreamKey};
use srs_lb::{SessionKind, SessionRecord};
use srs_rtc::{ice_credentials, rewrite_candidates, validate, MAX_SDP};
use tracing::{info, info_span, warn, Instrument};

use super::RtcEvent;
use crate::http::origin::{
    connect_error_status, end_to_end, origin_request_with_body, send, upstream_error_response,
    ORIGIN_BODY_TIMEOUT,
};
use crate::http::{client_addr, client_ip, json_error, loop_refusal};
use crate::state::State;
use crate::upstream::{ConnectError, ErrorChain};

/// The query parameter the proxy adds to a session's `Location`: the session's id in the store.
pub const SESSION_PARAM: &str = "proxy_session";

/// Largest request or origin response body: an SDP of [`MAX_SDP`], or SRS's JSON around one.
pub const MAX_BODY: usize = 2 * MAX_SDP;

/// Which signalling API a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// WHIP (RFC 9725) or WHEP: the SDP is the body; the answer comes with `201 Created`.
    Whip,
    /// SRS's JSON API: `{"streamurl":…,"sdp":…}` answered `{"code":0,"sdp":…,"sessionid":…}`.
    Json,
}

/// Handles one offer (`POST`) of `api` in `direction`.
pub async fn offer(state: State, api: Api, direction: Direction, request: Request) -> Response {
    let id = state.session_id();
    let client = client_addr(&request);
    let span = info_span!("rtc", id, client = %client, %direction, stream = tracing::field::Empty);
    offer_in_span(state, api, direction, request)
        .instrument(span)
        .await
}

async fn offer_in_span(state: State, api: Api, direction: Direction, request: Request) -> Response {
    if let Some(looped) = loop_refusal(&state, &request) {
        return looped;
    }
    if !state.lifecycle.is_admitting() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "draining: shutting down");
    }
    let client = client_ip(&request);
    let (parts, body) = request.into_parts();
    let body = match read_limited(body, MAX_BODY).await {
        Ok(b) => b,
        Err(status) => {
            return json_error(
                status,
                format!("the offer must be at most {MAX_BODY} bytes"),
            )
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let uri = &parts.uri;
    let (key, sdp) = match api {
        Api::Whip => {
            let key = match StreamKey::from_http(host, uri.path(), uri.query()) {
                Ok(key) => key,
                Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad stream: {e}")),
            };
            let Ok(sdp) = std::str::from_utf8(&body) else {
                return json_error(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
            };
            (key, sdp.to_string())
        }
        Api::Json => match json_offer(&body) {
            Ok(parsed) => parsed,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
        },
    };
    if let Err(e) = validate(&sdp) {
        return json_error(StatusCode::BAD_REQUEST, format!("bad offer: {e}"));
    }
    let offer_ufrag = match ice_credentials(&sdp) {
        Ok(c) => c.ufrag.to_string(),
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad offer: {e}")),
    };
    tracing::Span::current().record("stream", tracing::field::display(&key));
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let connected = state
        .upstream
        .connect(&key, Protocol::Rtc, None, |target| {
            let api_addr = target.info.and_then(|i| i.api_addr()).map(str::to_string);
            let rtc_addrs: Vec<String> = target.info.map(|i| i.rtc.clone()).unwrap_or_default();
            let rtc_default = target.addr.to_string();
            let headers = &parts.headers;
            let body = body.clone();
            let http = &state.http;
            let via = state.proxy_id.as_str();
            let timeout = state.config.origin_response_timeout;
            async move {
                let Some(api_addr) = api_addr else {
                    return Err(ConnectError::BadRequest(
                        "the origin has no api endpoint".into(),
                    ));
                };
                let request = origin_request_with_body(
                    &api_addr,
                    &Method::POST,
                    path_and_query,
                    headers,
                    client,
                    via,
                    body,
                )?;
                let response = send(http, &api_addr, request, timeout).await?;
                let (head, body) = response.into_parts();
                let body = read_origin_body(body, &api_addr).await?;
                Ok(OriginAnswer {
                    api_addr,
                    rtc_addrs,
                    rtc_default,
                    head,
                    body,
                })
            }
        })
        .await;
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            warn!(stream = %key, error = %ErrorChain(&e), "WebRTC offer not relayed");
            return upstream_error_response(&e);
        }
    };
    let origin_id = connected.origin_id;
    let answer = connected.conn;
    let success = answer.head.status.is_success();
    let answer_sdp = match (api, success) {
        (_, false) => None,
        (Api::Whip, true) => std::str::from_utf8(&answer.body).ok().map(str::to_string),
        (Api::Json, true) => json_answer_sdp(&answer.body),
    };
    let Some(answer_sdp) = answer_sdp else {
        info!(stream = %key, origin = %origin_id, status = answer.head.status.as_u16(), "origin refused the offer");
        return relay_unchanged(answer.head, answer.body);
    };
    let credentials = match ice_credentials(&answer_sdp) {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_GATEWAY, format!("origin's answer: {e}")),
    };
    let port = state.config.webrtc_server.port();
    let rewritten =
        match rewrite_candidates(&answer_sdp, port, state.config.webrtc_candidate.as_deref()) {
            Ok(r) => r,
            Err(e) => return json_error(StatusCode::BAD_GATEWAY, format!("origin's answer: {e}")),
        };
    // Media goes to the registered `rtc` endpoint the answer's candidates name, if one does.
    let origin_addr = answer
        .rtc_addrs
        .iter()
        .find(|a| {
            a.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_some_and(|p| rewritten.origin_candidates.iter().any(|c| c.port() == p))
        })
        .cloned()
        .unwrap_or(answer.rtc_default);
    let session_id = format!("{}:{offer_ufrag}", credentials.ufrag);
    let record = SessionRecord {
        kind: SessionKind::Rtc,
        id: session_id.clone(),
        key: key.clone(),
        origin_id: origin_id.clone(),
        origin_addr: origin_addr.clone(),
        direction: Some(direction),
        origin_api: Some(answer.api_addr.clone()),
        secret: Some(credentials.pwd.to_string()),
    };
    let location = location(&answer.head.headers, &session_id);
    if let Err(e) = state.store.put_session(&record).await {
        warn!(stream = %key, error = %e, "cannot record the WebRTC session; ending it at the origin");
        if let Some(origin_path) = answer
            .head
            .headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(path_of)
        {
            let request = origin_request_with_body(
                &answer.api_addr,
                &Method::DELETE,
                &origin_path,
                &HeaderMap::new(),
                None,
                &state.proxy_id,
                Bytes::new(),
            );
            if let Ok(request) = request {
                let timeout = state.config.origin_response_timeout;
                let _ = send(&state.http, &answer.api_addr, request, timeout).await;
            }
        }
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot record the WebRTC session: {e}"),
        );
    }
    info!(stream = %key, origin = %origin_id, origin_udp = %origin_addr, ice_username = %session_id, "WebRTC session signalled");
    let body = match api {
        Api::Whip => Bytes::from(rewritten.sdp),
        Api::Json => match json_with_sdp(&answer.body, rewritten.sdp) {
            Some(b) => b,
            None => return json_error(StatusCode::BAD_GATEWAY, "origin's answer is not JSON"),
        },
    };
    let mut response = relay_unchanged(answer.head, body);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `DELETE` of a session the proxy signalled: forwarded to the origin that answered it, at the
/// origin's own `Location`; the record is forgotten and the local relay drops the session.
pub async fn delete(state: State, request: Request) -> Response {
    let Some(session_id) = request
        .uri()
        .query()
        .and_then(|q| srs_cluster::query_param(q, SESSION_PARAM))
        .and_then(|v| srs_cluster::percent_decode(v).ok())
    else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("no {SESSION_PARAM} in the URL: not a session of this proxy"),
        );
    };
    let span = info_span!("rtc", ice_username = %session_id);
    async move {
        let record = match state.store.get_session(SessionKind::Rtc, &session_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return json_error(StatusCode::NOT_FOUND, "no such WebRTC session"),
            Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e),
        };
        let Some(api_addr) = record.origin_api.clone() else {
            return json_error(StatusCode::NOT_FOUND, "no such WebRTC session");
        };
        let path = without_session_param(request.uri().path(), request.uri().query());
        let client = client_ip(&request);
        let forwarded = origin_request_with_body(
            &api_addr,
            &Method::DELETE,
            &path,
            request.headers(),
            client,
            &state.proxy_id,
            Bytes::new(),
        );
        let answer = match forwarded {
            Ok(r) => {
                let timeout = state.config.origin_response_timeout;
                send(&state.http, &api_addr, r, timeout).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = state.store.delete_session(SessionKind::Rtc, &session_id).await {
            warn!(error = %e, "cannot forget the WebRTC session record");
        }
        let _ = state
            .rtc_events
            .send(RtcEvent::Deleted {
                id: session_id.clone(),
            })
            .await;
        match answer {
            Ok(response) => {
                let (head, body) = response.into_parts();
                info!(stream = %record.key, origin = %record.origin_id, status = head.status.as_u16(), "WebRTC session deleted");
                match read_origin_body(body, &api_addr).await {
                    Ok(body) => relay_unchanged(head, body),
                    Err(e) => json_error(connect_error_status(&e), ErrorChain(&e)),
                }
            }
            Err(e) => {
                warn!(error = %ErrorChain(&e), "DELETE not relayed to the origin");
                json_error(connect_error_status(&e), ErrorChain(&e))
            }
        }
    }
    .instrument(span)
    .await
}

/// What the origin answered an offer with, and where it is.
struct OriginAnswer {
    api_addr: String,
    rtc_addrs: Vec<String>,
    rtc_default: String,
    head: hyper::http::response::Parts,
    body: Bytes,
}

/// The client's body, at most `limit` bytes; 413 beyond, 400 when it breaks off.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, StatusCode> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            })
        }
    }
}

/// The origin's response body, at most [`MAX_BODY`] bytes within [`ORIGIN_BODY_TIMEOUT`].
async fn read_origin_body(body: Incoming, addr: &str) -> Result<Bytes, ConnectError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(ORIGIN_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(ConnectError::Failed {
            addr: addr.to_string(),
            source: e,
        }),
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.to_string(),
            after: ORIGIN_BODY_TIMEOUT,
        }),
    }
}

/// The origin's status and end-to-end headers with `body`.
fn relay_unchanged(head: hyper::http::response::Parts, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = head.status;
    let headers = response.headers_mut();
    for (name, value) in end_to_end(&head.headers) {
        if name != header::CONTENT_LENGTH {
            headers.append(name, value.clone());
        }
    }
    response
}

/// Key and SDP of a JSON API offer: `streamurl` `webrtc://host/app/stream[?query]` and `sdp`.
fn json_offer(body: &[u8]) -> Result<(StreamKey, String), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let url = v
        .get("streamurl")
        .and_then(Value::as_str)
        .ok_or("no streamurl")?;
    let sdp = v.get("sdp").and_then(Value::as_str).ok_or("no sdp")?;
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (tc_url, stream) = base
        .rsplit_once('/')
        .ok_or("streamurl without /app/stream")?;
    let stream = if query.is_empty() {
        stream.to_string()
    } else {
        format!("{stream}?{query}")
    };
    let key = StreamKey::from_rtmp(tc_url, &stream).map_err(|e| format!("bad streamurl: {e}"))?;
    Ok((key, sdp.to_string()))
}

/// The `sdp` of a JSON API answer with `code` 0.
fn json_answer_sdp(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("code").and_then(Value::as_i64) != Some(0) {
        return None;
    }
    v.get("sdp").and_then(Value::as_str).map(str::to_string)
}

/// The JSON answer with its `sdp` replaced.
fn json_with_sdp(body: &[u8], sdp: String) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    *v.get_mut("sdp")? = Value::String(sdp);
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// The path and query of a `Location` value, absolute (`http://host/p?q`) or not.
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => location.to_string(),
    }
}

/// The proxy's `Location` for a session: the origin's path and query with [`SESSION_PARAM`];
/// `None` when the origin gave none (SRS's JSON API).
fn location(headers: &HeaderMap, session_id: &str) -> Option<HeaderValue> {
    let origin = headers.get(header::LOCATION)?.to_str().ok()?;
    let path = path_of(origin);
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut value = format!("{path}{separator}{SESSION_PARAM}=");
    for b in session_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            value.push(char::from(b));
        } else {
            let _ = write!(value, "%{b:02X}");
        }
    }
    HeaderValue::from_str(&value).ok()
}

/// `path?query` without the [`SESSION_PARAM`] parameter.
fn without_session_param(path: &str, query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(SESSION_PARAM))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_points_back_at_the_proxy_and_delete_strips_the_parameter() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            "http://10.0.0.1:1985/rtc/v1/whip/?app=live&stream=s&session=ab"
                .parse()
                .unwrap(),
        );
        let l = location(&h, "835e611f:I9X+/w").unwrap();
        assert_eq!(
            l,
            "/rtc/v1/whip/?app=live&stream=s&session=ab&proxy_session=835e611f%3AI9X%2B%2Fw"
        );
        let uri: axum::http::Uri = l.to_str().unwrap().parse().unwrap();
        let id = srs_cluster::query_param(uri.query().unwrap(), SESSION_PARAM).unwrap();
        assert_eq!(srs_cluster::percent_decode(id).unwrap(), "835e611f:I9X+/w");
        assert_eq!(
            without_session_param(uri.path(), uri.query()),
            "/rtc/v1/whip/?app=live&stream=s&session=ab"
        );
        h.insert(header::LOCATION, "/rtc/v1/session/xyz".parse().unwrap());
        assert_eq!(
            location(&h, "a:b").unwrap(),
            "/rtc/v1/session/xyz?proxy_session=a%3Ab"
        );
        assert_eq!(
            without_session_param("/rtc/v1/session/xyz", Some("proxy_session=a%3Ab")),
            "/rtc/v1/session/xyz"
        );
        assert!(location(&HeaderMap::new(), "a:b").is_none());
    }

    #[test]
    fn json_api_offers_and_answers() {
        let body = br#"{"api":"http://h:1985/rtc/v1/play/","streamurl":"webrtc://h.example.com/live/s?token=1","sdp":"v=0"}"#;
        let (key, sdp) = json_offer(body).unwrap();
        assert_eq!(key.to_string(), "h.example.com/live/s");
        assert_eq!(sdp, "v=0");
        assert!(json_offer(br#"{"sdp":"v=0"}"#)
            .unwrap_err()
            .contains("streamurl"));
        assert!(json_offer(br#"{"streamurl":"webrtc://h/live/s"}"#)
            .unwrap_err()
            .contains("sdp"));
        assert!(json_offer(b"nope").is_err());
        let answer = br#"{"code":0,"server":"vid","sdp":"old","sessionid":"x:y"}"#;
        assert_eq!(json_answer_sdp(answer).as_deref(), Some("old"));
        assert_eq!(json_answer_sdp(br#"{"code":400,"sdp":"old"}"#), None);
        let replaced: Value =
            serde_json::from_slice(&json_with_sdp(answer, "new".into()).unwrap()).unwrap();
        assert_eq!(replaced["sdp"], "new");
        assert_eq!(replaced["sessionid"], "x:y");
    }
}
