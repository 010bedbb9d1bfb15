//! Consumer groups: which member of a group owns which partitions of a topic.
//!
//! A member joins with a [`Rebalance`] handler and keeps polling; partitions move between
//! members only through the handler: `revoked` must stop all work on them before it returns
//! (the partition is handed on after), `assigned` starts work. Over Kafka this is the broker's
//! group protocol (eager rebalances); the embedded log has an in-process coordinator with the
//! same contract, so the owners' logic is tested without a broker.
//!
//! Ownership by group is what keeps one writer per partition in the normal case; the epoch
//! fencing of the journal keeps it safe when a member is wrong about what it owns (a process
//! paused past its session timeout).

use crate::LogError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Told by a group member when its partitions change.
pub trait Rebalance: Send + Sync {
    /// These partitions are now this member's: start serving them.
    fn assigned(&self, partitions: &[u32]);
    /// These partitions are taken away: stop every write to them before returning.
    fn revoked(&self, partitions: &[u32]);
}

/// A live membership in a consumer group. Dropping it revokes everything and leaves the group.
pub trait GroupMember: Send {
    /// Keeps the membership alive and runs rebalances (the handler is called from here).
    /// Call it at least every few seconds.
    fn poll(&mut self, timeout: Duration) -> Result<(), LogError>;
    /// The partitions this member owns now.
    fn assignment(&self) -> Vec<u32>;
}

/// The embedded log's group coordinator: members of one process, partitions dealt round-robin
/// by join order. A partition is handed to its new owner only once its old owner revoked it.
#[derive(Default)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<(String, String), GroupState>>,
}

#[derive(Default)]
struct GroupState {
    next_id: u64,
    /// member id -> partitions it holds
    members: BTreeMap<u64, BTreeSet<u32>>,
}

impl Coordinator {
    pub(crate) fn join(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        partitions: u32,
        handler: Arc<dyn Rebalance>,
    ) -> Box<dyn GroupMember> {
        let key = (group.to_owned(), topic.to_owned());
        let mut groups = self.groups.lock().expect("groups lock");
        let state = groups.entry(key.clone()).or_default();
        let id = state.next_id;
        state.next_id += 1;
        state.members.insert(id, BTreeSet::new());
        Box::new(EmbeddedMember { coordinator: self.clone(), key, id, partitions, handler })
    }

    /// What `id` should give up and what it may take now.
    fn plan(&self, key: &(String, String), id: u64, partitions: u32) -> (Vec<u32>, Vec<u32>) {
        let groups = self.groups.lock().expect("groups lock");
        let state = &groups[key];
        let index = state.members.keys().position(|m| *m == id).expect("a member of its group");
        let count = state.members.len() as u32;
        let wanted: BTreeSet<u32> = (0..partitions).filter(|p| p % count == index as u32).collect();
        let held = &state.members[&id];
        let held_by_others: BTreeSet<u32> =
            state.members.iter().filter(|(m, _)| **m != id).flat_map(|(_, h)| h.iter().copied()).collect();
        let give_up = held.difference(&wanted).copied().collect();
        let take = wanted.iter().filter(|p| !held.contains(p) && !held_by_others.contains(p)).copied().collect();
        (give_up, take)
    }

    fn update(&self, key: &(String, String), id: u64, f: impl FnOnce(&mut BTreeSet<u32>)) {
        let mut groups = self.groups.lock().expect("groups lock");
        if let Some(held) = groups.get_mut(key).and_then(|s| s.members.get_mut(&id)) {
            f(held);
        }
    }
}

struct EmbeddedMember {
    coordinator: Arc<Coordinator>,
    key: (String, String),
    id: u64,
    partitions: u32,
    handler: Arc<dyn Rebalance>,
}

impl GroupMember for EmbeddedMember {
    fn poll(&mut self, timeout: Duration) -> Result<(), LogError> {
        let (give_up, take) = self.coordinator.plan(&self.key, self.id, self.partitions);
        if !give_up.is_empty() {
            // the handler blocks until the work stopped; only then may others take them
            self.handler.revoked(&give_up);
            self.coordinator.update(&self.key, self.id, |held| give_up.iter().for_each(|p| _ = held.remove(p)));
        }
        if !take.is_empty() {
            self.coordinator.update(&self.key, self.id, |held| held.extend(&take));
            self.handler.assigned(&take);
        }
        if give_up.is_empty() && take.is_empty() {
            std::thread::sleep(timeout);
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<u32> {
        let groups = self.coordinator.groups.lock().expect("groups lock");
        groups[&self.key].members[&self.id].iter().copied().collect()
    }
}

impl Drop for EmbeddedMember {
    fn drop(&mut self) {
        let held = self.assignment();
        if !held.is_empty() {
            self.handler.revoked(&held);
        }
        let mut groups = self.coordinator.groups.lock().expect("groups lock");
        if let Some(state) = groups.get_mut(&self.key) {
            state.members.remove(&self.id);
        }
    }
}
