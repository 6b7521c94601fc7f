//! Operations (issue 11): the streams API, readiness, registration with a token, the alive
//! duration's alias, and the client's address reaching the origin.

use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use srs_e2e::*;

/// The proxy's `/api/v1/streams` list.
fn streams(proxy: &Proxy) -> Vec<Value> {
    let v = get_json(&format!("http://{}/api/v1/streams", proxy.system));
    v["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("/api/v1/streams without a list: {v}"))
        .clone()
}

/// The session count of `protocol`/`direction` in a stream entry (0 when absent).
fn sessions(stream: &Value, protocol: &str, direction: &str) -> u64 {
    stream["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["protocol"] == protocol && g["direction"] == direction)
        .filter_map(|g| g["sessions"].as_u64())
        .sum()
}

#[test]
fn streams_api_follows_a_publish_and_a_play() {
    let dir = TempDir::new("ops-streams");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let _origin = Origin::start(&dir, "origin-1", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let origin_id = proxy.origin_entry("origin-1")["info"]["id"].clone();
    assert!(streams(&proxy).is_empty(), "no session yet");

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/ops"), 60);
    wait_until(Duration::from_secs(20), "the publish listed", || {
        streams(&proxy)
            .first()
            .is_some_and(|s| sessions(s, "rtmp", "publish") == 1)
    });
    let url = proxy.http_url("live/ops.flv");
    let player = {
        let dir = dir.to_path_buf();
        thread::spawn(move || play(&dir, "player", &url, 150, Duration::from_secs(30)))
    };
    wait_until(Duration::from_secs(20), "the play listed", || {
        streams(&proxy)
            .first()
            .is_some_and(|s| sessions(s, "http_flv", "play") == 1)
    });
    let list = streams(&proxy);
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(
        (&s["vhost"], &s["app"], &s["stream"]),
        (&"__defaultVhost__".into(), &"live".into(), &"ops".into()),
        "{s}"
    );
    assert_eq!(s["origin"], origin_id, "{s}");
    assert!(s["since_ms"].as_u64().unwrap() >= before, "{s}");
    for g in s["groups"].as_array().unwrap() {
        assert_eq!(g["origin"], origin_id, "{s}");
    }

    let one = get_reply(&format!(
        "http://{}/api/v1/streams/__defaultVhost__/live/ops",
        proxy.system
    ));
    assert_eq!(one.status, 200, "{}", one.text());
    let one: Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(sessions(&one["stream"], "rtmp", "publish"), 1, "{one}");
    let none = get_reply(&format!(
        "http://{}/api/v1/streams/__defaultVhost__/live/nope",
        proxy.system
    ));
    assert_eq!(none.status, 404, "{}", none.text());
    assert!(none.text().contains("\"code\":404"), "{}", none.text());

    assert_played(&player.join().unwrap(), 100, "HTTP-FLV through the proxy");
    publisher.kill();
    wait_until(Duration::from_secs(20), "streams empty again", || {
        streams(&proxy).is_empty()
    });
}

#[test]
fn streams_api_drops_the_sessions_of_a_dead_origin() {
    let dir = TempDir::new("ops-streams-dead");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let mut origin = Origin::start(&dir, "origin-1", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/dead"), 60);
    wait_until(Duration::from_secs(20), "the publish listed", || {
        streams(&proxy)
            .first()
            .is_some_and(|s| sessions(s, "rtmp", "publish") == 1)
    });
    origin.proc.kill();
    wait_until(
        Duration::from_secs(20),
        "the dead origin's stream gone",
        || streams(&proxy).is_empty(),
    );
    let (status, _) = http(
        "GET",
        &format!(
            "http://{}/api/v1/streams/__defaultVhost__/live/dead",
            proxy.system
        ),
        None,
    );
    assert_eq!(status, 404);
}

/// Status and body of the proxy's `/readyz`.
fn ready(proxy: &Proxy) -> (u16, String) {
    http("GET", &format!("http://{}/readyz", proxy.system), None)
}

#[test]
fn readyz_follows_the_store() {
    let dir = TempDir::new("ops-readyz");
    let memory = Proxy::start(&dir, "proxy-memory", &[]);
    assert_eq!(ready(&memory).0, 200, "{}", ready(&memory).1);

    let mut redis = Redis::start();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proxy = Proxy::start(&dir, "proxy-redis", &env);
    assert_eq!(ready(&proxy).0, 200, "{}", ready(&proxy).1);
    redis.stop();
    wait_until(Duration::from_secs(10), "503 without Redis", || {
        ready(&proxy).0 == 503
    });
    let (_, reason) = ready(&proxy);
    assert!(reason.contains("store"), "the reason: {reason}");
    let (status, _) = http("GET", &format!("http://{}/healthz", proxy.system), None);
    assert_eq!(status, 200, "healthz stays up");
    redis.restart();
    wait_until(Duration::from_secs(10), "200 with Redis back", || {
        ready(&proxy).0 == 200
    });
}

const TOKEN: &str = "s3cret-token";

/// A register body for server `server` offering RTMP and HTTP on unused ports.
fn register_body(server: &str) -> String {
    format!(
        r#"{{"ip":"127.0.0.1","server":"{server}","service":"1","pid":"1","rtmp":["1"],"http":["2"]}}"#
    )
}

/// Posts a register body to `url` with an optional `Authorization` value; status and the
/// `WWW-Authenticate` header.
fn register(url: &str, server: &str, authorization: Option<&str>) -> (u16, Option<String>) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(5));
    if let Some(a) = authorization {
        req = req.set("Authorization", a);
    }
    match req.send_string(&register_body(server)) {
        Ok(r) => (r.status(), r.header("www-authenticate").map(str::to_string)),
        Err(ureq::Error::Status(code, r)) => {
            (code, r.header("www-authenticate").map(str::to_string))
        }
        Err(e) => panic!("POST {url}: {e}"),
    }
}

fn registered(proxy: &Proxy) -> Vec<String> {
    proxy
        .origin_list()
        .iter()
        .map(|o| o["info"]["server"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn register_needs_the_token_when_auth_is_on() {
    let dir = TempDir::new("ops-auth");
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_HTTP_API_AUTH_ENABLED", "on"),
            ("PROXY_HTTP_API_AUTH_TOKEN", TOKEN),
        ],
    );
    let url = proxy.register_url();
    for (server, auth, query) in [
        ("none", None, ""),
        ("wrong-bearer", Some("Bearer nope"), ""),
        ("basic", Some("Basic czNjcmV0LXRva2Vu"), ""),
        ("wrong-query", None, "?token=nope"),
        ("prefix", Some("Bearer s3cret"), ""),
    ] {
        let (status, challenge) = register(&format!("{url}{query}"), server, auth);
        assert_eq!(status, 401, "{server}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{server}");
    }
    assert!(registered(&proxy).is_empty(), "{:?}", registered(&proxy));

    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(register(&url, "by-header", Some(&bearer)).0, 200);
    assert_eq!(
        register(&format!("{url}?token={TOKEN}"), "by-query", None).0,
        200
    );
    let list = registered(&proxy);
    assert!(
        list.contains(&"by-header".to_string()) && list.contains(&"by-query".to_string()),
        "{list:?}"
    );

    // srs-origin keeps the query of its register URL, and stays registered by heartbeat.
    let _origin = Origin::start(&dir, "origin-1", &format!("{url}?token={TOKEN}"), &[]);
    proxy.wait_origins(3);
    thread::sleep(Duration::from_secs(3));
    assert_eq!(proxy.origin_entry("origin-1")["alive"], true);
}

/// Runs srs-proxy with `env` on free ports and returns its output once it exits (within 10 s).
fn run_to_exit(env: &[(&str, &str)]) -> Output {
    let dir = TempDir::new("ops-startup");
    let mut cmd = Proxy::command(&dir);
    cmd.envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn srs-proxy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("srs-proxy did not exit with {env:?}");
}

/// The start-up error of `env`; panics when the proxy started.
fn startup_error(env: &[(&str, &str)]) -> String {
    let out = run_to_exit(env);
    assert!(!out.status.success(), "{env:?} must stop start-up");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn auth_and_alias_mistakes_stop_startup() {
    let e = startup_error(&[("PROXY_HTTP_API_AUTH_ENABLED", "on")]);
    assert!(e.contains("PROXY_HTTP_API_AUTH_TOKEN"), "{e}");
    let e = startup_error(&[
        ("PROXY_HTTP_API_AUTH_ENABLED", "on"),
        ("PROXY_HTTP_API_AUTH_TYPE", "basic"),
        ("PROXY_HTTP_API_AUTH_TOKEN", TOKEN),
    ]);
    assert!(
        e.contains("PROXY_HTTP_API_AUTH_TYPE") && e.contains("basic"),
        "{e}"
    );
    let e = startup_error(&[
        ("PROXY_SERVER_ALIVE_DURATION", "30s"),
        ("PROXY_ORIGIN_SERVER_TTL", "10s"),
    ]);
    assert!(
        e.contains("PROXY_SERVER_ALIVE_DURATION") && e.contains("PROXY_ORIGIN_SERVER_TTL"),
        "{e}"
    );
    // Still the proxy's own command: a good configuration does not exit.
    let dir = TempDir::new("ops-startup-good");
    let _ = Proxy::start(&dir, "proxy", &[("PROXY_HTTP_API_AUTH_ENABLED", "off")]);
}

#[test]
fn origin_server_ttl_alone_sets_the_alive_duration() {
    let dir = TempDir::new("ops-ttl");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_ORIGIN_SERVER_TTL", "2s")]);
    let (status, body) = http("POST", &proxy.register_url(), Some(&register_body("once")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.origin_list()[0]["alive"], true);
    // One heartbeat only: dead after the alias's 2 s, not the default 30 s.
    wait_until(Duration::from_secs(8), "the origin dead after 2 s", || {
        proxy
            .origin_list()
            .first()
            .is_none_or(|o| o["alive"] == false)
    });
}

#[test]
fn origins_see_the_client_address() {
    let dir = TempDir::new("ops-forwarded");
    let root = dir.join("www");
    let live = root.join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("x.flv"), b"FLV\x01\x05\0\0\0\x09\0\0\0\0").unwrap();
    std::fs::write(
        live.join("x.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nx-0.ts\n",
    )
    .unwrap();
    std::fs::write(live.join("x-0.ts"), vec![0x47u8; 188]).unwrap();
    let origin = StaticServer::start(&dir, "static-origin", &root);
    let proxy = Proxy::start(&dir, "proxy", &[]);
    origin.register(&proxy, "fx");

    let flv = ureq::get(&proxy.http_url("live/x.flv"))
        .set("X-Forwarded-For", "203.0.113.7")
        .set("X-Real-IP", "203.0.113.8")
        .call()
        .expect("FLV through the proxy");
    assert_eq!(flv.status(), 200);
    let playlist = get_reply(&proxy.http_url("live/x.m3u8"));
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let segment = playlist
        .text()
        .lines()
        .find(|l| l.contains("x-0.ts"))
        .unwrap_or_else(|| panic!("no segment in {}", playlist.text()))
        .to_string();
    let reply = get_reply(&format!("http://{}{segment}", proxy.http));
    assert_eq!(reply.status, 200, "{}", reply.text());

    let seen = origin.requests_with_headers();
    let find = |path: &str| {
        seen.iter()
            .find(|(line, _)| line.starts_with(&format!("GET {path}")))
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| panic!("no request for {path} in {seen:?}"))
    };
    let h = find("/live/x.flv");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "{h}");
    assert_eq!(h["x-real-ip"], "127.0.0.1", "{h}");
    for path in ["/live/x.m3u8", "/live/x-0.ts"] {
        let h = find(path);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{path}: {h}");
        assert_eq!(h["x-real-ip"], "127.0.0.1", "{path}: {h}");
        assert!(
            h["via"]
                .as_str()
                .is_some_and(|v| v.starts_with("1.1 srs-proxy-")),
            "{h}"
        );
    }

    // WHIP: the same server registered with WebRTC endpoints gets the offer (and refuses it:
    // python's server has no POST; the proxy passes the refusal on).
    let body = format!(
        r#"{{"ip":"127.0.0.1","server":"fx-rtc","service":"1","pid":"1","rtmp":["1"],"api":["{}"],"rtc":["udp://0.0.0.0:9"]}}"#,
        origin.port
    );
    assert_eq!(http("POST", &proxy.register_url(), Some(&body)).0, 200);
    let offer = srs_rtc_client::build_offer(srs_rtc_client::Role::Publish).expect("offer");
    let whip = format!("http://{}/rtc/v1/whip/?app=live&stream=w", proxy.api);
    let refused = ureq::post(&whip)
        .set("Content-Type", "application/sdp")
        .send_string(&offer);
    assert!(
        matches!(refused, Err(ureq::Error::Status(501, _))),
        "{refused:?}"
    );
    let seen = origin.requests_with_headers();
    let (_, h) = seen
        .iter()
        .find(|(line, _)| line.starts_with("POST /rtc/v1/whip/?app=live&stream=w"))
        .unwrap_or_else(|| panic!("no WHIP request in {seen:?}"));
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-real-ip"], "127.0.0.1", "{h}");
    assert_eq!(h["content-type"], "application/sdp", "{h}");
}

#[test]
fn reuse_port_lets_a_new_proxy_take_over_while_the_old_drains() {
    let dir = TempDir::new("ops-reuse-port");
    let redis = Redis::start();
    let ports: Vec<String> = (0..6)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut env: Vec<(&str, &str)> = vec![
        ("PROXY_REUSE_PORT", "on"),
        ("PROXY_GRACE_QUIT_TIMEOUT", "30s"),
        ("PROXY_FORCE_QUIT_TIMEOUT", "40s"),
        ("PROXY_RTMP_SERVER", &ports[0]),
        ("PROXY_HTTP_SERVER", &ports[1]),
        ("PROXY_HTTP_API", &ports[2]),
        ("PROXY_SYSTEM_API", &ports[3]),
        ("PROXY_SRT_SERVER", &ports[4]),
        ("PROXY_WEBRTC_SERVER", &ports[5]),
    ];
    let redis_vars = redis_env(&redis);
    env.extend(redis_vars.iter().map(|(k, v)| (*k, v.as_str())));
    let mut old = Proxy::start(&dir, "proxy-old", &env);
    let origin = Origin::start(&dir, "origin-1", &old.register_url(), &[]);
    old.wait_origins(1);
    // Published while only the old proxy listens: relayed through it.
    let publisher = publish(&dir, "publisher", &old.rtmp_url("live/handover"), 60);
    wait_until(Duration::from_secs(20), "published", || {
        origin.publishing("live", "handover")
    });

    let new = Proxy::start(&dir, "proxy-new", &env);
    assert_eq!((new.rtmp, new.http), (old.rtmp, old.http), "same ports");
    old.proc.signal(libc::SIGTERM);
    // The old proxy drains: its listeners close, its publisher keeps relaying.
    wait_until(
        Duration::from_secs(10),
        "the old proxy stops admitting",
        || old.proc.log_text().contains("RTMP server stopped"),
    );
    let flv = play(
        &dir,
        "player-flv",
        &new.http_url("live/handover.flv"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&flv, 50, "HTTP-FLV after the restart");
    let rtmp = play(
        &dir,
        "player-rtmp",
        &new.rtmp_url("live/handover"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&rtmp, 50, "RTMP after the restart");
    assert!(old.proc.running(), "the old proxy is still draining");
    assert!(
        origin.publishing("live", "handover"),
        "the publisher still relays through the old proxy"
    );
    drop(publisher);

    // New connections were the new proxy's: its metrics count them, the old one's log does not.
    let metrics = new.metrics();
    let played = |protocol: &str| {
        metric(
            &metrics,
            "srs_proxy_sessions_total",
            &[("protocol", protocol), ("direction", "play")],
        )
        .unwrap_or(0.0)
    };
    assert!(
        played("http_flv") >= 1.0 && played("rtmp") >= 1.0,
        "{metrics}"
    );
    let old_log = old.proc.log_text();
    assert!(
        !old_log.contains("proto=http_flv"),
        "no HTTP-FLV session on the old proxy: {old_log}"
    );
}

#[test]
fn origin_load_is_listed_and_exported() {
    let dir = TempDir::new("ops-load");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_ORIGIN_LOAD_LIMIT", "0.9")]);
    let _origin = Origin::start(&dir, "origin-1", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    // srs-origin sends /proc/loadavg's figure and its CPU count as SRS's summaries.
    let entry = proxy.origin_entry("origin-1");
    let load = entry["info"]["load"].as_f64();
    assert!(load.is_some_and(|l| l >= 0.0), "no load in {entry}");
    let id = entry["info"]["id"].as_str().unwrap_or_default().to_string();
    let text = proxy.metrics();
    let exported = metric(
        &text,
        "srs_proxy_origin_load",
        &[("origin", &id), ("device_id", "origin-1")],
    );
    assert!(exported.is_some_and(|l| l >= 0.0), "{text}");
    // The only candidate is chosen whatever its load.
    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/load"), 30);
    let played = play(
        &dir,
        "player",
        &proxy.rtmp_url("live/load"),
        25,
        Duration::from_secs(30),
    );
    assert_played(&played, 25, "RTMP play through the proxy");
}

#[test]
fn new_streams_avoid_an_origin_above_the_load_limit() {
    let dir = TempDir::new("ops-load-limit");
    let roots: Vec<std::path::PathBuf> = ["hot", "cool"]
        .iter()
        .map(|name| {
            let live = dir.join(name).join("live");
            std::fs::create_dir_all(&live).unwrap();
            for stream in ["a", "b", "c", "d", "e", "f"] {
                std::fs::write(
                    live.join(format!("{stream}.flv")),
                    b"FLV\x01\x05\0\0\0\x09\0\0\0\0",
                )
                .unwrap();
            }
            dir.join(name)
        })
        .collect();
    let hot = StaticServer::start(&dir, "hot", &roots[0]);
    let cool = StaticServer::start(&dir, "cool", &roots[1]);
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_ORIGIN_LOAD_LIMIT", "0.9")]);
    let register = |server: &StaticServer, name: &str, load_1m: f64| {
        let body = format!(
            r#"{{"ip":"127.0.0.1","server":"{name}","service":"1","pid":"1","rtmp":["1"],"http":["{}"],"summaries":{{"data":{{"system":{{"load_1m":{load_1m},"cpus":2}}}}}}}}"#,
            server.port
        );
        let (status, reply) = http("POST", &proxy.register_url(), Some(&body));
        assert_eq!(status, 200, "{reply}");
    };
    // 3.0 per CPU against 0.1: every new stream goes to the cool origin.
    register(&hot, "hot", 6.0);
    register(&cool, "cool", 0.2);
    for stream in ["a", "b", "c", "d"] {
        let reply = get_reply(&proxy.http_url(&format!("live/{stream}.flv")));
        assert_eq!(reply.status, 200, "{stream}: {}", reply.text());
    }
    let flv = |s: &StaticServer| s.requests().iter().filter(|r| r.contains(".flv")).count();
    assert_eq!((flv(&hot), flv(&cool)), (0, 4));
    // Both above the limit: the choice still succeeds.
    register(&cool, "cool", 5.0);
    for stream in ["e", "f"] {
        let reply = get_reply(&proxy.http_url(&format!("live/{stream}.flv")));
        assert_eq!(reply.status, 200, "{stream}: {}", reply.text());
    }
    assert_eq!(flv(&hot) + flv(&cool), 6);
}
