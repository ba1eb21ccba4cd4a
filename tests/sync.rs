//! `sync`: the secrets to files with exec's rules, once (an init container) or kept current
//! with `--refresh` (a sidecar) until SIGTERM, then exit 0.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

fn sync(endpoint: &str, path: &str, dir: &Scratch, args: &[&str]) -> Command {
    let mut c = ecs(endpoint);
    c.args(["sync", "--path", path, "--files"])
        .arg(&dir.0)
        .args(args);
    c
}

fn read(dir: &Scratch, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// Waits until `cond` holds (panics after PATIENCE, showing the sidecar's stderr).
fn until(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("{what}: not so within {PATIENCE:?}\n--- stderr ---\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sync_once_writes_the_files_with_execs_rules_and_exits_0() {
    let m = moto();
    let path = unique_path("once");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "pw '$x");
    put_secure(&m.endpoint, &format!("{path}/api.key"), "k");
    let dir = Scratch::shm("once");
    let target = dir.join("d");
    let mut c = ecs(&m.endpoint);
    c.args(["sync", "--path", &path, "--files"])
        .arg(&target)
        .args(["--user", "65534:65534"]);
    let out = run(&mut c);
    assert_ok(&out);
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(
        std::fs::read_to_string(target.join("DB_PASSWORD")).unwrap(),
        "pw '$x"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("api_key")).unwrap(),
        "k"
    );
    let meta = std::fs::metadata(target.join("DB_PASSWORD")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o400);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    let d = std::fs::metadata(&target).unwrap();
    assert_eq!(d.mode() & 0o7777, 0o700);
    assert_eq!(d.uid(), 65534);
}

#[test]
fn sync_fails_closed_and_writes_nothing() {
    let m = moto();
    let path = unique_path("closed");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    put_secure(&m.endpoint, &format!("{path}/LD_PRELOAD"), "/x.so");
    let dir = Scratch::shm("closed");
    let out = run(&mut sync(&m.endpoint, &path, &dir, &[]));
    let err = assert_fail(&out);
    assert!(err.contains("LD_PRELOAD"), "{err}");
    assert!(read(&dir, "A").is_none());
    // --allow-name as for exec.
    assert_ok(&run(&mut sync(
        &m.endpoint,
        &path,
        &dir,
        &["--allow-name", "LD_PRELOAD"],
    )));
    assert_eq!(read(&dir, "LD_PRELOAD").as_deref(), Some("/x.so"));
    // A disk directory is refused; --require is checked.
    let disk = Scratch::disk("sync-disk");
    let out = run(&mut sync(&m.endpoint, &path, &disk, &[]));
    assert!(assert_fail(&out).contains("tmpfs"), "{}", describe(&out));
    let out = run(&mut sync(
        &m.endpoint,
        &path,
        &dir,
        &["--allow-name", "LD_PRELOAD", "--require", "NOPE"],
    ));
    assert!(assert_fail(&out).contains("NOPE"));
    let out = run(ecs(&m.endpoint).args(["sync", "--path", &path]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync needs --files DIR"));
}

#[test]
fn sync_refresh_keeps_the_files_current_and_exits_0_on_sigterm() {
    let m = moto();
    let path = unique_path("loop");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    put_secure(&m.endpoint, &format!("{path}/B"), "b");
    let dir = Scratch::shm("loop");
    let mut c = sync(
        &m.endpoint,
        &path,
        &dir,
        &["--refresh", "1", "--splay", "0"],
    );
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only prctl between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    until(&mut child, "first sync", || {
        read(&dir, "A").as_deref() == Some("one")
    });
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    until(&mut child, "A rotated", || {
        read(&dir, "A").as_deref() == Some("two")
    });
    // A revoked secret's file goes.
    assert_ok(&run(ecs(&m.endpoint).args([
        "revoke", "--path", &path, "--name", "B", "--serial", "1",
    ])));
    until(&mut child, "B removed", || read(&dir, "B").is_none());
    // A refresh a start would refuse changes nothing.
    put_secure(&m.endpoint, &format!("{path}/PATH"), "/evil");
    put_secure(&m.endpoint, &format!("{path}/A"), "three");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read(&dir, "A").as_deref(), Some("two"));
    assert!(read(&dir, "PATH").is_none());
    // SAFETY: a signal to our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + PATIENCE;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sync did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(
        err.contains("refresh failed, the files keep the current secrets"),
        "{err}"
    );
    assert!(
        err.contains("PATH") && !err.contains("evil") && !err.contains("three"),
        "{err}"
    );
    // The files stay for the application.
    assert_eq!(read(&dir, "A").as_deref(), Some("two"));
}

#[test]
fn sync_writes_json_keys_and_references_as_files() {
    let m = moto();
    let path = unique_path("sync-json-refs");
    let refd = unique_path("sync-refd");
    put_secure(
        &m.endpoint,
        &format!("{path}/DB"),
        r#"{"user":"u","port":5432}"#,
    );
    put_secure(&m.endpoint, &format!("{refd}/token"), "tok");
    let dir = Scratch::shm("json-refs");
    let mut c = sync(&m.endpoint, &path, &dir, &["--json-keys", "--resolve-refs"]);
    c.env("API_TOKEN", format!("ssm:{refd}/token"));
    assert_ok(&run(&mut c));
    assert_eq!(read(&dir, "DB_user").as_deref(), Some("u"));
    assert_eq!(read(&dir, "DB_port").as_deref(), Some("5432"));
    assert_eq!(read(&dir, "API_TOKEN").as_deref(), Some("tok"));
    assert_eq!(read(&dir, "DB"), None);
    // A reference that cannot be resolved: sync fails closed and writes nothing more.
    let dir2 = Scratch::shm("json-refs-bad");
    let mut c = sync(&m.endpoint, &path, &dir2, &["--resolve-refs"]);
    c.env("API_TOKEN", format!("ssm:{refd}/missing"));
    let e = assert_fail(&run(&mut c));
    assert!(e.contains("$API_TOKEN"), "{e}");
    assert_eq!(read(&dir2, "DB"), None);
}
