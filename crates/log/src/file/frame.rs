//! The on-disk frame: one appended batch of records, checksummed as a whole.
//!
//! ```text
//! u32 len     bytes after this field (crc + body)
//! u32 crc32c  of the body
//! body:
//!   u64 base offset, u32 count, i64 timestamp ms
//!   count x record:
//!     i32 key length (-1: no key), key
//!     u16 header count, per header: u16 name length, name, u32 value length, value
//!     u32 value length, value
//! ```
//!
//! A batch is all-or-nothing: a torn write fails its length or checksum and is cut on open.

use crate::{Headers, LogRecord, Record};

/// Bytes before the body: length and checksum.
pub(crate) const PREFIX: usize = 8;
/// Bytes of the body header: base offset, count, timestamp.
pub(crate) const BODY_HEADER: usize = 20;
/// The largest frame accepted.
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Encodes records as one frame.
pub(crate) fn encode(base_offset: u64, timestamp_ms: i64, records: &[Record], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    for r in records {
        match &r.key {
            Some(k) => {
                out.extend_from_slice(&(k.len() as i32).to_le_bytes());
                out.extend_from_slice(k);
            }
            None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        }
        out.extend_from_slice(&(r.headers.len() as u16).to_le_bytes());
        for (name, value) in &r.headers {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.value);
    }
    let body_len = out.len() - start - PREFIX;
    let crc = crc32c::crc32c(&out[start + PREFIX..]);
    out[start..start + 4].copy_from_slice(&((body_len + 4) as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed part of a frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHeader {
    /// Total bytes of the frame, prefix included.
    pub(crate) frame_len: u64,
    pub(crate) crc: u32,
    pub(crate) base_offset: u64,
    pub(crate) count: u32,
}

impl FrameHeader {
    /// Parses the first `PREFIX + BODY_HEADER` bytes of a frame; `None` if they cannot be one.
    pub(crate) fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < PREFIX + BODY_HEADER {
            return None;
        }
        let len = u32::from_le_bytes(b[0..4].try_into().ok()?) as usize;
        if !(4 + BODY_HEADER..=MAX_FRAME).contains(&len) {
            return None;
        }
        Some(Self {
            frame_len: (len + 4) as u64,
            crc: u32::from_le_bytes(b[4..8].try_into().ok()?),
            base_offset: u64::from_le_bytes(b[8..16].try_into().ok()?),
            count: u32::from_le_bytes(b[16..20].try_into().ok()?),
        })
    }

    /// The offset after the frame's last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

/// Checks a whole frame's checksum.
pub(crate) fn verify(header: &FrameHeader, frame: &[u8]) -> bool {
    frame.len() as u64 == header.frame_len && crc32c::crc32c(&frame[PREFIX..]) == header.crc
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err(format!("record runs past its frame ({} < {n})", self.b.len()));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

/// Decodes a verified frame's records from offset `from` on.
pub(crate) fn decode(frame: &[u8], from: u64, out: &mut Vec<LogRecord>, max: usize) -> Result<(), String> {
    let mut c = Cursor { b: &frame[PREFIX..] };
    let base = u64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"));
    let count = c.u32()?;
    let timestamp_ms = c.i64()?;
    for i in 0..u64::from(count) {
        if out.len() >= max {
            return Ok(());
        }
        let key_len = c.u32()? as i32;
        let key = match key_len {
            -1 => None,
            n if n >= 0 => Some(c.take(n as usize)?.to_vec()),
            n => return Err(format!("negative key length {n}")),
        };
        let header_count = c.u16()?;
        let mut headers: Headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let n = c.u16()? as usize;
            let name =
                crate::intern(std::str::from_utf8(c.take(n)?).map_err(|_| "header name is not utf-8".to_owned())?);
            let v = c.u32()? as usize;
            headers.push((name, c.take(v)?.to_vec()));
        }
        let v = c.u32()? as usize;
        let value = c.take(v)?;
        let offset = base + i;
        if offset >= from {
            out.push(LogRecord { offset, timestamp_ms, key, headers, value: value.to_vec() });
        }
    }
    Ok(())
}
