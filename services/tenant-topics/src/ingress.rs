//! A tenant's commands, from its own topic into `commands`, as the tenant's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use visionlog_codec::Codec;
use visionlog_codec::envelope::names;
use visionlog_journal::{Topics, dead_letter};
use visionlog_log::{EventLog, LogError, LogRecord, Position, Record, partition_for};

/// The consumer group whose positions say how far each tenant's commands were forwarded.
pub const INGRESS_GROUP: &str = "tenant-ingress";

/// Records forwarded per read of a tenant's partition.
const BATCH: usize = 512;

/// Forwards the tenants' command topics into `commands`.
pub struct Ingress {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    topics: Topics,
    tenants: Vec<String>,
}

/// A command as the tenant `tenant` sent it, for `commands`: its `vl.tenant` and `vl.actor`
/// headers (if any) replaced by the tenant's. Errs with a dead letter's code and message for a
/// record that cannot be a command (no key: the key is the task id and places it).
pub fn stamp(tenant: &str, record: &LogRecord) -> Result<Record, (&'static str, String)> {
    let Some(key) = record.key.clone().filter(|k| !k.is_empty()) else {
        return Err(("no_key", "a command's key is its task id; this record has none".into()));
    };
    let mut headers: visionlog_log::Headers =
        record.headers.iter().filter(|(n, _)| n != names::ACTOR && n != names::TENANT).cloned().collect();
    headers.push((names::ACTOR.into(), format!("customer:{tenant}").into_bytes()));
    headers.push((names::TENANT.into(), tenant.as_bytes().to_vec()));
    Ok(Record { key: Some(key), headers, value: record.value.clone() })
}

impl Ingress {
    /// Forwards the topics of `tenants` (ids of the tenants file).
    pub fn new(log: Arc<dyn EventLog>, codec: Arc<Codec>, topics: Topics, tenants: Vec<String>) -> Self {
        Self { log, codec, topics, tenants }
    }

    /// Forwards partition `partition` of every tenant's command topic until `stop`.
    pub fn serve_partition(&self, partition: u32, stop: &AtomicBool) -> Result<(), LogError> {
        let mut positions = Vec::with_capacity(self.tenants.len());
        for tenant in &self.tenants {
            let topic = self.topics.tenant_commands(tenant);
            positions.push(self.log.committed(INGRESS_GROUP, &topic, partition)?.map_or(0, |p| p.offset));
        }
        while !stop.load(Ordering::Relaxed) {
            let mut read = 0;
            for (tenant, position) in self.tenants.iter().zip(positions.iter_mut()) {
                read += self.forward_once(tenant, partition, position)?;
            }
            if read == 0 && self.tenants.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Forwards one batch of `tenant`'s partition from `position` (moved past it, and
    /// committed, once forwarded); returns how many records were read.
    pub fn forward_once(&self, tenant: &str, partition: u32, position: &mut u64) -> Result<usize, LogError> {
        let topic = self.topics.tenant_commands(tenant);
        let records = self.log.read(&topic, partition, *position, BATCH)?;
        let Some(last) = records.last() else {
            self.log.wait_for(&topic, partition, *position, Duration::from_millis(20))?;
            return Ok(0);
        };
        let next = last.offset + 1;
        let max = self.log.max_record_bytes(&self.topics.commands)?.unwrap_or(usize::MAX);
        let mut batches: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
        for r in &records {
            let stamped = stamp(tenant, r).and_then(|c| {
                let size = c.wire_bytes() + visionlog_log::BATCH_OVERHEAD;
                if size > max {
                    return Err(("oversized", format!("{size} bytes; `commands` takes at most {max} per record")));
                }
                Ok(c)
            });
            match stamped {
                Ok(command) => {
                    let key = command.key.as_deref().expect("stamped commands have keys");
                    batches.entry(partition_for(key, self.topics.partitions)).or_default().push(command);
                }
                Err((code, message)) => {
                    let (log, codec, topics) = (self.log.as_ref(), &self.codec, &self.topics);
                    dead_letter(log, codec, topics, &topic, partition, r, code, &message, INGRESS_GROUP)?;
                }
            }
        }
        let batches: Vec<(u32, Vec<Record>)> = batches.into_iter().collect();
        self.log.append_all(&self.topics.commands, &batches)?;
        self.log.commit(INGRESS_GROUP, &topic, partition, &Position::at(next))?;
        *position = next;
        Ok(records.len())
    }
}
