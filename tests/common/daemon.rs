//! A running `ecs-secrets daemon` for the tests: start it, talk HTTP to it, signal it, read
//! its stderr, stop it.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ecs, http_request, HttpResponse};

/// `ecs-secrets daemon` as a child process on a loopback port; killed on drop.
pub struct DaemonProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl DaemonProcess {
    /// `ecs-secrets daemon --path PATH --listen 127.0.0.1:0 ARGS…` against `endpoint`;
    /// returns once it printed its `listening on ADDR` line (panics if it does not).
    pub fn start(endpoint: &str, path: &str, args: &[&str]) -> DaemonProcess {
        let mut cmd = ecs(endpoint);
        cmd.args(["daemon", "--path", path, "--listen", "127.0.0.1:0"])
            .args(args);
        DaemonProcess::spawn(cmd)
    }

    /// Starts `cmd` (a `daemon` command line) and waits for its `listening on ADDR` line.
    pub fn spawn(mut cmd: Command) -> DaemonProcess {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only prctl between fork and exec. The daemon dies with this test thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn ecs-secrets daemon");
        let err = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let buf = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("ecs-secrets: listening on ") {
                    let _ = tx.send(a.to_string());
                }
                let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                b.push_str(&line);
                b.push('\n');
            }
        });
        let mut d = DaemonProcess {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            stderr,
            reader: Some(reader),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => d.addr = a.parse().expect("listening address"),
            Err(_) => {
                let status = d.kill();
                panic!(
                    "the daemon did not start ({status:?})\n--- stderr ---\n{}",
                    d.stderr()
                );
            }
        }
        assert!(d.addr.ip().is_loopback(), "{}", d.addr);
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One request on its own connection (10 s I/O timeout: a hang is an `Err`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        http_request(method, &self.url(path), headers, body)
    }

    pub fn get(&self, path: &str) -> io::Result<HttpResponse> {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &str) -> io::Result<HttpResponse> {
        self.request("POST", path, &[], body.as_bytes())
    }

    /// What the daemon printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, wait for the exit (10 s at most, then SIGKILL), and return all of stderr.
    pub fn stop(mut self) -> String {
        if let Some(child) = self.child.as_mut() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
        self.stderr()
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Waits up to `limit` for the daemon to exit; its status, or `None` if it did not.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                self.child = None;
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL (if still running) and reap; the exit status when there was a process.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let status = self.child.take().and_then(|mut child| {
            let _ = child.kill();
            child.wait().ok()
        });
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
