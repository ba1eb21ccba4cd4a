//! stderr diagnostics. One prefix, one line each. Nothing here is ever given a payload.
//!
//! While CMD runs (`exec --refresh`), and in the long-running `sync --refresh` and `daemon`,
//! a line must never block the process nor reach CMD, whatever stderr is: a pipe whose
//! reader is gone, a full pipe whose reader stalls (a log router restarting), a stopped
//! terminal. [`never_block`] switches every line to a write that cannot block: a line that
//! cannot be written at once is dropped. O_NONBLOCK cannot be set on stderr itself: the
//! open file description is shared with CMD, whose own writes would then fail with EAGAIN.
//! So a pipe or a terminal is opened again through /proc/self/fd/2 (a description of our
//! own, non-blocking, closed on exec), a socket is written with MSG_DONTWAIT, and a regular
//! file (which does not block) as it is. SIGPIPE is ignored in those processes (see
//! `supervise::signals`), so a closed pipe is only EPIPE.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static DEBUG: AtomicBool = AtomicBool::new(false);

/// The longest line written, its newline included: at most PIPE_BUF, so that a line on a
/// pipe is written whole or not at all, never interleaved with CMD's output.
const MAX_LINE: usize = 4096;

enum Sink {
    /// A pipe or terminal opened again, non-blocking.
    Own(OwnedFd),
    /// A socket: send(2) with MSG_DONTWAIT.
    Socket,
    /// Anything else (a regular file, /dev/null): written as it is.
    Plain,
    /// A pipe or terminal that could not be opened again (no /proc, a FIFO with no
    /// reader): written only when poll(2) says it has room.
    Poll,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// From now on, no line blocks: see the module's comment. Call once, before CMD starts.
pub fn never_block() {
    SINK.get_or_init(open_sink);
}

fn open_sink() -> Sink {
    // SAFETY: fstat into a struct we own.
    let stat = |fd: i32| unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st)
    };
    let Some(st) = stat(2) else {
        return Sink::Plain;
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Sink::Socket,
        libc::S_IFIFO | libc::S_IFCHR => {
            // SAFETY: open(2) of a NUL-terminated literal path.
            let fd = unsafe {
                libc::open(
                    c"/proc/self/fd/2".as_ptr(),
                    libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
                )
            };
            if fd < 0 {
                return Sink::Poll;
            }
            // SAFETY: a descriptor we just opened and own.
            let own = unsafe { OwnedFd::from_raw_fd(fd) };
            match stat(fd) {
                // The same pipe or terminal (not a path that now names something else).
                Some(s) if s.st_dev == st.st_dev && s.st_ino == st.st_ino => Sink::Own(own),
                _ => Sink::Poll,
            }
        }
        _ => Sink::Plain,
    }
}

/// Write one whole line without blocking, or drop it.
fn write_nonblocking(sink: &Sink, line: &[u8]) {
    let mut rest = line;
    while !rest.is_empty() {
        // SAFETY: write(2)/send(2)/poll(2) from buffers we own, on descriptors that are
        // open (ours, or stderr).
        let n = unsafe {
            match sink {
                Sink::Own(fd) => libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()),
                Sink::Socket => libc::send(
                    2,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                ),
                Sink::Plain => libc::write(2, rest.as_ptr().cast(), rest.len()),
                Sink::Poll => {
                    let mut p = libc::pollfd {
                        fd: 2,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    if libc::poll(&mut p, 1, 0) != 1 || p.revents & libc::POLLOUT == 0 {
                        return;
                    }
                    libc::write(2, rest.as_ptr().cast(), rest.len())
                }
            }
        };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            // EAGAIN (full), EPIPE (no reader), anything else: the line is dropped.
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// `ecs-secrets: <kind>: <args>` (`kind` may be empty), one line.
fn line(kind: &str, args: std::fmt::Arguments<'_>) {
    let mut s = format!("ecs-secrets: {kind}{args}");
    let sink = SINK.get();
    if sink.is_some() && s.len() > MAX_LINE - 1 {
        let mut cut = MAX_LINE - 4;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s.push('\n');
    match sink {
        Some(sink) => write_nonblocking(sink, s.as_bytes()),
        None => {
            let _ = std::io::stderr().lock().write_all(s.as_bytes());
        }
    }
}

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

pub fn debug(args: std::fmt::Arguments<'_>) {
    if debug_enabled() {
        line("debug: ", args);
    }
}

pub fn warn(args: std::fmt::Arguments<'_>) {
    line("warning: ", args);
}

pub fn error(args: std::fmt::Arguments<'_>) {
    line("error: ", args);
}

/// A line that is neither a warning nor an error (`ecs-secrets: listening on …`).
pub fn info(args: std::fmt::Arguments<'_>) {
    line("", args);
}
