//! The object store against a real S3 server: SeaweedFS on loopback (installed by
//! `scripts/install.sh`), signatures checked.

use std::io::{Read, Write};
use std::time::Duration;
use visionlog_objects::{LocalS3, Objects, ObjectsError, conformance};

/// A plain HTTP/1.1 GET, as a browser or `curl` would fetch a presigned URL.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&out[9..12]).parse().unwrap();
    (status, out[head_end + 4..].to_vec())
}

#[test]
fn s3_store_conforms_checks_signatures_and_presigns() {
    let s3 = LocalS3::start().expect("SeaweedFS (run ./scripts/install.sh)");
    let o = s3.objects("tests").unwrap();
    conformance::run(&o);

    // a prefix is a folder of the bucket: another store under another prefix sees none of it
    o.put("x/1", b"one".to_vec()).unwrap();
    assert!(s3.objects("other").unwrap().list("x").unwrap().is_empty());
    assert_eq!(s3.objects("").unwrap().get("tests/x/1", 10).unwrap(), b"one");

    // a wrong secret is refused
    let wrong = Objects::open_with_keys(&s3.url("tests"), "visionlog", "not-the-secret").unwrap();
    assert!(matches!(wrong.get("x/1", 10), Err(ObjectsError::Backend(_))));

    // a presigned URL reads the object without credentials, and only that object
    let url = o.presigned_get("x/1", Duration::from_secs(300)).unwrap();
    assert_eq!(http_get(&url), (200, b"one".to_vec()));
    let (status, _) = http_get(&url.replace("/x/1?", "/x/2?"));
    assert_eq!(status, 403, "a signature is for one key");

    // an outage is an error the caller can retry, and the data is there after a restart
    let mut s3 = s3;
    s3.stop();
    assert!(matches!(o.get("x/1", 10), Err(ObjectsError::Backend(_))));
    s3.restart().unwrap();
    assert_eq!(o.get("x/1", 10).unwrap(), b"one");
}
