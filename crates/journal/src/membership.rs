//! Scale-out by partitions: a service joins a consumer group over a topic and runs one worker
//! thread per partition the group gives it. On revocation the worker is stopped and joined
//! before the partition is let go, so it never writes after its successor starts.
//!
//! A worker that returns `Ok` on its own (an aggregator fenced by another owner) is started
//! again after a pause while the partition is still ours: the group decides who owns a
//! partition, the journal's epochs only keep the loser from being believed meanwhile. A worker
//! that fails (the broker or the read store unreachable, a request timed out) is started again
//! after a back-off that doubles with each failure in a row, up to 30 s: the service
//! reconnects by itself once its engines are back, and every worker resumes from its committed
//! position. A worker that panics is treated the same way: the panic stays in its partition (a
//! poison record or a bug on one partition never stops the others), and the partition is
//! reported failing ([`Assignment::failing`]) until a restarted worker has run for a while, so
//! the readiness probe tells.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use visionlog_log::{EventLog, Rebalance};

/// A worker's failure.
pub type WorkError = Box<dyn std::error::Error + Send + Sync>;

/// The work on one partition: runs until the flag is set (or it gives the partition up).
pub type Work = dyn Fn(u32, &AtomicBool) -> Result<(), WorkError> + Send + Sync;

/// How long a worker that gave its partition up waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest pause before a failing worker is started again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A worker that ran this long before it failed starts its back-off afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// A restarted worker that has run this long is no longer reported failing.
const RECOVERED_AFTER: Duration = Duration::from_secs(10);

struct Running {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<(), WorkError>>,
    started: Instant,
}

/// The pause before the `n`th failure in a row is retried: 2 s, 4 s, 8 s ... at most 30 s.
fn backoff(n: u32) -> Duration {
    RETRY_AFTER.saturating_mul(1 << n.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

/// What a service's membership holds now, for its readiness probe.
#[derive(Debug, Default)]
pub struct Assignment {
    joined: std::sync::atomic::AtomicBool,
    partitions: Mutex<std::collections::BTreeSet<u32>>,
    failing: Mutex<BTreeMap<u32, Failing>>,
}

/// A partition whose worker failed (or panicked) and is being started again after a pause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// The partition.
    pub partition: u32,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure.
    pub error: String,
}

impl Assignment {
    /// Whether the group has given this member its first assignment.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    /// The partitions the group gives this process now.
    pub fn partitions(&self) -> Vec<u32> {
        self.partitions.lock().expect("assignment lock").iter().copied().collect()
    }

    /// The partitions of this process whose worker failed and has not yet run
    /// [`RECOVERED_AFTER`] since it was started again.
    pub fn failing(&self) -> Vec<Failing> {
        self.failing.lock().expect("assignment lock").values().cloned().collect()
    }
}

struct Owners {
    name: String,
    work: Arc<Work>,
    assignment: Arc<Assignment>,
    running: Mutex<BTreeMap<u32, Running>>,
    /// Partitions we own whose worker ended on its own, and when to start it again.
    retry: Mutex<BTreeMap<u32, Instant>>,
    /// Failures in a row per partition (for the back-off).
    failures: Mutex<BTreeMap<u32, u32>>,
}

impl Owners {
    /// Starts the partition's worker, unless one runs: a retry that comes due after the group
    /// gave the partition again (or the other way round) must not start a second, unstoppable one.
    fn start(&self, partition: u32) {
        self.retry.lock().expect("retry lock").remove(&partition);
        if self.running.lock().expect("running lock").contains_key(&partition) {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (work, flag) = (self.work.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("{}-{partition}", self.name))
            .spawn(move || work(partition, &flag))
            .expect("spawning a partition worker");
        self.running.lock().expect("running lock").insert(partition, Running { stop, handle, started: Instant::now() });
    }

    /// Joins finished workers: a worker that gave up, failed or panicked is started again
    /// later (a failure or a panic after a back-off, and its partition is reported failing).
    fn reap(&self) {
        let finished: Vec<(u32, Running)> = {
            let mut running = self.running.lock().expect("running lock");
            let mut failing = self.assignment.failing.lock().expect("assignment lock");
            failing.retain(|p, _| running.get(p).is_none_or(|r| r.started.elapsed() < RECOVERED_AFTER));
            let done: Vec<u32> = running.iter().filter(|(_, r)| r.handle.is_finished()).map(|(p, _)| *p).collect();
            done.into_iter().filter_map(|p| running.remove(&p).map(|r| (p, r))).collect()
        };
        for (partition, r) in finished {
            let error = match r.handle.join() {
                Ok(Ok(())) => {
                    tracing::warn!(service = self.name, partition, "worker gave its partition up; retrying later");
                    self.retry.lock().expect("retry lock").insert(partition, Instant::now() + RETRY_AFTER);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    format!("panicked: {what}")
                }
            };
            let mut failures = self.failures.lock().expect("failures lock");
            let n = failures.entry(partition).or_default();
            *n = if r.started.elapsed() >= HEALTHY_RUN { 1 } else { *n + 1 };
            let pause = backoff(*n);
            tracing::error!(
                service = self.name, partition, %error, failures_in_a_row = *n, retry_in_s = pause.as_secs(),
                "worker failed; starting it again after a pause"
            );
            let failing = Failing { partition, failures: *n, error };
            self.assignment.failing.lock().expect("assignment lock").insert(partition, failing);
            self.retry.lock().expect("retry lock").insert(partition, Instant::now() + pause);
        }
        let due: Vec<u32> = {
            let mut retry = self.retry.lock().expect("retry lock");
            let now = Instant::now();
            let due: Vec<u32> = retry.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
            due.iter().for_each(|p| _ = retry.remove(p));
            due
        };
        due.into_iter().for_each(|p| self.start(p));
    }

    /// Stops the workers of `partitions` and waits for them; failures are logged (the partition
    /// is leaving us either way).
    fn stop(&self, partitions: &[u32]) {
        let stopping: Vec<(u32, Running)> = {
            let mut running = self.running.lock().expect("running lock");
            let mut retry = self.retry.lock().expect("retry lock");
            partitions
                .iter()
                .filter_map(|p| {
                    retry.remove(p);
                    running.remove(p).map(|r| (*p, r))
                })
                .collect()
        };
        stopping.iter().for_each(|(_, r)| r.stop.store(true, Ordering::Relaxed));
        for (partition, r) in stopping {
            match r.handle.join() {
                Ok(Ok(())) => tracing::info!(service = self.name, partition, "worker stopped"),
                Ok(Err(e)) => {
                    tracing::error!(service = self.name, partition, error = %e, "worker failed while stopping")
                }
                Err(_) => tracing::error!(service = self.name, partition, "worker panicked while stopping"),
            }
        }
    }
}

impl Rebalance for Owners {
    fn assigned(&self, partitions: &[u32]) {
        partitions.iter().for_each(|p| self.start(*p));
        self.assignment.partitions.lock().expect("assignment lock").extend(partitions);
        // the group has answered (an empty assignment too: more members than partitions)
        self.assignment.joined.store(true, Ordering::Relaxed);
    }

    fn revoked(&self, partitions: &[u32]) {
        {
            let mut held = self.assignment.partitions.lock().expect("assignment lock");
            partitions.iter().for_each(|p| _ = held.remove(p));
            let mut failing = self.assignment.failing.lock().expect("assignment lock");
            partitions.iter().for_each(|p| _ = failing.remove(p));
        }
        self.stop(partitions);
    }
}

/// Runs `work` on every partition of `topic` that `group` gives this process, until `stop`;
/// then stops every worker and leaves the group. Threads are named `<name>-<partition>`;
/// `assignment` tells a health probe what the group gave.
pub fn serve_partitions(
    log: &dyn EventLog,
    group: &str,
    topic: &str,
    name: &str,
    work: Arc<Work>,
    stop: &AtomicBool,
    assignment: Arc<Assignment>,
) -> Result<(), WorkError> {
    let owners = Arc::new(Owners {
        name: name.to_owned(),
        work,
        assignment: assignment.clone(),
        running: Mutex::new(BTreeMap::new()),
        retry: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(BTreeMap::new()),
    });
    let mut member = log.join_group(group, topic, owners.clone())?;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if let Err(e) = member.poll(Duration::from_millis(100)).map_err(WorkError::from).map(|()| owners.reap()) {
            break Err(e);
        }
    };
    assignment.joined.store(false, Ordering::Relaxed);
    // leaving revokes (stops and joins) every worker; then nothing may be left running
    drop(member);
    let left: Vec<u32> = owners.running.lock().expect("running lock").keys().copied().collect();
    owners.stop(&left);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use visionlog_log::{FileLog, FileLogOptions, FsyncPolicy};

    fn log(dir: &std::path::Path) -> Arc<dyn EventLog> {
        let log = FileLog::open(dir, FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() }).unwrap();
        log.create_topic("in", 3).unwrap();
        Arc::new(log)
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every partition gets a worker; one that gives its partition up is started again; on stop
    /// every worker is stopped and joined before `serve_partitions` returns.
    #[test]
    fn workers_run_per_partition_restart_after_giving_up_and_stop_with_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        let starts: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        let running = Arc::new(AtomicUsize::new(0));
        let work: Arc<Work> = {
            let (starts, running) = (starts.clone(), running.clone());
            Arc::new(move |p, stop: &AtomicBool| {
                // partition 1 gives up the first time (as a fenced aggregator does)
                if starts[p as usize].fetch_add(1, Ordering::SeqCst) == 0 && p == 1 {
                    return Ok(());
                }
                running.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let service = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || serve_partitions(log.as_ref(), "g", "in", "w", work, &stop, Default::default()))
        };
        wait_until("three workers run", || running.load(Ordering::SeqCst) == 3);
        assert_eq!(starts[1].load(Ordering::SeqCst), 2, "the worker that gave up was started again");
        stop.store(true, Ordering::Relaxed);
        service.join().unwrap().unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0, "every worker stopped before the service returned");
    }

    /// A failing worker (its engine unreachable) and a panicking one (a bug met on one
    /// partition) are started again after a pause while the others keep running, and the
    /// assignment reports the partition failing with its error until it has run a while again.
    #[test]
    fn a_failing_or_panicking_worker_is_started_again_and_the_others_keep_running() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        let starts = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let work: Arc<Work> = {
            let (starts, running) = (starts.clone(), running.clone());
            Arc::new(move |p, stop: &AtomicBool| {
                if p == 2 {
                    match starts.fetch_add(1, Ordering::SeqCst) {
                        0 => return Err("the store is gone".into()),
                        1 => panic!("a bug"),
                        _ => {}
                    }
                }
                running.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Assignment::default());
        let service = {
            let (log, stop, assignment) = (log.clone(), stop.clone(), assignment.clone());
            std::thread::spawn(move || serve_partitions(log.as_ref(), "g", "in", "w", work, &stop, assignment))
        };
        wait_until("partition 2 fails", || !assignment.failing().is_empty());
        assert_eq!(running.load(Ordering::SeqCst), 2, "the other partitions run");
        wait_until("partition 2 panics", || assignment.failing().first().is_some_and(|f| f.failures == 2));
        let failing = assignment.failing();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].partition, 2);
        assert!(failing[0].error.contains("panicked: a bug"), "{failing:?}");
        assert!(!service.is_finished(), "a panic on one partition does not end the service");
        wait_until("partition 2 runs again", || running.load(Ordering::SeqCst) == 3);
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        stop.store(true, Ordering::Relaxed);
        service.join().unwrap().unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!((backoff(1), backoff(2), backoff(3)), (RETRY_AFTER, RETRY_AFTER * 2, RETRY_AFTER * 4));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    /// A partition never gets a second worker: a retry coming due after the group gave the
    /// partition again (it happened after a broker restart: two projectors on one partition,
    /// one of them never stopped) starts nothing while one runs.
    #[test]
    fn a_partition_never_runs_two_workers() {
        let running = Arc::new(AtomicUsize::new(0));
        let work: Arc<Work> = {
            let running = running.clone();
            Arc::new(move |_, stop: &AtomicBool| {
                running.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        };
        let owners = Owners {
            name: "w".into(),
            work,
            assignment: Default::default(),
            running: Mutex::new(BTreeMap::new()),
            retry: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
        };
        owners.retry.lock().unwrap().insert(0, Instant::now());
        owners.assigned(&[0]);
        owners.reap(); // the retry was due: it must not start another
        owners.assigned(&[0]);
        wait_until("the worker runs", || running.load(Ordering::SeqCst) >= 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(running.load(Ordering::SeqCst), 1);
        owners.revoked(&[0]);
        assert_eq!(running.load(Ordering::SeqCst), 0, "revoking stops the one worker");
    }
}
