//! Sans-IO per-hop state of one RTMP connection after the handshake: chunk
//! (de)multiplexing plus the protocol control messages of RTMP spec 5.4 and
//! the ping events of spec 7.1.7.

use bytes::BytesMut;

use crate::chunk::{ChunkDecoder, ChunkEncoder, Limits, RawMessage, MAX_MESSAGE_LENGTH};
use crate::error::RtmpError;
use crate::message::{csid, type_id, Message, UserControl};

/// One RTMP connection's chunk streams and flow-control state.
///
/// The caller appends received bytes to [`Connection::input_buffer`], takes
/// messages from [`Connection::poll_message`], and writes
/// [`Connection::output_buffer`] to the socket. Control messages are
/// answered here and never returned.
#[derive(Debug)]
pub struct Connection {
    pub(crate) decoder: ChunkDecoder,
    pub(crate) encoder: ChunkEncoder,
    pub(crate) input: BytesMut,
    pub(crate) output: BytesMut,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    /// The output ends inside a chunk whose payload a cut-through relay is
    /// still streaming (`crate::cut`); messages queued meanwhile wait in
    /// `deferred` and follow at the chunk's end.
    pub(crate) mid_chunk: bool,
    deferred: BytesMut,
    /// The peer's acknowledgement window (its WindowAckSize), bytes.
    peer_window: Option<u32>,
    /// `bytes_received` when we last sent an Acknowledgement.
    last_ack_sent_at: u64,
    /// The window we last announced with WindowAckSize, bytes.
    our_window: Option<u32>,
    /// The sequence number of the peer's last Acknowledgement.
    peer_acked: Option<u32>,
}

impl Connection {
    /// A connection with chunk size 128 both ways whose decoder enforces
    /// `limits`.
    pub fn new(limits: Limits) -> Self {
        Connection {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            bytes_received: 0,
            bytes_sent: 0,
            mid_chunk: false,
            deferred: BytesMut::new(),
            peer_window: None,
            last_ack_sent_at: 0,
            our_window: None,
            peer_acked: None,
        }
    }

    /// Replaces the decoder's limits (see [`ChunkDecoder::set_limits`]):
    /// tight ones while a session is being set up, the full ones after.
    pub fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    /// Buffer the caller appends bytes read from the socket to.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Returns the next non-control message from the input buffer, or
    /// `Ok(None)` if more bytes are needed.
    ///
    /// Handled here and not returned: SetChunkSize (applied to the
    /// decoder), Abort, Acknowledgement, WindowAckSize (we then acknowledge
    /// every window of received bytes, spec 5.4.3), SetPeerBandwidth
    /// (answered with WindowAckSize when it differs from what we announced,
    /// spec 5.4.5), PingRequest (answered with PingResponse) and
    /// PingResponse. Answers are queued in the output buffer.
    ///
    /// Errors: [`RtmpError::Chunk`] for a malformed chunk stream or an
    /// invalid chunk size, [`RtmpError::Message`] for a malformed control
    /// message. The connection is unusable afterwards.
    pub fn poll_message(&mut self) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            let before = self.input.len();
            let decoded = self.decoder.decode(&mut self.input);
            self.bytes_received += (before - self.input.len()) as u64;
            self.maybe_acknowledge();
            let Some(raw) = decoded? else {
                return Ok(None);
            };
            if !self.handle_control(&raw)? {
                return Ok(Some(raw));
            }
        }
    }

    /// Queues an Acknowledgement once the bytes received since the last one
    /// reach the peer's window.
    pub(crate) fn maybe_acknowledge(&mut self) {
        let Some(window) = self.peer_window.filter(|&w| w > 0) else {
            return;
        };
        if self.bytes_received - self.last_ack_sent_at >= u64::from(window) {
            self.last_ack_sent_at = self.bytes_received;
            // The sequence number wraps at 2^32 (spec 5.4.3).
            let sequence = self.bytes_received as u32;
            self.send_control(&Message::Acknowledgement(sequence));
        }
    }

    /// Handles a protocol control or ping message; false for anything else.
    pub(crate) fn handle_control(&mut self, raw: &RawMessage) -> Result<bool, RtmpError> {
        match raw.type_id {
            type_id::SET_CHUNK_SIZE
            | type_id::ABORT
            | type_id::ACKNOWLEDGEMENT
            | type_id::WINDOW_ACK_SIZE
            | type_id::SET_PEER_BANDWIDTH
            | type_id::USER_CONTROL => {}
            _ => return Ok(false),
        }
        match Message::parse(raw)? {
            Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            Message::Abort(id) => self.decoder.abort(id),
            Message::Acknowledgement(sequence) => self.peer_acked = Some(sequence),
            Message::WindowAckSize(size) => self.peer_window = Some(size),
            Message::SetPeerBandwidth { size, .. } => {
                if self.our_window != Some(size) {
                    self.set_window_ack_size(size);
                }
            }
            Message::UserControl(UserControl::PingRequest(ts)) => {
                self.send_control(&Message::UserControl(UserControl::PingResponse(ts)));
            }
            Message::UserControl(UserControl::PingResponse(_)) => {}
            // Stream events (StreamBegin, SetBufferLength, ...) go to the caller.
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn send_control(&mut self, msg: &Message) {
        self.send_message(csid::PROTOCOL_CONTROL, 0, 0, msg);
    }

    /// Encodes `msg` as chunks into the output buffer (after the chunk a
    /// cut-through relay is streaming, if any).
    pub fn send(&mut self, msg: &RawMessage) {
        let out = if self.mid_chunk {
            &mut self.deferred
        } else {
            &mut self.output
        };
        let before = out.len();
        self.encoder.encode(msg, out);
        self.bytes_sent += (out.len() - before) as u64;
    }

    /// The streamed chunk is complete: what was queued meanwhile follows it.
    pub(crate) fn end_chunk(&mut self) {
        self.mid_chunk = false;
        if !self.deferred.is_empty() {
            self.output.extend_from_slice(&self.deferred);
            self.deferred.clear();
        }
    }

    /// Encodes `msg` with the given chunk stream, timestamp (ms) and message
    /// stream id into the output buffer.
    pub fn send_message(&mut self, csid: u32, timestamp: u32, msid: u32, msg: &Message) {
        self.send(&msg.to_raw(csid, timestamp, msid));
    }

    /// Queues SetChunkSize (spec 5.4.1) and uses `size` for every message
    /// queued after it. `size` is clamped to 1..=0xFFFFFF bytes.
    pub fn set_chunk_size(&mut self, size: u32) {
        let size = size.clamp(1, MAX_MESSAGE_LENGTH);
        self.send_control(&Message::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    /// Queues WindowAckSize (spec 5.4.4) announcing `size` bytes as the
    /// window after which the peer should acknowledge.
    pub fn set_window_ack_size(&mut self, size: u32) {
        self.our_window = Some(size);
        self.send_control(&Message::WindowAckSize(size));
    }

    /// Bytes waiting to be written; the caller writes them and advances
    /// the buffer.
    pub fn output_buffer(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    /// True if the output buffer is not empty.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Bytes waiting in the output buffer.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Bytes received and not yet consumed by the chunk decoder.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// Bytes the input buffer has room for without growing.
    pub fn input_capacity(&self) -> usize {
        self.input.capacity()
    }

    /// Releases the input buffer's memory if it holds no bytes (a leg that
    /// only carries occasional control traffic need not keep a reservation).
    pub fn release_idle_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
    }

    /// Releases the output buffers' memory if they hold no bytes.
    pub fn release_idle_output(&mut self) {
        if self.output.is_empty() && self.output.capacity() > 0 {
            self.output = BytesMut::new();
        }
        if self.deferred.is_empty() && self.deferred.capacity() > 0 {
            self.deferred = BytesMut::new();
        }
    }

    /// Bytes consumed by the chunk decoder so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes queued to the output buffer so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Sequence number of the peer's last Acknowledgement, if any.
    pub fn peer_acknowledged(&self) -> Option<u32> {
        self.peer_acked
    }

    /// The peer's acknowledgement window in bytes, if it announced one.
    pub fn peer_window_ack_size(&self) -> Option<u32> {
        self.peer_window
    }

    /// The chunk size the peer currently uses, in bytes.
    pub fn peer_chunk_size(&self) -> u32 {
        self.decoder.chunk_size()
    }

    /// The chunk size we currently send with, in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.encoder.chunk_size()
    }

    /// True if no partial message is buffered: input ends on a message
    /// boundary (a clean place for the peer to close).
    pub fn at_message_boundary(&self) -> bool {
        self.input.is_empty() && !self.decoder.has_partial_message()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkDecoder;

    fn peer_bytes(messages: &[RawMessage]) -> BytesMut {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for m in messages {
            enc.encode(m, &mut out);
        }
        out
    }

    fn control(msg: Message) -> RawMessage {
        msg.to_raw(2, 0, 0)
    }

    fn read_output(conn: &mut Connection, dec: &mut ChunkDecoder) -> Vec<Message> {
        let mut buf = conn.output_buffer().split();
        let mut got = vec![];
        while let Some(raw) = dec.decode(&mut buf).unwrap() {
            let msg = Message::parse(&raw).unwrap();
            if let Message::SetChunkSize(size) = msg {
                dec.set_chunk_size(size).unwrap();
            }
            got.push(msg);
        }
        got
    }

    fn audio(ts: u32, len: usize) -> RawMessage {
        Message::Audio(vec![0xAF; len].into()).to_raw(7, ts, 1)
    }

    #[test]
    fn acknowledges_each_window() {
        let mut conn = Connection::new(Limits::default());
        let mut peer_dec = ChunkDecoder::new(Limits::default());
        let mut messages = vec![control(Message::WindowAckSize(1000))];
        messages.extend((0..10).map(|i| audio(i * 20, 100)));
        let bytes = peer_bytes(&messages);
        let total = bytes.len() as u64;
        conn.input_buffer().extend_from_slice(&bytes);
        let mut audio_count = 0;
        while let Some(raw) = conn.poll_message().unwrap() {
            assert_eq!(raw.type_id, type_id::AUDIO);
            audio_count += 1;
        }
        assert_eq!(audio_count, 10);
        assert_eq!(conn.bytes_received(), total);
        assert_eq!(conn.peer_window_ack_size(), Some(1000));
        let acks: Vec<Message> = read_output(&mut conn, &mut peer_dec);
        // 1000-byte window over ~1100 bytes: exactly one ack, sent once the
        // window was reached, carrying the byte count at that point.
        assert_eq!(acks.len(), 1);
        let Message::Acknowledgement(seq) = acks[0] else {
            panic!("expected ack, got {acks:?}");
        };
        assert!((1000..=total as u32).contains(&seq));
        assert!(conn.has_output() || conn.bytes_sent() > 0);
    }

    #[test]
    fn answers_ping_and_peer_bandwidth() {
        let mut conn = Connection::new(Limits::default());
        let mut peer_dec = ChunkDecoder::new(Limits::default());
        conn.set_window_ack_size(2_500_000);
        let bytes = peer_bytes(&[
            control(Message::UserControl(UserControl::PingRequest(777))),
            control(Message::UserControl(UserControl::PingResponse(1))),
            control(Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2,
            }),
            control(Message::SetPeerBandwidth {
                size: 5_000_000,
                limit_type: 2,
            }),
            control(Message::Acknowledgement(12)),
            control(Message::UserControl(UserControl::StreamBegin(1))),
        ]);
        conn.input_buffer().extend_from_slice(&bytes);
        let raw = conn.poll_message().unwrap().unwrap();
        assert_eq!(
            Message::parse(&raw).unwrap(),
            Message::UserControl(UserControl::StreamBegin(1))
        );
        assert!(conn.poll_message().unwrap().is_none());
        assert_eq!(conn.peer_acknowledged(), Some(12));
        assert_eq!(
            read_output(&mut conn, &mut peer_dec),
            vec![
                Message::WindowAckSize(2_500_000),
                Message::UserControl(UserControl::PingResponse(777)),
                Message::WindowAckSize(5_000_000),
            ]
        );
    }

    #[test]
    fn set_chunk_size_both_ways() {
        let mut conn = Connection::new(Limits::default());
        // Peer switches to 4096 and then sends a 5000-byte message.
        let mut enc = ChunkEncoder::new();
        let mut bytes = BytesMut::new();
        enc.encode(&control(Message::SetChunkSize(4096)), &mut bytes);
        enc.set_chunk_size(4096);
        let big = audio(0, 5000);
        enc.encode(&big, &mut bytes);
        conn.input_buffer().extend_from_slice(&bytes);
        assert_eq!(conn.poll_message().unwrap(), Some(big.clone()));
        assert_eq!(conn.peer_chunk_size(), 4096);

        // Our side: SetChunkSize goes out before the re-chunked message.
        conn.set_chunk_size(60000);
        assert_eq!(conn.chunk_size(), 60000);
        conn.send(&big);
        let sent = conn.bytes_sent();
        let mut peer_dec = ChunkDecoder::new(Limits::default());
        let got = read_output(&mut conn, &mut peer_dec);
        assert_eq!(
            got,
            vec![Message::SetChunkSize(60000), Message::parse(&big).unwrap()]
        );
        assert_eq!(sent, 16 + 12 + 5000);

        // An invalid chunk size from the peer is an error.
        let bytes = peer_bytes(&[control(Message::SetChunkSize(0))]);
        conn.input_buffer().extend_from_slice(&bytes);
        assert!(matches!(conn.poll_message(), Err(RtmpError::Chunk(_))));
    }

    #[test]
    fn abort_and_message_boundary() {
        let mut conn = Connection::new(Limits::default());
        assert!(conn.at_message_boundary());
        let bytes = peer_bytes(&[audio(0, 300)]);
        conn.input_buffer().extend_from_slice(&bytes[..140]);
        assert!(conn.poll_message().unwrap().is_none());
        assert!(!conn.at_message_boundary());
        let abort = peer_bytes(&[control(Message::Abort(7))]);
        conn.input_buffer().extend_from_slice(&abort);
        assert!(conn.poll_message().unwrap().is_none());
        assert!(conn.at_message_boundary());
    }
}
