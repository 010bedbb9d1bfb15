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
//! position. A worker that panics fails the service, which leaves the group so that others take
//! its partitions.

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

    /// Joins finished workers: a worker that gave up or failed is started again later; a panic
    /// ends the service.
    fn reap(&self) -> Result<(), WorkError> {
        let finished: Vec<(u32, Running)> = {
            let mut running = self.running.lock().expect("running lock");
            let done: Vec<u32> = running.iter().filter(|(_, r)| r.handle.is_finished()).map(|(p, _)| *p).collect();
            done.into_iter().filter_map(|p| running.remove(&p).map(|r| (p, r))).collect()
        };
        for (partition, r) in finished {
            match r.handle.join() {
                Ok(Ok(())) => {
                    tracing::warn!(service = self.name, partition, "worker gave its partition up; retrying later");
                    self.retry.lock().expect("retry lock").insert(partition, Instant::now() + RETRY_AFTER);
                }
                Ok(Err(e)) => {
                    let mut failures = self.failures.lock().expect("failures lock");
                    let n = failures.entry(partition).or_default();
                    *n = if r.started.elapsed() >= HEALTHY_RUN { 1 } else { *n + 1 };
                    let pause = backoff(*n);
                    tracing::error!(
                        service = self.name, partition, error = %e, failures_in_a_row = *n, retry_in_s = pause.as_secs(),
                        "worker failed; starting it again after a pause"
                    );
                    self.retry.lock().expect("retry lock").insert(partition, Instant::now() + pause);
                }
                Err(_) => return Err(format!("{}-{partition} panicked", self.name).into()),
            }
        }
        let due: Vec<u32> = {
            let mut retry = self.retry.lock().expect("retry lock");
            let now = Instant::now();
            let due: Vec<u32> = retry.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
            due.iter().for_each(|p| _ = retry.remove(p));
            due
        };
        due.into_iter().for_each(|p| self.start(p));
        Ok(())
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
        if let Err(e) = member.poll(Duration::from_millis(100)).map_err(WorkError::from).and_then(|()| owners.reap()) {
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

    /// A failing worker (its engine unreachable) is started again after a pause, and the others
    /// keep running; a panicking one fails the service, which stops the others.
    #[test]
    fn a_failing_worker_is_started_again_and_a_panicking_one_fails_the_service() {
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
                        _ => unreachable!("a panic ends the service"),
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
        let err = serve_partitions(log.as_ref(), "g", "in", "w", work, &AtomicBool::new(false), Default::default())
            .unwrap_err();
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the failed worker was started again");
        assert!(err.to_string().contains("w-2 panicked"), "{err}");
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
        owners.reap().unwrap(); // the retry was due: it must not start another
        owners.assigned(&[0]);
        wait_until("the worker runs", || running.load(Ordering::SeqCst) >= 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(running.load(Ordering::SeqCst), 1);
        owners.revoked(&[0]);
        assert_eq!(running.load(Ordering::SeqCst), 0, "revoking stops the one worker");
    }
}
