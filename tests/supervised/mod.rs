//! What the `--refresh` tests share: a running supervisor whose stdout (CMD's too) is read
//! line by line, and a scan of a process's memory.

// Each test binary uses a different subset.
#![allow(dead_code)]

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should take about a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `ecs-secrets exec --refresh …`; its stdout (CMD's too) line by line, its
/// stderr collected. Killed on drop (CMD dies with it: PDEATHSIG).
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub fn start(cmd: Command) -> Running {
        Running::start_with(cmd, None)
    }

    /// With stderr given (a closed or full pipe: see [`closed_pipe`], [`FullPipe`]) rather
    /// than collected.
    pub fn start_with(mut cmd: Command, stderr: Option<Stdio>) -> Running {
        let given = stderr.is_some();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.unwrap_or_else(Stdio::piped));
        // SAFETY: only prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn ecs-secrets");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take();
        assert_eq!(err.is_none(), given);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let buf = stderr.clone();
        std::thread::spawn(move || {
            let Some(err) = err else { return };
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                let mut b = buf.lock().unwrap();
                b.push_str(&l);
                b.push('\n');
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line from now on that starts with `prefix` (panics after `within`).
    pub fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {within:?}\nstdout so far: \
                     {:?}\n--- stderr ---\n{}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Every line that arrives within `d`.
    pub fn drain(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l.clone());
            got.push(l);
        }
        got
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to the process we started.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "ecs-secrets did not exit within {within:?}\nstdout: {:?}\n--- stderr \
                     ---\n{}",
                    self.seen,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ecs-secrets exec --path PATH ARGS… -- sh -c SCRIPT` against `endpoint`.
pub fn exec_sh(endpoint: &str, path: &str, args: &[&str], script: &str) -> Command {
    let mut c = ecs(endpoint);
    c.args(["exec", "--path", path])
        .args(args)
        .args(["--", "sh", "-c", script]);
    c
}

/// A CMD that says when it starts (its pid and A) and stops, and otherwise waits.
pub const START_STOP: &str = "echo \"start $$ A=$A\"; trap 'echo \"stop $$\"; exit 0' TERM; \
                          while :; do sleep 0.1; done";

/// Where `needle` occurs in the readable memory of process `pid` (names of the mappings).
pub fn find_in_memory(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if !f[1].starts_with('r') || f.get(5).is_some_and(|n| n.starts_with("[v")) {
            continue;
        }
        let (a, b) = f[0].split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            hits.push(line.to_string());
        }
    }
    hits
}

/// The write end of a pipe whose read end is closed: a log router that went away. A write
/// to it raises SIGPIPE (or fails with EPIPE when SIGPIPE is ignored).
pub fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into an array we own; the read end is closed at once, the write end
    // handed over.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

/// A pipe filled to the brim whose reader never reads (a log router that stalls): a
/// blocking write to it never returns. The read end stays open as long as this lives.
pub struct FullPipe {
    _read: std::os::fd::OwnedFd,
    write: Option<std::os::fd::OwnedFd>,
}

impl FullPipe {
    pub fn new() -> FullPipe {
        use std::os::fd::AsRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 into an array we own; both ends are owned below.
        let (r, w) = unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        let fd = w.as_raw_fd();
        // SAFETY: fcntl and write on the descriptor we own. O_NONBLOCK only while filling:
        // the process under test gets an ordinary blocking pipe.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
            let chunk = [b'x'; 4096];
            while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
            // Whatever room is left is smaller than a page: fill it byte by byte.
            while libc::write(fd, chunk.as_ptr().cast(), 1) > 0 {}
            libc::fcntl(fd, libc::F_SETFL, fl);
        }
        FullPipe {
            _read: r,
            write: Some(w),
        }
    }

    /// The write end, for a child's stderr.
    pub fn stdio(&mut self) -> Stdio {
        Stdio::from(self.write.take().expect("one child per pipe"))
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The children of `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The state letter of `pid` (`S`, `T`, `Z`, …), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}
