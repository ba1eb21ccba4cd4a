//! What this binary is: the package version, the commit it was built from and the target it was
//! built for (all set at build time by `build.rs`). A leaf: `--version`, the daemon's
//! `/version` and release tooling read these; it depends on nothing.

/// The package version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from: `ECS_SECRETS_COMMIT` if set at build time, else
/// `git rev-parse --short=12 HEAD` (with `-dirty` for uncommitted changes), else `unknown` (a
/// build from a tarball or a Docker context without `.git`).
pub const COMMIT: &str = env!("ECS_SECRETS_COMMIT");

/// The Rust target triple the binary was built for, e.g. `aarch64-unknown-linux-gnu`.
pub const TARGET: &str = env!("ECS_SECRETS_TARGET");

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ECS_SECRETS_COMMIT"),
    " ",
    env!("ECS_SECRETS_TARGET"),
    ")"
);

/// `VERSION (COMMIT TARGET)`, what `ecs-secrets --version` prints after the program's name.
pub fn long_version() -> &'static str {
    LONG_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_version_commit_and_target() {
        let long = long_version();
        assert_eq!(long, format!("{VERSION} ({COMMIT} {TARGET})"));
        let inner = long.split_once(" (").map(|(_, r)| r.trim_end_matches(')'));
        let (commit, target) = inner.and_then(|r| r.split_once(' ')).expect(long);
        assert!(!commit.is_empty() && !target.contains(' '), "{long}");
        assert!(target.contains("-linux-"), "{long}");
    }
}
