//! A zero-copy view of one STUN message (RFC 8489), reading what the relay routes by: the class
//! and method, the transaction id, the ICE `USERNAME` (RFC 8445 §7.2.2) and `USE-CANDIDATE`, and
//! checking `MESSAGE-INTEGRITY` (RFC 8489 §14.5) against a short-term credential.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Size of the STUN header (RFC 8489 §5): type, length, magic cookie, transaction id.
pub const HEADER_LEN: usize = 20;
/// The fixed magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Largest STUN message this view accepts; a binding request is ~100 bytes and a UDP packet
/// on a path with the usual MTU carries at most ~1500.
pub const MAX_MESSAGE: usize = 1500;
/// Longest USERNAME (RFC 8489 §14.3: fewer than 509 bytes... of UTF-8, at most 763 bytes).
pub const MAX_USERNAME: usize = 763;

/// `USERNAME` attribute (RFC 8489 §14.3).
pub const ATTR_USERNAME: u16 = 0x0006;
/// `MESSAGE-INTEGRITY` attribute (RFC 8489 §14.5): HMAC-SHA1, 20 bytes.
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// `XOR-MAPPED-ADDRESS` attribute (RFC 8489 §14.2).
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// `PRIORITY` attribute (RFC 8445 §16.1).
pub const ATTR_PRIORITY: u16 = 0x0024;
/// `USE-CANDIDATE` attribute (RFC 8445 §16.1): the controlling agent nominates this pair.
pub const ATTR_USE_CANDIDATE: u16 = 0x0025;
/// `FINGERPRINT` attribute (RFC 8489 §14.7): CRC-32 of the message XOR 0x5354554e.
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// `ICE-CONTROLLING` attribute (RFC 8445 §16.1).
pub const ATTR_ICE_CONTROLLING: u16 = 0x802A;

const INTEGRITY_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The Binding method (RFC 8489 §18.2).
pub const METHOD_BINDING: u16 = 0x001;

/// The class of a STUN message (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 0b00.
    Request,
    /// 0b01.
    Indication,
    /// 0b10.
    SuccessResponse,
    /// 0b11.
    ErrorResponse,
}

/// Why bytes are not a STUN message this view accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than the 20-byte header, or the length field disagrees with the datagram.
    #[error("STUN message truncated or with a wrong length field ({0} bytes)")]
    Length(usize),
    /// Longer than [`MAX_MESSAGE`].
    #[error("STUN message of {0} bytes is larger than {MAX_MESSAGE}")]
    TooLarge(usize),
    /// The two top bits of the type are not zero or the magic cookie is wrong (RFC 8489 §5).
    #[error("not a STUN message (type bits or magic cookie)")]
    NotStun,
    /// An attribute runs past the end of the message.
    #[error("STUN attribute 0x{0:04x} runs past the end of the message")]
    Attribute(u16),
    /// USERNAME longer than [`MAX_USERNAME`] or not UTF-8.
    #[error("STUN USERNAME is too long or not UTF-8")]
    Username,
    /// MESSAGE-INTEGRITY is not 20 bytes, or FINGERPRINT not 4.
    #[error("STUN attribute 0x{0:04x} has a wrong length")]
    AttributeLength(u16),
}

/// A parsed view of one STUN message borrowed from a datagram.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    username: Option<(usize, usize)>,
    /// Offset of the MESSAGE-INTEGRITY attribute's header.
    integrity: Option<usize>,
    /// Offset of the FINGERPRINT attribute's header.
    fingerprint: Option<usize>,
    use_candidate: bool,
}

/// Whether a datagram's first byte says STUN (RFC 7983 §7: 0..=3), before parsing it.
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE.to_be_bytes()
}

impl<'a> Message<'a> {
    /// Parses `bytes` (one whole datagram) as a STUN message: header checks (RFC 8489 §5), then
    /// a walk over the attributes (§14), remembering USERNAME, USE-CANDIDATE, MESSAGE-INTEGRITY
    /// and FINGERPRINT. Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored,
    /// as §14.5 requires.
    ///
    /// Errors: [`StunError`] naming the first problem.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, StunError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(StunError::TooLarge(bytes.len()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(StunError::Length(bytes.len()));
        }
        if bytes[0] & 0xC0 != 0 || bytes[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(StunError::NotStun);
        }
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if length % 4 != 0 || HEADER_LEN + length != bytes.len() {
            return Err(StunError::Length(bytes.len()));
        }
        let mut message = Message {
            bytes,
            username: None,
            integrity: None,
            fingerprint: None,
            use_candidate: false,
        };
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            if at + 4 > bytes.len() {
                return Err(StunError::Length(bytes.len()));
            }
            let kind = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            let value = at + 4;
            let next = value + len.next_multiple_of(4);
            if next > bytes.len() {
                return Err(StunError::Attribute(kind));
            }
            if message.fingerprint.is_some() {
                // FINGERPRINT is last (RFC 8489 §14.7).
                return Err(StunError::Attribute(kind));
            }
            match kind {
                ATTR_FINGERPRINT => {
                    if len != 4 {
                        return Err(StunError::AttributeLength(kind));
                    }
                    message.fingerprint = Some(at);
                }
                _ if message.integrity.is_some() => {}
                ATTR_USERNAME => {
                    if len > MAX_USERNAME
                        || std::str::from_utf8(&bytes[value..value + len]).is_err()
                    {
                        return Err(StunError::Username);
                    }
                    message.username = Some((value, len));
                }
                ATTR_USE_CANDIDATE => message.use_candidate = true,
                ATTR_MESSAGE_INTEGRITY => {
                    if len != INTEGRITY_LEN {
                        return Err(StunError::AttributeLength(kind));
                    }
                    message.integrity = Some(at);
                }
                _ => {}
            }
            at = next;
        }
        Ok(message)
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The message type's class (RFC 8489 §5).
    pub fn class(&self) -> Class {
        let t = u16::from_be_bytes([self.bytes[0], self.bytes[1]]);
        match ((t >> 7) & 0b10) | ((t >> 4) & 0b01) {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }

    /// The message type's method (RFC 8489 §5; [`METHOD_BINDING`] for ICE checks).
    pub fn method(&self) -> u16 {
        let t = u16::from_be_bytes([self.bytes[0], self.bytes[1]]);
        (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    }

    /// Whether this is a Binding request, the ICE connectivity check (RFC 8445 §7.2.2).
    pub fn is_binding_request(&self) -> bool {
        self.class() == Class::Request && self.method() == METHOD_BINDING
    }

    /// The 96-bit transaction id (RFC 8489 §5), which a response repeats.
    pub fn transaction_id(&self) -> [u8; 12] {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.bytes[8..20]);
        id
    }

    /// The USERNAME attribute, UTF-8 checked; for an ICE check `receiverUfrag:senderUfrag`.
    pub fn username(&self) -> Option<&'a str> {
        let (at, len) = self.username?;
        std::str::from_utf8(&self.bytes[at..at + len]).ok()
    }

    /// Whether USE-CANDIDATE is present (RFC 8445 §7.2.2: the pair is nominated).
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }

    /// Whether MESSAGE-INTEGRITY is present and is the HMAC-SHA1 of the message with `key`
    /// (for ICE's short-term credentials, the receiver's `ice-pwd`), computed as RFC 8489 §14.5
    /// says: over the message up to the attribute, with the length field counting up to its end.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
            return false;
        };
        let length = (at + 4 + INTEGRITY_LEN - HEADER_LEN) as u16;
        mac.update(&self.bytes[..2]);
        mac.update(&length.to_be_bytes());
        mac.update(&self.bytes[4..at]);
        mac.verify_slice(&self.bytes[at + 4..at + 4 + INTEGRITY_LEN])
            .is_ok()
    }

    /// Whether FINGERPRINT is present and right (RFC 8489 §14.7).
    pub fn verify_fingerprint(&self) -> bool {
        let Some(at) = self.fingerprint else {
            return false;
        };
        let expected = fingerprint(self.bytes, at);
        self.bytes[at + 4..at + 8] == expected.to_be_bytes()
    }
}

/// CRC-32 of `bytes[..at]` with the length field counting the 8-byte FINGERPRINT at `at`.
fn fingerprint(bytes: &[u8], at: usize) -> u32 {
    let length = (at + 8 - HEADER_LEN) as u16;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..2]);
    crc.update(&length.to_be_bytes());
    crc.update(&bytes[4..at]);
    crc.finalize() ^ FINGERPRINT_XOR
}

/// Splits an ICE check's USERNAME `receiverUfrag:senderUfrag` (RFC 8445 §7.2.2) into its two
/// fragments; `None` when there is no colon or a fragment is empty.
pub fn split_username(username: &str) -> Option<(&str, &str)> {
    let (receiver, sender) = username.split_once(':')?;
    (!receiver.is_empty() && !sender.is_empty()).then_some((receiver, sender))
}

/// An ICE connectivity check as a controlling agent sends it (RFC 8445 §7.2.2): what tests,
/// benchmarks and fuzz seeds send to the relay.
#[derive(Debug, Clone)]
pub struct BindingRequest<'a> {
    /// `receiverUfrag:senderUfrag`.
    pub username: &'a str,
    /// The receiver's `ice-pwd`, the MESSAGE-INTEGRITY key.
    pub password: &'a str,
    /// The transaction id.
    pub transaction_id: [u8; 12],
    /// Whether to nominate the pair (USE-CANDIDATE).
    pub use_candidate: bool,
}

impl BindingRequest<'_> {
    /// Serializes the request into `out` (cleared first): USERNAME, PRIORITY, ICE-CONTROLLING,
    /// USE-CANDIDATE when set, MESSAGE-INTEGRITY, FINGERPRINT.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&METHOD_BINDING.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        push_attribute(out, ATTR_USERNAME, self.username.as_bytes());
        push_attribute(out, ATTR_PRIORITY, &0x6E7F_00FFu32.to_be_bytes());
        push_attribute(out, ATTR_ICE_CONTROLLING, &[0x5A; 8]);
        if self.use_candidate {
            push_attribute(out, ATTR_USE_CANDIDATE, &[]);
        }
        let at = out.len();
        set_length(out, at + 4 + INTEGRITY_LEN);
        // HMAC takes keys of any length; the error case cannot happen.
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(self.password.as_bytes()) else {
            out.clear();
            return;
        };
        mac.update(out);
        let tag = mac.finalize().into_bytes();
        push_attribute(out, ATTR_MESSAGE_INTEGRITY, &tag);
        let at = out.len();
        set_length(out, at + 8);
        let crc = fingerprint(out, at);
        push_attribute(out, ATTR_FINGERPRINT, &crc.to_be_bytes());
    }
}

fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Sets the header's length field as if the message ended at `end`.
fn set_length(out: &mut [u8], end: usize) {
    let length = (end - HEADER_LEN) as u16;
    out[2..4].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(use_candidate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        BindingRequest {
            username: "835e611f:I9Xw",
            password: "i88l69038v2nnw146o9vme3y048w7j59",
            transaction_id: *b"0123456789ab",
            use_candidate,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn a_binding_request_reads_back() {
        let bytes = request(true);
        assert!(looks_like_stun(&bytes));
        let m = Message::parse(&bytes).unwrap();
        assert!(m.is_binding_request());
        assert_eq!(m.username(), Some("835e611f:I9Xw"));
        assert_eq!(
            split_username(m.username().unwrap()),
            Some(("835e611f", "I9Xw"))
        );
        assert_eq!(&m.transaction_id(), b"0123456789ab");
        assert!(m.use_candidate());
        assert!(m.verify_integrity(b"i88l69038v2nnw146o9vme3y048w7j59"));
        assert!(!m.verify_integrity(b"another password"));
        assert!(m.verify_fingerprint());
        assert!(!Message::parse(&request(false)).unwrap().use_candidate());
    }

    /// RFC 5769 §2.1: a sample request with USERNAME "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt".
    #[test]
    fn rfc5769_sample_request_verifies() {
        let hex = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let m = Message::parse(&bytes).unwrap();
        assert!(m.is_binding_request());
        assert_eq!(m.username(), Some("evtj:h6vY"));
        assert!(m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn classes_and_methods() {
        let mut bytes = request(false);
        bytes[0..2].copy_from_slice(&0x0101u16.to_be_bytes());
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(
            (m.class(), m.method()),
            (Class::SuccessResponse, METHOD_BINDING)
        );
        bytes[0..2].copy_from_slice(&0x0111u16.to_be_bytes());
        assert_eq!(
            Message::parse(&bytes).unwrap().class(),
            Class::ErrorResponse
        );
        bytes[0..2].copy_from_slice(&0x0011u16.to_be_bytes());
        assert_eq!(Message::parse(&bytes).unwrap().class(), Class::Indication);
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = request(true);
        assert_eq!(
            Message::parse(&good[..19]).unwrap_err(),
            StunError::Length(19)
        );
        assert_eq!(
            Message::parse(&good[..good.len() - 4]).unwrap_err(),
            StunError::Length(good.len() - 4)
        );
        let mut bad = good.clone();
        bad[4] ^= 1;
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::NotStun);
        let mut bad = good.clone();
        bad[0] |= 0x80;
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::NotStun);
        // The USERNAME attribute claims more bytes than there are.
        let mut bad = good.clone();
        bad[22..24].copy_from_slice(&0x0400u16.to_be_bytes());
        assert!(matches!(
            Message::parse(&bad),
            Err(StunError::Attribute(ATTR_USERNAME))
        ));
        // A flipped byte anywhere before MESSAGE-INTEGRITY fails the check.
        let mut tampered = good.clone();
        tampered[25] ^= 1;
        let m = Message::parse(&tampered).unwrap();
        assert!(!m.verify_integrity(b"i88l69038v2nnw146o9vme3y048w7j59"));
        assert!(!m.verify_fingerprint());
        assert!(Message::parse(&vec![0u8; MAX_MESSAGE + 4]).is_err());
        assert_eq!(split_username("nocolon"), None);
        assert_eq!(split_username(":x"), None);
    }
}
