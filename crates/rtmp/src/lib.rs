//! RTMP protocol building blocks for srs-proxy and srs-origin.
//!
//! Everything except [`io`] is sans-IO: pure encoders, decoders and state
//! machines over byte buffers. [`io`] (feature `tokio`, on by default) only
//! moves bytes between a tokio stream and those state machines.
//!
//! Every decoder bounds what a peer controls (message size, chunk size,
//! number of chunk streams, AMF0 nesting depth and element counts) and returns
//! a typed error instead of allocating without limit.

#![warn(missing_docs)]

pub mod amf0;
pub mod chunk;
pub mod conn;
pub mod cut;
pub mod error;
pub mod flv;
pub mod handshake;
#[cfg(feature = "tokio")]
pub mod io;
pub mod message;

pub use amf0::Amf0Value;
pub use chunk::{ChunkDecoder, ChunkEncoder, Limits, MessageHeader, Piece, RawMessage};
pub use conn::Connection;
pub use error::{Amf0Error, ChunkError, FlvError, HandshakeError, MessageError, RtmpError};
pub use flv::{FlvReader, FlvTag};
pub use handshake::{ClientHandshake, ServerHandshake, HANDSHAKE_SIZE};
#[cfg(feature = "tokio")]
pub use io::{accept_session, open_session, RtmpStream, ServerRequest};
pub use message::{Command, ConnectParams, Message, UserControl};
