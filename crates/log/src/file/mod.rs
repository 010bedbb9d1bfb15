//! The embedded log: one directory per partition, segment files of checksummed frames.
//!
//! Crash safety: each append is one frame written with one `write`; on open the tail segment
//! is verified frame by frame and a torn last frame is cut (never read). A bad frame with
//! valid data after it is corruption and an error. Durability against power loss follows the
//! [`FsyncPolicy`]; against a killed process it is immediate (the page cache survives).

mod frame;
mod partition;
mod segment;

use crate::group::Coordinator;
use crate::{Appended, EventLog, GroupMember, LogError, LogRecord, Position, Rebalance, Record};
use partition::Partition;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// When appends are made durable with `fsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every append (and commit): nothing acknowledged is lost on power loss.
    Always,
    /// At most this long after an append (checked on the next write, and on flush/drop).
    Interval(Duration),
    /// Never explicitly: the operating system decides. Survives process crashes only.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            ms if ms.ends_with("ms") => ms[..ms.len() - 2]
                .parse()
                .map(|n| Self::Interval(Duration::from_millis(n)))
                .map_err(|_| format!("bad fsync interval {s:?}")),
            _ => Err(format!("fsync policy must be always, never or <N>ms, not {s:?}")),
        }
    }
}

/// Options of the embedded log.
#[derive(Clone, Debug)]
pub struct FileLogOptions {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Size at which a segment is sealed and a new one started.
    pub segment_bytes: u64,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        Self { fsync: FsyncPolicy::Always, segment_bytes: 64 * 1024 * 1024 }
    }
}

/// The embedded, crash-safe log in a directory.
pub struct FileLog {
    root: PathBuf,
    options: FileLogOptions,
    topics: RwLock<HashMap<String, Arc<Vec<Arc<Partition>>>>>,
    groups: Mutex<Groups>,
    coordinator: Arc<Coordinator>,
    _lock: File,
}

struct Groups {
    path: PathBuf,
    /// group -> "topic/partition" -> next offset
    offsets: BTreeMap<String, BTreeMap<String, Position>>,
    dirty_since: Option<Instant>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TopicMeta {
    partitions: u32,
}

impl FileLog {
    /// Opens (or creates) the log in `root`, verifying the tail of every partition.
    pub fn open(root: &Path, options: FileLogOptions) -> Result<Self, LogError> {
        let io = |p: &Path, e| LogError::io(p.display(), e);
        std::fs::create_dir_all(root.join("topics")).map_err(|e| io(root, e))?;
        let lock_path = root.join("LOCK");
        let lock =
            File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| io(&lock_path, e))?;
        lock.try_lock().map_err(|_| LogError::Locked(root.display().to_string()))?;
        let mut topics = HashMap::new();
        for entry in std::fs::read_dir(root.join("topics")).map_err(|e| io(root, e))? {
            let dir = entry.map_err(|e| io(root, e))?.path();
            let meta_path = dir.join("meta.json");
            let Ok(bytes) = std::fs::read(&meta_path) else {
                continue;
            };
            let meta: TopicMeta = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
                path: meta_path.display().to_string(),
                position: 0,
                reason: e.to_string(),
            })?;
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let parts = (0..meta.partitions)
                .map(|p| Partition::open(&dir.join(p.to_string())).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            topics.insert(name, Arc::new(parts));
        }
        let groups_path = root.join("groups.json");
        let offsets = match std::fs::read(&groups_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| LogError::Corrupt {
                path: groups_path.display().to_string(),
                position: 0,
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&groups_path, e)),
        };
        Ok(Self {
            root: root.to_owned(),
            options,
            topics: RwLock::new(topics),
            groups: Mutex::new(Groups { path: groups_path, offsets, dirty_since: None }),
            coordinator: Arc::new(Coordinator::default()),
            _lock: lock,
        })
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
        let topics = self.topics.read().expect("topics lock");
        let parts = topics.get(topic).ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?;
        parts
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| LogError::UnknownPartition { topic: topic.to_owned(), partition })
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics.read().expect("topics lock").values().flat_map(|p| p.iter().cloned()).collect()
    }

    fn write_groups(groups: &mut Groups, sync: bool) -> Result<(), LogError> {
        let tmp = groups.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&groups.offsets).expect("offsets serialize");
        {
            use std::io::Write;
            let mut f = File::create(&tmp).map_err(|e| LogError::io(tmp.display(), e))?;
            f.write_all(&bytes).map_err(|e| LogError::io(tmp.display(), e))?;
            if sync {
                f.sync_all().map_err(|e| LogError::io(tmp.display(), e))?;
            }
        }
        std::fs::rename(&tmp, &groups.path).map_err(|e| LogError::io(groups.path.display(), e))?;
        groups.dirty_since = if sync { None } else { groups.dirty_since.or(Some(Instant::now())) };
        Ok(())
    }
}

fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 200
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl EventLog for FileLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        if !valid_topic_name(topic) || partitions == 0 {
            return Err(LogError::Config(format!("invalid topic {topic:?} with {partitions} partitions")));
        }
        let mut topics = self.topics.write().expect("topics lock");
        if let Some(existing) = topics.get(topic) {
            return match existing.len() as u32 {
                n if n == partitions => Ok(()),
                n => Err(LogError::PartitionMismatch { topic: topic.to_owned(), existing: n, requested: partitions }),
            };
        }
        let dir = self.root.join("topics").join(topic);
        let parts = (0..partitions)
            .map(|p| Partition::open(&dir.join(p.to_string())).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = dir.join("meta.json");
        std::fs::write(&meta, serde_json::to_vec(&TopicMeta { partitions }).expect("meta"))
            .map_err(|e| LogError::io(meta.display(), e))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io(dir.display(), e))?;
        topics.insert(topic.to_owned(), Arc::new(parts));
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        let topics = self.topics.read().expect("topics lock");
        topics.get(topic).map(|p| p.len() as u32).ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }

    /// A batch is one frame: half of it for one record leaves room for the rest of a batch.
    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, LogError> {
        self.partitions(topic)?;
        Ok(Some(frame::MAX_FRAME / 2))
    }

    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError> {
        self.partition(topic, partition)?.append(records, crate::now_ms(), &self.options)
    }

    fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        self.partition(topic, partition)?.read(from, max)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        Ok(self.partition(topic, partition)?.end())
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        Ok(self.partition(topic, partition)?.start())
    }

    /// Whole segments only: the start lands on the base of the segment holding `offset`.
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        self.partition(topic, partition)?.drop_before(offset)
    }

    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        Ok(self.partition(topic, partition)?.wait_for(offset, timeout))
    }

    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), LogError> {
        let mut groups = self.groups.lock().expect("groups lock");
        let slot =
            groups.offsets.entry(group.to_owned()).or_default().entry(format!("{topic}/{partition}")).or_default();
        if slot == position {
            return Ok(());
        }
        *slot = position.clone();
        let sync = match self.options.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => groups.dirty_since.is_some_and(|t| t.elapsed() >= d),
            FsyncPolicy::Never => false,
        };
        Self::write_groups(&mut groups, sync)
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, LogError> {
        let groups = self.groups.lock().expect("groups lock");
        Ok(groups.offsets.get(group).and_then(|g| g.get(&format!("{topic}/{partition}"))).cloned())
    }

    fn flush(&self) -> Result<(), LogError> {
        for p in self.all_partitions() {
            p.sync()?;
        }
        let mut groups = self.groups.lock().expect("groups lock");
        if groups.dirty_since.is_some() {
            Self::write_groups(&mut groups, true)?;
        }
        Ok(())
    }

    /// The embedded log belongs to one process, so its groups are that process's members.
    fn join_group(
        &self,
        group: &str,
        topic: &str,
        handler: Arc<dyn Rebalance>,
    ) -> Result<Box<dyn GroupMember>, LogError> {
        let partitions = self.partitions(topic)?;
        Ok(self.coordinator.join(group, topic, partitions, handler))
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "flushing the log on close failed");
        }
    }
}
