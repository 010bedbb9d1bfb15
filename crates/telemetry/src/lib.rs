//! Logs and traces of every visionlog process.
//!
//! Logs go to standard error, filtered by `VISIONLOG_LOG_LEVEL` (default `warn`). Traces and
//! metrics ([`metrics`]) are off unless `OTEL_EXPORTER_OTLP_ENDPOINT` names an OTLP/HTTP
//! collector (the service name from `OTEL_SERVICE_NAME`); then every `info` span of visionlog is
//! exported, and the metrics every `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60 s).
//!
//! One trace follows a task across services: a command record carries the W3C `traceparent`
//! of the span that sent it ([`inject`]); the aggregator decides it in a span whose parent is
//! that context ([`follow`]) and writes its span's context on the events it appends; a service
//! handling an event does so in a span following the event's context, and the commands it sends
//! carry that span's. Where tracing is off, a record's context is passed on unchanged
//! ([`propagate`]), so a process without a collector does not cut the trace of those with one.

pub mod metrics;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The record header that carries the trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Installed telemetry; flushes and stops the exporter when dropped (at the end of `main`).
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered now (spans, and the metrics collected so far).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
        if let Some(m) = &self.meters {
            let _ = m.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
    }
}

/// Installs logging (`log_filter`: a tracing filter, `warn` or `visionlog_journal=debug,info`) and,
/// if `OTEL_EXPORTER_OTLP_ENDPOINT` is set, trace export over OTLP/HTTP for `default_service`
/// (unless `OTEL_SERVICE_NAME` names the process otherwise).
pub fn init(default_service: &str, log_filter: &str) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter)
        .map_err(|e| TelemetryError(format!("the log filter {log_filter:?}: {e}")))?;
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
    let Some(endpoint) = endpoint else {
        install(None, filter);
        return Ok(Telemetry { provider: None, meters: None });
    };
    let failed =
        |what: &str, e: &dyn std::fmt::Display| TelemetryError(format!("the OTLP {what} exporter for {endpoint}: {e}"));
    let spans = opentelemetry_otlp::SpanExporter::builder().with_http().build().map_err(|e| failed("span", &e))?;
    let metrics =
        opentelemetry_otlp::MetricExporter::builder().with_http().build().map_err(|e| failed("metric", &e))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service.to_owned());
    let provider = SdkTracerProvider::builder().with_batch_exporter(spans).with_resource(resource(&service)).build();
    let meters = SdkMeterProvider::builder().with_periodic_exporter(metrics).with_resource(resource(&service)).build();
    let telemetry = exporting(provider, meters, filter);
    tracing::info!(endpoint, "exporting traces and metrics");
    Ok(telemetry)
}

/// Installs `provider` and `meters` as the process's: logs and spans go through the subscriber,
/// the metrics of [`metrics`] to `meters`.
fn exporting(
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
    filter: tracing_subscriber::EnvFilter,
) -> Telemetry {
    opentelemetry::global::set_meter_provider(meters.clone());
    metrics::ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    install(Some(&provider), filter);
    Telemetry { provider: Some(provider), meters: Some(meters) }
}

fn resource(service: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build()
}

/// Installs logging, trace export to `spans` (span by span) and metric export to `metrics`
/// (on [`Telemetry::flush`] and at the end), for tests that look at what a process recorded
/// (`opentelemetry_sdk`'s in-memory exporters).
pub fn init_with_exporters(
    service: &str,
    spans: impl SpanExporter + 'static,
    metrics: impl PushMetricExporter,
) -> Telemetry {
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans).with_resource(resource(service)).build();
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metrics)
        .with_interval(std::time::Duration::from_secs(3600))
        .build();
    let meters = SdkMeterProvider::builder().with_reader(reader).with_resource(resource(service)).build();
    exporting(provider, meters, "warn".into())
}

fn install(provider: Option<&SdkTracerProvider>, filter: tracing_subscriber::EnvFilter) {
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("visionlog"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    // a second install (tests in one process) keeps the first
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
}

/// The `traceparent` of the current span, if it is traced.
pub fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.0
}

/// Adds the current span's trace context to a record's headers (nothing if untraced).
pub fn inject<N: From<&'static str>>(headers: &mut Vec<(N, Vec<u8>)>) {
    if let Some(tp) = traceparent() {
        headers.push((N::from(TRACEPARENT), tp.into_bytes()));
    }
}

/// Makes `span` a child of the trace context `traceparent` (a record's header), if valid.
pub fn follow(span: &tracing::Span, traceparent: Option<&[u8]>) {
    let Some(tp) = traceparent.and_then(|v| std::str::from_utf8(v).ok()) else { return };
    let cx = TraceContextPropagator::new().extract(&Carrier(Some(tp.to_owned())));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The context to write on what the current span produces: its own where it is traced, else
/// the context it received (passed on unchanged), else none.
pub fn propagate(received: Option<&[u8]>) -> Option<String> {
    traceparent().or_else(|| received.and_then(|v| std::str::from_utf8(v).ok()).map(str::to_owned))
}

/// A one-header carrier for the propagator.
#[derive(Default)]
struct Carrier(Option<String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}
