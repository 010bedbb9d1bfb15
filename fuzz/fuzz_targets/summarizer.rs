//! Any operator session (a JSON list of UI actions over a few existing objects) through the
//! session summarizer: an error, or at most one remove, one add and one label command whose
//! ids are unique; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use visionlog_domain::summarizer::{SessionObject, UiAction, summarize};
use visionlog_domain::{BoundingBox, ObjectId};

fuzz_target!(|data: &[u8]| {
    let Ok(actions) = serde_json::from_slice::<Vec<UiAction>>(data) else { return };
    let mut initial = BTreeMap::new();
    for i in 0..3u32 {
        let bbox = BoundingBox { x: 10.0 * i as f32, y: 5.0, w: 8.0, h: 8.0 };
        initial.insert(ObjectId::from(format!("m{i}").as_str()), SessionObject { image: 0, bbox, class_id: Some(i) });
    }
    if let Ok(summary) = summarize(&initial, &actions) {
        let session = visionlog_domain::SessionId::from("s1");
        let commands = summary.into_commands(&session);
        assert!(commands.len() <= 3, "{commands:?}");
    }
});
