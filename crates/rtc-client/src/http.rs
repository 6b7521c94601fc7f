//! Plain-HTTP signalling requests: WHIP/WHEP offers, SRS JSON API calls, DELETEs.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::ClientError;

/// Each signalling request must finish within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body read, in bytes.
const MAX_BODY: usize = 1024 * 1024;

/// An HTTP response: status, headers and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as text (lossy UTF-8).
    pub body: String,
}

/// Sends one request with an optional `Authorization: Bearer` token and reads the whole reply.
///
/// Errors: [`ClientError::Url`], [`ClientError::Http`], [`ClientError::Timeout`].
pub async fn request(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Bytes,
    token: Option<&str>,
) -> Result<Reply, ClientError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(ClientError::Url(format!(
            "{url}: only http:// is supported"
        )));
    }
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| ClientError::Http(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Http(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::Timeout("the HTTP request"))?
}

/// POSTs an SDP offer (`Content-Type: application/sdp`) to a WHIP/WHEP URL, with an optional
/// bearer token. Any status is returned, not only 201.
///
/// Errors: [`ClientError::Url`], [`ClientError::Http`], [`ClientError::Timeout`].
pub async fn post_offer(url: &str, sdp: &str, token: Option<&str>) -> Result<Reply, ClientError> {
    request(
        Method::POST,
        url,
        Some("application/sdp"),
        Bytes::copy_from_slice(sdp.as_bytes()),
        token,
    )
    .await
}

/// Sends `DELETE` to `url` (a session resource), with an optional bearer token.
///
/// Errors: as [`post_offer`].
pub async fn delete(url: &str, token: Option<&str>) -> Result<Reply, ClientError> {
    request(Method::DELETE, url, None, Bytes::new(), token).await
}

/// Resolves a `Location` header against the URL it answered (RFC 3986 §5.2, for the forms
/// servers send: absolute URL, absolute path, or path-relative).
pub fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = path.split('?').next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_post_url() {
        let base = "http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=s";
        assert_eq!(
            resolve(base, "/rtc/v1/whip/?app=live&stream=s&session=x"),
            "http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=s&session=x"
        );
        assert_eq!(
            resolve(base, "http://o:1/rtc/v1/session/x"),
            "http://o:1/rtc/v1/session/x"
        );
        assert_eq!(
            resolve("http://h:8/a/b?q", "session/x"),
            "http://h:8/a/session/x"
        );
        assert_eq!(resolve("http://h:8", "/x"), "http://h:8/x");
    }
}
