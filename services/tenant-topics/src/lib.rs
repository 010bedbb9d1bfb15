//! Tenants on Kafka: the topic is the tenant, never a header.
//!
//! Each tenant of the tenants file has two topics, partitioned as `commands` and `events`
//! ([`visionlog_journal::Topics::tenant_commands`], [`visionlog_journal::Topics::tenant_events`]):
//!
//! - **Ingress** ([`Ingress`]): what a tenant produces to `tenant.<id>.commands` is forwarded to
//!   `commands` with `vl.tenant = <id>` and `vl.actor = customer:<id>`, whatever headers it came
//!   with. The aggregator's rules do the rest: a customer may send only creation, cancellation
//!   and reprocessing of its own tasks (`not_permitted`, `tenant_mismatch`). Service commands
//!   arrive only on `commands`, which no customer principal may write (ACLs: docs/operations.md).
//!   Forwarding is at least once; the aggregator decides a command id once per task.
//! - **Publisher** ([`Publisher`]): the journal, read by its own rules (claims, epochs, whole
//!   decisions), becomes each tenant's `tenant.<id>.events`: every event of its tasks once, in
//!   version order (a task's events on the partition of its id), and the rejections of its
//!   commands, with no journal records. A flush is one [`visionlog_log::EventLog::append_as`]
//!   per journal partition: on Kafka a transaction under a `transactional.id` of that partition,
//!   so a reader with `isolation.level=read_committed` sees whole flushes and a publisher that
//!   lost its partition is fenced. Each record names the journal offset it comes from
//!   ([`JOURNAL_OFFSET`]); after a restart the publisher reads the tails of its tenants' topics
//!   and passes over what they hold, so a flush made before a crash, whose position was not yet
//!   committed, is not published twice.

mod ingress;
mod publisher;

pub use ingress::{INGRESS_GROUP, Ingress, stamp};
pub use publisher::{JOURNAL_OFFSET, PUBLISHER_GROUP, Publisher, last_published};
