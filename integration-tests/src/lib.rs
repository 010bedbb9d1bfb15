//! The shared harness of visionlog's end-to-end tests: finds the built `visionlog` binary,
//! runs it in throw-away data directories and reads what it left behind.
//!
//! The binary is taken from `VISIONLOG_BIN`, else from the target directory these tests were
//! built into (`scripts/test.sh` builds it first). Real servers (the tansu Kafka-protocol broker)
//! are started on loopback from what `scripts/install.sh` installed, and stopped on drop.

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

/// A Kafka-protocol broker (tansu, in memory) on a loopback port, stopped when dropped.
pub struct Broker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Self {
        let bin = std::env::var("TANSU_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/visionlog/bin/tansu")
        });
        assert!(bin.exists(), "{} is missing: run ./scripts/install.sh (or set TANSU_BIN)", bin.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        let broker = Self { child, address };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&broker.address).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen on {}", broker.address);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
