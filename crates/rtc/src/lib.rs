//! Sans-IO pieces of the proxy's WebRTC relay (docs/design.md §6.5): nothing here does I/O.
//!
//! - [`stun`]: a zero-copy STUN message view (RFC 8489) with the ICE attributes the relay routes
//!   by, MESSAGE-INTEGRITY and FINGERPRINT checks, and a Binding request builder for tests;
//! - [`demux`]: the RFC 7983 first-byte demultiplexing of STUN, DTLS and SRTP;
//! - [`sdp`]: SDP validation, ICE credentials, and the answer's candidate rewriting on the text.

pub mod demux;
pub mod sdp;
pub mod stun;

pub use demux::{classify, PacketKind};
pub use sdp::{
    ice_credentials, rewrite_candidates, validate, IceCredentials, Rewritten, SdpError, MAX_SDP,
};
pub use stun::{split_username, BindingRequest, Message, StunError};
