//! The HTTP API listener, with SRS-compatible response shapes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::hub::Hub;

/// What the API reports about this process.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Server id (`ORIGIN_SERVER_ID`).
    pub server: String,
    /// Service id, random per process start.
    pub service: String,
    /// Process id, as a string like SRS sends it.
    pub pid: String,
}

#[derive(Clone)]
struct ApiState {
    hub: Hub,
    id: Arc<Identity>,
}

/// The router of the HTTP API listener, with `extra` routes (WebRTC signalling) merged in.
pub fn router(hub: Hub, id: Identity, extra: Router) -> Router {
    Router::new()
        .route("/api/v1/versions", get(versions))
        .route("/api/v1/streams", get(streams))
        .route("/api/v1/streams/", get(streams))
        .with_state(ApiState {
            hub,
            id: Arc::new(id),
        })
        .merge(extra)
        .fallback(not_found)
        .layer(srs_common::http::cors())
}

async fn versions(State(s): State<ApiState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, revision) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    reply(json!({
        "code": 0,
        "server": s.id.server,
        "service": s.id.service,
        "pid": s.id.pid,
        "data": {"major": major, "minor": minor, "revision": revision, "version": version},
    }))
}

async fn streams(State(s): State<ApiState>) -> Response {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let streams: Vec<Value> = s
        .hub
        .stats()
        .into_iter()
        .map(|st| {
            json!({
                "id": st.id,
                "name": st.key.stream,
                "vhost": st.key.vhost,
                "app": st.key.app,
                "tcUrl": st.publish.tc_url,
                "url": format!("/{}/{}", st.key.app, st.key.stream),
                "live_ms": now_ms,
                "start_ms": st.start_ms,
                "clients": st.clients,
                "frames": st.frames,
                "send_bytes": st.send_bytes,
                "recv_bytes": st.recv_bytes,
                "publish": {"active": true, "cid": st.publish.cid},
                "video": st.video_codec.map(|c| json!({"codec": c})),
                "audio": st.audio_codec.map(|c| json!({"codec": c})),
            })
        })
        .collect();
    reply(json!({
        "code": 0,
        "server": s.id.server,
        "service": s.id.service,
        "pid": s.id.pid,
        "streams": streams,
    }))
}

async fn not_found() -> Response {
    let body = json!({"code": 404, "error": "not found"});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn reply(body: Value) -> Response {
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::PublishInfo;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use srs_cluster::StreamKey;
    use tower_service::Service;

    async fn get_json(router: &mut Router, path: &str) -> (StatusCode, Value) {
        let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let resp = router.call(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn versions_streams_and_404() {
        let hub = Hub::default();
        let id = Identity {
            server: "vid-test".into(),
            service: "svc".into(),
            pid: "42".into(),
        };
        let _p = hub
            .publish(
                StreamKey {
                    vhost: "__defaultVhost__".into(),
                    app: "live".into(),
                    stream: "livestream".into(),
                },
                PublishInfo {
                    cid: "abc".into(),
                    tc_url: "rtmp://127.0.0.1/live".into(),
                },
            )
            .unwrap();
        let mut r = router(hub, id, Router::new());

        let (status, v) = get_json(&mut r, "/api/v1/versions").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["code"], 0);
        assert_eq!(v["server"], "vid-test");
        assert_eq!(v["pid"], "42");
        assert!(v["data"]["version"].is_string());

        let (_, v) = get_json(&mut r, "/api/v1/streams").await;
        let s = &v["streams"][0];
        assert_eq!(s["name"], "livestream");
        assert_eq!(s["app"], "live");
        assert_eq!(s["url"], "/live/livestream");
        assert_eq!(s["clients"], 1);
        assert_eq!(s["publish"]["cid"], "abc");
        assert!(s["video"].is_null());

        let (status, v) = get_json(&mut r, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["code"], 404);
    }
}
