//! The queries of the views, always on the serving generation.

use crate::generations::{self, table};
use crate::task_view::TaskView;
use crate::views::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use visionlog_store::{Put, ReadStore, Row, StoreError, for_each_row, read_partition};

/// The measured accuracy of a model in its own backtest (written by the backtester).
pub const BACKTESTS: &str = "model_backtests";

/// A drop of precision or recall, against the model's backtest, beyond which it is drift.
pub const DRIFT_TOLERANCE: f64 = 0.05;

fn serving(store: &dyn ReadStore, base: &str) -> Result<String, StoreError> {
    Ok(table(base, generations::read(store)?.0.serving))
}

fn rows_of<T: serde::de::DeserializeOwned>(rows: Vec<Row>) -> Vec<T> {
    rows.iter().filter_map(|r| decode(&r.value)).collect()
}

/// Decodes every live row of a table (a scan).
fn scan_of<T: serde::de::DeserializeOwned>(store: &dyn ReadStore, table: &str) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for_each_row(store, table, |r| {
        out.extend(decode::<T>(&r.value));
        Ok(())
    })?;
    Ok(out)
}

/// Reads one task's summary.
pub fn summary(store: &dyn ReadStore, task_id: &str) -> Result<Option<TaskSummary>, StoreError> {
    Ok(store
        .get(&serving(store, TASK_SUMMARY)?, task_id, "")?
        .filter(|r| !r.is_tombstone())
        .and_then(|r| decode(&r.value)))
}

/// Reads every summary (a table scan).
pub fn list_summaries(store: &dyn ReadStore) -> Result<Vec<TaskSummary>, StoreError> {
    scan_of(store, &serving(store, TASK_SUMMARY)?)
}

/// Reads the whole fold of one task, as far as it is projected.
pub fn task_view(store: &dyn ReadStore, task_id: &str) -> Result<Option<TaskView>, StoreError> {
    Ok(store
        .get(&serving(store, TASK_STATE)?, task_id, "")?
        .filter(|r| !r.is_tombstone())
        .and_then(|r| decode(&r.value)))
}

/// The labelled tasks of a customer's class group (the detectors' training data), in the order
/// their ground truth was sealed, after `after` (e.g. [`sealed_before`]; none: all), read a
/// page at a time: the caller holds a page, not the repository.
pub fn labelled<'a>(
    store: &'a dyn ReadStore,
    customer: &str,
    class_group: &str,
    after: Option<String>,
) -> Result<Paged<'a, LabelledRow>, StoreError> {
    Ok(paged(store, serving(store, LABELLED)?, class_group_scope(customer, class_group), after, PAGE))
}

/// The live rows of a partition after `after`, decoded, read `page` rows at a time.
fn paged<T>(
    store: &dyn ReadStore,
    table: String,
    partition: String,
    after: Option<String>,
    page: usize,
) -> Paged<'_, T> {
    Paged { store, table, partition, after, page, rows: VecDeque::new(), done: false, kind: std::marker::PhantomData }
}

/// The live rows of one partition, decoded, a page at a time (see [`labelled`]).
pub struct Paged<'a, T> {
    store: &'a dyn ReadStore,
    table: String,
    partition: String,
    after: Option<String>,
    page: usize,
    rows: VecDeque<Row>,
    done: bool,
    kind: std::marker::PhantomData<T>,
}

impl<T: serde::de::DeserializeOwned> Iterator for Paged<'_, T> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.rows.pop_front() {
                if row.is_tombstone() {
                    continue;
                }
                match decode::<T>(&row.value) {
                    Some(v) => return Some(Ok(v)),
                    None => continue,
                }
            }
            if self.done {
                return None;
            }
            let page = match self.store.scan_partition(&self.table, &self.partition, self.after.as_deref(), self.page) {
                Ok(page) => page,
                Err(e) => return Some(Err(e)),
            };
            self.done = page.len() < self.page;
            if let Some(last) = page.last() {
                self.after = Some(last.clustering.clone());
            }
            self.rows.extend(page);
        }
    }
}

/// Rows read per page by the paging readers.
const PAGE: usize = 256;

/// The last definition of a customer's class group.
pub fn class_group(store: &dyn ReadStore, customer: &str, key: &str) -> Result<Option<ClassGroupRow>, StoreError> {
    Ok(store
        .get(&serving(store, CLASS_GROUPS)?, &class_group_scope(customer, key), "")?
        .filter(|r| !r.is_tombstone())
        .and_then(|r| decode(&r.value)))
}

/// Every class group with its customer (a scan of a small table: one row per customer's class
/// group).
pub fn class_groups(store: &dyn ReadStore) -> Result<Vec<(String, String)>, StoreError> {
    let t = serving(store, CLASS_GROUPS)?;
    let mut out = Vec::new();
    for_each_row(store, &t, |r| {
        if let (Some((customer, _)), Some(row)) = (r.partition.split_once('|'), decode::<ClassGroupRow>(&r.value)) {
            out.push((customer.to_owned(), row.key));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Which tasks to list.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Of this customer.
    pub customer: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// Created at or after (ms).
    pub since_ms: Option<i64>,
    /// Created before (ms).
    pub until_ms: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// Lists tasks by customer, status and creation time, oldest first (one partition read when
/// both customer and status are given).
pub fn tasks(store: &dyn ReadStore, f: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
    let t = serving(store, TASKS_BY_STATUS)?;
    let keep = |s: &TaskSummary| {
        f.customer.as_ref().is_none_or(|c| &s.customer == c)
            && f.status.as_ref().is_none_or(|st| &s.status == st)
            && f.since_ms.is_none_or(|m| s.created_at_ms >= m)
            && f.until_ms.is_none_or(|m| s.created_at_ms < m)
    };
    let mut out: Vec<TaskSummary> = match (&f.customer, &f.status) {
        (Some(c), Some(s)) => rows_of(read_partition(store, &t, &format!("{c}|{s}"))?),
        _ => scan_of(store, &t)?,
    };
    out.retain(keep);
    out.sort_by(|a, b| (a.created_at_ms, &a.task_id).cmp(&(b.created_at_ms, &b.task_id)));
    out.truncate(if f.limit == 0 { usize::MAX } else { f.limit });
    Ok(out)
}

/// Rows of the operator queue read per customer and per page.
const QUEUE_PAGE: usize = 64;

/// The operator queue of some customers: waiting and assigned tasks, oldest first, read a page
/// at a time from each customer's partition and merged, so a caller that stops after `n` rows
/// has read about `n` rows (plus a page per customer), not the backlog.
pub fn queue<'a>(store: &'a dyn ReadStore, customers: &[String]) -> Result<QueueReader<'a>, StoreError> {
    let table = serving(store, OPERATOR_QUEUE)?;
    let pages = customers.iter().map(|c| paged(store, table.clone(), c.clone(), None, QUEUE_PAGE).peekable()).collect();
    Ok(QueueReader { pages })
}

/// The tasks an operator holds, of some customers (one small partition read per customer).
pub fn held(store: &dyn ReadStore, customers: &[String]) -> Result<Vec<QueueRow>, StoreError> {
    let t = serving(store, HELD_TASKS)?;
    let mut out = Vec::new();
    for c in customers {
        out.extend(rows_of::<QueueRow>(read_partition(store, &t, c)?));
    }
    out.sort_by(|a, b| (a.created_at_ms, &a.task_id).cmp(&(b.created_at_ms, &b.task_id)));
    Ok(out)
}

/// The operator queue, oldest first (see [`queue`]): the customers' pages merged.
pub struct QueueReader<'a> {
    pages: Vec<std::iter::Peekable<Paged<'a, QueueRow>>>,
}

impl Iterator for QueueReader<'_> {
    type Item = Result<QueueRow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        // a read error comes out first; else the oldest head (the clustering order of a page)
        let mut oldest: Option<(usize, (i64, String))> = None;
        for (i, page) in self.pages.iter_mut().enumerate() {
            let key = match page.peek() {
                Some(Err(_)) => return page.next(),
                Some(Ok(row)) => (row.created_at_ms, row.task_id.clone()),
                None => continue,
            };
            if oldest.as_ref().is_none_or(|(_, best)| key < *best) {
                oldest = Some((i, key));
            }
        }
        self.pages[oldest?.0].next()
    }
}

/// Precision and recall of a model in its backtest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    /// Precision measured.
    pub precision: f64,
    /// Recall measured.
    pub recall: f64,
}

/// Records a model's backtest (the backtester calls this when it has scored a model).
pub fn record_backtest(store: &dyn ReadStore, model: &str, version: u64, b: &Backtest) -> Result<(), StoreError> {
    let row = Row {
        partition: model.to_owned(),
        clustering: String::new(),
        version,
        value: serde_json::to_vec(b).expect("backtest serializes"),
    };
    store.put(&[Put { table: BACKTESTS.into(), row }])?;
    Ok(())
}

/// One line of the accuracy report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccuracyLine {
    /// `model@version`.
    pub model: String,
    /// The day, or `all`.
    pub day: String,
    /// The class id, or `None` for all classes.
    pub class_id: Option<u32>,
    /// Counts.
    pub tp: u64,
    /// Counts.
    pub fp: u64,
    /// Counts.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN).
    pub recall: Option<f64>,
    /// Detection runs scored.
    pub runs: u64,
}

/// The accuracy report of one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelAccuracy {
    /// `model@version`.
    pub model: String,
    /// All days, all classes.
    pub total: AccuracyLine,
    /// Per day, all classes.
    pub days: Vec<AccuracyLine>,
    /// Per class, all days.
    pub classes: Vec<AccuracyLine>,
    /// Its backtest, if recorded.
    pub backtest: Option<Backtest>,
    /// Whether production precision or recall fell more than the tolerance below the backtest.
    pub drift: Option<bool>,
}

fn line(model: &str, day: &str, class_id: Option<u32>, c: &Counts, runs: u64) -> AccuracyLine {
    AccuracyLine {
        model: model.to_owned(),
        day: day.to_owned(),
        class_id,
        tp: c.tp,
        fp: c.fp,
        fn_: c.fn_,
        precision: c.precision(),
        recall: c.recall(),
        runs,
    }
}

/// The engine monitor: TP/FP/FN, precision and recall per model, day and class, for runs on
/// days in `[from, to]` (`YYYY-MM-DD`, inclusive), and drift against the backtest.
pub fn accuracy(
    store: &dyn ReadStore,
    model: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<ModelAccuracy>, StoreError> {
    let t = serving(store, ENGINE_MONITOR)?;
    let mut scores: BTreeMap<String, Vec<RunScore>> = BTreeMap::new();
    for_each_row(store, &t, |r| {
        if let Some(s) = decode::<RunScore>(&r.value) {
            let wanted = model.is_none_or(|m| m == s.model)
                && from.is_none_or(|f| s.day.as_str() >= f)
                && to.is_none_or(|t| s.day.as_str() <= t);
            if wanted {
                scores.entry(s.model.clone()).or_default().push(s);
            }
        }
        Ok(())
    })?;
    let mut out = Vec::new();
    for (model, runs) in scores {
        let (mut total, mut days, mut classes) =
            (Counts::default(), BTreeMap::<String, (Counts, u64)>::new(), BTreeMap::<u32, (Counts, u64)>::new());
        for run in &runs {
            let day = days.entry(run.day.clone()).or_default();
            day.1 += 1;
            for (class_id, c) in &run.classes {
                total.add(c);
                day.0.add(c);
                let class = classes.entry(*class_id).or_default();
                class.0.add(c);
                class.1 += 1;
            }
        }
        let backtest =
            store.get(BACKTESTS, &model, "")?.and_then(|r| serde_json::from_slice::<Backtest>(&r.value).ok());
        let drift = backtest.map(|b| {
            total.precision().is_some_and(|p| p < b.precision - DRIFT_TOLERANCE)
                || total.recall().is_some_and(|r| r < b.recall - DRIFT_TOLERANCE)
        });
        out.push(ModelAccuracy {
            total: line(&model, "all", None, &total, runs.len() as u64),
            days: days.iter().map(|(d, (c, n))| line(&model, d, None, c, *n)).collect(),
            classes: classes.iter().map(|(k, (c, n))| line(&model, "all", Some(*k), c, *n)).collect(),
            model,
            backtest,
            drift,
        });
    }
    Ok(out)
}

/// One operator's work.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OperatorLine {
    /// The operator.
    pub operator: String,
    /// Sessions opened.
    pub sessions: u64,
    /// Annotation sessions sealed.
    pub annotation_sessions: u64,
    /// Quality-check sessions sealed.
    pub quality_check_sessions: u64,
    /// Sessions released unfinished.
    pub released: u64,
    /// Minutes spent in sealed or released sessions.
    pub minutes: f64,
    /// Objects drawn in annotation sessions.
    pub objects_annotated: u64,
    /// Objects drawn per minute of annotation.
    pub objects_per_minute: Option<f64>,
    /// Objects looked at in quality checks.
    pub objects_checked: u64,
    /// Corrections (added, removed, relabelled) made in quality checks.
    pub corrections: u64,
    /// Corrections per object checked.
    pub correction_rate: Option<f64>,
    /// This operator's annotation sessions another operator's quality check followed.
    pub annotations_rechecked: u64,
    /// Of the objects this operator annotated, how many another operator's quality check looked at.
    pub objects_rechecked: u64,
    /// The corrections those checks made to this operator's annotations.
    pub corrections_received: u64,
    /// 1 - corrections received per object rechecked (seed 000: each operator's accuracy).
    pub accuracy: Option<f64>,
    /// The accuracy by the day the annotation sessions started (over time).
    pub accuracy_by_day: BTreeMap<String, f64>,
}

/// The operator monitor, for sessions started on days in `[from, to]`.
pub fn operators(
    store: &dyn ReadStore,
    operator: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<OperatorLine>, StoreError> {
    let t = serving(store, OPERATOR_SESSIONS)?;
    let mut by: BTreeMap<String, (OperatorLine, f64)> = BTreeMap::new();
    let mut checked_days: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for_each_row(store, &t, |r| {
        let Some(row) = decode::<SessionRow>(&r.value) else { return Ok(()) };
        let s = &row.session;
        let day = crate::task_view::day(s.started_ms);
        if operator.is_some_and(|o| o != s.operator)
            || from.is_some_and(|f| day.as_str() < f)
            || to.is_some_and(|t| day.as_str() > t)
        {
            return Ok(());
        }
        let (l, annotation_minutes) = by.entry(s.operator.clone()).or_default();
        l.operator = s.operator.clone();
        l.sessions += 1;
        let minutes = s.ended_ms.map_or(0.0, |e| (e - s.started_ms).max(0) as f64 / 60_000.0);
        l.minutes += minutes;
        match (s.outcome.as_str(), s.purpose.as_str()) {
            ("finished", "annotation") => {
                l.annotation_sessions += 1;
                l.objects_annotated += u64::from(s.added);
                *annotation_minutes += minutes;
                if let Some(c) = &row.checked {
                    // a check that adds boxes looked at more than the annotator drew
                    let looked_at = u64::from(c.objects.max(c.corrections));
                    l.annotations_rechecked += 1;
                    l.objects_rechecked += looked_at;
                    l.corrections_received += u64::from(c.corrections);
                    let d = checked_days.entry((s.operator.clone(), day.clone())).or_default();
                    (d.0, d.1) = (d.0 + looked_at, d.1 + u64::from(c.corrections));
                }
            }
            ("finished", _) => {
                l.quality_check_sessions += 1;
                l.objects_checked += u64::from(s.objects_at_start);
                l.corrections += u64::from(s.added + s.removed + s.labeled);
            }
            ("released", _) => l.released += 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok(by
        .into_values()
        .map(|(mut l, annotation_minutes)| {
            // sessions shorter than the clock's resolution count as one ms
            l.objects_per_minute = (l.annotation_sessions > 0)
                .then(|| l.objects_annotated as f64 / annotation_minutes.max(1.0 / 60_000.0));
            l.correction_rate = (l.objects_checked > 0).then(|| l.corrections as f64 / l.objects_checked as f64);
            let accuracy = |looked: u64, fixed: u64| 1.0 - fixed.min(looked) as f64 / looked as f64;
            l.accuracy = (l.objects_rechecked > 0).then(|| accuracy(l.objects_rechecked, l.corrections_received));
            l.accuracy_by_day = checked_days
                .range((l.operator.clone(), String::new())..)
                .take_while(|((o, _), _)| *o == l.operator)
                .filter(|(_, (looked, _))| *looked > 0)
                .map(|((_, day), (looked, fixed))| (day.clone(), accuracy(*looked, *fixed)))
                .collect();
            l
        })
        .collect())
}

/// Billing of one customer-month, per recipe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BillingLine {
    /// The customer.
    pub customer: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The recipe.
    pub recipe: String,
    /// Tasks received.
    pub tasks: u64,
    /// Tasks billed (a result was generated, not cancelled).
    pub billable_tasks: u64,
    /// Images of the billed tasks.
    pub billable_images: u64,
}

/// Billing of a customer for a month (`YYYY-MM`): one partition read.
pub fn billing(store: &dyn ReadStore, customer: &str, month: &str) -> Result<Vec<BillingLine>, StoreError> {
    let rows: Vec<BillingRow> =
        rows_of(read_partition(store, &serving(store, BILLING)?, &format!("{customer}|{month}"))?);
    let mut by: BTreeMap<String, BillingLine> = BTreeMap::new();
    for r in rows {
        let l = by.entry(r.recipe.clone()).or_insert_with(|| BillingLine {
            customer: customer.to_owned(),
            month: month.to_owned(),
            recipe: r.recipe.clone(),
            ..Default::default()
        });
        l.tasks += 1;
        if r.billable {
            l.billable_tasks += 1;
            l.billable_images += u64::from(r.images);
        }
    }
    Ok(by.into_values().collect())
}

/// The training data of one class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrainingLine {
    /// The customer whose class group it is.
    pub customer: String,
    /// The class group.
    pub class_group: String,
    /// The class id.
    pub class_id: u32,
    /// Its name, from the class group's last definition.
    pub class_name: Option<String>,
    /// Crops.
    pub examples: u64,
    /// Tasks they come from.
    pub tasks: u64,
}

/// Training examples per customer's class group and class.
pub fn training(
    store: &dyn ReadStore,
    customer: Option<&str>,
    class_group: Option<&str>,
) -> Result<Vec<TrainingLine>, StoreError> {
    let g = generations::read(store)?.0.serving;
    let mut by: BTreeMap<(String, u32), TrainingLine> = BTreeMap::new();
    for_each_row(store, &table(TRAINING_INDEX, g), |r| {
        let Some((scope, class)) = r.partition.rsplit_once('|') else { return Ok(()) };
        let Some((who, group)) = scope.split_once('|') else { return Ok(()) };
        let (Some(row), Ok(class_id)) = (decode::<TrainingRow>(&r.value), class.parse::<u32>()) else { return Ok(()) };
        if customer.is_some_and(|c| c != who) || class_group.is_some_and(|c| c != group) {
            return Ok(());
        }
        let l = by.entry((scope.to_owned(), class_id)).or_insert_with(|| TrainingLine {
            customer: who.to_owned(),
            class_group: group.to_owned(),
            class_id,
            ..Default::default()
        });
        l.examples += row.crops.len() as u64;
        l.tasks += 1;
        Ok(())
    })?;
    let groups = table(CLASS_GROUPS, g);
    let mut names: BTreeMap<String, Option<ClassGroupRow>> = BTreeMap::new();
    for ((scope, _), l) in by.iter_mut() {
        let def = match names.get(scope) {
            Some(d) => d.clone(),
            None => {
                let d = store.get(&groups, scope, "")?.and_then(|r| decode::<ClassGroupRow>(&r.value));
                names.insert(scope.clone(), d.clone());
                d
            }
        };
        l.class_name = def.and_then(|d| d.classes.get(&l.class_id).cloned());
    }
    Ok(by.into_values().collect())
}

/// The crops of one class of a customer's class group: where each is, from which task (one
/// partition read).
pub fn training_examples(
    store: &dyn ReadStore,
    customer: &str,
    class_group: &str,
    class_id: u32,
) -> Result<Vec<TrainingRow>, StoreError> {
    let partition = format!("{}|{class_id}", class_group_scope(customer, class_group));
    Ok(rows_of(read_partition(store, &serving(store, TRAINING_INDEX)?, &partition)?))
}
