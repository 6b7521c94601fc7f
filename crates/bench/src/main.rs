//! `srs-bench`: load generator and benchmark suite for srs-proxy and srs-origin.
//!
//! - `srs-bench suite`: what `make bench` runs (scenarios, baselines, table, targets).
//! - `srs-bench alloc`: what `make bench-alloc` runs (heaptrack, allocations per message).
//! - `srs-bench load ...`: the load generator alone, against servers already running.

mod alloc;
mod hls;
mod http;
mod load;
mod media;
mod procs;
mod rtc;
mod servers;
mod suite;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use load::{Load, Pacing, PublishSpec};

const HELP: &str = "\
srs-bench: load generator and benchmarks for srs-proxy and srs-origin

USAGE:
  srs-bench suite     run the benchmark suite (`make bench`)
  srs-bench alloc     heap allocations per relayed message under heaptrack (`make bench-alloc`)
  srs-bench load --rtmp ADDR [--http ADDR] [--streams N] [--rtmp-players N] [--flv-players N]
                 [--hls-players N] [--seconds S] [--warmup S] [--media FILE] [--marker-ms MS] [--no-pacing]
                      run the load against servers already listening on 127.0.0.1:
                      N publishers (streams live/bench0..), players spread over them

ENVIRONMENT (suite, alloc):
  BENCH_SCENARIOS     comma-separated subset of 1x100,10x100,100x1,flv2x200,flv10k,hls100,throughput,srt,
                      webrtc (default: all)
  BENCH_SECONDS       measured window per run (default 20; alloc: short run length, default 5)
  BENCH_WARMUP        seconds between all players playing and the window (default 5)
  BENCH_FLV_PLAYERS   players of flv10k (default 10000; lowered to what RLIMIT_NOFILE allows)
  BENCH_MEDIA         720p file (default target/bench-media/hd.flv)
  BENCH_LOW_MEDIA     low-bitrate file (default target/bench-media/low.flv)
  BENCH_TS_MEDIA      the 720p file as MPEG-TS, for the SRT publisher (default target/bench-media/hd.ts)
  BENCH_RTC_PLAYERS   WHEP players of webrtc (default 20)
  BENCH_ALLOC_PATHS   alloc: comma-separated subset of rtmp,http-flv,webrtc (default: all)
  BENCH_BIN_DIR       directory with srs-proxy and srs-origin (default: next to srs-bench)
  BENCH_OUT_DIR       results and logs (default target/bench-results)
  BENCH_ROUNDS        suite: rounds per scenario, every path once per round (default 1); the
                      targets are judged on the median of the rounds' ratios
  BENCH_PERF=1        suite: `perf record` srs-proxy during each window (perf.txt in the run's logs)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map_or("suite", String::as_str);
    if matches!(command, "-h" | "--help" | "help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("srs-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs on this (main) thread, which children are tied to (PR_SET_PDEATHSIG).
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(command, args.get(1..).unwrap_or_default()) => r,
            r = interrupted() => r,
        }
    });
    // Dropping the command's future above has already killed every process it started.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srs-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, as an error.
async fn interrupted() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    bail!("interrupted; stopped every process it started")
}

async fn run(command: &str, args: &[String]) -> anyhow::Result<()> {
    let nofile = procs::raise_nofile()?;
    match command {
        "suite" => {
            let scenarios = env_or("BENCH_SCENARIOS", String::new())?;
            let scenarios = if scenarios.trim().is_empty() {
                suite::scenarios(0, 0)
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect()
            } else {
                scenarios.split(',').map(|s| s.trim().to_string()).collect()
            };
            suite::run(suite::Settings {
                scenarios,
                seconds: env_or("BENCH_SECONDS", 20)?,
                warmup: env_or("BENCH_WARMUP", 5)?,
                flv_players: env_or("BENCH_FLV_PLAYERS", 10_000)?,
                rtc_players: env_or("BENCH_RTC_PLAYERS", 20)?,
                hd: env_or("BENCH_MEDIA", PathBuf::from("target/bench-media/hd.flv"))?,
                low: env_or(
                    "BENCH_LOW_MEDIA",
                    PathBuf::from("target/bench-media/low.flv"),
                )?,
                ts: env_or("BENCH_TS_MEDIA", PathBuf::from("target/bench-media/hd.ts"))?,
                bin_dir: bin_dir()?,
                out_dir: out_dir()?,
                nofile,
                perf: env_or("BENCH_PERF", 0u8)? == 1,
                rounds: env_or("BENCH_ROUNDS", 1usize)?.max(1),
            })
            .await
        }
        "alloc" => {
            alloc::run(alloc::Settings {
                seconds: env_or("BENCH_SECONDS", 5)?,
                hd: env_or("BENCH_MEDIA", PathBuf::from("target/bench-media/hd.flv"))?,
                bin_dir: bin_dir()?,
                out_dir: out_dir()?,
                paths: env_or("BENCH_ALLOC_PATHS", String::new())?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            })
            .await
        }
        "load" => standalone_load(args).await,
        other => bail!("unknown command {other:?}; see srs-bench --help"),
    }
}

/// A `BENCH_*` variable parsed as `T`, or `default` when unset.
fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|e| anyhow!("{name}={v:?} is not valid: {e}")),
        Err(_) => Ok(default),
    }
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("BENCH_BIN_DIR") {
        return Ok(dir.into());
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("cannot locate the directory of {}", exe.display()))
}

fn out_dir() -> anyhow::Result<PathBuf> {
    let dir: PathBuf = env_or("BENCH_OUT_DIR", PathBuf::from("target/bench-results"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Absolute: servers run in per-run directories and get paths below this one.
    Ok(std::fs::canonicalize(&dir)?)
}

/// Flags of `srs-bench load`.
struct LoadArgs {
    rtmp: SocketAddr,
    http: Option<SocketAddr>,
    streams: usize,
    rtmp_players: usize,
    flv_players: usize,
    hls_players: usize,
    seconds: u64,
    warmup: u64,
    media: PathBuf,
    marker_ms: u64,
    pacing: Pacing,
}

fn parse_load_args(args: &[String]) -> anyhow::Result<LoadArgs> {
    fn value<T: FromStr>(flag: &str, v: Option<&String>) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = v.ok_or_else(|| anyhow!("{flag} needs a value"))?;
        v.parse().map_err(|e| anyhow!("{flag} {v:?}: {e}"))
    }
    let mut parsed = LoadArgs {
        rtmp: SocketAddr::from(([127, 0, 0, 1], 1935)),
        http: None,
        streams: 1,
        rtmp_players: 0,
        flv_players: 0,
        hls_players: 0,
        seconds: 20,
        warmup: 5,
        media: PathBuf::from("target/bench-media/hd.flv"),
        marker_ms: 100,
        pacing: Pacing::RealTime,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rtmp" => parsed.rtmp = value(flag, it.next())?,
            "--http" => parsed.http = Some(value(flag, it.next())?),
            "--streams" => parsed.streams = value(flag, it.next())?,
            "--rtmp-players" => parsed.rtmp_players = value(flag, it.next())?,
            "--flv-players" => parsed.flv_players = value(flag, it.next())?,
            "--hls-players" => parsed.hls_players = value(flag, it.next())?,
            "--seconds" => parsed.seconds = value(flag, it.next())?,
            "--warmup" => parsed.warmup = value(flag, it.next())?,
            "--media" => parsed.media = value(flag, it.next())?,
            "--marker-ms" => parsed.marker_ms = value(flag, it.next())?,
            "--no-pacing" => parsed.pacing = Pacing::None,
            other => bail!("unknown flag {other:?}; see srs-bench --help"),
        }
    }
    // Benchmarks only ever load this machine.
    for addr in std::iter::once(parsed.rtmp).chain(parsed.http) {
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address; srs-bench only sends to 127.0.0.1");
        }
    }
    if parsed.streams == 0 {
        bail!("--streams must be at least 1");
    }
    if parsed.flv_players + parsed.hls_players > 0 && parsed.http.is_none() {
        bail!("--flv-players and --hls-players need --http");
    }
    Ok(parsed)
}

async fn standalone_load(args: &[String]) -> anyhow::Result<()> {
    let a = parse_load_args(args)?;
    let media = Arc::new(media::Media::load(&a.media)?);
    let names: Vec<String> = (0..a.streams).map(|i| format!("bench{i}")).collect();
    let spec = PublishSpec {
        media,
        pacing: a.pacing,
        marker_every: (a.marker_ms > 0).then(|| Duration::from_millis(a.marker_ms)),
    };
    let mut load = Load::default();
    let publishing = load.publish(a.rtmp, &names, &spec).await;
    println!("{publishing} of {} publishers publishing", names.len());
    let spread =
        |n: usize| -> Vec<String> { (0..n).map(|i| names[i % names.len()].clone()).collect() };
    load.play_rtmp(a.rtmp, &spread(a.rtmp_players));
    if let Some(http) = a.http {
        load.play_flv(http, &spread(a.flv_players));
        load.play_hls(http, &spread(a.hls_players));
    }
    let players = a.rtmp_players + a.flv_players + a.hls_players;
    let playing = load.wait_playing(players, Duration::from_secs(60)).await;
    println!("{playing} of {players} players playing");
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let started = std::time::Instant::now();
    load.begin_window();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let counters = load.end_window();
    let secs = started.elapsed().as_secs_f64();
    let outcome = load.finish(counters).await;
    let pct = |p: f64| {
        outcome
            .percentile_ms(p)
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}"))
    };
    println!(
        "window {secs:.1} s: published {} msgs / {:.1} MB ({:.3} Gbit/s), played {} msgs / {:.1} MB \
         ({:.3} Gbit/s); marker delay p50 {} ms, p99 {} ms ({} markers); errors {}",
        counters.pub_msgs,
        counters.pub_bytes as f64 / 1e6,
        counters.pub_bytes as f64 * 8.0 / secs / 1e9,
        counters.play_msgs,
        counters.play_bytes as f64 / 1e6,
        counters.play_bytes as f64 * 8.0 / secs / 1e9,
        pct(0.5),
        pct(0.99),
        outcome.delays_us.len(),
        outcome.errors
    );
    if a.hls_players > 0 {
        let ms = |v: &[u32], p| {
            load::percentile_ms(v, p).map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}"))
        };
        println!(
            "hls: {} playlists (fetch p50 {} ms, p99 {} ms), {} segments (fetch p50 {} ms, \
             p99 {} ms); HTTP errors {}",
            counters.playlists,
            ms(&outcome.playlist_us, 0.5),
            ms(&outcome.playlist_us, 0.99),
            counters.segments,
            ms(&outcome.segment_us, 0.5),
            ms(&outcome.segment_us, 0.99),
            outcome.http_errors
        );
    }
    for e in &outcome.error_samples {
        println!("  error: {e}");
    }
    Ok(())
}
