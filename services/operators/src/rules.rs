//! The Operator Manager's rules, pure: who sees which queued task, who may take it, where a
//! task stands for an operator, and which session is whose. The HTTP routes ([`crate::routes`])
//! and the lease reaper ([`crate::leases`]) apply them; tests call them directly.

use visionlog_domain::{SessionPurpose, Stage, Task};
use visionlog_tenants::Operator;
use visionlog_views::views::QueueRow;

/// What an operator asks of the queue.
#[derive(Clone, Debug, Default)]
pub struct QueueFilter {
    /// Only this class group (project).
    pub project: Option<String>,
    /// Only this skill (`annotation`, `quality_check`).
    pub skill: Option<String>,
    /// Only tasks nobody holds.
    pub waiting: bool,
}

/// Whether `op` has `skill`; an operator with no skills listed has them all.
pub fn has_skill(op: &Operator, skill: &str) -> bool {
    op.skills.is_empty() || op.skills.iter().any(|s| s == skill)
}

/// Whether a queue row is one `op` is shown for `filter`: it needs a skill of the operator's
/// and matches the filter. (Which customers' rows it sees at all is decided by its teams.)
pub fn shown(op: &Operator, row: &QueueRow, filter: &QueueFilter) -> bool {
    has_skill(op, &row.skill)
        && filter.project.as_ref().is_none_or(|p| &row.class_group == p)
        && filter.skill.as_ref().is_none_or(|s| &row.skill == s)
        && (!filter.waiting || row.operator.is_none())
}

/// The skill a task waits for, if it waits for an operator.
pub fn waits_for(stage: &Stage) -> Option<&'static str> {
    match stage {
        Stage::AwaitingOperator(SessionPurpose::Annotation) => Some("annotation"),
        Stage::AwaitingOperator(SessionPurpose::QualityCheck) => Some("quality_check"),
        _ => None,
    }
}

/// Whether `op` may take a task at `stage`: it must have the skill the task waits for. (Which
/// task version it takes, and that nobody took it first, the aggregator decides.)
pub fn may_take(op: &Operator, stage: &Stage) -> Result<(), String> {
    match waits_for(stage) {
        Some(skill) if !has_skill(op, skill) => Err(format!("operator {} lacks the skill {skill}", op.id)),
        _ => Ok(()),
    }
}

/// Which step the tool is at, derived from the task's events: `take` (waiting for an
/// operator), `annotate` / `check` (this operator's open session), `taken` (someone else's),
/// `waiting` (a model or a service is at work), `done`, `cancelled`.
pub fn step(task: &Task, me: &str) -> &'static str {
    match &task.stage {
        Stage::AwaitingOperator(_) => "take",
        Stage::InSession { operator, purpose, .. } if operator.as_str() == me => match purpose {
            SessionPurpose::Annotation => "annotate",
            SessionPurpose::QualityCheck => "check",
        },
        Stage::InSession { .. } => "taken",
        Stage::ResultGenerated => "done",
        Stage::Cancelled => "cancelled",
        _ => "waiting",
    }
}

/// Whether `task` is in `me`'s session `session_id`.
pub fn in_session_of(task: &Task, me: &str, session_id: &str) -> bool {
    matches!(&task.stage, Stage::InSession { operator, session_id: open, .. }
        if operator.as_str() == me && open.as_str() == session_id)
}

/// The session an assignment opens: one per operator and task version, so a retried assignment
/// opens the same one.
pub fn session_id(operator: &str, version: u64) -> String {
    format!("{operator}-v{version}")
}

/// When a session's lease ends (ms): the later of its start plus one lease and its last
/// heartbeat's expiry.
pub fn lease_expiry(session_started_ms: i64, lease_ms: i64, last_heartbeat_until_ms: Option<i64>) -> i64 {
    (session_started_ms + lease_ms).max(last_heartbeat_until_ms.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(skills: &[&str]) -> Operator {
        Operator {
            id: "anna".into(),
            teams: vec!["shelves".into()],
            skills: skills.iter().map(|s| s.to_string()).collect(),
            tokens: vec![],
        }
    }

    fn row(skill: &str, holder: Option<&str>) -> QueueRow {
        QueueRow {
            task_id: "t1".into(),
            customer: "acme".into(),
            class_group: "drinks".into(),
            skill: skill.into(),
            version: 3,
            operator: holder.map(str::to_owned),
            ..QueueRow::default()
        }
    }

    #[test]
    fn an_operator_sees_only_rows_it_has_the_skill_for() {
        let annotator = op(&["annotation"]);
        assert!(shown(&annotator, &row("annotation", None), &QueueFilter::default()));
        assert!(!shown(&annotator, &row("quality_check", None), &QueueFilter::default()));
        assert!(shown(&op(&[]), &row("quality_check", None), &QueueFilter::default()), "no skills listed: all");
    }

    #[test]
    fn the_filter_narrows_by_project_skill_and_holder() {
        let anyone = op(&[]);
        let waiting = QueueFilter { waiting: true, ..QueueFilter::default() };
        assert!(!shown(&anyone, &row("annotation", Some("bob")), &waiting));
        assert!(shown(&anyone, &row("annotation", None), &waiting));
        let other_project = QueueFilter { project: Some("snacks".into()), ..QueueFilter::default() };
        assert!(!shown(&anyone, &row("annotation", None), &other_project));
        let checks = QueueFilter { skill: Some("quality_check".into()), ..QueueFilter::default() };
        assert!(!shown(&anyone, &row("annotation", None), &checks));
    }

    #[test]
    fn taking_a_task_needs_the_skill_it_waits_for() {
        let checker = op(&["quality_check"]);
        let annotation = Stage::AwaitingOperator(SessionPurpose::Annotation);
        let check = Stage::AwaitingOperator(SessionPurpose::QualityCheck);
        assert_eq!(may_take(&checker, &annotation).unwrap_err(), "operator anna lacks the skill annotation");
        assert!(may_take(&checker, &check).is_ok());
        assert!(may_take(&checker, &Stage::Cancelled).is_ok(), "the aggregator refuses what does not wait");
    }

    #[test]
    fn a_lease_ends_at_the_later_of_start_plus_lease_and_the_last_heartbeat() {
        assert_eq!(lease_expiry(1_000, 120_000, None), 121_000);
        assert_eq!(lease_expiry(1_000, 120_000, Some(200_000)), 200_000);
        assert_eq!(lease_expiry(1_000, 120_000, Some(50_000)), 121_000, "an old heartbeat never shortens it");
    }
}
