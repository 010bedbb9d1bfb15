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

/// The Python that `scripts/install.sh` set up with the clients a user of visionlog brings
/// (confluent-kafka, fastavro, pyarrow, duckdb): `VISIONLOG_PYTHON`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("VISIONLOG_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/visionlog/py/bin/python")
    });
    assert!(path.exists(), "{} is missing: run ./scripts/install.sh (or set VISIONLOG_PYTHON)", path.display());
    path
}

/// Returns a `visionlog` command on a data directory.
pub fn visionlog(data_dir: &Path) -> Command {
    let mut c = Command::new(binary());
    c.arg("--data-dir").arg(data_dir).stdin(Stdio::null());
    c
}

/// Returns a `visionlog` command on a data directory whose object store is `prefix` of a local
/// S3 server (SeaweedFS), with its credentials.
pub fn visionlog_on_s3(data_dir: &Path, s3: &visionlog_objects::LocalS3, prefix: &str) -> Command {
    let mut c = visionlog(data_dir);
    c.envs(s3.env()).env("VISIONLOG_OBJECTS", s3.url(prefix));
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

/// The Kafka-protocol broker of a test: a real Apache Kafka when `KAFKA_BOOTSTRAP` names one,
/// else tansu (in memory) on a loopback port, stopped when dropped.
pub enum Broker {
    /// `KAFKA_BOOTSTRAP`, shared by the tests: each names its own topics or prefix.
    External(String),
    /// A broker started for this test.
    Local(visionlog_log::LocalBroker),
}

impl Broker {
    /// Starts a broker (or takes `KAFKA_BOOTSTRAP`) and waits until it accepts connections.
    pub fn start() -> Self {
        match std::env::var("KAFKA_BOOTSTRAP") {
            Ok(address) if !address.is_empty() => Self::External(address),
            _ => Self::Local(visionlog_log::LocalBroker::start().expect("starting tansu")),
        }
    }

    /// A topic name (or prefix) no earlier run used: a shared broker keeps what tests wrote.
    pub fn name(&self, name: &str) -> String {
        match self {
            Self::External(_) => {
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
                format!("{name}-{}-{nanos}", std::process::id())
            }
            Self::Local(_) => name.to_owned(),
        }
    }

    /// `host:port[,host:port]`.
    pub fn address(&self) -> &str {
        match self {
            Self::External(address) => address,
            Self::Local(broker) => &broker.address,
        }
    }
}

/// The smallest valid CreateTask: one image, one class (for tests that count commands).
pub fn small_create_task() -> visionlog_domain::TaskCommand {
    use visionlog_domain::*;
    TaskCommand::CreateTask(CreateTask {
        customer: "acme".into(),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: "k".into(), classes: vec![ProductClass { id: 1, name: "a".into() }] },
        images: vec![ImageRef { uri: "s3://b/1.jpg".into(), width: 10, height: 10 }],
        callback_url: None,
        personal: None,
    })
}

/// Sends SIGTERM to a service process and waits for it to drain and exit; a process still
/// running after `within` is killed and the test fails.
pub fn terminate(child: &mut std::process::Child, within: std::time::Duration) -> std::process::ExitStatus {
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("running kill");
    assert!(sent.success(), "kill -TERM failed");
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the process") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop within {within:?} of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A command's envelope from tenant `acme`, its command id also its correlation id.
pub fn envelope(
    task: &str,
    id: &str,
    actor: &str,
    expected: Option<u64>,
    command: &visionlog_domain::TaskCommand,
) -> visionlog_codec::envelope::CommandEnvelope {
    visionlog_codec::envelope::CommandEnvelope {
        command_id: id.into(),
        task_id: task.into(),
        command_type: command.type_name().into(),
        expected_version: expected,
        actor: actor.into(),
        tenant: "acme".into(),
        correlation_id: id.into(),
        causation_id: None,
        issued_at_ms: 1,
    }
}

/// Runs `visionlog run --operators N` on a data directory in rounds of 3 s until `done` holds
/// (at most 20 rounds); the embedded log is one process's at a time, so commands sent by the
/// CLI go in between rounds.
pub fn run_until(data_dir: &Path, operators: u32, done: impl Fn() -> bool) {
    for _ in 0..20 {
        let mut run = visionlog(data_dir)
            .args(["--fsync", "never", "run", "--operators", &operators.to_string()])
            .spawn()
            .expect("visionlog run starts");
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert!(terminate(&mut run, std::time::Duration::from_secs(30)).success());
        if done() {
            return;
        }
    }
    panic!("the pipeline did not get there");
}

/// Saves a detector of `classes` traced to TorchScript at `path`, as a data
/// scientist's `torch.jit.trace` would give it; untrained, its boxes are what seed 9 makes.
pub fn traced_detector(classes: &[u32], path: &Path) {
    use tch::{Device, Kind, Tensor};
    use visionlog_vision::{DETECTOR_INPUT, Detector};
    let mut det = Detector::new(classes, DETECTOR_INPUT, Device::Cpu, 9).expect("a detector");
    det.freeze();
    let xs = Tensor::zeros([1, 3, DETECTOR_INPUT.1, DETECTOR_INPUT.0], (Kind::Float, Device::Cpu));
    let module =
        tch::CModule::create_by_tracing("Detector", "forward", &[xs], &mut |i| vec![det.forward(&i[0]).unwrap()])
            .expect("traced");
    module.save(path).expect("saved");
}

/// Every live row of every view of read-model generation `generation` in a data directory's
/// embedded store, by table: what "rebuilt equals live" compares.
pub fn view_rows(data_dir: &Path, generation: u32) -> Vec<(&'static str, Vec<visionlog_store::Row>)> {
    use visionlog_projector::generations::table;
    let store = visionlog_store::EmbeddedStore::open(&data_dir.join("store.redb")).expect("the embedded store");
    visionlog_projector::views::VIEW_TABLES
        .iter()
        .map(|t| {
            let mut rows = Vec::new();
            visionlog_store::for_each_row(&store, &table(t, generation), |r| {
                rows.push(r);
                Ok(())
            })
            .expect("rows of a view");
            (*t, rows)
        })
        .collect()
}

/// A free loopback address for a server a test starts (`--health-addr`, say).
pub fn free_loopback_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address")
}

/// `GET path` on a loopback HTTP server: (status, body), or `None` when nothing answers.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or_else(String::new, |(_, b)| b.to_owned());
    Some((status, body))
}
