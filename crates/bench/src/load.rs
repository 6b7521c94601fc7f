//! The load: RTMP publishers replaying a file, RTMP, HTTP-FLV and HLS players counting what they
//! get.
//!
//! Publishers embed `onBenchTime` data messages carrying the wall-clock send time in µs; players
//! compute receive time − send time for each (same host, same clock). Counters and delays only
//! accumulate inside the measured window ([`Load::begin_window`] .. [`Load::end_window`]).
//! HLS players carry no markers; they time each playlist and segment fetch instead.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use srs_cluster::Direction;
use srs_rtmp::chunk::{Limits, RawMessage};
use srs_rtmp::io::{open_session, RtmpStream};
use srs_rtmp::message::{csid, type_id, Message};
use srs_rtmp::FlvReader;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::hls::{self, MediaPlaylist};
use crate::http;
use crate::media::Media;

mod srt;
pub use srt::TsSpec;

/// Bound on each client's connect + handshake + session setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Sessions set up at once, so thousands of players do not overflow the listen backlog.
const SETUP_CONCURRENCY: usize = 128;
/// A no-pacing publisher flushes once this much is queued.
const FLUSH_BATCH: usize = 256 * 1024;
/// Error messages kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;
/// AMF0 string `onBenchTime`: the marker's first value.
const MARKER_NAME: &[u8] = b"\x02\x00\x0bonBenchTime";
/// Bound on an HLS playlist reload (connect included).
const PLAYLIST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on an HLS segment fetch, request sent to last byte (connect included).
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HLS playlist read.
const MAX_PLAYLIST: u64 = 1 << 20;
/// Largest HLS segment read (srs-origin's own cap on a segment).
const MAX_SEGMENT: u64 = 32 << 20;
/// New segments an HLS player fetches per playlist reload at most.
const MAX_NEW_SEGMENTS: usize = 16;

/// How a publisher sends the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// At the file's own rate, by its timestamps.
    RealTime,
    /// As fast as the server takes it (throughput).
    None,
}

/// What one publisher sends.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// The file, looped.
    pub media: Arc<Media>,
    /// Real time or as fast as possible.
    pub pacing: Pacing,
    /// Interval of `onBenchTime` markers; `None` sends none.
    pub marker_every: Option<Duration>,
}

/// Counters of the measured window.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Messages publishers sent.
    pub pub_msgs: u64,
    /// Payload bytes publishers sent.
    pub pub_bytes: u64,
    /// Messages (RTMP), tags (FLV) or HTTP responses (HLS playlists and segments) players got.
    pub play_msgs: u64,
    /// Payload (HLS: response body) bytes players received.
    pub play_bytes: u64,
    /// HLS playlists fetched.
    pub playlists: u64,
    /// HLS segments fetched.
    pub segments: u64,
}

/// What a finished load reports.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Counters of the measured window.
    pub counters: Counters,
    /// Marker delays in µs received in the window, sorted.
    pub delays_us: Vec<u32>,
    /// HLS playlist fetch times in µs (request sent to last byte) in the window, sorted.
    pub playlist_us: Vec<u32>,
    /// HLS segment fetch times in µs (request sent to last byte) in the window, sorted.
    pub segment_us: Vec<u32>,
    /// Failed setups, server refusals, streams that ended early, protocol errors.
    pub errors: u64,
    /// HLS fetches that failed (non-200, timeout, transport error); also in `errors`.
    pub http_errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

impl Outcome {
    /// The `p` quantile (0..=1) of the marker delays in ms; `None` without markers.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile_ms(&self.delays_us, p)
    }
}

/// The `p` quantile (0..=1) of sorted µs samples, in ms; `None` without samples.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let i = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    Some(f64::from(sorted_us[i]) / 1000.0)
}

/// What a client task hands back: its µs samples of the window.
#[derive(Default)]
struct Samples {
    delays: Vec<u32>,
    playlists: Vec<u32>,
    segments: Vec<u32>,
}

/// State every client task shares.
#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    window_start_us: AtomicU64,
    stop: CancellationToken,
    publishing: AtomicUsize,
    publish_failed: AtomicUsize,
    playing: AtomicUsize,
    play_failed: AtomicUsize,
    pub_msgs: AtomicU64,
    pub_bytes: AtomicU64,
    play_msgs: AtomicU64,
    play_bytes: AtomicU64,
    playlists: AtomicU64,
    segments: AtomicU64,
    errors: AtomicU64,
    http_errors: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    /// Counts an error unless the load is being stopped (then closes are expected).
    fn error(&self, what: String) {
        if self.stop.is_cancelled() {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_ERROR_SAMPLES {
            samples.push(what);
        }
    }

    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

/// A running load: every client is a task of one tokio runtime.
pub struct Load {
    shared: Arc<Shared>,
    tasks: JoinSet<Samples>,
    setup: Arc<Semaphore>,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            shared: Arc::default(),
            tasks: JoinSet::new(),
            setup: Arc::new(Semaphore::new(SETUP_CONCURRENCY)),
        }
    }
}

impl Load {
    /// Starts one publisher per name at `rtmp` and waits until each publishes or failed.
    /// Returns how many publish.
    pub async fn publish(
        &mut self,
        rtmp: SocketAddr,
        names: &[String],
        spec: &PublishSpec,
    ) -> usize {
        self.start_publishers("publisher", names, |name, shared| {
            let spec = spec.clone();
            async move { publisher(rtmp, &name, &spec, &shared).await }
        })
        .await
    }

    /// Spawns `publish(name, shared)` per name (errors counted under `what`) and waits until
    /// each publishes or failed; returns how many publish.
    async fn start_publishers<F, Fut>(
        &mut self,
        what: &'static str,
        names: &[String],
        publish: F,
    ) -> usize
    where
        F: Fn(String, Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let before = self.shared.publishing.load(Ordering::Relaxed);
        let failed_before = self.shared.publish_failed.load(Ordering::Relaxed);
        for name in names {
            let shared = self.shared.clone();
            let run = publish(name.clone(), self.shared.clone());
            let name = name.clone();
            self.tasks.spawn(async move {
                if let Err(e) = run.await {
                    shared.error(format!("{what} {name}: {e:#}"));
                }
                Samples::default()
            });
        }
        let target = names.len();
        let shared = self.shared.clone();
        wait_for(SETUP_TIMEOUT, || {
            let ok = shared.publishing.load(Ordering::Relaxed) - before;
            let failed = shared.publish_failed.load(Ordering::Relaxed) - failed_before;
            ok + failed >= target
        })
        .await;
        self.shared.publishing.load(Ordering::Relaxed) - before
    }

    /// Starts one RTMP player per name, playing from `rtmp`.
    pub fn play_rtmp(&mut self, rtmp: SocketAddr, names: &[String]) {
        for name in names {
            self.spawn_player("rtmp", name, move |name, shared, setup| async move {
                let mut player = Player::default();
                let result = rtmp_player(rtmp, &name, &shared, &setup, &mut player).await;
                (result, player.started, player.samples())
            });
        }
    }

    /// Starts one HTTP-FLV player per name, playing `/live/<name>.flv` from `http`.
    pub fn play_flv(&mut self, http: SocketAddr, names: &[String]) {
        for name in names {
            self.spawn_player("flv", name, move |name, shared, setup| async move {
                let mut player = Player::default();
                let result = flv_player(http, &name, &shared, &setup, &mut player).await;
                (result, player.started, player.samples())
            });
        }
    }

    /// Starts one HLS player per name, playing `/live/<name>.m3u8` from `http`.
    pub fn play_hls(&mut self, http: SocketAddr, names: &[String]) {
        for name in names {
            self.spawn_player("hls", name, move |name, shared, setup| async move {
                let mut player = HlsPlayer::new(http);
                let result = player.run(&name, &shared, &setup).await;
                (result, player.started, player.samples)
            });
        }
    }

    /// Spawns one player task running `play`, which returns its outcome, whether it got media,
    /// and its samples; a player that failed before getting media counts as a failed play.
    fn spawn_player<F, Fut>(&mut self, kind: &'static str, name: &str, play: F)
    where
        F: FnOnce(String, Arc<Shared>, Arc<Semaphore>) -> Fut,
        Fut: std::future::Future<Output = (anyhow::Result<()>, bool, Samples)> + Send + 'static,
    {
        let shared = self.shared.clone();
        let task = play(name.to_string(), shared.clone(), self.setup.clone());
        let name = name.to_string();
        self.tasks.spawn(async move {
            let (result, started, samples) = task.await;
            if let Err(e) = result {
                if !started {
                    shared.play_failed.fetch_add(1, Ordering::Relaxed);
                }
                shared.error(format!("{kind} player {name}: {e:#}"));
            }
            samples
        });
    }

    /// Waits until `n` players got media or failed, at most `limit`; returns how many play.
    pub async fn wait_playing(&self, n: usize, limit: Duration) -> usize {
        let shared = self.shared.clone();
        wait_for(limit, || {
            shared.playing.load(Ordering::Relaxed) + shared.play_failed.load(Ordering::Relaxed) >= n
        })
        .await;
        self.shared.playing.load(Ordering::Relaxed)
    }

    /// Starts counting: messages, bytes, and markers sent from now on.
    pub fn begin_window(&self) {
        self.shared
            .window_start_us
            .store(now_us(), Ordering::Relaxed);
        self.shared.measuring.store(true, Ordering::Relaxed);
    }

    /// Stops counting and returns the window's counters.
    pub fn end_window(&self) -> Counters {
        let s = &self.shared;
        s.measuring.store(false, Ordering::Relaxed);
        Counters {
            pub_msgs: s.pub_msgs.load(Ordering::Relaxed),
            pub_bytes: s.pub_bytes.load(Ordering::Relaxed),
            play_msgs: s.play_msgs.load(Ordering::Relaxed),
            play_bytes: s.play_bytes.load(Ordering::Relaxed),
            playlists: s.playlists.load(Ordering::Relaxed),
            segments: s.segments.load(Ordering::Relaxed),
        }
    }

    /// Stops every client, waits for them (bounded), and reports.
    pub async fn finish(mut self, counters: Counters) -> Outcome {
        self.shared.stop.cancel();
        let mut all = Samples::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await
        {
            if let Ok(s) = joined {
                all.delays.extend(s.delays);
                all.playlists.extend(s.playlists);
                all.segments.extend(s.segments);
            }
        }
        self.tasks.abort_all();
        for v in [&mut all.delays, &mut all.playlists, &mut all.segments] {
            v.sort_unstable();
        }
        let samples = self
            .shared
            .error_samples
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        Outcome {
            counters,
            delays_us: all.delays,
            playlist_us: all.playlists,
            segment_us: all.segments,
            errors: self.shared.errors.load(Ordering::Relaxed),
            http_errors: self.shared.http_errors.load(Ordering::Relaxed),
            error_samples: samples,
        }
    }
}

/// Polls `done` every 50 ms until it holds or `limit` passes.
async fn wait_for(limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wall-clock time in µs since the Unix epoch (markers compare it across tasks).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The send time of an `onBenchTime` marker, or `None` for other data.
fn marker_time(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(MARKER_NAME)?;
    let (&marker, number) = rest.split_first()?;
    let bytes: [u8; 8] = number.get(..8)?.try_into().ok()?;
    (marker == 0).then(|| f64::from_be_bytes(bytes) as u64)
}

/// The marker body: AMF0 `"onBenchTime", <send time µs>`.
fn marker_payload(sent_us: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(MARKER_NAME.len() + 9);
    out.put_slice(MARKER_NAME);
    out.put_u8(0);
    // µs since 1970 stay below 2^53 for centuries, so the f64 is exact.
    out.put_f64(sent_us as f64);
    out.freeze()
}

async fn connect_rtmp(addr: SocketAddr) -> anyhow::Result<RtmpStream<TcpStream>> {
    let sock = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    sock.set_nodelay(true)?;
    Ok(RtmpStream::connect(sock, Limits::default(), SETUP_TIMEOUT).await?)
}

/// An error-level `onStatus` (the server refused or ended the session), as an error.
fn check_status(raw: &RawMessage) -> anyhow::Result<Option<String>> {
    if raw.type_id != type_id::COMMAND_AMF0 && raw.type_id != type_id::COMMAND_AMF3 {
        return Ok(None);
    }
    let Ok(Message::Command(cmd)) = Message::parse(raw) else {
        return Ok(None);
    };
    if cmd.name != "onStatus" {
        return Ok(None);
    }
    let (code, description) = cmd.info_code_description();
    let error = cmd
        .args
        .iter()
        .filter_map(|a| a.get("level"))
        .any(|l| l.as_str() == Some("error"));
    if error {
        bail!("{code}: {description}");
    }
    Ok(Some(code))
}

async fn publisher(
    addr: SocketAddr,
    name: &str,
    spec: &PublishSpec,
    shared: &Shared,
) -> anyhow::Result<()> {
    let setup = async {
        let mut rtmp = connect_rtmp(addr).await?;
        let tc_url = format!("rtmp://{addr}/live");
        let msid = open_session(
            &mut rtmp,
            &tc_url,
            "live",
            name,
            Direction::Publish,
            SETUP_TIMEOUT,
        )
        .await?;
        loop {
            let raw = rtmp
                .read_message()
                .await?
                .ok_or_else(|| anyhow!("server closed before NetStream.Publish.Start"))?;
            if check_status(&raw)?.as_deref() == Some("NetStream.Publish.Start") {
                return Ok::<_, anyhow::Error>((rtmp, msid));
            }
        }
    };
    let (mut rtmp, msid) = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            shared.publish_failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        Err(_) => {
            shared.publish_failed.fetch_add(1, Ordering::Relaxed);
            bail!("publish setup timed out");
        }
    };
    shared.publishing.fetch_add(1, Ordering::Relaxed);
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    let start = Instant::now();
    let mut next_marker = start;
    let mut lap_base = 0u64;
    for lap in 0u64.. {
        for tag in spec.media.tags.iter() {
            if lap > 0 && tag.first_lap_only {
                continue;
            }
            let ts = lap_base + u64::from(tag.ts);
            match spec.pacing {
                Pacing::RealTime => {
                    let due = start + Duration::from_millis(ts);
                    if !wait_until(&mut rtmp, due, stop.as_mut()).await? {
                        return Ok(());
                    }
                }
                Pacing::None => {
                    if rtmp.connection().output_buffer().len() >= FLUSH_BATCH
                        && !flush_and_drain(&mut rtmp, stop.as_mut()).await?
                    {
                        return Ok(());
                    }
                }
            }
            // RTMP timestamps are 32-bit milliseconds and wrap (after 49 days).
            let timestamp = ts as u32;
            if let Some(every) = spec.marker_every {
                if Instant::now() >= next_marker {
                    next_marker += every;
                    let marker = RawMessage {
                        csid: csid::DATA,
                        timestamp,
                        type_id: type_id::DATA_AMF0,
                        msid,
                        payload: marker_payload(now_us()),
                    };
                    send_counted(&mut rtmp, &marker, shared);
                }
            }
            let chunk_stream = match tag.type_id {
                type_id::AUDIO => csid::AUDIO,
                type_id::VIDEO => csid::VIDEO,
                _ => csid::DATA,
            };
            let raw = RawMessage {
                csid: chunk_stream,
                timestamp,
                type_id: tag.type_id,
                msid,
                payload: tag.payload.clone(),
            };
            send_counted(&mut rtmp, &raw, shared);
        }
        lap_base += u64::from(spec.media.lap_ms);
    }
    Ok(())
}

fn send_counted(rtmp: &mut RtmpStream<TcpStream>, raw: &RawMessage, shared: &Shared) {
    rtmp.connection().send(raw);
    if shared.measuring() {
        shared.pub_msgs.fetch_add(1, Ordering::Relaxed);
        shared
            .pub_bytes
            .fetch_add(raw.payload.len() as u64, Ordering::Relaxed);
    }
}

/// Flushes queued output, then reads (and checks) server messages until `due`.
/// `Ok(false)` when the load is stopping.
async fn wait_until(
    rtmp: &mut RtmpStream<TcpStream>,
    due: Instant,
    mut stop: Pin<&mut WaitForCancellationFuture<'_>>,
) -> anyhow::Result<bool> {
    if rtmp.connection().has_output() {
        tokio::select! {
            _ = stop.as_mut() => return Ok(false),
            r = rtmp.flush() => r?,
        }
    }
    loop {
        if Instant::now() >= due {
            return Ok(true);
        }
        tokio::select! {
            _ = stop.as_mut() => return Ok(false),
            _ = tokio::time::sleep_until(due) => return Ok(true),
            r = rtmp.read_message() => {
                let raw = r?.ok_or_else(|| anyhow!("server closed the publish session"))?;
                check_status(&raw)?;
            }
        }
    }
}

/// Flushes, then takes whatever the server already sent (acknowledgements) without waiting,
/// so neither side blocks writing to the other. `Ok(false)` when the load is stopping.
async fn flush_and_drain(
    rtmp: &mut RtmpStream<TcpStream>,
    mut stop: Pin<&mut WaitForCancellationFuture<'_>>,
) -> anyhow::Result<bool> {
    tokio::select! {
        _ = stop.as_mut() => return Ok(false),
        r = rtmp.flush() => r?,
    }
    loop {
        // `read_message` is cancel-safe: a message it has not returned stays buffered.
        tokio::select! {
            biased;
            r = rtmp.read_message() => {
                let raw = r?.ok_or_else(|| anyhow!("server closed the publish session"))?;
                check_status(&raw)?;
            }
            _ = std::future::ready(()) => return Ok(true),
        }
    }
}

/// One player's state.
#[derive(Default)]
struct Player {
    /// Got its first audio/video message.
    started: bool,
    /// Marker delays in µs seen in the window.
    delays: Vec<u32>,
}

impl Player {
    /// The samples this player took.
    fn samples(self) -> Samples {
        Samples {
            delays: self.delays,
            ..Samples::default()
        }
    }

    fn on_message(&mut self, type_id: u8, payload: &[u8], shared: &Shared) {
        if !self.started && (type_id == type_id::AUDIO || type_id == type_id::VIDEO) {
            self.started = true;
            shared.playing.fetch_add(1, Ordering::Relaxed);
        }
        if !shared.measuring() {
            return;
        }
        shared.play_msgs.fetch_add(1, Ordering::Relaxed);
        shared
            .play_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if type_id != type_id::DATA_AMF0 {
            return;
        }
        // Markers sent before the window were replayed from the origin's GOP cache at join:
        // their delay says nothing about relaying.
        let Some(sent) = marker_time(payload) else {
            return;
        };
        if sent >= shared.window_start_us.load(Ordering::Relaxed) {
            let delay = now_us().saturating_sub(sent);
            self.delays.push(u32::try_from(delay).unwrap_or(u32::MAX));
        }
    }
}

async fn rtmp_player(
    addr: SocketAddr,
    name: &str,
    shared: &Shared,
    setup: &Semaphore,
    player: &mut Player,
) -> anyhow::Result<()> {
    let mut rtmp = {
        let _permit = setup.acquire().await?;
        let open = async {
            let mut rtmp = connect_rtmp(addr).await?;
            let tc_url = format!("rtmp://{addr}/live");
            open_session(
                &mut rtmp,
                &tc_url,
                "live",
                name,
                Direction::Play,
                SETUP_TIMEOUT,
            )
            .await?;
            Ok::<_, anyhow::Error>(rtmp)
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(SETUP_TIMEOUT, open) => r.map_err(|_| anyhow!("setup timed out"))??,
        }
    };
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            r = rtmp.read_message() => {
                let raw = r?.ok_or_else(|| anyhow!("server closed the play session"))?;
                match raw.type_id {
                    type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 => {
                        player.on_message(raw.type_id, &raw.payload, shared);
                    }
                    _ => {
                        check_status(&raw)?;
                    }
                }
            }
        }
    }
}

async fn flv_player(
    addr: SocketAddr,
    name: &str,
    shared: &Shared,
    setup: &Semaphore,
    player: &mut Player,
) -> anyhow::Result<()> {
    let permit = setup.acquire().await?;
    let (mut sender, conn) = http::connect(addr, SETUP_TIMEOUT).await?;
    let mut conn = std::pin::pin!(conn);
    let request = http::get(addr, &format!("/live/{name}.flv"))?;
    let response = tokio::select! {
        _ = shared.stop.cancelled() => return Ok(()),
        r = tokio::time::timeout(SETUP_TIMEOUT, sender.send_request(request)) => {
            r.map_err(|_| anyhow!("no response within {SETUP_TIMEOUT:?}"))??
        }
        c = &mut conn => bail!("connection ended before a response: {c:?}"),
    };
    drop(permit);
    if response.status() != hyper::StatusCode::OK {
        bail!("HTTP {}", response.status());
    }
    let mut body = response.into_body();
    let mut reader = FlvReader::new();
    let mut conn_done = false;
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            c = &mut conn, if !conn_done => {
                conn_done = true;
                c?;
            }
            frame = body.frame() => {
                let frame = frame.ok_or_else(|| anyhow!("server ended the stream"))??;
                let Ok(data) = frame.into_data() else { continue };
                reader.feed(&data);
                while let Some(tag) = reader.next_tag()? {
                    player.on_message(tag.tag_type, &tag.payload, shared);
                }
            }
        }
    }
}

/// A keep-alive HTTP/1 connection, opened on first use and again after any failed request.
struct KeepAlive {
    addr: SocketAddr,
    conn: Option<(http::Sender, JoinHandle<()>)>,
}

impl KeepAlive {
    /// `GET path` within `limit` (connect included); passes each body chunk to `on_data`, at most
    /// `max` bytes. Returns the time from request sent to last byte.
    async fn get(
        &mut self,
        path: &str,
        limit: Duration,
        max: u64,
        on_data: impl FnMut(&[u8]),
    ) -> anyhow::Result<Duration> {
        let result = tokio::time::timeout(limit, self.exchange(path, limit, max, on_data))
            .await
            .unwrap_or_else(|_| Err(anyhow!("GET {path}: no full response within {limit:?}")));
        if result.is_err() {
            // The connection's state is unknown (e.g. a body left unread): start a fresh one.
            self.close();
        }
        result
    }

    async fn exchange(
        &mut self,
        path: &str,
        limit: Duration,
        max: u64,
        mut on_data: impl FnMut(&[u8]),
    ) -> anyhow::Result<Duration> {
        if self.conn.as_ref().is_none_or(|(s, _)| s.is_closed()) {
            self.close();
            let (sender, conn) = http::connect(self.addr, limit).await?;
            let driver = tokio::spawn(async move {
                // Its errors reach the sender as failed requests.
                let _ = conn.await;
            });
            self.conn = Some((sender, driver));
        }
        let Some((sender, _)) = self.conn.as_mut() else {
            bail!("no connection to {}", self.addr);
        };
        sender.ready().await?;
        let sent = Instant::now();
        let response = sender.send_request(http::get(self.addr, path)?).await?;
        if response.status() != hyper::StatusCode::OK {
            bail!("GET {path}: HTTP {}", response.status());
        }
        let mut body = response.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if total > max {
                bail!("GET {path}: body over {max} bytes");
            }
            on_data(&data);
        }
        Ok(sent.elapsed())
    }

    fn close(&mut self) {
        if let Some((_, driver)) = self.conn.take() {
            driver.abort();
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.close();
    }
}

/// Which HLS resource a fetch is, for its counter and latency samples.
#[derive(Clone, Copy)]
enum Fetch {
    Playlist,
    Segment,
}

/// One HLS player: master playlist, then its first variant reloaded every half target duration,
/// each new segment fetched once, in order, over one keep-alive connection.
struct HlsPlayer {
    http: KeepAlive,
    /// Fetched its first segment.
    started: bool,
    samples: Samples,
}

impl HlsPlayer {
    fn new(addr: SocketAddr) -> Self {
        HlsPlayer {
            http: KeepAlive { addr, conn: None },
            started: false,
            samples: Samples::default(),
        }
    }

    /// Plays until the load stops; `Err` only when the master playlist cannot be had.
    async fn run(&mut self, name: &str, shared: &Shared, setup: &Semaphore) -> anyhow::Result<()> {
        let master = format!("/live/{name}.m3u8");
        let media = {
            let _permit = setup.acquire().await?;
            let text = tokio::select! {
                _ = shared.stop.cancelled() => return Ok(()),
                r = self.playlist(&master, SETUP_TIMEOUT, shared) => r?,
            };
            hls::first_variant(&text).map_or_else(|| master.clone(), |v| hls::resolve(&master, v))
        };
        // Sequence number of the next segment to fetch; a joining player starts at the newest.
        let mut next: Option<u64> = None;
        let stop = shared.stop.cancelled();
        tokio::pin!(stop);
        loop {
            let mut wait = Duration::from_secs(1);
            let round = self.round(&media, &mut next, &mut wait, shared);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                r = round => {
                    if let Err(e) = r {
                        shared.http_errors.fetch_add(1, Ordering::Relaxed);
                        shared.error(format!("hls {name}: {e:#}"));
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One reload: the media playlist, then every segment after `next`. Sets `wait` to half the
    /// target duration. A failed segment is counted and skipped, as a live player would.
    async fn round(
        &mut self,
        media: &str,
        next: &mut Option<u64>,
        wait: &mut Duration,
        shared: &Shared,
    ) -> anyhow::Result<()> {
        let text = self.playlist(media, PLAYLIST_TIMEOUT, shared).await?;
        let list = MediaPlaylist::parse(&text);
        *wait = (list.target / 2).clamp(Duration::from_millis(250), Duration::from_secs(5));
        let count = list.segments.len() as u64;
        let from = next.unwrap_or((list.first_seq + count).saturating_sub(1));
        let skip = usize::try_from(from.saturating_sub(list.first_seq)).unwrap_or(usize::MAX);
        for (seq, uri) in (list.first_seq..)
            .zip(&list.segments)
            .skip(skip)
            .take(MAX_NEW_SEGMENTS)
        {
            *next = Some(seq + 1);
            let path = hls::resolve(media, uri);
            let fetched = self
                .http
                .get(&path, SEGMENT_TIMEOUT, MAX_SEGMENT, |d| {
                    count_bytes(d, shared)
                })
                .await;
            match fetched {
                Ok(took) => {
                    if !self.started {
                        self.started = true;
                        shared.playing.fetch_add(1, Ordering::Relaxed);
                    }
                    self.sample(Fetch::Segment, took, shared);
                }
                Err(e) => {
                    shared.http_errors.fetch_add(1, Ordering::Relaxed);
                    shared.error(format!("segment {seq}: {e:#}"));
                }
            }
        }
        Ok(())
    }

    /// Fetches and checks a playlist, counted and timed.
    async fn playlist(
        &mut self,
        path: &str,
        limit: Duration,
        shared: &Shared,
    ) -> anyhow::Result<String> {
        let mut text = Vec::new();
        let took = self
            .http
            .get(path, limit, MAX_PLAYLIST, |d| {
                count_bytes(d, shared);
                text.extend_from_slice(d);
            })
            .await?;
        self.sample(Fetch::Playlist, took, shared);
        let text = String::from_utf8(text).map_err(|_| anyhow!("{path}: playlist not UTF-8"))?;
        hls::check(&text)?;
        Ok(text)
    }

    /// Counts a finished fetch and keeps its time, inside the window only.
    fn sample(&mut self, what: Fetch, took: Duration, shared: &Shared) {
        if !shared.measuring() {
            return;
        }
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        shared.play_msgs.fetch_add(1, Ordering::Relaxed);
        match what {
            Fetch::Playlist => {
                shared.playlists.fetch_add(1, Ordering::Relaxed);
                self.samples.playlists.push(us);
            }
            Fetch::Segment => {
                shared.segments.fetch_add(1, Ordering::Relaxed);
                self.samples.segments.push(us);
            }
        }
    }
}

/// Counts body bytes an HLS player received inside the window.
fn count_bytes(data: &[u8], shared: &Shared) {
    if shared.measuring() {
        shared
            .play_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let p = marker_payload(1_700_000_000_123_456);
        assert_eq!(marker_time(&p), Some(1_700_000_000_123_456));
        assert_eq!(marker_time(b"\x02\x00\x0aonMetaData"), None);
        assert_eq!(marker_time(&p[..p.len() - 1]), None);
        // It is the AMF0 the library decodes, so any RTMP peer sees a plain data message.
        let values = srs_rtmp::amf0::decode_all(&p).unwrap();
        assert_eq!(values[0].as_str(), Some("onBenchTime"));
    }
}
