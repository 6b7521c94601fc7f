//! Stream identity (docs/design.md §4): every protocol's request maps to one `vhost/app/stream`
//! key.
//!
//! Choices the design leaves open, made here once so every protocol agrees:
//! - The vhost always goes through [`vhost_from_host`], whatever its source (host name, `vhost=`
//!   parameter, SRT `h=`): a domain name is kept (lowercased, port stripped), anything else is
//!   [`DEFAULT_VHOST`]. Precedence: the most specific `vhost=` wins (RTMP: stream name's query, then
//!   tcUrl's query; HTTP: request query; SRT: `vhost=` item, then `h=`), then the host.
//! - App and stream are split at the LAST slash of the joined path, so `rtmp://h/a/b` + `c`,
//!   `/a/b/c.flv` and SRT `r=a/b/c` all give app `a/b`, stream `c`. Empty path segments are
//!   collapsed (`rtmp://h/live/` + `s` is `live/s`).
//! - Percent-decoding: HTTP path segments and every query value are percent-decoded (a `+` stays a
//!   `+`); RTMP app and stream names and SRT stream ids are used as sent, since they are not URLs.
//!   A decoded `/` inside one HTTP path segment is rejected rather than re-split.
//! - Rejected: empty app or stream, `.`/`..` segments, control characters, backslashes, keys over
//!   [`MAX_KEY_LEN`] bytes.

use std::fmt;

use crate::endpoint::is_host_name;
use crate::protocol::Direction;

/// The vhost of every request whose host is not a domain name (docs/design.md §4; SRS's name for
/// it).
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// Upper bound on `vhost.len() + app.len() + stream.len() + 2` (the two slashes), in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// SRS's application for a plain SRT stream id without a slash (`livestream` → `live/livestream`).
const SRT_DEFAULT_APP: &str = "live";

/// Why a request could not be mapped to a [`StreamKey`] (docs/design.md §4). The request should be
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The RTMP tcUrl is not `scheme://host[/app][?query]`; the payload says what is missing.
    #[error("malformed tcUrl: {0}")]
    BadUrl(&'static str),
    /// The app (`"app"`) or the stream (`"stream"`) is empty.
    #[error("empty {0} name")]
    Missing(&'static str),
    /// A `.` or `..` segment, which could walk out of the app on the origin.
    #[error("`.` and `..` are not allowed as app or stream segments")]
    DotSegment,
    /// A control character, a backslash, or a percent-encoded `/` inside one path segment.
    #[error("forbidden character {0:?} in app or stream name")]
    ForbiddenChar(char),
    /// The key is longer than [`MAX_KEY_LEN`] bytes; the payload is its length.
    #[error("stream key is {0} bytes long; the limit is {MAX_KEY_LEN}")]
    TooLong(usize),
    /// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8.
    #[error("invalid percent-encoding or UTF-8 in the URL")]
    BadEncoding,
    /// The SRT stream id is malformed; the payload says how.
    #[error("bad SRT streamid: {0}")]
    BadStreamId(&'static str),
}

/// One stream's identity, `vhost/app/stream` (docs/design.md §4). `app` may contain slashes;
/// `stream` does not; neither is empty. Query strings are never part of it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct StreamKey {
    /// A lowercase domain name, or [`DEFAULT_VHOST`].
    pub vhost: String,
    /// The application, e.g. `live` or `a/b`.
    pub app: String,
    /// The stream name, e.g. `livestream`.
    pub stream: String,
}

impl fmt::Display for StreamKey {
    /// Formats as `vhost/app/stream`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

impl StreamKey {
    /// Key of an RTMP session (docs/design.md §4): `tc_url` is the `tcUrl` of `connect`
    /// (`rtmp://host:1935/live?vhost=v.example.com&token=x`), `stream_name` the name given to
    /// `publish`/`play` (`livestream?token=abc`). The app is the tcUrl path; SRS's legacy
    /// `app...vhost...VHOST` form is understood.
    ///
    /// Errors: [`KeyError::BadUrl`] without `scheme://`, and the rejections listed in the module
    /// docs.
    pub fn from_rtmp(tc_url: &str, stream_name: &str) -> Result<StreamKey, KeyError> {
        let (_, rest) = tc_url
            .trim()
            .split_once("://")
            .ok_or(KeyError::BadUrl("no scheme://"))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        // Drop `user:pass@`, which is not part of the host.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() {
            return Err(KeyError::BadUrl("no host"));
        }
        let rest = rest.replacen("...vhost...", "?vhost=", 1);
        let (app, tc_query) = split_query(&rest);
        let (stream, stream_query) = split_query(stream_name);

        let vhost = match override_vhost(stream_query)? {
            Some(v) => v,
            None => override_vhost(tc_query)?.unwrap_or_else(|| vhost_from_host(host)),
        };
        assemble(vhost, app, stream)
    }

    /// Key of an HTTP request (docs/design.md §4): the `Host` header (`None` when absent; a port is
    /// ignored), the URL path (`/live/livestream.flv`) and the raw query without `?`.
    ///
    /// The last path segment without its extension is the stream and the rest is the app, unless
    /// the query carries both `app` and `stream` (WHIP/WHEP: `/rtc/v1/whip/?app=live&stream=s`).
    /// A `vhost` query parameter overrides the host.
    ///
    /// Errors: the rejections listed in the module docs.
    pub fn from_http(
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
    ) -> Result<StreamKey, KeyError> {
        let query = query.unwrap_or("");
        let vhost = match override_vhost(Some(query))? {
            Some(v) => v,
            None => host.map_or_else(|| DEFAULT_VHOST.to_owned(), vhost_from_host),
        };

        let app_param = query_param(query, "app").filter(|v| !v.is_empty());
        let stream_param = query_param(query, "stream").filter(|v| !v.is_empty());
        if let (Some(app), Some(stream)) = (app_param, stream_param) {
            return assemble(vhost, &percent_decode(app)?, &percent_decode(stream)?);
        }

        // Defensive: a caller may hand over the request target with its query or fragment.
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let segment = percent_decode(raw)?;
            if segment.contains('/') {
                return Err(KeyError::ForbiddenChar('/'));
            }
            segments.push(segment);
        }
        let last = segments.pop().ok_or(KeyError::Missing("stream"))?;
        let stream = last.rfind('.').map_or(last.as_str(), |dot| &last[..dot]);
        assemble(vhost, &segments.join("/"), stream)
    }

    /// Key and direction of an SRT stream id (docs/design.md §4, SRS's SRT docs). Accepted forms:
    /// `#!::r=live/livestream,m=publish`, `#!::h=v.example.com,r=live/livestream,m=request`,
    /// SRS's older `#!::h=live/livestream` and `#!::h=v.example.com/live/livestream`, and the
    /// plain `live/livestream[?vhost=..]` (a plain name without a slash gets app `live`, as in
    /// SRS). Items may be separated by `,`, `&` or `?`; a `vhost=` item beats `h=`; unknown items
    /// (tokens) are ignored. `m=publish` is [`Direction::Publish`]; `m=request`, or no `m=`, is
    /// [`Direction::Play`]. Trailing NUL padding is ignored.
    ///
    /// Errors: [`KeyError::BadStreamId`] for an `m=` other than `publish`/`request` or no
    /// resource; the rejections listed in the module docs.
    pub fn from_srt_streamid(streamid: &str) -> Result<(StreamKey, Direction), KeyError> {
        let streamid = streamid.trim_end_matches('\0');
        let Some(items) = streamid.strip_prefix("#!::") else {
            let (path, query) = split_query(streamid);
            let vhost = override_vhost(query)?.unwrap_or_else(|| DEFAULT_VHOST.to_owned());
            let (app, stream) = path.rsplit_once('/').unwrap_or((SRT_DEFAULT_APP, path));
            return Ok((assemble(vhost, app, stream)?, Direction::Play));
        };

        let mut direction = Direction::Play;
        let mut host = None;
        let mut vhost_item = None;
        let mut host_resource = None;
        let mut resource = None;
        for item in items.split([',', '&', '?']).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            match name {
                "h" => match (value.find('/'), value.rfind('/')) {
                    // SRS's older forms put the resource in `h`, optionally after the vhost.
                    (Some(first), Some(last)) if first != last => {
                        host = Some(&value[..first]);
                        host_resource = Some(&value[first + 1..]);
                    }
                    (Some(_), _) => host_resource = Some(value),
                    _ => host = Some(value),
                },
                "r" => resource = Some(value),
                "m" => {
                    direction = match value.to_ascii_lowercase().as_str() {
                        "publish" => Direction::Publish,
                        "request" => Direction::Play,
                        _ => return Err(KeyError::BadStreamId("m must be publish or request")),
                    }
                }
                "vhost" => vhost_item = Some(value),
                _ => {}
            }
        }

        let resource = resource
            .or(host_resource)
            .filter(|r| !r.is_empty())
            .ok_or(KeyError::BadStreamId("no r=app/stream"))?;
        let vhost = match vhost_item.filter(|v| !v.is_empty()) {
            Some(v) => vhost_from_host(v),
            None => host.map_or_else(|| DEFAULT_VHOST.to_owned(), vhost_from_host),
        };
        let (app, stream) = resource.rsplit_once('/').unwrap_or(("", resource));
        Ok((assemble(vhost, app, stream)?, direction))
    }
}

/// The vhost for a host name (docs/design.md §4): the lowercase host when it is a domain name (at
/// least two dot-separated labels of letters, digits, `-` and `_`, at most 253 bytes, the last
/// label not all digits, so not an IPv4 address), else [`DEFAULT_VHOST`]. A port, a bracketed or
/// bare IPv6 address and a trailing dot are handled; anything with other characters falls back to
/// [`DEFAULT_VHOST`].
pub fn vhost_from_host(host: &str) -> String {
    let host = host.trim();
    // Bracketed or bare IPv6 literals are never domain names.
    if host.starts_with('[') || host.matches(':').count() > 1 {
        return DEFAULT_VHOST.to_owned();
    }
    let name = host.split_once(':').map_or(host, |(name, _port)| name);
    let name = name.strip_suffix('.').unwrap_or(name);
    // Two labels at least, and a TLD that is not all digits (so no IPv4 address).
    let is_domain = is_host_name(name)
        && name.contains('.')
        && name
            .rsplit('.')
            .next()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    if is_domain {
        name.to_ascii_lowercase()
    } else {
        DEFAULT_VHOST.to_owned()
    }
}

/// The raw (not percent-decoded) value of the first `name=` parameter of a query string
/// (`a=b&app=live`; a leading `?` is allowed). A parameter without `=` has the value `""`.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Splits `path?query` into the path and, when present, the query.
fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (s, None),
    }
}

/// The vhost from a non-empty `vhost=` parameter of `query`, if any.
fn override_vhost(query: Option<&str>) -> Result<Option<String>, KeyError> {
    match query.and_then(|q| query_param(q, "vhost")) {
        Some(v) if !v.is_empty() => Ok(Some(vhost_from_host(&percent_decode(v)?))),
        _ => Ok(None),
    }
}

/// Decodes `%XX` escapes (RFC 3986 2.1) in one pass, strictly: every `%` must start a
/// two-hex-digit escape and the result must be UTF-8.
///
/// Errors: [`KeyError::BadEncoding`].
pub fn percent_decode(s: &str) -> Result<String, KeyError> {
    let malformed = s.split('%').skip(1).any(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_none_or(|hex| !hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(KeyError::BadEncoding);
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| KeyError::BadEncoding)
}

/// Builds and validates a key from an app path and a stream path (each may contain slashes),
/// splitting the joined path at its last slash.
fn assemble(vhost: String, app: &str, stream: &str) -> Result<StreamKey, KeyError> {
    let app_segments = app.split('/').filter(|s| !s.is_empty());
    let mut stream_segments: Vec<&str> = stream.split('/').filter(|s| !s.is_empty()).collect();
    let stream = stream_segments.pop().ok_or(KeyError::Missing("stream"))?;
    let app_segments: Vec<&str> = app_segments.chain(stream_segments).collect();
    if app_segments.is_empty() {
        return Err(KeyError::Missing("app"));
    }
    for segment in app_segments.iter().chain([&stream]) {
        if *segment == "." || *segment == ".." {
            return Err(KeyError::DotSegment);
        }
        if let Some(c) = segment.chars().find(|c| c.is_control() || *c == '\\') {
            return Err(KeyError::ForbiddenChar(c));
        }
    }
    let app = app_segments.join("/");
    let len = vhost.len() + app.len() + stream.len() + 2;
    if len > MAX_KEY_LEN {
        return Err(KeyError::TooLong(len));
    }
    Ok(StreamKey {
        vhost,
        app,
        stream: stream.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(vhost: &str, app: &str, stream: &str) -> StreamKey {
        StreamKey {
            vhost: vhost.into(),
            app: app.into(),
            stream: stream.into(),
        }
    }

    #[test]
    fn vhost_domain_ip_localhost_ports_ipv6() {
        assert_eq!(vhost_from_host("Live.Example.COM"), "live.example.com");
        assert_eq!(vhost_from_host("v.example.com:1935"), "v.example.com");
        assert_eq!(vhost_from_host("v.example.com."), "v.example.com");
        for not_domain in [
            "127.0.0.1",
            "192.168.1.10:8080",
            "localhost",
            "localhost:1935",
            "[::1]",
            "[::1]:8080",
            "::1",
            "fe80::1",
            "1.2.3",
            "",
            "a..b",
            "..",
            "evil/../x.com",
            "a b.com",
            "__defaultVhost__",
        ] {
            assert_eq!(vhost_from_host(not_domain), DEFAULT_VHOST, "{not_domain:?}");
        }
    }

    #[test]
    fn rtmp_basic_and_ports_ignored() {
        let k = StreamKey::from_rtmp("rtmp://127.0.0.1:1935/live", "livestream").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "livestream"));
        assert_eq!(k.to_string(), "__defaultVhost__/live/livestream");
        let k = StreamKey::from_rtmp("rtmp://V.Example.com:19350/live", "s").unwrap();
        assert_eq!(k, key("v.example.com", "live", "s"));
        let k = StreamKey::from_rtmp("rtmp://[::1]:1935/live", "s").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "s"));
    }

    #[test]
    fn rtmp_vhost_overrides_and_query_stripped() {
        let k = StreamKey::from_rtmp(
            "rtmp://host:1935/live?vhost=v.example.com&token=x",
            "livestream?token=abc",
        )
        .unwrap();
        assert_eq!(k, key("v.example.com", "live", "livestream"));
        // The stream name's query is the most specific.
        let k = StreamKey::from_rtmp(
            "rtmp://a.example.com/live?vhost=b.example.com",
            "s?vhost=c.example.com",
        )
        .unwrap();
        assert_eq!(k, key("c.example.com", "live", "s"));
        let k = StreamKey::from_rtmp("rtmp://10.0.0.1/live", "s?vhost=d.example.com").unwrap();
        assert_eq!(k.vhost, "d.example.com");
        let k = StreamKey::from_rtmp("rtmp://10.0.0.1/live...vhost...e.example.com", "s").unwrap();
        assert_eq!(k, key("e.example.com", "live", "s"));
    }

    #[test]
    fn rtmp_app_with_slashes_and_trailing_slash() {
        let k = StreamKey::from_rtmp("rtmp://h/a/b", "c").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "a/b", "c"));
        let k = StreamKey::from_rtmp("rtmp://h/a", "b/c").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "a/b", "c"));
        let k = StreamKey::from_rtmp("rtmp://h/live/", "/s").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "s"));
        let k = StreamKey::from_rtmp("rtmp://user:pw@h.example.com/live", "s").unwrap();
        assert_eq!(k.vhost, "h.example.com");
    }

    #[test]
    fn rtmp_rejections() {
        assert_eq!(
            StreamKey::from_rtmp("h/live", "s"),
            Err(KeyError::BadUrl("no scheme://"))
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp:///live", "s"),
            Err(KeyError::BadUrl("no host"))
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp://h", "s"),
            Err(KeyError::Missing("app"))
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp://h/live", "?token=1"),
            Err(KeyError::Missing("stream"))
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp://h/live", "../other"),
            Err(KeyError::DotSegment)
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp://h/live", "a\\b"),
            Err(KeyError::ForbiddenChar('\\'))
        );
        assert_eq!(
            StreamKey::from_rtmp("rtmp://h/live", "a\nb"),
            Err(KeyError::ForbiddenChar('\n'))
        );
    }

    #[test]
    fn http_paths() {
        let k = StreamKey::from_http(Some("127.0.0.1:8080"), "/live/livestream.flv", None).unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "livestream"));
        let k = StreamKey::from_http(None, "/a/b/c.m3u8", Some("token=1")).unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "a/b", "c"));
        let k =
            StreamKey::from_http(Some("V.example.com:18080"), "/live/my.stream.ts", None).unwrap();
        assert_eq!(k, key("v.example.com", "live", "my.stream"));
        let k = StreamKey::from_http(Some("[::1]:8080"), "/live/s", None).unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "s"));
        let k = StreamKey::from_http(None, "/live/live%20stream.flv", None).unwrap();
        assert_eq!(k.stream, "live stream");
    }

    #[test]
    fn http_query_overrides() {
        let k = StreamKey::from_http(
            Some("localhost"),
            "/rtc/v1/whip/",
            Some("app=live&stream=livestream&token=x"),
        )
        .unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "livestream"));
        let k = StreamKey::from_http(
            Some("a.example.com"),
            "/live/s.flv",
            Some("vhost=B.example.com"),
        )
        .unwrap();
        assert_eq!(k, key("b.example.com", "live", "s"));
        // Only one of app/stream: the path decides.
        let k = StreamKey::from_http(None, "/live/s.flv", Some("stream=other")).unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "s"));
    }

    #[test]
    fn http_rejections() {
        assert_eq!(
            StreamKey::from_http(None, "/livestream.flv", None),
            Err(KeyError::Missing("app"))
        );
        assert_eq!(
            StreamKey::from_http(None, "/", None),
            Err(KeyError::Missing("stream"))
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/.flv", None),
            Err(KeyError::Missing("stream"))
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/../x.flv", None),
            Err(KeyError::DotSegment)
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/%2e%2e/x.flv", None),
            Err(KeyError::DotSegment)
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/a%2Fb.flv", None),
            Err(KeyError::ForbiddenChar('/'))
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/a%5Cb.flv", None),
            Err(KeyError::ForbiddenChar('\\'))
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/a%00b.flv", None),
            Err(KeyError::ForbiddenChar('\0'))
        );
        assert_eq!(
            StreamKey::from_http(None, "/live/a%zz.flv", None),
            Err(KeyError::BadEncoding)
        );
        assert_eq!(
            StreamKey::from_http(None, "/x/y", Some("app=..&stream=s")),
            Err(KeyError::DotSegment)
        );
        let long = format!("/live/{}.flv", "s".repeat(1100));
        assert!(matches!(
            StreamKey::from_http(None, &long, None),
            Err(KeyError::TooLong(_))
        ));
        let fits = format!(
            "/live/{}.flv",
            "s".repeat(MAX_KEY_LEN - DEFAULT_VHOST.len() - 6)
        );
        assert!(StreamKey::from_http(None, &fits, None).is_ok());
    }

    #[test]
    fn srt_streamid_forms() {
        let (k, m) = StreamKey::from_srt_streamid("#!::r=live/livestream,m=publish").unwrap();
        assert_eq!(
            (k, m),
            (key(DEFAULT_VHOST, "live", "livestream"), Direction::Publish)
        );
        let (k, m) =
            StreamKey::from_srt_streamid("#!::h=srs.srt.com.cn,r=live/livestream,m=request")
                .unwrap();
        assert_eq!(
            (k, m),
            (key("srs.srt.com.cn", "live", "livestream"), Direction::Play)
        );
        let (k, m) = StreamKey::from_srt_streamid("#!::r=live/livestream").unwrap();
        assert_eq!(
            (k, m),
            (key(DEFAULT_VHOST, "live", "livestream"), Direction::Play)
        );
        let (k, m) = StreamKey::from_srt_streamid("#!::r=a/b/c,m=PUBLISH,token=1\0\0").unwrap();
        assert_eq!((k, m), (key(DEFAULT_VHOST, "a/b", "c"), Direction::Publish));
        let (k, _) = StreamKey::from_srt_streamid("#!::h=1.2.3.4,r=live/s").unwrap();
        assert_eq!(k.vhost, DEFAULT_VHOST);
        let (k, _) =
            StreamKey::from_srt_streamid("#!::h=a.example.com,r=live/s?vhost=b.example.com")
                .unwrap();
        assert_eq!(k.vhost, "b.example.com");
    }

    #[test]
    fn srt_legacy_and_plain_forms() {
        let (k, m) =
            StreamKey::from_srt_streamid("#!::h=live/livestream?secret=x,m=publish").unwrap();
        assert_eq!(
            (k, m),
            (key(DEFAULT_VHOST, "live", "livestream"), Direction::Publish)
        );
        let (k, _) = StreamKey::from_srt_streamid("#!::h=srs.srt.com.cn/live/livestream").unwrap();
        assert_eq!(k, key("srs.srt.com.cn", "live", "livestream"));
        let (k, m) = StreamKey::from_srt_streamid("live/livestream").unwrap();
        assert_eq!(
            (k, m),
            (key(DEFAULT_VHOST, "live", "livestream"), Direction::Play)
        );
        let (k, _) = StreamKey::from_srt_streamid("live/s?vhost=v.example.com").unwrap();
        assert_eq!(k, key("v.example.com", "live", "s"));
        let (k, _) = StreamKey::from_srt_streamid("livestream").unwrap();
        assert_eq!(k, key(DEFAULT_VHOST, "live", "livestream"));
    }

    #[test]
    fn srt_rejections() {
        assert_eq!(
            StreamKey::from_srt_streamid("#!::r=live/s,m=push"),
            Err(KeyError::BadStreamId("m must be publish or request"))
        );
        assert_eq!(
            StreamKey::from_srt_streamid("#!::m=publish"),
            Err(KeyError::BadStreamId("no r=app/stream"))
        );
        assert_eq!(
            StreamKey::from_srt_streamid("#!::r=livestream"),
            Err(KeyError::Missing("app"))
        );
        assert_eq!(
            StreamKey::from_srt_streamid("#!::r=live/..,m=publish"),
            Err(KeyError::DotSegment)
        );
        assert_eq!(
            StreamKey::from_srt_streamid(""),
            Err(KeyError::Missing("stream"))
        );
    }

    #[test]
    fn query_param_lookup() {
        assert_eq!(query_param("a=b&app=live&stream=s", "app"), Some("live"));
        assert_eq!(query_param("?app=x&app=y", "app"), Some("x"));
        assert_eq!(query_param("flag&b=1", "flag"), Some(""));
        assert_eq!(query_param("apps=1", "app"), None);
        assert_eq!(query_param("", "app"), None);
    }
}
