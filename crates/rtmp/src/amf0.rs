//! AMF0 encoding and decoding (Adobe "Action Message Format -- AMF 0", 2006).
//!
//! Strings are decoded lossily: invalid UTF-8 sequences become U+FFFD, so an
//! encoder that writes e.g. GBK metadata does not break the stream.
//!
//! The decoder is bounded: nesting deeper than [`MAX_DEPTH`] or more than
//! [`MAX_ELEMENTS`] values in one [`decode`]/[`decode_all`] call is an error,
//! and declared element counts are never used to preallocate.

use bytes::{BufMut, BytesMut};

pub use crate::error::Amf0Error;

/// Maximum nesting depth of objects/arrays accepted by the decoder.
pub const MAX_DEPTH: usize = 32;

/// Maximum number of values (counting nested ones) decoded in one call.
pub const MAX_ELEMENTS: usize = 1 << 17;

/// Type markers (AMF0 spec 2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value (AMF0 spec 2.2-2.14).
///
/// Objects and ECMA arrays keep their properties in wire order as
/// `(key, value)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE-754 double (spec 2.2).
    Number(f64),
    /// Boolean (spec 2.3).
    Boolean(bool),
    /// UTF-8 string; encoded as a long string when longer than 65535 bytes
    /// (spec 2.4).
    String(String),
    /// Anonymous object (spec 2.5).
    Object(Vec<(String, Amf0Value)>),
    /// Null (spec 2.7).
    Null,
    /// Undefined (spec 2.8).
    Undefined,
    /// ECMA (associative) array (spec 2.10).
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Strict (dense) array (spec 2.12).
    StrictArray(Vec<Amf0Value>),
    /// Date: milliseconds since the Unix epoch (UTC) and a timezone offset
    /// in minutes that the spec says to ignore (spec 2.13).
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Reserved timezone field, in minutes; normally 0.
        timezone: i16,
    },
    /// Long string with a 32-bit length (spec 2.14).
    LongString(String),
}

impl Amf0Value {
    /// The text of a `String` or `LongString`, else `None`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a `Number`, else `None`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The value of a `Boolean`, else `None`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The first property named `key` of an `Object` or `EcmaArray`; `None`
    /// for other variants or a missing key.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Builds an `Object` from `(key, value)` pairs, keeping their order.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

/// Decodes one AMF0 value from the front of `input` and advances `input`
/// past it.
///
/// Errors: [`Amf0Error::Truncated`] if `input` ends inside the value,
/// [`Amf0Error::UnsupportedMarker`] for reference/movieclip/recordset/XML/
/// typed-object/AVM+ values, [`Amf0Error::InvalidMarker`] for unknown bytes,
/// [`Amf0Error::TooDeep`] beyond [`MAX_DEPTH`], [`Amf0Error::TooManyElements`]
/// beyond [`MAX_ELEMENTS`]. On error `input` is left at an unspecified
/// position.
pub fn decode(input: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
    let mut budget = MAX_ELEMENTS;
    decode_value(input, 0, &mut budget)
}

/// Decodes consecutive AMF0 values until `input` is exhausted (e.g. the body
/// of a command or data message, RTMP spec 7.1.1/7.1.2).
///
/// Errors: as [`decode`]; the [`MAX_ELEMENTS`] budget is shared by all values.
pub fn decode_all(input: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut rest = input;
    let mut budget = MAX_ELEMENTS;
    let mut values = Vec::new();
    while !rest.is_empty() {
        values.push(decode_value(&mut rest, 0, &mut budget)?);
    }
    Ok(values)
}

/// Appends the AMF0 encoding of `value` to `out`.
///
/// A `String` longer than 65535 bytes is written as a long string (spec
/// 2.14). Property keys are limited to 65535 bytes by the format; a longer key
/// is cut at the last UTF-8 boundary within that limit.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(marker::STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => encode_long_string(s, out),
        },
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            encode_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(saturating_u32(props.len()));
            encode_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            // The format cannot express more than u32::MAX items.
            let count = saturating_u32(items.len());
            out.put_u32(count);
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(s) => encode_long_string(s, out),
    }
}

/// Appends the AMF0 encoding of each value in order (see [`encode`]).
pub fn encode_all(values: &[Amf0Value], out: &mut BytesMut) {
    for value in values {
        encode(value, out);
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn encode_long_string(s: &str, out: &mut BytesMut) {
    // Strings over 4 GiB cannot exist in an RTMP message (max 16 MiB), so the
    // cut only guards the length field.
    let bytes = truncate_utf8(s, u32::MAX as usize);
    out.put_u8(marker::LONG_STRING);
    out.put_u32(saturating_u32(bytes.len()));
    out.put_slice(bytes.as_bytes());
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        let key = truncate_utf8(key, u16::MAX as usize);
        out.put_u16(key.len() as u16);
        out.put_slice(key.as_bytes());
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], Amf0Error> {
    if input.len() < n {
        return Err(Amf0Error::Truncated { what });
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn read_u8(input: &mut &[u8], what: &'static str) -> Result<u8, Amf0Error> {
    Ok(take(input, 1, what)?[0])
}

fn read_array<const N: usize>(input: &mut &[u8], what: &'static str) -> Result<[u8; N], Amf0Error> {
    let mut arr = [0u8; N];
    arr.copy_from_slice(take(input, N, what)?);
    Ok(arr)
}

fn read_string(input: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let body = take(input, len, "string body")?;
    Ok(String::from_utf8_lossy(body).into_owned())
}

fn read_short_string(input: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = u16::from_be_bytes(read_array(input, "string length")?);
    read_string(input, usize::from(len))
}

fn read_long_string(input: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = u32::from_be_bytes(read_array(input, "long string length")?);
    // On 16-bit targets the length may not fit; treat it as truncated input.
    let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated {
        what: "long string body",
    })?;
    read_string(input, len)
}

fn decode_value(
    input: &mut &[u8],
    depth: usize,
    budget: &mut usize,
) -> Result<Amf0Value, Amf0Error> {
    if *budget == 0 {
        return Err(Amf0Error::TooManyElements(MAX_ELEMENTS));
    }
    *budget -= 1;
    let m = read_u8(input, "type marker")?;
    match m {
        marker::NUMBER => Ok(Amf0Value::Number(f64::from_be_bytes(read_array(
            input, "number",
        )?))),
        marker::BOOLEAN => Ok(Amf0Value::Boolean(read_u8(input, "boolean")? != 0)),
        marker::STRING => Ok(Amf0Value::String(read_short_string(input)?)),
        marker::OBJECT => {
            let depth = enter(depth)?;
            Ok(Amf0Value::Object(decode_properties(input, depth, budget)?))
        }
        marker::NULL => Ok(Amf0Value::Null),
        marker::UNDEFINED => Ok(Amf0Value::Undefined),
        marker::ECMA_ARRAY => {
            let depth = enter(depth)?;
            // The count is only a hint (and often wrong); the object-end
            // marker terminates the array.
            read_array::<4>(input, "ecma array count")?;
            Ok(Amf0Value::EcmaArray(decode_properties(
                input, depth, budget,
            )?))
        }
        marker::STRICT_ARRAY => {
            let depth = enter(depth)?;
            let count = u32::from_be_bytes(read_array(input, "strict array count")?);
            // Grow as items decode: the count is untrusted.
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(decode_value(input, depth, budget)?);
            }
            Ok(Amf0Value::StrictArray(items))
        }
        marker::DATE => {
            let millis = f64::from_be_bytes(read_array(input, "date")?);
            let timezone = i16::from_be_bytes(read_array(input, "date timezone")?);
            Ok(Amf0Value::Date { millis, timezone })
        }
        marker::LONG_STRING => Ok(Amf0Value::LongString(read_long_string(input)?)),
        marker::MOVIECLIP => Err(unsupported(m, "movieclip")),
        marker::REFERENCE => Err(unsupported(m, "reference")),
        marker::UNSUPPORTED => Err(unsupported(m, "unsupported")),
        marker::RECORDSET => Err(unsupported(m, "recordset")),
        marker::XML_DOCUMENT => Err(unsupported(m, "xml document")),
        marker::TYPED_OBJECT => Err(unsupported(m, "typed object")),
        marker::AVMPLUS => Err(unsupported(m, "avmplus object")),
        other => Err(Amf0Error::InvalidMarker(other)),
    }
}

fn unsupported(marker: u8, name: &'static str) -> Amf0Error {
    Amf0Error::UnsupportedMarker { marker, name }
}

fn enter(depth: usize) -> Result<usize, Amf0Error> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep(MAX_DEPTH));
    }
    Ok(depth)
}

/// Reads `key, value` pairs up to the object-end marker (empty key + 0x09).
fn decode_properties(
    input: &mut &[u8],
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let key = read_short_string(input)?;
        if key.is_empty() && input.first() == Some(&marker::OBJECT_END) {
            *input = &input[1..];
            return Ok(props);
        }
        let value = decode_value(input, depth, budget)?;
        props.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &Amf0Value) -> Amf0Value {
        let mut out = BytesMut::new();
        encode(v, &mut out);
        let mut input = &out[..];
        let decoded = decode(&mut input).unwrap();
        assert!(input.is_empty(), "decoder left {} bytes", input.len());
        decoded
    }

    fn sample() -> Amf0Value {
        Amf0Value::object([
            ("num", Amf0Value::Number(1.5)),
            ("neg", Amf0Value::Number(-0.25)),
            ("t", Amf0Value::Boolean(true)),
            ("f", Amf0Value::Boolean(false)),
            ("s", "héllo".into()),
            ("empty", "".into()),
            ("null", Amf0Value::Null),
            ("undef", Amf0Value::Undefined),
            (
                "nested",
                Amf0Value::object([("inner", Amf0Value::object([("deep", 3.0.into())]))]),
            ),
            (
                "ecma",
                Amf0Value::EcmaArray(vec![
                    ("a".into(), 1.0.into()),
                    (
                        "b".into(),
                        Amf0Value::StrictArray(vec![1.0.into(), "x".into()]),
                    ),
                ]),
            ),
            (
                "strict",
                Amf0Value::StrictArray(vec![
                    Amf0Value::Null,
                    Amf0Value::object([("k", true.into())]),
                ]),
            ),
            (
                "date",
                Amf0Value::Date {
                    millis: 1_700_000_000_000.0,
                    timezone: -60,
                },
            ),
            ("long", Amf0Value::LongString("short long".into())),
            ("", "empty key".into()),
        ])
    }

    #[test]
    fn roundtrip_every_type() {
        let values = [
            Amf0Value::Number(0.0),
            Amf0Value::Number(f64::MAX),
            Amf0Value::Boolean(true),
            "abc".into(),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::EcmaArray(vec![]),
            Amf0Value::StrictArray(vec![]),
            Amf0Value::Object(vec![]),
            Amf0Value::Date {
                millis: 0.0,
                timezone: 0,
            },
            Amf0Value::LongString(String::new()),
            sample(),
        ];
        for v in &values {
            assert_eq!(&roundtrip(v), v);
        }
    }

    #[test]
    fn long_string_over_64k() {
        let s = "x".repeat(70_000);
        let mut out = BytesMut::new();
        encode(&Amf0Value::String(s.clone()), &mut out);
        assert_eq!(out[0], marker::LONG_STRING);
        assert_eq!(
            roundtrip(&Amf0Value::String(s.clone())),
            Amf0Value::LongString(s.clone())
        );
        assert_eq!(
            roundtrip(&Amf0Value::LongString(s.clone())),
            Amf0Value::LongString(s)
        );
        let exact = "y".repeat(65_535);
        assert_eq!(
            roundtrip(&Amf0Value::String(exact.clone())),
            Amf0Value::String(exact)
        );
    }

    #[test]
    fn encode_all_decode_all() {
        let values = vec!["connect".into(), 1.0.into(), sample(), Amf0Value::Null];
        let mut out = BytesMut::new();
        encode_all(&values, &mut out);
        assert_eq!(decode_all(&out).unwrap(), values);
        assert_eq!(decode_all(&[]).unwrap(), vec![]);
    }

    #[test]
    fn truncated_at_every_prefix() {
        let mut out = BytesMut::new();
        encode(&sample(), &mut out);
        for len in 0..out.len() {
            let mut input = &out[..len];
            assert!(decode(&mut input).is_err(), "prefix {len} decoded");
            assert!(decode_all(&out[..len]).is_err() || len == 0);
        }
    }

    #[test]
    fn unsupported_and_invalid_markers() {
        for (m, name) in [
            (0x04, "movieclip"),
            (0x07, "reference"),
            (0x0D, "unsupported"),
            (0x0E, "recordset"),
            (0x0F, "xml document"),
            (0x10, "typed object"),
            (0x11, "avmplus object"),
        ] {
            let err = decode(&mut &[m, 0, 0, 0, 0][..]).unwrap_err();
            assert_eq!(err, Amf0Error::UnsupportedMarker { marker: m, name });
            assert!(err.to_string().contains(name));
        }
        assert_eq!(
            decode(&mut &[0x12][..]),
            Err(Amf0Error::InvalidMarker(0x12))
        );
        assert_eq!(
            decode(&mut &[0xFF][..]),
            Err(Amf0Error::InvalidMarker(0xFF))
        );
        assert_eq!(
            decode(&mut &[0x09][..]),
            Err(Amf0Error::InvalidMarker(0x09))
        );
    }

    #[test]
    fn depth_bomb() {
        // 32 nested strict arrays are fine, 33 are not.
        let mut ok = vec![];
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        ok.push(0x05);
        assert!(decode(&mut &ok[..]).is_ok());
        let mut bomb = vec![];
        for _ in 0..100_000 {
            bomb.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        assert_eq!(decode(&mut &bomb[..]), Err(Amf0Error::TooDeep(MAX_DEPTH)));
        let mut ecma = vec![];
        for _ in 0..40 {
            ecma.extend_from_slice(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, b'a']);
        }
        assert_eq!(decode(&mut &ecma[..]), Err(Amf0Error::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn huge_declared_counts() {
        // Declared counts of 4 billion with no items must fail fast.
        let strict = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05];
        assert!(matches!(
            decode(&mut &strict[..]),
            Err(Amf0Error::Truncated { .. })
        ));
        let ecma = [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x09];
        assert_eq!(decode(&mut &ecma[..]), Ok(Amf0Value::EcmaArray(vec![])));
        let long = [0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
        assert!(matches!(
            decode(&mut &long[..]),
            Err(Amf0Error::Truncated { .. })
        ));
        // Many tiny elements hit the element budget.
        let mut many = vec![0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        many.resize(many.len() + MAX_ELEMENTS + 10, 0x05);
        assert_eq!(
            decode(&mut &many[..]),
            Err(Amf0Error::TooManyElements(MAX_ELEMENTS))
        );
        let nulls = vec![0x05; MAX_ELEMENTS + 1];
        assert_eq!(
            decode_all(&nulls),
            Err(Amf0Error::TooManyElements(MAX_ELEMENTS))
        );
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        let bytes = [0x02, 0, 2, 0xC3, 0x28];
        assert_eq!(
            decode(&mut &bytes[..]).unwrap(),
            Amf0Value::String("\u{FFFD}(".into())
        );
    }

    #[test]
    fn empty_key_property_is_not_object_end() {
        let bytes = [0x03, 0, 0, 0x05, 0, 0, 0x09];
        assert_eq!(
            decode(&mut &bytes[..]).unwrap(),
            Amf0Value::Object(vec![(String::new(), Amf0Value::Null)])
        );
    }

    #[test]
    fn accessors() {
        let v = sample();
        assert_eq!(v.get("num").and_then(Amf0Value::as_number), Some(1.5));
        assert_eq!(v.get("t").and_then(Amf0Value::as_bool), Some(true));
        assert_eq!(v.get("s").and_then(Amf0Value::as_str), Some("héllo"));
        assert_eq!(
            v.get("long").and_then(Amf0Value::as_str),
            Some("short long")
        );
        assert_eq!(
            v.get("ecma").and_then(|e| e.get("a")),
            Some(&Amf0Value::Number(1.0))
        );
        assert!(v.get("missing").is_none());
        assert!(Amf0Value::Null.get("x").is_none());
        assert_eq!(Amf0Value::from(String::from("s")).as_str(), Some("s"));
        assert!(Amf0Value::Null.as_number().is_none());
    }
}
