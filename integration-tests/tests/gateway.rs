//! The HTTP API against a running gateway (`visionlog run --gateway-addr`): every endpoint,
//! authentication, tenant isolation, bad bodies, idempotent create, the operator workflow
//! (queue, version-guarded assignment, leases that expire, a session in bulk) and the models.

use serde_json::{Value, json};
use std::io::Read;
use std::time::Duration;
use visionlog_integration_tests::{Api, cql_store_url, kafka_bootstrap, run_with_gateway, task_request, unique_name};

const ACME: &str = "acme-token";
const BETA: &str = "beta-token";
const ANNA: &str = "anna-token";
const OTTO: &str = "otto-token";
const OPS: &str = "ops-token";

fn upload_photo(api: &Api) -> String {
    let (photo, _) = visionlog_simulated_operators::scenario::labelled_photo("gateway-test");
    let a = api.send_bytes("/v1/images", ACME, "image/png", photo.to_png());
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!((a.body["width"].as_u64(), a.body["height"].as_u64()), (Some(640), Some(480)));
    a.body["uri"].as_str().unwrap().to_owned()
}

fn create(api: &Api, key: &str, body: &Value) -> visionlog_integration_tests::Answer {
    api.call("POST", "/v1/tasks", Some(ACME), Some(&body.to_string()), &[("idempotency-key", key)])
}

/// POSTs the head of a `len`-byte JSON body and 1 KiB of it, then reads the answer.
fn oversized_post(api: &Api, path: &str, len: usize) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ACME}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n",
        api.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&[b' '; 1024]);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

fn code(a: &visionlog_integration_tests::Answer) -> &str {
    a.body["code"].as_str().unwrap_or("")
}

fn in_queue(api: &Api, task: &str) -> Value {
    in_queue_after(api, task, 0)
}

/// Waits until `task` waits in the queue at a version above `version` (after it left it).
fn in_queue_after(api: &Api, task: &str, version: u64) -> Value {
    let waiting = |r: &Value| r["task_id"] == task && r["operator"].is_null() && r["version"].as_u64() > Some(version);
    let a = api.wait_for("/v1/operator/queue", ANNA, Duration::from_secs(30), |a| {
        a.body["tasks"].as_array().is_some_and(|t| t.iter().any(waiting))
    });
    a.body["tasks"].as_array().unwrap().iter().find(|r| waiting(r)).unwrap().clone()
}

#[test]
fn the_http_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_run, api) = run_with_gateway(dir.path(), 0, &[("VISIONLOG_LEASE_S", "2")]);

    // --- authentication
    let a = api.call("GET", "/v1/tasks/t-1", None, None, &[]);
    assert_eq!((a.status, code(&a)), (401, "unauthenticated"));
    assert!(a.headers.get("www-authenticate").is_some());
    assert_eq!(a.headers["content-type"], "application/problem+json");
    let a = api.get("/v1/tasks/t-1", "not-a-token");
    assert_eq!((a.status, code(&a)), (401, "invalid_token"));

    // --- create, idempotently
    let uri = upload_photo(&api);
    let body = task_request(&uri, None);
    let first = create(&api, "order-1", &body);
    assert_eq!(first.status, 201, "{first:?}");
    let task = first.body["task_id"].as_str().unwrap().to_owned();
    assert_eq!(first.headers["location"], format!("/v1/tasks/{task}").as_str());
    let again = create(&api, "order-1", &body);
    assert_eq!((again.status, again.body["task_id"].as_str()), (200, Some(task.as_str())), "{again:?}");
    assert_eq!(again.body["idempotent_replay"], true);
    let mut other = body.clone();
    other["images"].as_array_mut().unwrap().pop();
    let reused = create(&api, "order-1", &other);
    assert_eq!((reused.status, code(&reused)), (422, "idempotency_key_reused"));

    // personal data is sealed by the gateway: the events show its subject, never the fields
    let mut with_personal = body.clone();
    with_personal["personal"] =
        json!({"subject": "store-7-manager", "contact_email": "mia@store7.example", "note": "back door"});
    let sealed = create(&api, "order-personal", &with_personal);
    assert_eq!(sealed.status, 201, "{sealed:?}");
    let sealed_task = sealed.body["task_id"].as_str().unwrap();
    let evs = api.get(&format!("/v1/tasks/{sealed_task}/events"), ACME);
    assert_eq!(evs.body["events"][0]["event"]["personal"], json!({"subject": "acme:store-7-manager", "sealed": true}));
    assert!(!evs.body.to_string().contains("mia@store7.example") && !evs.body.to_string().contains("back door"));
    let mut bad_subject = with_personal.clone();
    bad_subject["personal"]["subject"] = json!("no spaces allowed");
    assert_eq!(create(&api, "order-bad-subject", &bad_subject).status, 422);

    // --- bad bodies
    let a = api.call("POST", "/v1/tasks", Some(ACME), Some("{\"recipe\": "), &[]);
    assert_eq!((a.status, code(&a)), (400, "malformed_json"), "{a:?}");
    let a = api.call("POST", "/v1/tasks", Some(ACME), Some("{\"recipe\": \"DETECTION\", \"colour\": 1}"), &[]);
    assert_eq!((a.status, code(&a)), (422, "invalid_request"), "{a:?}");
    // a 2 MiB body is refused on its Content-Length, before it is read: a raw client sends the
    // head and a little of the body, then reads the answer
    let (status, text) = oversized_post(&api, "/v1/tasks", 2 << 20);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"code\":\"payload_too_large\""), "{text}");
    let a = api.send_bytes("/v1/tasks", ACME, "text/plain", b"{}".to_vec());
    assert_eq!((a.status, code(&a)), (415, "unsupported_media_type"), "{a:?}");
    let a = api.send_bytes("/v1/images", ACME, "image/png", b"not a png".to_vec());
    assert_eq!((a.status, code(&a)), (422, "invalid_image"), "{a:?}");
    let mut bad_box = body.clone();
    bad_box["images"][0]["width"] = json!(0);
    let a = create(&api, "order-bad", &bad_box);
    assert_eq!((a.status, code(&a)), (422, "invalid_image_size"), "{a:?}");
    for private in ["http://10.0.0.7/cb", "http://169.254.169.254/latest", "http://[fd00::1]/cb"] {
        let a = create(&api, &format!("order-{private}"), &task_request(&uri, Some(private)));
        assert_eq!((a.status, code(&a)), (422, "url_not_allowed"), "{private}: {a:?}");
        assert_eq!(a.body["reason"], "private_address");
    }
    let mut private_image = body.clone();
    private_image["images"][1]["uri"] = json!("http://10.1.2.3/shelf.png");
    let a = create(&api, "order-image", &private_image);
    assert_eq!((a.status, code(&a)), (422, "url_not_allowed"), "an image URL is guarded too: {a:?}");
    let a = api.post("/v1/tasks", ANNA, &body);
    assert_eq!((a.status, code(&a)), (403, "forbidden"));

    // --- tenant isolation: another tenant's task is a missing task
    let mine = api.get(&format!("/v1/tasks/{task}"), ACME);
    assert_eq!((mine.status, mine.body["customer"].as_str()), (200, Some("acme")), "{mine:?}");
    let missing = api.get("/v1/tasks/t-does-not-exist", BETA);
    for path in ["", "/events", "/state", "/result", "/events/stream"] {
        let theirs = api.get(&format!("/v1/tasks/{task}{path}"), BETA);
        assert_eq!((theirs.status, code(&theirs)), (404, "task_not_found"), "{path}: {theirs:?}");
    }
    assert_eq!((missing.status, code(&missing)), (404, "task_not_found"));
    let a = api.post(&format!("/v1/tasks/{task}/cancel"), BETA, &json!({"reason": "mine now"}));
    assert_eq!(a.status, 404);

    // --- the task goes to an operator (no model deployed): events, paged and live
    let queued = in_queue(&api, &task);
    assert_eq!((queued["skill"].as_str(), queued["customer"].as_str()), (Some("annotation"), Some("acme")));
    let page = api.get(&format!("/v1/tasks/{task}/events?limit=2"), ACME);
    assert_eq!(page.status, 200, "{page:?}");
    let evs = page.body["events"].as_array().unwrap();
    assert_eq!((evs.len(), evs[0]["type"].as_str(), evs[0]["version"].as_u64()), (2, Some("TaskCreated"), Some(1)));
    assert_eq!(page.body["next_after_version"], 2);
    let rest = api.get(&format!("/v1/tasks/{task}/events?after_version=2"), ACME);
    let rest_types: Vec<&str> =
        rest.body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(rest_types.contains(&"AssistanceRequested"), "{rest_types:?}");
    let a = api.get(&format!("/v1/tasks/{task}/events?limit=many"), ACME);
    assert_eq!((a.status, code(&a)), (400, "invalid_query"));

    // the live stream: the history, then what happens next (the assignment below)
    let stream_url = api.url(&format!("/v1/tasks/{task}/events/stream?after_version=1"));
    let live = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut resp = client.get(stream_url).bearer_auth(ACME).send().unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("event: OperatorAssigned") {
            let n = resp.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen
    });

    // --- operators: queue scoping, version-guarded assignment
    let a = api.get("/v1/operator/queue", ACME);
    assert_eq!((a.status, code(&a)), (403, "forbidden"));
    let a = api.get("/v1/operator/queue?team=fridges", ANNA);
    assert_eq!(a.status, 403);
    let a = api.get("/v1/operator/queue?skill=quality_check", ANNA);
    assert!(a.body["tasks"].as_array().unwrap().is_empty(), "{a:?}");
    let version = queued["version"].as_u64().unwrap();
    let quinn = api.post(&format!("/v1/operator/tasks/{task}/assign"), "quinn-token", &json!({"version": version}));
    assert_eq!((quinn.status, code(&quinn)), (403, "forbidden"), "an annotation task needs the skill: {quinn:?}");
    let a = api.get("/v1/operator/queue", "quinn-token");
    assert!(a.body["tasks"].as_array().unwrap().is_empty(), "quinn's queue holds quality checks only: {a:?}");
    let anna = api.post(&format!("/v1/operator/tasks/{task}/assign"), ANNA, &json!({"version": version}));
    let otto = api.post(&format!("/v1/operator/tasks/{task}/assign"), OTTO, &json!({"version": version}));
    assert_eq!(anna.status, 200, "{anna:?}");
    assert_eq!((otto.status, code(&otto)), (409, "version_conflict"), "one task, one operator: {otto:?}");
    let session = anna.body["session_id"].as_str().unwrap().to_owned();
    let seen = live.join().unwrap();
    assert!(seen.contains("event: AssistanceRequested") && seen.contains("id: 2"), "{seen}");
    assert!(!seen.contains("event: TaskCreated"), "after_version=1 skips version 1: {seen}");

    // the tool's view of the task
    let view = api.get(&format!("/v1/operator/tasks/{task}"), ANNA);
    assert_eq!((view.status, view.body["step"].as_str()), (200, Some("annotate")), "{view:?}");
    assert_eq!(view.body["images"].as_array().unwrap().len(), 3);
    assert_eq!(api.get(&format!("/v1/operator/tasks/{task}"), OTTO).body["step"], "taken");
    let img = api.call("GET", &format!("/v1/operator/tasks/{task}/images/0"), Some(ANNA), None, &[]);
    assert_eq!(
        (img.status, &img.headers["content-type"]),
        (200, &"image/png".parse::<reqwest::header::HeaderValue>().unwrap())
    );
    let a = api.get(&format!("/v1/operator/tasks/{task}/images/7"), ANNA);
    assert_eq!((a.status, code(&a)), (404, "no_such_image"));
    let a = api.get(&format!("/v1/operator/tasks/{task}/images/first"), ANNA);
    assert_eq!((a.status, code(&a)), (400, "invalid_path"));
    let a = api.post(&format!("/v1/operator/tasks/{task}/heartbeat"), ANNA, &json!({"session_id": session}));
    assert_eq!(a.status, 200, "{a:?}");
    let a = api.post(&format!("/v1/operator/tasks/{task}/heartbeat"), OTTO, &json!({"session_id": session}));
    assert_eq!((a.status, code(&a)), (409, "not_your_session"));

    // a session in bulk: a box drawn, moved, a mistake drawn and deleted, then labelled
    let base = view.body["version"].as_u64().unwrap();
    let bbox = |x: f64| json!({"x": x, "y": 40.0, "w": 80.0, "h": 120.0});
    let actions = json!([
        {"op": "add", "object_id": "b1", "image": 0, "bbox": bbox(10.0)},
        {"op": "move", "object_id": "b1", "bbox": bbox(20.0)},
        {"op": "add", "object_id": "oops", "image": 1, "bbox": bbox(5.0), "class_id": 2},
        {"op": "remove", "object_id": "oops"},
        {"op": "label", "object_id": "b1", "class_id": 3},
    ]);
    let bad = api.post(
        &format!("/v1/operator/tasks/{task}/session"),
        ANNA,
        &json!({"session_id": session, "base_version": base, "actions": [{"op": "remove", "object_id": "nope"}]}),
    );
    assert_eq!((bad.status, code(&bad)), (422, "invalid_session"), "{bad:?}");
    // a box outside its image: refused whole, nothing applied (decided in the gateway first)
    let outside = api.post(
        &format!("/v1/operator/tasks/{task}/session"),
        ANNA,
        &json!({"session_id": session, "base_version": base, "actions": [
            {"op": "add", "object_id": "fine", "image": 0, "bbox": bbox(10.0)},
            {"op": "add", "object_id": "off", "image": 0, "bbox": bbox(600.0)},
        ]}),
    );
    assert_eq!((outside.status, code(&outside)), (422, "invalid_box"), "{outside:?}");
    let sent = api.post(
        &format!("/v1/operator/tasks/{task}/session"),
        ANNA,
        &json!({"session_id": session, "base_version": base, "actions": actions}),
    );
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.body["summary"], json!({"removed": 0, "added": 1, "labeled": 0}), "summarized: {sent:?}");
    let result = api.wait_for(&format!("/v1/tasks/{task}/result"), ACME, Duration::from_secs(30), |a| a.status == 200);
    let objects = result.body["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{result:?}");
    assert_eq!((objects[0]["class_id"].as_u64(), objects[0]["bbox"]["x"].as_f64()), (Some(3), Some(20.0)));
    assert_eq!(result.body["source"], "OPERATOR");
    let events = api.get(&format!("/v1/tasks/{task}/events?limit=500"), ACME);
    let types: Vec<&str> =
        events.body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.ends_with(&["ObjectsAdded", "OperatorFinished", "TaskResultGenerated"]), "{types:?}");
    let by_anna = events.body["events"].as_array().unwrap().iter().filter(|e| e["actor"] == "operator:anna").count();
    assert_eq!(by_anna, 3, "assigned, added, finished by anna");

    // time travel
    let then = api.get(&format!("/v1/tasks/{task}/state?version=1"), ACME);
    assert_eq!((then.status, then.body["version"].as_u64()), (200, Some(1)));
    assert_eq!(then.body["state"]["stage"], "Created", "{then:?}");
    let before = api.get(&format!("/v1/tasks/{task}/state?at_ms=1"), ACME);
    assert_eq!((before.status, code(&before)), (404, "no_state_then"));
    let summary = api.get(&format!("/v1/tasks/{task}"), ACME);
    assert_eq!(
        (summary.body["status"].as_str(), summary.body["objects"].as_u64()),
        (Some("result_generated"), Some(1)),
        "{summary:?}"
    );

    // --- a lease that expires releases the task to the queue
    let second = create(&api, "order-2", &body);
    let task2 = second.body["task_id"].as_str().unwrap().to_owned();
    let q2 = in_queue(&api, &task2);
    let taken = api.post(&format!("/v1/operator/tasks/{task2}/assign"), OTTO, &json!({"version": q2["version"]}));
    assert_eq!(taken.status, 200, "{taken:?}");
    // otto goes quiet: within a lease (2 s) and a reaper round the task is back (at a later
    // version: the queue may still show it as it was before the assignment was projected)
    let back = in_queue_after(&api, &task2, q2["version"].as_u64().unwrap());
    assert!(back["version"].as_u64() > q2["version"].as_u64());
    let evs = api.get(&format!("/v1/tasks/{task2}/events?limit=500"), ACME);
    let released = evs.body["events"].as_array().unwrap().iter().find(|e| e["type"] == "OperatorReleased").cloned();
    let released = released.expect("an OperatorReleased event");
    assert_eq!(
        (released["actor"].as_str(), released["event"]["reason"].as_str()),
        (Some("service:operator-manager"), Some("lease expired"))
    );

    // --- cancel
    let a = api.post(&format!("/v1/tasks/{task2}/cancel"), ACME, &json!({"reason": "not needed"}));
    assert_eq!(a.status, 200, "{a:?}");
    let a = api.post(&format!("/v1/tasks/{task}/cancel"), ACME, &json!({"reason": "too late"}));
    assert_eq!((a.status, code(&a)), (409, "invalid_stage"), "a task with a result is not cancelled: {a:?}");

    // --- models
    let a = api.get("/v1/models", ACME);
    assert_eq!(a.status, 200);
    // a class group key holds a slash: it goes in the path percent-encoded
    let key = body["class_group"]["key"].as_str().unwrap();
    let group = key.replace('/', "%2F");
    let a = api.post(&format!("/v1/models/{group}/train"), ACME, &json!({"reason": "try it"}));
    assert_eq!((a.status, a.body["status"].as_str()), (200, Some("appended")), "{a:?}");
    let a = api.get(&format!("/v1/models/{group}"), ACME);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["model_id"], "acme:ice-cream:detector", "{key}");
    let a = api.post(&format!("/v1/models/{group}/promote"), ACME, &json!({"version": 99}));
    assert_eq!((a.status, code(&a)), (409, "model_command_refused"), "{a:?}");
    let a = api.get(&format!("/v1/models/{group}"), BETA);
    assert_eq!((a.status, code(&a)), (404, "model_not_found"), "another tenant's model: {a:?}");
    let a = api.get("/v1/models?customer=acme", OPS);
    assert_eq!(a.body["models"].as_array().unwrap().len(), 1, "{a:?}");
    // a module is code run in workers every tenant shares: only an admin imports one
    let artifact = |token: &str, query: &str| {
        let path = format!("/v1/models/{group}/artifacts{query}");
        api.send_bytes(&path, token, "application/octet-stream", b"not torchscript".to_vec())
    };
    let a = artifact(ACME, "");
    assert_eq!((a.status, code(&a)), (403, "forbidden"), "{a:?}");
    let a = artifact(OPS, "?customer=acme");
    assert_eq!((a.status, code(&a)), (422, "invalid_artifact"), "{a:?}");
    let a = api.get("/v1/models", ANNA);
    assert_eq!(a.status, 403);

    // --- the task manager (admins only): a task processed again as a batch, the batch undone
    let reprocess = "/v1/admin/tasks/reprocess";
    let a = api.post(reprocess, ACME, &json!({"task_ids": [task]}));
    assert_eq!((a.status, code(&a)), (403, "forbidden"), "{a:?}");
    let a = api.post(reprocess, OPS, &json!({"task_ids": ["no-such-task"]}));
    assert_eq!((a.status, code(&a)), (404, "task_not_found"), "{a:?}");
    let a = api.post(reprocess, OPS, &json!({"task_ids": [task], "mode": "sideways"}));
    assert_eq!((a.status, code(&a)), (422, "invalid_request"), "{a:?}");
    let batch = json!({"task_ids": [task], "mode": "resend_to_operator", "correlation_id": "batch-http-1"});
    let a = api.post(reprocess, OPS, &batch);
    assert_eq!((a.status, a.body["correlation_id"].as_str()), (202, Some("batch-http-1")), "{a:?}");
    assert_eq!(a.body["sent"][0]["task_id"], task.as_str());
    api.wait_for(&format!("/v1/tasks/{task}/events?limit=500"), ACME, Duration::from_secs(30), |a| {
        a.body["events"].as_array().is_some_and(|e| e.iter().any(|e| e["correlation_id"] == "batch-http-1"))
    });
    let a = api.post("/v1/admin/batches/no-such-batch/undo", OPS, &json!({"reason": "typo"}));
    assert_eq!((a.status, code(&a)), (404, "batch_not_found"), "{a:?}");
    let a = api.post("/v1/admin/batches/batch-http-1/undo", ANNA, &json!({"reason": "x"}));
    assert_eq!(a.status, 403, "{a:?}");
    let a = api.post(
        "/v1/admin/batches/batch-http-1/undo",
        OPS,
        &json!({"reason": "sent back by mistake", "dry_run": true}),
    );
    assert_eq!((a.status, a.body["batch"].as_str()), (200, Some("batch-http-1")), "{a:?}");
    assert_eq!(a.body["undo_correlation_id"], Value::Null, "a dry run sends nothing: {a:?}");
    assert_eq!(a.body["tasks"][0]["task_id"], task.as_str(), "{a:?}");
    let state = a.body["tasks"][0]["state"].as_str().unwrap_or_default();
    assert!(matches!(state, "would_revert" | "skipped"), "{a:?}");

    // --- the documents
    let a = api.call("GET", "/openapi.json", None, None, &[]);
    assert_eq!((a.status, a.body["openapi"].as_str().map(|v| &v[..2])), (200, Some("3.")));
    let a = api.call("GET", "/v1/nothing-here", Some(ACME), None, &[]);
    assert_eq!((a.status, code(&a)), (404, "not_found"));
    let a = api.call("DELETE", "/v1/tasks", Some(ACME), None, &[]);
    assert_eq!((a.status, code(&a)), (405, "method_not_allowed"));
}

#[test]
fn the_gateway_on_apache_kafka_and_the_cql_server() {
    // the same path on the real engines: outcomes come back through Apache Kafka, the queue, the
    // leases and the result are read from the views in the CQL server
    let dir = tempfile::tempdir().unwrap();
    let log = format!("kafka://{}", kafka_bootstrap());
    let prefix = unique_name("gateway");
    let store = cql_store_url("gateway");
    let envs = [("VISIONLOG_LOG", log.as_str()), ("VISIONLOG_TOPIC_PREFIX", &prefix), ("VISIONLOG_STORE", &store)];
    let (_run, api) = run_with_gateway(dir.path(), 0, &envs);
    let uri = upload_photo(&api);
    let body = task_request(&uri, None);
    let first = create(&api, "kafka-1", &body);
    assert_eq!(first.status, 201, "{first:?}");
    let task = first.body["task_id"].as_str().unwrap().to_owned();
    let again = create(&api, "kafka-1", &body);
    assert_eq!((again.status, again.body["task_id"].as_str()), (200, Some(task.as_str())));
    let queued = in_queue(&api, &task);
    let taken = api.post(&format!("/v1/operator/tasks/{task}/assign"), ANNA, &json!({"version": queued["version"]}));
    assert_eq!(taken.status, 200, "{taken:?}");
    let session = taken.body["session_id"].as_str().unwrap();
    let view = api.get(&format!("/v1/operator/tasks/{task}"), ANNA);
    let actions = json!([{"op": "add", "object_id": "k1", "image": 2, "bbox": {"x": 5.0, "y": 6.0, "w": 50.0, "h": 60.0}, "class_id": 1}]);
    let sent = api.post(
        &format!("/v1/operator/tasks/{task}/session"),
        ANNA,
        &json!({"session_id": session, "base_version": view.body["version"], "actions": actions}),
    );
    assert_eq!(sent.status, 200, "{sent:?}");
    let result = api.wait_for(&format!("/v1/tasks/{task}/result"), ACME, Duration::from_secs(60), |a| a.status == 200);
    assert_eq!(result.body["objects"].as_array().unwrap().len(), 1, "{result:?}");
    assert_eq!(api.get(&format!("/v1/tasks/{task}"), BETA).status, 404);
}

/// Live streams each hold a thread of the gateway's blocking pool: a caller gets at most its
/// share (`too_many_streams`, 429), and a stream closed frees its slot.
#[test]
fn live_streams_are_capped_per_caller_and_freed_when_closed() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("VISIONLOG_MAX_STREAMS_PER_CALLER", "2"), ("VISIONLOG_MAX_STREAMS", "3")];
    let (_run, api) = run_with_gateway(dir.path(), 0, &envs);
    let photo = upload_photo(&api);
    let task = create(&api, "streams", &task_request(&photo, None)).body["task_id"].as_str().unwrap().to_owned();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let open = |token: &str| {
        let url = api.url(&format!("/v1/tasks/{task}/events/stream"));
        let resp = client.get(url).bearer_auth(token).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp)
    };
    let (first, second) = (open(ACME), open(ACME));
    assert_eq!((first.0, second.0), (200, 200));
    let (status, third) = open(ACME);
    assert_eq!(status, 429, "a third stream of one caller");
    let problem: Value = third.json().unwrap();
    assert_eq!(problem["code"], "too_many_streams", "{problem}");
    // another caller has its own share, up to the overall cap
    let (status, ops) = open(OPS);
    assert_eq!(status, 200);
    assert_eq!(open(OPS).0, 429, "three streams open in all");
    // a stream closed by its client frees its slot (once its next write fails: within the
    // keep-alive interval)
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _again) = open(ACME);
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed stream's slot was not freed");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop((second, ops));
}
