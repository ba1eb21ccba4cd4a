//! Scratch directories on a chosen filesystem (tmpfs or disk), for the tests that care which
//! filesystem a directory is on (`--files`, the container tests).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The filesystem type of `p` (statfs f_type).
pub fn fs_magic(p: &Path) -> i64 {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path and a zeroed out-buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statfs {}", p.display());
    st.f_type as i64
}

/// A directory made with mkdtemp(3) under `base`, mode 0755 (traversable by a `--user`
/// target), removed on drop — kept, and its path printed, when the test panics.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn under(base: &Path, tag: &str) -> Scratch {
        std::fs::create_dir_all(base).unwrap();
        let t = CString::new(
            base.join(format!("ecs-secrets-{tag}-XXXXXX"))
                .as_os_str()
                .as_bytes(),
        )
        .unwrap();
        let mut buf = t.into_bytes_with_nul();
        // SAFETY: a writable NUL-terminated template ending in XXXXXX.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
        assert!(!p.is_null(), "mkdtemp: {}", std::io::Error::last_os_error());
        buf.pop();
        let path = PathBuf::from(OsStr::from_bytes(&buf));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(path)
    }

    /// On /dev/shm, which must be tmpfs (it is on Linux hosts and in containers).
    pub fn shm(tag: &str) -> Scratch {
        let shm = Path::new("/dev/shm");
        assert_eq!(
            fs_magic(shm),
            TMPFS_MAGIC,
            "these tests need /dev/shm to be a tmpfs"
        );
        Scratch::under(shm, tag)
    }

    /// Under the target dir, which must not be tmpfs.
    pub fn disk(tag: &str) -> Scratch {
        let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), tag);
        assert_ne!(
            fs_magic(&s.0),
            TMPFS_MAGIC,
            "{} must be on disk for this test",
            s.0.display()
        );
        s
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
