//! The projector: folds each task's events into its [`TaskView`] and writes the rows of every
//! view, version-guarded, into one generation of the view tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_domain::TaskEvent;
use visionlog_journal::{ConsumeError, EventHandler, HandledEvent};
use visionlog_store::{Put, PutOutcome, ReadStore, Row, RowPlace, StoreError};
use visionlog_views::TaskView;
use visionlog_views::generations::table;
use visionlog_views::history::{
    BATCH_TASKS, HISTORY_FROM, HISTORY_TABLES, TASK_EVENTS, batch_row, event_row, history_from_row,
};
use visionlog_views::views::{TASK_STATE, TOMBSTONES, VIEW_TABLES, ViewRow, decode, encode};

/// States kept between batches, so that a busy task is not read back at every batch.
const CACHE_LIMIT: usize = 50_000;
/// Conditional writes per store call.
const PUT_CHUNK: usize = 65_536;

/// What a projector did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProjectorStats {
    /// Events folded in.
    pub events: u64,
    /// Events already reflected (redelivered).
    pub duplicates: u64,
    /// Events that came before their predecessor and waited for it.
    pub parked: u64,
    /// Events that could not be decoded (dead-lettered), passed over.
    pub undecodable: u64,
    /// Rows written.
    pub rows_applied: u64,
    /// Rows skipped by the version guard.
    pub rows_stale: u64,
    /// Microseconds spent computing and writing rows.
    pub write_us: u64,
    /// Microseconds of that spent in the store.
    pub store_us: u64,
}

/// Writes crops (or anything else that must exist before index rows point at it) for tasks
/// whose rows are about to be written; see [`crate::extractor`].
pub trait BeforeRows: Send + Sync {
    /// Called with the tasks of a batch before their rows are written; an error fails the batch.
    fn before_rows(&self, tasks: &[&TaskView]) -> Result<(), ConsumeError>;
}

impl ProjectorStats {
    /// Adds another's counts.
    pub fn add(&mut self, o: &ProjectorStats) {
        self.events += o.events;
        self.duplicates += o.duplicates;
        self.parked += o.parked;
        self.undecodable += o.undecodable;
        self.rows_applied += o.rows_applied;
        self.rows_stale += o.rows_stale;
        self.write_us += o.write_us;
        self.store_us += o.store_us;
    }

    /// What was done since `earlier`.
    pub fn since(&self, earlier: &ProjectorStats) -> ProjectorStats {
        ProjectorStats {
            events: self.events - earlier.events,
            duplicates: self.duplicates - earlier.duplicates,
            parked: self.parked - earlier.parked,
            undecodable: self.undecodable - earlier.undecodable,
            rows_applied: self.rows_applied - earlier.rows_applied,
            rows_stale: self.rows_stale - earlier.rows_stale,
            write_us: self.write_us - earlier.write_us,
            store_us: self.store_us - earlier.store_us,
        }
    }
}

struct Pending {
    /// The state as stored (what the stored rows were computed from).
    before: Option<TaskView>,
    /// The state with this batch's events.
    now: TaskView,
    /// For a task whose state was read from the store (not known from this projector's own
    /// writes), the task-owned rows of every state it passed through in this batch: a write that
    /// failed, or a process that stopped, after storing rows but before storing the state may
    /// have left rows of any of them, and the ones it no longer produces are tombstoned.
    passed: Option<BTreeSet<RowKey>>,
}

/// A row's place: table, partition, clustering.
type RowKey = (&'static str, String, String);

/// The places of the task-owned rows of a state.
fn owned_keys(view: &TaskView) -> impl Iterator<Item = RowKey> {
    view.rows().into_iter().filter(|r| r.version.is_none()).map(|r| (r.table, r.partition, r.clustering))
}

/// Projects `events` into one generation of the views.
pub struct Projector {
    store: Arc<dyn ReadStore>,
    tables: HashMap<&'static str, String>,
    pending: HashMap<String, Pending>,
    cache: HashMap<String, TaskView>,
    parked: HashMap<String, BTreeMap<u64, (i64, TaskEvent)>>,
    before_rows: Option<Arc<dyn BeforeRows>>,
    stats: ProjectorStats,
    /// Writes wait until this many tasks are pending (a rebuild); else every batch writes.
    defer_until: Option<usize>,
    /// Every task this projector has no state of in `cache` has none in the store either: it
    /// writes a fresh generation, from the start, and has not dropped any cached state.
    fresh: bool,
    cache_limit: usize,
    /// The rows of the history index for the events folded in since the last write.
    event_rows: Vec<Put>,
    /// The batches of those events: (correlation id, task id) to the newest version.
    batch_rows: HashMap<(String, String), u64>,
    /// The partition and the offset this projector first resumed from: `history_from` says the
    /// index holds the partition from there on.
    history_from: Option<(u32, u64)>,
    history_from_written: bool,
    /// The partition of `events` this projector handles (known from its first event).
    partition: Option<u32>,
    /// Rows a task stops producing are erased at once rather than tombstoned (a rebuild: its
    /// generation has one writer per partition and no reader, so no older write can come).
    erase_gone: bool,
    /// The tombstones this projector writes, and when they may be erased.
    tombstones: Option<crate::tombstones::Tombstones>,
}

fn store_err(e: StoreError) -> ConsumeError {
    ConsumeError::Transient(e.to_string())
}

impl Projector {
    /// Creates a projector writing generation `generation`.
    pub fn new(store: Arc<dyn ReadStore>, generation: u32) -> Self {
        Self {
            store,
            tables: VIEW_TABLES
                .iter()
                .chain(&HISTORY_TABLES)
                .chain(&[TOMBSTONES])
                .map(|t| (*t, table(t, generation)))
                .collect(),
            pending: HashMap::new(),
            cache: HashMap::new(),
            parked: HashMap::new(),
            before_rows: None,
            stats: ProjectorStats::default(),
            defer_until: None,
            fresh: false,
            cache_limit: CACHE_LIMIT,
            event_rows: Vec::new(),
            batch_rows: HashMap::new(),
            history_from: None,
            history_from_written: false,
            partition: None,
            erase_gone: false,
            tombstones: None,
        }
    }

    /// Lists the tombstones it writes and erases each once `grace` has passed since it was
    /// written (the rule is in [`crate::tombstones`]); without this, tombstones stay for ever.
    pub fn with_tombstone_grace(mut self, grace: std::time::Duration) -> Self {
        self.tombstones = Some(crate::tombstones::Tombstones::new(self.tables[TOMBSTONES].clone(), grace));
        self
    }

    /// A projector that writes a new generation from the start of the log: it knows no stored
    /// state can exist yet, and folds up to `pending_tasks` tasks in memory before writing, so
    /// that a task is written once rather than once per batch. Its position is committed only
    /// when what it folded is written.
    pub fn for_rebuild(store: Arc<dyn ReadStore>, generation: u32, pending_tasks: usize) -> Self {
        Self {
            defer_until: Some(pending_tasks.max(1)),
            fresh: true,
            erase_gone: true,
            cache_limit: CACHE_LIMIT.max(pending_tasks * 2),
            ..Self::new(store, generation)
        }
    }

    /// Runs `hook` before each batch's rows are written.
    pub fn with_before_rows(mut self, hook: Arc<dyn BeforeRows>) -> Self {
        self.before_rows = Some(hook);
        self
    }

    /// What it did so far.
    pub fn stats(&self) -> ProjectorStats {
        self.stats
    }

    fn load(&self, task_id: &str) -> Result<Option<TaskView>, ConsumeError> {
        let row = self.store.get(&self.tables[TASK_STATE], task_id, "").map_err(store_err)?;
        Ok(row.and_then(|r| decode(&r.value)))
    }

    fn put(&mut self, puts: Vec<Put>) -> Result<(), ConsumeError> {
        let started = std::time::Instant::now();
        for chunk in puts.chunks(PUT_CHUNK) {
            // a rebuild's generation is void if it crashes: it syncs once, before switching
            let outcomes =
                if self.defer_until.is_some() { self.store.put_unsynced(chunk) } else { self.store.put(chunk) };
            for outcome in outcomes.map_err(store_err)? {
                match outcome {
                    PutOutcome::Applied => self.stats.rows_applied += 1,
                    PutOutcome::Stale(_) => self.stats.rows_stale += 1,
                }
            }
        }
        self.stats.store_us += started.elapsed().as_micros() as u64;
        Ok(())
    }

    fn put_of(&self, r: ViewRow, version: u64) -> Put {
        Put {
            table: self.tables[r.table].clone(),
            row: Row {
                partition: r.partition,
                clustering: r.clustering,
                version: r.version.unwrap_or(version),
                value: r.value,
            },
        }
    }

    fn write(&mut self, pending: Vec<(String, Pending)>) -> Result<(), ConsumeError> {
        // tasks with events folded in (not those whose events all wait for a predecessor)
        let changed: Vec<&Pending> = pending
            .iter()
            .map(|(_, p)| p)
            .filter(|p| p.now.version > 0 && p.before.as_ref().map(|b| b.version) != Some(p.now.version))
            .collect();
        if let Some(hook) = &self.before_rows {
            hook.before_rows(&changed.iter().map(|p| &p.now).collect::<Vec<_>>())?;
        }
        let mut rows = Vec::new();
        let mut states = Vec::new();
        let mut erased = Vec::new();
        let mut tombstoned = Vec::new();
        for p in changed {
            let version = p.now.version;
            let new_rows = p.now.rows();
            let keys: BTreeSet<(&str, &str, &str)> =
                new_rows.iter().map(|r| (r.table, r.partition.as_str(), r.clustering.as_str())).collect();
            // rows the task no longer produces become tombstones at its new version: those of the
            // stored state, and, for a state read back from the store, those of every state it
            // passed through (a write cut short may have stored any of them)
            let mut gone: BTreeSet<RowKey> = p.passed.clone().unwrap_or_default();
            if let Some(before) = &p.before {
                gone.extend(owned_keys(before));
            }
            for (table, partition, clustering) in gone {
                if !keys.contains(&(table, partition.as_str(), clustering.as_str())) {
                    let place = RowPlace { table: self.tables[table].clone(), partition, clustering };
                    if self.erase_gone {
                        erased.push(place);
                    } else {
                        let row = Row::tombstone(place.partition.clone(), place.clustering.clone(), version);
                        rows.push(Put { table: place.table.clone(), row });
                        tombstoned.push((place, version));
                    }
                }
            }
            for r in new_rows {
                rows.push(self.put_of(r, version));
            }
            let state =
                Row { partition: p.now.task_id.clone(), clustering: String::new(), version, value: encode(&p.now) };
            states.push(Put { table: self.tables[TASK_STATE].clone(), row: state });
        }
        // the index says where it starts before it holds anything from there
        if let (Some((partition, offset)), false) = (self.history_from, self.history_from_written) {
            let row = history_from_row(partition, offset);
            self.put(vec![Put { table: self.tables[HISTORY_FROM].clone(), row }])?;
            self.history_from_written = true;
        }
        rows.append(&mut self.event_rows);
        for ((correlation_id, task_id), version) in self.batch_rows.drain() {
            let row = batch_row(&correlation_id, &task_id, version);
            rows.push(Put { table: self.tables[BATCH_TASKS].clone(), row });
        }
        if let (Some(list), Some(partition)) = (&mut self.tombstones, self.partition) {
            rows.extend(list.listed(partition, tombstoned));
        }
        // the state last: if a write fails half-way, the events are handed again and the rows
        // are computed and written again from the state as it was
        self.put(rows)?;
        if !erased.is_empty() {
            self.store.erase_many(&erased).map_err(store_err)?;
        }
        self.put(states)?;
        if let (Some(list), Some(partition)) = (&mut self.tombstones, self.partition) {
            list.collect(self.store.as_ref(), partition).map_err(store_err)?;
        }
        if self.cache.len() + pending.len() > self.cache_limit {
            self.cache.clear();
            self.fresh = false;
        }
        for (id, p) in pending {
            if p.now.version > 0 {
                self.cache.insert(id, p.now);
            }
        }
        Ok(())
    }
}

impl Projector {
    /// The task's state in this batch, read (from the cache or the store) on its first event.
    fn pending_for(&mut self, id: &str) -> Result<&mut Pending, ConsumeError> {
        if !self.pending.contains_key(id) {
            let (before, passed) = match self.cache.remove(id) {
                Some(s) => (Some(s), None),
                None if self.fresh => (None, None),
                None => (self.load(id)?, Some(BTreeSet::new())),
            };
            self.pending.insert(id.to_owned(), Pending { now: before.clone().unwrap_or_default(), before, passed });
        }
        Ok(self.pending.get_mut(id).expect("inserted above"))
    }

    /// Folds in the task's parked events that follow its state now.
    fn unpark(&mut self, id: &str) {
        let (Some(p), Some(waiting)) = (self.pending.get_mut(id), self.parked.get_mut(id)) else { return };
        while let Some((at, event)) = waiting.remove(&(p.now.version + 1)) {
            p.now.apply(id, p.now.version + 1, at, &event);
            self.stats.events += 1;
            if let Some(passed) = &mut p.passed {
                passed.extend(owned_keys(&p.now));
            }
        }
        // parked events already reflected are dropped
        let reflected = p.now.version;
        waiting.retain(|v, _| *v > reflected);
        if waiting.is_empty() {
            self.parked.remove(id);
        }
    }
}

impl EventHandler for Projector {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        self.partition.get_or_insert(e.partition);
        let id = &e.envelope.task_id;
        let reflected = self.pending_for(id)?.now.version;
        let version = e.envelope.version;
        if version <= reflected {
            self.stats.duplicates += 1;
            return Ok(());
        }
        let row = event_row(e.offset, e.envelope, e.payload);
        self.event_rows.push(Put { table: self.tables[TASK_EVENTS].clone(), row });
        let batch = self.batch_rows.entry((e.envelope.correlation_id.clone(), id.clone())).or_default();
        *batch = (*batch).max(version);
        if version > reflected + 1 {
            // its predecessor has not come yet: wait for it (a log hands a task's events in
            // order; this is for redelivery that does not)
            self.parked.entry(id.clone()).or_default().insert(version, (e.envelope.recorded_at_ms, e.event.clone()));
            self.stats.parked += 1;
            return Ok(());
        }
        self.stats.events += 1;
        let p = self.pending.get_mut(id).expect("read above");
        p.now.apply(id, version, e.envelope.recorded_at_ms, e.event);
        if let Some(passed) = &mut p.passed {
            passed.extend(owned_keys(&p.now));
        }
        self.unpark(id);
        Ok(())
    }

    fn undecodable(&mut self, partition: u32, _offset: u64, envelope: &EventEnvelope) -> Result<(), ConsumeError> {
        self.partition.get_or_insert(partition);
        let id = &envelope.task_id;
        let p = self.pending_for(id)?;
        if envelope.version != p.now.version + 1 {
            return Ok(()); // already passed, or it waits for its predecessor like any event
        }
        // dead-lettered with its reason: the task's later events fold on (none is parked for
        // ever, and the partition's position moves)
        p.now.pass(id, envelope.version, envelope.recorded_at_ms);
        self.stats.undecodable += 1;
        self.unpark(id);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConsumeError> {
        if self.defer_until.is_some_and(|n| self.pending.len() < n) {
            return Ok(()); // not yet: `holding` keeps the position where it is
        }
        self.finish()
    }

    fn finish(&mut self) -> Result<(), ConsumeError> {
        let pending: Vec<(String, Pending)> = self.pending.drain().collect();
        if pending.is_empty() {
            self.event_rows.clear();
            self.batch_rows.clear();
            return Ok(());
        }
        let started = std::time::Instant::now();
        let result = self.write(pending);
        self.stats.write_us += started.elapsed().as_micros() as u64;
        if result.is_err() {
            // what is stored is not known: read it back (the events come again, and their rows)
            self.cache.clear();
            self.fresh = false;
            self.event_rows.clear();
            self.batch_rows.clear();
        }
        result
    }

    /// A write cut short may have stored the rows of the batch's last states; the states after
    /// them tombstone those rows only if this projector folds them again (see `Pending::passed`).
    fn flushes_whole_batches(&self) -> bool {
        self.defer_until.is_none()
    }

    fn resumed_at(&mut self, partition: u32, offset: u64) {
        // the first start counts: a restart resumes at or after it, and the index holds what
        // this projector wrote since
        self.history_from.get_or_insert((partition, offset));
    }

    fn holding(&self) -> bool {
        !self.parked.is_empty() || (self.defer_until.is_some() && !self.pending.is_empty())
    }
}
