//! Group membership over Kafka: a subscribed consumer whose rebalance callbacks drive the
//! [`Rebalance`] handler. It never fetches: assigned partitions are paused at once, since the
//! owners read through the log's own readers.
//!
//! The membership group is `<group>.members`, not `<group>`: the owners commit their positions
//! to `<group>` from other consumers, and a broker refuses such commits into a group that has
//! live members.

use super::{KafkaOptions, kafka_err};
use crate::{GroupMember, LogError, Rebalance};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance as KafkaRebalance};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct MemberContext {
    topic: String,
    handler: Arc<dyn Rebalance>,
    owned: Mutex<BTreeSet<u32>>,
}

impl MemberContext {
    fn partitions(&self, tpl: &rdkafka::TopicPartitionList) -> Vec<u32> {
        tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition() as u32).collect()
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &KafkaRebalance<'_>) {
        if let KafkaRebalance::Revoke(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            tracing::info!(topic = self.topic, ?partitions, "partitions revoked");
            self.handler.revoked(&partitions);
            let mut owned = self.owned.lock().expect("owned lock");
            partitions.iter().for_each(|p| _ = owned.remove(p));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &KafkaRebalance<'_>) {
        match rebalance {
            KafkaRebalance::Assign(tpl) => {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "pausing the membership consumer failed; it will fetch and drop");
                }
                let partitions = self.partitions(tpl);
                tracing::info!(topic = self.topic, ?partitions, "partitions assigned");
                self.owned.lock().expect("owned lock").extend(&partitions);
                self.handler.assigned(&partitions);
            }
            KafkaRebalance::Revoke(_) => {}
            KafkaRebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

struct KafkaMember {
    consumer: BaseConsumer<MemberContext>,
}

impl GroupMember for KafkaMember {
    fn poll(&mut self, timeout: Duration) -> Result<(), LogError> {
        match self.consumer.poll(timeout) {
            // paused partitions fetch nothing; a message from before the pause is not ours to read
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "group membership poll");
                Ok(())
            }
        }
    }

    fn assignment(&self) -> Vec<u32> {
        self.consumer.context().owned.lock().expect("owned lock").iter().copied().collect()
    }
}

pub(super) fn join(
    bootstrap: &str,
    group: &str,
    topic: &str,
    options: &KafkaOptions,
    handler: Arc<dyn Rebalance>,
) -> Result<Box<dyn GroupMember>, LogError> {
    let context = MemberContext { topic: topic.to_owned(), handler, owned: Mutex::new(BTreeSet::new()) };
    let session_ms = options.session_timeout.as_millis().to_string();
    let heartbeat_ms = (options.session_timeout.as_millis() / 4).max(100).to_string();
    let consumer: BaseConsumer<MemberContext> = super::options::client_config(bootstrap, options)
        .set("group.id", format!("{group}.members"))
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", session_ms)
        .set("heartbeat.interval.ms", heartbeat_ms)
        .create_with_context(context)
        .map_err(|e| kafka_err("creating a group member", e))?;
    consumer.subscribe(&[topic]).map_err(|e| kafka_err(topic, e))?;
    Ok(Box::new(KafkaMember { consumer }))
}
