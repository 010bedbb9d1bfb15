//! The behaviour every [`ReadStore`] backend must show; the Scylla backend runs the same suite.
//!
//! Each check takes a table-name prefix, so that runs against a shared cluster do not meet
//! each other's rows: give a fresh one per run.

use crate::{Put, PutOutcome, ReadStore, Row, StoreError, read_partition};

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
pub fn writes_are_version_guarded(store: &dyn ReadStore, prefix: &str) {
    let v = &format!("{prefix}v");
    let other = &format!("{prefix}other");
    assert_eq!(store.put(&[put(v, "t1", "", 2, "two")]).unwrap(), [PutOutcome::Applied]);
    assert_eq!(store.put(&[put(v, "t1", "", 2, "two again")]).unwrap(), [PutOutcome::Stale(2)]);
    assert_eq!(store.put(&[put(v, "t1", "", 1, "one, late")]).unwrap(), [PutOutcome::Stale(2)]);
    assert_eq!(store.get(v, "t1", "").unwrap().unwrap().value, b"two");
    assert_eq!(store.put(&[put(v, "t1", "", 3, "three")]).unwrap(), [PutOutcome::Applied]);
    let row = store.get(v, "t1", "").unwrap().unwrap();
    assert_eq!((row.version, row.value.as_slice()), (3, &b"three"[..]));
    assert!(store.get(v, "nope", "").unwrap().is_none());
    assert!(store.get(other, "t1", "").unwrap().is_none());
}

/// Rows of a partition come back in clustering order, paged; tables scan across partitions,
/// every row once, whatever the page size.
pub fn partitions_scan_in_order(store: &dyn ReadStore, prefix: &str) {
    let s = &format!("{prefix}s");
    let puts: Vec<_> = ["c", "a", "b", "d"]
        .iter()
        .map(|c| put(s, "p1", c, 1, c))
        .chain([put(s, "p0", "z", 1, "z"), put(s, "p2", "a", 1, "a")])
        .collect();
    store.put(&puts).unwrap();
    let page = store.scan_partition(s, "p1", None, 2).unwrap();
    assert_eq!(page.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let page = store.scan_partition(s, "p1", Some("b"), 10).unwrap();
    assert_eq!(page.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["c", "d"]);
    let mut all = store.scan_table(s, None, 100).unwrap();
    assert_eq!(all.len(), 6);
    for page_size in [1, 2, 5] {
        let mut paged: Vec<Row> = Vec::new();
        loop {
            let after = paged.last().map(|r| (r.partition.clone(), r.clustering.clone()));
            let page = store.scan_table(s, after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())), page_size).unwrap();
            assert!(page.len() <= page_size);
            if page.is_empty() {
                break;
            }
            paged.extend(page);
        }
        assert_eq!(paged, all, "pages of {page_size} give the same rows in the same order");
    }
    // within a partition, clustering order
    all.retain(|r| r.partition == "p1");
    assert_eq!(all.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert!(store.scan_partition(s, "p9", None, 10).unwrap().is_empty());
}

/// A tombstone deletes a row but keeps its version: an older write cannot bring it back;
/// a newer one can. Partition reads skip tombstones.
pub fn tombstones_keep_their_version(store: &dyn ReadStore, prefix: &str) {
    let t = &format!("{prefix}t");
    store.put(&[put(t, "p", "a", 1, "a1"), put(t, "p", "b", 1, "b1")]).unwrap();
    let gone = Put { table: t.clone(), row: Row::tombstone("p", "a", 2) };
    assert_eq!(store.put(&[gone]).unwrap(), [PutOutcome::Applied]);
    assert_eq!(store.put(&[put(t, "p", "a", 1, "a1 again")]).unwrap(), [PutOutcome::Stale(2)]);
    let live = read_partition(store, t, "p").unwrap();
    assert_eq!(live.iter().map(|r| r.clustering.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(store.get(t, "p", "a").unwrap().unwrap().is_tombstone());
    assert_eq!(store.put(&[put(t, "p", "a", 3, "a3")]).unwrap(), [PutOutcome::Applied]);
    assert_eq!(read_partition(store, t, "p").unwrap().len(), 2);
}

/// A dropped table is empty and can be written again; bad names are refused before any I/O.
pub fn tables_drop_and_names_are_checked(store: &dyn ReadStore, prefix: &str) {
    let d = &format!("{prefix}d");
    store.put(&[put(d, "p", "a", 1, "x")]).unwrap();
    store.drop_table(d).unwrap();
    assert!(store.get(d, "p", "a").unwrap().is_none());
    assert_eq!(store.put(&[put(d, "p", "a", 1, "y")]).unwrap(), [PutOutcome::Applied]);
    store.drop_table(&format!("{prefix}never_written")).unwrap();
    for bad in ["", "Upper", "1st", "a-b", "a;DROP", &"x".repeat(49)] {
        assert!(matches!(store.put(&[put(bad, "p", "", 1, "x")]), Err(StoreError::Config(_))), "{bad:?}");
    }
}

/// Every check of the suite, on tables named with `prefix`.
pub fn run_all(store: &dyn ReadStore, prefix: &str) {
    writes_are_version_guarded(store, prefix);
    partitions_scan_in_order(store, prefix);
    tombstones_keep_their_version(store, prefix);
    tables_drop_and_names_are_checked(store, prefix);
}
