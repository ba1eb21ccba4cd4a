//! Link options for the `ecs-secrets` executable (not for the test harness binaries).
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

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
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
