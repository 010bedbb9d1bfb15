//! Interning of header names read back from the log.
//!
//! Records carry the same few header names over and over; reading each back as a fresh `String`
//! made header names the largest source of allocations. Names are interned once each (leaked for
//! the life of the process), up to a bound past which they are allocated as before, so a
//! producer that sends random header names cannot grow memory without bound.

use crate::HeaderName;
use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};

/// Distinct names interned at most.
const MAX_INTERNED: usize = 4096;

fn table() -> &'static RwLock<HashSet<&'static str>> {
    static TABLE: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(HashSet::new()))
}

/// Returns a header name, borrowed from the intern table when possible.
pub fn intern(name: &str) -> HeaderName {
    if let Some(known) = table().read().expect("intern table").get(name) {
        return HeaderName::Borrowed(known);
    }
    let mut t = table().write().expect("intern table");
    if let Some(known) = t.get(name) {
        return HeaderName::Borrowed(known);
    }
    if t.len() >= MAX_INTERNED {
        return HeaderName::Owned(name.to_owned());
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    t.insert(leaked);
    HeaderName::Borrowed(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_shared() {
        let (a, b) = (intern("vl.test.name"), intern("vl.test.name"));
        assert!(matches!((&a, &b), (HeaderName::Borrowed(x), HeaderName::Borrowed(y)) if std::ptr::eq(*x, *y)));
        assert_eq!(a, "vl.test.name");
    }
}
