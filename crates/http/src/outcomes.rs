//! Waiting for the aggregators' outcomes of the commands an HTTP surface sends.
//!
//! One thread tails every partition of `outcomes` from where it ended when the process started
//! and hands each outcome to whoever registered its command id. A request registers *before*
//! it sends, so an outcome can never pass unseen; many requests share one reader instead of
//! each scanning the topic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use visionlog_codec::{Codec, Outcome};
use visionlog_journal::Topics;
use visionlog_log::EventLog;

/// The waits by command id, and a signal that wakes an idle reader when one is registered.
type Waiters = Arc<(Mutex<HashMap<String, oneshot::Sender<Outcome>>>, Condvar)>;

/// The shared outcome reader.
#[derive(Clone)]
pub struct Outcomes {
    waiters: Waiters,
}

/// A registered wait for one command's outcome.
pub struct Pending {
    rx: oneshot::Receiver<Outcome>,
    waiters: Waiters,
    command_id: String,
}

impl Pending {
    /// Waits up to `timeout`; `None` if no aggregator decided the command by then.
    pub async fn wait(mut self, timeout: Duration) -> Option<Outcome> {
        tokio::time::timeout(timeout, &mut self.rx).await.ok().and_then(Result::ok)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut w) = self.waiters.0.lock() {
            w.remove(&self.command_id);
        }
    }
}

impl Outcomes {
    /// Starts the reader thread; it stops with `stop`.
    pub fn start(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        topics: Topics,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, visionlog_log::LogError> {
        let waiters: Waiters = Arc::default();
        let mut next: Vec<u64> =
            (0..topics.partitions).map(|p| log.end_offset(&topics.outcomes, p)).collect::<Result<_, _>>()?;
        let w = waiters.clone();
        std::thread::Builder::new()
            .name("gateway-outcomes".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut read_any = false;
                    for (p, next) in next.iter_mut().enumerate() {
                        let records = match log.read(&topics.outcomes, p as u32, *next, 1024) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::warn!(error = %e, partition = p, "gateway: reading outcomes failed; retrying");
                                std::thread::sleep(Duration::from_millis(200));
                                continue;
                            }
                        };
                        for r in records {
                            *next = r.offset + 1;
                            read_any = true;
                            let Ok(outcome) = codec.decode_outcome(&r.value) else { continue };
                            let waiter = w.0.lock().ok().and_then(|mut w| w.remove(&outcome.command_id));
                            if let Some(tx) = waiter {
                                let _ = tx.send(outcome);
                            }
                        }
                    }
                    if !read_any {
                        // poll quickly while someone waits; while nobody does, sleep until a
                        // registration wakes the reader (or 50 ms pass)
                        let (lock, wake) = &*w;
                        let Ok(waiting) = lock.lock() else { return };
                        let idle = if waiting.is_empty() { 50 } else { 2 };
                        let _ = wake.wait_timeout(waiting, Duration::from_millis(idle));
                    }
                }
            })
            .expect("spawning the outcome reader");
        Ok(Self { waiters })
    }

    /// Registers a wait for `command_id`'s outcome; send the command after this.
    pub fn register(&self, command_id: &str) -> Pending {
        let (tx, rx) = oneshot::channel();
        self.waiters.0.lock().expect("outcome waiters").insert(command_id.to_owned(), tx);
        self.waiters.1.notify_one();
        Pending { rx, waiters: self.waiters.clone(), command_id: command_id.to_owned() }
    }
}
