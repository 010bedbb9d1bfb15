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

/// An erased row is gone, value and version: no read, not even of tombstones, finds it.
pub fn erased_rows_are_gone(store: &dyn ReadStore, prefix: &str) {
    let e = &format!("{prefix}e");
    store.put(&[put(e, "subject", "k1", 1, "secret key"), put(e, "subject", "k2", 1, "other key")]).unwrap();
    store.erase(e, "subject", "k1").unwrap();
    assert!(store.get(e, "subject", "k1").unwrap().is_none());
    let left: Vec<String> =
        store.scan_partition(e, "subject", None, 10).unwrap().into_iter().map(|r| r.clustering).collect();
    assert_eq!(left, ["k2"]);
    store.erase(e, "subject", "never-there").unwrap();
    // many at once, absent ones among them
    let place = |c: &str| crate::RowPlace { table: e.clone(), partition: "subject".into(), clustering: c.into() };
    store.put(&[put(e, "subject", "k3", 1, "a"), put(e, "subject", "k4", 2, "")]).unwrap();
    store.erase_many(&[place("k2"), place("k4"), place("never-there")]).unwrap();
    let left: Vec<String> =
        store.scan_partition(e, "subject", None, 10).unwrap().into_iter().map(|r| r.clustering).collect();
    assert_eq!(left, ["k3"], "erased rows and tombstones are gone, the rest stays");
}

/// One call with many more rows than a backend sends at once: every row is written once, and
/// each outcome is in its row's place.
pub fn large_calls_write_every_row(store: &dyn ReadStore, prefix: &str) {
    let l = &format!("{prefix}l");
    let puts: Vec<Put> = (0..1500).map(|i| put(l, &format!("p{}", i % 7), &format!("{i:05}"), 2, "v")).collect();
    assert!(store.put(&puts).unwrap().iter().all(|o| *o == PutOutcome::Applied));
    let mut again = puts.clone();
    again[700].row.version = 3;
    let outcomes = store.put(&again).unwrap();
    assert_eq!(outcomes[700], PutOutcome::Applied);
    assert!(outcomes.iter().enumerate().all(|(i, o)| i == 700 || *o == PutOutcome::Stale(2)));
    let mut rows = 0;
    crate::for_each_row(store, l, |_| {
        rows += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, 1500);
}

/// Every check of the suite, on tables named with `prefix`.
pub fn run(store: &dyn ReadStore, prefix: &str) {
    writes_are_version_guarded(store, prefix);
    partitions_scan_in_order(store, prefix);
    tombstones_keep_their_version(store, prefix);
    erased_rows_are_gone(store, prefix);
    large_calls_write_every_row(store, prefix);
    tables_drop_and_names_are_checked(store, prefix);
}

/// The CQL server of the test suite: `SCYLLA_URI` (`scripts/engines.sh up` prints it; a Cassandra
/// on loopback in `scripts/test.sh`). A test that needs it fails when it is not set: it never
/// passes without having run.
pub fn cql_server_uri() -> String {
    match std::env::var("SCYLLA_URI") {
        Ok(uri) if !uri.is_empty() => uri,
        _ => panic!(
            "SCYLLA_URI is not set: this test needs a CQL server (`eval $(scripts/engines.sh up)` starts one; \
             scripts/test.sh does it for you)"
        ),
    }
}

/// `uri` with its keyspace replaced by a fresh one named after `name`, so that tests sharing one
/// server never meet each other's tables (options after `?` are kept).
pub fn with_fresh_keyspace(uri: &str, name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_lowercase();
    let keyspace =
        format!("t_{clean}_{}_{}_{}", std::process::id(), nanos % 1_000_000, N.fetch_add(1, Ordering::Relaxed));
    crate::scylla::with_keyspace(uri, &keyspace).unwrap_or_else(|e| panic!("SCYLLA_URI {uri:?}: {e}"))
}

/// A store on the test suite's CQL server in a keyspace of its own (see [`cql_server_uri`]).
pub fn cql_test_store(name: &str) -> crate::ScyllaStore {
    let uri = with_fresh_keyspace(&cql_server_uri(), name);
    crate::ScyllaStore::connect(&uri).unwrap_or_else(|e| panic!("connecting to the CQL server at SCYLLA_URI: {e}"))
}

/// What a faulty call does instead: the rows it applies, then the error it fails with.
pub type Fault = (Vec<Put>, String);

/// Which calls of a [`FaultyPuts`] fail, and how.
pub type FaultPicker = Box<dyn Fn(&[Put]) -> Option<Fault> + Send + Sync>;

/// A store whose `put` asks `fault` first: on `Some((rows, why))` it applies `rows` and fails
/// the call with `why`, as a Scylla call does when one of its concurrent writes fails; everything
/// else is `inner`'s. For tests of writers that must survive a call cut short.
pub struct FaultyPuts {
    /// The store underneath.
    pub inner: std::sync::Arc<dyn ReadStore>,
    /// Which calls fail, and what they apply first.
    pub fault: FaultPicker,
}

impl ReadStore for FaultyPuts {
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        let Some((applied, why)) = (self.fault)(puts) else { return self.inner.put(puts) };
        self.inner.put(&applied)?;
        Err(StoreError::Backend(why))
    }
    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError> {
        self.inner.get(table, partition, clustering)
    }
    fn scan_partition(&self, t: &str, p: &str, after: Option<&str>, n: usize) -> Result<Vec<Row>, StoreError> {
        self.inner.scan_partition(t, p, after, n)
    }
    fn scan_table(&self, t: &str, after: Option<(&str, &str)>, n: usize) -> Result<Vec<Row>, StoreError> {
        self.inner.scan_table(t, after, n)
    }
    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError> {
        self.inner.erase(table, partition, clustering)
    }
    fn drop_table(&self, table: &str) -> Result<(), StoreError> {
        self.inner.drop_table(table)
    }
}
