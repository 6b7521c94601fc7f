//! Error types: [`RtmpError`] for the whole crate plus one enum per module.

/// Any failure of an RTMP connection, from I/O up to the command exchange.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The underlying socket failed, or closed in the middle of a message
    /// or handshake (`UnexpectedEof`).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A deadline passed; the string names what we were waiting for.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The handshake (RTMP spec 5.2) failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream (RTMP spec 5.3) was malformed or exceeded a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message payload (RTMP spec 5.4, 6.2, 7.1) could not be parsed.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// An AMF0 value could not be decoded.
    #[error("amf0: {0}")]
    Amf0(#[from] Amf0Error),
    /// The peer broke the command exchange (e.g. `publish` before `connect`).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer answered a command with `_error` (or an error `onStatus`);
    /// `code` and `description` come from its info object.
    #[error("rejected by peer: {code}: {description}")]
    Rejected {
        /// Status code, e.g. `NetConnection.Connect.Rejected`.
        code: String,
        /// Human-readable description sent by the peer.
        description: String,
    },
}

/// Errors of the AMF0 decoder (AMF0 spec, Adobe 2006).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// Input ended inside a value; `what` names the field being read.
    #[error("truncated input while reading {what}")]
    Truncated {
        /// The field being read, e.g. "number" or "string body".
        what: &'static str,
    },
    /// A marker that AMF0 defines but this decoder deliberately rejects
    /// (reference, movieclip, recordset, XML document, typed object, AVM+).
    #[error("unsupported AMF0 marker 0x{marker:02x} ({name})")]
    UnsupportedMarker {
        /// The marker byte (AMF0 spec 2.1).
        marker: u8,
        /// The marker's name in the spec.
        name: &'static str,
    },
    /// A byte that is not an AMF0 type marker, or an object-end marker
    /// outside an object.
    #[error("invalid AMF0 marker 0x{0:02x}")]
    InvalidMarker(u8),
    /// Objects/arrays nested deeper than the limit (32).
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    /// More values in one decode call than the limit allows.
    #[error("more than {0} AMF0 values")]
    TooManyElements(usize),
}

/// Errors of the handshake state machines (RTMP spec 5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0/S0 carried a version other than 3 (RTMP spec 5.2.2).
    #[error("unsupported RTMP version {0}")]
    UnsupportedVersion(u8),
}

/// Errors of the chunk stream decoder (RTMP spec 5.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A type 1/2/3 chunk arrived on a chunk stream with no prior type 0
    /// chunk, so its header cannot be completed (RTMP spec 5.3.1.2).
    #[error("chunk fmt {fmt} on unknown chunk stream {csid}")]
    UnknownChunkStream {
        /// Chunk stream id.
        csid: u32,
        /// Chunk header format (1, 2 or 3).
        fmt: u8,
    },
    /// The peer opened more chunk streams than `Limits::max_chunk_streams`.
    #[error("more than {limit} chunk streams")]
    TooManyChunkStreams {
        /// The configured limit.
        limit: usize,
    },
    /// A message header declared a length above `Limits::max_message_size`.
    #[error("message of {size} bytes exceeds limit {limit}")]
    MessageTooLarge {
        /// Declared message length in bytes.
        size: u32,
        /// The configured limit in bytes.
        limit: u32,
    },
    /// Partially received messages across all chunk streams exceed the
    /// buffering bound (twice `Limits::max_message_size`).
    #[error("{buffered} bytes of partial messages exceed limit {limit}")]
    BufferedTooMuch {
        /// Bytes that would be buffered.
        buffered: usize,
        /// The bound in bytes.
        limit: usize,
    },
    /// A chunk size of 0, with the reserved top bit set, or above
    /// `Limits::max_chunk_size` (RTMP spec 5.4.1).
    #[error("invalid chunk size {size} (allowed 1..={limit})")]
    InvalidChunkSize {
        /// The requested chunk size in bytes.
        size: u32,
        /// The configured maximum in bytes.
        limit: u32,
    },
}

/// Errors parsing a message payload (RTMP spec 5.4, 6.2, 7.1, 7.2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// The payload is shorter than the message type requires.
    #[error("message type {type_id} needs {needed} bytes, got {got}")]
    Truncated {
        /// RTMP message type id.
        type_id: u8,
        /// Minimum payload length in bytes.
        needed: usize,
        /// Actual payload length in bytes.
        got: usize,
    },
    /// The AMF0 body of a data or command message is malformed.
    #[error("amf0: {0}")]
    Amf0(#[from] Amf0Error),
    /// A command message is malformed (e.g. no name, or a non-number
    /// transaction id).
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// A required field is missing from a command object.
    #[error("missing field {0}")]
    MissingField(&'static str),
}

/// Errors of the FLV reader (FLV spec v10.1, Annex E).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The file does not start with the "FLV" signature (Annex E.2).
    #[error("not an FLV stream (bad signature)")]
    BadSignature,
    /// The header's DataOffset is below 9 or above the reader's bound.
    #[error("invalid FLV header size {0}")]
    BadHeaderSize(u32),
    /// A tag's DataSize exceeds the reader's bound.
    #[error("FLV tag of {size} bytes exceeds limit {limit}")]
    TagTooLarge {
        /// Declared tag data size in bytes.
        size: u32,
        /// The configured limit in bytes.
        limit: u32,
    },
}
