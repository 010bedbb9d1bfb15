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
