//! Request and response heads (RFC 9112 §2-§5): parsed from the start of a buffer with
//! `httparse`, bounded in size and header count, and written back as bytes; the body framing a
//! head announces (RFC 9112 §6.3).

use std::fmt::Write as _;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// Headers in one head at most; a head with more is malformed.
pub const MAX_HEADERS: usize = 100;

/// Why a head could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x syntax (`httparse`'s reason), including more than [`MAX_HEADERS`] headers
    /// and versions other than 1.0 and 1.1.
    #[error("malformed head: {0}")]
    Malformed(#[from] httparse::Error),
    /// No complete head within `max` bytes.
    #[error("head larger than {max} bytes")]
    TooLarge {
        /// The bound, in bytes.
        max: usize,
    },
    /// A method, header name or header value `http` does not accept.
    #[error("bad {0} in head")]
    Invalid(&'static str),
}

/// A request head (RFC 9112 §3): `method target HTTP/1.x` and its headers, in order.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method, e.g. `GET`.
    pub method: Method,
    /// The request target as sent (origin form `/path?query` for the requests relayed).
    pub target: String,
    /// `HTTP_10` or `HTTP_11`.
    pub version: Version,
    /// The header fields, repeated names kept in order.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// Parses the request head at the start of `buf`: `Ok(Some((head, len)))` once the head is
    /// complete (`len` bytes, the empty line included), `Ok(None)` while it may still complete
    /// within `max` bytes.
    ///
    /// Errors: [`HeadError::TooLarge`] when `buf` holds `max` bytes or more without a complete
    /// head; [`HeadError::Malformed`] or [`HeadError::Invalid`] for bad syntax.
    pub fn parse(buf: &[u8], max: usize) -> Result<Option<(RequestHead, usize)>, HeadError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut slots);
        let window = &buf[..buf.len().min(max)];
        let len = match request.parse(window)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() >= max => {
                return Err(HeadError::TooLarge { max })
            }
            httparse::Status::Partial => return Ok(None),
        };
        // Complete heads always carry these three.
        let (Some(method), Some(target), Some(minor)) =
            (request.method, request.path, request.version)
        else {
            return Err(HeadError::Invalid("request line"));
        };
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Invalid("method"))?;
        let head = RequestHead {
            method,
            target: target.to_string(),
            version: version(minor),
            headers: header_map(request.headers)?,
        };
        Ok(Some((head, len)))
    }

    /// Whether the client wants the connection kept after the response: HTTP/1.1 without a
    /// `close` option in `Connection`, or HTTP/1.0 with a `keep-alive` option (RFC 9112 §9.3,
    /// the HTTP/1.0 mechanism of RFC 9112 Appendix C.2.2: the response must then carry
    /// `Connection: keep-alive` and a length-delimited body).
    pub fn keep_alive(&self) -> bool {
        if has_token(&self.headers, header::CONNECTION, "close") {
            return false;
        }
        self.version == Version::HTTP_11
            || has_token(&self.headers, header::CONNECTION, "keep-alive")
    }
}

/// A response head (RFC 9112 §4): status and headers, in order.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// `HTTP_10` or `HTTP_11`.
    pub version: Version,
    /// The header fields, repeated names kept in order.
    pub headers: HeaderMap,
}

impl ResponseHead {
    /// Parses the response head at the start of `buf`; same contract as [`RequestHead::parse`].
    ///
    /// Errors: as [`RequestHead::parse`]; a status outside 100-999 is [`HeadError::Invalid`].
    pub fn parse(buf: &[u8], max: usize) -> Result<Option<(ResponseHead, usize)>, HeadError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let window = &buf[..buf.len().min(max)];
        let len = match response.parse(window)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() >= max => {
                return Err(HeadError::TooLarge { max })
            }
            httparse::Status::Partial => return Ok(None),
        };
        let (Some(code), Some(minor)) = (response.code, response.version) else {
            return Err(HeadError::Invalid("status line"));
        };
        let status = StatusCode::from_u16(code).map_err(|_| HeadError::Invalid("status"))?;
        let head = ResponseHead {
            status,
            version: version(minor),
            headers: header_map(response.headers)?,
        };
        Ok(Some((head, len)))
    }
}

fn version(minor: u8) -> Version {
    if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, HeadError> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Invalid("header name"))?;
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| HeadError::Invalid("header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Whether a comma-separated header (`Connection`, `Transfer-Encoding`) lists `token`, in any
/// case.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body (a HEAD response, 1xx, 204, 304, a request without framing headers).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding` with `chunked` last: chunks up to the last chunk and trailers.
    Chunked,
    /// A response that ends when the server closes the connection.
    UntilClose,
}

/// Framing headers that contradict each other or do not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    /// `Content-Length` that is not one decimal number (repeated equal values are one).
    #[error("invalid Content-Length")]
    ContentLength,
    /// A request `Transfer-Encoding` whose last coding is not `chunked`.
    #[error("request Transfer-Encoding without chunked last")]
    TransferEncoding,
}

/// The body framing of a request (RFC 9112 §6.3 rules 4-6).
///
/// Errors: [`FramingError`] for a request the server must refuse with 400.
pub fn request_body(headers: &HeaderMap) -> Result<BodyLength, FramingError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return match tokens(headers, header::TRANSFER_ENCODING).last() {
            Some(last) if last.eq_ignore_ascii_case("chunked") => Ok(BodyLength::Chunked),
            _ => Err(FramingError::TransferEncoding),
        };
    }
    Ok(match content_length(headers)? {
        Some(0) | None => BodyLength::Empty,
        Some(n) => BodyLength::Length(n),
    })
}

/// The body framing of a response to a `method` request with `status` (RFC 9112 §6.3 rules
/// 1-3, 5-8).
///
/// Errors: [`FramingError::ContentLength`] for an unparseable `Content-Length` without
/// `Transfer-Encoding` (an unrecoverable error the proxy reports as a bad gateway).
pub fn response_body(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<BodyLength, FramingError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyLength::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(match tokens(headers, header::TRANSFER_ENCODING).last() {
            Some(last) if last.eq_ignore_ascii_case("chunked") => BodyLength::Chunked,
            _ => BodyLength::UntilClose,
        });
    }
    Ok(match content_length(headers)? {
        Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Length(n),
        None => BodyLength::UntilClose,
    })
}

/// The one value of the `Content-Length` fields (RFC 9110 §8.6: a list of equal values is that
/// value), `None` without any.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, FramingError> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| FramingError::ContentLength)?;
        for item in text.split(',').map(str::trim) {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FramingError::ContentLength);
            }
            let n: u64 = item.parse().map_err(|_| FramingError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Appends `method target HTTP/1.1`, the `headers` and the empty line to `out`.
pub fn write_request_head(out: &mut Vec<u8>, method: &Method, target: &str, headers: &HeaderMap) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, headers);
}

/// Appends `HTTP/1.1 <code> <reason>`, the `headers` and the empty line to `out`.
pub fn write_response_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    let mut line = String::with_capacity(32);
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    out.extend_from_slice(line.as_bytes());
    write_fields(out, headers);
}

fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse_in_pieces_and_are_bounded() {
        let raw = b"GET /live/s.flv?a=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\nrest";
        for cut in 0..raw.len() - 4 {
            assert!(RequestHead::parse(&raw[..cut], 1024).unwrap().is_none());
        }
        let (head, len) = RequestHead::parse(raw, 1024).unwrap().unwrap();
        assert_eq!(len, raw.len() - 4);
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.target, "/live/s.flv?a=1");
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert!(head.keep_alive());
        assert!(matches!(
            RequestHead::parse(&raw[..20], 20),
            Err(HeadError::TooLarge { max: 20 })
        ));
        assert!(RequestHead::parse(b"GET / HTTP/2.0\r\n\r\n", 1024).is_err());
        assert!(RequestHead::parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1024).is_err());
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let parse = |raw: &[u8]| RequestHead::parse(raw, 1024).unwrap().unwrap().0;
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!parse(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
        assert!(!parse(b"GET / HTTP/1.1\r\nConnection: x, Close\r\n\r\n").keep_alive());
        assert!(parse(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    }

    #[test]
    fn response_framing_follows_rfc_9112_6_3() {
        let (head, _) = ResponseHead::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
            1024,
        )
        .unwrap()
        .unwrap();
        let get = |h: &ResponseHead| response_body(&Method::GET, h.status, &h.headers);
        assert_eq!(get(&head), Ok(BodyLength::Chunked));
        assert_eq!(
            response_body(&Method::HEAD, head.status, &head.headers),
            Ok(BodyLength::Empty)
        );
        let mut h = HeaderMap::new();
        assert_eq!(
            response_body(&Method::GET, StatusCode::OK, &h),
            Ok(BodyLength::UntilClose)
        );
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("7, 7"));
        assert_eq!(
            response_body(&Method::GET, StatusCode::OK, &h),
            Ok(BodyLength::Length(7))
        );
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("8"));
        assert_eq!(
            response_body(&Method::GET, StatusCode::OK, &h),
            Err(FramingError::ContentLength)
        );
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            response_body(&Method::GET, StatusCode::OK, &h),
            Ok(BodyLength::UntilClose)
        );
        assert_eq!(request_body(&h), Err(FramingError::TransferEncoding));
        assert_eq!(
            response_body(&Method::GET, StatusCode::NOT_MODIFIED, &HeaderMap::new()),
            Ok(BodyLength::Empty)
        );
        assert_eq!(request_body(&HeaderMap::new()), Ok(BodyLength::Empty));
    }

    #[test]
    fn heads_are_written_back() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.append("x-b", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        write_request_head(&mut out, &Method::GET, "/x.flv", &h);
        assert_eq!(out, b"GET /x.flv HTTP/1.1\r\nhost: a\r\nx-b: 1\r\n\r\n");
        out.clear();
        write_response_head(&mut out, StatusCode::NOT_FOUND, &HeaderMap::new());
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n\r\n");
        let (back, len) = ResponseHead::parse(&out, 64).unwrap().unwrap();
        assert_eq!((back.status, len), (StatusCode::NOT_FOUND, out.len()));
    }
}
