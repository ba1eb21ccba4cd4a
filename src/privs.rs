//! `--user USER[:GROUP]`: resolve (names through the image's /etc/passwd and /etc/group,
//! numbers without them), then drop in the order setgroups → setgid → setuid.
//!
//! The files are parsed here rather than through getpwnam(3): in a static glibc binary the
//! NSS machinery behind getpwnam is unreliable, and the image's files are the truth anyway.

use crate::error::{Error, Result};
use crate::names::printable;
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use std::path::Path;

/// A resolved target identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uid: u32,
    pub gid: u32,
    /// Every group the process will be in (the primary gid included), for setgroups.
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolve `USER[:GROUP]` before anything is written, so an unknown user fails early.
/// Refuses when not running as root: only root can change identity, and finding out after
/// the secrets were fetched and written would be too late.
pub fn resolve(spec: &str) -> Result<Target> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(Error::usage(format!(
            "--user {} needs root, but ecs-secrets runs as uid {euid}: run the container as \
             root (no USER instruction, no \"user\" in the task definition) and let --user drop \
             privileges, or remove --user",
            printable(spec)
        )));
    }
    lookup(spec, Path::new("/etc"))
}

/// Resolve `spec` against the passwd and group files in `etc`.
///
/// * `NAME` — the passwd entry: its uid, primary gid and home; supplementary groups are the
///   groups of /etc/group that list NAME as a member.
/// * `UID` — no files needed. When /etc/passwd has an entry for UID, its primary gid and home
///   are used; otherwise gid = UID (never silently the root group) and HOME=/.
/// * `:GROUP` (name or number) sets the only group: no supplementary groups, like su-exec.
pub fn lookup(spec: &str, etc: &Path) -> Result<Target> {
    let shown = printable(spec);
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(Error::usage(format!(
            "invalid --user {shown:?}: use USER or USER:GROUP (names or numbers)"
        )));
    }
    let passwd_path = etc.join("passwd");
    let group_path = etc.join("group");

    let mut t = match numeric(user, "uid", &shown)? {
        Some(uid) => {
            // Numbers need no files; an entry, when there is one, supplies gid and home.
            let text = read_optional(&passwd_path)?.unwrap_or_default();
            let entry = passwd_entries(&text).find(|p| p.uid == uid);
            match entry {
                Some(p) => Target {
                    uid,
                    gid: p.gid,
                    groups: vec![p.gid],
                    home: home_or_root(p.home),
                },
                None => Target {
                    uid,
                    gid: uid,
                    groups: vec![uid],
                    home: "/".into(),
                },
            }
        }
        None => {
            let text = read_required(&passwd_path, || {
                format!(
                    "--user {shown}: this image has no {} to look the name up in; give numbers \
                     instead (e.g. --user 1000:1000) or add the user to the image",
                    passwd_path.display()
                )
            })?;
            let p = passwd_entries(&text)
                .find(|p| p.name == user)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "unknown user \"{}\" in --user {shown}: not in {}; add it to the image or \
                     give a numeric uid",
                        printable(user),
                        passwd_path.display()
                    ))
                })?;
            let mut groups = vec![p.gid];
            if group.is_none() {
                if let Some(text) = read_optional(&group_path)? {
                    for g in group_entries(&text) {
                        if g.members.contains(&user) && !groups.contains(&g.gid) {
                            groups.push(g.gid);
                        }
                    }
                }
            }
            Target {
                uid: p.uid,
                gid: p.gid,
                groups,
                home: home_or_root(p.home),
            }
        }
    };

    if let Some(group) = group {
        let gid = match numeric(group, "gid", &shown)? {
            Some(gid) => gid,
            None => {
                let text = read_required(&group_path, || {
                    format!(
                        "--user {shown}: this image has no {} to look the group name up in; \
                         give a numeric gid instead (e.g. --user {}:1000)",
                        group_path.display(),
                        printable(user)
                    )
                })?;
                let found = group_entries(&text)
                    .find(|g| g.name == group)
                    .map(|g| g.gid);
                found.ok_or_else(|| {
                    Error::usage(format!(
                        "unknown group \"{}\" in --user {shown}: not in {}; add it to the image \
                         or give a numeric gid",
                        printable(group),
                        group_path.display()
                    ))
                })?
            }
        };
        t.gid = gid;
        t.groups = vec![gid];
    }
    Ok(t)
}

fn home_or_root(home: &str) -> String {
    if home.is_empty() {
        "/".into()
    } else {
        home.into()
    }
}

/// `Some(n)` for an all-digit id; an out-of-range number is an error (u32::MAX means "no
/// change" to the set*id calls and must never be a target).
fn numeric(s: &str, what: &str, shown: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n != u32::MAX => Ok(Some(n)),
        _ => Err(Error::usage(format!(
            "invalid --user {shown}: {what} {s} is out of range (0 to 4294967294)"
        ))),
    }
}

/// The most of /etc/passwd or /etc/group read: far above any real file (a 100 000-user
/// passwd is about 6 MiB), and a bound on what a forged image can make us read.
const MAX_ETC_FILE: u64 = 16 << 20;

/// The file's text, or `None` when it does not exist. Only a regular file (after following
/// symlinks) of at most [`MAX_ETC_FILE`] bytes is read: a FIFO, a device or a link to
/// `/proc/self/fd/0` could block for ever, before and outside `--timeout`. It is opened
/// non-blocking (so opening a FIFO that changed places meanwhile cannot block either) and
/// checked again through the open descriptor.
fn read_optional(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let cannot = |e: &dyn std::fmt::Display| {
        Error::io(format!(
            "cannot read {}: {e}; --user reads it only as a regular file of at most {} MiB (or \
             goes without it when it does not exist)",
            path.display(),
            MAX_ETC_FILE >> 20
        ))
    };
    let not_regular = |t: std::fs::FileType| {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        cannot(&format!("it is {kind}, not a regular file"))
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(not_regular(m.file_type())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(&e)),
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| cannot(&e))?;
    let m = file.metadata().map_err(|e| cannot(&e))?;
    if !m.is_file() {
        return Err(not_regular(m.file_type()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ETC_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > MAX_ETC_FILE {
        return Err(cannot(&format!(
            "it is larger than {} MiB",
            MAX_ETC_FILE >> 20
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn read_required(path: &Path, missing: impl FnOnce() -> String) -> Result<String> {
    read_optional(path)?.ok_or_else(|| Error::usage(missing()))
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// `name:password:uid:gid:gecos:home:shell` lines. Comments, blank, malformed and NIS
/// (`+`/`-`) lines are skipped.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        if line.starts_with(['#', '+', '-']) {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0].is_empty() {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// `name:password:gid:member,member` lines.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        if line.starts_with(['#', '+', '-']) {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].is_empty() {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect(),
        })
    })
}

/// Drop to `t`: setgroups → setgid → setuid (real, effective and saved ids alike), then
/// check that nothing was left behind. Never leaves the process half-dropped: any failure is
/// returned, and the caller must then exit without starting the command.
pub fn drop_to(t: &Target) -> Result<()> {
    let fail = |step: &str, e: Errno| {
        Error::io(format!(
            "cannot drop privileges to uid {} gid {}: {step} failed: {e}; the container needs \
             the SETUID and SETGID capabilities (do not drop them in linuxParameters.capabilities); \
             the command was not started",
            t.uid, t.gid
        ))
    };
    let groups: Vec<Gid> = t.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    let gid = Gid::from_raw(t.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    let uid = Uid::from_raw(t.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    verify(t)
}

/// After the drop: real, effective and saved ids are the target's, the group list is exactly
/// the target's, and (for a non-root target) root cannot be regained.
fn verify(t: &Target) -> Result<()> {
    let bad = |what: String| {
        Error::io(format!(
            "privileges were not fully dropped to uid {} gid {} ({what}); refusing to start \
             the command",
            t.uid, t.gid
        ))
    };
    let r = nix::unistd::getresuid().map_err(|e| bad(format!("getresuid: {e}")))?;
    let ids = [r.real, r.effective, r.saved].map(Uid::as_raw);
    if ids != [t.uid; 3] {
        return Err(bad(format!("uids are now {ids:?}")));
    }
    let r = nix::unistd::getresgid().map_err(|e| bad(format!("getresgid: {e}")))?;
    let ids = [r.real, r.effective, r.saved].map(Gid::as_raw);
    if ids != [t.gid; 3] {
        return Err(bad(format!("gids are now {ids:?}")));
    }
    let mut have: Vec<u32> = nix::unistd::getgroups()
        .map_err(|e| bad(format!("getgroups: {e}")))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    let mut want = t.groups.clone();
    have.sort_unstable();
    have.dedup();
    want.sort_unstable();
    want.dedup();
    if have != want {
        return Err(bad(format!("groups are now {have:?}")));
    }
    if t.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(bad("root could be regained".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch `etc` directory, removed on drop.
    struct Etc(std::path::PathBuf);
    impl Drop for Etc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    impl std::ops::Deref for Etc {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn etc(passwd: Option<&str>, group: Option<&str>) -> Etc {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "ecs-secrets-privs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        if let Some(p) = passwd {
            std::fs::write(d.join("passwd"), p).unwrap();
        }
        if let Some(g) = group {
            std::fs::write(d.join("group"), g).unwrap();
        }
        Etc(d)
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        +nis\n\
        broken:line\n\
        app:x:1000:1001:App:/home/app:/bin/sh\n\
        nohome:x:1002:1002:::/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        appgrp:x:1001:\n\
        audio:x:29:app,other\n\
        video:x:44: other , app \n\
        staff:x:50:other\n\
        nohome:x:1002:\n";

    #[test]
    fn names_use_passwd_home_and_supplementary_groups() {
        let d = etc(Some(PASSWD), Some(GROUP));
        let t = lookup("app", &d).unwrap();
        assert_eq!((t.uid, t.gid, t.home.as_str()), (1000, 1001, "/home/app"));
        assert_eq!(t.groups, vec![1001, 29, 44]);
        let t = lookup("nohome", &d).unwrap();
        assert_eq!((t.uid, t.home.as_str()), (1002, "/"));
    }

    #[test]
    fn an_explicit_group_is_the_only_group() {
        let d = etc(Some(PASSWD), Some(GROUP));
        let t = lookup("app:staff", &d).unwrap();
        assert_eq!((t.uid, t.gid, t.groups.clone()), (1000, 50, vec![50]));
        let t = lookup("app:7", &d).unwrap();
        assert_eq!((t.gid, t.groups.clone()), (7, vec![7]));
        let e = lookup("app:nogroup", &d).unwrap_err().to_string();
        assert!(e.contains("unknown group \"nogroup\""), "{e}");
    }

    #[test]
    fn numbers_need_no_files() {
        let d = etc(None, None);
        let t = lookup("65534:65534", &d).unwrap();
        assert_eq!(
            t,
            Target {
                uid: 65534,
                gid: 65534,
                groups: vec![65534],
                home: "/".into()
            }
        );
        // No entry, no group: the gid is the uid, never the root group.
        let t = lookup("4242", &d).unwrap();
        assert_eq!((t.uid, t.gid, t.groups.clone()), (4242, 4242, vec![4242]));
        // An entry, when present, gives gid and home.
        let d = etc(Some(PASSWD), Some(GROUP));
        let t = lookup("1000", &d).unwrap();
        assert_eq!((t.gid, t.home.as_str()), (1001, "/home/app"));
        assert_eq!(t.groups, vec![1001]);
    }

    #[test]
    fn unknown_or_unresolvable_names_are_refused_clearly() {
        let d = etc(Some(PASSWD), Some(GROUP));
        let e = lookup("nosuch", &d).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("unknown user \"nosuch\""), "{e}");
        let d = etc(None, None);
        let e = lookup("app", &d).unwrap_err().to_string();
        assert!(e.contains("passwd") && e.contains("numbers"), "{e}");
        let e = lookup("1:staff", &d).unwrap_err().to_string();
        assert!(e.contains("group") && e.contains("numeric gid"), "{e}");
        for bad in ["4294967295", "99999999999", ":1", "1:"] {
            assert!(lookup(bad, &d).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let d = etc(None, Some(GROUP));
        // A FIFO nobody writes to: refused at once, not waited on.
        nix::unistd::mkfifo(
            &d.join("passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        for spec in ["app", "1000"] {
            let e = lookup(spec, &d).unwrap_err().to_string();
            assert!(e.contains("a FIFO, not a regular file"), "{e}");
        }
        std::fs::remove_file(d.join("passwd")).unwrap();
        // A directory, and a symlink to one.
        std::fs::create_dir(d.join("passwd")).unwrap();
        assert!(lookup("1000", &d).is_err());
        std::fs::remove_dir(d.join("passwd")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("passwd")).unwrap();
        let e = lookup("1000", &d).unwrap_err().to_string();
        assert!(e.contains("a device"), "{e}");
        std::fs::remove_file(d.join("passwd")).unwrap();
        // A symlink to a regular file is followed; a dangling one is a missing file.
        std::fs::write(d.join("real"), PASSWD).unwrap();
        std::os::unix::fs::symlink("real", d.join("passwd")).unwrap();
        assert_eq!(lookup("app", &d).unwrap().uid, 1000);
        std::fs::remove_file(d.join("passwd")).unwrap();
        std::os::unix::fs::symlink("nowhere", d.join("passwd")).unwrap();
        assert_eq!(lookup("4242", &d).unwrap().gid, 4242);
        std::fs::remove_file(d.join("passwd")).unwrap();
        // Larger than the bound (sparse: nothing is written to disk).
        std::fs::write(d.join("passwd"), PASSWD).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("passwd"))
            .unwrap();
        f.set_len(MAX_ETC_FILE + 1).unwrap();
        let e = lookup("app", &d).unwrap_err().to_string();
        assert!(e.contains("larger than 16 MiB"), "{e}");
        f.set_len(MAX_ETC_FILE).unwrap();
        assert_eq!(lookup("app", &d).unwrap().uid, 1000);
        // /etc/group too.
        std::fs::remove_file(d.join("group")).unwrap();
        nix::unistd::mkfifo(
            &d.join("group"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let e = lookup("app", &d).unwrap_err().to_string();
        assert!(e.contains("group") && e.contains("FIFO"), "{e}");
        let e = lookup("1000:staff", &d).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
    }
}
