//! What the aggregator keeps per task: state, version and the commands it decided.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use visionlog_domain::TaskState;

/// The outcome of a command, remembered to answer its redelivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// The command type.
    pub command_type: String,
    /// Whether events were appended.
    pub accepted: bool,
    /// First version appended (accepted).
    pub first_version: u64,
    /// Last version appended (accepted).
    pub last_version: u64,
    /// Rejection code (rejected).
    pub code: Option<String>,
    /// Rejection message (rejected).
    pub message: Option<String>,
    /// Offset of the decision in `events`.
    pub events_offset: u64,
}

/// A task as the aggregator holds it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The folded state.
    pub state: TaskState,
    /// Stream version: the number of events.
    pub version: u64,
    /// Offset of `events` after the last decision folded in.
    pub applied_offset: u64,
    /// Epoch of the owner that wrote this snapshot.
    pub epoch: u64,
    /// Recent decided commands, oldest first.
    pub decided: VecDeque<(String, Decided)>,
}

/// The snapshot encoding's version: a snapshot of another is rebuilt from the journal. 2: the
/// task state gained `changed_since_result`; 3: the recognition step (`recognition_attempts`,
/// `unrecognized`, the `RecognitionPending` stage).
const SNAPSHOT_FORMAT: u8 = 3;

impl TaskRecord {
    /// Finds the decision of a command id.
    pub fn decided(&self, command_id: &str) -> Option<&Decided> {
        self.decided.iter().rev().find(|(id, _)| id == command_id).map(|(_, d)| d)
    }

    /// Remembers a decision, forgetting the oldest beyond `keep`.
    pub fn remember(&mut self, command_id: String, decided: Decided, keep: usize) {
        self.decided.push_back((command_id, decided));
        while self.decided.len() > keep {
            self.decided.pop_front();
        }
    }

    /// Encodes a snapshot.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_FORMAT];
        out.extend(postcard::to_stdvec(self).expect("a task record always serializes"));
        out
    }

    /// Decodes a snapshot; errs, saying why, for another format or bytes that do not decode.
    /// A snapshot that cannot be read is never taken for "no task": the task is rebuilt from
    /// the journal (after an upgrade, a re-sent CreateTask must still find its task).
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&SNAPSHOT_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| format!("format {SNAPSHOT_FORMAT}: {e}"))
            }
            Some((format, _)) => Err(format!("format {format}, this build reads {SNAPSHOT_FORMAT}")),
            None => Err("empty".into()),
        }
    }
}
