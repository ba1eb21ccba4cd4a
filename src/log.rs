//! stderr diagnostics. One prefix, one line each. Nothing here is ever given a payload.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

pub fn debug(args: std::fmt::Arguments<'_>) {
    if debug_enabled() {
        let _ = writeln!(std::io::stderr().lock(), "ecs-secrets: debug: {args}");
    }
}

pub fn warn(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "ecs-secrets: warning: {args}");
}

pub fn error(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "ecs-secrets: error: {args}");
}
