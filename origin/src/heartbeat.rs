//! The SRS-style heartbeat: POST this origin's identity and ports ([`RegisterBody`]) to the
//! proxy's register API (docs/design.md §3), with the machine's load in SRS's `summaries` shape
//! (docs/design.md §5.1).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use srs_cluster::{RegisterBody, Summaries};

/// Each heartbeat request must finish within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The heartbeat's form of a UDP listener (SRT, WebRTC media): `udp://0.0.0.0:PORT`, so that the
/// proxy resolves it against the advertised `ip`, as it does the RTMP and HTTP ports.
pub fn udp_endpoint(addr: SocketAddr) -> String {
    format!("udp://0.0.0.0:{}", addr.port())
}

/// Why one heartbeat failed.
#[derive(Debug, thiserror::Error)]
enum HeartbeatError {
    #[error("request failed")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("proxy answered {status}: {body}")]
    Status {
        status: http::StatusCode,
        body: String,
    },
    #[error("building the request")]
    Build(#[from] http::Error),
}

/// The machine's one-minute load average (`/proc/loadavg`) and CPU count, as SRS reports them;
/// `None` where `/proc/loadavg` cannot be read (not Linux).
pub fn system_summaries() -> Option<Summaries> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load_1m = loadavg.split_whitespace().next()?.parse().ok()?;
    let cpus = std::thread::available_parallelism().ok()?.get();
    Some(Summaries::new(load_1m, u32::try_from(cpus).ok()?))
}

/// Posts `body`, with fresh [`system_summaries`], to `url` now and then every `interval`,
/// forever. A proxy that is down is retried quietly: one warning when heartbeats start failing,
/// one info line when they succeed again.
pub async fn run(url: http::Uri, mut body: RegisterBody, interval: Duration) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        body.summaries = system_summaries();
        let payload = match serde_json::to_vec(&body) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!("cannot encode the heartbeat body: {e}");
                return;
            }
        };
        match beat(&client, &url, payload).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(%url, "heartbeat to the proxy works again");
            }
            Ok(()) => tracing::debug!(%url, "heartbeat sent"),
            Err(e) if failing => tracing::debug!(%url, "heartbeat failed: {}", chain(&e)),
            Err(e) => {
                failing = true;
                tracing::warn!(%url, "heartbeat failed, will keep retrying quietly: {}", chain(&e));
            }
        }
    }
}

/// An error and its sources on one line: the client's own message alone ("client error
/// (Connect)") does not say what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn beat(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &http::Uri,
    payload: Bytes,
) -> Result<(), HeartbeatError> {
    let request = http::Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(payload))?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        // Read the body so the connection can be reused; its content matters only on error.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let body = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(HeartbeatError::Status { status, body })
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| HeartbeatError::Timeout(REQUEST_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let mut body = RegisterBody {
            device_id: None,
            ip: "127.0.0.1".into(),
            server: "vid-x".into(),
            service: "svc".into(),
            pid: "7".into(),
            rtmp: vec!["1935".into()],
            http: vec!["8080".into()],
            api: vec!["1985".into()],
            srt: vec![],
            rtc: vec![udp_endpoint("127.0.0.1:8000".parse().unwrap())],
            summaries: None,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert!(v.get("device_id").is_none() && v.get("srt").is_none());
        assert_eq!(v["rtmp"][0], "1935");
        assert_eq!(v["rtc"][0], "udp://0.0.0.0:8000");
        assert_eq!(v["pid"], "7");
        body.device_id = Some("origin2".into());
        assert_eq!(serde_json::to_value(&body).unwrap()["device_id"], "origin2");
        let info = srs_cluster::parse_register(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(info.rtc, ["127.0.0.1:8000"]);
    }

    #[tokio::test]
    async fn posts_to_the_register_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<serde_json::Value>(4);
        let app = axum::Router::new().route(
            "/api/v1/srs/register",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(v).await;
                    axum::Json(serde_json::json!({"code": 0, "pid": "1"}))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url: http::Uri = format!("http://127.0.0.1:{port}/api/v1/srs/register")
            .parse()
            .unwrap();
        let body = RegisterBody {
            ip: "127.0.0.1".into(),
            server: "vid-x".into(),
            service: "svc".into(),
            pid: "7".into(),
            rtmp: vec!["1935".into()],
            ..RegisterBody::default()
        };
        let task = tokio::spawn(run(url, body, Duration::from_millis(50)));
        for _ in 0..2 {
            let v = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(v["server"], "vid-x");
            // The machine's figures, read by the proxy as a load per CPU.
            let system = &v["summaries"]["data"]["system"];
            assert!(system["cpus"].as_u64().unwrap_or(0) >= 1, "{v}");
            assert!(system["load_1m"].as_f64().is_some_and(|l| l >= 0.0), "{v}");
        }
        task.abort();
    }
}
