//! `visionlog`: one binary, a subcommand per service, plus the demo, task queries and benchmarks.

mod bench;
mod demo;
mod export;
mod gateway;
mod health;
mod model;
mod output;
mod partitions;
mod progress;
mod report;
mod runtime;
mod schema;
mod settings;
mod subject;
mod task;
mod tier;
mod undo;

use clap::{CommandFactory, Parser, Subcommand};
use runtime::{Backends, Runtime, Service};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// mimalloc: the services allocate many small buffers from several threads, where glibc's
/// allocator spent a quarter of the aggregator's time (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An event-sourced machine-learning pipeline for image recognition.
#[derive(Parser, Debug)]
#[command(name = "visionlog", version, about)]
struct Cli {
    #[command(flatten)]
    backends: Backends,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the whole pipeline with simulated operators and prints what happened.
    Demo(demo::DemoArgs),
    /// Runs every service in one process until killed.
    Run {
        /// Simulated operators (0 for none).
        #[arg(long, default_value_t = 0)]
        operators: usize,
        /// Where the HTTP gateway listens (e.g. 127.0.0.1:8080); no gateway if not given.
        #[arg(long, env = "VISIONLOG_GATEWAY_ADDR")]
        gateway_addr: Option<std::net::SocketAddr>,
    },
    /// Runs the HTTP gateway alone (tasks, operators and the annotation tool, models).
    Gateway {
        /// Where it listens.
        #[arg(long, env = "VISIONLOG_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
    },
    /// Runs the webhook sink alone (results POSTed to callback URLs).
    Webhooks,
    /// Runs the tenants' Kafka topics alone: each tenant's commands in (as that tenant's), its
    /// tasks' events out (in transactions).
    TenantTopics,
    /// Runs the aggregator (the single writer) alone.
    Aggregator,
    /// Runs the task executor alone.
    Executor,
    /// Runs the read-model projector alone.
    Projector,
    /// Runs the simulated operator pool alone (stand-ins for people, for demos and load).
    #[command(alias = "operators")]
    SimulatedOperators {
        /// Simulated operators.
        #[arg(long, default_value_t = 4)]
        operators: usize,
    },
    /// Runs the inference workers alone.
    Inference,
    /// Runs the trainer alone.
    Trainer,
    /// The model streams: list, show, train, promote, retire, import a TorchScript detector.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Queries tasks.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Parquet datasets for data scientists: training examples, predictions, task results,
    /// operator sessions; as of an instant, once or on a schedule.
    #[command(subcommand)]
    Export(export::ExportCmd),
    /// GDPR: erase a data subject's personal data by destroying their keys (crypto-shredding).
    #[command(subcommand)]
    Subject(subject::SubjectCmd),
    /// Cold events: tier closed ranges of the events topic to the object store, drop the hot
    /// copy below verified segments, show where each partition stands.
    #[command(subcommand)]
    Tier(tier::TierCmd),
    /// The read models: task manager, engine monitor, operator monitor, billing, training
    /// data; and their rebuild.
    #[command(subcommand)]
    Report(report::ReportCmd),
    /// Growing the partition count: the journal copied into topics of a new prefix.
    #[command(subcommand)]
    Partitions(partitions::PartitionsCmd),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// The Avro schemas and their registry ids, for clients of the topics.
    #[command(subcommand)]
    Schema(schema::SchemaCmd),
}

/// Runs services until SIGTERM or SIGINT: then every worker finishes its batch and stops, each
/// service leaves its group (so its partitions move at once, not after a session timeout), and
/// the process exits 0.
fn serve(
    backends: &Backends,
    services: &[Service],
    operators: usize,
    gateway_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    // first: a SIGTERM while the backends open (seconds on a large embedded log) stops the
    // services as they start, instead of killing the process with its default action
    let stop = stop_on_signals()?;
    let rt = Runtime::open(backends)?;
    runtime::check_signing(&rt, services)?;
    let health = health::Health::start(backends.health_addr, rt.settings.ready_max_lag, rt.log.clone(), stop.clone())?;
    tracing::info!(?services, "serving until SIGTERM");
    let gateway = match gateway_addr {
        Some(addr) => Some(gateway::start(&rt, addr, &stop)?),
        None => None,
    };
    let threads = runtime::spawn(&rt, services, &stop, operators, &rt.settings.trainer(), &health);
    let mut result = runtime::join(threads, &stop);
    if let Some(g) = gateway {
        use std::sync::atomic::Ordering;
        // the gateway alone runs until SIGTERM; beside services, until they stop or fail
        while result.is_ok() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        let joined = g.join().map_err(anyhow::Error::from);
        result = result.and(joined);
    }
    tracing::info!("stopped");
    result
}

/// A flag set by SIGTERM or SIGINT: a long-running command finishes what it does and stops.
pub(crate) fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match settings::explain(&Cli::command(), &e) {
            Some(told) => {
                eprintln!("error: {told}");
                std::process::exit(2);
            }
            None => e.exit(),
        },
    };
    let b = &cli.backends;
    // logs to stderr; traces to OTEL_EXPORTER_OTLP_ENDPOINT when set (flushed when this drops)
    let _telemetry = visionlog_telemetry::init("visionlog", &b.settings.log_level)?;
    if b.settings.device.as_deref() == Some("cpu") {
        visionlog_vision::force_cpu();
    }
    if b.settings.torch_threads > 0 {
        tch::set_num_threads(b.settings.torch_threads as i32);
    }
    match &cli.command {
        Command::Demo(args) => demo::run(b, args),
        Command::Run { operators, gateway_addr } => {
            let mut services = vec![
                Service::Aggregator,
                Service::Executor,
                Service::Projector,
                Service::Inference,
                Service::Trainer,
                Service::Tiering,
                Service::Webhooks,
                Service::TenantIngress,
                Service::TenantPublisher,
            ];
            if *operators > 0 {
                services.push(Service::SimulatedOperators);
            }
            serve(b, &services, *operators, *gateway_addr)
        }
        Command::Gateway { addr } => serve(b, &[], 0, Some(*addr)),
        Command::Webhooks => serve(b, &[Service::Webhooks], 0, None),
        Command::TenantTopics => serve(b, &[Service::TenantIngress, Service::TenantPublisher], 0, None),
        Command::Aggregator => serve(b, &[Service::Aggregator], 0, None),
        Command::Executor => serve(b, &[Service::Executor], 0, None),
        Command::Projector => serve(b, &[Service::Projector], 0, None),
        Command::SimulatedOperators { operators } => serve(b, &[Service::SimulatedOperators], *operators, None),
        Command::Inference => serve(b, &[Service::Inference], 0, None),
        Command::Trainer => serve(b, &[Service::Trainer], 0, None),
        Command::Model(cmd) => model::run(b, cmd),
        Command::Task(cmd) => task::run(b, cmd),
        Command::Tier(cmd) => tier::run(b, cmd),
        Command::Export(cmd) => export::run(b, cmd),
        Command::Subject(cmd) => subject::run(b, cmd),
        Command::Report(cmd) => report::run(b, cmd),
        Command::Partitions(cmd) => partitions::run(b, cmd),
        Command::Bench(cmd) => bench::run(b, cmd),
        Command::Schema(cmd) => schema::run(b, cmd),
    }
}
