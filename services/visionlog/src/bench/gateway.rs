//! `visionlog bench gateway`: task creates per second and their p99 latency through the HTTP
//! gateway (auth, validation, SSRF checks, the command sent and its outcome awaited), against
//! a static endpoint of the same server (`GET /v1/ping`) in the same run.

use crate::runtime::{Backends, Service};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(crate) struct GatewayBench {
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Partitions (one aggregator thread each).
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One request of a client (its number given): whether it succeeded.
type Request = Arc<dyn Fn(&reqwest::blocking::Client, usize) -> bool + Send + Sync>;

/// What one endpoint did under load.
struct Load {
    requests: usize,
    errors: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `clients` threads send `request(i)` for `seconds`; latencies of the successful ones.
fn load(b: &GatewayBench, request: Request) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..b.clients)
        .map(|c| {
            let (stop, request) = (stop.clone(), request.clone());
            std::thread::spawn(move || {
                let client =
                    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
                let (mut lat, mut errors, mut i) = (Vec::new(), 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if request(&client, c * 1_000_000 + i) {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                    i += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(b.seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in threads {
        let (l, e) = t.join().expect("a load thread");
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let at =
        |q: f64| lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Load { requests: lat.len(), errors, per_s: lat.len() as f64 / elapsed, p50_ms: at(0.5), p99_ms: at(0.99) }
}

pub(crate) fn run(backends: &Backends, b: &GatewayBench) -> anyhow::Result<()> {
    let tenants = json!({ "tenants": [{ "id": "bench", "tokens": ["bench-token"], "qc_per_mille": 0 }] });
    let (_dir, rt) = super::workbench::bench_runtime(backends, b.partitions, tenants)?;
    let stop = Arc::new(AtomicBool::new(false));
    let health = crate::health::Health::start(None, rt.settings.ready_max_lag, rt.log.clone(), stop.clone())?;
    // the aggregator decides the creates; nothing else runs, so the gateway's path is measured
    let threads = crate::runtime::spawn(&rt, &[Service::Aggregator], &stop, 0, &rt.settings.trainer(), &health);
    let server = crate::gateway::start(&rt, "127.0.0.1:0".parse()?, &stop)?;
    let addr = server.addr;
    let body = json!({
        "recipe": "DETECTION",
        "class_group": { "key": "bench/shelf", "classes": [{ "id": 1, "name": "can" }, { "id": 2, "name": "bottle" }] },
        "images": [{ "uri": "store://images/bench/1.png", "width": 640, "height": 480 }],
    })
    .to_string();
    let url = format!("http://{addr}/v1/tasks");
    let create: Request = Arc::new(move |c, i| {
        c.post(&url)
            .bearer_auth("bench-token")
            .header("content-type", "application/json")
            .header("idempotency-key", format!("bench-{i}"))
            .body(body.clone())
            .send()
            .is_ok_and(|r| r.status().as_u16() == 201)
    });
    let ping_url = format!("http://{addr}/v1/ping");
    let ping: Request = Arc::new(move |c, _| c.get(&ping_url).send().is_ok_and(|r| r.status().is_success()));
    // the baseline first, then the creates
    let baseline = load(b, ping);
    let creates = load(b, create);
    stop.store(true, Ordering::Relaxed);
    crate::runtime::join(threads, &stop)?;
    server.join()?;
    let ratio = creates.per_s / baseline.per_s.max(1e-9);
    let report = json!({
        "bench": "gateway", "log": rt.log_url.split('?').next().unwrap_or_default(), "partitions": b.partitions,
        "clients": b.clients, "seconds": b.seconds,
        "creates_per_s": (creates.per_s * 10.0).round() / 10.0, "create_p50_ms": creates.p50_ms, "create_p99_ms": creates.p99_ms,
        "create_requests": creates.requests, "create_errors": creates.errors,
        "baseline": "GET /v1/ping on the same server",
        "static_per_s": (baseline.per_s * 10.0).round() / 10.0, "static_p50_ms": baseline.p50_ms, "static_p99_ms": baseline.p99_ms,
        "static_errors": baseline.errors,
        "ratio": (ratio * 1000.0).round() / 1000.0,
    });
    if b.json {
        crate::output::line(report.to_string());
    } else {
        crate::output::line(format!(
            "task creates: {:.0}/s (p50 {:.1} ms, p99 {:.1} ms, {} errors); static endpoint: {:.0}/s (p99 {:.1} ms); ratio {:.3}",
            creates.per_s, creates.p50_ms, creates.p99_ms, creates.errors, baseline.per_s, baseline.p99_ms, ratio
        ));
    }
    Ok(())
}
