//! A third-party origin: Debian's nginx with libnginx-mod-rtmp, registered by curl (docs/design.md §3).

use std::process::Command;
use std::time::Duration;

use srs_e2e::*;

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

#[test]
fn nginx_rtmp_origin_registered_by_curl() {
    assert!(
        std::path::Path::new(MODULE).exists(),
        "{MODULE} missing: apt-get install nginx libnginx-mod-rtmp"
    );
    let dir = TempDir::new("nginx");
    // nginx cannot take port 0: a port taken before nginx binds it makes nginx exit.
    let (_nginx, port) = on_free_port("nginx", |port| {
        let conf = dir.join("nginx.conf");
        let config = format!(
            "load_module {MODULE};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {pid};\nerror_log {log} info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; }} }} }}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("nginx-error.log").display(),
        );
        std::fs::write(&conf, config).unwrap();
        let mut cmd = Command::new("nginx");
        cmd.args(["-p", dir.to_str().unwrap(), "-c", conf.to_str().unwrap()]);
        let mut nginx = Proc::try_spawn("nginx", cmd, &dir)?;
        nginx.wait_listening(port, Duration::from_secs(10))?;
        Ok((nginx, port))
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let proxy = Proxy::start(&dir, "proxy", &[]);
    let body = format!(
        r#"{{"device_id":"nginx","ip":"127.0.0.1","server":"nginx-1","service":"s1","pid":"1","rtmp":["{port}"]}}"#
    );
    let out = Command::new("curl")
        .args(["-sS", "-X", "POST", &proxy.register_url()])
        .args([
            "-H",
            "Connection: Close",
            "-H",
            "Content-Type: application/json",
            "-H",
            "User-Agent: curl",
        ])
        .args(["-d", &body])
        .output()
        .expect("curl");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains(r#""code":0"#), "register reply: {reply}");

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
}
