//! What every object store visionlog runs on must do, run against local files in the unit tests
//! and against a real S3 server (SeaweedFS) in the integration tests.

use crate::{Objects, ObjectsError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writers racing for one key in [`run`].
pub const RACERS: usize = 32;

/// Runs the conformance checks under `conformance/` of the store; panics on a failure.
pub fn run(o: &Objects) {
    let base = format!("conformance/{}", std::process::id());
    o.put(&format!("{base}/a/1"), b"one".to_vec()).unwrap();
    o.put(&format!("{base}/a/2"), b"two!".to_vec()).unwrap();
    o.put(&format!("{base}/b/1"), b"three".to_vec()).unwrap();
    assert_eq!(o.get(&format!("{base}/a/2"), 10).unwrap(), b"two!");
    assert!(matches!(o.get(&format!("{base}/a/2"), 3), Err(ObjectsError::TooLarge(..))));
    assert!(matches!(o.get(&format!("{base}/a/9"), 10), Err(ObjectsError::NotFound(_))));
    let listed = o.list(&format!("{base}/a")).unwrap();
    assert_eq!(
        listed.iter().map(|l| (l.key.as_str(), l.size)).collect::<Vec<_>>(),
        [(format!("{base}/a/1").as_str(), 3), (format!("{base}/a/2").as_str(), 4)]
    );
    assert!(o.list(&format!("{base}/none")).unwrap().is_empty());

    // exactly one of many concurrent conditional creates wins, and its bytes are what is read
    let wins = Arc::new(AtomicUsize::new(0));
    let k = format!("{base}/race");
    std::thread::scope(|s| {
        for i in 0..RACERS {
            let (wins, k, o) = (wins.clone(), k.clone(), o.clone());
            s.spawn(move || {
                if o.put_new(&k, format!("writer {i}").into_bytes()).unwrap() {
                    wins.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.load(Ordering::SeqCst), 1, "exactly one conditional create wins");
    let kept = String::from_utf8(o.get(&k, 100).unwrap()).unwrap();
    assert!(kept.starts_with("writer "), "{kept}");
    assert!(!o.put_new(&k, b"late".to_vec()).unwrap());
    assert_eq!(String::from_utf8(o.get(&k, 100).unwrap()).unwrap(), kept, "a lost create changes nothing");
    assert!(o.put_new_archive(&format!("{base}/archived"), b"cold".to_vec()).unwrap());

    o.delete(&format!("{base}/a/1")).unwrap();
    o.delete(&format!("{base}/a/1")).unwrap();
    assert!(!o.exists(&format!("{base}/a/1")).unwrap());
    for l in o.list(&base).unwrap() {
        o.delete(&l.key).unwrap();
    }
    assert!(o.list(&base).unwrap().is_empty());
}
