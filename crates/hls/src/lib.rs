//! srs-hls: the sans-IO pieces of HLS relaying (docs/design.md §6): playlist rewriting and the
//! checks on HLS request paths. Bytes and strings in, strings out; no I/O.
//!
//! Rewriting: every URI a player will fetch (URI lines, and the `URI` attribute of the tags in
//! [`URI_TAGS`]) is made a path on the proxy carrying the HLS session id as [`SESSION_PARAM`], so
//! that the request finds the session's origin on any proxy replica:
//! - relative references (`s-0.ts`, `../x/s.ts`, `?q`) are resolved against the playlist's path
//!   (RFC 3986 5.2) and written as absolute paths;
//! - absolute paths (`/live/s.m3u8?hls_ctx=x`) are kept;
//! - absolute URLs (`http://origin:8080/live/s-0.ts`, `//origin:8080/..`) whose authority is one
//!   of [`Target::local_authorities`] (the origin, or the proxy as the client named it) become
//!   the path on the proxy; URLs to other hosts (a CDN) and other schemes (`skd:`, `data:`) are
//!   left unchanged.
//!
//! Output paths have no dot segments and no empty segments, so they always start with exactly one
//! `/`: they stay in the proxy's path space (a `//host` output would point a player elsewhere).
//! Existing query parameters (SRS's `hls_ctx`) are kept; an existing [`SESSION_PARAM`] is
//! replaced. Lines are otherwise copied byte for byte, line terminators included.

/// The query parameter that names an HLS session (the name SRS's Go proxy uses).
pub const SESSION_PARAM: &str = "spbhid";

/// Tags whose attribute list may carry a `URI` attribute: RFC 8216 4.3.2.4 (KEY), 4.3.2.5
/// (MAP), 4.3.4.1 (MEDIA), 4.3.4.3 (I-FRAME-STREAM-INF), 4.3.4.4 (SESSION-DATA), 4.3.4.5
/// (SESSION-KEY), and RFC 8216bis 4.4.4.9 (PART), 4.4.5.3 (PRELOAD-HINT), 4.4.5.4
/// (RENDITION-REPORT).
pub const URI_TAGS: &[&str] = &[
    "#EXT-X-KEY",
    "#EXT-X-MAP",
    "#EXT-X-MEDIA",
    "#EXT-X-I-FRAME-STREAM-INF",
    "#EXT-X-SESSION-DATA",
    "#EXT-X-SESSION-KEY",
    "#EXT-X-PART",
    "#EXT-X-PRELOAD-HINT",
    "#EXT-X-RENDITION-REPORT",
];

/// Why a playlist could not be rewritten. The proxy answers 502: the origin sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The playlist is not UTF-8 (RFC 8216 4.1 requires it).
    #[error("playlist is not UTF-8")]
    NotUtf8,
    /// The first line is not `#EXTM3U` (RFC 8216 4.3.1.1).
    #[error("playlist does not start with #EXTM3U")]
    NoHeader,
    /// A line could not be parsed; `line` is 1-based.
    #[error("playlist line {line}: {reason}")]
    BadLine {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why an HLS request path is refused (400) before any origin is contacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8.
    #[error("invalid percent-encoding in the path")]
    BadEncoding,
    /// A `.` or `..` segment, plain or percent-encoded (`%2e%2e`).
    #[error("`.` and `..` path segments are not allowed")]
    DotSegment,
    /// A percent-encoded `/`, a backslash or a control character inside a segment.
    #[error("encoded slash, backslash or control character in a path segment")]
    ForbiddenChar,
}

/// What a playlist's URIs are rewritten against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The playlist's path on the proxy (= on the origin), e.g. `/live/s.m3u8`: the base of
    /// relative references.
    pub playlist_path: &'a str,
    /// Authorities (`host:port`) that mean "the origin or this proxy": absolute URLs naming one
    /// of them are made proxy paths. Compared case-insensitively, default ports ignored.
    pub local_authorities: &'a [&'a str],
    /// The HLS session id added as [`SESSION_PARAM`].
    pub session_id: &'a str,
}

/// Rewrites every URI of a master or media playlist (see the module docs).
///
/// Errors: [`RewriteError::NotUtf8`], [`RewriteError::NoHeader`], and
/// [`RewriteError::BadLine`] for an attribute list that does not parse (RFC 8216 4.2), a `URI`
/// attribute that is not a quoted string, an empty URI, or control characters in a URI (also
/// when they would come from [`Target::playlist_path`] or [`Target::session_id`]).
pub fn rewrite_playlist(input: &[u8], target: &Target<'_>) -> Result<String, RewriteError> {
    let text = std::str::from_utf8(input).map_err(|_| RewriteError::NotUtf8)?;
    // A byte-order mark is not allowed (RFC 8216 4.1) but common; tolerate it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.lines().next().map(str::trim_end) != Some("#EXTM3U") {
        return Err(RewriteError::NoHeader);
    }
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let (line, terminator) = split_terminator(raw);
        let trimmed = line.trim();
        let rewritten = if trimmed.is_empty() {
            None
        } else if trimmed.starts_with('#') {
            let name = trimmed.split(':').next().unwrap_or(trimmed);
            if URI_TAGS.contains(&name) {
                Some(rewrite_tag(trimmed, target))
            } else {
                None
            }
        } else {
            Some(rewrite_uri(trimmed, target))
        };
        match rewritten {
            None => out.push_str(line),
            Some(Ok(s)) => out.push_str(&s),
            Some(Err(reason)) => {
                return Err(RewriteError::BadLine {
                    line: index + 1,
                    reason,
                })
            }
        }
        out.push_str(terminator);
    }
    Ok(out)
}

/// Splits a line from its `\n` or `\r\n` terminator.
fn split_terminator(raw: &str) -> (&str, &str) {
    if let Some(line) = raw.strip_suffix("\r\n") {
        (line, "\r\n")
    } else if let Some(line) = raw.strip_suffix('\n') {
        (line, "\n")
    } else {
        (raw, "")
    }
}

/// Rewrites the `URI` attribute of a tag's attribute list (RFC 8216 4.2), copying the rest.
fn rewrite_tag(line: &str, target: &Target<'_>) -> Result<String, &'static str> {
    let Some((name, mut rest)) = line.split_once(':') else {
        return Ok(line.to_string());
    };
    let mut out = String::with_capacity(line.len() + 64);
    out.push_str(name);
    out.push(':');
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("attribute without a value")?;
        let attribute = rest[..eq].trim();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        let consumed = if let Some(quoted) = rest.strip_prefix('"') {
            let close = quoted.find('"').ok_or("unterminated quoted string")?;
            if attribute == "URI" {
                out.push('"');
                out.push_str(&rewrite_uri(&quoted[..close], target)?);
                out.push('"');
            } else {
                out.push_str(&rest[..close + 2]);
            }
            close + 2
        } else {
            if attribute == "URI" {
                return Err("URI attribute is not a quoted string");
            }
            let end = rest.find(',').unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            end
        };
        rest = &rest[consumed..];
        if !rest.is_empty() {
            rest = rest.strip_prefix(',').ok_or("text after a quoted string")?;
            out.push(',');
        }
    }
    Ok(out)
}

/// Rewrites one URI (see the module docs); URIs to other hosts or schemes come back unchanged.
fn rewrite_uri(uri: &str, target: &Target<'_>) -> Result<String, &'static str> {
    if uri.is_empty() {
        return Err("empty URI");
    }
    if uri.chars().any(char::is_control) {
        return Err("control character in a URI");
    }
    let (uri_no_fragment, fragment) = match uri.find('#') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    let (reference, query) = uri_no_fragment
        .split_once('?')
        .unwrap_or((uri_no_fragment, ""));

    let merged;
    let path = if let Some(rest) = reference.strip_prefix("//") {
        // A network-path reference (RFC 3986 4.2) takes the playlist's scheme, http.
        match local_path(rest, "http", target) {
            Some(path) => path,
            None => return Ok(uri.to_string()),
        }
    } else if let Some((scheme, rest)) = split_scheme(reference) {
        let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        match rest.strip_prefix("//").filter(|_| http) {
            Some(rest) => match local_path(rest, scheme, target) {
                Some(path) => path,
                None => return Ok(uri.to_string()),
            },
            None => return Ok(uri.to_string()),
        }
    } else if reference.starts_with('/') {
        reference
    } else {
        // Defensive: a caller may hand over the request target with its query or fragment.
        let base = target.playlist_path.split(['?', '#']).next().unwrap_or("");
        if reference.is_empty() {
            // RFC 3986 5.2.2: an empty path keeps the base path.
            base
        } else {
            let dir_end = base.rfind('/').map_or(0, |i| i + 1);
            merged = format!("{}{reference}", &base[..dir_end]);
            &merged
        }
    };

    let mut query = without_param(query, SESSION_PARAM);
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(SESSION_PARAM);
    query.push('=');
    query.push_str(target.session_id);
    let out = format!("{}?{query}{fragment}", normalize_path(path));
    // The playlist path and session id come from the caller: they must not break the line.
    if out.chars().any(char::is_control) {
        return Err("control character in the playlist path or session id");
    }
    Ok(out)
}

/// The scheme of an absolute URI and what follows its `:` (RFC 3986 3.1), if it has one.
fn split_scheme(reference: &str) -> Option<(&str, &str)> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme, &reference[colon + 1..]))
}

/// For `authority/path` after `scheme://`: the path when the authority is local.
fn local_path<'a>(rest: &'a str, scheme: &str, target: &Target<'_>) -> Option<&'a str> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let authority = normalize_authority(authority, scheme);
    target
        .local_authorities
        .iter()
        .any(|local| normalize_authority(local, "http") == authority)
        .then_some(path)
}

/// `host[:port]` lowercased, without user info and without the scheme's default port.
fn normalize_authority(authority: &str, scheme: &str) -> String {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let lower = host_port.to_ascii_lowercase();
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    match lower.strip_suffix(default) {
        Some(host) => host.to_string(),
        None => lower,
    }
}

/// Removes dot segments (RFC 3986 5.2.4, `..` never climbing above the root) and empty segments;
/// the result starts with exactly one `/`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let last = path.rsplit('/').next().unwrap_or("");
    let directory = matches!(last, "" | "." | "..") && !segments.is_empty();
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || directory {
        out.push('/');
    }
    out
}

/// `query` (no leading `?`) without any `name` or `name=...` parameter, other parameters kept in
/// order. Empty pairs (`a=1&&b=2`) are dropped.
pub fn without_param(query: &str, name: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    kept.join("&")
}

/// A request path checked for traversal, and its normalised form for the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPath {
    /// The path as sent to the origin: the raw segments joined by single slashes, with a
    /// leading `/` (empty segments dropped).
    pub path: String,
    /// The percent-decoded segments.
    pub segments: Vec<String>,
}

/// Checks an HLS request path (raw, as received) and normalises it. Every segment is
/// percent-decoded and must not be `.` or `..`, and must not contain `/`, `\` or control
/// characters, so that no spelling (`/../`, `%2e%2e`, `..%2f`) can walk out of the directory the
/// proxy means to reach on the origin.
///
/// Errors: [`PathError`].
pub fn clean_request_path(path: &str) -> Result<CleanPath, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut segments = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = srs_cluster::percent_decode(raw).map_err(|_| PathError::BadEncoding)?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
        if decoded
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(PathError::ForbiddenChar);
        }
        out.push('/');
        out.push_str(raw);
        segments.push(decoded);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(CleanPath {
        path: out,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const LOCAL: &[&str] = &["127.0.0.1:8080", "proxy.example.com"];

    fn target(path: &str) -> Target<'_> {
        Target {
            playlist_path: path,
            local_authorities: LOCAL,
            session_id: ID,
        }
    }

    fn uri(u: &str) -> String {
        rewrite_uri(u, &target("/live/s.m3u8")).unwrap()
    }

    fn rewrite(text: &str, path: &str) -> String {
        rewrite_playlist(text.as_bytes(), &target(path)).unwrap()
    }

    #[test]
    fn relative_uris_resolve_against_the_playlist() {
        assert_eq!(uri("s-0.ts"), format!("/live/s-0.ts?spbhid={ID}"));
        assert_eq!(uri("./a/s-0.ts"), format!("/live/a/s-0.ts?spbhid={ID}"));
        assert_eq!(uri("../x/s.ts"), format!("/x/s.ts?spbhid={ID}"));
        // `..` never climbs above the root, so the result stays on the proxy.
        assert_eq!(
            uri("../../../../etc/p.ts"),
            format!("/etc/p.ts?spbhid={ID}")
        );
        assert_eq!(
            uri("?hls_ctx=1"),
            format!("/live/s.m3u8?hls_ctx=1&spbhid={ID}")
        );
        let nested = rewrite_uri("seg/1.m4s", &target("/a/b/c.m3u8")).unwrap();
        assert_eq!(nested, format!("/a/b/seg/1.m4s?spbhid={ID}"));
    }

    #[test]
    fn control_characters_from_the_target_are_refused() {
        // Found by the playlist_rewrite fuzz target: a CR LF in the playlist path split a
        // rewritten URI line in two.
        let err = rewrite_playlist(b"#EXTM3U\n[s.ts\n", &target("//\r\n/")).unwrap_err();
        assert_eq!(
            err,
            RewriteError::BadLine {
                line: 2,
                reason: "control character in the playlist path or session id"
            }
        );
        let bad_id = Target {
            session_id: "a\nb",
            ..target("/live/s.m3u8")
        };
        assert!(rewrite_playlist(b"#EXTM3U\ns.ts\n", &bad_id).is_err());
        // URIs to other hosts do not use the target: still copied.
        let cdn = b"#EXTM3U\nhttp://cdn.example.com/s.ts\n";
        assert!(rewrite_playlist(cdn, &target("/l\u{7f}/s.m3u8")).is_ok());
    }

    #[test]
    fn a_query_in_the_playlist_path_is_not_part_of_the_base() {
        // Found by the playlist_rewrite fuzz target: `/.?z//` as the base gave `/.?z/XX`.
        let out = rewrite_uri("XX", &target(".?z//")).unwrap();
        assert_eq!(out, format!("/XX?spbhid={ID}"));
        let out = rewrite_uri("s-0.ts", &target("/live/s.m3u8?hls_ctx=1#x")).unwrap();
        assert_eq!(out, format!("/live/s-0.ts?spbhid={ID}"));
        let out = rewrite_uri("?a=1", &target("/live/s.m3u8?hls_ctx=1")).unwrap();
        assert_eq!(out, format!("/live/s.m3u8?a=1&spbhid={ID}"));
    }

    #[test]
    fn absolute_paths_keep_their_query() {
        assert_eq!(
            uri("/live/s.m3u8?hls_ctx=X"),
            format!("/live/s.m3u8?hls_ctx=X&spbhid={ID}")
        );
        assert_eq!(
            uri("s-0.ts?hls_ctx=X&token=a%20b"),
            format!("/live/s-0.ts?hls_ctx=X&token=a%20b&spbhid={ID}")
        );
        // An old session id is replaced, not duplicated.
        assert_eq!(
            uri("s-0.ts?spbhid=old&hls_ctx=X"),
            format!("/live/s-0.ts?hls_ctx=X&spbhid={ID}")
        );
        assert_eq!(uri("s.ts#t=1"), format!("/live/s.ts?spbhid={ID}#t=1"));
        // A leading `//` would name another host: empty segments are collapsed.
        assert_eq!(uri("/a//b/./c.ts"), format!("/a/b/c.ts?spbhid={ID}"));
    }

    #[test]
    fn absolute_urls_to_the_origin_or_proxy_become_proxy_paths() {
        assert_eq!(
            uri("http://127.0.0.1:8080/live/s-0.ts"),
            format!("/live/s-0.ts?spbhid={ID}")
        );
        assert_eq!(
            uri("HTTP://user@127.0.0.1:8080//evil.com/x.ts?a=1"),
            format!("/evil.com/x.ts?a=1&spbhid={ID}")
        );
        assert_eq!(
            uri("https://Proxy.Example.com:443/live/s-0.ts"),
            format!("/live/s-0.ts?spbhid={ID}")
        );
        assert_eq!(
            uri("//127.0.0.1:8080/live/s-1.ts"),
            format!("/live/s-1.ts?spbhid={ID}")
        );
        assert_eq!(uri("http://127.0.0.1:8080"), format!("/?spbhid={ID}"));
    }

    #[test]
    fn other_hosts_and_schemes_are_unchanged() {
        for u in [
            "http://cdn.example.net/live/s-0.ts",
            "https://127.0.0.1:8081/live/s-0.ts",
            "//cdn.example.net/x.ts?a=1",
            "skd://key-id",
            "data:text/plain;base64,AAAA",
        ] {
            assert_eq!(uri(u), u);
        }
    }

    #[test]
    fn bad_uris_are_errors() {
        assert!(rewrite_uri("", &target("/live/s.m3u8")).is_err());
        assert!(rewrite_uri("a\u{1}b.ts", &target("/live/s.m3u8")).is_err());
    }

    #[test]
    fn srs_fixtures() {
        let master = include_str!("../../../tests/fixtures/hls/srs-master.m3u8");
        let out = rewrite(master, "/live/s.m3u8");
        assert_eq!(
            out,
            format!(
                "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1\n\
                 /live/s.m3u8?hls_ctx=ID&spbhid={ID}\n"
            )
        );
        let media = include_str!("../../../tests/fixtures/hls/srs-media.m3u8");
        let out = rewrite(media, "/live/s.m3u8");
        let uris: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            (0..3)
                .map(|n| format!("/live/s-{n}.ts?hls_ctx=ID&spbhid={ID}"))
                .collect::<Vec<_>>()
        );
        // Tags and titles are copied as they are.
        let tags: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
        let original: Vec<&str> = media.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(tags, original);
    }

    #[test]
    fn master_with_variants_and_media() {
        let master = "#EXTM3U\r\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en, main\",DEFAULT=YES,URI=\"audio/en.m3u8\"\r\n\
            #EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"cc1\",INSTREAM-ID=\"CC1\"\r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aud\"\r\n\
            low/index.m3u8\r\n\
            \r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2560000,AUDIO=\"aud\"\r\n\
            http://127.0.0.1:8080/hls/high/index.m3u8?t=1\r\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"low/iframe.m3u8\"\r\n\
            # a comment with URI=\"x\"\r\n";
        let out = rewrite(master, "/hls/main.m3u8");
        let expected = format!(
            "#EXTM3U\r\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en, main\",DEFAULT=YES,URI=\"/hls/audio/en.m3u8?spbhid={ID}\"\r\n\
            #EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"cc1\",INSTREAM-ID=\"CC1\"\r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aud\"\r\n\
            /hls/low/index.m3u8?spbhid={ID}\r\n\
            \r\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2560000,AUDIO=\"aud\"\r\n\
            /hls/high/index.m3u8?t=1&spbhid={ID}\r\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"/hls/low/iframe.m3u8?spbhid={ID}\"\r\n\
            # a comment with URI=\"x\"\r\n"
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn fmp4_media_with_map_key_and_parts() {
        let media = "#EXTM3U\n\
            #EXT-X-VERSION:7\n\
            #EXT-X-TARGETDURATION:2\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"key.bin?k=1\",IV=0x00000000000000000000000000000001\n\
            #EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\n\
            #EXTINF:2.0,title with URI=\"not-a-uri\"\n\
            seg-1.m4s\n\
            #EXT-X-PART:DURATION=0.5,URI=\"seg-2.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg-2.1.m4s\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=2\n\
            #EXT-X-KEY:METHOD=SAMPLE-AES,KEYFORMAT=\"com.apple.streamingkeydelivery\",URI=\"skd://k\"\n\
            #EXT-X-KEY:METHOD=NONE";
        let out = rewrite(media, "/live/1080p/index.m3u8");
        let expected = format!(
            "#EXTM3U\n\
            #EXT-X-VERSION:7\n\
            #EXT-X-TARGETDURATION:2\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/live/1080p/key.bin?k=1&spbhid={ID}\",IV=0x00000000000000000000000000000001\n\
            #EXT-X-MAP:URI=\"/live/1080p/init.mp4?spbhid={ID}\",BYTERANGE=\"720@0\"\n\
            #EXTINF:2.0,title with URI=\"not-a-uri\"\n\
            /live/1080p/seg-1.m4s?spbhid={ID}\n\
            #EXT-X-PART:DURATION=0.5,URI=\"/live/1080p/seg-2.0.m4s?spbhid={ID}\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"/live/1080p/seg-2.1.m4s?spbhid={ID}\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"/live/720p/index.m3u8?spbhid={ID}\",LAST-MSN=2\n\
            #EXT-X-KEY:METHOD=SAMPLE-AES,KEYFORMAT=\"com.apple.streamingkeydelivery\",URI=\"skd://k\"\n\
            #EXT-X-KEY:METHOD=NONE"
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn invalid_playlists_are_errors() {
        let t = target("/live/s.m3u8");
        assert_eq!(
            rewrite_playlist(b"\xff\xfe", &t),
            Err(RewriteError::NotUtf8)
        );
        assert_eq!(rewrite_playlist(b"", &t), Err(RewriteError::NoHeader));
        assert_eq!(
            rewrite_playlist(b"<html>not found</html>", &t),
            Err(RewriteError::NoHeader)
        );
        assert_eq!(
            rewrite_playlist(b"#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\n", &t),
            Err(RewriteError::BadLine {
                line: 2,
                reason: "unterminated quoted string"
            })
        );
        assert!(rewrite_playlist(b"#EXTM3U\n#EXT-X-MAP:URI=init.mp4\n", &t).is_err());
        assert!(rewrite_playlist(b"#EXTM3U\n#EXT-X-KEY:METHOD\n", &t).is_err());
        assert!(rewrite_playlist(b"#EXTM3U\n#EXT-X-MAP:URI=\"a\"x\n", &t).is_err());
        // A byte-order mark is tolerated.
        let bom = rewrite_playlist("\u{feff}#EXTM3U\ns.ts\n".as_bytes(), &t).unwrap();
        assert_eq!(bom, format!("#EXTM3U\n/live/s.ts?spbhid={ID}\n"));
    }

    #[test]
    fn query_param_removal() {
        assert_eq!(
            without_param("spbhid=1&hls_ctx=2", SESSION_PARAM),
            "hls_ctx=2"
        );
        assert_eq!(without_param("a=1&spbhid&b=2", SESSION_PARAM), "a=1&b=2");
        assert_eq!(without_param("spbhidx=1", SESSION_PARAM), "spbhidx=1");
        assert_eq!(without_param("", SESSION_PARAM), "");
    }

    #[test]
    fn request_paths() {
        let clean = clean_request_path("/live//s%2Dx.ts").unwrap();
        assert_eq!(clean.path, "/live/s%2Dx.ts");
        assert_eq!(clean.segments, vec!["live", "s-x.ts"]);
        for (path, err) in [
            ("/live/../../etc/passwd.m3u8", PathError::DotSegment),
            ("/live/./s.m3u8", PathError::DotSegment),
            ("/live/%2e%2e/%2E%2E/x.m3u8", PathError::DotSegment),
            ("/live/..%2fsecret.ts", PathError::ForbiddenChar),
            ("/live/a%5cb.ts", PathError::ForbiddenChar),
            ("/live/a%00.ts", PathError::ForbiddenChar),
            ("/live/%zz.ts", PathError::BadEncoding),
            ("/live/%ff.ts", PathError::BadEncoding),
        ] {
            assert_eq!(clean_request_path(path), Err(err), "{path}");
        }
    }
}
