//! A Kafka-protocol broker for one machine: tansu, in memory, on a free loopback port.
//!
//! For `--log kafka` without an address (demo, bench) and for the tests against a real broker.
//! `scripts/install.sh` installs the binary; `TANSU_BIN` overrides where it is looked for.

use crate::LogError;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker, stopped when dropped.
pub struct LocalBroker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// Where `scripts/install.sh` puts tansu, unless `TANSU_BIN` says otherwise.
pub fn tansu_binary() -> PathBuf {
    match std::env::var_os("TANSU_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/visionlog/bin/tansu"),
    }
}

impl LocalBroker {
    /// Starts tansu on a free loopback port and waits until it accepts connections.
    pub fn start() -> Result<Self, LogError> {
        let bin = tansu_binary();
        if !bin.exists() {
            return Err(LogError::Config(format!(
                "{} is missing: run ./scripts/install.sh (or set TANSU_BIN)",
                bin.display()
            )));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| LogError::io("a free loopback port", e))?
            .port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(&bin)
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
            .map_err(|e| LogError::io(bin.display(), e))?;
        let broker = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&broker.address).is_err() {
            if Instant::now() >= deadline {
                return Err(LogError::Config(format!("tansu did not listen on {} within 20 s", broker.address)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
