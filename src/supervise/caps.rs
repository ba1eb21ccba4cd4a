//! What a supervisor with `--user` needs beyond what `exec --user` needs, checked before
//! anything is fetched: CMD runs as another user, so signalling it (forwarding, stopping for
//! a restart) needs `CAP_KILL`, and rewriting files in the user's 0700 directory needs
//! `CAP_DAC_OVERRIDE`. Without them a container with `capabilities.drop: ["ALL"]` would start
//! fine and then be unable to stop or reload its application.

use crate::error::{Error, Result};

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_KILL: u32 = 5;

/// The effective capability set of this process (CapEff in /proc/self/status); `None` when
/// it cannot be read (then nothing is refused).
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// `what`: the command, for the message. `signals`: CMD runs as the user (exec); `files`:
/// the files are the user's (`--files` with `--user`).
pub fn check(uid: u32, signals: bool, files: bool, what: &str) -> Result<()> {
    if uid == 0 || nix::unistd::geteuid().as_raw() != 0 {
        return Ok(());
    }
    let Some(eff) = effective() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    if signals && eff & (1 << CAP_KILL) == 0 {
        missing.push("KILL (to forward signals to the command and stop it)");
    }
    if files && eff & (1 << CAP_DAC_OVERRIDE) == 0 {
        missing.push("DAC_OVERRIDE (to rewrite the files in the user's directory)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{what} --refresh with --user needs the capabilit{} {}: add {} to \
         linuxParameters.capabilities; nothing was started",
        if missing.len() == 1 { "y" } else { "ies" },
        missing.join(" and "),
        if missing.len() == 1 { "it" } else { "them" },
    )))
}
