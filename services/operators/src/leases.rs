//! Operator leases: a task assigned to an operator stays theirs while they send heartbeats;
//! when the lease runs out (the browser closed, the laptop slept) the task is released back to
//! the queue with `ReleaseOperator`.
//!
//! A lease is liveness, not history: it lives in the read store (`operator_leases`, one row per
//! session whose version is its expiry, so a later heartbeat always wins), while the release it
//! leads to is an event like any other. The release expects the version the queue row shows and
//! its command id derives from the task, session and version, so any number of replicas may
//! reap at once: one release is decided, the others are duplicates, and a session
//! the operator sealed in the meantime refuses it.

use crate::rules;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{ReleaseOperator, SessionId, TaskCommand};
use visionlog_http::Api;
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_store::{Put, ReadStore, Row, StoreError};
use visionlog_views::views::QueueRow;

/// The table of lease expiries.
pub const LEASES: &str = "operator_leases";

/// When the lease of an assigned queue row ends (ms): the later of the session's start plus
/// one lease and the last heartbeat's expiry; `None` for a row nobody holds.
pub fn expires_at(store: &dyn ReadStore, row: &QueueRow, lease: Duration) -> Result<Option<i64>, StoreError> {
    let (Some(session), Some(started)) = (&row.session_id, row.session_started_ms) else { return Ok(None) };
    let beat = store.get(LEASES, &row.task_id, session)?.map(|r| r.version as i64);
    Ok(Some(rules::lease_expiry(started, lease.as_millis() as i64, beat)))
}

/// Extends a session's lease to `until_ms`.
pub fn extend(
    store: &dyn ReadStore,
    task_id: &str,
    session_id: &str,
    operator: &str,
    until_ms: i64,
) -> Result<(), StoreError> {
    let row = Row {
        partition: task_id.to_owned(),
        clustering: session_id.to_owned(),
        version: until_ms.max(0) as u64,
        value: operator.as_bytes().to_vec(),
    };
    store.put(&[Put { table: LEASES.into(), row }])?;
    Ok(())
}

/// The loop that releases expired leases.
pub struct Reaper {
    gw: Arc<Api>,
}

impl Reaper {
    /// A reaper for the tenants of `api`.
    pub fn new(gw: Arc<Api>) -> Self {
        Self { gw }
    }

    /// Checks the queue every quarter lease (at most every 5 s) until the process stops.
    pub async fn run(self) {
        let every = (self.gw.config.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
        while !self.gw.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(every).await;
            let gw = self.gw.clone();
            match tokio::task::spawn_blocking(move || reap(&gw)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(released = n, "operator leases expired"),
                Ok(Err(e)) => tracing::warn!(error = %e, "lease reaper: the queue is unreadable"),
                Err(e) => tracing::warn!(error = %e, "lease reaper failed"),
            }
        }
    }
}

/// Sends `ReleaseOperator` for every assigned task whose lease ran out; returns how many. It
/// reads the held tasks only (as many as operators at work), never the waiting queue.
pub fn reap(gw: &Api) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let rows = visionlog_views::queries::held(gw.store.as_ref(), &gw.tenants.tenant_ids())?;
    let now = now_ms();
    let mut commands = Vec::new();
    for row in rows {
        let Some(expires) = expires_at(gw.store.as_ref(), &row, gw.config.lease)? else { continue };
        let Some(session) = row.session_id.clone().filter(|_| expires < now) else { continue };
        let command = TaskCommand::ReleaseOperator(ReleaseOperator {
            session_id: SessionId(session.clone()),
            reason: "lease expired".into(),
        });
        let envelope = CommandEnvelope {
            command_id: deterministic_id(&[&row.task_id, &session, &row.version.to_string(), "lease"]),
            task_id: row.task_id.clone(),
            command_type: command.type_name().into(),
            expected_version: Some(row.version),
            actor: "service:operator-manager".into(),
            tenant: row.customer.clone(),
            correlation_id: uuid::Uuid::now_v7().to_string(),
            causation_id: None,
            issued_at_ms: now,
        };
        commands.push((envelope, command));
    }
    Ok(gw.bus.send_batch(&commands)?)
}
