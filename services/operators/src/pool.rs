//! The simulated operator pool.

use crate::scenario::{Rng, scenario};
use std::collections::BTreeMap;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::summarizer::{UiAction, summarize};
use visionlog_domain::*;
use visionlog_journal::{CommandBus, ConsumeError, EventHandler, HandledEvent, deterministic_id, now_ms};

/// The consumer group of the operator pool.
pub const GROUP: &str = "operators";

/// Operators played by code: they take waiting tasks and annotate them from ground truth.
pub struct SimulatedOperators {
    bus: CommandBus,
    operators: Vec<String>,
}

impl SimulatedOperators {
    /// Creates a pool of `n` operators.
    pub fn new(bus: CommandBus, n: usize) -> Self {
        Self { bus, operators: (0..n.max(1)).map(|i| format!("op-{i}")).collect() }
    }

    fn send(
        &self,
        cause: &HandledEvent<'_>,
        step: usize,
        operator: &str,
        expected: u64,
        command: &TaskCommand,
    ) -> Result<(), ConsumeError> {
        let env = cause.envelope;
        let envelope = CommandEnvelope {
            command_id: deterministic_id(&[&env.event_id, GROUP, &step.to_string()]),
            task_id: env.task_id.clone(),
            command_type: command.type_name().to_owned(),
            expected_version: Some(expected),
            actor: format!("operator:{operator}"),
            tenant: env.tenant.clone(),
            correlation_id: env.correlation_id.clone(),
            causation_id: Some(env.event_id.clone()),
            issued_at_ms: now_ms(),
        };
        self.bus.send(&envelope, command).map_err(|e| ConsumeError::Transient(e.to_string()))?;
        Ok(())
    }

    /// The actions a person would take to draw the ground truth, mistakes included.
    fn session_actions(task_id: &str, session: &str, truth: &[AnnotatedObject]) -> Vec<UiAction> {
        let mut rng = Rng::from_key(&format!("{task_id}/{session}"));
        let mut actions = Vec::new();
        for (i, o) in truth.iter().enumerate() {
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
                let pick = Rng::from_key(&format!("{}/{}", env.task_id, env.version)).below(self.operators.len() as u64)
                    as usize;
                let operator = self.operators[pick].clone();
                let session_id = SessionId(format!("s{}", env.version));
                let assign =
                    TaskCommand::AssignOperator(AssignOperator { operator: OperatorId(operator.clone()), session_id });
                self.send(&e, 0, &operator, env.version, &assign)
            }
            TaskEvent::OperatorAssigned(a) => {
                let mut commands = Vec::new();
                if a.purpose == SessionPurpose::Annotation {
                    let truth = scenario(&env.task_id, &env.tenant).truth;
                    let actions = Self::session_actions(&env.task_id, a.session_id.as_str(), &truth);
                    let summary = summarize(&BTreeMap::new(), &actions)
                        .map_err(|err| ConsumeError::Transient(err.to_string()))?;
                    commands = summary.into_commands(&a.session_id);
                }
                // a quality check of a simulated task finds nothing to correct
                commands.push(TaskCommand::FinishOperatorSession(FinishOperatorSession {
                    session_id: a.session_id.clone(),
                }));
                for (i, command) in commands.iter().enumerate() {
                    self.send(&e, i + 1, a.operator.as_str(), env.version + i as u64, command)?;
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
    fn a_simulated_session_summarizes_to_the_ground_truth() {
        let truth = scenario("task-3", "acme").truth;
        let actions = SimulatedOperators::session_actions("task-3", "s5", &truth);
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
