//! `visionlog bench ...`: throughput against a baseline measured in the same run, one bench per
//! file; `workbench` is what they run on.

mod aggregator;
mod exports;
mod gateway;
mod inference;
mod projections;
mod reads;
mod tiering;
mod trainer;
mod workbench;

use crate::runtime::Backends;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// The aggregator's events/s against raw appends of the same bytes to the same log.
    Aggregator(aggregator::AggregatorBench),
    /// Live projection and rebuild of every view, against a raw decode of the same events.
    Projections(projections::ProjectionsBench),
    /// Inference photos/s of a TorchScript detector, against Python PyTorch on the same photos.
    Inference(inference::InferenceBench),
    /// Tiering MB/s against raw object-store puts of the same bytes; replay from cold vs hot.
    Tiering(tiering::TieringBench),
    /// Task creates/s and p99 through the HTTP gateway, against a static endpoint of the same server.
    Gateway(gateway::GatewayBench),
    /// Per-task reads and the operator queue over HTTP on N and 10N events: p50 at 10N over p50 at N.
    Reads(reads::ReadsBench),
    /// The exporter's peak RSS on N and 10N events; an incremental export against a full one.
    Exports(exports::ExportsBench),
    /// The trainer's peak RSS on N and 10N labelled tasks, bounded, against holding every photo.
    Trainer(trainer::TrainerBench),
}

pub(crate) fn run(backends: &Backends, cmd: &BenchCmd) -> anyhow::Result<()> {
    let (name, json) = match cmd {
        BenchCmd::Aggregator(b) => ("aggregator", b.json),
        BenchCmd::Projections(b) => ("projections", b.json),
        BenchCmd::Inference(b) => ("inference", b.json),
        BenchCmd::Tiering(b) => ("tiering", b.json),
        BenchCmd::Gateway(b) => ("gateway", b.json),
        BenchCmd::Reads(b) => ("reads", b.json),
        BenchCmd::Trainer(b) => ("trainer", b.json),
        BenchCmd::Exports(b) => ("exports", b.json),
    };
    let _progress = crate::progress::Progress::spinner(&format!("bench {name}"), json);
    match cmd {
        BenchCmd::Aggregator(b) => aggregator::run(backends, b),
        BenchCmd::Projections(b) => projections::run(backends, b),
        BenchCmd::Inference(b) => inference::run(b),
        BenchCmd::Tiering(b) => tiering::run(backends, b),
        BenchCmd::Gateway(b) => gateway::run(backends, b),
        BenchCmd::Reads(b) => reads::run(backends, b),
        BenchCmd::Trainer(b) => trainer::run(backends, b),
        BenchCmd::Exports(b) => exports::run(backends, b),
    }
}
