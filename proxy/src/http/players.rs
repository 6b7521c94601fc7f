//! Player pages on the HTTP stream listener when PROXY_STATIC_FILES is unset: `/players/` lists
//! a stream's URLs in every protocol, `whip.html` publishes the camera with WHIP, `whep.html`
//! plays with WHEP. Plain HTML and JavaScript embedded in the binary; each page gets the
//! proxy's bound ports as `window.SRS_PROXY`, since the API is on another port than the page.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::json_error;
use crate::config::Config;

/// Where every path of the pages starts.
pub const PREFIX: &str = "/players";

const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";
const STYLE: &str = "text/css; charset=utf-8";

/// In each HTML page, replaced by the script that sets `window.SRS_PROXY`.
const CONFIG_MARK: &str = "<!-- srs-proxy config -->";

/// Path, content and type of every file.
const FILES: [(&str, &str, &str); 6] = [
    ("/players/", include_str!("players/index.html"), HTML),
    (
        "/players/index.html",
        include_str!("players/index.html"),
        HTML,
    ),
    (
        "/players/whip.html",
        include_str!("players/whip.html"),
        HTML,
    ),
    (
        "/players/whep.html",
        include_str!("players/whep.html"),
        HTML,
    ),
    ("/players/rtc.js", include_str!("players/rtc.js"), SCRIPT),
    (
        "/players/style.css",
        include_str!("players/style.css"),
        STYLE,
    ),
];

/// Whether `path` is one of the pages' (`/players` or below).
pub fn is_players(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Serves a request for a path [`is_players`] accepts.
pub fn serve(config: &Config, request: &Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the players are read with GET",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path();
    if path == PREFIX {
        // Relative links of the index need the slash.
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return match HeaderValue::from_str(&format!("{PREFIX}/{query}")) {
            Ok(location) => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(e) => json_error(StatusCode::BAD_REQUEST, e),
        };
    }
    let Some(&(_, content, content_type)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return json_error(StatusCode::NOT_FOUND, "no such player page");
    };
    let body = if content_type == HTML {
        content.replacen(CONFIG_MARK, &config_script(config), 1)
    } else {
        content.to_string()
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The injected ports change with the configuration.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `<script>window.SRS_PROXY = {...}</script>` with the ports the pages build URLs with.
fn config_script(config: &Config) -> String {
    let ports = json!({
        "api": config.http_api.port(),
        "rtmp": config.rtmp_server.port(),
        "http": config.http_server.port(),
        "srt": config.srt_server.port(),
        "webrtc": config.webrtc_server.port(),
    });
    format!("<script>window.SRS_PROXY = {ports};</script>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Lifecycle;
    use crate::state::Inner;
    use axum::body::to_bytes;
    use srs_lb::{MemoryStore, StoreConfig};
    use std::sync::Arc;
    use std::time::Duration;

    fn router(pairs: &[(&str, &str)]) -> axum::Router {
        let config = Config::from_pairs(pairs.iter().copied()).unwrap();
        let store = Arc::new(MemoryStore::with_config(StoreConfig::new(
            Duration::from_secs(30),
            None,
        )));
        super::super::streams_router(Inner::new(config, store, Lifecycle::new()))
    }

    async fn request(app: &axum::Router, method: Method, uri: &str) -> (Response, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let text = String::from_utf8(to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        (Response::from_parts(parts, Body::empty()), text)
    }

    fn content_type(response: &Response) -> &str {
        response.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[tokio::test]
    async fn pages_carry_the_configured_ports() {
        let app = router(&[
            ("PROXY_HTTP_API", "1985"),
            ("PROXY_RTMP_SERVER", "127.0.0.1:1935"),
            ("PROXY_SRT_SERVER", "10080"),
        ]);
        for path in [
            "/players/",
            "/players/index.html",
            "/players/whip.html",
            "/players/whep.html",
        ] {
            let (response, body) =
                request(&app, Method::GET, &format!("{path}?app=live&stream=s")).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(content_type(&response), "text/html; charset=utf-8");
            assert!(
                body.contains(r#"window.SRS_PROXY = {"api":1985,"#),
                "{path}: {body}"
            );
            assert!(body.contains(r#""rtmp":1935"#) && body.contains(r#""srt":10080"#));
            assert!(!body.contains(CONFIG_MARK), "{path}");
            assert!(body.contains(r#"<script src="rtc.js">"#), "{path}");
        }
        let (_, whip) = request(&app, Method::GET, "/players/whip.html").await;
        assert!(whip.contains("getUserMedia") && whip.contains("sendonly"));
        let (_, whep) = request(&app, Method::GET, "/players/whep.html").await;
        assert!(whep.contains("recvonly") && whep.contains("framesDecoded"));
        let (response, script) = request(&app, Method::GET, "/players/rtc.js").await;
        assert_eq!(content_type(&response), "text/javascript; charset=utf-8");
        assert!(script.contains("application/sdp") && script.contains("'DELETE'"));
        let (response, _) = request(&app, Method::GET, "/players/style.css").await;
        assert_eq!(content_type(&response), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn other_methods_and_paths_are_refused() {
        let app = router(&[]);
        let (response, _) = request(&app, Method::HEAD, "/players/whep.html").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), "text/html; charset=utf-8");
        let (response, _) = request(&app, Method::POST, "/players/whip.html").await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        for path in [
            "/players/nope.html",
            "/players/../Cargo.toml",
            "/playersx",
            "/",
        ] {
            let (response, _) = request(&app, Method::GET, path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let (response, _) = request(&app, Method::GET, "/players?app=a&stream=b").await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/players/?app=a&stream=b"
        );
    }

    #[tokio::test]
    async fn static_files_replace_the_pages() {
        // A directory without players/.
        let app = router(&[("PROXY_STATIC_FILES", env!("CARGO_MANIFEST_DIR"))]);
        let (response, body) = request(&app, Method::GET, "/players/whip.html").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{body}");
    }
}
