//! Properties of the secret-name → environment-name mapping and of `printable`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/names.rs"]
#[allow(dead_code)]
mod names;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let env = names::env_name(name);
    // Only [A-Za-z0-9_], one character per input character, stable under re-mapping.
    assert!(
        env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{env:?}"
    );
    assert_eq!(env.chars().count(), name.chars().count());
    assert_eq!(names::env_name(&env), env);
    // Anything that maps to a refused name is still refused after mapping.
    let _ = names::is_refused(&env);
    if env.starts_with("LD_") || env == "PATH" {
        assert!(names::is_refused(&env));
    }
    // Safe for a terminal: no control characters survive.
    let shown = names::printable(name);
    assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
});
