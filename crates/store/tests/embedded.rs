//! The embedded store passes the read-store conformance suite and keeps its rows across reopen.

use visionlog_store::*;

#[test]
fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("views.redb")).unwrap();
    conformance::run_all(&store, "");
}

/// Runs the same suite against a real cluster when `SCYLLA_URI` names one
/// (`scylla://host:9042/keyspace`); no CQL server installs on the development machines.
#[test]
fn scylla_conformance_when_a_cluster_is_given() {
    let Ok(uri) = std::env::var("SCYLLA_URI") else {
        eprintln!("SCYLLA_URI is not set: the Scylla backend's conformance run is skipped");
        return;
    };
    let store = ScyllaStore::connect(&uri).expect("connecting to SCYLLA_URI");
    let prefix = format!("conf{}_", std::process::id());
    conformance::run_all(&store, &prefix);
    for t in ["v", "other", "s", "t", "d"] {
        store.drop_table(&format!("{prefix}{t}")).unwrap();
    }
}

#[test]
fn rows_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.redb");
    let url = format!("embedded://{}", path.display());
    {
        let store = open(&url).unwrap();
        let row = Row { partition: "t".into(), clustering: "".into(), version: 4, value: b"x".to_vec() };
        store.put(&[Put { table: "v".into(), row }]).unwrap();
    }
    let store = open(&url).unwrap();
    assert_eq!(store.get("v", "t", "").unwrap().unwrap().version, 4);
    assert!(open("mongodb://x").is_err());
}
