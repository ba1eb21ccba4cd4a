//! Shared integration-test harness.
//!
//! Every `tests/*.rs` file does `mod common;` and uses what it needs:
//!
//! * [`moto()`] / [`fresh_moto()`]: a `moto_server` (fake AWS) on a loopback port.
//! * [`Proxy`]: a counting, fault-injecting HTTP/1.1 reverse proxy in front of moto.
//! * [`ecs()`], [`run()`], [`stdin_run()`], [`run_with()`]: run the real binary
//!   with a scrubbed environment.
//! * [`ssm()`], [`kms()`], [`dynamodb()`], [`put_secure()`], [`put_many()`]:
//!   SDK clients for seeding and checking moto without the tool under test.
//! * [`EcsCredsServer`]: imitation of the ECS container credentials endpoint.
//! * [`ImdsServer`]: imitation of the EC2 instance metadata service (IMDSv2).
//! * [`ConnectProxy`]: a forward proxy for `HTTPS_PROXY` that records its tunnels.
//! * [`http_request()`]: a tiny blocking HTTP client for loopback servers.
//! * [`aws_query()`], [`deploy_stack()`]: IAM and CloudFormation calls to moto.
//! * [`DaemonProcess`]: a running `ecs-secrets daemon` (start, HTTP, stderr, stop).
//! * [`TestCa`]: a private CA and a server certificate (for [`fresh_moto_tls()`]).
//! * [`compose_dotenv::parse`]: a reference reader of docker compose's `env_file`.
//! * [`TempDir`], [`unique_path()`]: isolation helpers.
//!
//! Only loopback addresses are ever contacted; helpers that take an address
//! assert it.
//!
//! Set `ECS_TEST_KEEP_TMP=1` to keep the per-process temp dirs (moto's log,
//! the scrubbed `HOME`) after the test binary exits.

// Each test binary uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

mod aws;
pub mod compose_dotenv;
mod connect;
mod creds;
mod daemon;
mod http;
mod imds;
mod moto;
mod process;
mod proxy;
mod query;
mod scratch;
mod testca;

pub use aws::{
    block_on, create_key, dynamodb, dynamodb_config, get_plain, kms, kms_config, put_many,
    put_secure, rt, secretsmanager, secretsmanager_config, ssm, ssm_config,
};
pub use connect::{ConnectProxy, Mode as ProxyMode};
pub use creds::{rfc3339, EcsCredsServer};
pub use daemon::DaemonProcess;
pub use http::{closed_within, http_request, small_window, HttpResponse};
pub use imds::ImdsServer;
pub use moto::{fresh_moto, fresh_moto_tls, moto, Moto, MOTO_MISSING};
pub use process::{
    assert_exec_not_started, assert_fail, assert_ok, assert_ok_json, assert_ok_lines, bin, bin_dir,
    describe, ecs, run, run_with, scrub_env, stdin_run, DEFAULT_TIMEOUT,
};
pub use proxy::{Faults, Proxy, Rewrite};
pub use query::{aws_query, deploy_stack, percent_decode};
pub use scratch::{fs_magic, Scratch, TMPFS_MAGIC};
pub use testca::{TestCa, OPENSSL_MISSING};

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// A unique SSM parameter path for this test process, e.g. `/t/fetch-1234-7`.
///
/// Tests in one binary share one moto, so every test must work under its own
/// path. Characters of `tag` outside SSM's allowed set (`a-zA-Z0-9_.-/`) are
/// replaced with `_`.
pub fn unique_path(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tag = tag.trim_matches('/');
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/t/{tag}-{}-{n}", std::process::id())
}

/// A directory created with `mkdtemp(3)` under `std::env::temp_dir()`,
/// removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `$TMPDIR/ecs-secrets-<prefix>-XXXXXX`.
    pub fn new(prefix: &str) -> TempDir {
        let template = std::env::temp_dir().join(format!("ecs-secrets-{prefix}-XXXXXX"));
        let template = CString::new(template.as_os_str().as_bytes()).expect("NUL in temp path");
        let mut buf = template.into_bytes_with_nul();
        // SAFETY: buf is a writable NUL-terminated template ending in XXXXXX.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
        if p.is_null() {
            panic!("mkdtemp failed: {}", std::io::Error::last_os_error());
        }
        buf.pop(); // the NUL
        TempDir {
            path: PathBuf::from(OsStr::from_bytes(&buf)),
            keep: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Do not remove the directory on drop (e.g. to inspect it after a failure).
    pub fn keep(&mut self) -> &Path {
        self.keep = true;
        &self.path
    }

    /// For process-wide dirs held in statics (which are never dropped): remove
    /// the directory when the test binary exits instead.
    fn remove_at_exit(mut self) -> PathBuf {
        self.keep = true;
        remove_at_exit(self.path.clone());
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep && !keep_tmp() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn keep_tmp() -> bool {
    std::env::var_os("ECS_TEST_KEEP_TMP").is_some_and(|v| !v.is_empty() && v != "0")
}

static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` when the process exits normally. Statics are never dropped,
/// so process-wide temp dirs are cleaned up from an `atexit(3)` handler (the
/// libtest harness exits through `exit(3)`, which runs it).
fn remove_at_exit(path: PathBuf) {
    static REGISTER: Once = Once::new();
    extern "C" fn cleanup() {
        if keep_tmp() {
            return;
        }
        // try_lock: never block (or panic) inside exit().
        if let Ok(paths) = AT_EXIT.try_lock() {
            for p in paths.iter() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" fn without captures.
        unsafe { libc::atexit(cleanup) };
    });
    AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).push(path);
}

/// Panics unless `addr` is a loopback address: tests must never talk to
/// anything else (in particular not to 169.254.169.254).
#[track_caller]
fn assert_loopback(addr: &std::net::SocketAddr, what: &str) {
    assert!(
        addr.ip().is_loopback(),
        "{what}: refusing to contact non-loopback address {addr}"
    );
}

/// Resolves `http://host:port[/...]` to a loopback socket address (panics otherwise).
#[track_caller]
fn loopback_addr(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported, got {url:?}"));
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = authority
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {authority:?}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{authority:?} resolves to nothing"));
    assert_loopback(&addr, url);
    addr
}
