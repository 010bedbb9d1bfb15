//! Quality checks are sampled per customer: the executor asks the policy for the tenant of each
//! automatic result.

use std::sync::Arc;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{ResultSource, TaskEvent, TaskResultGenerated};
use visionlog_journal::{CommandBus, EventHandler, HandledEvent, Topics};
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy};

#[test]
fn each_customer_is_sampled_at_its_own_rate() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() };
    let log: Arc<dyn EventLog> = Arc::new(FileLog::open(dir.path(), options).unwrap());
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let topics = Topics::new("", 1);
    topics.create(log.as_ref()).unwrap();
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());
    // acme: every automatic result checked; beta: none
    let policy: visionlog_executor::QcPolicy = Arc::new(|customer| if customer == "acme" { 1000 } else { 0 });
    let mut executor = visionlog_executor::Executor::new(bus, policy);
    let result = TaskEvent::TaskResultGenerated(TaskResultGenerated {
        revision: 1,
        source: ResultSource::Automatic,
        model: None,
        objects: vec![],
    });
    for (i, tenant) in ["acme", "beta", "acme", "beta", "beta"].iter().enumerate() {
        let envelope = EventEnvelope {
            event_id: format!("e{i}"),
            task_id: format!("t{i}"),
            version: 5,
            event_type: "TaskResultGenerated".into(),
            occurred_at_ms: 1,
            recorded_at_ms: 1,
            correlation_id: format!("c{i}"),
            causation_id: String::new(),
            actor: "service:executor".into(),
            tenant: (*tenant).into(),
        };
        executor
            .handle(HandledEvent { partition: 0, offset: i as u64, envelope: &envelope, event: &result, payload: &[] })
            .unwrap();
    }
    let sent: Vec<String> = log
        .read(&topics.commands, 0, 0, 100)
        .unwrap()
        .iter()
        .map(|r| visionlog_codec::envelope::CommandEnvelope::from_headers(&r.headers).unwrap())
        .map(|e| format!("{}:{}", e.tenant, e.command_type))
        .collect();
    assert_eq!(sent, ["acme:RequestQualityCheck", "acme:RequestQualityCheck"]);
}
