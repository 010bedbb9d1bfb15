//! Progress of long commands (`demo`, `bench`, `export`, `tier once`, `report rebuild`, `task
//! undo-batch`) on standard error, drawn only on a terminal and never with `--json`: piped
//! output and scripts see nothing of it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A bar (a known amount of work) or a spinner (an unknown one); cleared when dropped.
pub(crate) struct Progress(ProgressBar);

/// Whether progress is drawn: on a terminal, and not for a command asked for `--json`.
pub(crate) fn shown(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

impl Progress {
    fn new(bar: ProgressBar, json: bool) -> Self {
        bar.set_draw_target(if shown(json) { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        Self(bar)
    }

    /// A bar of `total` steps of `unit`s, named `what`.
    pub(crate) fn bar(what: &str, unit: &str, total: u64, json: bool) -> Self {
        let style = ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})"
        ))
        .expect("a valid template")
        .progress_chars("#>-");
        let p = Self::new(ProgressBar::new(total).with_style(style).with_prefix(what.to_owned()), json);
        p.0.enable_steady_tick(Duration::from_millis(200));
        p
    }

    /// A spinner for work of unknown size, named `what`.
    pub(crate) fn spinner(what: &str, json: bool) -> Self {
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})").expect("a valid template");
        let p = Self::new(ProgressBar::new_spinner().with_style(style).with_prefix(what.to_owned()), json);
        p.0.enable_steady_tick(Duration::from_millis(120));
        p
    }

    /// Steps done so far.
    pub(crate) fn set(&self, done: u64) {
        self.0.set_position(done);
    }

    /// The number of steps (when it becomes known or changes).
    pub(crate) fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    /// What is going on now.
    pub(crate) fn say(&self, message: impl Into<String>) {
        self.0.set_message(message.into());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_never_draws_progress() {
        assert!(!shown(true));
        let p = Progress::bar("export", "records", 10, true);
        assert!(p.0.is_hidden());
        p.set(5);
        let s = Progress::spinner("rebuild", true);
        assert!(s.0.is_hidden());
    }
}
