//! Which protocol a datagram on a WebRTC media port carries, by its first byte (RFC 7983 §7, as
//! updated by RFC 9443 §3).

/// The protocols that share one ICE-negotiated 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// STUN: first byte 0..=3.
    Stun,
    /// ZRTP: 16..=19.
    Zrtp,
    /// DTLS: 20..=63.
    Dtls,
    /// TURN channel data: 64..=79.
    TurnChannel,
    /// RTP or RTCP (SRTP, SRTCP): 128..=191.
    Rtp,
    /// Anything else, including an empty datagram: no WebRTC peer sends it.
    Unknown,
}

/// Classifies `datagram` by its first byte.
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::TurnChannel,
        Some(128..=191) => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte_ranges() {
        let kinds: Vec<PacketKind> = [
            0u8, 3, 4, 16, 19, 20, 22, 63, 64, 79, 80, 127, 128, 191, 192, 255,
        ]
        .iter()
        .map(|b| classify(&[*b]))
        .collect();
        use PacketKind::*;
        assert_eq!(
            kinds,
            [
                Stun,
                Stun,
                Unknown,
                Zrtp,
                Zrtp,
                Dtls,
                Dtls,
                Dtls,
                TurnChannel,
                TurnChannel,
                Unknown,
                Unknown,
                Rtp,
                Rtp,
                Unknown,
                Unknown
            ]
        );
        assert_eq!(classify(&[]), Unknown);
    }
}
