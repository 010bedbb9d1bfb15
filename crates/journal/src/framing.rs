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
    /// Type of the decided command.
    pub(crate) const COMMAND_TYPE: &str = "vl.command_type";
    /// Position in the decision: `i/n`.
    pub(crate) const BATCH: &str = "vl.batch";
    /// On a decision copied into another journal (a partition migration): where it was,
    /// `topic/partition/offset`. A copy has no command offset (its command was in another
    /// `commands` topic).
    pub(crate) const COPIED_FROM: &str = "vl.copied_from";
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

/// Where a decision comes from: the command and the owner epoch that decided it.
#[derive(Clone, Copy, Debug)]
pub struct DecisionOrigin<'a> {
    /// The command id.
    pub command_id: &'a str,
    /// The command type.
    pub command_type: &'a str,
    /// The command's offset in `commands`.
    pub command_offset: u64,
    /// The deciding owner's epoch.
    pub epoch: u64,
    /// The trace context to write on the decision's records (the deciding span's).
    pub trace_parent: Option<&'a str>,
}

fn framing(kind: &[u8], origin: DecisionOrigin<'_>, index: usize, count: usize) -> visionlog_log::Headers {
    let mut h = vec![
        (names::KIND.into(), kind.to_vec()),
        (headers::EPOCH.into(), origin.epoch.to_string().into_bytes()),
        (names::COMMAND_ID.into(), origin.command_id.as_bytes().to_vec()),
        (headers::COMMAND_TYPE.into(), origin.command_type.as_bytes().to_vec()),
        (headers::COMMAND_OFFSET.into(), origin.command_offset.to_string().into_bytes()),
        (headers::BATCH.into(), format!("{index}/{count}").into_bytes()),
    ];
    if let Some(tp) = origin.trace_parent {
        h.push((visionlog_telemetry::TRACEPARENT.into(), tp.as_bytes().to_vec()));
    }
    h
}

/// Returns the record of event `index` of a decision of `count` events.
pub fn event_record(
    envelope: &EventEnvelope,
    payload: Vec<u8>,
    origin: DecisionOrigin<'_>,
    index: usize,
    count: usize,
) -> Record {
    let mut h = framing(kinds::EVENT, origin, index, count);
    envelope.write_headers(&mut h);
    Record { key: Some(envelope.task_id.as_bytes().to_vec()), headers: h, value: payload }
}

/// Returns the record of a rejection; its value is the encoded `Outcome`.
pub fn rejection_record(task_id: &str, tenant: Option<&str>, outcome: Vec<u8>, origin: DecisionOrigin<'_>) -> Record {
    let mut h = framing(kinds::REJECTION, origin, 0, 1);
    h.push((names::TASK_ID.into(), task_id.as_bytes().to_vec()));
    // the tenant the command came from (not necessarily the task's customer): its rejections
    // go to that tenant's output topic
    if let Some(tenant) = tenant {
        h.push((names::TENANT.into(), tenant.as_bytes().to_vec()));
    }
    Record { key: Some(task_id.as_bytes().to_vec()), headers: h, value: outcome }
}

/// The records of a decision copied from another journal (a partition migration): the same
/// events, envelopes, command id and trace, at the copier's `epoch`, marked with where they were
/// (`from`: `topic/partition/offset`) and without a command offset.
pub fn copied_records(decision: &crate::Decision, epoch: u64, from: &str) -> Vec<Record> {
    fn origin<'a>(d: &'a crate::Decision, epoch: u64, trace_parent: Option<&'a str>) -> DecisionOrigin<'a> {
        DecisionOrigin {
            command_id: &d.command_id,
            command_type: &d.command_type,
            command_offset: 0,
            epoch,
            trace_parent,
        }
    }
    let mut records = match &decision.body {
        crate::DecisionBody::Accepted(events) => events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let trace = e.trace_parent.as_deref().and_then(|t| std::str::from_utf8(t).ok());
                event_record(&e.envelope, e.payload.clone(), origin(decision, epoch, trace), i, events.len())
            })
            .collect(),
        crate::DecisionBody::Rejected(outcome) => {
            vec![rejection_record(
                &decision.task_id,
                decision.tenant.as_deref(),
                outcome.clone(),
                origin(decision, epoch, None),
            )]
        }
    };
    for r in &mut records {
        r.headers.retain(|(name, _)| name != headers::COMMAND_OFFSET);
        r.headers.push((headers::COPIED_FROM.into(), from.as_bytes().to_vec()));
    }
    records
}
