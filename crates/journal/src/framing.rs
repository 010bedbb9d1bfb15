//! How decisions and claims are written as records of the `events` topic.

use visionlog_codec::envelope::{EventEnvelope, names};
use visionlog_log::Record;

/// Headers of the journal, besides the envelopes'.
pub(crate) mod headers {
    /// Owner epoch that wrote the record.
    pub(crate) const EPOCH: &str = "vl.epoch";
    /// Owner id of a claim.
    pub(crate) const OWNER: &str = "vl.owner";
    /// Offset of the decided command in its `commands` partition.
    pub(crate) const COMMAND_OFFSET: &str = "vl.command_offset";
    /// Position in the decision: `i/n`.
    pub(crate) const BATCH: &str = "vl.batch";
}

/// Record kinds.
pub(crate) mod kinds {
    pub(crate) const CLAIM: &[u8] = b"claim";
    pub(crate) const EVENT: &[u8] = b"event";
    pub(crate) const REJECTION: &[u8] = b"rejection";
}

/// Returns a claim of a partition by an owner at an epoch.
pub fn claim_record(epoch: u64, owner: &str) -> Record {
    Record {
        key: None,
        headers: vec![
            (names::KIND.into(), kinds::CLAIM.to_vec()),
            (headers::EPOCH.into(), epoch.to_string().into_bytes()),
            (headers::OWNER.into(), owner.as_bytes().to_vec()),
        ],
        value: Vec::new(),
    }
}

fn framing(
    kind: &[u8],
    epoch: u64,
    command_id: &str,
    command_offset: u64,
    index: usize,
    count: usize,
) -> Vec<(String, Vec<u8>)> {
    vec![
        (names::KIND.into(), kind.to_vec()),
        (headers::EPOCH.into(), epoch.to_string().into_bytes()),
        (names::COMMAND_ID.into(), command_id.as_bytes().to_vec()),
        (
            headers::COMMAND_OFFSET.into(),
            command_offset.to_string().into_bytes(),
        ),
        (
            headers::BATCH.into(),
            format!("{index}/{count}").into_bytes(),
        ),
    ]
}

/// Returns the record of event `index` of a decision of `count` events.
pub fn event_record(
    envelope: &EventEnvelope,
    payload: Vec<u8>,
    epoch: u64,
    command_offset: u64,
    index: usize,
    count: usize,
) -> Record {
    let mut h = framing(
        kinds::EVENT,
        epoch,
        &envelope.causation_id,
        command_offset,
        index,
        count,
    );
    envelope.write_headers(&mut h);
    Record {
        key: Some(envelope.task_id.as_bytes().to_vec()),
        headers: h,
        value: payload,
    }
}

/// Returns the record of a rejection; its value is the encoded `Outcome`.
pub fn rejection_record(
    task_id: &str,
    command_id: &str,
    outcome: Vec<u8>,
    epoch: u64,
    command_offset: u64,
) -> Record {
    let mut h = framing(kinds::REJECTION, epoch, command_id, command_offset, 0, 1);
    h.push((names::TASK_ID.into(), task_id.as_bytes().to_vec()));
    Record {
        key: Some(task_id.as_bytes().to_vec()),
        headers: h,
        value: outcome,
    }
}
