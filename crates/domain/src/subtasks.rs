//! Which subtasks of a task an operator works on. Seed 000: the operations team wanted "to only
//! annotate some subtasks and hide the other - already high accuracy - ones from the operator",
//! and a correction of an upstream subtask sends the dependent ones back to the servers. Both
//! are read from the task's events, never inferred from its last state (ADR 0022).

use crate::event::TaskEvent;
use crate::ids::ObjectId;
use crate::summarizer::{SessionObject, Summary};
use crate::values::{Recipe, SessionPurpose, Subtask};
use std::collections::BTreeMap;

/// The subtasks an operator's session on a task shows, and so may change, in recipe order.
///
/// A quality check shows every subtask of the recipe: it is the sample that keeps measuring the
/// models, those of hidden subtasks included. An annotation session shows the subtasks of
/// `shown` (the customer's setting for this recipe; all of them where it says nothing), and
/// every subtask whose model was missing at its latest run in `events`: what no model can do,
/// an operator must. So a task whose recognizer is missing comes back to an operator for its
/// classes after one whose classes are hidden drew its boxes.
pub fn operator_subtasks<'a>(
    recipe: Recipe,
    shown: Option<&[Subtask]>,
    purpose: SessionPurpose,
    events: impl IntoIterator<Item = &'a TaskEvent>,
) -> Vec<Subtask> {
    let all = recipe.subtasks();
    let Some(shown) = shown.filter(|_| purpose == SessionPurpose::Annotation) else { return all.to_vec() };
    // the latest model answer per subtask: `true` where it was "no model"
    let mut missing: BTreeMap<Subtask, bool> = BTreeMap::new();
    for event in events {
        match event {
            TaskEvent::ObjectsDetected(_) => _ = missing.insert(Subtask::Detection, false),
            TaskEvent::ObjectsRecognized(_) => _ = missing.insert(Subtask::Recognition, false),
            TaskEvent::ModelNotFound(e) => {
                if let Some(s) = all.iter().find(|s| s.name() == e.step) {
                    missing.insert(*s, true);
                }
            }
            _ => {}
        }
    }
    all.iter().copied().filter(|s| shown.contains(s) || missing.get(s) == Some(&true)).collect()
}

/// Refuses a session that changed a subtask of `recipe` it did not show: boxes added, moved or
/// removed where detection is hidden; classes given where recognition is hidden (a moved box
/// keeps the class it had: the tool carries it over, and the recognizer classifies the box
/// again). In a recipe without a recognition step the classes are part of detection.
/// `initial` is the objects the session started from.
pub fn check_session(
    summary: &Summary,
    initial: &BTreeMap<ObjectId, SessionObject>,
    recipe: Recipe,
    shown: &[Subtask],
) -> Result<(), String> {
    let hidden = |s: Subtask| recipe.subtasks().contains(&s) && !shown.contains(&s);
    if hidden(Subtask::Detection) && (!summary.added.is_empty() || !summary.removed.is_empty()) {
        return Err("detection is not an operator's subtask here: the boxes stay as they are; fix their classes".into());
    }
    if hidden(Subtask::Recognition) {
        let carried = |o: &crate::values::AnnotatedObject| {
            initial.get(&o.object_id).is_some_and(|before| before.class_id == o.class_id)
        };
        let classified = summary.added.iter().find(|o| o.class_id.is_some() && !carried(o));
        if let Some(o) = classified {
            return Err(format!(
                "recognition is not an operator's subtask here: box {} is drawn with a class; draw boxes \
                 without one and the recognizer classifies them",
                o.object_id
            ));
        }
        if let Some(l) = summary.labeled.first() {
            return Err(format!(
                "recognition is not an operator's subtask here: box {} is relabelled; the recognizer classifies \
                 boxes, an operator fixes the boxes",
                l.object_id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ModelNotFound, ObjectsRecognized};
    use crate::values::{AnnotatedObject, BoundingBox, ModelRef, ObjectLabel};

    fn not_found(step: &str) -> TaskEvent {
        TaskEvent::ModelNotFound(ModelNotFound { step: step.into(), class_group_key: "k".into() })
    }

    fn recognized() -> TaskEvent {
        let model = ModelRef { model_id: "r".into(), version: 1 };
        TaskEvent::ObjectsRecognized(ObjectsRecognized { attempt: 1, model, objects: vec![] })
    }

    const DR: Recipe = Recipe::DetectionAndRecognition;
    const ANNOTATION: SessionPurpose = SessionPurpose::Annotation;
    const BOXES: &[Subtask] = &[Subtask::Detection];

    #[test]
    fn an_operator_sees_every_subtask_where_the_customer_says_nothing_and_every_one_in_a_check() {
        assert_eq!(operator_subtasks(DR, None, ANNOTATION, &[]), [Subtask::Detection, Subtask::Recognition]);
        assert_eq!(operator_subtasks(Recipe::Detection, None, ANNOTATION, &[]), [Subtask::Detection]);
        assert_eq!(
            operator_subtasks(DR, Some(BOXES), SessionPurpose::QualityCheck, &[]),
            [Subtask::Detection, Subtask::Recognition],
            "a check measures the hidden subtasks too"
        );
    }

    #[test]
    fn a_hidden_subtask_shows_again_while_its_model_is_missing() {
        assert_eq!(operator_subtasks(DR, Some(BOXES), ANNOTATION, &[not_found("detection")]), BOXES);
        let no_recognizer = [not_found("detection"), not_found("recognition")];
        assert_eq!(
            operator_subtasks(DR, Some(BOXES), ANNOTATION, &no_recognizer),
            [Subtask::Detection, Subtask::Recognition]
        );
        // a recognizer that answered later hides it again
        let answered = [not_found("recognition"), recognized()];
        assert_eq!(operator_subtasks(DR, Some(BOXES), ANNOTATION, &answered), BOXES);
        // detection hidden, and its model answered: only the classes
        let classes = [Subtask::Recognition];
        assert_eq!(operator_subtasks(DR, Some(&classes), ANNOTATION, &answered), classes);
    }

    fn object(id: &str, class_id: Option<u32>) -> AnnotatedObject {
        AnnotatedObject {
            object_id: id.into(),
            image: 0,
            bbox: BoundingBox { x: 1.0, y: 1.0, w: 5.0, h: 5.0 },
            class_id,
        }
    }

    #[test]
    fn a_session_may_not_change_a_hidden_subtask() {
        let initial: BTreeMap<ObjectId, SessionObject> = [(
            ObjectId::from("a"),
            SessionObject { image: 0, bbox: BoundingBox { x: 0.0, y: 0.0, w: 5.0, h: 5.0 }, class_id: Some(3) },
        )]
        .into();
        let both = [Subtask::Detection, Subtask::Recognition];
        // a moved box keeps its class, and a new box has none: boxes only
        let boxes = Summary {
            removed: vec!["a".into()],
            added: vec![object("a", Some(3)), object("b", None)],
            labeled: vec![],
        };
        assert_eq!(check_session(&boxes, &initial, DR, BOXES), Ok(()));
        assert!(check_session(&boxes, &initial, DR, &[Subtask::Recognition]).unwrap_err().contains("detection"));
        let drawn_with_class = Summary { added: vec![object("b", Some(2))], ..Summary::default() };
        assert!(
            check_session(&drawn_with_class, &initial, DR, BOXES).unwrap_err().contains("box b is drawn with a class")
        );
        let moved_and_relabelled =
            Summary { removed: vec!["a".into()], added: vec![object("a", Some(2))], labeled: vec![] };
        assert!(check_session(&moved_and_relabelled, &initial, DR, BOXES).is_err());
        let relabelled =
            Summary { labeled: vec![ObjectLabel { object_id: "a".into(), class_id: 2 }], ..Summary::default() };
        assert!(check_session(&relabelled, &initial, DR, BOXES).unwrap_err().contains("box a is relabelled"));
        assert_eq!(check_session(&relabelled, &initial, DR, &[Subtask::Recognition]), Ok(()));
        for s in [&boxes, &drawn_with_class, &moved_and_relabelled, &relabelled] {
            assert_eq!(check_session(s, &initial, DR, &both), Ok(()));
            // detection alone: its operators draw and classify
            assert_eq!(check_session(s, &initial, Recipe::Detection, BOXES), Ok(()));
        }
    }
}
