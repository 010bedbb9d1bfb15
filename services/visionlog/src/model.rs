//! `visionlog model ...`: the model streams — list, history, the "Train" button, promote,
//! retire, and the import of a TorchScript detector traced elsewhere.

use crate::runtime::{Backends, Runtime};
use anyhow::{Context, bail};
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_models::{ModelCommand, ModelKey, Outcome};

/// Which model stream.
#[derive(clap::Args, Debug)]
pub(crate) struct Which {
    /// The customer.
    #[arg(long)]
    customer: String,
    /// The class group key.
    #[arg(long)]
    class_group: String,
}

impl Which {
    fn key(&self) -> ModelKey {
        ModelKey::detector(&self.customer, &self.class_group)
    }
}

/// Model commands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ModelCmd {
    /// Every model stream: deployed version, versions, last backtest.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One stream's versions and deployments.
    Show {
        #[command(flatten)]
        which: Which,
        /// What was deployed at this instant (ms since the epoch), besides the rest.
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Asks the trainer for a new version (the "Train" button).
    Train {
        #[command(flatten)]
        which: Which,
        /// Who asks.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Deploys a version.
    Promote {
        #[command(flatten)]
        which: Which,
        /// The version.
        #[arg(long)]
        version: u32,
        /// Why.
        #[arg(long, default_value = "promoted by hand")]
        reason: String,
    },
    /// Stops serving a version (tasks then go to operators).
    Retire {
        #[command(flatten)]
        which: Which,
        /// The version.
        #[arg(long)]
        version: u32,
        /// Why.
        #[arg(long, default_value = "retired by hand")]
        reason: String,
    },
    /// Registers a TorchScript detector (`torch.jit.trace`d: input `[n, 3, 192, 256]` in
    /// `[-0.5, 0.5]`, output `[n, classes + 4, 24, 32]`); it is checked before it is registered.
    Import {
        #[command(flatten)]
        which: Which,
        /// The `.pt` file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Class ids in output-channel order (default: the class group's, ascending).
        #[arg(long, value_delimiter = ',')]
        classes: Vec<u32>,
    },
}

fn print_outcome(what: &str, o: &Outcome) -> anyhow::Result<()> {
    match o {
        Outcome::Appended(e, v) => crate::output::line(format!("{what}: {e:?} (stream version {v})")),
        Outcome::Duplicate(v) => crate::output::line(format!("{what}: already done (stream version {v})")),
        Outcome::Rejected(r) => bail!("{what} refused: {r}"),
    }
    Ok(())
}

pub(crate) fn run(b: &Backends, cmd: &ModelCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(b)?;
    let exec = |key: &ModelKey, c: &ModelCommand| {
        // a fresh id per invocation: asking twice on purpose is asking twice
        let id = deterministic_id(&["cli", &key.model_id(), &now_ms().to_string(), &format!("{c:?}")]);
        rt.registry.execute(key, &id, c, now_ms())
    };
    match cmd {
        ModelCmd::List { json } => {
            for (key, s) in rt.registry.streams()? {
                let last = s.versions.values().next_back();
                if *json {
                    crate::output::line(serde_json::json!({
                        "model_id": key.model_id(), "customer": key.customer, "class_group": key.class_group,
                        "deployed": s.deployed, "versions": s.versions.len(),
                        "last_backtest": last.and_then(|v| v.backtest),
                        "training_requested": s.pending_training.is_some(),
                    }));
                } else {
                    crate::output::line(format!(
                        "{:<32} deployed {:<6} versions {:<3} last backtest {}",
                        key.model_id(),
                        s.deployed.map_or("-".into(), |v| format!("v{v}")),
                        s.versions.len(),
                        last.and_then(|v| v.backtest)
                            .map_or("-".into(), |(n, p, r, f)| format!("P {p:.3} R {r:.3} F1 {f:.3} on {n} tasks")),
                    ));
                }
            }
        }
        ModelCmd::Show { which, at_ms } => {
            let s = rt.registry.stream(&which.key())?;
            crate::output::line(serde_json::to_string_pretty(&s)?);
            if let Some(at) = at_ms {
                crate::output::line(format!("deployed at {at}: {:?}", s.deployed_at(*at)));
            }
        }
        ModelCmd::Train { which, by } => {
            let c = ModelCommand::RequestTraining { by: by.clone(), reason: "asked from the command line".into() };
            print_outcome("train", &exec(&which.key(), &c)?)?;
        }
        ModelCmd::Promote { which, version, reason } => {
            let c = ModelCommand::Promote { version: *version, reason: reason.clone() };
            print_outcome("promote", &exec(&which.key(), &c)?)?;
        }
        ModelCmd::Retire { which, version, reason } => {
            let c = ModelCommand::Retire { version: *version, reason: reason.clone() };
            print_outcome("retire", &exec(&which.key(), &c)?)?;
        }
        ModelCmd::Import { which, file, classes } => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let key = which.key();
            let artifacts = visionlog_inference::TorchImport { objects: rt.objects.clone() };
            let c =
                visionlog_models::import_detector(rt.store.as_ref(), &artifacts, &key, bytes, classes.clone(), "cli")
                    .context("the module is not registered")?;
            print_outcome("import", &exec(&key, &c)?)?;
        }
    }
    Ok(())
}
