//! The webhook sink against a real local HTTP receiver that fails on purpose: every result is
//! delivered at least once with a valid signature, retries carry the same idempotency key, a
//! permanently failing endpoint ends in ReportFailed and a dead letter, ops deliver it again once
//! the receiver is fixed, and a callback URL pointing at a private address is refused.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use visionlog_integration_tests::{Api, run_with_gateway, task_request};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// The most requests the receiver held at once.
static MOST_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Whether `/down` was fixed (it answers 200 from then on).
static DOWN_FIXED: AtomicBool = AtomicBool::new(false);

/// A receiver on loopback: `/flaky` answers 503 to the first two tries of each idempotency
/// key, then 200; `/down` 500 until [`DOWN_FIXED`]; anything else 200. Each answer takes 100 ms.
fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
                MOST_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let key = headers.get("idempotency-key").cloned().unwrap_or_default();
                let status = {
                    let mut log = log.lock().unwrap();
                    let tries =
                        log.iter().filter(|g| g.path == path && g.headers.get("idempotency-key") == Some(&key)).count();
                    log.push(Got { path: path.clone(), headers, body });
                    match path.as_str() {
                        "/flaky" if tries < 2 => "503 Service Unavailable",
                        "/down" if !DOWN_FIXED.load(Ordering::SeqCst) => "500 Internal Server Error",
                        _ => "200 OK",
                    }
                };
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            });
        }
    });
    (base, got)
}

fn types(api: &Api, task: &str) -> Vec<Value> {
    api.get(&format!("/v1/tasks/{task}/events?limit=500"), "acme-token").body["events"].as_array().unwrap().clone()
}

#[test]
fn results_reach_callbacks_signed_retried_and_dead_lettered() {
    let (base, got) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("VISIONLOG_WEBHOOK_ATTEMPTS", "3"),
        ("VISIONLOG_WEBHOOK_BACKOFF_MS", "200"),
        ("VISIONLOG_WEBHOOK_CONCURRENCY", "2"),
        // one body in memory at a time: the other first tries wait in the durable schedule,
        // as every retry does
        ("VISIONLOG_WEBHOOK_MAX_QUEUED", "1"),
        // a proxy in the environment is not used: deliveries go to the addresses the guard
        // checked (through this proxy, which refuses connections, none would arrive)
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
    ];
    let (run, api) = run_with_gateway(dir.path(), 2, &envs);
    let create = |key: &str, callback: &str| {
        let body = task_request("store://images/acme/none.png", Some(callback));
        let a = api.call("POST", "/v1/tasks", Some("acme-token"), Some(&body.to_string()), &[("idempotency-key", key)]);
        assert_eq!(a.status, 201, "{a:?}");
        a.body["task_id"].as_str().unwrap().to_owned()
    };
    // the gateway refuses a private callback address that is not allow-listed (loopback is)
    let body = task_request("store://images/acme/none.png", Some("http://192.168.0.10/cb"));
    let a = api.call("POST", "/v1/tasks", Some("acme-token"), Some(&body.to_string()), &[]);
    assert_eq!((a.status, a.body["code"].as_str()), (422, Some("url_not_allowed")));

    let flaky: Vec<String> = (0..4).map(|i| create(&format!("flaky-{i}"), &format!("{base}/flaky"))).collect();
    let down = create("down", &format!("{base}/down"));
    // the simulated operators annotate each task; its result goes to the callback
    for task in &flaky {
        api.wait_for(&format!("/v1/tasks/{task}/events?limit=500"), "acme-token", Duration::from_secs(60), |a| {
            a.body["events"].as_array().is_some_and(|e| e.iter().any(|e| e["type"] == "TaskReported"))
        });
    }
    api.wait_for(&format!("/v1/tasks/{down}/events?limit=500"), "acme-token", Duration::from_secs(60), |a| {
        a.body["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["type"] == "ReportFailed" && e["event"]["last_attempt"] == true))
    });
    let got_now = |got: &Arc<Mutex<Vec<Got>>>| got.lock().unwrap().clone();
    let got_at_first = got_now(&got);
    let now_s = visionlog_journal::now_ms() / 1000;
    for task in &flaky {
        let key = format!("{task}:1");
        let tries: Vec<&Got> = got_at_first.iter().filter(|g| g.headers.get("idempotency-key") == Some(&key)).collect();
        assert_eq!(tries.len(), 3, "two 503s, then delivered: {task}");
        for t in &tries {
            let sig = &t.headers["visionlog-signature"];
            assert!(
                visionlog_webhooks::verify(sig, "whsec-new", &t.body, now_s, 300),
                "signed with the current secret"
            );
            assert!(visionlog_webhooks::verify(sig, "whsec-old", &t.body, now_s, 300), "and the previous one");
            assert!(!visionlog_webhooks::verify(sig, "whsec-other", &t.body, now_s, 300));
            let payload: Value = serde_json::from_slice(&t.body).unwrap();
            assert_eq!((payload["task_id"].as_str(), payload["revision"].as_u64()), (Some(task.as_str()), Some(1)));
            assert!(!payload["objects"].as_array().unwrap().is_empty());
        }
        assert_eq!(
            tries.iter().map(|t| t.body.clone()).collect::<std::collections::HashSet<_>>().len(),
            1,
            "the same body each try"
        );
        let evs = types(&api, task);
        let failed: Vec<u64> = evs
            .iter()
            .filter(|e| e["type"] == "ReportFailed")
            .map(|e| e["event"]["attempt"].as_u64().unwrap())
            .collect();
        assert_eq!(failed, [1, 2], "{task}");
        let reported = evs.iter().find(|e| e["type"] == "TaskReported").unwrap();
        assert_eq!(
            (reported["event"]["attempt"].as_u64(), reported["event"]["status_code"].as_u64()),
            (Some(3), Some(200))
        );
        let result = api.get(&format!("/v1/tasks/{task}/result"), "acme-token");
        assert_eq!(result.body["reported"], true);
    }
    // one endpoint (host and port): at most VISIONLOG_WEBHOOK_CONCURRENCY requests at once
    let most = MOST_IN_FLIGHT.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} requests in flight to one endpoint");
    let down_tries = got_at_first.iter().filter(|g| g.path == "/down").count();
    assert_eq!(down_tries, 3, "three tries, then no more");
    let evs = types(&api, &down);
    let failed: Vec<(u64, bool)> = evs
        .iter()
        .filter(|e| e["type"] == "ReportFailed")
        .map(|e| (e["event"]["attempt"].as_u64().unwrap(), e["event"]["last_attempt"].as_bool().unwrap()))
        .collect();
    assert_eq!(failed, [(1, false), (2, false), (3, true)]);

    // the receiver is fixed; ops find the given-up result in the dead letters and deliver it again
    DOWN_FIXED.store(true, Ordering::SeqCst);
    let redeliver = |body: Value, token: &str| {
        api.call("POST", "/v1/admin/tasks/redeliver", Some(token), Some(&body.to_string()), &[])
    };
    let asked = serde_json::json!({ "given_up": true, "reason": "receiver fixed" });
    assert_eq!(redeliver(asked.clone(), "acme-token").status, 403, "ops only");
    let dry = redeliver(serde_json::json!({ "given_up": true, "reason": "r", "dry_run": true }), "ops-token");
    assert_eq!(dry.status, 202, "{dry:?}");
    let listed: Vec<&str> =
        dry.body["given_up"].as_array().unwrap().iter().map(|g| g["task_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [down.as_str()], "only the given-up result");
    assert!(dry.body["sent"].as_array().unwrap().is_empty(), "a dry run sends nothing");
    let bad = redeliver(serde_json::json!({ "given_up": true, "task_ids": [down], "reason": "r" }), "ops-token");
    assert_eq!(bad.status, 422, "{bad:?}");
    let sent = redeliver(asked, "ops-token");
    assert_eq!(sent.status, 202, "{sent:?}");
    assert_eq!(sent.body["sent"][0]["task_id"].as_str(), Some(down.as_str()));
    api.wait_for(&format!("/v1/tasks/{down}/events?limit=500"), "acme-token", Duration::from_secs(60), |a| {
        a.body["events"].as_array().is_some_and(|e| e.iter().any(|e| e["type"] == "TaskReported"))
    });
    let evs = types(&api, &down);
    let tail: Vec<(&str, Option<u64>)> = evs
        .iter()
        .skip_while(|e| e["type"] != "RedeliveryRequested")
        .map(|e| (e["type"].as_str().unwrap(), e["event"]["attempt"].as_u64()))
        .collect();
    assert_eq!(tail, [("RedeliveryRequested", None), ("TaskReported", Some(1))], "a new round, from try 1");
    let down_tries: Vec<Got> = got_now(&got).into_iter().filter(|g| g.path == "/down").collect();
    assert_eq!(down_tries.len(), 4, "one more try, delivered");
    assert_eq!(down_tries[3].headers["idempotency-key"], format!("{down}:1"), "the same result, the same key");
    assert_eq!(down_tries[3].body, down_tries[0].body, "the same body");
    assert_eq!(api.get(&format!("/v1/tasks/{down}/result"), "acme-token").body["reported"], true);
    drop(run);
    // every try made was taken out of the schedule
    let store = visionlog_store::open(&format!("embedded://{}", dir.path().join("store.redb").display())).unwrap();
    let left = store.scan_table(visionlog_webhooks::RETRIES, None, 100).unwrap();
    assert!(left.is_empty(), "tries left in the schedule: {left:?}");
    drop(store);
    // the dead letter names the result that was not delivered
    let leftovers = visionlog_integration_tests::Leftovers::open(dir.path());
    let letters = leftovers.dead_letters();
    let letter =
        letters.iter().find(|l| l.error_code == "webhook_failed").expect("a dead letter for the failed callback");
    assert_eq!(letter.consumer, "webhooks");
    assert!(letter.error_message.contains("500"), "{}", letter.error_message);
}
