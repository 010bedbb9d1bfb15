//! Any record headers (lines of `name=value`, values as raw bytes) as the envelope of a command
//! and of an event: an error naming the header, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visionlog_codec::envelope::{CommandEnvelope, EventEnvelope, HeaderName, Headers};

fuzz_target!(|data: &[u8]| {
    let mut headers: Headers = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let mut parts = line.splitn(2, |b| *b == b'=');
        let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let value = parts.next().unwrap_or_default().to_vec();
        headers.push((HeaderName::Owned(name), value));
    }
    if let Ok(e) = CommandEnvelope::from_headers(&headers) {
        let mut again = Vec::new();
        e.write_headers(&mut again);
        assert_eq!(CommandEnvelope::from_headers(&again).ok(), Some(e), "a command envelope round-trips");
    }
    if let Ok(e) = EventEnvelope::from_headers(&headers) {
        let mut again = Vec::new();
        e.write_headers(&mut again);
        assert_eq!(EventEnvelope::from_headers(&again).ok(), Some(e), "an event envelope round-trips");
    }
});
