//! The operator queue read a page at a time: oldest first across customers, tombstones
//! skipped, and a reader that stops after n rows has read about n rows, not the backlog.

use std::sync::atomic::{AtomicUsize, Ordering};
use visionlog_store::{EmbeddedStore, Put, PutOutcome, ReadStore, Row, RowPlace, StoreError};
use visionlog_views::generations::table;
use visionlog_views::queries::{held, queue};
use visionlog_views::views::{HELD_TASKS, OPERATOR_QUEUE, QueueRow, encode};

/// The embedded store, counting the rows its partition scans return.
struct Counting {
    inner: EmbeddedStore,
    rows_read: AtomicUsize,
}

impl ReadStore for Counting {
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        self.inner.put(puts)
    }
    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError> {
        self.inner.get(table, partition, clustering)
    }
    fn scan_partition(
        &self,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let rows = self.inner.scan_partition(table, partition, after, limit)?;
        self.rows_read.fetch_add(rows.len(), Ordering::SeqCst);
        Ok(rows)
    }
    fn scan_table(&self, table: &str, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<Row>, StoreError> {
        self.inner.scan_table(table, after, limit)
    }
    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError> {
        self.inner.erase(table, partition, clustering)
    }
    fn erase_many(&self, keys: &[RowPlace]) -> Result<(), StoreError> {
        self.inner.erase_many(keys)
    }
    fn drop_table(&self, table: &str) -> Result<(), StoreError> {
        self.inner.drop_table(table)
    }
}

fn queued(customer: &str, task: &str, created_at_ms: i64, operator: Option<&str>) -> QueueRow {
    QueueRow {
        task_id: task.into(),
        customer: customer.into(),
        skill: "annotation".into(),
        version: 3,
        created_at_ms,
        operator: operator.map(str::to_owned),
        session_id: operator.map(|o| format!("s-{o}")),
        session_started_ms: operator.map(|_| created_at_ms),
        ..QueueRow::default()
    }
}

fn put(store: &dyn ReadStore, base: &str, row: &QueueRow, clustering: String, live: bool) {
    let value = if live { encode(row) } else { Vec::new() };
    let row = Row { partition: row.customer.clone(), clustering, version: row.version, value };
    store.put(&[Put { table: table(base, 1), row }]).unwrap();
}

fn store() -> (tempfile::TempDir, Counting) {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    (dir, Counting { inner, rows_read: AtomicUsize::new(0) })
}

#[test]
fn the_queue_merges_customers_oldest_first_skipping_tombstones_and_reads_what_it_returns() {
    let (_dir, store) = store();
    // two customers, 1,000 waiting tasks each, interleaved in time; every third one of acme's
    // a tombstone (a task that left the queue)
    for i in 0..1_000i64 {
        for (customer, at) in [("acme", 2 * i), ("bolt", 2 * i + 1)] {
            let row = queued(customer, &format!("{customer}-{i:04}"), 1_000 + at, None);
            let live = customer != "acme" || i % 3 != 0;
            put(&store, OPERATOR_QUEUE, &row, format!("{:015}|{}", row.created_at_ms, row.task_id), live);
        }
    }
    let customers = ["acme".to_string(), "bolt".to_string()];
    let all: Vec<QueueRow> = queue(&store, &customers).unwrap().map(Result::unwrap).collect();
    assert_eq!(all.len(), 1_000 + 666);
    assert!(all.windows(2).all(|w| (w[0].created_at_ms, &w[0].task_id) < (w[1].created_at_ms, &w[1].task_id)));
    assert!(all.iter().all(|r| r.customer == "bolt" || r.task_id[5..].parse::<i64>().unwrap() % 3 != 0));

    store.rows_read.store(0, Ordering::SeqCst);
    let first: Vec<String> = queue(&store, &customers).unwrap().take(50).map(|r| r.unwrap().task_id).collect();
    assert_eq!(first, all.iter().take(50).map(|r| r.task_id.clone()).collect::<Vec<_>>());
    let read = store.rows_read.load(Ordering::SeqCst);
    assert!(read <= 2 * 64, "{read} rows read for the first 50 of 1,666: a page per customer at most");
}

#[test]
fn the_held_tasks_are_those_an_operator_holds() {
    let (_dir, store) = store();
    for i in 0..100i64 {
        let row = queued("acme", &format!("t-{i:03}"), i, None);
        put(&store, OPERATOR_QUEUE, &row, format!("{:015}|{}", row.created_at_ms, row.task_id), true);
    }
    for (task, operator) in [("t-050", "ann"), ("t-007", "bob")] {
        let row = queued("acme", task, task[2..].parse().unwrap(), Some(operator));
        put(&store, HELD_TASKS, &row, task.to_owned(), true);
    }
    // a task released: its held row is a tombstone
    put(&store, HELD_TASKS, &queued("acme", "t-060", 60, Some("cyd")), "t-060".into(), false);
    store.rows_read.store(0, Ordering::SeqCst);
    let rows = held(&store, &["acme".to_string(), "bolt".to_string()]).unwrap();
    let held: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.task_id.as_str(), r.operator.as_deref())).collect();
    assert_eq!(held, [("t-007", Some("bob")), ("t-050", Some("ann"))]);
    assert!(store.rows_read.load(Ordering::SeqCst) <= 3, "the waiting queue is not read");
}
