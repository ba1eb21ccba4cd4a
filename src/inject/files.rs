//! `--files DIR`: each secret written to DIR/<NAME>, mode 0400, owned by the `--user`
//! target, on tmpfs/ramfs only (unless `--allow-disk`), without following symlinks, replaced
//! atomically; files an earlier run wrote for secrets that are gone are removed.
//!
//! DIR is opened once (`O_DIRECTORY|O_NOFOLLOW`, relative to its parent) and every write is
//! made relative to that descriptor, so swapping a path component for a symlink half-way
//! cannot redirect a secret. Each secret goes to a fresh temporary file (`O_CREAT|O_EXCL|
//! O_NOFOLLOW`, mode 0400 from the start, chowned before a byte is written), is fsync'd, and
//! only when every secret is safely in its temporary file are they renamed into place. Any
//! failure removes everything this run wrote (and DIR, if this run created it).
//!
//! Which files are ours is recorded in DIR's manifest (`manifest.rs`), before the first
//! rename (so a run killed at any point leaves nothing unrecorded) and again, exact, at the
//! end. The files of secrets that are gone are removed after the new ones are in place, and
//! only when they are still exactly what was written.

use super::env::{printable, ExtraVar, Injection};
use super::manifest::{self, Entry, Removal};
use crate::error::{Error, Result};
pub use crate::names::is_file_name;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// How a directory is named in messages: given with `--files`, or the directory of a
/// `--template` DEST.
pub const FILES: &str = "--files";
pub const TEMPLATE_DIR: &str = "the --template directory";

/// One file to write into a directory: its name there, its bytes, and what it is (for
/// messages: `secret /p/NAME`, `--template SRC`).
pub struct Item<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
    pub what: String,
}

const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Check DIR before anything is fetched: it (or, when missing, its parent) must be a real
/// directory on tmpfs or ramfs unless `allow_disk`, and a record of earlier files in it must
/// be one we can trust. Creates nothing; `write_all` checks again.
pub fn check_dir(dir: &Path, allow_disk: bool) -> Result<()> {
    check_dir_for(dir, FILES, allow_disk)
}

/// `check_dir` for a directory named by `flag` in messages (`FILES` or `TEMPLATE_DIR`).
pub fn check_dir_for(dir: &Path, flag: &str, allow_disk: bool) -> Result<()> {
    match open_dir(dir, flag, None, allow_disk, false)? {
        Some(opened) => manifest::read(&opened.fd, &shown(dir)).map(drop),
        None => Ok(()),
    }
}

/// `--file-env` adds `<NAME>_FILE` beside each secret `NAME`; a secret already called that
/// would be silently shadowed, so refuse the pair (only matters when values go to the
/// environment too, i.e. without `--no-env`).
pub fn check_file_env_names(secrets: &[Injection]) -> Result<()> {
    for s in secrets {
        let var = format!("{}_FILE", s.env_name);
        if let Some(other) = secrets.iter().find(|o| o.env_name == var) {
            return Err(Error::data(format!(
                "secret {} would set {var}, which --file-env also sets for {}: rename one, \
                 or add --no-env",
                other.full_name(),
                s.full_name()
            )));
        }
    }
    Ok(())
}

/// `<NAME>_FILE=DIR/<NAME>` for every secret (`--file-env`), DIR made absolute. Known before
/// anything is written, so the environment can be checked first.
pub fn file_env_vars(dir: &Path, secrets: &[Injection]) -> Result<Vec<ExtraVar>> {
    let abs: PathBuf = if dir.is_absolute() {
        dir.components().collect()
    } else {
        std::env::current_dir()
            .map_err(|e| {
                Error::io(format!(
                    "cannot find the current directory to make --files {} absolute for \
                     --file-env: {e}; give an absolute path",
                    shown(dir)
                ))
            })?
            .join(dir)
            .components()
            .collect()
    };
    Ok(secrets
        .iter()
        .map(|s| ExtraVar {
            name: format!("{}_FILE", s.env_name),
            value: abs.join(&s.env_name).into_os_string().into_vec(),
        })
        .collect())
}

/// Write every secret into `dir`, then remove the files an earlier run wrote there for
/// secrets that are no longer among `secrets` (and nothing else). On failure no file of this
/// run is left behind.
pub fn write_all(
    dir: &Path,
    secrets: &[Injection],
    owner: Option<(u32, u32)>,
    allow_disk: bool,
) -> Result<()> {
    write_items(dir, FILES, &items_of(secrets)?, owner, allow_disk)
}

/// The secrets as files named by their environment names.
pub fn items_of(secrets: &[Injection]) -> Result<Vec<Item<'_>>> {
    secrets
        .iter()
        .map(|s| {
            // Environment names are [A-Za-z0-9_]+ by construction; a file name must never be
            // anything else (no '/', no '..').
            let n = s.env_name.as_bytes();
            if n.is_empty() || !n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                return Err(Error::data(format!(
                    "secret {} has no usable file name",
                    s.full_name()
                )));
            }
            Ok(Item {
                name: &s.env_name,
                bytes: s.secret.payload.as_bytes(),
                what: format!("secret {}", s.full_name()),
            })
        })
        .collect()
}

/// Write `items` into `dir` (named by `flag` in messages), then remove the files an earlier
/// run wrote there that are not among them (and nothing else). On failure no file of this
/// run is left behind. Names must pass `is_file_name`.
pub fn write_items(
    dir: &Path,
    flag: &str,
    items: &[Item<'_>],
    owner: Option<(u32, u32)>,
    allow_disk: bool,
) -> Result<()> {
    for (k, it) in items.iter().enumerate() {
        if !is_file_name(it.name) || items[..k].iter().any(|o| o.name == it.name) {
            return Err(Error::data(format!(
                "{} cannot be written as {}/{}: the name is not usable or is taken",
                it.what,
                shown(dir),
                printable(it.name)
            )));
        }
    }
    let opened = open_dir(dir, flag, owner, allow_disk, true)?
        .expect("open_dir with create=true returns the directory");
    let shown = shown(dir);
    let mut progress = Progress::default();
    let earlier = match manifest::read(&opened.fd, &shown) {
        Ok(e) => e,
        Err(e) => {
            rollback(&opened, &progress, &shown, None);
            return Err(e);
        }
    };
    let earlier_entries = earlier.as_deref().unwrap_or_default();
    let written = (|| {
        write_into(
            &opened.fd,
            flag,
            &shown,
            items,
            owner,
            earlier_entries,
            &mut progress,
        )?;
        remove_gone(&opened.fd, flag, &shown, earlier_entries, &progress)?;
        // Last: a root without CAP_DAC_OVERRIDE cannot write into DIR once it is the
        // target's.
        if let (Some((uid, gid)), Some(_)) = (owner, &opened.created) {
            fchown(
                &opened.fd,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
            )
            .map_err(|e| {
                Error::io(format!(
                    "cannot give {flag} {shown} to uid {uid} gid {gid}: {}{}; nothing was \
                     started and no secret file was left behind",
                    e.desc(),
                    if e == Errno::EPERM {
                        "; this needs the CHOWN capability"
                    } else {
                        errno_hint(e)
                    }
                ))
            })?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        rollback(&opened, &progress, &shown, earlier.as_deref());
        return Err(e);
    }
    Ok(())
}

/// Remove what `earlier` lists and this run did not write again, then record exactly this
/// run's files. A listed file that is no longer what was written is left alone and
/// forgotten; one that cannot be removed fails the run (it may hold a revoked value).
fn remove_gone(
    dirfd: &OwnedFd,
    flag: &str,
    shown: &str,
    earlier: &[Entry],
    progress: &Progress,
) -> Result<()> {
    let keep: &[Entry] = &progress.placed;
    for e in earlier {
        if progress.placed.iter().any(|p| p.name == e.name) {
            continue;
        }
        match manifest::remove_if_ours(dirfd, e) {
            Ok(Removal::Removed) | Ok(Removal::Gone) => {}
            Ok(Removal::NotOurs) => crate::log::warn(format_args!(
                "{shown}/{} was written by an earlier run for a file no longer asked for, \
                 but has been replaced or changed since: left alone",
                e.name
            )),
            Err(err) => {
                return Err(Error::io(format!(
                    "cannot remove {shown}/{}, written by an earlier run for a file no longer \
                     asked for: {}{}; nothing was started",
                    e.name,
                    err.desc(),
                    errno_hint(err)
                )));
            }
        }
    }
    manifest::write(dirfd, shown, keep)?;
    fsync(dirfd).map_err(|e| {
        Error::io(format!(
            "cannot fsync {flag} {shown}: {}{}",
            e.desc(),
            errno_hint(e)
        ))
    })
}

fn shown(dir: &Path) -> String {
    printable(&dir.to_string_lossy())
}

struct OpenedDir {
    fd: OwnedFd,
    /// Set when this run created DIR: its parent and name, to remove it on failure.
    created: Option<(OwnedFd, Vec<u8>)>,
}

/// Open DIR without following a symlink in its last component and check its filesystem.
/// When missing: with `create`, make it 0700 (owned by `owner`); without, check the parent
/// and return `None`.
fn open_dir(
    dir: &Path,
    flag: &str,
    owner: Option<(u32, u32)>,
    allow_disk: bool,
    create: bool,
) -> Result<Option<OpenedDir>> {
    let shown = shown(dir);
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut comps = dir.components();
    let (parent, name) = match comps.next_back() {
        Some(Component::Normal(name)) => (comps.as_path().to_path_buf(), name),
        // "/", "." or "..": never a symlink, always exists.
        _ => {
            let fd = openat(AT_FDCWD, dir, dir_flags, Mode::empty())
                .map_err(|e| open_error(flag, &shown, e))?;
            check_fs(&fd, flag, &shown, allow_disk)?;
            return Ok(Some(OpenedDir { fd, created: None }));
        }
    };
    let parent = if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    };
    // Symlinks in the parent path are the administrator's layout (/var/run -> /run): follow.
    let pfd = openat(AT_FDCWD, &parent, dir_flags, Mode::empty()).map_err(|e| {
        Error::usage(format!(
            "cannot open {}, the parent of {flag} {shown}: {}; create it first, or mount a \
             tmpfs volume there",
            printable(&parent.to_string_lossy()),
            e.desc()
        ))
    })?;

    // Twice at most: a directory created by someone else between our open and our mkdir is
    // then opened as an existing one.
    for _ in 0..2 {
        match openat(&pfd, name, dir_flags | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(fd) => {
                check_fs(&fd, flag, &shown, allow_disk)?;
                if let Some(owner) = owner {
                    warn_if_unsearchable(&fd, flag, &shown, owner);
                }
                return Ok(Some(OpenedDir { fd, created: None }));
            }
            Err(Errno::ENOENT) => {
                // It would be created on the parent's filesystem: check that first, so a
                // refused DIR is never created on disk.
                check_fs(&pfd, flag, &shown, allow_disk)?;
                if !create {
                    return Ok(None);
                }
                match mkdirat(&pfd, name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => continue,
                    Err(e) => {
                        return Err(Error::io(format!(
                            "cannot create {flag} {shown}: {}{}",
                            e.desc(),
                            errno_hint(e)
                        )))
                    }
                }
                // Owned by us until the files are in; chowned to the target last, so that a
                // root without CAP_DAC_OVERRIDE can still fill it.
                let fd = openat(&pfd, name, dir_flags | OFlag::O_NOFOLLOW, Mode::empty())
                    .and_then(|fd| fchmod(&fd, Mode::from_bits_truncate(0o700)).map(|()| fd));
                return match fd {
                    Ok(fd) => Ok(Some(OpenedDir {
                        fd,
                        created: Some((pfd, name.as_bytes().to_vec())),
                    })),
                    Err(e) => {
                        let _ = unlinkat(&pfd, name, UnlinkatFlags::RemoveDir);
                        Err(Error::io(format!(
                            "cannot set up the new directory {flag} {shown}: {}{}",
                            e.desc(),
                            errno_hint(e)
                        )))
                    }
                };
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                let is_link = fstatat(&pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                });
                return Err(Error::usage(if is_link {
                    format!(
                        "{flag} {shown} is a symbolic link: refused, since a link could send \
                         the secrets anywhere; point {flag} at the real directory"
                    )
                } else {
                    format!(
                        "{flag} {shown} exists and is not a directory: remove it or choose \
                         another path"
                    )
                }));
            }
            Err(e) => return Err(open_error(flag, &shown, e)),
        }
    }
    Err(Error::io(format!(
        "{flag} {shown} keeps appearing and disappearing: is something else managing it?"
    )))
}

/// An existing DIR the `--user` target cannot enter makes the files useless to it: say so
/// (it may still be intended, e.g. a helper reads them as root).
fn warn_if_unsearchable(fd: &OwnedFd, flag: &str, shown: &str, (uid, gid): (u32, u32)) {
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return;
    };
    let bit = if st.st_uid == uid {
        0o100
    } else if st.st_gid == gid {
        0o010
    } else {
        0o001
    };
    if uid != 0 && st.st_mode & bit == 0 {
        crate::log::warn(format_args!(
            "{flag} {shown} (owner {}:{}, mode {:o}) cannot be entered by uid {uid} gid {gid}: \
             the command will not be able to read its secret files; give the directory mode \
             0711 or let ecs-secrets create it (point {flag} at a missing subdirectory)",
            st.st_uid,
            st.st_gid,
            st.st_mode & 0o7777
        ));
    }
}

fn open_error(flag: &str, shown: &str, e: Errno) -> Error {
    Error::io(format!(
        "cannot open {flag} {shown}: {}{}",
        e.desc(),
        errno_hint(e)
    ))
}

fn errno_hint(e: Errno) -> &'static str {
    match e {
        Errno::ENOSPC | Errno::EDQUOT => "; the filesystem is full: give the tmpfs more room",
        Errno::EACCES | Errno::EPERM => "; check the owner and mode of the directory",
        Errno::EROFS => "; the filesystem is read-only: mount a writable tmpfs there",
        _ => "",
    }
}

/// The directory must be tmpfs or ramfs (memory only), unless `--allow-disk`.
fn check_fs(fd: &impl AsFd, flag: &str, shown: &str, allow_disk: bool) -> Result<()> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(|e| {
        Error::io(format!(
            "cannot find out which filesystem {flag} {shown} is on: {}",
            e.desc()
        ))
    })?;
    // f_type is a signed long here; the magic numbers are 32-bit.
    let magic = (st.filesystem_type().0 as u64) & 0xffff_ffff;
    if magic == TMPFS_MAGIC || magic == RAMFS_MAGIC || allow_disk {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{flag} {shown} is not on tmpfs or ramfs (it is on {}): the secrets would be written \
         to disk and could outlive the container. Mount a tmpfs there (ECS: \
         linuxParameters.tmpfs; docker run --tmpfs) or, to accept that, pass --allow-disk",
        fs_name(magic)
    )))
}

fn fs_name(magic: u64) -> String {
    let name = match magic {
        0xef53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x0102_1997 => "9p",
        0x6573_5546 => "fuse",
        0x2fc1_2fc1 => "zfs",
        0x6462_6720 => "debugfs",
        0x6265_6572 => "sysfs",
        0x9fa0 => "procfs",
        _ => "",
    };
    if name.is_empty() {
        format!("a filesystem of type {magic:#x}")
    } else {
        format!("{name}, type {magic:#x}")
    }
}

#[derive(Default)]
struct Progress {
    /// Temporary files created and not yet renamed: (temporary name, final name, identity).
    temps: Vec<(Vec<u8>, String, Entry)>,
    /// Files this run put in place, under their final names.
    placed: Vec<Entry>,
    /// This run (re)wrote the manifest.
    manifest_written: bool,
}

fn write_into(
    dirfd: &OwnedFd,
    flag: &str,
    shown: &str,
    items: &[Item<'_>],
    owner: Option<(u32, u32)>,
    earlier: &[Entry],
    progress: &mut Progress,
) -> Result<()> {
    // Phase 1: every secret in its own temporary file, fsync'd. Nothing visible yet.
    for it in items {
        let fail = |what: &str, e: Errno| {
            let hint = if what == "chown" && e == Errno::EPERM {
                "; giving files to --user needs the CHOWN capability (keep it in \
                 linuxParameters.capabilities)"
            } else {
                errno_hint(e)
            };
            Error::io(format!(
                "cannot write {} to {shown}/{}: {what}: {}{hint}; nothing was started \
                 and no secret file was left behind",
                it.what,
                it.name,
                e.desc(),
            ))
        };
        let (tmp, fd) = create_temp(dirfd, it.name).map_err(|e| fail("create", e))?;
        let tmp_name = String::from_utf8_lossy(&tmp).into_owned();
        let mut entry = Entry::of(&tmp_name, &fd).map_err(|e| fail("stat", e))?;
        entry.size = it.bytes.len() as u64;
        progress.temps.push((tmp, it.name.to_string(), entry));
        // The mode was 0400 from creation (less, under a umask); make it exactly 0400.
        fchmod(&fd, Mode::from_bits_truncate(0o400)).map_err(|e| fail("chmod", e))?;
        if let Some((uid, gid)) = owner {
            fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| fail("chown", e))?;
        }
        let mut file = std::fs::File::from(fd);
        // Straight from the zeroizing payload: no copy of the plaintext is made here.
        file.write_all(it.bytes)
            .map_err(|e| fail("write", io_errno(&e)))?;
        fsync(&file).map_err(|e| fail("fsync", e))?;
    }
    // Recorded before anything is renamed: whatever happens from here on (a kill included),
    // a later run knows every file this one may leave, under either name.
    let mut intent: Vec<Entry> = earlier.to_vec();
    for (_, name, e) in &progress.temps {
        intent.push(e.clone());
        intent.push(Entry {
            name: name.clone(),
            ..e.clone()
        });
    }
    manifest::write(dirfd, shown, &intent)?;
    progress.manifest_written = true;
    // Phase 2: rename into place. rename(2) replaces whatever is at the name — a planted
    // symlink is replaced itself, its target never touched.
    while let Some((tmp, name, _)) = progress.temps.first() {
        renameat(dirfd, OsStr::from_bytes(tmp), dirfd, name.as_str()).map_err(|e| {
            let hint = if e == Errno::EISDIR || e == Errno::ENOTEMPTY || e == Errno::EEXIST {
                "; a directory is in the way: remove it"
            } else {
                errno_hint(e)
            };
            Error::io(format!(
                "cannot put the secret file {shown}/{name} in place: {}{hint}; nothing was \
                 started and no secret file was left behind",
                e.desc()
            ))
        })?;
        let (_, name, e) = progress.temps.remove(0);
        progress.placed.push(Entry { name, ..e });
    }
    fsync(dirfd).map_err(|e| {
        Error::io(format!(
            "cannot fsync {flag} {shown}: {}{}",
            e.desc(),
            errno_hint(e)
        ))
    })?;
    Ok(())
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// `.NAME.ecs-secrets-<random>`: hidden (so `DIR/*` globs skip it), unique, never following
/// or reusing an existing entry.
fn create_temp(dirfd: &OwnedFd, name: &str) -> std::result::Result<(Vec<u8>, OwnedFd), Errno> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut last = Errno::EEXIST;
    for _ in 0..8 {
        let mut rnd = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd)
            .map_err(|_| Errno::EIO)?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = format!(".{name}.ecs-secrets-{hex}").into_bytes();
        match openat(
            dirfd,
            OsStr::from_bytes(&tmp),
            flags,
            Mode::from_bits_truncate(0o400),
        ) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(Errno::EEXIST) => last = Errno::EEXIST,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Remove every file this run wrote, and DIR when this run created it. Best effort: each
/// failure is reported (by name) and the rest still attempted. When every file of this run
/// is gone, the manifest is put back as it was (`earlier`; removed when there was none);
/// otherwise it keeps listing them, for a later run to remove.
fn rollback(opened: &OpenedDir, progress: &Progress, shown: &str, earlier: Option<&[Entry]>) {
    let mut clean = true;
    let names = progress
        .placed
        .iter()
        .map(|e| e.name.as_bytes())
        .chain(progress.temps.iter().map(|(t, _, _)| t.as_slice()));
    for n in names {
        match unlinkat(&opened.fd, OsStr::from_bytes(n), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => {
                clean = false;
                crate::log::error(format_args!(
                    "could not remove {shown}/{} after the failure: {}; remove it by hand",
                    printable(&String::from_utf8_lossy(n)),
                    e.desc()
                ))
            }
        }
    }
    if clean && progress.manifest_written {
        match earlier {
            None => manifest::remove(&opened.fd),
            Some(e) => {
                let _ = manifest::write(&opened.fd, shown, e);
            }
        }
    }
    if let Some((parent, name)) = &opened.created {
        let _ = unlinkat(parent, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Payload, Secret};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn inj(name: &str, v: &str) -> Injection {
        Injection {
            env_name: name.into(),
            path: "/p".into(),
            secret: Secret {
                name: name.into(),
                serial: 1,
                payload: Payload::from_string(v.into()),
            },
        }
    }

    /// A scratch directory on /dev/shm (tmpfs), removed on drop.
    struct Shm(PathBuf);
    impl Shm {
        fn new(tag: &str) -> Shm {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = PathBuf::from(format!(
                "/dev/shm/ecs-secrets-unit-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&p).unwrap();
            Shm(p)
        }
    }
    impl Drop for Shm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_0400_files_and_file_env_paths() {
        let shm = Shm::new("write");
        let dir = shm.0.join("s");
        let secrets = [inj("A", "alpha"), inj("B", "b\nline\0")];
        write_all(&dir, &secrets, None, false).unwrap();
        let extras = file_env_vars(&dir, &secrets).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"alpha");
        assert_eq!(std::fs::read(dir.join("B")).unwrap(), b"b\nline\0");
        let m = std::fs::metadata(dir.join("A")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o400);
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(entries(&dir), [manifest::NAME, "A", "B"]);
        assert_eq!(extras[0].name, "A_FILE");
        assert_eq!(extras[0].value, dir.join("A").as_os_str().as_bytes());
        // Written again: replaced in place, and B, whose secret is gone, removed.
        write_all(&dir, &[inj("A", "two")], None, false).unwrap();
        assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"two");
        assert_eq!(entries(&dir), [manifest::NAME, "A"]);
    }

    #[test]
    fn only_files_still_as_written_are_removed() {
        let shm = Shm::new("gone");
        let dir = &shm.0;
        std::fs::write(dir.join("THEIRS"), "not ours").unwrap();
        let all = [inj("A", "1"), inj("B", "2"), inj("C", "3"), inj("D", "4")];
        write_all(dir, &all, None, false).unwrap();
        // B replaced by someone else's file, C made writable, D a symlink now.
        std::fs::remove_file(dir.join("B")).unwrap();
        std::fs::write(dir.join("B"), "2").unwrap();
        std::fs::set_permissions(dir.join("B"), std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::set_permissions(dir.join("C"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(dir.join("D")).unwrap();
        std::os::unix::fs::symlink(dir.join("THEIRS"), dir.join("D")).unwrap();
        write_all(dir, &[inj("E", "5")], None, false).unwrap();
        assert_eq!(entries(dir), [manifest::NAME, "B", "C", "D", "E", "THEIRS"]);
        assert_eq!(std::fs::read(dir.join("THEIRS")).unwrap(), b"not ours");
        // What was left alone is forgotten: the next run leaves it too, without a word.
        write_all(dir, &[], None, false).unwrap();
        assert_eq!(entries(dir), [manifest::NAME, "B", "C", "D", "THEIRS"]);
    }

    #[test]
    fn a_run_killed_before_its_renames_leaves_nothing_unrecorded() {
        let shm = Shm::new("killed");
        let dir = &shm.0;
        write_all(dir, &[inj("A", "1")], None, false).unwrap();
        // What a run killed between its intent manifest and its renames leaves: a temporary
        // file, listed.
        let tmp = dir.join(".B.ecs-secrets-0123456789abcdef");
        std::fs::write(&tmp, "22").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o400)).unwrap();
        let ino = std::fs::metadata(&tmp).unwrap().ino();
        let m = dir.join(manifest::NAME);
        let mut text = std::fs::read_to_string(&m).unwrap();
        text.push_str(&format!(
            ".B.ecs-secrets-0123456789abcdef {ino} 2\nB {ino} 2\n"
        ));
        std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&m, text).unwrap();
        write_all(dir, &[inj("C", "3")], None, false).unwrap();
        assert_eq!(entries(dir), [manifest::NAME, "C"]);
    }

    #[test]
    fn a_manifest_that_is_not_ours_is_refused_and_kept() {
        let shm = Shm::new("forged");
        let dir = &shm.0;
        std::fs::write(dir.join("X"), "x").unwrap();
        std::os::unix::fs::symlink(dir.join("X"), dir.join(manifest::NAME)).unwrap();
        let e = write_all(dir, &[inj("A", "1")], None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("symbolic link") && e.contains(manifest::NAME),
            "{e}"
        );
        std::fs::remove_file(dir.join(manifest::NAME)).unwrap();
        std::fs::write(dir.join(manifest::NAME), "ecs-secrets files v1\nX 1 1\n").unwrap();
        std::fs::set_permissions(
            dir.join(manifest::NAME),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let e = write_all(dir, &[inj("A", "1")], None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("writable by others"), "{e}");
        assert_eq!(
            entries(dir),
            [manifest::NAME, "X"],
            "nothing written or removed"
        );
    }

    #[test]
    fn a_directory_in_the_way_rolls_everything_back() {
        let shm = Shm::new("rollback");
        std::fs::create_dir(shm.0.join("B")).unwrap();
        std::fs::write(shm.0.join("B").join("keep"), "x").unwrap();
        let e = write_all(
            &shm.0,
            &[inj("A", "1"), inj("B", "2"), inj("C", "3")],
            None,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/B") && e.contains("directory"), "{e}");
        assert_eq!(entries(&shm.0), ["B"], "only what was there before");
    }

    #[test]
    fn symlinked_and_disk_directories_are_refused() {
        let shm = Shm::new("refuse");
        std::os::unix::fs::symlink(&shm.0, shm.0.join("link")).unwrap();
        let e = write_all(&shm.0.join("link"), &[inj("A", "1")], None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = check_dir(&shm.0.join("link/"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "trailing slash: {e}");
        std::fs::write(shm.0.join("file"), "").unwrap();
        let e = check_dir(&shm.0.join("file"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        // The crate's own directory is on disk.
        let disk = Path::new(env!("CARGO_MANIFEST_DIR"));
        let e = check_dir(disk, false).unwrap_err().to_string();
        assert!(e.contains("--allow-disk"), "{e}");
        assert!(check_dir(disk, true).is_ok());
        let missing = disk.join("no-such-dir-for-files");
        assert!(check_dir(&missing, false).is_err(), "parent checked");
        assert!(!missing.exists());
    }

    #[test]
    fn file_env_names_must_not_collide() {
        let e = check_file_env_names(&[inj("X", "1"), inj("X_FILE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("X_FILE") && e.contains("--no-env"), "{e}");
        assert!(check_file_env_names(&[inj("X", "1"), inj("Y", "2")]).is_ok());
    }
}
