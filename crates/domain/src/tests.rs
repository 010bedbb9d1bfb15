//! Given / when / then tests of the Task aggregate.

use crate::testing::{given, given_no_task};
use crate::*;

fn group() -> ClassGroup {
    ClassGroup {
        key: "acme/ice-cream".into(),
        classes: vec![ProductClass { id: 1, name: "vanilla".into() }, ProductClass { id: 2, name: "cocoa".into() }],
    }
}

fn create() -> CreateTask {
    CreateTask {
        customer: "acme".into(),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: group(),
        images: vec![ImageRef { uri: "s3://shelves/1.jpg".into(), width: 640, height: 480 }],
        callback_url: Some("https://acme.example/hook".into()),
        personal: None,
    }
}

fn created() -> TaskEvent {
    let c = create();
    TaskEvent::TaskCreated(TaskCreated {
        customer: c.customer,
        task_type: c.task_type,
        recipe: c.recipe,
        class_group: c.class_group,
        images: c.images,
        callback_url: c.callback_url,
        personal: None,
    })
}

fn bbox(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
    BoundingBox { x, y, w, h }
}

fn new_project_until_assigned() -> Vec<TaskEvent> {
    vec![
        created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        TaskEvent::ModelNotFound(ModelNotFound { step: "detection".into(), class_group_key: "acme/ice-cream".into() }),
        TaskEvent::AssistanceRequested(AssistanceRequested { reason: AssistanceReason::ModelNotFound }),
        TaskEvent::OperatorAssigned(OperatorAssigned {
            operator: "ann".into(),
            session_id: "s1".into(),
            purpose: SessionPurpose::Annotation,
        }),
    ]
}

fn ann() -> Actor {
    Actor::Operator("ann".into())
}

fn add(objects: Vec<AnnotatedObject>) -> TaskCommand {
    TaskCommand::AddObjects(AddObjects { session_id: "s1".into(), objects })
}

fn object(id: &str, b: BoundingBox, class_id: Option<u32>) -> AnnotatedObject {
    AnnotatedObject { object_id: id.into(), image: 0, bbox: b, class_id }
}

#[test]
fn create_task_raises_task_created() {
    given_no_task().when(TaskCommand::CreateTask(create())).then_events(&[created()]);
}

#[test]
fn a_task_is_created_once() {
    given(&[created()]).when(TaskCommand::CreateTask(create())).then_rejected("task_already_exists");
}

#[test]
fn commands_on_a_missing_task_are_rejected() {
    given_no_task().when(TaskCommand::RequestDetection(RequestDetection {})).then_rejected("task_not_found");
}

#[test]
fn create_task_validates_its_input() {
    let mut c = create();
    c.images[0].uri = "file:///etc/passwd".into();
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("disallowed_uri_scheme");

    let mut c = create();
    c.callback_url = Some("javascript:alert(1)".into());
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("disallowed_uri_scheme");

    let mut c = create();
    c.callback_url = Some("https://user:pw@acme.example/".into());
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("invalid_uri");

    let mut c = create();
    c.images = vec![c.images[0].clone(); 65];
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("too_many");

    let mut c = create();
    c.images[0].width = 0;
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("invalid_image_size");

    let mut c = create();
    c.class_group.key = "k".repeat(513);
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("string_too_long");

    let mut c = create();
    c.class_group.classes.push(ProductClass { id: 1, name: "again".into() });
    given_no_task().when(TaskCommand::CreateTask(c)).then_rejected("duplicate_class");

    let mut c = create();
    c.customer = "acme corp/../".into();
    given_no_task().in_tenant("acme corp/../").when(TaskCommand::CreateTask(c)).then_rejected("invalid_field");
}

#[test]
fn the_new_project_flow_reaches_an_operator_result() {
    // seed 000: TaskCreated -> DetectionRequested -> ModelNotFound -> AssistanceRequested -> operator -> result
    let mut events = vec![created()];
    let step = |events: &mut Vec<TaskEvent>, actor: Actor, command: TaskCommand| {
        let produced = given(events).by(actor).when(command).events();
        events.extend(produced);
    };
    let svc = Actor::Service("executor".into());
    step(&mut events, svc.clone(), TaskCommand::RequestDetection(RequestDetection {}));
    step(&mut events, svc.clone(), TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() }));
    step(
        &mut events,
        svc.clone(),
        TaskCommand::RequestAssistance(RequestAssistance { reason: AssistanceReason::ModelNotFound }),
    );
    step(
        &mut events,
        ann(),
        TaskCommand::AssignOperator(AssignOperator { operator: "ann".into(), session_id: "s1".into() }),
    );
    step(&mut events, ann(), add(vec![object("a", bbox(10.0, 10.0, 50.0, 80.0), None)]));
    step(
        &mut events,
        ann(),
        TaskCommand::LabelObjects(LabelObjects {
            session_id: "s1".into(),
            labels: vec![ObjectLabel { object_id: "a".into(), class_id: 2 }],
        }),
    );
    step(&mut events, ann(), TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: "s1".into() }));
    step(&mut events, svc, TaskCommand::GenerateResult(GenerateResult {}));

    let names: Vec<_> = events.iter().map(TaskEvent::type_name).collect();
    assert_eq!(
        names,
        [
            "TaskCreated",
            "DetectionRequested",
            "ModelNotFound",
            "AssistanceRequested",
            "OperatorAssigned",
            "ObjectsAdded",
            "ObjectsLabeled",
            "OperatorFinished",
            "TaskResultGenerated"
        ]
    );
    let TaskEvent::TaskResultGenerated(result) = events.last().unwrap() else { unreachable!() };
    assert_eq!(result.source, ResultSource::Operator);
    assert_eq!(result.revision, 1);
    assert_eq!(result.objects.len(), 1);
    assert_eq!(result.objects[0].class_id, Some(2));
    assert_eq!(result.objects[0].source, ObjectSource::Operator);
}

#[test]
fn detections_are_validated() {
    let pending = [created(), TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 })];
    let model = ModelRef { model_id: "det".into(), version: 3 };
    let record = |bbox: BoundingBox, class_id: Option<u32>, score: f32| {
        TaskCommand::RecordDetections(RecordDetections {
            model: model.clone(),
            detections: vec![Detection { image: 0, bbox, class_id, score }],
        })
    };
    given(&pending).when(record(bbox(600.0, 10.0, 100.0, 10.0), Some(1), 0.9)).then_rejected("invalid_box");
    given(&pending).when(record(bbox(f32::NAN, 10.0, 10.0, 10.0), Some(1), 0.9)).then_rejected("invalid_box");
    given(&pending).when(record(bbox(1.0, 1.0, 0.0, 10.0), Some(1), 0.9)).then_rejected("invalid_box");
    given(&pending).when(record(bbox(1.0, 1.0, 10.0, 10.0), Some(7), 0.9)).then_rejected("unknown_class");
    given(&pending).when(record(bbox(1.0, 1.0, 10.0, 10.0), Some(1), 1.5)).then_rejected("invalid_score");
    let bad_image = TaskCommand::RecordDetections(RecordDetections {
        model: model.clone(),
        detections: vec![Detection { image: 3, bbox: bbox(1.0, 1.0, 1.0, 1.0), class_id: None, score: 0.5 }],
    });
    given(&pending).when(bad_image).then_rejected("image_out_of_range");

    let events = given(&pending).when(record(bbox(1.0, 1.0, 10.0, 10.0), Some(1), 0.9)).events();
    let TaskEvent::ObjectsDetected(d) = &events[0] else { panic!() };
    assert_eq!(d.objects[0].object_id.as_str(), "d1.0");
    assert_eq!(d.model, model);
    // only while detection is pending
    given(&[created()]).when(record(bbox(1.0, 1.0, 10.0, 10.0), Some(1), 0.9)).then_rejected("invalid_stage");
}

#[test]
fn a_fat_detection_is_accepted_up_to_the_limit() {
    let pending = [created(), TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 })];
    let detections: Vec<_> = (0..5000)
        .map(|i| Detection {
            image: 0,
            bbox: bbox((i % 60) as f32 * 10.0, (i / 60 % 40) as f32 * 10.0, 9.0, 9.0),
            class_id: Some(1),
            score: 0.5,
        })
        .collect();
    let model = ModelRef { model_id: "det".into(), version: 1 };
    let events = given(&pending)
        .when(TaskCommand::RecordDetections(RecordDetections { model: model.clone(), detections: detections.clone() }))
        .events();
    let TaskEvent::ObjectsDetected(d) = &events[0] else { panic!() };
    assert_eq!(d.objects.len(), 5000);
    let too_many = detections.iter().cycle().take(10_001).cloned().collect();
    given(&pending)
        .when(TaskCommand::RecordDetections(RecordDetections { model, detections: too_many }))
        .then_rejected("too_many");
}

#[test]
fn only_the_assigned_operator_may_annotate() {
    let events = new_project_until_assigned();
    let cmd = add(vec![object("a", bbox(1.0, 1.0, 5.0, 5.0), Some(1))]);
    given(&events).by(Actor::Operator("bob".into())).when(cmd.clone()).then_rejected("not_assigned");
    given(&events).by(Actor::Customer("acme".into())).when(cmd.clone()).then_rejected("not_permitted");
    given(&events).by(Actor::Service("executor".into())).when(cmd.clone()).then_rejected("not_assigned");
    let wrong_session = TaskCommand::AddObjects(AddObjects {
        session_id: "s0".into(),
        objects: vec![object("a", bbox(1.0, 1.0, 5.0, 5.0), Some(1))],
    });
    given(&events).by(ann()).when(wrong_session).then_rejected("session_mismatch");
    given(&events).by(ann()).when(cmd).events();
}

#[test]
fn a_task_is_never_given_to_two_operators() {
    let events = new_project_until_assigned();
    given(&events)
        .by(Actor::Operator("bob".into()))
        .when(TaskCommand::AssignOperator(AssignOperator { operator: "bob".into(), session_id: "s2".into() }))
        .then_rejected("already_assigned");
    // an operator cannot assign a task to someone else
    given(&events[..4])
        .by(Actor::Operator("bob".into()))
        .when(TaskCommand::AssignOperator(AssignOperator { operator: "ann".into(), session_id: "s2".into() }))
        .then_rejected("not_assigned");
}

#[test]
fn operator_changes_are_validated() {
    let mut events = new_project_until_assigned();
    events.push(TaskEvent::ObjectsAdded(ObjectsAdded {
        operator: "ann".into(),
        session_id: "s1".into(),
        objects: vec![object("a", bbox(1.0, 1.0, 5.0, 5.0), Some(1))],
    }));
    given(&events)
        .by(ann())
        .when(add(vec![object("a", bbox(1.0, 1.0, 5.0, 5.0), None)]))
        .then_rejected("duplicate_object");
    given(&events)
        .by(ann())
        .when(add(vec![object("b", bbox(1.0, 1.0, 5.0, 5.0), Some(9))]))
        .then_rejected("unknown_class");
    given(&events)
        .by(ann())
        .when(add(vec![object("b", bbox(630.0, 1.0, 50.0, 5.0), None)]))
        .then_rejected("invalid_box");
    given(&events).by(ann()).when(add(vec![])).then_rejected("empty_command");
    given(&events)
        .by(ann())
        .when(TaskCommand::RemoveObjects(RemoveObjects { session_id: "s1".into(), object_ids: vec!["zz".into()] }))
        .then_rejected("unknown_object");
    given(&events)
        .by(ann())
        .when(TaskCommand::LabelObjects(LabelObjects {
            session_id: "s1".into(),
            labels: vec![ObjectLabel { object_id: "a".into(), class_id: 5 }],
        }))
        .then_rejected("unknown_class");
    given(&events)
        .by(ann())
        .when(TaskCommand::RemoveObjects(RemoveObjects { session_id: "s1".into(), object_ids: vec!["a".into()] }))
        .events();
}

#[test]
fn release_returns_the_task_to_the_queue() {
    let events = new_project_until_assigned();
    let release =
        TaskCommand::ReleaseOperator(ReleaseOperator { session_id: "s1".into(), reason: "lease expired".into() });
    given(&events).by(Actor::Operator("bob".into())).when(release.clone()).then_rejected("not_assigned");
    let mut all = events.clone();
    all.extend(given(&events).by(Actor::Service("operators".into())).when(release).events());
    let state = all.iter().fold(None, evolve).unwrap();
    assert_eq!(state.stage, Stage::AwaitingOperator(SessionPurpose::Annotation));
    given(&all)
        .by(Actor::Operator("bob".into()))
        .when(TaskCommand::AssignOperator(AssignOperator { operator: "bob".into(), session_id: "s2".into() }))
        .events();
}

#[test]
fn automatic_results_can_be_quality_checked() {
    let model = ModelRef { model_id: "det".into(), version: 1 };
    let events = vec![
        created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        TaskEvent::ObjectsDetected(ObjectsDetected {
            attempt: 1,
            model: model.clone(),
            objects: vec![DetectedObject {
                object_id: "d1.0".into(),
                image: 0,
                bbox: bbox(1.0, 1.0, 5.0, 5.0),
                class_id: Some(1),
                score: 0.8,
            }],
        }),
    ];
    let result = given(&events).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    let TaskEvent::TaskResultGenerated(r) = &result[0] else { panic!() };
    assert_eq!((r.source, r.model.as_ref()), (ResultSource::Automatic, Some(&model)));
    let mut all = events.clone();
    all.extend(result);
    let qc = given(&all).when(TaskCommand::RequestQualityCheck(RequestQualityCheck {})).events();
    assert_eq!(qc, [TaskEvent::QualityCheckRequested(QualityCheckRequested { revision: 1 })]);
    all.extend(qc);
    given(&all).when(TaskCommand::RequestQualityCheck(RequestQualityCheck {})).then_rejected("invalid_stage");
    // an operator checks it and removes a false positive
    let bob = Actor::Operator("bob".into());
    all.extend(
        given(&all)
            .by(bob.clone())
            .when(TaskCommand::AssignOperator(AssignOperator { operator: "bob".into(), session_id: "q1".into() }))
            .events(),
    );
    all.extend(
        given(&all)
            .by(bob.clone())
            .when(TaskCommand::RemoveObjects(RemoveObjects {
                session_id: "q1".into(),
                object_ids: vec!["d1.0".into()],
            }))
            .events(),
    );
    let finished = given(&all)
        .by(bob)
        .when(TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: "q1".into() }))
        .events();
    assert!(matches!(&finished[0], TaskEvent::OperatorFinished(f) if f.purpose == SessionPurpose::QualityCheck));
    // the correction is a new result revision, the operator's
    let [_, TaskEvent::TaskResultGenerated(corrected)] = &finished[..] else { panic!("{finished:?}") };
    assert_eq!((corrected.revision, corrected.source), (2, ResultSource::Operator));
    assert!(corrected.objects.is_empty(), "without the false positive");
    all.extend(finished);
    let state = all.iter().fold(None, evolve).unwrap();
    assert_eq!((state.stage.clone(), state.result_revision), (Stage::ResultGenerated, 2));
    assert!(state.objects.is_empty());
}

#[test]
fn a_quality_check_that_changes_nothing_makes_no_new_result() {
    let mut events = vec![
        created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        TaskEvent::ObjectsDetected(ObjectsDetected {
            attempt: 1,
            model: ModelRef { model_id: "det".into(), version: 1 },
            objects: vec![],
        }),
    ];
    for command in [
        TaskCommand::GenerateResult(GenerateResult {}),
        TaskCommand::RequestQualityCheck(RequestQualityCheck {}),
        TaskCommand::AssignOperator(AssignOperator { operator: "ann".into(), session_id: "q1".into() }),
    ] {
        events.extend(given(&events).by(ann()).when(command).events());
    }
    let finished = given(&events)
        .by(ann())
        .when(TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: "q1".into() }))
        .events();
    assert!(matches!(&finished[..], [TaskEvent::OperatorFinished(_)]), "{finished:?}");
    events.extend(finished);
    let state = events.iter().fold(None, evolve).unwrap();
    assert_eq!((state.stage, state.result_revision), (Stage::ResultGenerated, 1));
}

#[test]
fn reports_are_recorded_once_per_revision() {
    let mut events = new_project_until_assigned();
    events.push(TaskEvent::OperatorFinished(OperatorFinished {
        operator: "ann".into(),
        session_id: "s1".into(),
        purpose: SessionPurpose::Annotation,
    }));
    given(&events)
        .when(TaskCommand::RecordReport(RecordReport {
            attempt: 1,
            status_code: Some(200),
            delivered: true,
            error: None,
            last_attempt: false,
        }))
        .then_rejected("invalid_stage");
    events.extend(given(&events).when(TaskCommand::GenerateResult(GenerateResult {})).events());
    let fail = TaskCommand::RecordReport(RecordReport {
        attempt: 1,
        status_code: Some(503),
        delivered: false,
        error: Some("unavailable".into()),
        last_attempt: false,
    });
    events.extend(given(&events).when(fail).events());
    let ok = TaskCommand::RecordReport(RecordReport {
        attempt: 2,
        status_code: Some(200),
        delivered: true,
        error: None,
        last_attempt: false,
    });
    let reported = given(&events).when(ok.clone()).events();
    assert_eq!(reported, [TaskEvent::TaskReported(TaskReported { revision: 1, attempt: 2, status_code: Some(200) })]);
    events.extend(reported);
    given(&events).when(ok).then_rejected("invalid_stage");
}

#[test]
fn a_given_up_delivery_is_started_over_once_by_a_service() {
    let redeliver = || TaskCommand::RedeliverResult(RedeliverResult { reason: "receiver fixed".into() });
    let report = |attempt, delivered, last_attempt| {
        TaskCommand::RecordReport(RecordReport {
            attempt,
            status_code: Some(if delivered { 200 } else { 503 }),
            delivered,
            error: (!delivered).then(|| "unavailable".into()),
            last_attempt,
        })
    };
    let mut events = new_project_until_assigned();
    events.push(TaskEvent::OperatorFinished(OperatorFinished {
        operator: "ann".into(),
        session_id: "s1".into(),
        purpose: SessionPurpose::Annotation,
    }));
    let refused = given(&events).when(redeliver()).then_rejected("nothing_to_redeliver");
    assert!(refused.to_string().contains("no result"), "{refused}");
    events.extend(given(&events).when(TaskCommand::GenerateResult(GenerateResult {})).events());
    // tries still going on: nothing to start over
    events.extend(given(&events).when(report(1, false, false)).events());
    given(&events).when(redeliver()).then_rejected("nothing_to_redeliver");
    events.extend(given(&events).when(report(2, false, true)).events());
    // given up: no more tries are recorded, until ops ask again
    given(&events).when(report(3, false, false)).then_rejected("invalid_stage");
    given(&events).by(Actor::Customer("acme".into())).when(redeliver()).then_rejected("not_permitted");
    given(&events).by(ann()).when(redeliver()).then_rejected("not_permitted");
    let empty = TaskCommand::RedeliverResult(RedeliverResult { reason: " ".into() });
    given(&events).when(empty).then_rejected("invalid_field");
    let asked = given(&events).when(redeliver()).events();
    assert_eq!(
        asked,
        [TaskEvent::RedeliveryRequested(RedeliveryRequested { revision: 1, reason: "receiver fixed".into() })]
    );
    events.extend(asked);
    // a new round: its tries are recorded from try 1, and it can be given up again
    given(&events).when(redeliver()).then_rejected("nothing_to_redeliver");
    events.extend(given(&events).when(report(1, true, false)).events());
    assert!(matches!(events.last(), Some(TaskEvent::TaskReported(r)) if r.attempt == 1 && r.revision == 1));
    let refused = given(&events).when(redeliver()).then_rejected("nothing_to_redeliver");
    assert!(refused.to_string().contains("was delivered"), "{refused}");
}

#[test]
fn reprocess_with_latest_models_and_resend_to_operator() {
    let mut events = new_project_until_assigned();
    events.push(TaskEvent::OperatorFinished(OperatorFinished {
        operator: "ann".into(),
        session_id: "s1".into(),
        purpose: SessionPurpose::Annotation,
    }));
    events.extend(given(&events).when(TaskCommand::GenerateResult(GenerateResult {})).events());

    let mut latest = events.clone();
    latest
        .extend(given(&latest).when(TaskCommand::Reprocess(Reprocess { mode: ReprocessMode::LatestModels })).events());
    let again = given(&latest).when(TaskCommand::RequestDetection(RequestDetection {})).events();
    assert_eq!(again, [TaskEvent::DetectionRequested(DetectionRequested { attempt: 2 })]);

    let mut resend = events.clone();
    resend.extend(
        given(&resend).when(TaskCommand::Reprocess(Reprocess { mode: ReprocessMode::ResendToOperator })).events(),
    );
    given(&resend).when(TaskCommand::RequestDetection(RequestDetection {})).then_rejected("invalid_stage");
    given(&resend)
        .when(TaskCommand::RequestAssistance(RequestAssistance { reason: AssistanceReason::Resend }))
        .events();
}

#[test]
fn a_cancelled_task_takes_no_more_commands() {
    let mut events = vec![created()];
    events
        .extend(given(&events).when(TaskCommand::CancelTask(CancelTask { reason: "customer asked".into() })).events());
    given(&events).when(TaskCommand::RequestDetection(RequestDetection {})).then_rejected("task_cancelled");
}

#[test]
fn a_faulty_batch_is_undone_by_a_compensating_event_and_a_new_result() {
    // an operator's result (revision 1) under correlation "c1" ...
    let mut events = new_project_until_assigned();
    let svc = Actor::Service("executor".into());
    let step = |events: &mut Vec<TaskEvent>, actor: Actor, command: TaskCommand| {
        let produced = given(events).by(actor).when(command).events();
        events.extend(produced);
    };
    step(&mut events, ann(), add(vec![object("a", bbox(10.0, 10.0, 50.0, 80.0), Some(2))]));
    step(&mut events, ann(), TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: "s1".into() }));
    step(&mut events, svc.clone(), TaskCommand::GenerateResult(GenerateResult {}));
    let first_result = events.len();
    // ... then a re-process batch "c2" with a bad model: revision 2 holds its junk boxes
    step(&mut events, svc.clone(), TaskCommand::Reprocess(Reprocess { mode: ReprocessMode::LatestModels }));
    step(&mut events, svc.clone(), TaskCommand::RequestDetection(RequestDetection {}));
    let junk = Detection { image: 0, bbox: bbox(0.0, 0.0, 5.0, 5.0), class_id: Some(1), score: 0.2 };
    step(
        &mut events,
        svc.clone(),
        TaskCommand::RecordDetections(RecordDetections {
            model: ModelRef { model_id: "bad".into(), version: 2 },
            detections: vec![junk; 3],
        }),
    );
    step(&mut events, svc.clone(), TaskCommand::GenerateResult(GenerateResult {}));
    let correlation = |i: usize| if i < first_result { "c1" } else { "c2" };
    let stamped = || {
        events.iter().enumerate().map(|(i, event)| Stamped {
            version: i as u64 + 1,
            correlation_id: correlation(i),
            event,
        })
    };

    let undo = revert(stamped(), "c2", "model 2 was trained on the wrong shelves").unwrap();
    assert_eq!(undo.reverted_versions, [9, 10, 11, 12]);
    assert_eq!(undo.source, ResultSource::Operator);
    assert_eq!(undo.model, None);
    assert_eq!(undo.objects.len(), 1);
    assert_eq!((undo.objects[0].object_id.as_str(), undo.objects[0].class_id), ("a", Some(2)));

    // only a service may send it, and not while an operator or a model works on the task
    given(&events).by(ann()).when(TaskCommand::RevertBatch(undo.clone())).then_rejected("not_assigned");
    given(&new_project_until_assigned()).when(TaskCommand::RevertBatch(undo.clone())).then_rejected("invalid_stage");
    let mut bad_box = undo.clone();
    bad_box.objects[0].bbox = bbox(600.0, 10.0, 100.0, 10.0);
    given(&events).when(TaskCommand::RevertBatch(bad_box)).then_rejected("invalid_box");

    step(&mut events, svc.clone(), TaskCommand::RevertBatch(undo));
    let TaskEvent::BatchReverted(reverted) = events.last().unwrap() else { panic!("{:?}", events.last()) };
    assert_eq!(reverted.correlation_id, "c2");
    step(&mut events, svc, TaskCommand::GenerateResult(GenerateResult {}));
    let TaskEvent::TaskResultGenerated(result) = events.last().unwrap() else { unreachable!() };
    assert_eq!((result.revision, result.source, result.model.clone()), (3, ResultSource::Operator, None));
    assert_eq!(result.objects.len(), 1);
    assert_eq!(result.objects[0].object_id.as_str(), "a");

    // a second undo finds the batch reverted; the first batch created the task; others are not in it
    let stamped = || {
        events.iter().enumerate().map(|(i, event)| Stamped {
            version: i as u64 + 1,
            correlation_id: if i >= 12 { "undo" } else { correlation(i) },
            event,
        })
    };
    assert_eq!(revert(stamped(), "c2", "again"), Err(NotRevertible::AlreadyReverted));
    assert_eq!(revert(stamped(), "c1", "all of it"), Err(NotRevertible::CreatedByBatch));
    assert_eq!(revert(stamped(), "c9", "none"), Err(NotRevertible::NotInBatch));
}

#[test]
fn a_batch_that_made_the_first_result_has_nothing_to_restore() {
    let events = [
        created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        TaskEvent::ObjectsDetected(ObjectsDetected {
            attempt: 1,
            model: ModelRef { model_id: "m".into(), version: 1 },
            objects: vec![],
        }),
    ];
    let stamped = events.iter().enumerate().map(|(i, event)| Stamped {
        version: i as u64 + 1,
        correlation_id: if i == 0 { "create" } else { "run" },
        event,
    });
    assert_eq!(revert(stamped, "run", "no"), Err(NotRevertible::NoEarlierResult));
}

#[test]
fn a_task_takes_commands_of_its_own_tenant_only() {
    let acme = Actor::Customer("acme".into());
    // a tenant creates tasks for itself only, by any name
    given_no_task()
        .by(acme.clone())
        .in_tenant("globex")
        .when(TaskCommand::CreateTask(create()))
        .then_rejected("tenant_mismatch");
    given_no_task()
        .by(Actor::Customer("globex".into()))
        .when(TaskCommand::CreateTask(create()))
        .then_rejected("tenant_mismatch");
    given_no_task().by(acme.clone()).when(TaskCommand::CreateTask(create())).events();
    // another tenant's commands are refused whoever sends them, before the stage is looked at
    let events = vec![created()];
    let cancel = TaskCommand::CancelTask(CancelTask { reason: "mine now".into() });
    for actor in [Actor::Customer("globex".into()), Actor::Service("executor".into()), Actor::Operator("anna".into())] {
        given(&events).by(actor).in_tenant("globex").when(cancel.clone()).then_rejected("tenant_mismatch");
    }
    // a customer naming itself otherwise than its tenant is refused
    given(&events).by(Actor::Customer("globex".into())).when(cancel.clone()).then_rejected("tenant_mismatch");
    given(&events).by(acme.clone()).when(cancel).events();
}

#[test]
fn a_customer_sends_only_customer_commands() {
    let acme = Actor::Customer("acme".into());
    let events = vec![created()];
    let service_commands = [
        TaskCommand::RequestDetection(RequestDetection {}),
        TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() }),
        TaskCommand::GenerateResult(GenerateResult {}),
        TaskCommand::RequestQualityCheck(RequestQualityCheck {}),
    ];
    for command in service_commands {
        assert!(!is_customer_command(&command));
        let r = given(&events).by(acme.clone()).when(command).then_rejected("not_permitted");
        assert!(r.to_string().starts_with("customer:acme may not send "), "{r}");
    }
    given(&events).by(acme).when(TaskCommand::RequestDetection(RequestDetection {})).then_rejected("not_permitted");
    given(&events)
        .by(Actor::Service("executor".into()))
        .when(TaskCommand::RequestDetection(RequestDetection {}))
        .events();
}

#[test]
fn a_task_names_only_its_customers_photos_in_the_store() {
    let with = |uri: &str| {
        let mut c = create();
        c.images[0].uri = uri.into();
        TaskCommand::CreateTask(c)
    };
    for uri in ["store://images/acme/5b1f.png", "s3://shelves/1.jpg", "https://acme.example/1.jpg"] {
        given_no_task().when(with(uri)).events();
    }
    // another tenant's photos, and whatever else the store keeps, are refused
    for uri in [
        "store://images/globex/5b1f.png",
        "store://images/acmex/5b1f.png",
        "store://tier/t.events/0/00000000000000000000.seg",
        "store://exports/2026-12-04/tasks/part-0.parquet",
        "store://models/acme/detector/1/weights.pt",
        "store://images/5b1f.png",
    ] {
        let r = given_no_task().when(with(uri)).then_rejected("invalid_uri");
        assert!(r.to_string().contains("store://images/acme/"), "{uri}: {r}");
    }
    assert_eq!(image_folder("acme.eu"), "images/acme%2Eeu/", "one segment, escaped");
}

fn recognition_created() -> TaskEvent {
    let TaskEvent::TaskCreated(mut e) = created() else { unreachable!() };
    e.recipe = Recipe::DetectionAndRecognition;
    TaskEvent::TaskCreated(e)
}

fn detected_two() -> TaskEvent {
    let det = |i: u32, x: f32| DetectedObject {
        object_id: format!("d1.{i}").into(),
        image: 0,
        bbox: bbox(x, 10.0, 40.0, 80.0),
        class_id: Some(1),
        score: 0.9,
    };
    TaskEvent::ObjectsDetected(ObjectsDetected {
        attempt: 1,
        model: ModelRef { model_id: "acme:ice-cream:detector".into(), version: 1 },
        objects: vec![det(0, 10.0), det(1, 100.0)],
    })
}

fn recognizer() -> ModelRef {
    ModelRef { model_id: "acme:ice-cream:recognizer".into(), version: 1 }
}

fn recognized(attempt: u32, classes: &[(&str, u32)]) -> TaskEvent {
    TaskEvent::ObjectsRecognized(ObjectsRecognized {
        attempt,
        model: recognizer(),
        objects: classes
            .iter()
            .map(|(id, c)| Recognition { object_id: (*id).into(), class_id: *c, score: 0.8 })
            .collect(),
    })
}

fn target(id: &str, x: f32) -> RecognitionTarget {
    RecognitionTarget { object_id: id.into(), image: 0, bbox: bbox(x, 10.0, 40.0, 80.0) }
}

#[test]
fn detection_and_recognition_recognizes_every_detected_box_then_makes_the_result() {
    let history =
        vec![recognition_created(), TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }), detected_two()];
    // the result waits for the recipe's second step, on every box of the model run
    let request = TaskEvent::RecognitionRequested(RecognitionRequested {
        attempt: 1,
        objects: vec![target("d1.0", 10.0), target("d1.1", 100.0)],
    });
    given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).then_events(std::slice::from_ref(&request));
    let mut history = [history, vec![request]].concat();
    // a partial, foreign, duplicate or out-of-group answer is refused
    let answer = |r: Vec<(&str, u32, f32)>| {
        TaskCommand::RecordRecognitions(RecordRecognitions {
            model: recognizer(),
            recognitions: r
                .into_iter()
                .map(|(id, c, s)| Recognition { object_id: id.into(), class_id: c, score: s })
                .collect(),
        })
    };
    given(&history).when(answer(vec![("d1.0", 2, 0.8)])).then_rejected("invalid_field");
    given(&history).when(answer(vec![("d1.0", 2, 0.8), ("x", 1, 0.8)])).then_rejected("unknown_object");
    given(&history).when(answer(vec![("d1.0", 2, 0.8), ("d1.0", 1, 0.8)])).then_rejected("duplicate_object");
    given(&history).when(answer(vec![("d1.0", 9, 0.8), ("d1.1", 1, 0.8)])).then_rejected("unknown_class");
    given(&history).when(answer(vec![("d1.0", 2, 1.5), ("d1.1", 1, 0.8)])).then_rejected("invalid_score");
    given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).then_rejected("invalid_stage");
    let recognized_event = recognized(1, &[("d1.0", 2), ("d1.1", 1)]);
    given(&history)
        .when(answer(vec![("d1.0", 2, 0.8), ("d1.1", 1, 0.8)]))
        .then_events(std::slice::from_ref(&recognized_event));
    history.push(recognized_event);
    // the result carries the recognizer's classes, made by the models alone
    let events = given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    let [TaskEvent::TaskResultGenerated(result)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(result.source, ResultSource::Automatic);
    assert_eq!(result.model, Some(recognizer()));
    let classes: Vec<_> = result.objects.iter().map(|o| (o.object_id.as_str(), o.class_id)).collect();
    assert_eq!(classes, [("d1.0", Some(2)), ("d1.1", Some(1))]);
}

#[test]
fn a_detection_only_recipe_never_asks_for_recognition() {
    let history = vec![created(), TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }), detected_two()];
    let events = given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    assert!(matches!(events.as_slice(), [TaskEvent::TaskResultGenerated(_)]), "{events:?}");
}

#[test]
fn an_operators_box_correction_sends_only_the_changed_boxes_back_to_the_recognizer() {
    // ping-pong (seed 000): models, operator, models again, as often as the events say
    let mut history = vec![
        recognition_created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        detected_two(),
        TaskEvent::RecognitionRequested(RecognitionRequested {
            attempt: 1,
            objects: vec![target("d1.0", 10.0), target("d1.1", 100.0)],
        }),
        recognized(1, &[("d1.0", 2), ("d1.1", 1)]),
        TaskEvent::TaskResultGenerated(TaskResultGenerated {
            revision: 1,
            source: ResultSource::Automatic,
            model: Some(recognizer()),
            objects: vec![],
        }),
        TaskEvent::ReprocessRequested(ReprocessRequested { mode: ReprocessMode::ResendToOperator }),
        TaskEvent::AssistanceRequested(AssistanceRequested { reason: AssistanceReason::Resend }),
        TaskEvent::OperatorAssigned(OperatorAssigned {
            operator: "ann".into(),
            session_id: "s1".into(),
            purpose: SessionPurpose::Annotation,
        }),
        // the operator moves one box (the tool removes it and adds it again under its id, with
        // the class it had), redraws another without a class, adds a missed one without a
        // class, and draws one more with the class it knows
        TaskEvent::ObjectsRemoved(ObjectsRemoved {
            operator: "ann".into(),
            session_id: "s1".into(),
            object_ids: vec!["d1.1".into(), "d1.0".into()],
        }),
        TaskEvent::ObjectsAdded(ObjectsAdded {
            operator: "ann".into(),
            session_id: "s1".into(),
            objects: vec![
                object("d1.0", bbox(12.0, 10.0, 40.0, 80.0), Some(2)),
                object("moved", bbox(104.0, 10.0, 40.0, 80.0), None),
                object("missed", bbox(200.0, 10.0, 40.0, 80.0), None),
                object("known", bbox(300.0, 10.0, 40.0, 80.0), Some(1)),
            ],
        }),
        TaskEvent::OperatorFinished(OperatorFinished {
            operator: "ann".into(),
            session_id: "s1".into(),
            purpose: SessionPurpose::Annotation,
        }),
    ];
    let events = given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    let [TaskEvent::RecognitionRequested(request)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(request.attempt, 2);
    let ids: Vec<_> = request.objects.iter().map(|o| o.object_id.as_str()).collect();
    assert_eq!(ids, ["d1.0", "missed", "moved"], "only the changed boxes, not the one the operator classed");
    assert_eq!(request.objects[0].bbox, bbox(12.0, 10.0, 40.0, 80.0), "where the operator moved it");
    history.extend(events);
    history.push(recognized(2, &[("d1.0", 1), ("missed", 2), ("moved", 1)]));
    let events = given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    let [TaskEvent::TaskResultGenerated(result)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!((result.revision, result.source), (2, ResultSource::Operator));
    let classes: Vec<_> = result.objects.iter().map(|o| (o.object_id.as_str(), o.class_id)).collect();
    assert_eq!(classes, [("d1.0", Some(1)), ("known", Some(1)), ("missed", Some(2)), ("moved", Some(1))]);
}

#[test]
fn without_a_recognizer_the_operators_give_the_classes() {
    let history = vec![
        recognition_created(),
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        detected_two(),
        TaskEvent::RecognitionRequested(RecognitionRequested {
            attempt: 1,
            objects: vec![target("d1.0", 10.0), target("d1.1", 100.0)],
        }),
    ];
    let missing = |step: &str| TaskCommand::RecordModelNotFound(RecordModelNotFound { step: step.into() });
    // a detection worker's late answer is not recorded against recognition
    given(&history).when(missing("detection")).then_rejected("invalid_field");
    let events = given(&history).when(missing("recognition")).events();
    assert_eq!(
        events,
        [TaskEvent::ModelNotFound(ModelNotFound {
            step: "recognition".into(),
            class_group_key: "acme/ice-cream".into()
        })]
    );
    let history = [
        history,
        events,
        vec![
            TaskEvent::AssistanceRequested(AssistanceRequested { reason: AssistanceReason::ModelNotFound }),
            TaskEvent::OperatorAssigned(OperatorAssigned {
                operator: "ann".into(),
                session_id: "s1".into(),
                purpose: SessionPurpose::Annotation,
            }),
            TaskEvent::ObjectsLabeled(ObjectsLabeled {
                operator: "ann".into(),
                session_id: "s1".into(),
                labels: vec![ObjectLabel { object_id: "d1.0".into(), class_id: 2 }],
            }),
            TaskEvent::OperatorFinished(OperatorFinished {
                operator: "ann".into(),
                session_id: "s1".into(),
                purpose: SessionPurpose::Annotation,
            }),
        ],
    ]
    .concat();
    // the operator's session ends the owed recognition: the result is made, not asked again
    let events = given(&history).when(TaskCommand::GenerateResult(GenerateResult {})).events();
    assert!(matches!(events.as_slice(), [TaskEvent::TaskResultGenerated(r)] if r.source == ResultSource::Operator));
}

#[test]
fn an_operator_does_not_check_its_own_annotation() {
    let mut history = new_project_until_assigned();
    history.extend([
        TaskEvent::ObjectsAdded(ObjectsAdded {
            operator: "ann".into(),
            session_id: "s1".into(),
            objects: vec![object("a", bbox(1.0, 1.0, 20.0, 20.0), Some(1))],
        }),
        TaskEvent::OperatorFinished(OperatorFinished {
            operator: "ann".into(),
            session_id: "s1".into(),
            purpose: SessionPurpose::Annotation,
        }),
        TaskEvent::TaskResultGenerated(TaskResultGenerated {
            revision: 1,
            source: ResultSource::Operator,
            model: None,
            objects: vec![],
        }),
        TaskEvent::QualityCheckRequested(QualityCheckRequested { revision: 1 }),
    ]);
    let assign =
        |who: &str| TaskCommand::AssignOperator(AssignOperator { operator: who.into(), session_id: "s2".into() });
    given(&history).by(ann()).when(assign("ann")).then_rejected("own_work");
    let events = given(&history).by(Actor::Operator("bob".into())).when(assign("bob")).events();
    assert!(matches!(&events[..], [TaskEvent::OperatorAssigned(a)] if a.purpose == SessionPurpose::QualityCheck));
}
