//! Printing to standard output that ends quietly when the reader goes away (`| head`).

use std::io::Write;

/// Prints one line; exits with success if standard output was closed.
pub(crate) fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("writing to stdout: {e}");
    }
}
