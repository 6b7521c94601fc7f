//! Sans-IO MPEG-TS muxing for live streams: RTMP/FLV H.264 and AAC in, 188-byte transport stream
//! packets out, as HLS segments and HTTP-TS need them.
//!
//! - [`mux`]: the transport stream itself (ISO/IEC 13818-1): PAT/PMT with CRC-32, PES
//!   packetisation, adaptation fields with PCR and stuffing, continuity counters.
//! - [`avc`]: H.264 from the AVCC form FLV carries to the Annex B byte stream TS carries.
//! - [`aac`]: raw AAC frames to ADTS frames.
//! - [`remux`]: FLV audio/video tag bodies to TS, tying the three together.
//!
//! Nothing here does I/O: every function appends to a caller's `Vec<u8>`.

#![warn(missing_docs)]

pub mod aac;
pub mod avc;
pub mod mux;
pub mod remux;

pub use mux::{Muxer, StreamType, PACKET_SIZE, SYNC_BYTE};
pub use remux::{RemuxError, Remuxer};

/// Errors from parsing codec data that a publisher sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The data ended before a field it must contain.
    #[error("{0} truncated")]
    Truncated(&'static str),
    /// A field has a value this muxer cannot carry.
    #[error("unsupported {what}: {value}")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u32,
    },
}
