//! Which files in a `--files` DIR ecs-secrets wrote: the manifest `DIR/.ecs-secrets-files`.
//!
//! It lists, for every file a run created (the secret files and their temporaries), the
//! name, inode and size. A later run removes a listed file whose secret is gone only if it is
//! still exactly that file: a regular file (never a symlink followed), mode 0400, same inode,
//! same size. A file replaced, re-linked, chmod'ed or written since is someone else's and is
//! never touched.
//!
//! The manifest is trusted only when it is a regular file owned by the user ecs-secrets runs
//! as and writable by no one else: the `--user` target (which may write DIR) cannot forge
//! one when ecs-secrets runs as root. Anything else at that name is refused, not replaced.
//!
//! Removal is by name after a check (there is no unlink-by-descriptor), so a peer that can
//! rename within DIR could swap a file in between; but such a peer can delete that file
//! itself, and in a sticky DIR it cannot rename files it does not own. So the window gives
//! nobody a way to delete what they could not already.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

/// The manifest's name in DIR (hidden, and not an environment name, so never a secret's).
pub const NAME: &str = ".ecs-secrets-files";
const HEADER: &str = "ecs-secrets files v1";
/// Far more than any path holds (a line is under 100 bytes); bounds what a forged file costs.
const MAX_BYTES: u64 = 8 << 20;

/// One file a run created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u64,
    pub size: u64,
}

impl Entry {
    /// The identity of the file open at `fd`, to be known as `name`.
    pub fn of(name: &str, fd: &OwnedFd) -> std::result::Result<Entry, Errno> {
        let st = fstat(fd)?;
        Ok(Entry {
            name: name.to_string(),
            ino: st.st_ino,
            size: st.st_size as u64,
        })
    }

    fn matches(&self, st: &FileStat) -> bool {
        is_regular(st)
            && st.st_mode & 0o7777 == 0o400
            && st.st_ino == self.ino
            && st.st_size as u64 == self.size
    }
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// A name a run may have created: a file name (`files::is_file_name`: an environment name,
/// or a `--template` DEST's), or a temporary `.NAME.ecs-secrets-<hex>`. Never `/`, `.` or
/// `..`.
fn valid_name(n: &str) -> bool {
    let env = super::files::is_file_name;
    if env(n) {
        return true;
    }
    n.strip_prefix('.')
        .and_then(|t| t.rsplit_once(".ecs-secrets-"))
        .is_some_and(|(name, hex)| {
            env(name) && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// The entries an earlier run left; `None` when there is no manifest.
pub fn read(dirfd: &OwnedFd, shown: &str) -> Result<Option<Vec<Entry>>> {
    let refuse = |why: &str| {
        Error::usage(format!(
            "{shown}/{NAME} {why}: that name is where ecs-secrets records the files it \
             wrote; remove it (ecs-secrets then cannot know which older files are its own, and \
             leaves them)"
        ))
    };
    // O_NONBLOCK: a FIFO planted at the name must not hang the start.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(dirfd, NAME, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(refuse("is a symbolic link")),
        Err(e) => return Err(refuse(&format!("cannot be read ({})", e.desc()))),
    };
    let st = fstat(&fd).map_err(|e| refuse(&format!("cannot be read ({})", e.desc())))?;
    if !is_regular(&st) {
        return Err(refuse("is not a regular file"));
    }
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(refuse(
            "was not written by this user (another owner, or writable by others)",
        ));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|_| refuse("is not a manifest (unreadable or not text)"))?;
    parse(&text)
        .map(Some)
        .ok_or_else(|| refuse("is not a manifest ecs-secrets can read"))
}

fn parse(text: &str) -> Option<Vec<Entry>> {
    if text.len() as u64 > MAX_BYTES {
        return None;
    }
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    lines
        .map(|l| {
            let mut f = l.split(' ');
            let (name, ino, size) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || !valid_name(name) {
                return None;
            }
            Some(Entry {
                name: name.to_string(),
                ino: ino.parse().ok()?,
                size: size.parse().ok()?,
            })
        })
        .collect()
}

fn render(entries: &[Entry]) -> String {
    let mut out = format!("{HEADER}\n");
    for e in entries {
        out.push_str(&format!("{} {} {}\n", e.name, e.ino, e.size));
    }
    out
}

/// Replace the manifest with `entries`, atomically (temporary file, fsync, rename).
pub fn write(dirfd: &OwnedFd, shown: &str, entries: &[Entry]) -> Result<()> {
    let fail = |e: Errno| {
        Error::io(format!(
            "cannot record the files written in --files {shown}/{NAME}: {}",
            e.desc()
        ))
    };
    let tmp = temp_name()?;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dirfd, tmp.as_str(), flags, Mode::from_bits_truncate(0o400)).map_err(fail)?;
    let written = (|| {
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o400))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(render(entries).as_bytes())
            .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))?;
        fsync(&f)?;
        renameat(dirfd, tmp.as_str(), dirfd, NAME)
    })();
    if let Err(e) = written {
        let _ = unlinkat(dirfd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(fail(e));
    }
    Ok(())
}

/// Remove the manifest (when DIR itself is being removed).
pub fn remove(dirfd: &OwnedFd) {
    let _ = unlinkat(dirfd, NAME, UnlinkatFlags::NoRemoveDir);
}

fn temp_name() -> Result<String> {
    let mut rnd = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd)
        .map_err(|_| Error::io("the system random number generator failed"))?;
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{NAME}.{hex}"))
}

/// What became of a file an earlier run wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Nothing is at the name any more.
    Gone,
    /// Something else is at the name now: not ours, left alone.
    NotOurs,
}

/// Remove `e` if it is still the file that run wrote.
pub fn remove_if_ours(dirfd: &OwnedFd, e: &Entry) -> std::result::Result<Removal, Errno> {
    let name = OsStr::from_bytes(e.name.as_bytes());
    match fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(Removal::Gone),
        Err(err) => Err(err),
        Ok(st) if !e.matches(&st) => Ok(Removal::NotOurs),
        Ok(_) => match unlinkat(dirfd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(Removal::Removed),
            Err(Errno::ENOENT) => Ok(Removal::Gone),
            Err(err) => Err(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let e = vec![
            Entry {
                name: "DB".into(),
                ino: 7,
                size: 3,
            },
            Entry {
                name: ".DB.ecs-secrets-00ff".into(),
                ino: 8,
                size: 0,
            },
        ];
        assert_eq!(parse(&render(&e)), Some(e));
        for bad in [
            "",
            "nope\n",
            "ecs-secrets files v1\n../etc/passwd 1 1\n",
            "ecs-secrets files v1\na/b 1 1\n",
            "ecs-secrets files v1\n. 1 1\n",
            "ecs-secrets files v1\n.. 1 1\n",
            "ecs-secrets files v1\nX 1\n",
            "ecs-secrets files v1\nX 1 1 1\n",
            "ecs-secrets files v1\nX -1 1\n",
            "ecs-secrets files v1\n.X.ecs-secrets- 1 1\n",
            "ecs-secrets files v1\n.ecs-secrets-files 1 1\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
