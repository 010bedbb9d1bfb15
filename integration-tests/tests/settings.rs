//! The services' settings: a malformed `VISIONLOG_*` value stops the start with a message that
//! names the variable and the value, before anything is opened.

use visionlog_integration_tests::visionlog;

#[test]
fn a_malformed_setting_in_the_environment_is_refused_at_start_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("VISIONLOG_LEASE_S", "two minutes"),
        ("VISIONLOG_WEBHOOK_ATTEMPTS", "0"),
        ("VISIONLOG_TRAIN_STEPS", "-5"),
        ("VISIONLOG_READY_MAX_LAG", "lots"),
        ("VISIONLOG_PARTITIONS", "four"),
    ] {
        let out = visionlog(&dir.path().join("data")).env(name, value).args(["run"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(value), "{name}={value}: {stderr}");
        assert!(!dir.path().join("data").exists(), "nothing was opened for {name}={value}");
    }
    // the same value on the command line is the flag's error, as clap tells it
    let out = visionlog(&dir.path().join("data")).args(["--lease-s", "0", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lease-s"));
    // a malformed allow-list or log filter too (checked when the process starts, before serving)
    for (name, value) in [("VISIONLOG_URL_ALLOW", "not-a-network"), ("VISIONLOG_LOG_LEVEL", "[[[")] {
        let out = visionlog(&dir.path().join("other")).env(name, value).args(["run"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value}");
        assert!(stderr.contains(value), "{name}={value}: {stderr}");
    }
}

/// The schema registry is chosen by URL like the other backends; a file of its own works, and an
/// unknown scheme is refused with the ones it takes.
#[test]
fn the_schema_registry_is_chosen_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("own-registry.json");
    let url = format!("embedded://{}", file.display());
    let out = visionlog(&dir.path().join("data"))
        .args(["--schema-registry", &url, "schema", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(file.exists(), "the schemas went to the registry named");
    let out = visionlog(&dir.path().join("data"))
        .args(["--schema-registry", "gopher://x", "schema", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("embedded:///"), "{stderr}");
}

/// A tenant without webhook secrets would get unsigned deliveries: the webhook sink says so at
/// every start, and refuses to start with `VISIONLOG_WEBHOOK_REQUIRE_SIGNATURES`.
#[test]
fn unsigned_webhook_tenants_are_warned_about_or_refused() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let tenants = visionlog_integration_tests::write_tenants(dir.path());
    let sink = || {
        let mut c = visionlog(&dir.path().join("data"));
        c.arg("--tenants").arg(&tenants).args(["--fsync", "never", "webhooks"]);
        c
    };
    let out = sink().env("VISIONLOG_WEBHOOK_REQUIRE_SIGNATURES", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("\"beta\"") && !stderr.contains("\"acme\""), "names the unsigned tenant: {stderr}");
    assert!(stderr.contains("VISIONLOG_WEBHOOK_REQUIRE_SIGNATURES"), "{stderr}");

    let child = sink().stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut running = visionlog_integration_tests::Running(child);
    let stderr = running.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let warned = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("WARN") && line.contains("NOT signed") => break line,
            Ok(_) => {}
            Err(e) => panic!("no warning about unsigned deliveries within 30 s ({e})"),
        }
    };
    assert!(warned.contains("beta") && !warned.contains("acme"), "{warned}");
    assert!(matches!(running.0.try_wait(), Ok(None)), "without the setting it serves");
}
