//! Link options for the `ecs-secrets` executable (not for the test harness binaries).
//!
//! Each only shrinks the file; none changes what the program does:
//! - `-z pack-relative-relocs` stores the static-pie's relative relocations as DT_RELR (a bitmap,
//!   ~7 KiB) instead of RELA entries (~480 KiB). glibc >= 2.36 applies them at start-up, before
//!   `main`; the binary stays position independent (ASLR).
//! - When panics abort (the release profile: `panic = "abort"` in Cargo.toml), nothing ever
//!   unwinds, so the `.eh_frame` unwind tables (~0.8 MiB with their index) are dead weight:
//!   discard them. A panic still prints its message and aborts; only a `RUST_BACKTRACE` stack
//!   listing comes out empty. Builds that unwind (the dev profile the tests use, where the test
//!   harness catches panics) keep them. The same goes for `.gcc_except_table` (the landing-pad
//!   tables of glibc's C objects, ~6 KiB): only the unwinder reads them, through `.eh_frame`.
//! - `--icf=all` (release): identical functions are kept once (see below).
//!
//! None is given for aarch64 (cross-linked by `aarch64-linux-gnu-gcc`, GNU ld 2.40; see
//! .cargo/config.toml and scripts/release.sh): rustc's `aarch64-unknown-linux-gnu` target has no
//! static-pie, so `crt-static` links a plain static executable with no relative relocations to
//! pack (and GNU ld 2.40 ignores `-z pack-relative-relocs` there), and its start file
//! `crtbeginT.o` refers into `.eh_frame`, so discarding that section fails the link.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    version_info();
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64")
    {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // Cargo does not tell build scripts the profile's panic strategy (CARGO_CFG_PANIC reflects the
    // target default, "unwind"), so go by the profile: Cargo.toml's release profile aborts.
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let unwinds = env::var("CARGO_PROFILE_RELEASE_PANIC").as_deref() == Ok("unwind");
    println!("cargo:rerun-if-env-changed=CARGO_PROFILE_RELEASE_PANIC");
    if release && !unwinds {
        let script = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
            .join("discard-eh-frame.ld");
        fs::write(
            &script,
            "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame.*) *(.gcc_except_table) \
             *(.gcc_except_table.*) } } INSERT AFTER .text;\n",
        )
        .expect("write the linker script into OUT_DIR");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    }
    if release {
        // Identical code folding: functions whose machine code and relocations are the same
        // are kept once (-47 KB). Rust makes no promise that two functions have distinct
        // addresses (rustc itself merges identical functions), and nothing here uses a
        // function's address as an identity; CI runs the whole suite against this build.
        // The x86_64 linker is rust-lld (rustc's default for this target since 1.90).
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// The commit and target `--version` names: `ECS_SECRETS_COMMIT` when set (a build without
/// .git, e.g. from a source archive, can pass it), else `git rev-parse --short=12 HEAD`, else
/// `unknown`; a checkout with uncommitted changes is marked `-dirty`.
fn version_info() {
    println!("cargo:rerun-if-env-changed=ECS_SECRETS_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = env::var("ECS_SECRETS_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let head = git(&["rev-parse", "--short=12", "HEAD"])?;
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            Some(if dirty { format!("{head}-dirty") } else { head })
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ECS_SECRETS_COMMIT={commit}");
    // Built again when HEAD moves (a commit, a checkout) or the index changes; only files
    // that exist are named (Cargo would otherwise run this script on every build).
    let reference = git(&["symbolic-ref", "-q", "HEAD"]).unwrap_or_default();
    for name in ["HEAD", "index", reference.as_str()] {
        if let Some(p) = (!name.is_empty())
            .then(|| git(&["rev-parse", "--git-path", name]))
            .flatten()
        {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=ECS_SECRETS_TARGET={target}");
}
