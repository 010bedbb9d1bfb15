//! Any bytes as each kind of record visionlog reads from Kafka (Confluent framing, Avro body of
//! every schema of the catalog): an error or a value, never a panic, a hang or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use visionlog_codec::{Codec, EmbeddedRegistry};

fn codec() -> &'static Codec {
    static CODEC: OnceLock<Codec> = OnceLock::new();
    CODEC.get_or_init(|| Codec::new(Arc::new(EmbeddedRegistry::in_memory())).expect("the catalog registers"))
}

fuzz_target!(|data: &[u8]| {
    let c = codec();
    let _ = c.decode_event(data);
    let _ = c.decode_command(data);
    let _ = c.decode_outcome(data);
    let _ = c.decode_dead_letter(data);
    let _ = c.decode_stored_event(data);
    // every schema id the catalog knows, with this body: each schema's reader sees the bytes
    if data.len() > 1 {
        let id = u32::from(data[0] % 64);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&data[1..]);
        let _ = c.decode_event(&framed);
        let _ = c.decode_command(&framed);
        let _ = c.decode_outcome(&framed);
    }
});
