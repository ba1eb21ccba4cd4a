//! `install-links DIR`: make `ecs-secrets-exec` and `ecs-secrets-env` in DIR point at this
//! binary (scratch images have no `ln`).

use crate::error::{Error, ExitCode, Result};
use std::path::{Path, PathBuf};

pub const LINKS: [&str; 2] = ["ecs-secrets-exec", "ecs-secrets-env"];

pub fn run(dir: &str) -> Result<ExitCode> {
    let dir = Path::new(dir);
    let exe = std::env::current_exe()
        .map_err(|e| Error::io(format!("cannot find this executable's path: {e}")))?;
    // Next to the binary, a relative link survives the directory being copied or mounted
    // elsewhere; otherwise point at the absolute path.
    let same_dir = exe.parent().and_then(|p| p.canonicalize().ok()) == dir.canonicalize().ok();
    let target: PathBuf = if same_dir {
        PathBuf::from(exe.file_name().expect("an executable has a file name"))
    } else {
        exe.clone()
    };
    for name in LINKS {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)
                .map_err(|e| Error::io(format!("cannot replace {}: {e}", link.display())))?,
            Ok(_) => {
                return Err(Error::io(format!(
                    "{} exists and is not a link: remove it first",
                    link.display()
                )))
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link).map_err(|e| {
            Error::io(format!(
                "cannot create {} -> {}: {e}",
                link.display(),
                target.display()
            ))
        })?;
        println!("{} -> {}", link.display(), target.display());
    }
    Ok(ExitCode::Success)
}
