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

/// An id as one segment of a path (object keys, crop folders): `[A-Za-z0-9_-]` kept, every
/// other byte as `%XX`, so no id can climb out of its folder or name two folders.
pub fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The folder of a customer's photos in the object store (`images/<customer>/`): a task's
/// `store://` images must be there, so that no task (and no operator serving it) reads another
/// tenant's photos, nor anything else the store keeps (journal segments, exports, models).
pub fn image_folder(customer: &str) -> String {
    format!("images/{}/", path_segment(customer))
}
