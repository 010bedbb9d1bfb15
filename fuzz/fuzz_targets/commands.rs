//! Any JSON body as a task command (what the gateway and the tenant topics hand the domain
//! after parsing), decided by the domain for a customer, an operator and a service against a
//! new task and one already created: a rejection or events, never a panic; accepted events fold
//! and survive the Avro encoding the journal stores them in (so no accepted command can make an
//! event the journal cannot write, which would stall the partition).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{
    Actor, ClassGroup, CreateTask, DecideContext, ImageRef, Limits, ProductClass, Recipe, TaskCommand, TaskState,
    TaskType, decide, evolve,
};

fn codec() -> &'static Codec {
    static CODEC: OnceLock<Codec> = OnceLock::new();
    CODEC.get_or_init(|| Codec::new(Arc::new(EmbeddedRegistry::in_memory())).expect("the catalog registers"))
}

/// A task created by a valid request of tenant `acme`.
fn created(limits: &Limits) -> TaskState {
    let create = TaskCommand::CreateTask(CreateTask {
        customer: "acme".into(),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: "drinks".into(), classes: vec![ProductClass { id: 1, name: "cola".into() }] },
        images: vec![ImageRef { uri: "store://images/acme/t/0.png".into(), width: 64, height: 48 }],
        callback_url: None,
        personal: None,
    });
    let ctx = DecideContext { actor: &Actor::Customer("acme".into()), tenant: "acme", limits };
    decide(&None, &create, &ctx).expect("accepted").iter().fold(None, evolve)
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = serde_json::from_slice::<TaskCommand>(data) else { return };
    let limits = Limits::default();
    let states = [None, created(&limits)];
    let actors =
        [Actor::Customer("acme".into()), Actor::Operator("op-1".into()), Actor::Service("inference".into())];
    for state in &states {
        for actor in &actors {
            let ctx = DecideContext { actor, tenant: "acme", limits: &limits };
            let Ok(events) = decide(state, &command, &ctx) else { continue };
            let mut s = state.clone();
            for e in &events {
                let bytes = codec().encode_event(e).expect("an accepted event encodes");
                let back = codec().decode_event(&bytes).expect("and decodes");
                assert_eq!(&back, e, "the journal keeps what was decided");
                s = evolve(s, e);
            }
        }
    }
});
