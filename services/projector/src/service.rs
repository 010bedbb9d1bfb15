//! Running the projector: live on a partition (following the serving generation), and the
//! rebuild of a new generation from the whole history.

use crate::projector::{BeforeRows, Projector, ProjectorStats};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_codec::Codec;
use visionlog_journal::{ConsumeError, Subscription, Topics, consume_partition, consume_until};
use visionlog_log::{EventLog, Position};
use visionlog_store::{ReadStore, StoreError};
use visionlog_views::generations::{self, Generations};
use visionlog_views::views::VIEW_TABLES;

/// Records read per batch in a rebuild: large, so that a task's events fold in memory and its
/// rows are written once per batch.
pub const REBUILD_BATCH: usize = 16_384;

/// What the projector reads and writes.
#[derive(Clone)]
pub struct ProjectorContext {
    /// The log.
    pub log: Arc<dyn EventLog>,
    /// The codec.
    pub codec: Arc<Codec>,
    /// The topics.
    pub topics: Topics,
    /// The read store.
    pub store: Arc<dyn ReadStore>,
    /// Run before rows are written (the extractor), if any.
    pub before_rows: Option<Arc<dyn BeforeRows>>,
    /// How long a live projector keeps a tombstone before erasing it (`None`: for ever); see
    /// [`crate::projector::Projector::with_tombstone_grace`].
    pub tombstone_grace: Option<std::time::Duration>,
}

/// Tasks a rebuild folds in memory before writing their rows.
pub(crate) const REBUILD_PENDING_TASKS: usize = 20_000;

impl ProjectorContext {
    fn projector(&self, generation: u32) -> Projector {
        let p = self.hooked(Projector::new(self.store.clone(), generation));
        match self.tombstone_grace {
            Some(grace) => p.with_tombstone_grace(grace),
            None => p,
        }
    }

    fn hooked(&self, p: Projector) -> Projector {
        match &self.before_rows {
            Some(hook) => p.with_before_rows(hook.clone()),
            None => p,
        }
    }
}

fn store_err(e: StoreError) -> ConsumeError {
    ConsumeError::Transient(e.to_string())
}

/// Projects one partition live until `stop`, into the serving generation; when a rebuild
/// switches generations, it follows, from the position the rebuild reached.
pub fn run_partition(ctx: &ProjectorContext, partition: u32, stop: &AtomicBool) -> Result<(), ConsumeError> {
    while !stop.load(Ordering::Relaxed) {
        let generation = generations::read(ctx.store.as_ref()).map_err(store_err)?.0.serving;
        let group = generations::group(generation);
        let local = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let mut projector = ctx.projector(generation);
                let sub = Subscription {
                    log: ctx.log.as_ref(),
                    codec: &ctx.codec,
                    topics: &ctx.topics,
                    group: &group,
                    partition,
                };
                consume_partition(sub, &mut projector, &local)
            });
            let mut checked = Instant::now();
            while !stop.load(Ordering::Relaxed) && !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                if checked.elapsed() >= Duration::from_secs(1) {
                    checked = Instant::now();
                    match generations::read(ctx.store.as_ref()) {
                        Ok((g, _)) if g.serving != generation => {
                            tracing::info!(partition, from = generation, to = g.serving, "switching generation");
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(partition, error = %e, "reading the generations"),
                    }
                }
            }
            local.store(true, Ordering::Relaxed);
            worker.join().unwrap_or_else(|_| Err(ConsumeError::Transient("projector worker panicked".into())))
        });
        result?;
    }
    Ok(())
}

/// What a rebuild did.
#[derive(Clone, Debug, Default)]
pub struct RebuildReport {
    /// The generation built (now serving).
    pub generation: u32,
    /// The generation it replaced (kept for a rollback).
    pub replaced: u32,
    /// The generation dropped, if one was.
    pub dropped: Option<u32>,
    /// What the projectors did, summed.
    pub stats: ProjectorStats,
    /// Records of `events` read.
    pub records: u64,
    /// Seconds taken.
    pub elapsed_s: f64,
}

/// Why a rebuild could not run.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Another rebuild holds the next generation.
    #[error("generation {0} is being rebuilt (or a rebuild was interrupted: give --force to start over)")]
    Busy(u32),
    /// The generation record changed under the rebuild.
    #[error("the generations changed during the rebuild; nothing was switched")]
    Conflict,
    /// Stopped before it caught up.
    #[error("stopped before catching up; nothing was switched")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Consuming failed.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
}

/// Drops every view table of a generation.
fn drop_generation(store: &dyn ReadStore, generation: u32) -> Result<(), StoreError> {
    let bookkeeping = [visionlog_views::views::TOMBSTONES];
    for t in VIEW_TABLES.iter().chain(&visionlog_views::history::HISTORY_TABLES).chain(&bookkeeping) {
        store.drop_table(&generations::table(t, generation))?;
    }
    Ok(())
}

/// Projects every partition from the group's position up to the end it has now, one thread
/// per partition, with the partition's projector (kept from one pass to the next).
fn catch_up(
    ctx: &ProjectorContext,
    generation: u32,
    projectors: &mut [Projector],
    stop: &AtomicBool,
) -> Result<(ProjectorStats, u64), RebuildError> {
    let group = generations::group(generation);
    let ends = (0..ctx.topics.partitions)
        .map(|p| Ok((p, ctx.log.end_offset(&ctx.topics.events, p)?)))
        .collect::<Result<Vec<_>, visionlog_log::LogError>>()
        .map_err(ConsumeError::from)?;
    let results: Vec<Result<(ProjectorStats, u64), ConsumeError>> = std::thread::scope(|s| {
        let workers: Vec<_> = ends
            .iter()
            .zip(projectors.iter_mut())
            .map(|(&(p, end), projector)| {
                let group = &group;
                s.spawn(move || {
                    let start = ctx.log.committed(group, &ctx.topics.events, p)?.map_or(0, |c| c.offset);
                    let before = projector.stats();
                    let sub = Subscription {
                        log: ctx.log.as_ref(),
                        codec: &ctx.codec,
                        topics: &ctx.topics,
                        group,
                        partition: p,
                    };
                    consume_until(sub, projector, end, REBUILD_BATCH, stop)?;
                    Ok((projector.stats().since(&before), end.saturating_sub(start)))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(ConsumeError::Transient("panicked".into()))))
            .collect()
    });
    let mut total = (ProjectorStats::default(), 0);
    for r in results {
        let (s, records) = r?;
        total.0.add(&s);
        total.1 += records;
    }
    Ok(total)
}

/// Builds a new generation of every view from the whole history, while the serving one keeps
/// serving; then switches readers (and the live projector) to it, keeps the replaced one for a
/// rollback and drops the one before.
pub fn rebuild(ctx: &ProjectorContext, force: bool, stop: &AtomicBool) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let store = ctx.store.as_ref();
    let (g, seen) = generations::read(store)?;
    if let (Some(building), false) = (g.building, force) {
        return Err(RebuildError::Busy(building));
    }
    let generation = g.serving.max(g.building.unwrap_or(0)).max(g.previous.unwrap_or(0)) + 1;
    let claimed = Generations { building: Some(generation), ..g };
    if !generations::write(store, &claimed, seen)? {
        return Err(RebuildError::Conflict);
    }
    let seen = seen + 1;
    // start clean: tables and positions an interrupted attempt may have left
    drop_generation(store, generation)?;
    let group = generations::group(generation);
    for p in 0..ctx.topics.partitions {
        ctx.log.commit(&group, &ctx.topics.events, p, &Position::at(0)).map_err(ConsumeError::from)?;
    }
    let mut projectors: Vec<Projector> = (0..ctx.topics.partitions)
        .map(|_| ctx.hooked(Projector::for_rebuild(ctx.store.clone(), generation, REBUILD_PENDING_TASKS)))
        .collect();
    let (mut stats, mut records) = catch_up(ctx, generation, &mut projectors, stop)?;
    // the live projector kept writing meanwhile: catch up with what came since
    let (more, more_records) = catch_up(ctx, generation, &mut projectors, stop)?;
    if stop.load(Ordering::Relaxed) {
        return Err(RebuildError::Stopped);
    }
    stats.add(&more);
    records += more_records;
    // what the rebuild wrote unsynced is durable before readers are switched to it
    store.sync()?;
    let switched = Generations { serving: generation, building: None, previous: Some(g.serving) };
    if !generations::write(store, &switched, seen)? {
        return Err(RebuildError::Conflict);
    }
    let dropped = g.previous;
    if let Some(old) = dropped {
        drop_generation(store, old)?;
    }
    Ok(RebuildReport {
        generation,
        replaced: g.serving,
        dropped,
        stats,
        records,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
