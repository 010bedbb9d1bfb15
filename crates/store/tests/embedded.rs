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

#[test]
fn the_page_cache_is_bounded_by_the_url_and_unknown_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.redb");
    let store = open(&format!("embedded://{}?cache_mb=8", path.display())).unwrap();
    conformance::run(store.as_ref(), "");
    drop(store);
    for bad in ["cache_mb=0", "cache_mb=lots", "cache=8"] {
        let Err(e) = open(&format!("embedded://{}?{bad}", path.display())) else { panic!("{bad} accepted") };
        assert!(e.to_string().contains("cache_mb=N"), "{bad}: {e}");
    }
}
