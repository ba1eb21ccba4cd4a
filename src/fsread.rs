//! Reading a file whose path comes from outside (an environment variable, a flag, a
//! directory listing): a regular file only, of bounded size, opened so that nothing can
//! block.
//!
//! A FIFO, a device (`/dev/zero`, a tty) or a link to `/proc/self/fd/0` named where a file is
//! expected would block for ever or grow without end, before and outside `--timeout`, which
//! cannot interrupt a synchronous read. So: the path is `stat`ed first (a non-regular file is
//! never opened: opening some devices has effects), opened `O_NONBLOCK | O_NOCTTY` (a FIFO
//! put there meanwhile returns at once instead of waiting for a writer), `fstat`ed again
//! through the descriptor (what is read is what was checked), its size compared with the
//! cap before a byte is read, and at most `cap + 1` bytes are read (a file that grows while
//! read is caught too). A regular local file of bounded size is read in bounded time.
//!
//! Symlinks are followed (Kubernetes and Docker secrets, /etc/ssl/certs entries are links);
//! a caller that cares who owns the link checks it with [`link_owner`].
//!
//! A leaf: depends on nothing in the crate.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Why a file was not read. Its `Display` is a clause to follow "cannot read PATH: ".
#[derive(Debug)]
pub enum FileError {
    /// It does not exist.
    Missing,
    /// It is not a regular file: what it is ("a FIFO", "a directory", …).
    NotRegular(&'static str),
    /// It is larger than the cap (its size, the cap).
    TooLarge(u64, u64),
    /// Any other failure to open, stat or read it.
    Io(std::io::Error),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Missing => write!(f, "it does not exist"),
            FileError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            FileError::TooLarge(size, cap) => write!(
                f,
                "it is larger than {} ({}): too large for what it should hold",
                bytes(*cap),
                bytes(*size)
            ),
            FileError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FileError {}

/// `n` bytes in the unit a person would use.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn io(e: std::io::Error) -> FileError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FileError::Missing
    } else {
        FileError::Io(e)
    }
}

/// What a non-regular file is, for messages.
pub fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (symlinks followed) if it is a regular file of at most `cap` bytes, without
/// reading it: the open file and its metadata (from the descriptor).
pub fn open_regular(path: &Path, cap: u64) -> Result<(File, Metadata), FileError> {
    let m = std::fs::metadata(path).map_err(io)?;
    if !m.is_file() {
        return Err(FileError::NotRegular(kind(m.file_type())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let m = file.metadata().map_err(io)?;
    if !m.is_file() {
        return Err(FileError::NotRegular(kind(m.file_type())));
    }
    if m.len() > cap {
        return Err(FileError::TooLarge(m.len(), cap));
    }
    Ok((file, m))
}

/// The bytes of `path` if it is a regular file of at most `cap` bytes (see the module docs).
/// The buffer is wiped when dropped: these files may hold tokens.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let (file, m) = open_regular(path, cap)?;
    read_open(file, &m, cap)
}

/// Reads an already checked file (from [`open_regular`]) to its end, at most `cap` bytes.
pub fn read_open(file: File, m: &Metadata, cap: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    // Room for one byte more than the size, so that the usual read needs no reallocation
    // (a reallocation would leave an unwiped copy behind).
    let want = m.len().min(cap) as usize + 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(want));
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(FileError::Io)?;
    if buf.len() as u64 > cap {
        return Err(FileError::TooLarge(buf.len() as u64, cap));
    }
    Ok(buf)
}

/// The owner (uid) of `path` itself when it is a symbolic link, else `None`.
pub fn link_owner(path: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    Ok(m.file_type().is_symlink().then(|| m.uid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("ecs-secrets-fsread-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_regular_files_up_to_the_cap_and_refuses_the_rest_without_blocking() {
        let d = dir("basic");
        let f = d.join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(&read_bounded(&f, 5).unwrap()[..], b"12345");
        let e = read_bounded(&f, 4).unwrap_err();
        assert!(matches!(e, FileError::TooLarge(5, 4)), "{e}");
        assert!(matches!(
            read_bounded(&d.join("missing"), 9),
            Err(FileError::Missing)
        ));
        assert!(matches!(
            read_bounded(&d, 9),
            Err(FileError::NotRegular("a directory"))
        ));
        // A FIFO with no writer: refused at once (a plain open would wait for ever).
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&fifo, 9).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
        for dev in ["/dev/zero", "/dev/null"] {
            assert!(matches!(
                read_bounded(Path::new(dev), 9),
                Err(FileError::NotRegular("a device"))
            ));
        }
        // A sparse file far over the cap: refused by its size, nothing read.
        let big = d.join("big");
        let fh = File::create(&big).unwrap();
        fh.set_len(4 << 30).unwrap();
        let t = std::time::Instant::now();
        let e = read_bounded(&big, 1 << 20).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            e.to_string(),
            "it is larger than 1 MiB (4096 MiB): too large for what it should hold"
        );
        // Through a symlink: read, and the link's owner is known.
        let link = d.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(&read_bounded(&link, 9).unwrap()[..], b"12345");
        assert!(link_owner(&link).unwrap().is_some());
        assert_eq!(link_owner(&f).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
