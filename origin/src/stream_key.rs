//! Mapping requests to the stream key `vhost/app/stream`.
//!
//! vhost: the request's host name when it is a domain name (contains a dot and is not an IP
//! address), else `__defaultVhost__`; a `vhost=` query parameter overrides it; ports never count.

use std::fmt;
use std::net::IpAddr;

/// The vhost used when the request names no domain.
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// The identity of one live stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Virtual host.
    pub vhost: String,
    /// Application, e.g. `live` (may contain slashes).
    pub app: String,
    /// Stream name, e.g. `livestream`, without query.
    pub stream: String,
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

impl StreamKey {
    /// The key of an RTMP session from `connect`'s `app` and `tcUrl` and the `publish`/`play`
    /// stream name (which may carry a `?query`). `None` when the app or stream name is empty.
    pub fn from_rtmp(app: &str, tc_url: &str, stream_name: &str) -> Option<Self> {
        let (app, app_query) = split_query(app);
        let (stream, stream_query) = split_query(stream_name);
        let (tc_rest, tc_query) = split_query(tc_url);
        let app = app.trim_matches('/');
        if app.is_empty() || stream.is_empty() {
            return None;
        }
        let vhost = [stream_query, app_query, tc_query]
            .into_iter()
            .find_map(|q| query_param(q, "vhost"))
            .unwrap_or_else(|| vhost_from_host(url_host(tc_rest)));
        Some(Self {
            vhost,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// The key of an HTTP request from its path without the extension (`/live/livestream`),
    /// query and `Host` header. `None` when the path has no app or no stream.
    pub fn from_http(
        path_without_ext: &str,
        query: Option<&str>,
        host: Option<&str>,
    ) -> Option<Self> {
        let path = path_without_ext.trim_start_matches('/');
        let (app, stream) = path.rsplit_once('/')?;
        let app = app.trim_matches('/');
        if app.is_empty() || stream.is_empty() {
            return None;
        }
        let vhost = query
            .and_then(|q| query_param(q, "vhost"))
            .unwrap_or_else(|| vhost_from_host(host.unwrap_or_default()));
        Some(Self {
            vhost,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }
}

/// Splits `s` at the first `?`; the query is empty when there is none.
fn split_query(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}

/// The value of `name` in a `a=1&b=2` query, when present and not empty.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split(['&', '?'])
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The `host[:port]` part of `scheme://host[:port]/path`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

/// The vhost for a `host[:port]` value: the host when it is a domain name, else the default.
fn vhost_from_host(host_port: &str) -> String {
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        // IPv6 literal: never a domain.
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.contains('.') && host.parse::<IpAddr>().is_err() {
        host.to_ascii_lowercase()
    } else {
        DEFAULT_VHOST.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_keys() {
        let k = StreamKey::from_rtmp("live", "rtmp://127.0.0.1:1935/live", "livestream").unwrap();
        assert_eq!(k.to_string(), "__defaultVhost__/live/livestream");
        let k = StreamKey::from_rtmp("live", "rtmp://ossrs.net/live", "s?token=1").unwrap();
        assert_eq!(k.to_string(), "ossrs.net/live/s");
        let k = StreamKey::from_rtmp(
            "live",
            "rtmp://localhost:1935/live",
            "s?vhost=v.example.com",
        )
        .unwrap();
        assert_eq!(k.to_string(), "v.example.com/live/s");
        let k =
            StreamKey::from_rtmp("live?vhost=a.b", "rtmp://127.0.0.1/live?vhost=a.b", "s").unwrap();
        assert_eq!(k.to_string(), "a.b/live/s");
        let k = StreamKey::from_rtmp("a/b", "rtmp://[::1]:1935/a/b", "s").unwrap();
        assert_eq!(k.to_string(), "__defaultVhost__/a/b/s");
        assert!(StreamKey::from_rtmp("live", "rtmp://h/live", "?x=1").is_none());
        assert!(StreamKey::from_rtmp("", "rtmp://h/", "s").is_none());
    }

    #[test]
    fn http_keys() {
        let k = StreamKey::from_http("/live/livestream", None, Some("127.0.0.1:8080")).unwrap();
        assert_eq!(k.to_string(), "__defaultVhost__/live/livestream");
        let k = StreamKey::from_http("/a/b/c", Some("token=x"), Some("Media.Example.com:8080"))
            .unwrap();
        assert_eq!(k.to_string(), "media.example.com/a/b/c");
        let k = StreamKey::from_http("/live/s", Some("vhost=v.com"), Some("localhost")).unwrap();
        assert_eq!(k.to_string(), "v.com/live/s");
        assert!(StreamKey::from_http("/livestream", None, None).is_none());
        assert!(StreamKey::from_http("/live/", None, None).is_none());
    }
}
