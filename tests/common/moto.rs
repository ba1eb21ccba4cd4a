//! `moto_server` (a fake AWS: SSM, KMS, DynamoDB, STS, ... on one port) as a
//! child process on a free loopback port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::TempDir;

pub const MOTO_MISSING: &str =
    "moto_server not found on PATH: install it with `pip install 'moto[server]'` (or run .ci/run)";

/// How long moto may take to start answering (Python start-up is slow on a
/// loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts when the chosen port was taken between picking and binding it.
const PORT_ATTEMPTS: usize = 5;

/// A running `moto_server`. The shared one ([`moto()`]) lives until the test
/// process exits; one from [`fresh_moto()`] is killed when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    /// moto's combined stdout/stderr.
    pub log: PathBuf,
    kill: Option<mpsc::Sender<()>>,
    supervisor: Option<JoinHandle<()>>,
    dir: Option<TempDir>,
}

impl Moto {
    /// The whole log so far (e.g. to print in a failing test).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wipes all of moto's state (every service, every region).
    pub fn reset_state(&self) {
        let url = format!("{}/moto-api/reset", self.endpoint);
        let r = super::http_request("POST", &url, &[], b"").expect("POST /moto-api/reset");
        assert_eq!(r.status, 200, "moto reset: {}", r.text());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(tx) = self.kill.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.as_mut() {
                dir.keep();
                eprintln!("moto_server log kept at {}", self.log.display());
            }
        }
    }
}

/// The moto shared by all tests of this test binary, started on first use.
/// Tests sharing it must isolate themselves by name, see [`super::unique_path`].
/// Panics (in every test that calls it) if moto cannot be started.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    let m = MOTO.get_or_init(|| {
        let mut m = start(TempDir::new("moto"))?;
        // Statics are never dropped: clean the log dir at process exit.
        if let Some(dir) = m.dir.take() {
            dir.remove_at_exit();
        }
        eprintln!(
            "shared moto_server at {} (log {})",
            m.endpoint,
            m.log.display()
        );
        Ok(m)
    });
    match m {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// A private moto for tests that need an empty server or exact global counts.
/// Killed on drop; its log is kept (and its path printed) if the test panics.
pub fn fresh_moto() -> Moto {
    start(TempDir::new("moto")).unwrap_or_else(|e| panic!("{e}"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn free_port() -> u16 {
    // The kernel hands out an unused ephemeral port; it is released again
    // when the listener drops, so someone may grab it before moto binds it.
    // start() retries in that case.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A private moto serving HTTPS with this certificate and key (PEM files), at
/// `https://127.0.0.1:PORT`. Killed on drop.
pub fn fresh_moto_tls(cert: &Path, key: &Path) -> Moto {
    start_with(TempDir::new("moto-tls"), Some((cert, key))).unwrap_or_else(|e| panic!("{e}"))
}

fn start(dir: TempDir) -> Result<Moto, String> {
    start_with(dir, None)
}

fn start_with(dir: TempDir, tls: Option<(&Path, &Path)>) -> Result<Moto, String> {
    let exe = find_on_path("moto_server").unwrap_or_else(|| panic!("{MOTO_MISSING}"));
    let mut errors = String::new();
    for attempt in 1..=PORT_ATTEMPTS {
        let port = free_port();
        let log = dir.join(format!("moto-{port}.log"));
        let child = Supervised::spawn(&exe, port, &log, tls)?;
        match wait_ready(port, &child, &log, tls.is_some()) {
            Ok(()) => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                return Ok(Moto {
                    endpoint: format!("{scheme}://127.0.0.1:{port}"),
                    port,
                    log,
                    kill: Some(child.kill),
                    supervisor: Some(child.thread),
                    dir: Some(dir),
                });
            }
            Err(e) => {
                child.stop();
                let tail = log_tail(&log);
                errors.push_str(&format!(
                    "attempt {attempt} (port {port}): {e}\n--- {} ---\n{tail}\n",
                    log.display()
                ));
                // Only a lost race for the port is worth another try.
                if !tail.contains("Address already in use") {
                    break;
                }
            }
        }
    }
    let mut dir = dir;
    dir.keep();
    Err(format!("moto_server did not start:\n{errors}"))
}

/// moto running under a dedicated, never-ending thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
/// not the process, so the child must be spawned from a thread that lives as
/// long as the child should: it then dies with the test process, even on
/// SIGKILL or abort, and never outlives it as an orphan.
struct Supervised {
    kill: mpsc::Sender<()>,
    thread: JoinHandle<()>,
    exited: Arc<Mutex<Option<ExitStatus>>>,
}

impl Supervised {
    fn spawn(
        exe: &Path,
        port: u16,
        log: &Path,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Supervised, String> {
        let out =
            std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key)) = tls {
            cmd.arg("-c").arg(cert).arg("-k").arg(key);
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }

        let (kill_tx, kill_rx) = mpsc::channel::<()>();
        let (spawned_tx, spawned_rx) = mpsc::channel::<Result<(), String>>();
        let exited = Arc::new(Mutex::new(None));
        let exited2 = exited.clone();
        let thread = std::thread::Builder::new()
            .name(format!("moto-{port}"))
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = spawned_tx.send(Err(format!("spawn moto_server: {e}")));
                        return;
                    }
                };
                let _ = spawned_tx.send(Ok(()));
                loop {
                    match kill_rx.recv_timeout(Duration::from_millis(100)) {
                        // Asked to stop, or the owning Moto is gone.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            let _ = child.kill();
                            let status = child.wait().ok();
                            *exited2.lock().unwrap_or_else(|e| e.into_inner()) = status;
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if let Ok(Some(status)) = child.try_wait() {
                                *exited2.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                                eprintln!("moto_server on port {port} exited: {status}");
                                // Nothing left to supervise; wait to be told to go.
                                let _ = kill_rx.recv();
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| format!("spawn moto supervisor thread: {e}"))?;
        match spawned_rx.recv() {
            Ok(Ok(())) => Ok(Supervised {
                kill: kill_tx,
                thread,
                exited,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("moto supervisor thread died".into()),
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        *self.exited.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(self) {
        let _ = self.kill.send(());
        let _ = self.thread.join();
    }
}

/// Waits until *our* moto answers HTTP on `port`.
///
/// An HTTP answer alone is not proof: if someone else took the port, moto
/// exits with "Address already in use" while the squatter answers. So also
/// require werkzeug's "Running on" line (printed only after its bind
/// succeeded) and that the child is still alive.
///
/// Over TLS, the plain-HTTP probe cannot answer: a TCP connection must do.
fn wait_ready(port: u16, child: &Supervised, log: &Path, tls: bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(status) = child.exit_status() {
            return Err(format!("moto_server exited during start-up: {status}"));
        }
        let bound = std::fs::read_to_string(log).is_ok_and(|l| l.contains("Running on"));
        let up = if tls {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        } else {
            answers(addr)
        };
        if bound && up && child.exit_status().is_none() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no answer within {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `GET /moto-api/` (moto's dashboard) expecting an HTTP 200.
fn answers(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < buf.len() {
            match s.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    attempt().unwrap_or(false)
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    // Do not cut a UTF-8 sequence in half.
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}
