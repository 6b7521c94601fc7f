//! HTTP-FLV relayed at the head level (docs/design.md §6.2): keep-alive across a finished
//! response and a stream, the same headers as the hyper path (CORS included), an HTTP/1.0
//! keep-alive client of a chunked origin, and splice(2) on and off, each decoded with ffmpeg/ffprobe.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use srs_e2e::*;
use srs_test_support::media::{count_video_frames, decode_errors};

/// A proxy, one origin, and a publisher of `live/<name>` through the proxy.
fn setup(dir: &TempDir, name: &str, env: &[(&str, &str)]) -> (Proxy, Origin, Proc) {
    let proxy = Proxy::start(dir, "proxy", env);
    let origin = Origin::start(dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let publisher = publish(
        dir,
        "publisher",
        &proxy.rtmp_url(&format!("live/{name}")),
        60,
    );
    wait_until(Duration::from_secs(20), "stream published", || {
        origin.publishing("live", name)
    });
    (proxy, origin, publisher)
}

/// A response head read byte by byte: status and headers (names lowercase).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The headers but `date`, sorted: what two paths must agree on.
    fn comparable(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n != "date")
            .cloned()
            .collect();
        h.sort();
        h
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_head(s: &mut TcpStream) -> Head {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("reading a response head");
        assert_eq!(
            n,
            1,
            "closed in the head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Head { status, headers }
}

/// Reads a `Content-Length` body.
fn read_body(s: &mut TcpStream, head: &Head) -> Vec<u8> {
    let len: usize = head
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("the body");
    body
}

/// Reads at least `n` bytes of a streaming body.
fn read_some(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while out.len() < n {
        let k = s.read(&mut buf).expect("stream bytes");
        assert!(k > 0, "the stream ended after {} bytes", out.len());
        out.extend_from_slice(&buf[..k]);
    }
    out
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n")
}

#[test]
fn keep_alive_serves_a_stream_after_finished_responses_with_the_hyper_paths_headers() {
    let dir = TempDir::new("keepalive");
    let (proxy, _origin, _publisher) = setup(&dir, "ka", &[]);

    for origin_header in ["", "Origin: http://player.example\r\n"] {
        // Head level: a HEAD and the origin's 404 (Content-Length), then the stream, on one
        // connection.
        let mut s = connect(proxy.http);
        write!(s, "HEAD /live/ka.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let head = read_head(&mut s);
        assert_eq!(head.status, 200);
        s.write_all(get("/live/missing.flv", origin_header).as_bytes())
            .unwrap();
        let missing = read_head(&mut s);
        assert_eq!(missing.status, 404);
        assert!(!read_body(&mut s, &missing).is_empty());
        s.write_all(get("/live/ka.flv", origin_header).as_bytes())
            .unwrap();
        let native = read_head(&mut s);
        assert_eq!(native.status, 200);
        assert_eq!(native.get("transfer-encoding"), Some("chunked"));
        let bytes = read_some(&mut s, 1000);
        assert!(
            bytes.windows(5).any(|w| w == b"\r\nFLV"),
            "a chunked FLV body: {:?}",
            String::from_utf8_lossy(&bytes[..64])
        );
        assert_eq!(native.get("access-control-allow-origin"), Some("*"));

        // Hyper: a connection whose first request is not a stream stays with hyper, which
        // serves the stream after it. Both must answer with the same headers.
        let mut h = connect(proxy.http);
        h.write_all(get("/no/such/file", origin_header).as_bytes())
            .unwrap();
        let first = read_head(&mut h);
        assert_eq!(first.status, 404);
        read_body(&mut h, &first);
        h.write_all(get("/live/ka.flv", origin_header).as_bytes())
            .unwrap();
        let hyper = read_head(&mut h);
        assert_eq!(hyper.status, 200);
        assert_eq!(native.comparable(), hyper.comparable(), "{origin_header:?}");
        // The proxy's own error answers match too (the head level answers this one).
        let mut e = connect(proxy.http);
        e.write_all(get("/live/.flv", origin_header).as_bytes())
            .unwrap();
        let own = read_head(&mut e);
        let mut e2 = connect(proxy.http);
        e2.write_all(get("/x", "").as_bytes()).unwrap();
        let warm = read_head(&mut e2);
        read_body(&mut e2, &warm);
        e2.write_all(get("/live/.flv", origin_header).as_bytes())
            .unwrap();
        let theirs = read_head(&mut e2);
        assert_eq!(own.status, theirs.status);
        assert_eq!(own.comparable(), theirs.comparable(), "{origin_header:?}");
    }
}

#[test]
fn an_http10_client_of_a_chunked_origin_gets_the_stream_unchunked_until_close() {
    let dir = TempDir::new("http10");
    let (proxy, _origin, _publisher) = setup(&dir, "old", &[]);
    // An HTTP/1.0 keep-alive connection persists after a length-delimited answer (the
    // origin's 404) and says so; the stream after it (chunked at the origin) is sent
    // de-chunked, until close, without the keep-alive option.
    let mut s = connect(proxy.http);
    let keep = "Connection: keep-alive\r\n";
    write!(
        s,
        "GET /live/none.flv HTTP/1.0\r\nHost: 127.0.0.1\r\n{keep}\r\n"
    )
    .unwrap();
    let missing = read_head(&mut s);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.get("connection"), Some("keep-alive"));
    assert!(!read_body(&mut s, &missing).is_empty());
    write!(
        s,
        "GET /live/old.flv HTTP/1.0\r\nHost: 127.0.0.1\r\n{keep}\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert_eq!(head.status, 200);
    assert_eq!(head.get("transfer-encoding"), None);
    assert_eq!(head.get("content-length"), None);
    assert_eq!(
        head.get("connection"),
        None,
        "a body until close ends the connection"
    );
    let body = read_some(&mut s, 400_000);
    assert_eq!(&body[..3], b"FLV", "the body starts with the FLV header");
    let file = dir.join("old.flv");
    std::fs::write(&file, &body).unwrap();
    let frames = count_video_frames(&file);
    assert!(
        frames >= 10,
        "{frames} frames decoded from the de-chunked body"
    );
    drop(s);
    wait_until(Duration::from_secs(10), "session ended", || {
        proxy.proc.log_text().contains("session ended")
    });
    let log = proxy.proc.log_text();
    assert!(
        log.contains("bytes_spliced=0"),
        "re-framed bodies are not spliced"
    );
}

#[test]
fn splice_on_and_off_both_deliver_decodable_flv() {
    for (splice, spliced) in [("on", true), ("off", false)] {
        let dir = TempDir::new(&format!("splice-{splice}"));
        let (proxy, _origin, _publisher) = setup(&dir, "sp", &[("PROXY_HTTP_SPLICE", splice)]);
        let played = play(
            &dir,
            "player",
            &proxy.http_url("live/sp.flv"),
            50,
            Duration::from_secs(30),
        );
        assert_played(&played, 50, &format!("HTTP-FLV with splice {splice}"));
        // A raw download, decoded by ffprobe.
        let mut s = connect(proxy.http);
        s.write_all(get("/live/sp.flv", "").as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert_eq!(head.status, 200);
        let mut body = Vec::new();
        let mut chunked = read_some(&mut s, 600_000);
        // Strip the chunk framing to get the FLV file.
        while let Some(eol) = chunked.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&chunked[..eol])
                    .split(';')
                    .next()
                    .unwrap_or(""),
                16,
            )
            .expect("a chunk size");
            if chunked.len() < eol + 2 + size + 2 {
                break;
            }
            body.extend_from_slice(&chunked[eol + 2..eol + 2 + size]);
            chunked.drain(..eol + 2 + size + 2);
        }
        drop(s);
        let file = dir.join("sp.flv");
        std::fs::write(&file, &body).unwrap();
        let frames = count_video_frames(&file);
        assert!(frames >= 10, "splice {splice}: {frames} frames");
        assert!(
            decode_errors(&file).lines().count() <= 1,
            "splice {splice}: {}",
            decode_errors(&file)
        );
        wait_until(Duration::from_secs(10), "sessions ended", || {
            proxy.proc.log_text().matches("session ended").count() >= 2
        });
        let log = proxy.proc.log_text();
        let any_spliced = log
            .lines()
            .filter(|l| l.contains("session ended"))
            .any(|l| !l.contains("bytes_spliced=0"));
        assert_eq!(any_spliced, spliced, "splice {splice}: {log}");
    }
}
