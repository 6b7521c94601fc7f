//! A tracker of the chunked transfer coding (RFC 9112 §7.1): fed a body's bytes in any pieces,
//! it says which bytes are chunk data and which are framing (size lines, extensions, CRLFs,
//! trailers), and where the body ends. It keeps no bytes: data passes by count, so a relay can
//! forward a chunked body unchanged (and know where it ends, for keep-alive) or strip the
//! framing, without buffering. Lines are bounded ([`MAX_LINE`], [`MAX_TRAILERS`]).

/// Longest chunk-size line (size and extensions, CRLF included), and longest trailer line.
pub const MAX_LINE: usize = 4096;
/// Largest trailer section, the final CRLF included.
pub const MAX_TRAILERS: usize = 64 * 1024;

/// A run of bytes at the start of the input, as classified by [`ChunkedBody::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// This many bytes of framing (a size line, the CRLF after data, trailers).
    Framing(usize),
    /// This many bytes of chunk data.
    Data(usize),
    /// This many bytes of framing that end the body; bytes after them are not part of it.
    End(usize),
}

/// Why a body is not valid chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk size that is missing or not hexadecimal.
    #[error("bad chunk size")]
    BadSize,
    /// A chunk size that does not fit in 64 bits.
    #[error("chunk size too large")]
    SizeOverflow,
    /// A chunk-size or trailer line longer than [`MAX_LINE`].
    #[error("chunk line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A trailer section larger than [`MAX_TRAILERS`].
    #[error("trailer section larger than {MAX_TRAILERS} bytes")]
    TrailersTooLarge,
    /// A line or chunk not ended by CRLF.
    #[error("missing CRLF in chunked body")]
    MissingCrlf,
    /// Input after the body ended.
    #[error("the chunked body already ended")]
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a size.
    SizeStart,
    /// In the size's hex digits.
    Size,
    /// After the size: whitespace and extensions up to CR.
    Extension,
    /// After the size line's CR.
    SizeLf,
    /// In chunk data; `size` bytes remain.
    Data,
    /// After chunk data, expecting CR.
    DataCr,
    /// Expecting the LF after data.
    DataLf,
    /// At the start of a trailer line or the final empty line.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    /// The body ended.
    Done,
}

/// The position in one chunked body (see the module docs). Cheap to copy, so a caller can try
/// input on a copy before committing it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkedBody {
    state: State,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
    /// Bytes of the current line.
    line: usize,
    /// Bytes of the trailer section so far.
    trailers: usize,
}

impl Default for ChunkedBody {
    fn default() -> Self {
        ChunkedBody::new()
    }
}

impl ChunkedBody {
    /// A tracker at the start of a body.
    pub fn new() -> ChunkedBody {
        ChunkedBody {
            state: State::SizeStart,
            size: 0,
            line: 0,
            trailers: 0,
        }
    }

    /// Whether the last chunk and the trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes left in the current chunk: that many bytes may pass next without being
    /// looked at ([`ChunkedBody::skip`]); 0 outside chunk data.
    pub fn data_left(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// Passes `n` data bytes by count, at most [`ChunkedBody::data_left`].
    pub fn skip(&mut self, n: u64) {
        if self.state == State::Data {
            self.size -= n.min(self.size);
            if self.size == 0 {
                self.state = State::DataCr;
            }
        }
    }

    /// Classifies the run of bytes at the start of `input` (non-empty) as framing, data or the
    /// body's end; call again with the rest. Empty input gives `Framing(0)`.
    ///
    /// Errors: [`ChunkedError`] for input that is not chunked coding, or that comes after the
    /// end ([`ChunkedError::Ended`]).
    pub fn step(&mut self, input: &[u8]) -> Result<Piece, ChunkedError> {
        if self.state == State::Done {
            return Err(ChunkedError::Ended);
        }
        if self.state == State::Data {
            let n = (input.len() as u64).min(self.size);
            self.skip(n);
            return Ok(Piece::Data(n as usize));
        }
        for (i, &b) in input.iter().enumerate() {
            self.framing_byte(b)?;
            match self.state {
                State::Data => return Ok(Piece::Framing(i + 1)),
                State::Done => return Ok(Piece::End(i + 1)),
                _ => {}
            }
        }
        Ok(Piece::Framing(input.len()))
    }

    /// Feeds `input`; returns how many of its bytes belong to the body (all of them unless the
    /// body ends inside it).
    ///
    /// Errors: as [`ChunkedBody::step`].
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkedError> {
        let mut at = 0;
        while at < input.len() {
            match self.step(&input[at..])? {
                Piece::Framing(n) | Piece::Data(n) => at += n,
                Piece::End(n) => return Ok(at + n),
            }
        }
        Ok(at)
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::SizeStart | State::Size | State::Extension => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(ChunkedError::LineTooLong);
                }
            }
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                self.trailers += 1;
                self.line += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkedError::TrailersTooLarge);
                }
                if self.line > MAX_LINE {
                    return Err(ChunkedError::LineTooLong);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (State::SizeStart | State::Size, _) if b.is_ascii_hexdigit() => {
                if self.size >> 60 != 0 {
                    return Err(ChunkedError::SizeOverflow);
                }
                // Cannot fail: `b` is a hex digit.
                let digit = (b as char).to_digit(16).unwrap_or(0);
                self.size = self.size << 4 | u64::from(digit);
                State::Size
            }
            (State::SizeStart, _) => return Err(ChunkedError::BadSize),
            (State::Size | State::Extension, b'\r') => State::SizeLf,
            (State::Size, b';' | b' ' | b'\t') => State::Extension,
            (State::Size, _) => return Err(ChunkedError::BadSize),
            (State::Extension, b'\n') => return Err(ChunkedError::MissingCrlf),
            (State::Extension, _) => State::Extension,
            (State::SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.line = 0;
                State::SizeStart
            }
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::Trailer, b'\n') => return Err(ChunkedError::MissingCrlf),
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, _) => State::Trailer,
            (State::TrailerLf, b'\n') => {
                self.line = 0;
                State::TrailerStart
            }
            (State::EndLf, b'\n') => State::Done,
            (
                State::SizeLf | State::DataCr | State::DataLf | State::TrailerLf | State::EndLf,
                _,
            ) => return Err(ChunkedError::MissingCrlf),
            (State::Data | State::Done, _) => return Err(ChunkedError::Ended),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";

    /// The data bytes of `input` fed in pieces of `size`, and where the body ended.
    fn dechunk(input: &[u8], size: usize) -> (Vec<u8>, Option<usize>) {
        let mut body = ChunkedBody::new();
        let mut data = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let end = (at + size).min(input.len());
            match body.step(&input[at..end]).unwrap() {
                Piece::Framing(n) => at += n,
                Piece::Data(n) => {
                    data.extend_from_slice(&input[at..at + n]);
                    at += n;
                }
                Piece::End(n) => return (data, Some(at + n)),
            }
        }
        (data, None)
    }

    #[test]
    fn data_and_end_are_found_in_any_pieces() {
        for size in 1..BODY.len() {
            let (data, end) = dechunk(BODY, size);
            assert_eq!(data, b"hello0123456789abcdef", "pieces of {size}");
            assert_eq!(end, Some(BODY.len()));
        }
        let mut more = BODY.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(&more), Ok(BODY.len()));
        assert!(body.is_done());
        assert_eq!(body.step(b"x"), Err(ChunkedError::Ended));
    }

    #[test]
    fn data_passes_by_count() {
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(b"10\r\n"), Ok(4));
        assert_eq!(body.data_left(), 16);
        body.skip(10);
        assert_eq!(body.data_left(), 6);
        body.skip(100);
        assert_eq!(body.data_left(), 0);
        assert_eq!(body.feed(b"\r\n0\r\n\r\n"), Ok(7));
        assert!(body.is_done());
    }

    #[test]
    fn bad_framing_is_refused() {
        let bad = |input: &[u8]| ChunkedBody::new().feed(input).unwrap_err();
        assert_eq!(bad(b"x\r\n"), ChunkedError::BadSize);
        assert_eq!(bad(b"\r\n"), ChunkedError::BadSize);
        assert_eq!(bad(b"5\n"), ChunkedError::BadSize);
        assert_eq!(bad(b"5\r\nhelloX"), ChunkedError::MissingCrlf);
        assert_eq!(bad(b"11111111111111111\r\n"), ChunkedError::SizeOverflow);
        assert_eq!(bad(b"0\r\nX-T: 1\n"), ChunkedError::MissingCrlf);
        let mut long = b"1;".to_vec();
        long.resize(MAX_LINE + 1, b'a');
        assert_eq!(bad(&long), ChunkedError::LineTooLong);
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILERS / 8 + 1 {
            trailers.extend_from_slice(b"X-A: 1\r\n");
        }
        assert_eq!(bad(&trailers), ChunkedError::TrailersTooLarge);
    }
}
