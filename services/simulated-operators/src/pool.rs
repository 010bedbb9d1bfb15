//! The simulated operator pool.

use crate::scenario::{Rng, scenario};
use std::collections::BTreeMap;
use visionlog_domain::summarizer::{UiAction, summarize};
use visionlog_domain::{
    AddObjects, AnnotatedObject, AssignOperator, BoundingBox, DetectedObject, FinishOperatorSession, LabelObjects,
    ObjectId, ObjectLabel, OperatorId, RemoveObjects, SessionId, SessionPurpose, Subtask, TaskCommand, TaskEvent,
};
use visionlog_journal::{CommandBus, ConsumeError, EventHandler, HandledEvent, caused_by, deterministic_id};

/// The consumer group of the operator pool.
pub const GROUP: &str = "operators";

/// What an operator sees of a task as of at least the version given (`None` while the read
/// side has not caught up with it yet).
pub type TaskObjects = Box<dyn Fn(&str, u64) -> Result<Option<SeenTask>, String> + Send>;

/// A task as the operator tool shows it.
#[derive(Clone, Debug, Default)]
pub struct SeenTask {
    /// Its objects now.
    pub objects: Vec<DetectedObject>,
    /// Who annotated them, if an operator did (a check is another operator's).
    pub annotator: Option<String>,
}

/// The subtasks of a task that an operator's session left to the models (its customer's
/// setting for the recipe, read against the task's events up to the version given:
/// `visionlog_domain::subtasks`), for the session's purpose.
pub type HiddenSubtasks = Box<dyn Fn(&str, u64, SessionPurpose) -> Result<Vec<Subtask>, String> + Send>;

/// Operators played by code: they take waiting tasks, annotate them from ground truth, and in
/// quality checks correct a model's result to the ground truth. Like people with the operator
/// tool, they change only the subtasks their customer gives them (see [`Self::with_hidden`]).
pub struct SimulatedOperators {
    bus: CommandBus,
    operators: Vec<String>,
    objects: Option<TaskObjects>,
    hidden: Option<HiddenSubtasks>,
}

impl SimulatedOperators {
    /// Creates a pool of `n` operators.
    pub fn new(bus: CommandBus, n: usize) -> Self {
        Self { bus, operators: (0..n.max(1)).map(|i| format!("op-{i}")).collect(), objects: None, hidden: None }
    }

    /// Lets sessions leave alone the subtasks a customer leaves to the models: where recognition
    /// is hidden, boxes are drawn without classes and none is relabelled (the recognizer
    /// classifies them); where detection is hidden, only classes are fixed. Without it every
    /// subtask is worked on.
    pub fn with_hidden(mut self, hidden: HiddenSubtasks) -> Self {
        self.hidden = Some(hidden);
        self
    }

    /// Lets quality checks see the task's objects, to correct them; without it a check finds
    /// nothing to correct.
    pub fn with_task_objects(mut self, objects: TaskObjects) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Operators see the task's objects in the read models (`task_view`).
    pub fn seeing_views(self, store: std::sync::Arc<dyn visionlog_store::ReadStore>) -> Self {
        self.with_task_objects(Box::new(move |task, version| {
            let view = visionlog_views::queries::task_view(store.as_ref(), task).map_err(|e| e.to_string())?;
            Ok(view.filter(|v| v.version >= version).map(|v| {
                let annotator = v
                    .sessions
                    .iter()
                    .rev()
                    .find(|s| s.purpose == "annotation" && s.outcome == "finished")
                    .map(|s| s.operator.clone());
                let objects = v
                    .objects
                    .into_values()
                    .map(|o| DetectedObject {
                        object_id: ObjectId(o.object_id),
                        image: o.image,
                        bbox: o.bbox,
                        class_id: o.class_id,
                        score: o.score.unwrap_or(1.0),
                    })
                    .collect();
                SeenTask { objects, annotator }
            }))
        }))
    }

    /// The commands that turn a model's objects into the ground truth: false positives
    /// removed, wrong classes relabelled, misses added (matching by IoU >= 0.5, best first).
    pub fn corrections(session: &str, objects: &[DetectedObject], truth: &[AnnotatedObject]) -> Vec<TaskCommand> {
        let session_id = SessionId(session.to_owned());
        let mut pairs = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            for (j, t) in truth.iter().enumerate() {
                let iou = o.bbox.iou(&t.bbox);
                if o.image == t.image && iou >= visionlog_domain::scoring::MATCH_IOU {
                    pairs.push((iou, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let (mut o_used, mut t_used) = (vec![false; objects.len()], vec![false; truth.len()]);
        let mut labels = Vec::new();
        for (_, i, j) in pairs {
            if o_used[i] || t_used[j] {
                continue;
            }
            (o_used[i], t_used[j]) = (true, true);
            if let Some(class_id) = truth[j].class_id.filter(|c| objects[i].class_id != Some(*c)) {
                labels.push(ObjectLabel { object_id: objects[i].object_id.clone(), class_id });
            }
        }
        let removed: Vec<ObjectId> =
            objects.iter().zip(&o_used).filter(|(_, used)| !**used).map(|(o, _)| o.object_id.clone()).collect();
        let added: Vec<AnnotatedObject> = truth
            .iter()
            .zip(&t_used)
            .filter(|(_, used)| !**used)
            .enumerate()
            .map(|(n, (t, _))| AnnotatedObject { object_id: ObjectId(format!("{session}.q{n}")), ..t.clone() })
            .collect();
        let mut commands = Vec::new();
        if !removed.is_empty() {
            commands.push(TaskCommand::RemoveObjects(RemoveObjects {
                session_id: session_id.clone(),
                object_ids: removed,
            }));
        }
        if !labels.is_empty() {
            commands.push(TaskCommand::LabelObjects(LabelObjects { session_id: session_id.clone(), labels }));
        }
        if !added.is_empty() {
            commands.push(TaskCommand::AddObjects(AddObjects { session_id, objects: added }));
        }
        commands
    }

    /// A session's commands without what changes a hidden subtask: with detection hidden, no box
    /// added or removed; with recognition hidden, no class given (boxes drawn without one, no
    /// relabelling). What is left of the work goes to the models, or back to an operator when
    /// their model is missing.
    pub fn within(commands: Vec<TaskCommand>, hidden: &[Subtask]) -> Vec<TaskCommand> {
        let (boxes, classes) = (!hidden.contains(&Subtask::Detection), !hidden.contains(&Subtask::Recognition));
        commands
            .into_iter()
            .filter_map(|c| match c {
                TaskCommand::AddObjects(_) | TaskCommand::RemoveObjects(_) if !boxes => None,
                TaskCommand::LabelObjects(_) if !classes => None,
                TaskCommand::AddObjects(mut a) if !classes => {
                    a.objects.iter_mut().for_each(|o| o.class_id = None);
                    Some(TaskCommand::AddObjects(a))
                }
                c => Some(c),
            })
            .collect()
    }

    fn send(
        &self,
        cause: &HandledEvent<'_>,
        step: usize,
        operator: &str,
        expected: Option<u64>,
        command: &TaskCommand,
    ) -> Result<(), ConsumeError> {
        let env = cause.envelope;
        let command_id = deterministic_id(&[&env.event_id, GROUP, &step.to_string()]);
        let mut envelope = caused_by(env, command_id, command, env.version, format!("operator:{operator}"));
        envelope.expected_version = expected;
        self.bus.send(&envelope, command).map_err(|e| ConsumeError::Transient(e.to_string()))?;
        Ok(())
    }

    /// How often an operator overlooks a product when annotating, per thousand: `op-N` misses
    /// N * 40 ‰ (op-0 none), so the operator monitor's accuracies differ as people's do.
    fn misses_per_mille(operator: &str) -> u64 {
        operator.strip_prefix("op-").and_then(|n| n.parse::<u64>().ok()).map_or(0, |n| (n * 40).min(500))
    }

    /// The actions a person would take to draw the ground truth, mistakes included (some
    /// corrected in the session, some products overlooked: see [`Self::misses_per_mille`]).
    fn session_actions(task_id: &str, session: &str, truth: &[AnnotatedObject], misses: u64) -> Vec<UiAction> {
        let mut rng = Rng::from_key(&format!("{task_id}/{session}"));
        let mut actions = Vec::new();
        for (i, o) in truth.iter().enumerate() {
            if rng.below(1000) < misses {
                continue;
            }
            let id = ObjectId(format!("{session}.{i}"));
            let unlabeled_first = rng.below(4) == 0;
            let drawn_off = rng.below(5) == 0;
            let first_box =
                if drawn_off { BoundingBox { x: o.bbox.x + 3.0, y: o.bbox.y + 2.0, ..o.bbox } } else { o.bbox };
            actions.push(UiAction::Add {
                object_id: id.clone(),
                image: o.image,
                bbox: first_box,
                class_id: if unlabeled_first { None } else { o.class_id },
            });
            if drawn_off {
                actions.push(UiAction::Move { object_id: id.clone(), bbox: o.bbox });
            }
            if rng.below(6) == 0 {
                // a box drawn by mistake, deleted again
                let junk = ObjectId(format!("{session}.{i}.junk"));
                actions.push(UiAction::Add { object_id: junk.clone(), image: o.image, bbox: o.bbox, class_id: None });
                actions.push(UiAction::Remove { object_id: junk });
            }
            if let (true, Some(class_id)) = (unlabeled_first, o.class_id) {
                actions.push(UiAction::Label { object_id: id, class_id });
            }
        }
        actions
    }
}

impl EventHandler for SimulatedOperators {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        let env = e.envelope;
        match e.event {
            TaskEvent::AssistanceRequested(_) | TaskEvent::QualityCheckRequested(_) => {
                let mut pick = Rng::from_key(&format!("{}/{}", env.task_id, env.version))
                    .below(self.operators.len() as u64) as usize;
                if let (TaskEvent::QualityCheckRequested(_), Some(seen)) = (e.event, &self.objects) {
                    // a check is another operator's than the annotator's
                    let task = seen(&env.task_id, env.version).map_err(ConsumeError::Transient)?.ok_or_else(|| {
                        ConsumeError::NotYet(format!("task {} is not projected up to its check yet", env.task_id))
                    })?;
                    if task.annotator.as_deref() == Some(self.operators[pick].as_str()) {
                        pick = (pick + 1) % self.operators.len();
                    }
                }
                let operator = self.operators[pick].clone();
                let session_id = SessionId(format!("s{}", env.version));
                let assign =
                    TaskCommand::AssignOperator(AssignOperator { operator: OperatorId(operator.clone()), session_id });
                // taking a waiting task is decided on the task as it is then (the aggregate
                // refuses one taken or no longer waiting): a delivery report recorded since the
                // request must not make the assignment a version conflict
                self.send(&e, 0, &operator, None, &assign)
            }
            TaskEvent::OperatorAssigned(a) => {
                let mut commands = Vec::new();
                let truth = scenario(&env.task_id, &env.tenant).truth;
                // a task a model already boxed (its recognizer missing, or sent back to an
                // operator) is corrected like a quality check; a new project's is drawn anew
                let seen = match &self.objects {
                    Some(objects) => Some(
                        objects(&env.task_id, env.version.saturating_sub(1))
                            .map_err(ConsumeError::Transient)?
                            .ok_or_else(|| {
                                ConsumeError::NotYet(format!(
                                    "task {} is not projected up to its assignment yet",
                                    env.task_id
                                ))
                            })?,
                    ),
                    None => None,
                };
                let seen = seen.map(|s| s.objects);
                let boxed = seen.as_ref().is_some_and(|o| !o.is_empty());
                if a.purpose == SessionPurpose::Annotation && !boxed {
                    let misses = Self::misses_per_mille(a.operator.as_str());
                    let actions = Self::session_actions(&env.task_id, a.session_id.as_str(), &truth, misses);
                    let summary = summarize(&BTreeMap::new(), &actions)
                        .map_err(|err| ConsumeError::Transient(err.to_string()))?;
                    commands = summary.into_commands(&a.session_id);
                } else if let Some(now) = seen {
                    // a model's objects, corrected to what is on the shelf
                    commands = Self::corrections(a.session_id.as_str(), &now, &truth);
                }
                if let Some(hidden) = &self.hidden {
                    let hidden = hidden(&env.task_id, env.version, a.purpose).map_err(ConsumeError::Transient)?;
                    commands = Self::within(commands, &hidden);
                }
                commands.push(TaskCommand::FinishOperatorSession(FinishOperatorSession {
                    session_id: a.session_id.clone(),
                }));
                for (i, command) in commands.iter().enumerate() {
                    self.send(&e, i + 1, a.operator.as_str(), Some(env.version + i as u64), command)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quality_check_corrects_a_model_result_to_the_ground_truth() {
        let truth = scenario("task-9", "acme").truth;
        let detected = |i: usize, dx: f32, class_id| DetectedObject {
            object_id: ObjectId(format!("d1.{i}")),
            image: truth[i].image,
            bbox: BoundingBox { x: truth[i].bbox.x + dx, ..truth[i].bbox },
            class_id,
            score: 0.9,
        };
        let objects = vec![
            detected(0, 1.0, truth[0].class_id),                        // right
            detected(1, 0.0, Some(truth[1].class_id.unwrap() % 8 + 1)), // wrong class
            detected(2, 500.0, truth[2].class_id),                      // nothing there
        ];
        let commands = SimulatedOperators::corrections("s7", &objects, &truth);
        let [TaskCommand::RemoveObjects(r), TaskCommand::LabelObjects(l), TaskCommand::AddObjects(a)] = &commands[..]
        else {
            panic!("{commands:?}")
        };
        assert_eq!(r.object_ids, [ObjectId("d1.2".into())]);
        assert_eq!(
            (l.labels.len(), l.labels[0].object_id.as_str(), Some(l.labels[0].class_id)),
            (1, "d1.1", truth[1].class_id)
        );
        assert_eq!(a.objects.len(), truth.len() - 2, "every true box but the two found");
        assert!(a.objects.iter().all(|o| o.object_id.as_str().starts_with("s7.q")));
        assert!(SimulatedOperators::corrections("s8", &[], &[]).is_empty());
    }

    #[test]
    fn a_session_leaves_the_hidden_subtasks_to_the_models() {
        let truth = scenario("task-4", "acme").truth;
        let actions = SimulatedOperators::session_actions("task-4", "s3", &truth, 0);
        let drawn = summarize(&BTreeMap::new(), &actions).unwrap().into_commands(&SessionId("s3".into()));
        assert!(
            drawn
                .iter()
                .any(|c| matches!(c, TaskCommand::AddObjects(a) if a.objects.iter().all(|o| o.class_id.is_some())))
        );
        // classes left to the recognizer: the same boxes, none with a class, nothing relabelled
        let boxes_only = SimulatedOperators::within(drawn.clone(), &[Subtask::Recognition]);
        let [TaskCommand::AddObjects(a)] = &boxes_only[..] else { panic!("{boxes_only:?}") };
        assert_eq!(a.objects.len(), truth.len());
        assert!(a.objects.iter().all(|o| o.class_id.is_none()));
        // boxes left to the detector: only classes are fixed
        let wrong = DetectedObject {
            object_id: ObjectId("d1.0".into()),
            image: truth[0].image,
            bbox: truth[0].bbox,
            class_id: Some(truth[0].class_id.unwrap() % 8 + 1),
            score: 0.9,
        };
        let fixes = SimulatedOperators::corrections("s4", &[wrong], &truth);
        let classes_only = SimulatedOperators::within(fixes, &[Subtask::Detection]);
        assert!(matches!(&classes_only[..], [TaskCommand::LabelObjects(_)]), "{classes_only:?}");
        assert_eq!(SimulatedOperators::within(drawn.clone(), &[]), drawn, "nothing hidden, nothing changed");
    }

    #[test]
    fn a_simulated_session_summarizes_to_the_ground_truth() {
        let truth = scenario("task-3", "acme").truth;
        let actions = SimulatedOperators::session_actions("task-3", "s5", &truth, 0);
        assert!(actions.len() > truth.len(), "mistakes were made and fixed");
        let summary = summarize(&BTreeMap::new(), &actions).unwrap();
        assert!(summary.removed.is_empty() && summary.labeled.is_empty());
        assert_eq!(summary.added.len(), truth.len());
        for (i, want) in truth.iter().enumerate() {
            let got = summary.added.iter().find(|o| o.object_id.as_str() == format!("s5.{i}")).unwrap();
            assert_eq!((got.bbox, got.class_id), (want.bbox, want.class_id));
        }
    }
}
