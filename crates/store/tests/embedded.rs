//! The embedded store passes the read-store conformance suite and keeps its rows across reopen.

use visionlog_store::*;

#[test]
fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("views.redb")).unwrap();
    conformance::run(&store, "");
}

/// The same suite against the CQL server of the test suite (`SCYLLA_URI`: Cassandra from
/// `scripts/engines.sh`, or a Scylla cluster); fails when none is given.
#[test]
fn conformance_on_the_cql_server() {
    let store = conformance::cql_test_store("conformance");
    conformance::run(&store, "");
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
