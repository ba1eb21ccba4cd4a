//! Property: for any value without NUL, `X=<quote(value)>; printf %s "$X"` in a real `sh`
//! prints the value back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::ffi::OsStrExt;

#[path = "../../src/inject/shell.rs"]
#[allow(dead_code)]
mod shell;

fuzz_target!(|data: &[u8]| {
    if data.contains(&0) || data.len() > 4096 {
        return;
    }
    let quoted = shell::quote(data);
    assert!(quoted.starts_with(b"'") && quoted.ends_with(b"'"));
    let mut script = b"X=".to_vec();
    script.extend_from_slice(&quoted);
    script.extend_from_slice(b"; printf %s \"$X\"");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(std::ffi::OsStr::from_bytes(&script))
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "sh failed on {:?}",
        String::from_utf8_lossy(&script)
    );
    assert_eq!(
        out.stdout,
        data,
        "round trip differs for {:?}",
        String::from_utf8_lossy(data)
    );
});
