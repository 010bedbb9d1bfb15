//! The Task aggregate of visionlog, as pure code.
//!
//! This crate holds the domain vocabulary of seed 000 (Task, ClassGroup, Recipe, ObjectsDetected,
//! AssistanceRequested, OperatorAssigned, TaskResultGenerated, ...) and the two functions that give
//! it meaning: [`decide`] turns a command and the current state into events or a typed
//! [`Rejection`], and [`evolve`] folds one event into the state. The [`summarizer`] turns an
//! operator's many UI actions into one summarized command per kind.
//!
//! It is not the place for I/O, clocks, randomness or encoding: those are passed in (time arrives
//! on the command, ids are derived deterministically) or live in the codec and service crates.

mod command;
mod decide;
mod event;
mod ids;
mod limits;
mod rejection;
pub mod revert;
pub mod scoring;
mod state;
pub mod subtasks;
pub mod summarizer;
mod validate;
mod values;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use command::*;
pub use decide::{Actor, DecideContext, decide, is_customer_command};
pub use event::*;
pub use ids::*;
pub use limits::{ALLOWED_CALLBACK_SCHEMES, ALLOWED_IMAGE_SCHEMES, Limits};
pub use rejection::Rejection;
pub use revert::{NotRevertible, Stamped, revert};
pub use state::{DETECTION_STEP, RECOGNITION_STEP, Stage, Task, TaskObject, TaskState, evolve};
pub use values::*;
