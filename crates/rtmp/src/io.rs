//! Async glue over tokio streams (feature `tokio`): runs the handshake and
//! moves bytes between a socket and a [`Connection`]. Protocol decisions
//! live in the sans-IO modules; the session helpers here only sequence the
//! command exchange of RTMP spec 7.2 as real servers and clients do.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use srs_cluster::Direction;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::amf0::Amf0Value;
use crate::chunk::{Limits, RawMessage};
use crate::conn::Connection;
use crate::error::{HandshakeError, RtmpError};
use crate::handshake::{ClientHandshake, ServerHandshake};
use crate::message::{csid, type_id, Command, ConnectParams, Message, UserControl};

/// Bytes reserved in the input buffer before each read.
const READ_RESERVE: usize = 64 * 1024;

/// The `connect` command object property naming the proxies a session was
/// relayed through, comma-separated, oldest first (see [`open_session_via`]).
pub const VIA_PROPERTY: &str = "srsProxyVia";

/// Window and peer bandwidth the server announces (as SRS does).
const SERVER_WINDOW: u32 = 2_500_000;
/// Chunk size both helpers switch to (as SRS does).
const SESSION_CHUNK_SIZE: u32 = 60_000;
/// Set Peer Bandwidth limit type "dynamic" (RTMP spec 5.4.5).
const LIMIT_DYNAMIC: u8 = 2;
/// Buffer length a playing client announces, in milliseconds (ffmpeg's).
const PLAY_BUFFER_MS: u32 = 3000;

/// The two handshake roles, driven by the same loop.
trait Handshake {
    fn feed(&mut self, input: &[u8]) -> Result<usize, HandshakeError>;
    fn take_output(&mut self) -> bytes::Bytes;
    fn is_done(&self) -> bool;
}

impl Handshake for ServerHandshake {
    fn feed(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        ServerHandshake::feed(self, input)
    }
    fn take_output(&mut self) -> bytes::Bytes {
        ServerHandshake::take_output(self)
    }
    fn is_done(&self) -> bool {
        ServerHandshake::is_done(self)
    }
}

impl Handshake for ClientHandshake {
    fn feed(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        ClientHandshake::feed(self, input)
    }
    fn take_output(&mut self) -> bytes::Bytes {
        ClientHandshake::take_output(self)
    }
    fn is_done(&self) -> bool {
        ClientHandshake::is_done(self)
    }
}

fn eof(what: &str) -> RtmpError {
    RtmpError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("connection closed during {what}"),
    ))
}

/// An RTMP connection over a byte stream `S` (e.g. a `TcpStream`).
#[derive(Debug)]
pub struct RtmpStream<S> {
    stream: S,
    conn: Connection,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RtmpStream<S> {
    /// Runs the server handshake (RTMP spec 5.2) on `stream` within
    /// `timeout`. Bytes the client sent after C2 are kept as chunk input.
    ///
    /// Errors: [`RtmpError::Timeout`]`("RTMP handshake")`,
    /// [`RtmpError::Handshake`], [`RtmpError::Io`] (including EOF).
    pub async fn accept(stream: S, limits: Limits, timeout: Duration) -> Result<Self, RtmpError> {
        Self::handshake(stream, limits, timeout, ServerHandshake::new()).await
    }

    /// Runs the client handshake (RTMP spec 5.2) on `stream` within
    /// `timeout`. Bytes the server sent after S2 are kept as chunk input.
    ///
    /// Errors: as [`RtmpStream::accept`].
    pub async fn connect(stream: S, limits: Limits, timeout: Duration) -> Result<Self, RtmpError> {
        Self::handshake(stream, limits, timeout, ClientHandshake::new()).await
    }

    async fn handshake(
        mut stream: S,
        limits: Limits,
        timeout: Duration,
        mut hs: impl Handshake,
    ) -> Result<Self, RtmpError> {
        let mut buf = BytesMut::new();
        let exchange = async {
            loop {
                let used = hs.feed(&buf)?;
                buf.advance(used);
                let out = hs.take_output();
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    stream.flush().await?;
                }
                if hs.is_done() {
                    return Ok::<(), RtmpError>(());
                }
                buf.reserve(4096);
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(eof("handshake"));
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RtmpError::Timeout("RTMP handshake"))??;
        let mut conn = Connection::new(limits);
        conn.input_buffer().extend_from_slice(&buf);
        Ok(RtmpStream { stream, conn })
    }

    /// Reads the next non-control message, first flushing queued output
    /// (acknowledgements, ping responses). Cancel-safe: received bytes stay
    /// buffered and no returned message is lost.
    ///
    /// Returns `Ok(None)` on EOF at a message boundary.
    ///
    /// Errors: [`RtmpError::Io`] (`UnexpectedEof` for EOF inside a
    /// message), and the errors of [`Connection::poll_message`].
    pub async fn read_message(&mut self) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            if self.conn.has_output() {
                self.flush().await?;
            }
            if let Some(msg) = self.conn.poll_message()? {
                return Ok(Some(msg));
            }
            if self.conn.has_output() {
                continue;
            }
            let input = self.conn.input_buffer();
            input.reserve(READ_RESERVE);
            if self.stream.read_buf(input).await? == 0 {
                if self.conn.at_message_boundary() {
                    return Ok(None);
                }
                return Err(eof("a message"));
            }
        }
    }

    /// Queues `msg` and flushes all output.
    ///
    /// Errors: [`RtmpError::Io`].
    pub async fn write_message(&mut self, msg: &RawMessage) -> Result<(), RtmpError> {
        self.conn.send(msg);
        self.flush().await
    }

    /// Writes all queued output to the stream and flushes it. Progress is
    /// kept in the output buffer, so a cancelled flush can be resumed.
    ///
    /// Errors: [`RtmpError::Io`] (`WriteZero` if the stream accepts no
    /// bytes).
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        let out = self.conn.output_buffer();
        while !out.is_empty() {
            let n = self.stream.write(out).await?;
            if n == 0 {
                return Err(RtmpError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            out.advance(n);
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// The sans-IO connection state (to queue messages, read counters).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream and connection state (with any buffered input
    /// and unsent output).
    pub fn into_parts(self) -> (S, Connection) {
        (self.stream, self.conn)
    }

    fn queue_command(&mut self, csid: u32, msid: u32, cmd: Command) {
        self.conn
            .send_message(csid, 0, msid, &Message::Command(cmd));
    }
}

/// The result of [`accept_session`]: everything the client said up to its
/// `publish` or `play`.
#[derive(Debug, Clone)]
pub struct ServerRequest {
    /// [`Direction::Publish`] when the client sent `publish`, [`Direction::Play`] for `play`.
    pub kind: Direction,
    /// app/tcUrl/objectEncoding from `connect`.
    pub connect: ConnectParams,
    /// The full `connect` command object.
    pub connect_object: Amf0Value,
    /// Stream name as the client sent it, including any `?query`.
    pub stream_name: String,
    /// Publish type (2nd string argument, e.g. "live"); `None` for play.
    pub publish_type: Option<String>,
    /// Message stream id the publish/play arrived on (the last stream we
    /// created if the client used 0).
    pub msid: u32,
    /// Transaction id of the publish/play command.
    pub transaction_id: f64,
    /// Chunk stream the publish/play arrived on.
    pub csid: u32,
}

/// Parses a command message, or `None` for other message types.
fn as_command(raw: &RawMessage) -> Result<Option<Command>, RtmpError> {
    if raw.type_id != type_id::COMMAND_AMF0 && raw.type_id != type_id::COMMAND_AMF3 {
        return Ok(None);
    }
    match Message::parse(raw)? {
        Message::Command(cmd) => Ok(Some(cmd)),
        _ => Ok(None),
    }
}

/// Server side of a live session (RTMP spec 7.2), under `timeout` as a
/// whole: answers `connect` (WindowAckSize 2500000, SetPeerBandwidth
/// 2500000 dynamic, SetChunkSize 60000, `_result`, `onBWDone`),
/// `createStream` (`_result` with msid 1, 2, ...), `releaseStream` and
/// `FCPublish` (`_result` when tid != 0); ignores other commands, user
/// control and data messages; returns at `publish` or `play`. The caller
/// sends the onStatus replies.
///
/// Errors: [`RtmpError::Timeout`], [`RtmpError::Protocol`] (first message
/// not `connect`, EOF before publish/play, empty stream name), and the
/// errors of [`RtmpStream::read_message`] and [`ConnectParams::from_command`].
pub async fn accept_session<S: AsyncRead + AsyncWrite + Unpin>(
    rtmp: &mut RtmpStream<S>,
    timeout: Duration,
) -> Result<ServerRequest, RtmpError> {
    tokio::time::timeout(timeout, serve_session(rtmp))
        .await
        .map_err(|_| RtmpError::Timeout("connect and publish/play from client"))?
}

async fn serve_session<S: AsyncRead + AsyncWrite + Unpin>(
    rtmp: &mut RtmpStream<S>,
) -> Result<ServerRequest, RtmpError> {
    let mut connected: Option<(ConnectParams, Amf0Value)> = None;
    let mut next_msid = 1u32;
    loop {
        let Some(raw) = rtmp.read_message().await? else {
            return Err(RtmpError::Protocol(
                "client closed before publish/play".into(),
            ));
        };
        let cmd = as_command(&raw)?;
        let Some((params, object)) = &connected else {
            let cmd = cmd.filter(|c| c.name == "connect").ok_or_else(|| {
                RtmpError::Protocol(format!(
                    "expected connect, got message type {}",
                    raw.type_id
                ))
            })?;
            let params = ConnectParams::from_command(&cmd)?;
            let conn = rtmp.connection();
            conn.set_window_ack_size(SERVER_WINDOW);
            conn.send_message(
                csid::PROTOCOL_CONTROL,
                0,
                0,
                &Message::SetPeerBandwidth {
                    size: SERVER_WINDOW,
                    limit_type: LIMIT_DYNAMIC,
                },
            );
            conn.set_chunk_size(SESSION_CHUNK_SIZE);
            rtmp.queue_command(
                csid::OVER_CONNECTION,
                0,
                Command::connect_result(cmd.transaction_id),
            );
            rtmp.queue_command(
                csid::OVER_CONNECTION,
                0,
                Command {
                    name: "onBWDone".into(),
                    transaction_id: 0.0,
                    object: Amf0Value::Null,
                    args: vec![],
                },
            );
            rtmp.flush().await?;
            connected = Some((params, cmd.object));
            continue;
        };
        let Some(cmd) = cmd else {
            continue;
        };
        let tid = cmd.transaction_id;
        let kind = match cmd.name.as_str() {
            "createStream" => {
                rtmp.queue_command(
                    csid::OVER_CONNECTION,
                    0,
                    Command::create_stream_result(tid, next_msid),
                );
                next_msid = next_msid.saturating_add(1);
                rtmp.flush().await?;
                continue;
            }
            "releaseStream" | "FCPublish" => {
                if tid != 0.0 {
                    let reply = Command::result(tid, Amf0Value::Null, vec![Amf0Value::Undefined]);
                    rtmp.queue_command(csid::OVER_CONNECTION, 0, reply);
                    rtmp.flush().await?;
                }
                continue;
            }
            "publish" => Direction::Publish,
            "play" => Direction::Play,
            other => {
                tracing::debug!(command = other, "ignoring command during session setup");
                continue;
            }
        };
        let stream_name = cmd.stream_name().unwrap_or_default().to_owned();
        if stream_name.is_empty() {
            return Err(RtmpError::Protocol(format!(
                "{} without a stream name",
                cmd.name
            )));
        }
        let publish_type = match kind {
            Direction::Publish => cmd
                .args
                .iter()
                .filter_map(Amf0Value::as_str)
                .nth(1)
                .map(str::to_owned),
            Direction::Play => None,
        };
        let msid = if raw.msid != 0 {
            raw.msid
        } else {
            next_msid.saturating_sub(1).max(1)
        };
        return Ok(ServerRequest {
            kind,
            connect: params.clone(),
            connect_object: object.clone(),
            stream_name,
            publish_type,
            msid,
            transaction_id: tid,
            csid: raw.csid,
        });
    }
}

/// Client side of a live session (RTMP spec 7.2), under `timeout` as a
/// whole, as ffmpeg/OBS do it: SetChunkSize 60000 and `connect` (tid 1),
/// wait for its `_result`; for publish `releaseStream` (tid 2) and
/// `FCPublish` (tid 3) without waiting; `createStream` (tid 4), wait for
/// its `_result`; then `publish(name, "live")` or `play(name)` plus
/// SetBufferLength 3000 ms on the new stream. Returns the message stream id
/// without waiting for onStatus (the caller relays it).
///
/// Errors: [`RtmpError::Timeout`], [`RtmpError::Rejected`] when the server
/// answers `_error` (or an error `onStatus`), [`RtmpError::Protocol`] for
/// EOF or a `createStream` result without a stream id, and the errors of
/// [`RtmpStream::read_message`].
pub async fn open_session<S: AsyncRead + AsyncWrite + Unpin>(
    rtmp: &mut RtmpStream<S>,
    tc_url: &str,
    app: &str,
    stream_name: &str,
    kind: Direction,
    timeout: Duration,
) -> Result<u32, RtmpError> {
    open_session_via(rtmp, tc_url, app, stream_name, kind, None, timeout).await
}

/// [`open_session`] whose `connect` command object carries `via` as its
/// [`VIA_PROPERTY`] when given: the proxies a relayed session passed
/// through, so one that comes back to a proxy is recognised. Servers ignore
/// connect properties they do not know (RTMP spec 7.2.1.1).
///
/// Errors: as [`open_session`].
pub async fn open_session_via<S: AsyncRead + AsyncWrite + Unpin>(
    rtmp: &mut RtmpStream<S>,
    tc_url: &str,
    app: &str,
    stream_name: &str,
    kind: Direction,
    via: Option<&str>,
    timeout: Duration,
) -> Result<u32, RtmpError> {
    let exchange = async {
        rtmp.connection().set_chunk_size(SESSION_CHUNK_SIZE);
        let mut connect = Command::connect(1.0, app, tc_url);
        if let (Some(via), Amf0Value::Object(props)) = (via, &mut connect.object) {
            props.push((VIA_PROPERTY.to_owned(), via.into()));
        }
        rtmp.queue_command(csid::OVER_CONNECTION, 0, connect);
        rtmp.flush().await?;
        wait_result(rtmp, 1.0, "connect").await?;

        if kind == Direction::Publish {
            rtmp.queue_command(
                csid::OVER_CONNECTION,
                0,
                Command::release_stream(2.0, stream_name),
            );
            rtmp.queue_command(
                csid::OVER_CONNECTION,
                0,
                Command::fc_publish(3.0, stream_name),
            );
        }
        rtmp.queue_command(csid::OVER_CONNECTION, 0, Command::create_stream(4.0));
        rtmp.flush().await?;
        let result = wait_result(rtmp, 4.0, "createStream").await?;
        let msid = result
            .args
            .iter()
            .find_map(Amf0Value::as_number)
            .filter(|n| (0.0..=f64::from(u32::MAX)).contains(n))
            .ok_or_else(|| RtmpError::Protocol("createStream result without a stream id".into()))?
            as u32;

        match kind {
            Direction::Publish => {
                rtmp.queue_command(
                    csid::OVER_STREAM,
                    msid,
                    Command::publish(5.0, stream_name, "live"),
                );
            }
            Direction::Play => {
                rtmp.queue_command(csid::OVER_STREAM, msid, Command::play(5.0, stream_name));
                rtmp.connection().send_message(
                    csid::PROTOCOL_CONTROL,
                    0,
                    0,
                    &Message::UserControl(UserControl::SetBufferLength {
                        msid,
                        ms: PLAY_BUFFER_MS,
                    }),
                );
            }
        }
        rtmp.flush().await?;
        Ok(msid)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| RtmpError::Timeout("connect/createStream result from server"))?
}

/// Reads until the `_result` for transaction `tid`, skipping everything
/// else; `_error` for `tid` or an error-level `onStatus` is a rejection.
async fn wait_result<S: AsyncRead + AsyncWrite + Unpin>(
    rtmp: &mut RtmpStream<S>,
    tid: f64,
    what: &str,
) -> Result<Command, RtmpError> {
    loop {
        let Some(raw) = rtmp.read_message().await? else {
            return Err(RtmpError::Protocol(format!(
                "server closed before answering {what}"
            )));
        };
        let Some(cmd) = as_command(&raw)? else {
            continue;
        };
        let is_error_status = cmd.name == "onStatus"
            && cmd
                .args
                .iter()
                .filter_map(|a| a.get("level"))
                .any(|l| l.as_str() == Some("error"));
        match cmd.name.as_str() {
            "_result" if cmd.transaction_id == tid => return Ok(cmd),
            "_error" if cmd.transaction_id == tid => {}
            _ if is_error_status => {}
            other => {
                tracing::debug!(command = other, "skipping while waiting for {what} result");
                continue;
            }
        }
        let (code, description) = cmd.info_code_description();
        return Err(RtmpError::Rejected { code, description });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    const T: Duration = Duration::from_secs(5);

    async fn pair() -> (RtmpStream<DuplexStream>, RtmpStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(RtmpStream::accept(a, Limits::default(), T));
        let client = RtmpStream::connect(b, Limits::default(), T).await.unwrap();
        (server.await.unwrap().unwrap(), client)
    }

    #[tokio::test]
    async fn publish_session() {
        let (mut server, mut client) = pair().await;
        let srv = tokio::spawn(async move {
            let req = accept_session(&mut server, T).await.unwrap();
            (server, req)
        });
        let msid = open_session(
            &mut client,
            "rtmp://h/live",
            "live",
            "cam?key=1",
            Direction::Publish,
            T,
        )
        .await
        .unwrap();
        let (mut server, req) = srv.await.unwrap();
        assert_eq!(msid, 1);
        assert_eq!(req.kind, Direction::Publish);
        assert_eq!(req.stream_name, "cam?key=1");
        assert_eq!(req.publish_type.as_deref(), Some("live"));
        assert_eq!(req.connect.app, "live");
        assert_eq!(req.connect.tc_url, "rtmp://h/live");
        assert_eq!(req.msid, 1);
        assert_eq!(req.transaction_id, 5.0);
        assert_eq!(req.csid, csid::OVER_STREAM);
        assert!(req.connect_object.get("flashVer").is_some());

        // Server replies onStatus; client sends media; both arrive.
        let status = Command::on_status("status", "NetStream.Publish.Start", "ok");
        let raw = Message::Command(status.clone()).to_raw(csid::OVER_STREAM, 0, req.msid);
        server.write_message(&raw).await.unwrap();
        let got = client.read_message().await.unwrap().unwrap();
        assert_eq!(Message::parse(&got).unwrap(), Message::Command(status));
        let video = Message::Video(vec![0x17; 100_000].into()).to_raw(csid::VIDEO, 40, msid);
        client.write_message(&video).await.unwrap();
        assert_eq!(server.read_message().await.unwrap(), Some(video));
        assert_eq!(server.connection().peer_chunk_size(), SESSION_CHUNK_SIZE);

        // Clean close at a message boundary.
        drop(client);
        assert_eq!(server.read_message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn play_session() {
        let (mut server, mut client) = pair().await;
        let srv =
            tokio::spawn(async move { accept_session(&mut server, T).await.map(|r| (server, r)) });
        let msid = open_session(
            &mut client,
            "rtmp://h/app",
            "app",
            "stream",
            Direction::Play,
            T,
        )
        .await
        .unwrap();
        let (mut server, req) = srv.await.unwrap().unwrap();
        assert_eq!(req.kind, Direction::Play);
        assert_eq!(req.stream_name, "stream");
        assert_eq!(req.publish_type, None);
        assert_eq!(req.msid, msid);
        // The SetBufferLength that followed play reaches the server app.
        let raw = server.read_message().await.unwrap().unwrap();
        assert_eq!(
            Message::parse(&raw).unwrap(),
            Message::UserControl(UserControl::SetBufferLength { msid, ms: 3000 })
        );
    }

    #[tokio::test]
    async fn rejected_connect() {
        let (mut server, mut client) = pair().await;
        let srv = tokio::spawn(async move {
            let raw = server.read_message().await.unwrap().unwrap();
            let Some(cmd) = as_command(&raw).unwrap() else {
                panic!("not a command")
            };
            let err = Command::error(cmd.transaction_id, "NetConnection.Connect.Rejected", "nope");
            server
                .connection()
                .send_message(3, 0, 0, &Message::Command(err));
            server.flush().await.unwrap();
            server
        });
        let err = open_session(
            &mut client,
            "rtmp://h/live",
            "live",
            "s",
            Direction::Publish,
            T,
        )
        .await
        .unwrap_err();
        let _server = srv.await.unwrap();
        assert!(
            matches!(&err, RtmpError::Rejected { code, description } if code == "NetConnection.Connect.Rejected" && description == "nope"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn protocol_errors_and_timeouts() {
        let (mut server, mut client) = pair().await;
        let play = Message::Command(Command::play(1.0, "x")).to_raw(3, 0, 0);
        client.write_message(&play).await.unwrap();
        assert!(matches!(
            accept_session(&mut server, T).await,
            Err(RtmpError::Protocol(_))
        ));

        let (mut server, _client) = pair().await;
        let err = accept_session(&mut server, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, RtmpError::Timeout(_)));

        let (a, _b) = tokio::io::duplex(1024);
        let err = RtmpStream::accept(a, Limits::default(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, RtmpError::Timeout("RTMP handshake")));

        // EOF inside a message is an error, not a clean close.
        let (mut server, mut client) = pair().await;
        let mut bytes = BytesMut::new();
        crate::chunk::ChunkEncoder::new().encode(
            &Message::Audio(vec![0; 300].into()).to_raw(7, 0, 1),
            &mut bytes,
        );
        client.stream.write_all(&bytes[..150]).await.unwrap();
        drop(client);
        let err = server.read_message().await.unwrap_err();
        assert!(matches!(err, RtmpError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn handshake_leftover_goes_to_connection() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(RtmpStream::accept(a, Limits::default(), T));
        let mut hs = ClientHandshake::new();
        b.write_all(&hs.take_output()).await.unwrap();
        let mut s = vec![0u8; 1 + 2 * crate::HANDSHAKE_SIZE];
        b.read_exact(&mut s).await.unwrap();
        assert_eq!(hs.feed(&s).unwrap(), s.len());
        assert!(hs.is_done());
        // C2 and the first chunk in one write.
        let mut out = hs.take_output().to_vec();
        let msg = Message::Audio(vec![1, 2, 3].into()).to_raw(7, 0, 1);
        let mut chunk = BytesMut::new();
        crate::chunk::ChunkEncoder::new().encode(&msg, &mut chunk);
        out.extend_from_slice(&chunk);
        b.write_all(&out).await.unwrap();
        let mut server = server.await.unwrap().unwrap();
        assert_eq!(server.read_message().await.unwrap(), Some(msg));
        let (_s, conn) = server.into_parts();
        assert_eq!(conn.bytes_received(), chunk.len() as u64);
    }
}
