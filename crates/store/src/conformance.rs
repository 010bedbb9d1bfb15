//! The behaviour every [`ReadStore`] backend must show; the Scylla backend runs the same suite.

use crate::{Put, PutOutcome, ReadStore, Row};

fn put(table: &str, partition: &str, clustering: &str, version: u64, value: &str) -> Put {
    Put {
        table: table.into(),
        row: Row {
            partition: partition.into(),
            clustering: clustering.into(),
            version,
            value: value.as_bytes().to_vec(),
        },
    }
}

/// Writes apply only with a newer version: redelivery and reordering never go backwards.
pub fn writes_are_version_guarded(store: &dyn ReadStore) {
    assert_eq!(store.put(&[put("v", "t1", "", 2, "two")]).unwrap(), [PutOutcome::Applied]);
    assert_eq!(store.put(&[put("v", "t1", "", 2, "two again")]).unwrap(), [PutOutcome::Stale(2)]);
    assert_eq!(store.put(&[put("v", "t1", "", 1, "one, late")]).unwrap(), [PutOutcome::Stale(2)]);
    assert_eq!(store.get("v", "t1", "").unwrap().unwrap().value, b"two");
    assert_eq!(store.put(&[put("v", "t1", "", 3, "three")]).unwrap(), [PutOutcome::Applied]);
    let row = store.get("v", "t1", "").unwrap().unwrap();
    assert_eq!((row.version, row.value.as_slice()), (3, &b"three"[..]));
    assert!(store.get("v", "nope", "").unwrap().is_none());
    assert!(store.get("other", "t1", "").unwrap().is_none());
}

/// Rows of a partition come back in clustering order, paged; tables scan across partitions.
pub fn partitions_scan_in_order(store: &dyn ReadStore) {
    let puts: Vec<_> = ["c", "a", "b", "d"]
        .iter()
        .map(|c| put("s", "p1", c, 1, c))
        .chain([put("s", "p0", "z", 1, "z"), put("s", "p2", "a", 1, "a")])
        .collect();
    store.put(&puts).unwrap();
    let page = store.scan_partition("s", "p1", None, 2).unwrap();
    assert_eq!(page.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let page = store.scan_partition("s", "p1", Some("b"), 10).unwrap();
    assert_eq!(page.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["c", "d"]);
    let all = store.scan_table("s", None, 100).unwrap();
    assert_eq!(
        all.iter().map(|r| format!("{}/{}", r.partition, r.clustering)).collect::<Vec<_>>(),
        ["p0/z", "p1/a", "p1/b", "p1/c", "p1/d", "p2/a"]
    );
    let rest = store.scan_table("s", Some(("p1", "d")), 100).unwrap();
    assert_eq!(rest.len(), 1);
    assert!(store.scan_partition("s", "p9", None, 10).unwrap().is_empty());
}
