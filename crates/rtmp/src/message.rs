//! RTMP message payloads: protocol control (RTMP spec 5.4), user control
//! (spec 6.2, 7.1.7), audio/video/data/command/aggregate (spec 7.1) and the
//! NetConnection/NetStream commands (spec 7.2).

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::RawMessage;
pub use crate::error::MessageError;

/// Message type ids (RTMP spec 5.4, 7.1).
pub mod type_id {
    /// Set Chunk Size (spec 5.4.1).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (spec 5.4.2).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (spec 5.4.3).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message (spec 6.2).
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (spec 5.4.4).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (spec 5.4.5).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (spec 7.1.4).
    pub const AUDIO: u8 = 8;
    /// Video data (spec 7.1.5).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 envelope (spec 7.1.2).
    pub const DATA_AMF3: u8 = 15;
    /// Command message, AMF3 envelope (spec 7.1.1).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 (spec 7.1.2).
    pub const DATA_AMF0: u8 = 18;
    /// Command message, AMF0 (spec 7.1.1).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (spec 7.1.6).
    pub const AGGREGATE: u8 = 22;
}

/// Conventional chunk stream ids, as used by FMS, SRS and ffmpeg.
pub mod csid {
    /// Protocol control and user control messages (RTMP spec 5.4, 6.2).
    pub const PROTOCOL_CONTROL: u32 = 2;
    /// NetConnection commands (connect, createStream, their results).
    pub const OVER_CONNECTION: u32 = 3;
    /// NetStream commands (publish, play, onStatus).
    pub const OVER_STREAM: u32 = 5;
    /// Video messages.
    pub const VIDEO: u32 = 6;
    /// Audio messages.
    pub const AUDIO: u32 = 7;
    /// Data messages (onMetaData); shares the stream-command chunk stream.
    pub const DATA: u32 = 5;
}

/// User control event ids (RTMP spec 7.1.7).
mod event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// A user control event (RTMP spec 6.2, 7.1.7); payload = event id (u16)
/// + event data.
#[derive(Debug, Clone, PartialEq)]
pub enum UserControl {
    /// Stream became functional; message stream id.
    StreamBegin(u32),
    /// Playback ended; message stream id.
    StreamEof(u32),
    /// No more data on the stream; message stream id.
    StreamDry(u32),
    /// Client's buffer length in milliseconds for a message stream.
    SetBufferLength {
        /// Message stream id.
        msid: u32,
        /// Buffer length in milliseconds.
        ms: u32,
    },
    /// The stream is a recorded stream; message stream id.
    StreamIsRecorded(u32),
    /// Server ping carrying its local time in milliseconds.
    PingRequest(u32),
    /// Answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// Any other event, with its raw data.
    Other {
        /// Event id.
        event: u16,
        /// Event data after the event id.
        data: Bytes,
    },
}

/// A parsed RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// New chunk size in bytes (spec 5.4.1).
    SetChunkSize(u32),
    /// Chunk stream id whose partial message to drop (spec 5.4.2).
    Abort(u32),
    /// Bytes received so far, mod 2^32 (spec 5.4.3).
    Acknowledgement(u32),
    /// User control event (spec 6.2).
    UserControl(UserControl),
    /// Acknowledgement window in bytes (spec 5.4.4).
    WindowAckSize(u32),
    /// Output bandwidth limit (spec 5.4.5); `limit_type` 0 hard, 1 soft,
    /// 2 dynamic.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type: 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
    /// Audio tag body (FLV AUDIODATA).
    Audio(Bytes),
    /// Video tag body (FLV VIDEODATA).
    Video(Bytes),
    /// Data message values, e.g. `["@setDataFrame", "onMetaData", {..}]`.
    Data(Vec<Amf0Value>),
    /// Command message (spec 7.1.1, 7.2).
    Command(Command),
    /// Aggregate message body (spec 7.1.6), left unparsed.
    Aggregate(Bytes),
    /// A message type this crate does not interpret.
    Unknown {
        /// Message type id.
        type_id: u8,
        /// Raw payload.
        payload: Bytes,
    },
}

fn read_u32(raw: &RawMessage, at: usize) -> Result<u32, MessageError> {
    raw.payload
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(MessageError::Truncated {
            type_id: raw.type_id,
            needed: at + 4,
            got: raw.payload.len(),
        })
}

impl UserControl {
    fn parse(raw: &RawMessage) -> Result<UserControl, MessageError> {
        let Some(id) = raw.payload.get(..2) else {
            return Err(MessageError::Truncated {
                type_id: raw.type_id,
                needed: 2,
                got: raw.payload.len(),
            });
        };
        let id = u16::from_be_bytes([id[0], id[1]]);
        Ok(match id {
            event::STREAM_BEGIN => UserControl::StreamBegin(read_u32(raw, 2)?),
            event::STREAM_EOF => UserControl::StreamEof(read_u32(raw, 2)?),
            event::STREAM_DRY => UserControl::StreamDry(read_u32(raw, 2)?),
            event::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
                msid: read_u32(raw, 2)?,
                ms: read_u32(raw, 6)?,
            },
            event::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(read_u32(raw, 2)?),
            event::PING_REQUEST => UserControl::PingRequest(read_u32(raw, 2)?),
            event::PING_RESPONSE => UserControl::PingResponse(read_u32(raw, 2)?),
            event => UserControl::Other {
                event,
                data: raw.payload.slice(2..),
            },
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        let (id, a, b) = match self {
            UserControl::StreamBegin(v) => (event::STREAM_BEGIN, *v, None),
            UserControl::StreamEof(v) => (event::STREAM_EOF, *v, None),
            UserControl::StreamDry(v) => (event::STREAM_DRY, *v, None),
            UserControl::SetBufferLength { msid, ms } => {
                (event::SET_BUFFER_LENGTH, *msid, Some(*ms))
            }
            UserControl::StreamIsRecorded(v) => (event::STREAM_IS_RECORDED, *v, None),
            UserControl::PingRequest(v) => (event::PING_REQUEST, *v, None),
            UserControl::PingResponse(v) => (event::PING_RESPONSE, *v, None),
            UserControl::Other { event, data } => {
                out.put_u16(*event);
                out.put_slice(data);
                return;
            }
        };
        out.put_u16(id);
        out.put_u32(a);
        if let Some(b) = b {
            out.put_u32(b);
        }
    }
}

impl Message {
    /// Parses a reassembled message by its type id.
    ///
    /// Types 15/17 (AMF3 envelopes) skip their leading format byte and are
    /// parsed as AMF0, so they come back as `Data`/`Command` (whose
    /// [`Message::type_id`] is the AMF0 one). Unknown types become
    /// `Unknown`.
    ///
    /// Errors: [`MessageError::Truncated`] for short control payloads,
    /// [`MessageError::Amf0`] / [`MessageError::InvalidCommand`] for bad
    /// data or command bodies.
    pub fn parse(raw: &RawMessage) -> Result<Message, MessageError> {
        let amf_body = |skip: usize| raw.payload.get(skip..).unwrap_or(&[]);
        Ok(match raw.type_id {
            type_id::SET_CHUNK_SIZE => Message::SetChunkSize(read_u32(raw, 0)?),
            type_id::ABORT => Message::Abort(read_u32(raw, 0)?),
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement(read_u32(raw, 0)?),
            type_id::USER_CONTROL => Message::UserControl(UserControl::parse(raw)?),
            type_id::WINDOW_ACK_SIZE => Message::WindowAckSize(read_u32(raw, 0)?),
            type_id::SET_PEER_BANDWIDTH => {
                let size = read_u32(raw, 0)?;
                let limit_type = *raw.payload.get(4).ok_or(MessageError::Truncated {
                    type_id: raw.type_id,
                    needed: 5,
                    got: raw.payload.len(),
                })?;
                Message::SetPeerBandwidth { size, limit_type }
            }
            type_id::AUDIO => Message::Audio(raw.payload.clone()),
            type_id::VIDEO => Message::Video(raw.payload.clone()),
            type_id::DATA_AMF0 => Message::Data(amf0::decode_all(amf_body(0))?),
            type_id::DATA_AMF3 => Message::Data(amf0::decode_all(amf_body(1))?),
            type_id::COMMAND_AMF0 => {
                Message::Command(Command::from_values(amf0::decode_all(amf_body(0))?)?)
            }
            type_id::COMMAND_AMF3 => {
                Message::Command(Command::from_values(amf0::decode_all(amf_body(1))?)?)
            }
            type_id::AGGREGATE => Message::Aggregate(raw.payload.clone()),
            other => Message::Unknown {
                type_id: other,
                payload: raw.payload.clone(),
            },
        })
    }

    /// The message type id this message is sent with (AMF0 ids for data
    /// and commands).
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Message::Abort(_) => type_id::ABORT,
            Message::Acknowledgement(_) => type_id::ACKNOWLEDGEMENT,
            Message::UserControl(_) => type_id::USER_CONTROL,
            Message::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Message::Audio(_) => type_id::AUDIO,
            Message::Video(_) => type_id::VIDEO,
            Message::Data(_) => type_id::DATA_AMF0,
            Message::Command(_) => type_id::COMMAND_AMF0,
            Message::Aggregate(_) => type_id::AGGREGATE,
            Message::Unknown { type_id, .. } => *type_id,
        }
    }

    /// Appends the payload bytes (no chunk header) to `out`.
    pub fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Message::SetChunkSize(v)
            | Message::Abort(v)
            | Message::Acknowledgement(v)
            | Message::WindowAckSize(v) => out.put_u32(*v),
            Message::UserControl(uc) => uc.encode(out),
            Message::SetPeerBandwidth { size, limit_type } => {
                out.put_u32(*size);
                out.put_u8(*limit_type);
            }
            Message::Audio(b) | Message::Video(b) | Message::Aggregate(b) => out.put_slice(b),
            Message::Unknown { payload, .. } => out.put_slice(payload),
            Message::Data(values) => amf0::encode_all(values, out),
            Message::Command(cmd) => amf0::encode_all(&cmd.to_values(), out),
        }
    }

    /// Builds the raw message for sending on chunk stream `csid` with
    /// `timestamp` (ms) on message stream `msid`.
    pub fn to_raw(&self, csid: u32, timestamp: u32, msid: u32) -> RawMessage {
        let mut out = BytesMut::new();
        self.encode_payload(&mut out);
        RawMessage {
            csid,
            timestamp,
            type_id: self.type_id(),
            msid,
            payload: out.freeze(),
        }
    }
}

/// A command message (RTMP spec 7.1.1): name, transaction id, command
/// object and optional arguments, each AMF0.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name, e.g. "connect", "_result", "onStatus".
    pub name: String,
    /// Transaction id; 0 when no answer is expected.
    pub transaction_id: f64,
    /// Command object (`Null` when the command has none).
    pub object: Amf0Value,
    /// Further arguments.
    pub args: Vec<Amf0Value>,
}

fn info(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", level.into()),
        ("code", code.into()),
        ("description", description.into()),
    ])
}

impl Command {
    /// Builds a command from decoded values `[name, tid, object, args...]`.
    /// A missing transaction id reads as 0 and a missing object as `Null`.
    ///
    /// Errors: [`MessageError::InvalidCommand`] if the first value is not a
    /// string or the second is present but not a number.
    pub fn from_values(values: Vec<Amf0Value>) -> Result<Command, MessageError> {
        let mut values = values.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(s)) | Some(Amf0Value::LongString(s)) => s,
            Some(other) => {
                return Err(MessageError::InvalidCommand(format!(
                    "command name is not a string: {other:?}"
                )))
            }
            None => return Err(MessageError::InvalidCommand("empty command".into())),
        };
        let transaction_id = match values.next() {
            Some(Amf0Value::Number(n)) => n,
            None => 0.0,
            Some(other) => {
                return Err(MessageError::InvalidCommand(format!(
                    "transaction id of {name} is not a number: {other:?}"
                )))
            }
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// The command as AMF0 values `[name, tid, object, args...]`.
    pub fn to_values(&self) -> Vec<Amf0Value> {
        let mut values = Vec::with_capacity(3 + self.args.len());
        values.push(Amf0Value::String(self.name.clone()));
        values.push(Amf0Value::Number(self.transaction_id));
        values.push(self.object.clone());
        values.extend(self.args.iter().cloned());
        values
    }

    /// The first string argument: the stream name of publish, play,
    /// releaseStream, FCPublish and FCUnpublish (RTMP spec 7.2.2).
    pub fn stream_name(&self) -> Option<&str> {
        self.args.iter().find_map(Amf0Value::as_str)
    }

    fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Command {
        Command {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// `connect` (RTMP spec 7.2.1.1) with the command object FMLE sends.
    pub fn connect(transaction_id: f64, app: &str, tc_url: &str) -> Command {
        let object = Amf0Value::object([
            ("app", app.into()),
            ("flashVer", "FMLE/3.0 (compatible; srs-proxy)".into()),
            ("tcUrl", tc_url.into()),
            ("fpad", false.into()),
            ("capabilities", 15.0.into()),
            ("audioCodecs", 3575.0.into()),
            ("videoCodecs", 252.0.into()),
            ("videoFunction", 1.0.into()),
            ("objectEncoding", 0.0.into()),
            ("type", "nonprivate".into()),
        ]);
        Command::new("connect", transaction_id, object, vec![])
    }

    /// `_result` for `connect` (RTMP spec 7.2.1.1): server properties and a
    /// `NetConnection.Connect.Success` info object, as SRS/FMS send it.
    pub fn connect_result(transaction_id: f64) -> Command {
        let properties = Amf0Value::object([
            ("fmsVer", "FMS/3,5,3,888".into()),
            ("capabilities", 127.0.into()),
            ("mode", 1.0.into()),
        ]);
        let info = Amf0Value::object([
            ("level", "status".into()),
            ("code", "NetConnection.Connect.Success".into()),
            ("description", "Connection succeeded.".into()),
            ("objectEncoding", 0.0.into()),
        ]);
        Command::new("_result", transaction_id, properties, vec![info])
    }

    /// `createStream` (RTMP spec 7.2.1.3).
    pub fn create_stream(transaction_id: f64) -> Command {
        Command::new("createStream", transaction_id, Amf0Value::Null, vec![])
    }

    /// `_result` for `createStream` carrying the new message stream id.
    pub fn create_stream_result(transaction_id: f64, msid: u32) -> Command {
        Command::result(
            transaction_id,
            Amf0Value::Null,
            vec![f64::from(msid).into()],
        )
    }

    /// `releaseStream` (FMLE/ffmpeg publish preamble).
    pub fn release_stream(transaction_id: f64, name: &str) -> Command {
        Command::new(
            "releaseStream",
            transaction_id,
            Amf0Value::Null,
            vec![name.into()],
        )
    }

    /// `FCPublish` (FMLE/ffmpeg publish preamble).
    pub fn fc_publish(transaction_id: f64, name: &str) -> Command {
        Command::new(
            "FCPublish",
            transaction_id,
            Amf0Value::Null,
            vec![name.into()],
        )
    }

    /// `FCUnpublish` (FMLE/ffmpeg, sent before deleteStream).
    pub fn fc_unpublish(transaction_id: f64, name: &str) -> Command {
        Command::new(
            "FCUnpublish",
            transaction_id,
            Amf0Value::Null,
            vec![name.into()],
        )
    }

    /// `publish` (RTMP spec 7.2.2.6); `kind` is "live", "record" or
    /// "append".
    pub fn publish(transaction_id: f64, name: &str, kind: &str) -> Command {
        Command::new(
            "publish",
            transaction_id,
            Amf0Value::Null,
            vec![name.into(), kind.into()],
        )
    }

    /// `play` (RTMP spec 7.2.2.1) with start -2000 ("live or recorded"),
    /// as ffmpeg sends it.
    pub fn play(transaction_id: f64, name: &str) -> Command {
        Command::new(
            "play",
            transaction_id,
            Amf0Value::Null,
            vec![name.into(), (-2000.0).into()],
        )
    }

    /// `deleteStream` (RTMP spec 7.2.2.3) for message stream `msid`.
    pub fn delete_stream(transaction_id: f64, msid: u32) -> Command {
        Command::new(
            "deleteStream",
            transaction_id,
            Amf0Value::Null,
            vec![f64::from(msid).into()],
        )
    }

    /// `_result` with the given command object and arguments.
    pub fn result(transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Command {
        Command::new("_result", transaction_id, object, args)
    }

    /// `_error` with an info object {level "error", code, description}.
    pub fn error(transaction_id: f64, code: &str, description: &str) -> Command {
        Command::new(
            "_error",
            transaction_id,
            Amf0Value::Null,
            vec![info("error", code, description)],
        )
    }

    /// `onStatus` (RTMP spec 7.2.2): tid 0, null object, info object
    /// {level, code, description}.
    pub fn on_status(level: &str, code: &str, description: &str) -> Command {
        Command::new(
            "onStatus",
            0.0,
            Amf0Value::Null,
            vec![info(level, code, description)],
        )
    }

    /// The info object's `code` and `description` of a `_error`/`onStatus`
    /// (first object argument); empty strings when absent.
    pub fn info_code_description(&self) -> (String, String) {
        let info = self
            .args
            .iter()
            .find(|v| matches!(v, Amf0Value::Object(_) | Amf0Value::EcmaArray(_)));
        let field = |key| {
            info.and_then(|i| i.get(key))
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (field("code"), field("description"))
    }
}

/// The parts of a `connect` command object a server needs (RTMP spec
/// 7.2.1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectParams {
    /// Application name, e.g. "live" (may carry a `?query`).
    pub app: String,
    /// Target URL, e.g. "rtmp://host:1935/live".
    pub tc_url: String,
    /// AMF encoding the client asked for: 0 (AMF0) or 3 (AMF3).
    pub object_encoding: f64,
}

impl ConnectParams {
    /// Extracts the parameters from a `connect` command. A missing `app` is
    /// derived from the path of `tcUrl` (everything after the host, without
    /// surrounding slashes); a missing `objectEncoding` reads as 0.
    ///
    /// Errors: [`MessageError::MissingField`]`("tcUrl")` when the object has
    /// no string `tcUrl`.
    pub fn from_command(cmd: &Command) -> Result<ConnectParams, MessageError> {
        let tc_url = cmd
            .object
            .get("tcUrl")
            .and_then(Amf0Value::as_str)
            .ok_or(MessageError::MissingField("tcUrl"))?
            .to_owned();
        let app = match cmd.object.get("app").and_then(Amf0Value::as_str) {
            Some(app) => app.to_owned(),
            None => app_from_tc_url(&tc_url),
        };
        let object_encoding = cmd
            .object
            .get("objectEncoding")
            .and_then(Amf0Value::as_number)
            .unwrap_or(0.0);
        Ok(ConnectParams {
            app,
            tc_url,
            object_encoding,
        })
    }
}

fn app_from_tc_url(tc_url: &str) -> String {
    let after_scheme = tc_url.split_once("://").map_or(tc_url, |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
    path.trim_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: &Message) -> Message {
        let raw = m.to_raw(3, 1234, 1);
        assert_eq!(raw.type_id, m.type_id());
        assert_eq!((raw.csid, raw.timestamp, raw.msid), (3, 1234, 1));
        Message::parse(&raw).unwrap()
    }

    #[test]
    fn every_variant_roundtrips() {
        let messages = vec![
            Message::SetChunkSize(60000),
            Message::Abort(6),
            Message::Acknowledgement(0xFFFF_FFFF),
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2,
            },
            Message::UserControl(UserControl::StreamBegin(1)),
            Message::UserControl(UserControl::StreamEof(1)),
            Message::UserControl(UserControl::StreamDry(1)),
            Message::UserControl(UserControl::SetBufferLength { msid: 1, ms: 3000 }),
            Message::UserControl(UserControl::StreamIsRecorded(1)),
            Message::UserControl(UserControl::PingRequest(42)),
            Message::UserControl(UserControl::PingResponse(42)),
            Message::UserControl(UserControl::Other {
                event: 0x1F,
                data: Bytes::from_static(&[0, 0, 0, 1]),
            }),
            Message::Audio(Bytes::from_static(&[0xAF, 1, 2])),
            Message::Video(Bytes::from_static(&[0x17, 1, 0, 0, 0])),
            Message::Data(vec![
                "@setDataFrame".into(),
                "onMetaData".into(),
                Amf0Value::EcmaArray(vec![("width".into(), 1920.0.into())]),
            ]),
            Message::Command(Command::connect(1.0, "live", "rtmp://h/live")),
            Message::Command(Command::connect_result(1.0)),
            Message::Command(Command::create_stream(4.0)),
            Message::Command(Command::create_stream_result(4.0, 1)),
            Message::Command(Command::release_stream(2.0, "s")),
            Message::Command(Command::fc_publish(3.0, "s")),
            Message::Command(Command::fc_unpublish(6.0, "s")),
            Message::Command(Command::publish(5.0, "s?k=v", "live")),
            Message::Command(Command::play(5.0, "s")),
            Message::Command(Command::delete_stream(7.0, 1)),
            Message::Command(Command::result(
                2.0,
                Amf0Value::Null,
                vec![Amf0Value::Undefined],
            )),
            Message::Command(Command::error(1.0, "NetConnection.Connect.Rejected", "no")),
            Message::Command(Command::on_status(
                "status",
                "NetStream.Publish.Start",
                "ok",
            )),
            Message::Aggregate(Bytes::from_static(&[9, 0, 0, 1])),
            Message::Unknown {
                type_id: 99,
                payload: Bytes::from_static(b"xyz"),
            },
        ];
        for m in &messages {
            assert_eq!(&roundtrip(m), m);
        }
    }

    #[test]
    fn amf3_envelopes() {
        let cmd = Command::create_stream(2.0);
        let mut payload = BytesMut::from(&[0u8][..]);
        amf0::encode_all(&cmd.to_values(), &mut payload);
        let raw = RawMessage {
            csid: 3,
            timestamp: 0,
            type_id: type_id::COMMAND_AMF3,
            msid: 0,
            payload: payload.freeze(),
        };
        assert_eq!(Message::parse(&raw).unwrap(), Message::Command(cmd));
        let raw = RawMessage {
            type_id: type_id::DATA_AMF3,
            payload: Bytes::from_static(&[0, 5]),
            ..raw
        };
        assert_eq!(
            Message::parse(&raw).unwrap(),
            Message::Data(vec![Amf0Value::Null])
        );
    }

    #[test]
    fn parse_errors() {
        let raw = |type_id, payload: &'static [u8]| RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            msid: 0,
            payload: Bytes::from_static(payload),
        };
        assert!(matches!(
            Message::parse(&raw(type_id::SET_CHUNK_SIZE, &[0, 0])),
            Err(MessageError::Truncated {
                needed: 4,
                got: 2,
                ..
            })
        ));
        assert!(Message::parse(&raw(type_id::SET_PEER_BANDWIDTH, &[0, 0, 0, 1])).is_err());
        assert!(Message::parse(&raw(type_id::USER_CONTROL, &[0])).is_err());
        assert!(Message::parse(&raw(type_id::USER_CONTROL, &[0, 3, 0, 0, 0, 1])).is_err());
        assert!(matches!(
            Message::parse(&raw(type_id::COMMAND_AMF0, &[0, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(MessageError::InvalidCommand(_))
        ));
        assert!(Message::parse(&raw(type_id::COMMAND_AMF0, &[])).is_err());
        assert!(matches!(
            Message::parse(&raw(type_id::DATA_AMF0, &[0x02, 0, 5])),
            Err(MessageError::Amf0(_))
        ));
    }

    #[test]
    fn command_helpers() {
        let cmd = Command::from_values(vec!["publish".into()]).unwrap();
        assert_eq!(cmd.transaction_id, 0.0);
        assert_eq!(cmd.object, Amf0Value::Null);
        assert!(cmd.stream_name().is_none());
        assert_eq!(
            Command::publish(5.0, "cam", "live").stream_name(),
            Some("cam")
        );
        assert!(Command::from_values(vec!["x".into(), "y".into()]).is_err());
        let (code, desc) = Command::error(1.0, "C", "D").info_code_description();
        assert_eq!((code.as_str(), desc.as_str()), ("C", "D"));
        let connect = Command::connect(1.0, "live", "rtmp://h/live");
        assert_eq!(
            connect.object.get("capabilities"),
            Some(&Amf0Value::Number(15.0))
        );
        assert_eq!(
            connect.object.get("type").and_then(Amf0Value::as_str),
            Some("nonprivate")
        );
    }

    #[test]
    fn connect_params() {
        let cmd = Command::connect(1.0, "live", "rtmp://h:1935/live");
        let p = ConnectParams::from_command(&cmd).unwrap();
        assert_eq!(p.app, "live");
        assert_eq!(p.tc_url, "rtmp://h:1935/live");
        assert_eq!(p.object_encoding, 0.0);

        let no_app = Command::new(
            "connect",
            1.0,
            Amf0Value::object([
                ("tcUrl", "rtmp://h/a/b/".into()),
                ("objectEncoding", 3.0.into()),
            ]),
            vec![],
        );
        let p = ConnectParams::from_command(&no_app).unwrap();
        assert_eq!(p.app, "a/b");
        assert_eq!(p.object_encoding, 3.0);

        let no_tc = Command::new(
            "connect",
            1.0,
            Amf0Value::object([("app", "x".into())]),
            vec![],
        );
        assert_eq!(
            ConnectParams::from_command(&no_tc),
            Err(MessageError::MissingField("tcUrl"))
        );
        assert_eq!(app_from_tc_url("rtmp://host"), "");
        assert_eq!(app_from_tc_url("rtmp://host/live?vhost=v"), "live?vhost=v");
    }
}
