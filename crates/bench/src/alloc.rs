//! `srs-bench alloc` (`make bench-alloc`): heap allocations srs-proxy makes per relayed message
//! in the steady state, measured from outside with heaptrack.
//!
//! heaptrack counts every allocation of the whole process life, set-up included. So each path
//! runs twice with the same clients, once for `T` and once for `3T` seconds; the difference
//! between the two runs is steady-state relaying only:
//! allocations per message = Δ allocations / Δ messages relayed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::load::{Load, Pacing, PublishSpec};
use crate::media::Media;
use crate::servers::{self, Paths};

/// Players per run.
const PLAYERS: usize = 10;
/// Lines of heaptrack's top allocation sites kept in the report.
const SITE_LINES: usize = 60;

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
}

/// The relay paths measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayPath {
    /// Publisher and players over RTMP through srs-proxy.
    Rtmp,
    /// Publisher straight to the origin; players over HTTP-FLV through srs-proxy.
    Flv,
}

impl RelayPath {
    fn label(self) -> &'static str {
        match self {
            RelayPath::Rtmp => "rtmp",
            RelayPath::Flv => "http-flv",
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
    for path in [RelayPath::Rtmp, RelayPath::Flv] {
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
        writeln!(
            report,
            "## {} path ({PLAYERS} players, 1 publisher)\n\n\
             - {}s run: {} allocations, {} messages relayed\n\
             - {}s run: {} allocations, {} messages relayed\n\
             - steady state: **{:.2} allocations per relayed message** ({:.0} / {:.0})\n",
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
        let sites = top_sites(&long.file, &short.file)?;
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
    let mut proxy = servers::start_proxy(paths, Some(&prefix))?;
    let origin = servers::start_origin(paths, Some(&proxy.register_url()))?;
    proxy.wait_origin().await?;
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
    let publisher_at = match path {
        RelayPath::Rtmp => proxy.rtmp,
        RelayPath::Flv => origin.rtmp,
    };
    if load.publish(publisher_at, &names, &spec).await != 1 {
        let outcome = load.finish(Default::default()).await;
        bail!("publisher did not start: {:?}", outcome.error_samples);
    }
    match path {
        RelayPath::Rtmp => load.play_rtmp(proxy.rtmp, &players),
        RelayPath::Flv => load.play_flv(proxy.http, &players),
    }
    load.wait_playing(PLAYERS, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let counters = load.end_window();
    let outcome = load.finish(counters).await;
    if outcome.errors > 0 {
        bail!("errors during the run: {:?}", outcome.error_samples);
    }
    let messages = match path {
        RelayPath::Rtmp => counters.pub_msgs + counters.play_msgs,
        RelayPath::Flv => counters.play_msgs,
    };
    // heaptrack writes its file when srs-proxy exits; its wrapper script exits after that.
    let pid = proxy.pid;
    proxy.proc.terminate(pid, Duration::from_secs(120));
    drop(origin);
    let file = output_file(&prefix)?;
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

/// The start of heaptrack's "most calls to allocation functions" list for `long` minus `short`.
fn top_sites(long: &Path, short: &Path) -> anyhow::Result<String> {
    let text = heaptrack_print(&[
        "-f".as_ref(),
        long.as_os_str(),
        "-d".as_ref(),
        short.as_os_str(),
        "--print-peaks=0".as_ref(),
        "--print-temporary=0".as_ref(),
        "--print-leaks=0".as_ref(),
        "-n".as_ref(),
        "8".as_ref(),
        "-s".as_ref(),
        "1".as_ref(),
    ])?;
    let start = text.find("MOST CALLS TO ALLOCATION FUNCTIONS").unwrap_or(0);
    Ok(text[start..]
        .lines()
        .take(SITE_LINES)
        .collect::<Vec<_>>()
        .join("\n"))
}
