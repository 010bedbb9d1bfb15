//! Simulated operators: people stand-ins for the demo, tests and benches.
//!
//! A **pool** takes tasks that await an operator (assignment is version-guarded, so no task goes
//! to two operators), draws boxes from the task's ground truth with the mistakes people make
//! (a wrong box deleted again, a box moved, a class chosen later), and sends the session through
//! the real session summarizer. The ground truth comes from [`scenario`], a deterministic
//! generator of task contents keyed by task id. The rules real operators work under (queue,
//! skills, assignment, leases) are the Operator Manager's (`visionlog-operators`); this pool
//! speaks to the aggregator directly, as a service would.

mod pool;
pub mod scenario;

pub use pool::{GROUP, HiddenSubtasks, SeenTask, SimulatedOperators, TaskObjects};
