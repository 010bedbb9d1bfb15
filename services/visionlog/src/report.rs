//! `visionlog report ...`: the read models' queries, as tables or JSON, and their rebuild.

use crate::output::line;
use crate::runtime::{Backends, Runtime};
use serde::Serialize;
use serde_json::json;
use visionlog_views::generations;
use visionlog_views::queries::{self, TaskFilter};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum ReportCmd {
    /// Task manager: tasks by customer, status and creation time.
    Tasks {
        /// Of this customer.
        #[arg(long)]
        customer: Option<String>,
        /// In this status (created, awaiting_operator, result_generated, ...).
        #[arg(long)]
        status: Option<String>,
        /// Created at or after this time (ms since the epoch).
        #[arg(long)]
        since_ms: Option<i64>,
        /// Created before this time (ms since the epoch).
        #[arg(long)]
        until_ms: Option<i64>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Engine monitor: TP/FP/FN, precision and recall per model version, day and class, and
    /// drift against the model's backtest.
    Accuracy {
        /// Only this model (`model_id@version`).
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        days: Days,
        /// One JSON object per model and line.
        #[arg(long)]
        json: bool,
    },
    /// Operator monitor: sessions, time spent, objects per minute, correction rate in QC.
    Operators {
        /// Only this operator.
        #[arg(long)]
        operator: Option<String>,
        #[command(flatten)]
        days: Days,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Billing: a customer's month, per recipe.
    Billing {
        /// The customer.
        #[arg(long)]
        customer: String,
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Training data: examples per class group and class (with --class, each crop's location).
    Training {
        /// Only this customer's class groups.
        #[arg(long)]
        customer: Option<String>,
        /// Only this class group.
        #[arg(long)]
        class_group: Option<String>,
        /// List the crops of this class (needs --customer and --class-group).
        #[arg(long, requires_all = ["customer", "class_group"])]
        class: Option<u32>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Which generation of the views serves, and which is kept or being built.
    Generations,
    /// Rebuilds every view from the whole history into a new generation and switches readers
    /// to it once caught up (the serving generation keeps serving meanwhile).
    Rebuild {
        /// Start over when an earlier rebuild was interrupted.
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn json_lines<T: Serialize>(items: &[T]) -> anyhow::Result<()> {
    for i in items {
        line(serde_json::to_string(i)?);
    }
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// A range of days, inclusive, for the monitors.
#[derive(clap::Args, Debug)]
pub(crate) struct Days {
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Last day (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
}

pub(crate) fn run(backends: &Backends, cmd: &ReportCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let store = rt.store.as_ref();
    match cmd {
        ReportCmd::Tasks { customer, status, since_ms, until_ms, limit, json } => {
            let filter = TaskFilter {
                customer: customer.clone(),
                status: status.clone(),
                since_ms: *since_ms,
                until_ms: *until_ms,
                limit: *limit,
            };
            let tasks = queries::tasks(store, &filter)?;
            if *json {
                return json_lines(&tasks);
            }
            line(format!(
                "{:<16} {:<12} {:<22} {:>4} {:>7} {:>8} {:>7}  created",
                "task", "customer", "status", "ver", "objects", "sessions", "results"
            ));
            for s in &tasks {
                line(format!(
                    "{:<16} {:<12} {:<22} {:>4} {:>7} {:>8} {:>7}  {}",
                    s.task_id,
                    s.customer,
                    s.status,
                    s.version,
                    s.objects,
                    s.operator_sessions,
                    s.results,
                    visionlog_views::day(s.created_at_ms)
                ));
            }
            line(format!("{} task(s)", tasks.len()));
        }
        ReportCmd::Accuracy { model, days, json } => {
            let models = queries::accuracy(store, model.as_deref(), days.from.as_deref(), days.to.as_deref())?;
            if *json {
                return json_lines(&models);
            }
            if models.is_empty() {
                line("no detection run has been checked against operator ground truth yet");
            }
            for m in &models {
                let drift = match (m.drift, m.backtest) {
                    (Some(true), Some(b)) => format!(
                        "DRIFT: below its backtest (precision {}, recall {})",
                        pct(Some(b.precision)),
                        pct(Some(b.recall))
                    ),
                    (Some(false), _) => "no drift against its backtest".into(),
                    _ => "no backtest recorded".into(),
                };
                line(format!("model {}  ({} runs checked; {drift})", m.model, m.total.runs));
                line(format!(
                    "  {:<12} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7}",
                    "", "runs", "tp", "fp", "fn", "precision", "recall"
                ));
                let rows = std::iter::once((String::from("all"), &m.total))
                    .chain(m.days.iter().map(|d| (d.day.clone(), d)))
                    .chain(m.classes.iter().map(|c| (format!("class {}", c.class_id.unwrap_or(0)), c)));
                for (label, l) in rows {
                    line(format!(
                        "  {label:<12} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7}",
                        l.runs,
                        l.tp,
                        l.fp,
                        l.fn_,
                        pct(l.precision),
                        pct(l.recall)
                    ));
                }
            }
        }
        ReportCmd::Operators { operator, days, json } => {
            let lines = queries::operators(store, operator.as_deref(), days.from.as_deref(), days.to.as_deref())?;
            if *json {
                return json_lines(&lines);
            }
            line(format!(
                "{:<14} {:>8} {:>10} {:>4} {:>8} {:>9} {:>9} {:>11} {:>10} {:>9}",
                "operator",
                "sessions",
                "annotation",
                "qc",
                "released",
                "minutes",
                "objects",
                "objects/min",
                "qc fixes",
                "accuracy"
            ));
            for l in &lines {
                line(format!(
                    "{:<14} {:>8} {:>10} {:>4} {:>8} {:>9.2} {:>9} {:>11} {:>10} {:>9}",
                    l.operator,
                    l.sessions,
                    l.annotation_sessions,
                    l.quality_check_sessions,
                    l.released,
                    l.minutes,
                    l.objects_annotated,
                    l.objects_per_minute.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
                    pct(l.correction_rate),
                    pct(l.accuracy)
                ));
            }
        }
        ReportCmd::Billing { customer, month, json } => {
            let month = month.clone().unwrap_or_else(|| visionlog_views::month(visionlog_journal::now_ms()));
            let lines = queries::billing(store, customer, &month)?;
            if *json {
                return json_lines(&lines);
            }
            line(format!("billing of {customer} for {month}"));
            line(format!("  {:<28} {:>8} {:>14} {:>15}", "recipe", "tasks", "billable tasks", "billable images"));
            for l in &lines {
                line(format!("  {:<28} {:>8} {:>14} {:>15}", l.recipe, l.tasks, l.billable_tasks, l.billable_images));
            }
        }
        ReportCmd::Training { customer, class_group, class, json } => {
            if let (Some(customer), Some(group), Some(class)) = (customer, class_group, class) {
                let rows = queries::training_examples(store, customer, group, *class)?;
                if *json {
                    return json_lines(&rows);
                }
                for r in &rows {
                    // the crops are there once the task's extraction record reached this version
                    let status = match visionlog_views::extraction(store, &r.task_id)? {
                        Some(e) if e.truth_version >= r.truth_version => e.error.unwrap_or_else(|| "extracted".into()),
                        _ => "extraction pending".into(),
                    };
                    for c in &r.crops {
                        line(format!(
                            "{:<16} v{:<4} {:<14} image {} {}  ({status})",
                            r.task_id, r.truth_version, c.object_id, c.image, c.location
                        ));
                    }
                }
                return Ok(());
            }
            let lines = queries::training(store, customer.as_deref(), class_group.as_deref())?;
            if *json {
                return json_lines(&lines);
            }
            line(format!(
                "{:<12} {:<24} {:>6} {:<18} {:>9} {:>7}",
                "customer", "class group", "class", "name", "examples", "tasks"
            ));
            for l in &lines {
                line(format!(
                    "{:<12} {:<24} {:>6} {:<18} {:>9} {:>7}",
                    l.customer,
                    l.class_group,
                    l.class_id,
                    l.class_name.as_deref().unwrap_or("?"),
                    l.examples,
                    l.tasks
                ));
            }
        }
        ReportCmd::Generations => {
            let (g, changes) = generations::read(store)?;
            line(json!({ "serving": g.serving, "building": g.building, "previous": g.previous, "changes": changes }));
        }
        ReportCmd::Rebuild { force, json } => {
            let stop = crate::stop_on_signals()?;
            let progress = crate::progress::Progress::spinner("rebuild", *json);
            progress.say("folding the whole history into a new generation");
            let r = visionlog_projector::rebuild(&rt.projector_context(), *force, &stop)?;
            drop(progress);
            let out = json!({
                "generation": r.generation,
                "replaced": r.replaced,
                "dropped": r.dropped,
                "records": r.records,
                "events": r.stats.events,
                "rows_written": r.stats.rows_applied,
                "elapsed_s": (r.elapsed_s * 1000.0).round() / 1000.0,
                "events_per_s": (r.stats.events as f64 / r.elapsed_s.max(1e-9)).round(),
            });
            if *json {
                line(out);
            } else {
                line(format!(
                    "generation {} now serves ({} events, {} rows, {:.2}s); generation {} kept for a rollback{}",
                    r.generation,
                    r.stats.events,
                    r.stats.rows_applied,
                    r.elapsed_s,
                    r.replaced,
                    r.dropped.map(|d| format!(", generation {d} dropped")).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}
