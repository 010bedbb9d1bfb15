//! The shared harness of visionlog's end-to-end tests: finds the built `visionlog` binary,
//! runs it in throw-away data directories and reads what it left behind.
//!
//! The binary is taken from `VISIONLOG_BIN`, else from the target directory these tests were
//! built into (`scripts/test.sh` builds it first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use visionlog_codec::{Codec, EmbeddedRegistry, Outcome};
use visionlog_journal::Topics;
use visionlog_log::{EventLog, FileLog, FileLogOptions};

/// Returns the path of the `visionlog` binary.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("VISIONLOG_BIN") {
        return PathBuf::from(path);
    }
    // tests run from <target>/<profile>/deps/; the binary sits in <target>/<profile>/
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = profile_dir.join("visionlog");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p visionlog) or set VISIONLOG_BIN",
        bin.display()
    );
    bin
}

/// Returns a `visionlog` command on a data directory.
pub fn visionlog(data_dir: &Path) -> Command {
    let mut c = Command::new(binary());
    c.arg("--data-dir").arg(data_dir).stdin(Stdio::null());
    c
}

/// Parses the last line of a command's output as the JSON report.
pub fn last_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {text}"))
}

/// What a data directory holds after the processes that wrote it have ended.
pub struct Leftovers {
    /// The log.
    pub log: Arc<dyn EventLog>,
    /// The codec over the persisted registry.
    pub codec: Codec,
    /// The topics.
    pub topics: Topics,
}

impl Leftovers {
    /// Opens a data directory left by `visionlog` (default topics).
    pub fn open(data_dir: &Path) -> Self {
        let log: Arc<dyn EventLog> =
            Arc::new(FileLog::open(&data_dir.join("log"), FileLogOptions::default()).expect("open log"));
        let registry = EmbeddedRegistry::open(&data_dir.join("registry.json")).expect("open registry");
        let codec = Codec::new(Arc::new(registry)).expect("codec");
        let partitions = log.partitions("commands").expect("commands topic");
        Self { log, codec, topics: Topics::new("", partitions) }
    }

    /// Every outcome published, in publication order per partition.
    pub fn outcomes(&self) -> Vec<Outcome> {
        let mut out = Vec::new();
        for p in 0..self.topics.partitions {
            for r in self.log.read(&self.topics.outcomes, p, 0, usize::MAX).expect("read outcomes") {
                out.push(self.codec.decode_outcome(&r.value).expect("outcome decodes"));
            }
        }
        out
    }
}
