//! Build-time facts for `src/build_info.rs`, and link options for the `ecs-secrets` executable
//! (not for the test harness binaries).
//!
//! `ECS_SECRETS_COMMIT`: the override of the same name if set (release tooling, a Docker build
//! whose context has no `.git`), else `git rev-parse --short=12 HEAD`, else `unknown`.
//! `ECS_SECRETS_TARGET`: the target triple Cargo builds for.
//!
//! Link options (x86_64; see below for aarch64):
//!
//! Both only shrink the file; neither changes what the program does:
//! - `-z pack-relative-relocs` stores the static-pie's relative relocations as DT_RELR (a bitmap,
//!   ~7 KiB) instead of RELA entries (~480 KiB). glibc >= 2.36 applies them at start-up, before
//!   `main`; the binary stays position independent (ASLR).
//! - When panics abort (the release profile: `panic = "abort"` in Cargo.toml), nothing ever
//!   unwinds, so the `.eh_frame` unwind tables (~0.8 MiB with their index) are dead weight:
//!   discard them. A panic still prints its message and aborts; only a `RUST_BACKTRACE` stack
//!   listing comes out empty. Builds that unwind (the dev profile the tests use, where the test
//!   harness catches panics) keep them. The same goes for `.gcc_except_table` (the landing-pad
//!   tables of glibc's C objects, ~6 KiB): only the unwinder reads them, through `.eh_frame`.
//!
//! aarch64 (linked by `aarch64-linux-gnu-gcc`, GNU ld 2.40; see .cargo/config.toml): rustc links
//! `crt-static` aarch64 executables as plain static, not static-pie, so there are no relative
//! relocations to pack (and GNU ld 2.40 ignores `-z pack-relative-relocs` there), and the
//! non-PIE start file `crtbeginT.o` refers into `.eh_frame`, so discarding it fails the link.
//! Neither option is given for that target.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build_info();
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
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
}

fn build_info() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=ECS_SECRETS_TARGET={target}");
    println!("cargo:rerun-if-env-changed=ECS_SECRETS_COMMIT");
    let commit = match env::var("ECS_SECRETS_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=ECS_SECRETS_COMMIT={commit}");
}

/// HEAD's abbreviated hash, and rerun-if-changed on the files that move when HEAD does
/// (HEAD itself, the branch's ref, packed-refs). None without git or outside a repository.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(env::var_os("CARGO_MANIFEST_DIR")?)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watch {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]) {
            if PathBuf::from(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    Some(commit)
}
