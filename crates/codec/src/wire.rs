//! The Confluent wire format: magic byte 0, schema id (u32 big-endian), Avro body.

use crate::error::CodecError;

/// The magic byte that starts every message.
pub const MAGIC: u8 = 0;

/// Splits a message into its schema id and Avro body.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [MAGIC, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [] => Err(CodecError::Malformed("empty message".into())),
        [m, ..] if *m != MAGIC => Err(CodecError::Malformed(format!("unknown magic byte {m:#04x}"))),
        _ => Err(CodecError::Malformed(format!("message of {} bytes is shorter than its header", bytes.len()))),
    }
}

/// Starts a message with the header for `schema_id`.
pub(crate) fn header(schema_id: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + capacity);
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_malformed_headers() {
        let mut m = header(258, 3);
        m.extend_from_slice(b"abc");
        assert_eq!(split(&m).unwrap(), (258, &b"abc"[..]));
        assert!(matches!(split(&[]), Err(CodecError::Malformed(_))));
        assert!(matches!(split(&[1, 0, 0, 0, 1]), Err(CodecError::Malformed(_))));
        assert!(matches!(split(&[0, 0, 1]), Err(CodecError::Malformed(_))));
    }
}
