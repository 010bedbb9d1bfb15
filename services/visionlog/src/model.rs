//! `visionlog model ...`: the model streams — list, history, the "Train" button, promote,
//! retire, and the import of a TorchScript detector or recognizer traced elsewhere.

use crate::runtime::{Backends, Runtime};
use anyhow::{Context, bail};
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_models::{ModelCommand, ModelKey, Outcome};
use visionlog_vision::ModelKind;

/// Which model stream.
#[derive(clap::Args, Debug)]
pub(crate) struct Which {
    /// The customer.
    #[arg(long)]
    customer: String,
    /// The class group key.
    #[arg(long)]
    class_group: String,
    /// Which model of the class group: its detector or its crop recognizer.
    #[arg(long, default_value = "detector", value_parser = [visionlog_models::DETECTOR, visionlog_models::RECOGNIZER])]
    kind: String,
}

impl Which {
    fn key(&self) -> ModelKey {
        match self.kind.as_str() {
            visionlog_models::RECOGNIZER => ModelKey::recognizer(&self.customer, &self.class_group),
            _ => ModelKey::detector(&self.customer, &self.class_group),
        }
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
    /// Registers a TorchScript module (`torch.jit.trace`d, inputs in `[-0.5, 0.5]`): a detector
    /// (input `[n, 3, 192, 256]`, output `[n, classes + 4, 24, 32]`) or, with `--kind
    /// recognizer`, a crop recognizer (input `[n, 3, 32, 32]`, output `[n, classes]` logits);
    /// it is checked before it is registered.
    Import {
        #[command(flatten)]
        which: Which,
        /// The `.pt` file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Class ids in output order (default: the class group's, ascending).
        #[arg(long, value_delimiter = ',')]
        classes: Vec<u32>,
    },
    /// Loads a TorchScript detector or recognizer and makes a probe pass (what the gateway
    /// runs in a child process, under limits, before it stores an uploaded module); exits 0
    /// when it fits.
    #[command(hide = true)]
    CheckModule {
        /// The `.pt` file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// `detector` or `recognizer`.
        #[arg(long, default_value = "detector")]
        kind: String,
        /// Class ids in output-channel order.
        #[arg(long, value_delimiter = ',')]
        classes: Vec<u32>,
        /// The class group's class ids.
        #[arg(long, value_delimiter = ',')]
        group_classes: Vec<u32>,
    },
}

/// The check of uploaded modules in a child process: `visionlog model check-module` under an
/// address-space limit (`ulimit -v`) of `memory_mb` and killed after `timeout`.
pub(crate) fn isolated_check(memory_mb: u64, timeout: std::time::Duration) -> visionlog_inference::IsolatedCheck {
    std::sync::Arc::new(move |file: &std::path::Path, kind: ModelKind, classes: &[u32], group: &[u32]| {
        let exe = std::env::current_exe().map_err(|e| format!("the check cannot start: {e}"))?;
        let list = |c: &[u32]| c.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg((memory_mb * 1024).to_string())
            .arg(exe)
            .args(["model", "check-module", "--kind", kind.name(), "--file"])
            .arg(file)
            .args((!classes.is_empty()).then(|| format!("--classes={}", list(classes))))
            .args((!group.is_empty()).then(|| format!("--group-classes={}", list(group))))
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("the check cannot start: {e}"))?;
        let mut stderr = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::Read::take(&mut stderr, 64 << 10), &mut text);
            text
        });
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break status,
                None if std::time::Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the module's check took longer than {timeout:?} and was stopped"));
                }
                None => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let said = reader.join().unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let why = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        Err(match status.code() {
            Some(NOT_FIT) => why.trim_start_matches("Error: ").to_owned(),
            _ => format!(
                "the module's check failed ({status}) within a {memory_mb} MiB address-space limit: {}",
                why.chars().take(300).collect::<String>()
            ),
        })
    })
}

/// The exit status of `model check-module` for a module that does not fit.
const NOT_FIT: i32 = 3;

/// `model check-module`: exits [`NOT_FIT`] with the reason when the module does not fit.
fn check_module(file: &std::path::Path, kind: &str, classes: &[u32], group_classes: &[u32]) -> anyhow::Result<()> {
    let kind = match kind {
        "detector" => ModelKind::Detector,
        "recognizer" => ModelKind::Recognizer,
        other => bail!("--kind {other:?}: detector or recognizer"),
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (classes, group_classes) = (classes.to_vec(), group_classes.to_vec());
    if let Err(e) = visionlog_inference::artifacts::check_module(bytes, kind, classes, group_classes) {
        eprintln!("Error: {e}");
        std::process::exit(NOT_FIT);
    }
    Ok(())
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
    if let ModelCmd::CheckModule { file, kind, classes, group_classes } = cmd {
        return check_module(file, kind, classes, group_classes);
    }
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
        ModelCmd::CheckModule { .. } => unreachable!("checked above"),
        ModelCmd::Import { which, file, classes } => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let key = which.key();
            // the operator's own file, checked in this process
            let artifacts = visionlog_inference::TorchImport { objects: rt.objects.clone(), isolated: None };
            let c = visionlog_models::import_module(rt.store.as_ref(), &artifacts, &key, bytes, classes.clone(), "cli")
                .context("the module is not registered")?;
            print_outcome("import", &exec(&key, &c)?)?;
        }
    }
    Ok(())
}
