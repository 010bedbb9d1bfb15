//! The session summarizer (seed 000 "Summarized commands").
//!
//! The annotation tool keeps an operator's changes in a local stack and sends them in bulk. A
//! session of thousands of single-object actions must become at most one command per kind:
//! one `RemoveObjects`, one `AddObjects`, one `LabelObjects`, with every pair of actions that
//! cancel each other gone (an object drawn and deleted again leaves no trace).
//!
//! Instead of rewriting the action list pairwise (seed 000's "fruitful breeding ground for
//! bugs"), the summarizer replays the actions on a copy of the objects and diffs the final set
//! against the initial one. Correctness then follows from one property, tested below: applying
//! the summary (removals, then additions, then labels) to the initial objects gives exactly the
//! objects that applying every action in order gives.

use crate::command::{AddObjects, LabelObjects, RemoveObjects, TaskCommand};
use crate::ids::{ObjectId, SessionId};
use crate::values::{AnnotatedObject, BoundingBox, ObjectLabel};
use std::collections::BTreeMap;
use thiserror::Error;

/// One change an operator made in the annotation tool; as JSON, tagged by `op`
/// (`{"op": "move", "object_id": "s1.0", "bbox": {...}}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum UiAction {
    /// Drew a new box.
    Add {
        /// The id the tool gave it.
        object_id: ObjectId,
        /// Index of the image.
        image: u32,
        /// The box.
        bbox: BoundingBox,
        /// Its class, if chosen while drawing.
        #[serde(default)]
        class_id: Option<u32>,
    },
    /// Moved or resized a box.
    Move {
        /// The box.
        object_id: ObjectId,
        /// Its new geometry.
        bbox: BoundingBox,
    },
    /// Deleted a box.
    Remove {
        /// The box.
        object_id: ObjectId,
    },
    /// Gave a box a class.
    Label {
        /// The box.
        object_id: ObjectId,
        /// The class.
        class_id: u32,
    },
}

/// An object as the summarizer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionObject {
    /// Index of the image.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Its class.
    pub class_id: Option<u32>,
}

/// Why a list of actions cannot be summarized.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SummaryError {
    /// An action refers to an object that does not exist at that point of the session.
    #[error("action {index} refers to object {object_id}, which does not exist then")]
    UnknownObject {
        /// Position of the action.
        index: usize,
        /// The object.
        object_id: String,
    },
    /// An action adds an object whose id is taken at that point of the session.
    #[error("action {index} adds object {object_id}, which exists already")]
    DuplicateObject {
        /// Position of the action.
        index: usize,
        /// The object.
        object_id: String,
    },
}

/// The net effect of a session: at most one list per kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Objects to remove (deleted, or replaced because their geometry changed).
    pub removed: Vec<ObjectId>,
    /// Objects to add (new, or replacements).
    pub added: Vec<AnnotatedObject>,
    /// Objects kept whose class changed.
    pub labeled: Vec<ObjectLabel>,
}

impl Summary {
    /// Tells whether the session changed nothing.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.labeled.is_empty()
    }

    /// Returns the summarized commands in the order they must be applied: remove, add, label.
    pub fn into_commands(self, session_id: &SessionId) -> Vec<TaskCommand> {
        let mut commands = Vec::with_capacity(3);
        if !self.removed.is_empty() {
            commands.push(TaskCommand::RemoveObjects(RemoveObjects {
                session_id: session_id.clone(),
                object_ids: self.removed,
            }));
        }
        if !self.added.is_empty() {
            commands.push(TaskCommand::AddObjects(AddObjects { session_id: session_id.clone(), objects: self.added }));
        }
        if !self.labeled.is_empty() {
            commands
                .push(TaskCommand::LabelObjects(LabelObjects { session_id: session_id.clone(), labels: self.labeled }));
        }
        commands
    }

    /// Applies the summary to a set of objects, as the aggregate would.
    pub fn apply(&self, objects: &mut BTreeMap<ObjectId, SessionObject>) {
        for id in &self.removed {
            objects.remove(id);
        }
        for o in &self.added {
            let object = SessionObject { image: o.image, bbox: o.bbox, class_id: o.class_id };
            objects.insert(o.object_id.clone(), object);
        }
        for l in &self.labeled {
            if let Some(o) = objects.get_mut(&l.object_id) {
                o.class_id = Some(l.class_id);
            }
        }
    }
}

/// Applies actions one by one to a set of objects.
pub fn replay(objects: &mut BTreeMap<ObjectId, SessionObject>, actions: &[UiAction]) -> Result<(), SummaryError> {
    for (index, action) in actions.iter().enumerate() {
        let unknown = |id: &ObjectId| SummaryError::UnknownObject { index, object_id: id.to_string() };
        match action {
            UiAction::Add { object_id, image, bbox, class_id } => {
                if objects.contains_key(object_id) {
                    return Err(SummaryError::DuplicateObject { index, object_id: object_id.to_string() });
                }
                let object = SessionObject { image: *image, bbox: *bbox, class_id: *class_id };
                objects.insert(object_id.clone(), object);
            }
            UiAction::Move { object_id, bbox } => {
                objects.get_mut(object_id).ok_or_else(|| unknown(object_id))?.bbox = *bbox
            }
            UiAction::Remove { object_id } => {
                objects.remove(object_id).ok_or_else(|| unknown(object_id))?;
            }
            UiAction::Label { object_id, class_id } => {
                objects.get_mut(object_id).ok_or_else(|| unknown(object_id))?.class_id = Some(*class_id);
            }
        }
    }
    Ok(())
}

/// Summarizes a session's actions against the objects the task had when the session began.
pub fn summarize(initial: &BTreeMap<ObjectId, SessionObject>, actions: &[UiAction]) -> Result<Summary, SummaryError> {
    let mut current = initial.clone();
    replay(&mut current, actions)?;
    let mut summary = Summary::default();
    for (id, before) in initial {
        match current.get(id) {
            None => summary.removed.push(id.clone()),
            Some(after)
                if after.image != before.image
                    || after.bbox != before.bbox
                    || (after.class_id.is_none() && before.class_id.is_some()) =>
            {
                summary.removed.push(id.clone());
                summary.added.push(annotated(id, after));
            }
            Some(after) if after.class_id != before.class_id => summary.labeled.push(ObjectLabel {
                object_id: id.clone(),
                class_id: after.class_id.expect("a class only changes to a value"),
            }),
            Some(_) => {}
        }
    }
    for (id, after) in &current {
        if !initial.contains_key(id) {
            summary.added.push(annotated(id, after));
        }
    }
    Ok(summary)
}

fn annotated(id: &ObjectId, o: &SessionObject) -> AnnotatedObject {
    AnnotatedObject { object_id: id.clone(), image: o.image, bbox: o.bbox, class_id: o.class_id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn bbox(v: u8) -> BoundingBox {
        BoundingBox { x: f32::from(v), y: f32::from(v), w: 10.0, h: 10.0 }
    }

    #[derive(Clone, Debug)]
    enum Raw {
        Add(u8, u8, Option<u32>),
        Move(u8, u8),
        Remove(u8),
        Label(u8, u32),
    }

    fn raw() -> impl Strategy<Value = Raw> {
        prop_oneof![
            (0u8..12, 0u8..4, proptest::option::of(0u32..5)).prop_map(|(i, b, c)| Raw::Add(i, b, c)),
            (0u8..12, 0u8..4).prop_map(|(i, b)| Raw::Move(i, b)),
            (0u8..12).prop_map(Raw::Remove),
            (0u8..12, 0u32..5).prop_map(|(i, c)| Raw::Label(i, c)),
        ]
    }

    fn id(i: u8) -> ObjectId {
        ObjectId(format!("o{i}"))
    }

    /// Keeps the raw actions that are valid where they stand, as a real UI would produce.
    fn valid_session(initial: &BTreeMap<ObjectId, SessionObject>, raws: &[Raw]) -> Vec<UiAction> {
        let mut state = initial.clone();
        let mut actions = Vec::new();
        for r in raws {
            let action = match *r {
                Raw::Add(i, b, c) => UiAction::Add { object_id: id(i), image: 0, bbox: bbox(b), class_id: c },
                Raw::Move(i, b) => UiAction::Move { object_id: id(i), bbox: bbox(b) },
                Raw::Remove(i) => UiAction::Remove { object_id: id(i) },
                Raw::Label(i, c) => UiAction::Label { object_id: id(i), class_id: c },
            };
            if replay(&mut state, std::slice::from_ref(&action)).is_ok() {
                actions.push(action);
            }
        }
        actions
    }

    fn initial_objects() -> impl Strategy<Value = BTreeMap<ObjectId, SessionObject>> {
        proptest::collection::btree_map(0u8..6, (0u8..4, proptest::option::of(0u32..5)), 0..6).prop_map(|m| {
            m.into_iter().map(|(i, (b, c))| (id(i), SessionObject { image: 0, bbox: bbox(b), class_id: c })).collect()
        })
    }

    proptest! {
        #[test]
        fn summary_has_the_same_effect_as_the_actions(initial in initial_objects(), raws in proptest::collection::vec(raw(), 0..60)) {
            let actions = valid_session(&initial, &raws);
            let summary = summarize(&initial, &actions).unwrap();
            let mut expected = initial.clone();
            replay(&mut expected, &actions).unwrap();
            let mut got = initial.clone();
            summary.apply(&mut got);
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn summary_is_at_most_one_entry_per_object_and_kind(initial in initial_objects(), raws in proptest::collection::vec(raw(), 0..60)) {
            let actions = valid_session(&initial, &raws);
            let summary = summarize(&initial, &actions).unwrap();
            let removed: BTreeSet<_> = summary.removed.iter().collect();
            let added: BTreeSet<_> = summary.added.iter().map(|o| &o.object_id).collect();
            let labeled: BTreeSet<_> = summary.labeled.iter().map(|l| &l.object_id).collect();
            prop_assert_eq!(removed.len(), summary.removed.len());
            prop_assert_eq!(added.len(), summary.added.len());
            prop_assert_eq!(labeled.len(), summary.labeled.len());
            // removals only of objects that existed; a new object is never both added and removed
            prop_assert!(summary.removed.iter().all(|id| initial.contains_key(id)));
            // labels only of kept objects, never of added ones (their class travels with them)
            prop_assert!(labeled.is_disjoint(&added));
            prop_assert!(summary.into_commands(&SessionId::from("s")).len() <= 3);
        }

        #[test]
        fn summary_of_a_session_and_its_undo_is_empty(initial in initial_objects(), b in 0u8..4) {
            // draw a box and delete it again, move an existing box and move it back
            let mut actions = vec![
                UiAction::Add { object_id: id(99), image: 0, bbox: bbox(b), class_id: Some(1) },
                UiAction::Label { object_id: id(99), class_id: 2 },
                UiAction::Remove { object_id: id(99) },
            ];
            if let Some((first, o)) = initial.iter().next() {
                actions.push(UiAction::Move { object_id: first.clone(), bbox: bbox(b.wrapping_add(1)) });
                actions.push(UiAction::Move { object_id: first.clone(), bbox: o.bbox });
            }
            prop_assert!(summarize(&initial, &actions).unwrap().is_empty());
        }
    }

    #[test]
    fn refuses_actions_on_unknown_objects() {
        let err = summarize(&BTreeMap::new(), &[UiAction::Remove { object_id: id(1) }]).unwrap_err();
        assert_eq!(err, SummaryError::UnknownObject { index: 0, object_id: "o1".into() });
    }

    #[test]
    fn joins_many_adds_into_one_command() {
        let actions: Vec<_> = (0..100)
            .map(|i| UiAction::Add { object_id: ObjectId(format!("n{i}")), image: 0, bbox: bbox(1), class_id: Some(1) })
            .collect();
        let commands = summarize(&BTreeMap::new(), &actions).unwrap().into_commands(&SessionId::from("s"));
        assert_eq!(commands.len(), 1);
        let TaskCommand::AddObjects(add) = &commands[0] else { panic!("expected AddObjects") };
        assert_eq!(add.objects.len(), 100);
    }
}
