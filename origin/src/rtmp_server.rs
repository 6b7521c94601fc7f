//! The RTMP listener: publish into the hub, play out of it.
//!
//! Playing a stream nobody publishes: like SRS the play is accepted, but instead of waiting
//! forever the player waits up to `ORIGIN_PLAY_WAIT` (default 5 s) for a publisher and then gets
//! onStatus `NetStream.Play.StreamNotFound` and is closed, so a client (or a proxy in front of
//! us) gets a clear answer instead of a hang.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use srs_rtmp::amf0::Amf0Value;
use srs_rtmp::chunk::{Limits, RawMessage};
use srs_rtmp::io::{accept_session, RtmpStream, ServerRequest};
use srs_rtmp::message::{csid, type_id, Command, Message, UserControl};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::hub::{Hub, Player, PublishInfo};
use crate::media::{Media, MediaKind};
use srs_cluster::{Direction, StreamKey};

/// Time allowed for the handshake, and then for the connect ... publish/play exchange.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A player that cannot take our data for this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Chunk stream used for data messages sent to players.
const DATA_CSID: u32 = 4;
/// Send at most this many queued messages per flush to a player.
const PLAY_BATCH: usize = 64;

/// Behaviour settings of the RTMP server.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a player waits for a publisher.
    pub play_wait: Duration,
    /// A publisher silent for this long is closed.
    pub publish_timeout: Duration,
}

/// Accepts RTMP connections forever, one task per connection.
pub async fn serve(listener: TcpListener, hub: Hub, settings: Settings) -> std::io::Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("rtmp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%peer, "set_nodelay failed: {e}");
        }
        let cid = crate::config::random_id(8);
        let span = tracing::info_span!("rtmp", id = %cid, %peer, stream = tracing::field::Empty);
        let hub = hub.clone();
        tokio::spawn(
            async move {
                match session(socket, peer, hub, settings, cid).await {
                    Ok(()) => tracing::info!("connection closed"),
                    Err(e) => tracing::info!("connection closed: {e:#}"),
                }
            }
            .instrument(span),
        );
    }
}

async fn session(
    socket: TcpStream,
    peer: SocketAddr,
    hub: Hub,
    settings: Settings,
    cid: String,
) -> anyhow::Result<()> {
    tracing::debug!(%peer, "connection accepted");
    let mut rtmp = RtmpStream::accept(socket, Limits::default(), SETUP_TIMEOUT)
        .await
        .context("handshake")?;
    // accept_session also switches our outgoing chunk size to 60000, as SRS does.
    let req = accept_session(&mut rtmp, SETUP_TIMEOUT)
        .await
        .context("connect/createStream/publish|play exchange")?;
    let Ok(key) = StreamKey::from_rtmp(&req.connect.tc_url, &req.stream_name) else {
        let code = match req.kind {
            Direction::Publish => "NetStream.Publish.BadName",
            Direction::Play => "NetStream.Play.StreamNotFound",
        };
        send_status(
            &mut rtmp,
            req.msid,
            "error",
            code,
            "invalid app or stream name",
        )
        .await?;
        bail!(
            "invalid app {:?} or stream name {:?}",
            req.connect.app,
            req.stream_name
        );
    };
    tracing::Span::current().record("stream", tracing::field::display(&key));
    match req.kind {
        Direction::Publish => publish(rtmp, req, key, hub, settings, cid).await,
        Direction::Play => play(rtmp, req, key, hub, settings).await,
    }
}

async fn publish(
    mut rtmp: RtmpStream<TcpStream>,
    req: ServerRequest,
    key: StreamKey,
    hub: Hub,
    settings: Settings,
    cid: String,
) -> anyhow::Result<()> {
    let info = PublishInfo {
        cid,
        tc_url: req.connect.tc_url.clone(),
    };
    let publisher = match hub.publish(key, info) {
        Ok(p) => p,
        Err(e) => {
            send_status(
                &mut rtmp,
                req.msid,
                "error",
                "NetStream.Publish.BadName",
                "stream already publishing",
            )
            .await?;
            tracing::warn!("publish refused: {e}");
            return Ok(());
        }
    };
    send_status(
        &mut rtmp,
        req.msid,
        "status",
        "NetStream.Publish.Start",
        "Started publishing stream.",
    )
    .await?;
    tracing::info!("publish started");

    loop {
        let raw = match tokio::time::timeout(settings.publish_timeout, rtmp.read_message()).await {
            Err(_) => bail!("publisher idle for {:?}", settings.publish_timeout),
            Ok(read) => read.context("reading from publisher")?,
        };
        let Some(raw) = raw else {
            tracing::info!("publisher disconnected");
            break;
        };
        match raw.type_id {
            type_id::AUDIO | type_id::VIDEO if raw.payload.is_empty() => {}
            type_id::AUDIO => {
                publisher.push(Media::new(MediaKind::Audio, raw.timestamp, raw.payload))
            }
            type_id::VIDEO => {
                publisher.push(Media::new(MediaKind::Video, raw.timestamp, raw.payload))
            }
            type_id::DATA_AMF0 => {
                publisher.push(Media::new(MediaKind::Data, raw.timestamp, raw.payload))
            }
            type_id::DATA_AMF3 => {
                // AMF3 data is AMF0 behind a one-byte format marker.
                let payload = amf3_data_as_amf0(raw.payload);
                publisher.push(Media::new(MediaKind::Data, raw.timestamp, payload));
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => match Message::parse(&raw) {
                Ok(Message::Command(c)) if ends_publish(&c.name) => {
                    tracing::info!(command = %c.name, "publish ended by publisher");
                    break;
                }
                Ok(Message::Command(c)) => tracing::debug!(command = %c.name, "ignored command"),
                Ok(other) => tracing::debug!(?other, "ignored message"),
                Err(e) => tracing::debug!("unparsable command: {e}"),
            },
            other => tracing::debug!(type_id = other, "ignored message type"),
        }
    }
    Ok(())
}

fn ends_publish(command: &str) -> bool {
    matches!(command, "FCUnpublish" | "deleteStream" | "closeStream")
}

fn amf3_data_as_amf0(payload: Bytes) -> Bytes {
    if payload.first() == Some(&0) {
        payload.slice(1..)
    } else {
        payload
    }
}

async fn play(
    mut rtmp: RtmpStream<TcpStream>,
    req: ServerRequest,
    key: StreamKey,
    hub: Hub,
    settings: Settings,
) -> anyhow::Result<()> {
    let msid = req.msid;
    let Some(mut player) = hub.play_or_wait(&key, settings.play_wait).await else {
        send_status(
            &mut rtmp,
            msid,
            "error",
            "NetStream.Play.StreamNotFound",
            "stream not found",
        )
        .await?;
        bail!("no publisher within {:?}", settings.play_wait);
    };
    tracing::info!("play started");

    let conn = rtmp.connection();
    conn.send(
        &Message::UserControl(UserControl::StreamBegin(msid)).to_raw(csid::PROTOCOL_CONTROL, 0, 0),
    );
    for (code, description) in [
        ("NetStream.Play.Reset", "Playing and resetting stream."),
        ("NetStream.Play.Start", "Started playing stream."),
    ] {
        conn.send(&status(msid, "status", code, description));
    }
    let sample_access = Message::Data(vec![
        Amf0Value::String("|RtmpSampleAccess".into()),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(true),
    ]);
    conn.send(&sample_access.to_raw(DATA_CSID, 0, msid));
    flush(&mut rtmp).await?;

    loop {
        tokio::select! {
            m = player.recv() => {
                let Some(m) = m else {
                    tracing::info!("stream ended");
                    let conn = rtmp.connection();
                    conn.send(&Message::UserControl(UserControl::StreamEof(msid)).to_raw(csid::PROTOCOL_CONTROL, 0, 0));
                    conn.send(&status(msid, "status", "NetStream.Play.UnpublishNotify", "stream is now unpublished"));
                    flush(&mut rtmp).await?;
                    return Ok(());
                };
                send_media(&mut rtmp, &mut player, m, msid).await?;
            }
            read = rtmp.read_message() => {
                let Some(raw) = read.context("reading from player")? else {
                    tracing::info!("player disconnected");
                    return Ok(());
                };
                if let Ok(Message::Command(c)) = Message::parse(&raw) {
                    if matches!(c.name.as_str(), "closeStream" | "deleteStream") {
                        tracing::info!(command = %c.name, "play ended by player");
                        return Ok(());
                    }
                    tracing::debug!(command = %c.name, "ignored command");
                }
            }
        }
    }
}

/// Queues `first` and whatever else is ready (up to a batch), then flushes.
async fn send_media(
    rtmp: &mut RtmpStream<TcpStream>,
    player: &mut Player,
    first: Media,
    msid: u32,
) -> anyhow::Result<()> {
    let conn = rtmp.connection();
    conn.send(&media_to_raw(first, msid));
    for _ in 1..PLAY_BATCH {
        let Some(m) = player.try_recv() else { break };
        conn.send(&media_to_raw(m, msid));
    }
    flush(rtmp).await
}

fn media_to_raw(m: Media, msid: u32) -> RawMessage {
    let csid = match m.kind {
        MediaKind::Audio => csid::AUDIO,
        MediaKind::Video => csid::VIDEO,
        MediaKind::Data => DATA_CSID,
    };
    RawMessage {
        csid,
        timestamp: m.timestamp,
        type_id: m.kind.type_id(),
        msid,
        payload: m.payload,
    }
}

async fn flush(rtmp: &mut RtmpStream<TcpStream>) -> anyhow::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, rtmp.flush())
        .await
        .map_err(|_| anyhow::anyhow!("peer did not read for {WRITE_TIMEOUT:?}"))?
        .context("writing")
}

fn status(msid: u32, level: &str, code: &str, description: &str) -> RawMessage {
    Message::Command(Command::on_status(level, code, description)).to_raw(
        csid::OVER_STREAM,
        0,
        msid,
    )
}

async fn send_status(
    rtmp: &mut RtmpStream<TcpStream>,
    msid: u32,
    level: &str,
    code: &str,
    description: &str,
) -> anyhow::Result<()> {
    rtmp.connection()
        .send(&status(msid, level, code, description));
    flush(rtmp).await
}
