//! Operators: who annotates what the models could not do.
//!
//! For now this holds the **simulated operator pool** that the demo and tests use in place of
//! people: it takes tasks that await an operator (assignment is version-guarded, so no task goes
//! to two operators), draws boxes from the task's ground truth with the mistakes people make
//! (a wrong box deleted again, a box moved, a class chosen later), and sends the session through
//! the real session summarizer. The ground truth comes from [`scenario`], a deterministic
//! generator of task contents keyed by task id. The operator queue read model, leases and the
//! browser tool arrive with the surfaces issue.

mod pool;
pub mod scenario;

pub use pool::{GROUP, SimulatedOperators, TaskObjects};
