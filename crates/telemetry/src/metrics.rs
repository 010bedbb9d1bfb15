//! visionlog's metrics. Instruments are made on first use from the global meter provider, so
//! they are no-ops unless [`crate::init`] (or [`crate::init_with_exporters`]) installed one first.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};

/// Whether a meter provider was installed: the hot paths skip building attributes otherwise.
pub(crate) static ENABLED: AtomicBool = AtomicBool::new(false);

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn meter() -> Meter {
    opentelemetry::global::meter("visionlog")
}

static DECIDED: LazyLock<Histogram<f64>> = LazyLock::new(|| {
    meter()
        .f64_histogram("visionlog.command.latency")
        .with_unit("ms")
        .with_description("from a command's issue to the aggregator's decision, by command type and outcome")
        .build()
});

static REJECTED: LazyLock<Counter<u64>> = LazyLock::new(|| {
    meter().u64_counter("visionlog.commands.rejected").with_description("commands refused, by reason").build()
});

static IMAGES: LazyLock<Counter<u64>> = LazyLock::new(|| {
    meter().u64_counter("visionlog.inference.images").with_description("photos a detector ran on").build()
});

static BATCH: LazyLock<Histogram<u64>> = LazyLock::new(|| {
    meter()
        .u64_histogram("visionlog.inference.batch_size")
        .with_description("photos per detector call")
        .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
        .build()
});

static BACKLOG: LazyLock<Gauge<u64>> = LazyLock::new(|| {
    meter()
        .u64_gauge("visionlog.tiering.backlog")
        .with_description("records of an events partition not yet in a cold segment")
        .build()
});

static WEBHOOKS: LazyLock<Counter<u64>> = LazyLock::new(|| {
    meter()
        .u64_counter("visionlog.webhook.attempts")
        .with_description("callback deliveries tried, by outcome (delivered, retry, failed, refused) and attempt")
        .build()
});

/// A webhook delivery was tried: `outcome` is `delivered`, `retry` (another try follows),
/// `failed` (the last try) or `refused` (the URL is not allowed).
pub fn webhook_attempt(outcome: &str, attempt: u32) {
    if !enabled() {
        return;
    }
    WEBHOOKS.add(1, &[KeyValue::new("outcome", outcome.to_owned()), KeyValue::new("attempt", i64::from(attempt))]);
}

/// A command was decided: `outcome` is `accepted` or the rejection code.
pub fn command_decided(command_type: &str, outcome: &str, latency_ms: i64) {
    if !enabled() {
        return;
    }
    let attrs = [KeyValue::new("command_type", command_type.to_owned()), KeyValue::new("outcome", outcome.to_owned())];
    DECIDED.record(latency_ms.max(0) as f64, &attrs);
    if outcome != "accepted" {
        REJECTED.add(1, &[KeyValue::new("reason", outcome.to_owned())]);
    }
}

/// A detector ran on a batch of `images` photos.
pub fn inference_batch(images: usize) {
    if !enabled() {
        return;
    }
    IMAGES.add(images as u64, &[]);
    BATCH.record(images as u64, &[]);
}

/// Records not yet tiered on a partition.
pub fn tiering_backlog(topic: &str, partition: u32, records: u64) {
    if !enabled() {
        return;
    }
    BACKLOG.record(records, &[KeyValue::new("topic", topic.to_owned()), KeyValue::new("partition", partition as i64)]);
}

/// The lags of a consumer group's partitions held by this process: (partition, records behind).
pub type LagSource = dyn Fn() -> Vec<(u32, u64)> + Send + Sync;

/// Reports `visionlog.consumer.lag` of `group` on `topic` from `lags`, for as long as the
/// source lives (the gauge holds it weakly: a service that ended reports nothing).
pub fn observe_lag(group: &str, topic: &str, lags: &Arc<LagSource>) {
    if !enabled() {
        return;
    }
    let (group, topic, source): (String, String, Weak<LagSource>) =
        (group.to_owned(), topic.to_owned(), Arc::downgrade(lags));
    let _gauge = meter()
        .u64_observable_gauge("visionlog.consumer.lag")
        .with_description("records between a consumer group's committed position and the end, per partition")
        .with_callback(move |observer| {
            let Some(lags) = source.upgrade() else { return };
            for (partition, lag) in lags() {
                let attrs = [
                    KeyValue::new("group", group.clone()),
                    KeyValue::new("topic", topic.clone()),
                    KeyValue::new("partition", partition as i64),
                ];
                observer.observe(lag, &attrs);
            }
        })
        .build();
}
