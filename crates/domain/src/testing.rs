//! Given / when / then for the Task aggregate (after cqrs-es's test framework).

use crate::{Actor, DecideContext, Limits, Rejection, TaskCommand, TaskEvent, TaskState, decide, evolve};

pub(crate) struct Given {
    state: TaskState,
    actor: Actor,
    tenant: Option<String>,
    limits: Limits,
}

pub(crate) fn given(events: &[TaskEvent]) -> Given {
    let state = events.iter().fold(None, evolve);
    Given { state, actor: Actor::Service("test".into()), tenant: None, limits: Limits::default() }
}

pub(crate) fn given_no_task() -> Given {
    given(&[])
}

pub(crate) struct Then {
    result: Result<Vec<TaskEvent>, Rejection>,
}

impl Given {
    pub(crate) fn by(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// The tenant the command comes from (by default the task's customer, or `acme`).
    pub(crate) fn in_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    pub(crate) fn when(self, command: TaskCommand) -> Then {
        let customer = self.state.as_ref().map_or("acme", |t| t.customer.as_str());
        let tenant = self.tenant.as_deref().unwrap_or(customer);
        let ctx = DecideContext { actor: &self.actor, tenant, limits: &self.limits };
        Then { result: decide(&self.state, &command, &ctx) }
    }
}

impl Then {
    #[track_caller]
    pub(crate) fn then_events(self, expected: &[TaskEvent]) {
        assert_eq!(self.result.as_deref(), Ok(expected));
    }

    #[track_caller]
    pub(crate) fn then_rejected(self, code: &str) -> Rejection {
        match self.result {
            Err(r) => {
                assert_eq!(r.code(), code, "rejected, but for another reason: {r}");
                r
            }
            Ok(events) => panic!("expected rejection {code}, got events {events:?}"),
        }
    }

    pub(crate) fn events(self) -> Vec<TaskEvent> {
        self.result.expect("expected events")
    }
}
