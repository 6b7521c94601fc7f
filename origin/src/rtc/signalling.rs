//! WebRTC signalling on the HTTP API listener: WHIP (RFC 9725) and WHEP at SRS's paths, and
//! SRS's older JSON API.
//!
//! - `POST /rtc/v1/whip/?app=A&stream=S` (publish) and `POST /rtc/v1/whep/?app=A&stream=S`
//!   (play): body an SDP offer (`application/sdp`, at most [`MAX_SDP_BYTES`]) → `201 Created`,
//!   the SDP answer, and `Location: /rtc/v1/whip/?app=A&stream=S&session=ID` (`whep` for
//!   players; `&vhost=V` too when the stream has one). The Location names app and stream, so a
//!   stateless proxy can route the `DELETE` by stream key like the `POST`.
//! - `DELETE` on that Location ends the session: 200, or 404 for a session that is not open.
//! - `POST /rtc/v1/publish/` and `POST /rtc/v1/play/` with JSON
//!   `{"streamurl":"webrtc://host/app/stream","sdp":"<offer>"}` (`api`, `clientip`, `tid` and
//!   unknown fields ignored) → 200 `{"code":0,"server":..,"service":..,"pid":..,"sdp":"<answer>",
//!   "sessionid":"<id>"}`.
//! - Errors: 400 (missing app/stream, bad SDP), 401 + `WWW-Authenticate: Bearer` (token set,
//!   header missing or wrong; RFC 6750 §3), 409 (stream already published), 413 (offer too
//!   large), 415 (not `application/sdp`), 503 (too many sessions). WHIP/WHEP errors carry the
//!   reason as text; the JSON API answers `{"code":<HTTP status>,"error":"<reason>"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use srs_cluster::StreamKey;
use subtle::ConstantTimeEq;

use super::{OpenError, Role, RtcServer, MAX_SDP_BYTES};
use crate::api::Identity;

/// Largest JSON API body: an SDP offer, JSON-escaped, and a few fields.
const MAX_JSON_BYTES: usize = 2 * MAX_SDP_BYTES;

/// Longest session id accepted in a query; ours are 16 characters.
const MAX_SESSION_ID: usize = 64;

#[derive(Clone)]
struct Signalling {
    server: RtcServer,
    token: Option<Arc<str>>,
    id: Arc<Identity>,
}

/// The signalling routes; `token` (`ORIGIN_RTC_TOKEN`) is the bearer token every request must
/// carry, `None` for none.
pub fn router(server: RtcServer, token: Option<String>, id: Identity) -> Router {
    type S = State<Signalling>;
    let whip = post(|s: S, r: Request| offer(s, r, Role::Publish))
        .delete(|s: S, r: Request| delete(s, r, Role::Publish));
    let whep = post(|s: S, r: Request| offer(s, r, Role::Play))
        .delete(|s: S, r: Request| delete(s, r, Role::Play));
    let publish = post(|s: S, r: Request| json_api(s, r, Role::Publish));
    let play = post(|s: S, r: Request| json_api(s, r, Role::Play));
    Router::new()
        .route("/rtc/v1/whip/", whip.clone())
        .route("/rtc/v1/whip", whip)
        .route("/rtc/v1/whep/", whep.clone())
        .route("/rtc/v1/whep", whep)
        .route("/rtc/v1/publish/", publish.clone())
        .route("/rtc/v1/publish", publish)
        .route("/rtc/v1/play/", play.clone())
        .route("/rtc/v1/play", play)
        .with_state(Signalling {
            server,
            token: token.map(Arc::from),
            id: Arc::new(id),
        })
}

/// A signalling failure: the status and the reason.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    reason: String,
}

impl Failure {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// As a WHIP/WHEP answer: the reason as text.
    fn text(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.reason)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }

    /// As a JSON API answer: `{"code":<status>,"error":<reason>}`.
    fn json(self) -> Response {
        let body = json!({"code": self.status.as_u16(), "error": self.reason});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Self {
        let status = match e {
            OpenError::BadSdp(_) => StatusCode::BAD_REQUEST,
            OpenError::AlreadyPublishing(_) => StatusCode::CONFLICT,
            OpenError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            OpenError::Stopped => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

/// WHIP/WHEP `POST`: negotiates a session from the SDP offer in the body.
async fn offer(State(s): State<Signalling>, request: Request, role: Role) -> Response {
    match offer_inner(&s, request, role).await {
        Ok(r) => r,
        Err(f) => f.text(),
    }
}

async fn offer_inner(s: &Signalling, request: Request, role: Role) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    authorize(&parts.headers, s.token.as_deref())?;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/sdp") {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be application/sdp, not {ct:?}"),
            ));
        }
    }
    let query = parts.uri.query().unwrap_or("");
    let key = stream_key(&parts.headers, parts.uri.path(), query)?;
    let sdp = read_body(body, MAX_SDP_BYTES).await?;
    let sdp = String::from_utf8(sdp.to_vec())
        .map_err(|_| Failure::new(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8"))?;
    let opened = s
        .server
        .open(role, key.clone(), &sdp, peer(&parts.extensions))
        .await?;
    let location = location(role, &key, &opened.id);
    let mut response = (StatusCode::CREATED, opened.answer).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    Ok(response)
}

/// WHIP/WHEP `DELETE` of a session resource.
async fn delete(State(s): State<Signalling>, request: Request, role: Role) -> Response {
    // Only the head matters; the body is not Sync, so it must not live across an await.
    let (parts, _) = request.into_parts();
    let result = async {
        authorize(&parts.headers, s.token.as_deref())?;
        let query = parts.uri.query().unwrap_or("");
        let key = stream_key(&parts.headers, parts.uri.path(), query)?;
        let id = session_param(query)?;
        if s.server.close(id, role, key).await {
            Ok((StatusCode::OK, "session closed\n").into_response())
        } else {
            Err(Failure::new(StatusCode::NOT_FOUND, "no such session"))
        }
    }
    .await;
    result.unwrap_or_else(Failure::text)
}

/// SRS's JSON request body; other fields are ignored.
#[derive(Debug, Deserialize)]
pub struct JsonRequest {
    /// `webrtc://host/app/stream[?vhost=..]`.
    pub streamurl: String,
    /// The SDP offer.
    pub sdp: String,
    /// The API URL the client used (informational).
    #[serde(default)]
    pub api: Option<String>,
    /// The client's address as it sees it (informational).
    #[serde(default)]
    pub clientip: Option<String>,
    /// A client transaction id (informational).
    #[serde(default)]
    pub tid: Option<String>,
}

/// Parses a JSON API body. Errors: the reason, for a 400.
pub fn parse_json_request(body: &[u8]) -> Result<(JsonRequest, StreamKey), String> {
    let request: JsonRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))?;
    let key = streamurl_key(&request.streamurl)?;
    Ok((request, key))
}

/// The key of a `webrtc://host/app/stream[?query]` URL; the host and a `vhost` query parameter
/// give the vhost as for RTMP.
pub fn streamurl_key(url: &str) -> Result<StreamKey, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (tc_url, stream) = base
        .rsplit_once('/')
        .filter(|(tc, _)| tc.contains("://") && !tc.ends_with('/'))
        .ok_or_else(|| format!("streamurl {url:?} is not webrtc://host/app/stream"))?;
    let stream = if query.is_empty() {
        stream.to_string()
    } else {
        format!("{stream}?{query}")
    };
    StreamKey::from_rtmp(tc_url, &stream).map_err(|e| format!("streamurl {url:?}: {e}"))
}

/// SRS's JSON `POST /rtc/v1/publish/` and `/rtc/v1/play/`.
async fn json_api(State(s): State<Signalling>, request: Request, role: Role) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        authorize(&parts.headers, s.token.as_deref())?;
        let body = read_body(body, MAX_JSON_BYTES).await?;
        let (json_request, key) =
            parse_json_request(&body).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e))?;
        tracing::debug!(
            api = json_request.api.as_deref().unwrap_or(""),
            clientip = json_request.clientip.as_deref().unwrap_or(""),
            tid = json_request.tid.as_deref().unwrap_or(""),
            "JSON API request"
        );
        let opened = s
            .server
            .open(role, key, &json_request.sdp, peer(&parts.extensions))
            .await?;
        Ok(Json(json!({
            "code": 0,
            "server": s.id.server,
            "service": s.id.service,
            "pid": s.id.pid,
            "sdp": opened.answer,
            "sessionid": opened.id,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(Failure::json)
}

/// Checks `Authorization: Bearer <token>` when a token is configured, in constant time.
fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<(), Failure> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(Failure::new(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "Authorization: Bearer <token> required",
        )),
    }
}

/// The raw value of query parameter `name`, when present.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The stream key of a WHIP/WHEP request: `app` and `stream` must be in the query.
fn stream_key(headers: &HeaderMap, path: &str, query: &str) -> Result<StreamKey, Failure> {
    for name in ["app", "stream"] {
        if query_param(query, name).is_none_or(str::is_empty) {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("missing {name}: use ?app=<app>&stream=<stream>"),
            ));
        }
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    StreamKey::from_http(host, path, Some(query))
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("bad stream: {e}")))
}

/// The `session` query parameter of a DELETE: letters and digits only.
fn session_param(query: &str) -> Result<&str, Failure> {
    let id = query_param(query, "session")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Failure::new(StatusCode::BAD_REQUEST, "missing session"))?;
    if id.len() > MAX_SESSION_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such session"));
    }
    Ok(id)
}

/// The session resource of a WHIP (publish) or WHEP (play) session, relative to the listener.
pub fn location(role: Role, key: &StreamKey, id: &str) -> String {
    let path = match role {
        Role::Publish => "/rtc/v1/whip/",
        Role::Play => "/rtc/v1/whep/",
    };
    let mut out = format!(
        "{path}?app={}&stream={}&session={id}",
        encode(&key.app),
        encode(&key.stream)
    );
    if key.vhost != srs_cluster::DEFAULT_VHOST {
        out.push_str("&vhost=");
        out.push_str(&encode(&key.vhost));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters (§2.3).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Failure> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes (or cut short)"),
        )
    })
}

/// The signalling client's address, when the server recorded it.
fn peer(extensions: &http::Extensions) -> SocketAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0)
}

/// Why an offer does not fit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfferError {
    /// Not SDP at all.
    #[error("not SDP: it must start with v=0")]
    NotSdp,
    /// No `m=audio` or `m=video` section.
    #[error("no audio or video m= section")]
    NoMedia,
    /// A publisher's offer that sends nothing, or a player's that receives nothing.
    #[error("no audio or video m= section is {0}")]
    WrongDirection(&'static str),
}

/// Checks an offer before str0m parses it: SDP (RFC 8866 §5), with an audio or video section
/// whose direction (RFC 3264 §6.1; `sendrecv` when absent) fits the role: `sendonly` or
/// `sendrecv` to publish, `recvonly` or `sendrecv` to play.
pub fn check_offer(sdp: &str, role: Role) -> Result<(), OfferError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(OfferError::NotSdp);
    }
    let mut session_direction = "sendrecv";
    // Per audio/video section: its direction, if it has a line for one.
    let mut sections: Vec<Option<&str>> = Vec::new();
    let mut in_av = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            in_av = media.starts_with("audio ") || media.starts_with("video ");
            if in_av {
                sections.push(None);
            }
            continue;
        }
        let Some(direction) = line
            .strip_prefix("a=")
            .filter(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
        else {
            continue;
        };
        match sections.last_mut() {
            Some(d) if in_av => *d = Some(direction),
            None => session_direction = direction,
            Some(_) => {}
        }
    }
    if sections.is_empty() {
        return Err(OfferError::NoMedia);
    }
    let (fits, wanted): (&[&str], _) = match role {
        Role::Publish => (&["sendonly", "sendrecv"], "sendonly or sendrecv"),
        Role::Play => (&["recvonly", "sendrecv"], "recvonly or sendrecv"),
    };
    if sections
        .iter()
        .any(|d| fits.contains(&d.unwrap_or(session_direction)))
    {
        Ok(())
    } else {
        Err(OfferError::WrongDirection(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(lines: &[&str]) -> String {
        let mut s = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        for l in lines {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s
    }

    #[test]
    fn offers_are_checked_for_media_and_direction() {
        let publish = offer(&[
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=sendonly",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=sendonly",
        ]);
        assert_eq!(check_offer(&publish, Role::Publish), Ok(()));
        assert_eq!(
            check_offer(&publish, Role::Play),
            Err(OfferError::WrongDirection("recvonly or sendrecv"))
        );
        let play = offer(&["m=video 9 UDP/TLS/RTP/SAVPF 96", "a=recvonly"]);
        assert_eq!(check_offer(&play, Role::Play), Ok(()));
        assert!(check_offer(&play, Role::Publish).is_err());
        // No direction line: sendrecv, fits both; a session-level one applies to sections.
        let both = offer(&["m=video 9 UDP/TLS/RTP/SAVPF 96"]);
        assert_eq!(check_offer(&both, Role::Publish), Ok(()));
        assert_eq!(check_offer(&both, Role::Play), Ok(()));
        let session_level = offer(&["a=recvonly", "m=audio 9 UDP/TLS/RTP/SAVPF 111"]);
        assert!(check_offer(&session_level, Role::Publish).is_err());
        let data_only = offer(&["m=application 9 UDP/DTLS/SCTP webrtc-datachannel"]);
        assert_eq!(
            check_offer(&data_only, Role::Play),
            Err(OfferError::NoMedia)
        );
        assert_eq!(check_offer("hello", Role::Play), Err(OfferError::NotSdp));
        assert_eq!(check_offer("", Role::Publish), Err(OfferError::NotSdp));
    }

    #[test]
    fn the_chromium_fixture_offer_publishes() {
        let sdp = include_str!("../../tests/fixtures/chromium-whip-offer.sdp");
        assert_eq!(check_offer(sdp, Role::Publish), Ok(()));
        assert!(str0m::change::SdpOffer::from_sdp_string(sdp).is_ok());
    }

    #[test]
    fn whip_queries_need_app_and_stream() {
        let h = HeaderMap::new();
        let key = stream_key(&h, "/rtc/v1/whip/", "app=live&stream=s").unwrap();
        assert_eq!(key.to_string(), "__defaultVhost__/live/s");
        let key = stream_key(
            &h,
            "/rtc/v1/whep/",
            "app=a%2Fb&stream=s&vhost=v.example.com",
        )
        .unwrap();
        assert_eq!(
            (key.app.as_str(), key.vhost.as_str()),
            ("a/b", "v.example.com")
        );
        for q in [
            "",
            "app=live",
            "stream=s",
            "app=&stream=s",
            "app=live&stream=",
        ] {
            let e = stream_key(&h, "/rtc/v1/whip/", q).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{q}");
            assert!(e.reason.starts_with("missing"), "{q}: {}", e.reason);
        }
        assert!(session_param("app=live&stream=s").is_err());
        assert_eq!(session_param("session=abc123&app=x").unwrap(), "abc123");
        assert_eq!(
            session_param("session=../x").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn locations_name_the_stream_and_session() {
        let key = StreamKey {
            vhost: srs_cluster::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: "s".into(),
        };
        assert_eq!(
            location(Role::Publish, &key, "abc"),
            "/rtc/v1/whip/?app=live&stream=s&session=abc"
        );
        let key = StreamKey {
            vhost: "v.example.com".into(),
            app: "a/b".into(),
            stream: "s 1".into(),
        };
        let loc = location(Role::Play, &key, "abc");
        assert_eq!(
            loc,
            "/rtc/v1/whep/?app=a%2Fb&stream=s%201&session=abc&vhost=v.example.com"
        );
        let (path, query) = loc.split_once('?').unwrap();
        assert_eq!(stream_key(&HeaderMap::new(), path, query).unwrap(), key);
    }

    #[test]
    fn json_requests_parse_streamurl_and_ignore_extra_fields() {
        let body = br#"{"api":"http://h:1985/rtc/v1/play/","tid":"t1","clientip":null,
            "streamurl":"webrtc://h.example.com/live/s?token=x","sdp":"v=0\r\n","extra":1}"#;
        let (request, key) = parse_json_request(body).unwrap();
        assert_eq!(request.sdp, "v=0\r\n");
        assert_eq!(request.tid.as_deref(), Some("t1"));
        assert_eq!(key.to_string(), "h.example.com/live/s");
        let key = streamurl_key("webrtc://127.0.0.1:1985/a/b/s?vhost=v.example.com").unwrap();
        assert_eq!(key.to_string(), "v.example.com/a/b/s");
        for bad in [
            "webrtc://h/s",
            "live/s",
            "webrtc:///live/s",
            "webrtc://h/live/",
        ] {
            assert!(streamurl_key(bad).is_err(), "{bad}");
        }
        assert!(parse_json_request(br#"{"sdp":"v=0"}"#).is_err());
        assert!(parse_json_request(b"not json").is_err());
    }

    #[test]
    fn bearer_tokens_are_checked() {
        let mut h = HeaderMap::new();
        assert!(authorize(&h, None).is_ok());
        assert_eq!(
            authorize(&h, Some("t")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(authorize(&h, Some("t")).is_ok());
        assert!(authorize(&h, Some("u")).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  t "),
        );
        assert!(authorize(&h, Some("t")).is_ok());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t"));
        assert!(authorize(&h, Some("t")).is_err());
        let r = Failure::new(StatusCode::UNAUTHORIZED, "x").text();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
