//! SRT clients (srt-tokio, in-process): a publisher sending an MPEG-TS file in 1316-byte
//! messages (7 TS packets) paced at the file's byte rate, and players counting the messages
//! and bytes they receive. MPEG-TS carries no `onBenchTime` markers, so SRT runs report no
//! delay.
//!
//! srt-tokio's sender stalls when handed a burst of messages at once, so the publisher hands
//! it one message at a time, each at its due time (about 240 per second at 2.5 Mbit/s).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use srt_tokio::SrtSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Load, Samples, Shared, SETUP_TIMEOUT};

/// Bytes per SRT message: 7 TS packets, what SRT encoders send.
pub const SRT_MESSAGE: usize = 1316;
/// TS packet size.
const TS_PACKET: usize = 188;
/// SRT latency of every client (libsrt's default is 120 ms).
const LATENCY: Duration = Duration::from_millis(120);

/// What the SRT publisher sends: an MPEG-TS file, looped.
#[derive(Debug, Clone)]
pub struct TsSpec {
    /// The whole file (a multiple of 188 bytes; a partial last packet is dropped).
    pub ts: Bytes,
    /// Playing time of one lap, which sets the pace: `ts.len()` bytes per lap.
    pub lap: Duration,
}

/// The SRT stream id for `live/<name>` in direction `m` (`publish` or `request`).
fn stream_id(name: &str, m: &str) -> String {
    format!("#!::r=live/{name},m={m}")
}

async fn call(addr: SocketAddr, stream_id: &str) -> anyhow::Result<SrtSocket> {
    let connect = SrtSocket::builder()
        .latency(LATENCY)
        .call(addr, Some(stream_id));
    tokio::time::timeout(SETUP_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("SRT connect to {addr} timed out"))?
        .with_context(|| format!("SRT connect to {addr} ({stream_id})"))
}

impl Load {
    /// Starts one SRT publisher per name at `srt` and waits until each publishes or failed.
    /// Returns how many publish.
    pub async fn publish_srt(&mut self, srt: SocketAddr, names: &[String], spec: &TsSpec) -> usize {
        self.start_publishers("SRT publisher", names, |name, shared| {
            let spec = spec.clone();
            async move { srt_publisher(srt, &name, &spec, &shared).await }
        })
        .await
    }

    /// Starts one SRT player per name, playing `live/<name>` from `srt`.
    pub fn play_srt(&mut self, srt: SocketAddr, names: &[String]) {
        for name in names {
            self.spawn_player("srt", name, move |name, shared, setup| async move {
                let mut started = false;
                let result = srt_player(srt, &name, &shared, &setup, &mut started).await;
                (result, started, Samples::default())
            });
        }
    }
}

async fn srt_publisher(
    addr: SocketAddr,
    name: &str,
    spec: &TsSpec,
    shared: &Shared,
) -> anyhow::Result<()> {
    let whole = spec.ts.len() / TS_PACKET * TS_PACKET;
    if whole == 0 {
        shared.publish_failed.fetch_add(1, Ordering::Relaxed);
        bail!("the MPEG-TS file has no whole packet");
    }
    let mut socket = match call(addr, &stream_id(name, "publish")).await {
        Ok(s) => s,
        Err(e) => {
            shared.publish_failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    shared.publishing.fetch_add(1, Ordering::Relaxed);
    let chunks: Vec<Bytes> = (0..whole)
        .step_by(SRT_MESSAGE)
        .map(|at| spec.ts.slice(at..(at + SRT_MESSAGE).min(whole)))
        .collect();
    let ns_per_byte = spec.lap.as_nanos() as f64 / whole as f64;
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        for chunk in &chunks {
            let due = start + Duration::from_nanos((sent as f64 * ns_per_byte) as u64);
            tokio::select! {
                () = &mut stop => {
                    let _ = socket.close().await;
                    return Ok(());
                }
                () = tokio::time::sleep_until(due) => {}
            }
            let send = socket.send((std::time::Instant::now(), chunk.clone()));
            tokio::select! {
                () = &mut stop => return Ok(()),
                r = send => r.context("SRT send")?,
            }
            sent += chunk.len() as u64;
            if shared.measuring() {
                shared.pub_msgs.fetch_add(1, Ordering::Relaxed);
                shared
                    .pub_bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn srt_player(
    addr: SocketAddr,
    name: &str,
    shared: &Shared,
    setup: &Semaphore,
    started: &mut bool,
) -> anyhow::Result<()> {
    let mut socket = {
        let _permit = setup.acquire().await?;
        call(addr, &stream_id(name, "request")).await?
    };
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => return Ok(()),
            next = socket.next() => next,
        };
        let (_, data) = match next {
            Some(r) => r.context("SRT receive")?,
            None => bail!("the server closed the SRT connection"),
        };
        if !*started {
            *started = true;
            shared.playing.fetch_add(1, Ordering::Relaxed);
        }
        if shared.measuring() {
            shared.play_msgs.fetch_add(1, Ordering::Relaxed);
            shared
                .play_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
}
