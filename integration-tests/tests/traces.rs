//! One trace follows a task across services: a request's span sends `CreateTask`; the
//! aggregator decides it in a span that is the request's child and writes its context on the
//! events; the executor handles `TaskCreated` in a child of the decision and sends
//! `RequestDetection`, which the aggregator decides in a child of the executor's span. Spans
//! and metrics are collected in process by OpenTelemetry's in-memory exporters: the decisions'
//! latency by command type and outcome, and a refused command counted by its reason.

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::{AggregatorConfig, spawn_owners};
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_integration_tests::{envelope, small_create_task};
use visionlog_journal::{CommandBus, Subscription, Topics, audit, consume_partition};
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy};
use visionlog_store::{EmbeddedStore, ReadStore};

fn span<'s>(spans: &'s [SpanData], name: &str) -> &'s SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()))
}

#[test]
fn one_task_s_trace_is_connected_across_services_and_its_decisions_are_measured() {
    let exporter = InMemorySpanExporter::default();
    let metrics = InMemoryMetricExporter::default();
    let telemetry = visionlog_telemetry::init_with_exporters("visionlog-test", exporter.clone(), metrics.clone());
    let dir = tempfile::tempdir().unwrap();
    let options = FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() };
    let log: Arc<dyn EventLog> = Arc::new(FileLog::open(&dir.path().join("log"), options).unwrap());
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let topics = Topics::new("", 1);
    topics.create(log.as_ref()).unwrap();
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let config = AggregatorConfig { owner: "traces".into(), ..Default::default() };
    let aggregators = spawn_owners(&log, &codec, &store, &topics, &config, &stop);
    let executor = {
        let (log, codec, topics, bus, stop) = (log.clone(), codec.clone(), topics.clone(), bus.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut handler = visionlog_executor::Executor::new(bus, std::sync::Arc::new(|_: &str| 0));
            let sub =
                Subscription { log: log.as_ref(), codec: &codec, topics: &topics, group: "executor", partition: 0 };
            consume_partition(sub, &mut handler, &stop).unwrap();
        })
    };

    // the retailer's request, as the gateway would trace it
    let request = tracing::info_span!("request", otel.name = "POST /tasks");
    let traceparent = {
        let _entered = request.enter();
        let command = small_create_task();
        bus.send(&envelope("task-1", "create-1", "customer:acme", Some(0), &command), &command).unwrap();
        visionlog_telemetry::traceparent().expect("the request span is traced")
    };
    // W3C: version-traceid-spanid-flags
    let ids: Vec<&str> = traceparent.split('-').collect();
    let (trace_id, request_id) = (TraceId::from_hex(ids[1]).unwrap(), SpanId::from_hex(ids[2]).unwrap());
    drop(request);
    // the same task created twice: refused
    let again = small_create_task();
    bus.send(&envelope("task-1", "create-2", "customer:acme", None, &again), &again).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while audit(log.as_ref(), &topics).map(|a| (a.events, a.rejections)).unwrap() < (2, 1) {
        assert!(Instant::now() < deadline, "the task did not reach DetectionRequested");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    aggregators.into_iter().for_each(|t| _ = t.join().unwrap());
    executor.join().unwrap();
    telemetry.flush();

    let spans = exporter.get_finished_spans().unwrap();
    let root = span(&spans, "POST /tasks");
    let decide_create = span(&spans, "decide CreateTask");
    let handle_created = span(&spans, "executor TaskCreated");
    let decide_detect = span(&spans, "decide RequestDetection");
    assert_eq!((root.span_context.trace_id(), root.span_context.span_id()), (trace_id, request_id));
    for (child, parent) in [(decide_create, root), (handle_created, decide_create), (decide_detect, handle_created)] {
        assert_eq!(child.span_context.trace_id(), trace_id, "{} is in the request's trace", child.name);
        assert_eq!(child.parent_span_id, parent.span_context.span_id(), "{} is a child of {}", child.name, parent.name);
    }

    // metrics: one accepted decision of each command type, one refusal by its reason
    let collected = metrics.get_finished_metrics().unwrap();
    let latency = histogram_counts(&collected, "visionlog.command.latency");
    let accepted = |t: &str| vec![KeyValue::new("command_type", t.to_owned()), KeyValue::new("outcome", "accepted")];
    assert_eq!(latency.iter().find(|(a, _)| *a == accepted("CreateTask")).map(|(_, n)| *n), Some(1), "{latency:?}");
    assert_eq!(latency.iter().find(|(a, _)| *a == accepted("RequestDetection")).map(|(_, n)| *n), Some(1));
    let refused = sums(&collected, "visionlog.commands.rejected");
    assert_eq!(refused, vec![(vec![KeyValue::new("reason", "task_already_exists")], 1)], "{refused:?}");
}

type Points = Vec<(Vec<KeyValue>, u64)>;

fn sorted(mut attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    attrs.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    attrs
}

/// The points of metric `name` in the last export that holds it, as `read` gives them.
fn points(collected: &[ResourceMetrics], name: &str, read: impl Fn(&AggregatedMetrics) -> Option<Points>) -> Points {
    let metrics = collected.iter().flat_map(|r| r.scope_metrics()).flat_map(|s| s.metrics());
    metrics.filter(|m| m.name() == name).filter_map(|m| read(m.data())).last().unwrap_or_default()
}

/// (attributes, count) of each point of a histogram.
fn histogram_counts(collected: &[ResourceMetrics], name: &str) -> Points {
    points(collected, name, |data| match data {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
            Some(h.data_points().map(|p| (sorted(p.attributes().cloned().collect()), p.count())).collect())
        }
        _ => None,
    })
}

/// (attributes, value) of each point of a counter.
fn sums(collected: &[ResourceMetrics], name: &str) -> Points {
    points(collected, name, |data| match data {
        AggregatedMetrics::U64(MetricData::Sum(s)) => {
            Some(s.data_points().map(|p| (sorted(p.attributes().cloned().collect()), p.value())).collect())
        }
        _ => None,
    })
}
