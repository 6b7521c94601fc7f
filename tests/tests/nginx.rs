//! A third-party origin: Debian's nginx with libnginx-mod-rtmp (RTMP, and HLS served by nginx's
//! HTTP server), registered by deploy/register-origin.sh (docs/design.md §3).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use srs_e2e::*;

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

#[test]
fn nginx_rtmp_origin_registered_by_the_helper_stays_registered() {
    assert!(
        std::path::Path::new(MODULE).exists(),
        "{MODULE} missing: apt-get install nginx libnginx-mod-rtmp"
    );
    let dir = TempDir::new("nginx");
    let hls = dir.join("hls");
    std::fs::create_dir_all(&hls).unwrap();
    // nginx cannot take port 0: a port taken before nginx binds it makes nginx exit. The RTMP
    // port is retried; the HTTP port (HLS files) is a free one read just before.
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (_nginx, port) = on_free_port("nginx", |port| {
        let conf = dir.join("nginx.conf");
        let config = format!(
            "load_module {MODULE};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {pid};\nerror_log {log} info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off;\n\
                 hls on; hls_path {hls}; hls_fragment 1s; hls_playlist_length 6s; }} }} }}\n\
             http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};\n\
               fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
               types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n\
               server {{ listen 127.0.0.1:{http_port}; location /live/ {{ alias {hls}/; }} }} }}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("nginx-error.log").display(),
            hls = hls.display(),
            tmp = dir.display(),
        );
        std::fs::write(&conf, config).unwrap();
        let mut cmd = Command::new("nginx");
        cmd.args(["-p", dir.to_str().unwrap(), "-c", conf.to_str().unwrap()]);
        let mut nginx = Proc::try_spawn("nginx", cmd, &dir)?;
        nginx.wait_listening(port, Duration::from_secs(10))?;
        Ok((nginx, port))
    })
    .unwrap_or_else(|e| panic!("{e}"));

    // Auth on and a 3 s alive duration: a one-off registration would be dead by the check below.
    let token = "nginx-secret";
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_SERVER_ALIVE_DURATION", "3s"),
            ("PROXY_HTTP_API_AUTH_ENABLED", "on"),
            ("PROXY_HTTP_API_AUTH_TOKEN", token),
        ],
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut helper = Command::new("bash");
    helper
        .arg(root.join("deploy/register-origin.sh"))
        .args(["--proxy", &format!("http://{}", proxy.system)])
        .args([
            "--ip",
            "127.0.0.1",
            "--server",
            "nginx-1",
            "--interval",
            "1",
        ])
        .args(["--rtmp", &port.to_string()])
        .args(["--http", &http_port.to_string()])
        .env("PROXY_HTTP_API_AUTH_TOKEN", token);
    let _helper = Proc::spawn("register-origin", helper, &dir);
    proxy.wait_origins(1);
    let first = proxy.origin_entry("register-origin");
    std::thread::sleep(Duration::from_secs(5));
    let later = proxy.origin_entry("register-origin");
    assert_eq!(later["alive"], true, "past the alive duration: {later}");
    assert_eq!(
        later["info"]["id"], first["info"]["id"],
        "re-registration kept one identity"
    );
    assert_eq!(proxy.origin_list().len(), 1, "{:?}", proxy.origins());

    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/nginx"), 40);
    std::thread::sleep(Duration::from_secs(2));
    let played = play(
        &dir,
        "player",
        &proxy.rtmp_url("live/nginx"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "RTMP play through the proxy from nginx-rtmp");
    // nginx-rtmp's HLS, through the proxy's playlist rewriting.
    let hls = play(
        &dir,
        "player-hls",
        &proxy.http_url("live/nginx.m3u8"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&hls, 50, "HLS through the proxy from nginx-rtmp");
}
