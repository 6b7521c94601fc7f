//! Start-up errors and graceful shutdown of the real srs-proxy binary.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use srs_e2e::*;

fn run_proxy(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let dir = TempDir::new("startup");
    let mut cmd = Command::new(bin("srs-proxy"));
    cmd.current_dir(&dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn srs-proxy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("srs-proxy did not exit for env {env:?} args {args:?}");
}

/// The `PROXY_*` names in `text` (a name is upper case, digits and `_`; `PROXY_*` and
/// `PROXY_REDIS_*` wildcards are not names).
fn proxy_names(text: &str) -> BTreeSet<String> {
    text.match_indices("PROXY_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.ends_with('_'))
        .collect()
}

/// The variables of the README's table; `PROXY_REDIS_HOST/_PORT` names two.
fn readme_variables(readme: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for row in readme.lines().filter(|l| l.starts_with("| PROXY_")) {
        let cell = row.split('|').nth(1).unwrap_or_default().trim();
        let mut parts = cell.split('/');
        let first = parts.next().unwrap_or_default();
        names.insert(first.to_string());
        let stem = first.rsplit_once('_').map_or(first, |(stem, _)| stem);
        for suffix in parts {
            names.insert(format!("{stem}{suffix}"));
        }
    }
    names
}

fn differences(what: &str, want: &BTreeSet<String>, have: &BTreeSet<String>) -> Vec<String> {
    let missing = want.difference(have).map(|n| format!("{what} lacks {n}"));
    let extra = have
        .difference(want)
        .map(|n| format!("{what} has {n}, never read"));
    missing.chain(extra).collect()
}

#[test]
fn help_and_readme_list_every_variable_the_proxy_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read_to_string(root.join("proxy/src/config.rs")).expect("config.rs");
    let read = proxy_names(&source);
    assert!(read.len() >= 20, "too few variables found: {read:?}");

    let out = run_proxy(&[], &["--help"]);
    assert!(out.status.success());
    let help_text = String::from_utf8_lossy(&out.stdout);
    let help: BTreeSet<String> = help_text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("PROXY_"))
        .map(str::to_string)
        .collect();

    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let table = readme_variables(&readme);

    let mut wrong = differences("--help", &read, &help);
    wrong.extend(differences("the README table", &read, &table));
    assert!(wrong.is_empty(), "{wrong:#?}\n--help:\n{help_text}");
}

#[test]
fn malformed_variable_stops_startup_naming_it() {
    for (var, value) in [
        ("PROXY_SERVER_ALIVE_DURATION", "soon"),
        ("PROXY_RTMP_SERVER", "port-one"),
        ("PROXY_LOAD_BALANCER_TYPE", "etcd"),
        ("PROXY_REDIS_CLUSTER_ADDRS", "redis-0"),
    ] {
        let out = run_proxy(&[(var, value)], &[]);
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var) && err.contains(value),
            "error must name {var} and {value}: {err}"
        );
    }
}

#[test]
fn sentinel_and_cluster_together_stop_startup_naming_both() {
    let out = run_proxy(
        &[
            ("PROXY_REDIS_SENTINEL_ADDRS", "s:26379"),
            ("PROXY_REDIS_SENTINEL_MASTER", "mymaster"),
            ("PROXY_REDIS_CLUSTER_ADDRS", "c:7000"),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PROXY_REDIS_SENTINEL_ADDRS") && err.contains("PROXY_REDIS_CLUSTER_ADDRS"),
        "{err}"
    );
}

#[test]
fn dotenv_fills_unset_variables() {
    let dir = TempDir::new("dotenv");
    std::fs::write(dir.join(".env"), "PROXY_GRACE_QUIT_TIMEOUT=never\n").unwrap();
    let out = Command::new(bin("srs-proxy"))
        .current_dir(&dir)
        .env_remove("PROXY_GRACE_QUIT_TIMEOUT")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PROXY_GRACE_QUIT_TIMEOUT"),
        "the .env value must be read: {err}"
    );
}

#[test]
fn busy_port_stops_startup_naming_it() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = run_proxy(
        &[
            ("PROXY_RTMP_SERVER", "127.0.0.1:0"),
            ("PROXY_HTTP_SERVER", &addr),
            ("PROXY_HTTP_API", "127.0.0.1:0"),
            ("PROXY_SYSTEM_API", "127.0.0.1:0"),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PROXY_HTTP_SERVER") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn sigterm_stops_accepting_and_drains_within_grace() {
    let dir = TempDir::new("drain");
    let mut proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_GRACE_QUIT_TIMEOUT", "3s"),
            ("PROXY_FORCE_QUIT_TIMEOUT", "10s"),
        ],
    );
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let mut publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/drain"), 60);
    wait_until(Duration::from_secs(20), "publishing", || {
        origin.publishing("live", "drain")
    });

    let signalled = Instant::now();
    proxy.proc.signal(libc::SIGTERM);
    // New connections are refused once the listeners stop.
    wait_until(Duration::from_secs(3), "RTMP listener closed", || {
        std::net::TcpStream::connect(proxy.rtmp).is_err()
    });
    // The live session keeps relaying during the grace period...
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        publisher.running(),
        "session must survive during the grace period"
    );
    // ...and the proxy exits once the grace period is over, well before the force deadline.
    let status = proxy.proc.wait_exit(Duration::from_secs(8));
    let took = signalled.elapsed();
    assert!(status.is_some(), "proxy did not exit after SIGTERM");
    assert!(
        took >= Duration::from_secs(3) - Duration::from_millis(200),
        "exited before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(9), "took {took:?}");
}

#[test]
fn sigterm_with_no_sessions_exits_at_once() {
    let dir = TempDir::new("quit");
    let mut proxy = Proxy::start(&dir, "proxy", &[("PROXY_GRACE_QUIT_TIMEOUT", "20s")]);
    let signalled = Instant::now();
    proxy.proc.signal(libc::SIGTERM);
    let status = proxy.proc.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "proxy did not exit");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "idle proxy must not wait for the grace period"
    );
}

#[test]
fn static_files_are_served_at_root() {
    let dir = TempDir::new("static");
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("players")).unwrap();
    std::fs::write(www.join("players/index.html"), "<h1>players</h1>").unwrap();
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[("PROXY_STATIC_FILES", www.to_str().unwrap())],
    );
    let (status, body) = http("GET", &proxy.http_url("players/index.html"), None);
    assert_eq!((status, body.as_str()), (200, "<h1>players</h1>"));
    for path in [
        "/players/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = raw_http_status(proxy.http, &req);
        assert!(status == 404 || status == 400, "{path} → {status}");
    }
    let (status, _) = http("GET", &proxy.http_url("missing.html"), None);
    assert_eq!(status, 404);
}
