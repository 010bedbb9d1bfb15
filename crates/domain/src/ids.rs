//! Identifiers of the domain, as validated strings.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Returns the identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// Identifies a task (and its event stream); the partitioning key of the log.
    TaskId
);
string_id!(
    /// Identifies the customer (tenant) that sent a task.
    CustomerId
);
string_id!(
    /// Identifies a human operator.
    OperatorId
);
string_id!(
    /// Identifies one operator session on a task (from assignment to finish or release).
    SessionId
);
string_id!(
    /// Identifies one object (a box) inside a task.
    ObjectId
);

/// Tells whether a string is usable as a task id: 1 to `max` characters of `[A-Za-z0-9._:-]`
/// (it names a stream, a partition key and paths in object stores).
pub fn is_valid_task_id(s: &str, max: usize) -> bool {
    is_valid_id(s, max)
}

/// Tells whether a string is usable as an identifier: 1 to `max` characters of
/// `[A-Za-z0-9._:-]`.
pub(crate) fn is_valid_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
