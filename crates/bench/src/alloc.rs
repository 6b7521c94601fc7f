//! `srs-bench alloc` (`make bench-alloc`): heap allocations srs-proxy makes per relayed message
//! in the steady state, measured from outside with heaptrack.
//!
//! heaptrack counts every allocation of the whole process life, set-up included. So each path
//! runs twice with the same clients, once for `T` and once for `3T` seconds; the difference
//! between the two runs is steady-state relaying only:
//! allocations per message = Δ allocations / Δ messages relayed (WebRTC: datagrams).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::load::{Load, Pacing, PublishSpec};
use crate::media::Media;
use crate::rtc::RtcLoad;
use crate::servers::{self, Origin, Paths, Proxy};

/// Players per run.
const PLAYERS: usize = 10;
/// Allocation sites listed in the report.
const SITES: usize = 8;

/// Settings of an allocation run (from `BENCH_*` variables).
pub struct Settings {
    /// Length `T` of the short run; the long run lasts `3T`.
    pub seconds: u64,
    /// The 720p file.
    pub hd: PathBuf,
    /// Directory with srs-proxy and srs-origin.
    pub bin_dir: PathBuf,
    /// Directory for results and heaptrack files.
    pub out_dir: PathBuf,
    /// Paths to run by label (`rtmp`, `http-flv`, `webrtc`); empty: all.
    pub paths: Vec<String>,
}

/// The relay paths measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayPath {
    /// Publisher and players over RTMP through srs-proxy.
    Rtmp,
    /// Publisher straight to the origin; players over HTTP-FLV through srs-proxy.
    Flv,
    /// WHIP publisher and WHEP players (srs-rtc-client) through srs-proxy; messages are the
    /// datagrams its WebRTC relay forwarded.
    Rtc,
}

impl RelayPath {
    fn label(self) -> &'static str {
        match self {
            RelayPath::Rtmp => "rtmp",
            RelayPath::Flv => "http-flv",
            RelayPath::Rtc => "webrtc",
        }
    }
}

/// One heaptrack run.
struct Sample {
    allocations: u64,
    messages: u64,
    file: PathBuf,
}

/// Runs both paths and prints (and saves) the report.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    which("heaptrack")?;
    which("heaptrack_print")?;
    let media = Arc::new(Media::load(&settings.hd)?);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let root = settings.out_dir.join(format!("alloc-{stamp}"));
    let mut report = String::from("# srs-proxy allocations per relayed message (heaptrack)\n\n");
    let all = [RelayPath::Rtmp, RelayPath::Flv, RelayPath::Rtc];
    for wanted in &settings.paths {
        if !all.iter().any(|p| p.label() == wanted) {
            bail!("unknown path {wanted:?} in BENCH_ALLOC_PATHS; known: rtmp, http-flv, webrtc");
        }
    }
    let chosen = all
        .into_iter()
        .filter(|p| settings.paths.is_empty() || settings.paths.iter().any(|w| w == p.label()));
    for path in chosen {
        let mut samples = Vec::new();
        for secs in [settings.seconds, settings.seconds * 3] {
            println!("heaptrack: {} path, {secs} s ...", path.label());
            let dir = root.join(format!("{}-{secs}s", path.label()));
            std::fs::create_dir_all(&dir)?;
            let paths = Paths {
                bin_dir: settings.bin_dir.clone(),
                log_dir: dir,
            };
            samples.push(one(&paths, path, secs, media.clone()).await?);
        }
        let [short, long] = &samples[..] else {
            bail!("expected two runs");
        };
        let d_alloc = long.allocations as f64 - short.allocations as f64;
        let d_msgs = long.messages as f64 - short.messages as f64;
        let unit = match path {
            RelayPath::Rtc => "datagram",
            _ => "message",
        };
        writeln!(
            report,
            "## {} path ({PLAYERS} players, 1 publisher)\n\n\
             - {}s run: {} allocations, {} {unit}s relayed\n\
             - {}s run: {} allocations, {} {unit}s relayed\n\
             - steady state: **{:.2} allocations per relayed {unit}** ({:.0} / {:.0})\n",
            path.label(),
            settings.seconds,
            short.allocations,
            short.messages,
            settings.seconds * 3,
            long.allocations,
            long.messages,
            d_alloc / d_msgs.max(1.0),
            d_alloc,
            d_msgs
        )?;
        let sites = top_sites(&long.file, &short.file, d_msgs.max(1.0))?;
        writeln!(
            report,
            "Top allocation sites (long run minus short run, `heaptrack_print -d`):\n\n```\n{sites}\n```\n"
        )?;
    }
    let file = settings.out_dir.join(format!("alloc-{stamp}.md"));
    std::fs::write(&file, &report)?;
    println!("\n{report}\nreport saved to {}", file.display());
    Ok(())
}

fn which(tool: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if !found {
        bail!("{tool} not found: install it (Debian: apt-get install heaptrack)");
    }
    Ok(())
}

async fn one(
    paths: &Paths,
    path: RelayPath,
    secs: u64,
    media: Arc<Media>,
) -> anyhow::Result<Sample> {
    let prefix = paths.log_dir.join("heaptrack.srs-proxy");
    let proxy = servers::start_proxy(paths, Some(&prefix), &[])?;
    let origin = servers::start_origin(paths, Some(&proxy.register_url()))?;
    proxy.wait_origin().await?;
    let messages = match path {
        RelayPath::Rtc => rtc_run(&proxy, secs).await?,
        RelayPath::Rtmp => rtmp_run(proxy.rtmp, proxy.rtmp, false, secs, media).await?,
        RelayPath::Flv => rtmp_run(origin.rtmp, proxy.http, true, secs, media).await?,
    };
    finish(proxy, origin, &prefix, messages)
}

/// 1 RTMP publisher at `publish` and [`PLAYERS`] players at `play` (HTTP-FLV when `flv`) for
/// `secs`; returns the messages relayed by srs-proxy (players' only for FLV).
async fn rtmp_run(
    publish: std::net::SocketAddr,
    play: std::net::SocketAddr,
    flv: bool,
    secs: u64,
    media: Arc<Media>,
) -> anyhow::Result<u64> {
    let mut load = Load::default();
    // Count every message: heaptrack counts every allocation.
    load.begin_window();
    let spec = PublishSpec {
        media,
        pacing: Pacing::RealTime,
        marker_every: Some(Duration::from_millis(100)),
    };
    let names = ["alloc".to_string()];
    let players = vec![names[0].clone(); PLAYERS];
    if load.publish(publish, &names, &spec).await != 1 {
        let outcome = load.finish(Default::default()).await;
        bail!("publisher did not start: {:?}", outcome.error_samples);
    }
    if flv {
        load.play_flv(play, &players);
    } else {
        load.play_rtmp(play, &players);
    }
    load.wait_playing(PLAYERS, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let counters = load.end_window();
    let outcome = load.finish(counters).await;
    if outcome.errors > 0 {
        bail!("errors during the run: {:?}", outcome.error_samples);
    }
    // FLV: the publisher's messages go to the origin, not through srs-proxy.
    Ok(if flv {
        counters.play_msgs
    } else {
        counters.pub_msgs + counters.play_msgs
    })
}

/// 1 WHIP publisher and [`PLAYERS`] WHEP players through `proxy` for `secs`; returns the
/// datagrams its WebRTC relay forwarded (both ways, set-up included, as heaptrack counts).
async fn rtc_run(proxy: &Proxy, secs: u64) -> anyhow::Result<u64> {
    let url = |kind| format!("http://{}/rtc/v1/{kind}/?app=live&stream=alloc", proxy.api);
    let mut load = RtcLoad::publish(&url("whip")).await?;
    load.play(&url("whep"), PLAYERS).await;
    if load.failed > 0 {
        bail!("WHEP players failed: {:?}", load.error_samples);
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let name = "srs_proxy_udp_datagrams_total";
    let mut datagrams = 0.0;
    for outcome in ["to_client", "to_origin"] {
        datagrams += proxy
            .metric(name, &[("listener", "webrtc"), ("outcome", outcome)])
            .await?;
    }
    load.close().await;
    Ok(datagrams as u64)
}

/// Stops srs-proxy under heaptrack and reads its allocation count.
fn finish(
    mut proxy: Proxy,
    origin: Origin,
    prefix: &Path,
    messages: u64,
) -> anyhow::Result<Sample> {
    // heaptrack writes its file when srs-proxy exits; its wrapper script exits after that.
    srs_test_support::send_signal(proxy.pid, libc::SIGTERM);
    if proxy.proc.wait_exit(Duration::from_secs(120)).is_none() {
        eprintln!("heaptrack did not exit within 120s; killing it");
    }
    drop(origin);
    let file = output_file(prefix)?;
    let text = heaptrack_print(&["-f".as_ref(), file.as_os_str()])?;
    let allocations = text
        .lines()
        .find_map(|l| l.strip_prefix("calls to allocation functions: "))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no allocation count in heaptrack_print output"))?;
    Ok(Sample {
        allocations,
        messages,
        file,
    })
}

/// heaptrack's file: the prefix plus its compression suffix.
fn output_file(prefix: &Path) -> anyhow::Result<PathBuf> {
    ["zst", "gz"]
        .iter()
        .map(|ext| PathBuf::from(format!("{}.{ext}", prefix.display())))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("heaptrack wrote no {}.zst/.gz", prefix.display()))
}

fn heaptrack_print(args: &[&std::ffi::OsStr]) -> anyhow::Result<String> {
    let out = Command::new("heaptrack_print")
        .args(args)
        .output()
        .context("cannot run heaptrack_print")?;
    if !out.status.success() {
        bail!(
            "heaptrack_print failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The top allocation sites of `long` minus `short`, one line each with its calls per relayed
/// message (`messages` is the difference in messages), plus heaptrack's full listing saved
/// next to `long`.
fn top_sites(long: &Path, short: &Path, messages: f64) -> anyhow::Result<String> {
    let text = heaptrack_print(&[
        "-f".as_ref(),
        long.as_os_str(),
        "-d".as_ref(),
        short.as_os_str(),
        "--print-peaks=0".as_ref(),
        "--print-temporary=0".as_ref(),
        "--print-leaks=0".as_ref(),
        "-n".as_ref(),
        "10".as_ref(),
        "-s".as_ref(),
        "10".as_ref(),
    ])?;
    let listing = long.with_extension("diff.txt");
    std::fs::write(&listing, &text)?;
    let mut sites: Vec<(u64, String)> = Vec::new();
    for (count, frames) in backtraces(&text) {
        let line = describe(&frames);
        match sites.iter_mut().find(|(_, l)| *l == line) {
            Some(site) => site.0 += count,
            None => sites.push((count, line)),
        }
    }
    sites.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out: Vec<String> = sites
        .iter()
        .take(SITES)
        .map(|(n, l)| format!("{n:>6} calls ({:.3}/msg)  {l}", *n as f64 / messages))
        .collect();
    out.push(format!("(full listing: {})", listing.display()));
    Ok(out.join("\n"))
}

/// The merged backtraces of heaptrack_print's "most calls" list: `N calls with ... from:` at
/// column 0, then frames (`    symbol`, `      at file:line`, `      in binary`).
fn backtraces(text: &str) -> Vec<(u64, Vec<(String, String)>)> {
    let start = text.find("MOST CALLS TO ALLOCATION FUNCTIONS").unwrap_or(0);
    let mut out: Vec<(u64, Vec<(String, String)>)> = Vec::new();
    let mut current: Option<(u64, Vec<(String, String)>)> = None;
    for line in text[start..].lines() {
        if let Some(at) = line.strip_prefix("      at ") {
            if let Some(frame) = current.as_mut().and_then(|(_, f)| f.last_mut()) {
                frame.1 = at.to_string();
            }
        } else if line.starts_with("      ") {
            continue;
        } else if let Some(symbol) = line.strip_prefix("    ") {
            if let Some((_, frames)) = current.as_mut() {
                frames.push((clean_symbol(symbol), String::new()));
            }
        } else {
            out.extend(current.take());
            let sub_entry = line
                .split_once(" calls with ")
                .filter(|(_, rest)| rest.ends_with("from:"));
            current = sub_entry.and_then(|(n, _)| Some((n.trim().parse().ok()?, Vec::new())));
        }
    }
    out.extend(current);
    out
}

/// One line for a backtrace: the library call made from the project's code, then the first
/// project frames with their locations.
fn describe(frames: &[(String, String)]) -> String {
    let ours = |(_, at): &(String, String)| {
        ["crates/", "proxy/", "origin/"]
            .iter()
            .any(|p| at.starts_with(p))
    };
    let Some(first) = frames.iter().position(ours) else {
        let leaf = frames.iter().find(|(s, _)| {
            !["alloc::", "core::", "std::", "_RNv"]
                .iter()
                .any(|p| s.starts_with(p))
        });
        return leaf.map_or_else(
            || "(unknown)".into(),
            |(s, _)| format!("{s} (outside the project)"),
        );
    };
    let mut parts = Vec::new();
    if let Some((callee, _)) = first.checked_sub(1).and_then(|i| frames.get(i)) {
        parts.push(callee.clone());
    }
    for (symbol, at) in frames[first..].iter().filter(|f| ours(f)).take(3) {
        parts.push(format!("{symbol} ({at})"));
    }
    parts.join(" <- ")
}

/// A readable Rust symbol: legacy-mangling escapes decoded, the hash suffix dropped.
fn clean_symbol(symbol: &str) -> String {
    let mut s = symbol.trim().to_string();
    if let Some((head, hash)) = s.rsplit_once("::h") {
        if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
            s = head.to_string();
        }
    }
    for (from, to) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$C$", ","),
        ("$RF$", "&"),
        ("$u20$", " "),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("..", "::"),
        ("_$", "$"),
    ] {
        s = s.replace(from, to);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of `heaptrack_print -d` output (heaptrack 1.4), trimmed.
    const SAMPLE: &str = "\
MOST CALLS TO ALLOCATION FUNCTIONS
3589 calls to allocation functions with -59.98K peak consumption from
_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc
  at /rustc/x/library/alloc/src/alloc.rs:95
3065 calls with -60.00K peak consumption from:
    alloc::raw_vec::RawVecInner$LT$A$GT$::grow_amortized::ha4a0f463812e6ede
      at /rustc/x/library/alloc/src/raw_vec/mod.rs:527
      in /work/main/target/release/srs-proxy
    bytes::bytes_mut::BytesMut::extend_from_slice::h9026180305a4d480
      at /root/.cargo/registry/src/bytes-1.12.1/src/bytes_mut.rs:889
    srs_rtmp::chunk::ChunkDecoder::decode::h96a46996b6c7ed2f
      at crates/rtmp/src/chunk.rs:242
    srs_proxy::rtmp::Relay::forward::hf08e71a45eb59137
      at proxy/src/rtmp.rs:362
307 calls with 0B peak consumption from:
    bytes::bytes_mut::BytesMut::extend_from_slice::h9026180305a4d480
      at /root/.cargo/registry/src/bytes-1.12.1/src/bytes_mut.rs:889
    srs_rtmp::chunk::ChunkDecoder::decode::h96a46996b6c7ed2f
      at crates/rtmp/src/chunk.rs:242
    srs_proxy::rtmp::Relay::forward::hf08e71a45eb59137
      at proxy/src/rtmp.rs:362
12 calls with 0B peak consumption from:
    tokio::runtime::task::spawn::h0123456789abcdef
      at /root/.cargo/registry/src/tokio/src/task.rs:1

calls to allocation functions: 3706 (950/s)
";

    #[test]
    fn backtraces_are_read_and_described() {
        let traces = backtraces(SAMPLE);
        assert_eq!(traces.len(), 3);
        assert_eq!(traces[0].0, 3065);
        let line = describe(&traces[0].1);
        assert_eq!(
            line,
            "bytes::bytes_mut::BytesMut::extend_from_slice <- \
             srs_rtmp::chunk::ChunkDecoder::decode (crates/rtmp/src/chunk.rs:242) <- \
             srs_proxy::rtmp::Relay::forward (proxy/src/rtmp.rs:362)"
        );
        // Same site through another caller line merges into the same description.
        assert_eq!(describe(&traces[1].1), line);
        assert_eq!(
            describe(&traces[2].1),
            "tokio::runtime::task::spawn (outside the project)"
        );
    }

    #[test]
    fn symbols_are_cleaned() {
        assert_eq!(
            clean_symbol("alloc::raw_vec::RawVecInner$LT$A$GT$::grow::ha4a0f463812e6ede"),
            "alloc::raw_vec::RawVecInner<A>::grow"
        );
    }
}
