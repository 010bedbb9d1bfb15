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
    // the tests run two model processes at once on two cores: one libtorch thread each keeps
    // their thread pools from spinning against each other (two demos that train took 6 min
    // side by side with a thread per core, 1.5 min with one thread each)
    c.arg("--data-dir").arg(data_dir).stdin(Stdio::null()).env("VISIONLOG_TORCH_THREADS", "1");
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

    /// Every dead letter filed, in order.
    pub fn dead_letters(&self) -> Vec<visionlog_codec::DeadLetter> {
        let records = self.log.read(&self.topics.dead_letters, 0, 0, usize::MAX).expect("read dead letters");
        records.iter().map(|r| self.codec.decode_dead_letter(&r.value).expect("a dead letter decodes")).collect()
    }
}

/// The Kafka broker of a test: Apache Kafka at `KAFKA_BOOTSTRAP` (`scripts/engines.sh up`, run by
/// `scripts/test.sh`), or tansu on a loopback port as a second, compatibility broker.
pub enum Broker {
    /// Apache Kafka at `KAFKA_BOOTSTRAP`, shared by the tests: each names its own topics or prefix.
    External(String),
    /// tansu (in memory) started for this test, stopped when dropped.
    Local(visionlog_log::LocalBroker),
}

impl Broker {
    /// The reference broker: Apache Kafka at `KAFKA_BOOTSTRAP`. Panics when it is not set: a test
    /// that needs Kafka never passes without one.
    pub fn start() -> Self {
        Self::External(kafka_bootstrap())
    }

    /// tansu on a free loopback port (the log conformance suite's second broker).
    pub fn tansu() -> Self {
        Self::Local(visionlog_log::LocalBroker::start().expect("starting tansu"))
    }

    /// A topic name (or prefix) no earlier run used: a shared broker keeps what tests wrote.
    pub fn name(&self, name: &str) -> String {
        match self {
            Self::External(_) => unique_name(name),
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

/// `KAFKA_BOOTSTRAP`: Apache Kafka on loopback, started by `scripts/engines.sh up`.
pub fn kafka_bootstrap() -> String {
    visionlog_log::conformance::kafka_bootstrap()
}

/// `name` made unique to this process and instant (topics, prefixes and keyspaces on shared engines).
pub fn unique_name(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A `scylla://` URL on the test suite's CQL server (`SCYLLA_URI`) with a keyspace of its own.
pub fn cql_store_url(name: &str) -> String {
    visionlog_store::conformance::with_fresh_keyspace(&visionlog_store::conformance::cql_server_uri(), name)
}

/// The path of `scripts/engines.sh` (the fault tests kill and restart an engine with it).
pub fn engines_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/engines.sh")
}

/// Runs `scripts/engines.sh ARGS` and asserts it succeeded.
pub fn engines(args: &[&str]) {
    let out = Command::new("bash").arg(engines_script()).args(args).output().expect("running scripts/engines.sh");
    assert!(out.status.success(), "engines.sh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The smallest valid CreateTask: one image, one class (for tests that count commands).
pub fn small_create_task() -> visionlog_domain::TaskCommand {
    use visionlog_domain::{ClassGroup, CreateTask, ImageRef, ProductClass, Recipe, TaskCommand, TaskType};
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
    run_until_with(data_dir, operators, &[], done)
}

/// [`run_until`] with environment variables of the caller's.
pub fn run_until_with(data_dir: &Path, operators: u32, envs: &[(&str, &str)], done: impl Fn() -> bool) {
    for _ in 0..20 {
        let mut run = visionlog(data_dir)
            .args(["--fsync", "never", "run", "--operators", &operators.to_string()])
            .envs(envs.iter().copied())
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

/// Writes a TorchScript crop recognizer for `classes` (untrained, traced as `torch.jit.trace`
/// would) to `path`.
pub fn traced_recognizer(classes: &[u32], path: &Path) {
    use tch::{Device, Kind, Tensor};
    use visionlog_vision::{RECOGNIZER_INPUT, Recognizer};
    let mut rec = Recognizer::new(classes, Device::Cpu, 9).expect("a recognizer");
    rec.freeze();
    let xs = Tensor::zeros([1, 3, RECOGNIZER_INPUT.1, RECOGNIZER_INPUT.0], (Kind::Float, Device::Cpu));
    let module =
        tch::CModule::create_by_tracing("Recognizer", "forward", &[xs], &mut |i| vec![rec.forward(&i[0]).unwrap()])
            .expect("traced");
    module.save(path).expect("saved");
}

/// Every live row of every view of read-model generation `generation` in a data directory's
/// embedded store, by table: what "rebuilt equals live" compares.
pub fn view_rows(data_dir: &Path, generation: u32) -> Vec<(&'static str, Vec<visionlog_store::Row>)> {
    let store = visionlog_store::EmbeddedStore::open(&data_dir.join("store.redb")).expect("the embedded store");
    view_rows_in(&store, generation)
}

/// Every live row of every view of read-model generation `generation` in `store`, by table.
pub fn view_rows_in(
    store: &dyn visionlog_store::ReadStore,
    generation: u32,
) -> Vec<(&'static str, Vec<visionlog_store::Row>)> {
    use visionlog_views::generations::table;
    visionlog_views::views::VIEW_TABLES
        .iter()
        .map(|t| {
            let mut rows = Vec::new();
            visionlog_store::for_each_row(store, &table(t, generation), |r| {
                rows.push(r);
                Ok(())
            })
            .expect("rows of a view");
            rows.sort_by(|a, b| (&a.partition, &a.clustering).cmp(&(&b.partition, &b.clustering)));
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

/// A service process that is killed when dropped (a failing test leaves nothing running).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The tenants file of the HTTP tests: tenants `acme` (team `shelves`, no quality checks,
/// signing secrets `whsec-new` and `whsec-old`) and `beta`; operators `anna` (team
/// `shelves`, annotation), `otto` (the same) and `quinn` (team `shelves`, quality checks only);
/// admin `ops`. Tokens are
/// `<id>-token`, written as SHA-256 digests.
pub fn write_tenants(dir: &Path) -> PathBuf {
    let t = visionlog_tenants::token_entry;
    let json = serde_json::json!({
        "tenants": [
            {"id": "acme", "team": "shelves", "tokens": [t("acme-token")], "webhook_secrets": ["whsec-new", "whsec-old"], "qc_per_mille": 0},
            {"id": "beta", "team": "fridges", "tokens": [t("beta-token")], "qc_per_mille": 0}
        ],
        "operators": [
            {"id": "anna", "teams": ["shelves"], "skills": ["annotation"], "tokens": [t("anna-token")]},
            {"id": "otto", "teams": ["shelves"], "skills": ["annotation"], "tokens": [t("otto-token")]},
            {"id": "quinn", "teams": ["shelves"], "skills": ["quality_check"], "tokens": [t("quinn-token")]}
        ],
        "admins": [{"id": "ops", "tokens": [t("ops-token")]}]
    });
    let path = dir.join("tenants.json");
    std::fs::write(&path, json.to_string()).expect("writing the tenants file");
    path
}

/// Starts `visionlog run --gateway-addr` on a data directory with the tests' tenants file and
/// loopback allow-listed for callbacks; waits until the gateway answers.
pub fn run_with_gateway(data_dir: &Path, operators: u32, envs: &[(&str, &str)]) -> (Running, Api) {
    let tenants = write_tenants(data_dir);
    run_with_tenants(data_dir, &tenants, operators, envs)
}

/// [`run_with_gateway`] with a tenants file of the caller's.
pub fn run_with_tenants(data_dir: &Path, tenants: &Path, operators: u32, envs: &[(&str, &str)]) -> (Running, Api) {
    let addr = free_loopback_addr();
    let child = visionlog(data_dir)
        .arg("--tenants")
        .arg(tenants)
        .args(["--fsync", "never", "run", "--operators", &operators.to_string(), "--gateway-addr", &addr.to_string()])
        .env("VISIONLOG_URL_ALLOW", "127.0.0.0/8")
        .envs(envs.iter().copied())
        .spawn()
        .expect("visionlog run starts");
    let running = Running(child);
    let api = Api::new(addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http_get(addr, "/v1/ping").is_none_or(|(s, _)| s != 200) {
        assert!(std::time::Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (running, api)
}

/// A client of the gateway.
pub struct Api {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    client: reqwest::blocking::Client,
}

/// An answer: status, body (JSON if it parses, else a string), headers.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    /// A client of the gateway at `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Self { addr, client }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request; `token` as the bearer token, `body` as JSON text.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut r = self.client.request(method.parse().expect("a method"), self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_owned());
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().expect("the gateway answers");
        Self::answer(resp)
    }

    /// Sends raw bytes with a content type.
    pub fn send_bytes(&self, path: &str, token: &str, content_type: &str, bytes: Vec<u8>) -> Answer {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .expect("the gateway answers");
        Self::answer(resp)
    }

    fn answer(resp: reqwest::blocking::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer { status, body, headers }
    }

    /// `GET` with a token.
    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None, &[])
    }

    /// `POST` JSON with a token.
    pub fn post(&self, path: &str, token: &str, body: &serde_json::Value) -> Answer {
        self.call("POST", path, Some(token), Some(&body.to_string()), &[])
    }

    /// Polls `GET path` until `done` holds for the answer (at most `within`).
    pub fn wait_for(
        &self,
        path: &str,
        token: &str,
        within: std::time::Duration,
        done: impl Fn(&Answer) -> bool,
    ) -> Answer {
        let deadline = std::time::Instant::now() + within;
        loop {
            let a = self.get(path, token);
            if done(&a) {
                return a;
            }
            assert!(std::time::Instant::now() < deadline, "{path} did not get there: {a:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A task for tenant `acme` in the scenarios' class group, with three 640x480 photos at
/// `uri` (the simulated operators draw the ground truth of a task of this shape).
pub fn task_request(uri: &str, callback: Option<&str>) -> serde_json::Value {
    let s = visionlog_simulated_operators::scenario::scenario("any", "acme");
    let (w, h) = visionlog_simulated_operators::scenario::IMAGE_SIZE;
    let image = serde_json::json!({"uri": uri, "width": w, "height": h});
    serde_json::json!({
        "task_type": "PRODUCT_DETECTION", "recipe": "DETECTION", "class_group": s.create.class_group,
        "images": [image, image, image], "callback_url": callback,
    })
}
