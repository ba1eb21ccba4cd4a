//! Running the real `ecs-secrets` binary with a scrubbed environment.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::TempDir;

/// The binary under test: the one Cargo built with the tests, or the file named by
/// `ECS_SECRETS_TEST_BIN` (to run the suite against another build, e.g. the release binary,
/// whose link options differ).
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("ECS_SECRETS_TEST_BIN") {
        Ok(path) if !path.is_empty() => {
            let path = std::fs::canonicalize(&path)
                .unwrap_or_else(|e| panic!("ECS_SECRETS_TEST_BIN={path}: {e}"));
            path.to_str().expect("UTF-8 path").to_owned()
        }
        _ => env!("CARGO_BIN_EXE_ecs-secrets").to_owned(),
    })
}

/// A directory with `ecs-secrets` in it, for a `PATH` that finds the binary under test by that
/// name (as a shell runs it): its own directory when it is called `ecs-secrets`, else a
/// directory of this process holding a link of that name to it (a release file is called
/// `ecs-secrets-VERSION-ARCH-linux`).
pub fn bin_dir() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let bin = std::path::Path::new(bin());
        if bin.file_name().is_some_and(|n| n == "ecs-secrets") {
            return bin.parent().unwrap().to_str().unwrap().to_owned();
        }
        let dir = TempDir::new("bin-dir").remove_at_exit();
        std::os::unix::fs::symlink(bin, dir.join("ecs-secrets")).unwrap();
        dir.to_str().expect("UTF-8 path").to_owned()
    })
}

/// Limit for [`run`] and [`stdin_run`]; a hung binary fails the test instead
/// of hanging the suite.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `HOME` for every scrubbed command: an empty directory of this process.
fn home() -> &'static PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| TempDir::new("home").remove_at_exit())
}

/// Applies the test environment to any command: nothing inherited, AWS
/// settings pointing at `endpoint` with static test credentials, no IMDS,
/// no shared config/credentials files, an empty `HOME`.
pub fn scrub_env<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    let home = home();
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-such-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-such-aws-credentials"),
        )
}

/// A [`Command`] for the binary under test talking to `endpoint`
/// (usually `moto().endpoint` or a `Proxy::endpoint()`).
pub fn ecs(endpoint: &str) -> Command {
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd, endpoint);
    cmd
}

/// Runs `cmd` with stdin from /dev/null; panics if it cannot start or runs
/// longer than [`DEFAULT_TIMEOUT`].
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    run_with(cmd, None, DEFAULT_TIMEOUT)
        .unwrap_or_else(|o| panic!("timed out after {DEFAULT_TIMEOUT:?}\n{}", describe(&o)))
}

/// Like [`run`], with `input` written to stdin (then closed).
#[track_caller]
pub fn stdin_run(cmd: &mut Command, input: &[u8]) -> Output {
    run_with(cmd, Some(input), DEFAULT_TIMEOUT)
        .unwrap_or_else(|o| panic!("timed out after {DEFAULT_TIMEOUT:?}\n{}", describe(&o)))
}

/// Runs `cmd`, feeding `input` (or /dev/null) to stdin and capturing
/// stdout/stderr. After `timeout` the process is killed (SIGKILL) and
/// `Err(output so far)` is returned, so tests can also assert that something
/// hangs. Panics only if the command cannot be started.
#[track_caller]
pub fn run_with(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));

    // Feed stdin and drain both pipes on threads: a child blocked writing a
    // full pipe (or reading stdin) would otherwise deadlock against us.
    let writer = input.map(|data| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // The child may exit without reading everything (EPIPE): fine.
            let _ = stdin.write_all(&data);
        })
    });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));

    let (status, timed_out) = wait_deadline(&mut child, Instant::now() + timeout);
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    if timed_out {
        Err(output)
    } else {
        Ok(output)
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn wait_deadline(child: &mut Child, deadline: Instant) -> (std::process::ExitStatus, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let status = child
                    .wait()
                    .unwrap_or_else(|_| std::process::ExitStatus::from_raw(libc::SIGKILL));
                return (status, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// Status, stdout and stderr of `out`, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts exit status 0 and returns stdout as a string.
#[track_caller]
pub fn assert_ok(out: &Output) -> String {
    assert!(out.status.success(), "expected success\n{}", describe(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts exit status 0 and parses stdout as one JSON value.
#[track_caller]
pub fn assert_ok_json(out: &Output) -> serde_json::Value {
    let s = assert_ok(out);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Asserts exit status 0 and parses stdout as JSON lines.
#[track_caller]
pub fn assert_ok_lines(out: &Output) -> Vec<serde_json::Value> {
    assert_ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts a non-zero exit (not death by a signal) and returns stderr.
#[track_caller]
pub fn assert_fail(out: &Output) -> String {
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "expected a non-zero exit\n{}",
        describe(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd exec ARGS -- touch MARKER` and asserts that it failed closed: a non-zero exit,
/// exactly one `ecs-secrets: error:` line, and the command never started (the marker's
/// directory is world-writable, so a command wrongly started as another user would still
/// leave it). Returns stderr.
#[track_caller]
pub fn assert_exec_not_started(mut cmd: Command, args: &[&str]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("marker");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod the marker dir");
    let marker = dir.join("started");
    cmd.arg("exec")
        .args(args)
        .arg("--")
        .arg("touch")
        .arg(&marker);
    let out = run(&mut cmd);
    let stderr = assert_fail(&out);
    assert!(
        !marker.exists(),
        "the command must not start\n{}",
        describe(&out)
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("ecs-secrets: error:"))
            .count(),
        1,
        "{stderr}"
    );
    stderr
}
