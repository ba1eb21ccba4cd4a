//! `exec` on Parameter Store, through the real binary against a real moto server.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// `exec` that prints the given variables (or `<unset>`) one per line.
fn show(endpoint: &str, args: &[&str], vars: &[&str]) -> Command {
    let mut c = ecs(endpoint);
    c.arg("exec").args(args).arg("--").arg("sh").arg("-c");
    let script: String = vars
        .iter()
        .map(|v| format!("printf '%s=%s\\n' {v} \"${{{v}-<unset>}}\";"))
        .collect();
    c.arg(script);
    c
}

#[test]
fn injects_every_secret_of_the_path_and_becomes_the_command() {
    let m = moto();
    let path = unique_path("inject");
    put_secure(&m.endpoint, &format!("{path}/DB_USER"), "grafana");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "old");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "p@ss w'rd");
    put_secure(&m.endpoint, &format!("{path}/api.key-v2"), "k");
    let out = run(show(
        &m.endpoint,
        &["--path", &path],
        &["DB_USER", "DB_PASSWORD", "api_key_v2", "HOME"],
    )
    .env("DB_USER", "inherited"));
    let stdout = assert_ok(&out);
    assert!(stdout.contains("DB_USER=grafana\n"), "{stdout}");
    assert!(
        stdout.contains("DB_PASSWORD=p@ss w'rd\n"),
        "newest version: {stdout}"
    );
    assert!(stdout.contains("api_key_v2=k\n"), "{stdout}");
    assert!(
        !stdout.contains("HOME=<unset>"),
        "inherited env kept: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DB_USER") && !stderr.contains("grafana"),
        "{stderr}"
    );
}

#[test]
fn the_command_keeps_our_pid_and_its_exit_status() {
    let m = moto();
    let path = unique_path("pid");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let mut c = ecs(&m.endpoint);
    c.args(["exec", "--path", &path, "--", "sh", "-c", "echo $$; exit 7"]);
    c.stdout(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
}

#[test]
fn signals_are_reset_for_the_command() {
    let m = moto();
    let path = unique_path("sig");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let out =
        run(ecs(&m.endpoint).args(["exec", "--path", &path, "--", "cat", "/proc/self/status"]));
    let s = assert_ok(&out);
    let field = |n: &str| {
        s.lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} in {s}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let ignored = u64::from_str_radix(&field("SigIgn:"), 16).unwrap();
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE must not stay ignored"
    );
    assert_eq!(field("SigBlk:"), "0000000000000000");
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    let m = moto();
    let path = unique_path("notfound");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let out = run(ecs(&m.endpoint).args(["exec", "--path", &path, "--", "no-such-command-xyz"]));
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command-xyz"));
    let dir = TempDir::new("noexec");
    let f = dir.join("script");
    std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(ecs(&m.endpoint)
        .args(["exec", "--path", &path, "--"])
        .arg(&f));
    assert_eq!(out.status.code(), Some(126), "{}", describe(&out));
}

#[test]
fn pagination_is_followed_and_nothing_else_is_requested() {
    let m = moto();
    let path = unique_path("pages");
    put_many(&m.endpoint, &path, 25);
    let proxy = Proxy::start(&m.endpoint);
    let out = run(&mut show(
        &proxy.endpoint(),
        &["--path", &path],
        &["p000", "p012", "p024"],
    ));
    let s = assert_ok(&out);
    assert!(s.contains(&format!("p024=value-024-{path}")), "{s}");
    assert_eq!(proxy.count("GetParametersByPath"), 3, "{:?}", proxy.ops());
    assert_eq!(proxy.total(), 3, "only the pages: {:?}", proxy.ops());
}

#[test]
fn recursive_paths_name_variables_by_relative_path() {
    let m = moto();
    let path = unique_path("rec");
    put_secure(&m.endpoint, &format!("{path}/TOP"), "t");
    put_secure(&m.endpoint, &format!("{path}/db/password"), "nested");
    let vars = ["TOP", "db_password"];
    let s = assert_ok(&run(&mut show(&m.endpoint, &["--path", &path], &vars)));
    assert!(
        s.contains("db_password=<unset>"),
        "not recursive by default: {s}"
    );
    let s = assert_ok(&run(&mut show(
        &m.endpoint,
        &["--path", &path, "--recursive"],
        &vars,
    )));
    assert!(
        s.contains("db_password=nested") && s.contains("TOP=t"),
        "{s}"
    );
    let s = assert_ok(&run(
        show(&m.endpoint, &["--path", &path], &vars).env("ECS_SECRETS_RECURSIVE", "1")
    ));
    assert!(s.contains("db_password=nested"), "{s}");
}

#[test]
fn several_paths_later_wins_and_variables_configure_it() {
    let m = moto();
    let (a, b) = (unique_path("multi-a"), unique_path("multi-b"));
    put_secure(&m.endpoint, &format!("{a}/X"), "from-a");
    put_secure(&m.endpoint, &format!("{a}/ONLY_A"), "a");
    put_secure(&m.endpoint, &format!("{b}/X"), "from-b");
    let s = assert_ok(&run(&mut show(
        &m.endpoint,
        &["--path", &a, "--path", &b],
        &["X", "ONLY_A"],
    )));
    assert!(s.contains("X=from-b") && s.contains("ONLY_A=a"), "{s}");
    let s = assert_ok(&run(
        show(&m.endpoint, &[], &["X"]).env("ECS_SECRETS_PATH", format!("{b},{a}"))
    ));
    assert!(s.contains("X=from-a"), "{s}");
    let s = assert_ok(&run(show(&m.endpoint, &[], &["X"]).env("AWS_ENV_PATH", &a)));
    assert!(s.contains("X=from-a"), "{s}");
    // The flag wins over the variable.
    let s = assert_ok(&run(
        show(&m.endpoint, &["--path", &b], &["X"]).env("ECS_SECRETS_PATH", &a)
    ));
    assert!(s.contains("X=from-b"), "{s}");
}

/// Runs `exec` with a command that would leave a marker; asserts failure and no marker.
fn assert_not_started(endpoint: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    assert_not_started_with(endpoint, args, |c| {
        for (k, v) in envs {
            c.env(k, v);
        }
    })
}

fn assert_not_started_with(
    endpoint: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> String {
    let mut c = ecs(endpoint);
    adjust(&mut c);
    assert_exec_not_started(c, args)
}

#[test]
fn colliding_names_fail_closed_naming_both() {
    let m = moto();
    let path = unique_path("collide");
    put_secure(&m.endpoint, &format!("{path}/db.pass"), "one-value");
    put_secure(&m.endpoint, &format!("{path}/db-pass"), "two-value");
    let e = assert_not_started(&m.endpoint, &["--path", &path], &[]);
    assert!(
        e.contains("db.pass") && e.contains("db-pass") && e.contains("db_pass"),
        "{e}"
    );
    assert!(!e.contains("one-value") && !e.contains("two-value"), "{e}");
}

#[test]
fn refused_names_fail_closed_unless_allowed() {
    let m = moto();
    let path = unique_path("refused");
    put_secure(&m.endpoint, &format!("{path}/LD_PRELOAD"), "/tmp/evil.so");
    let e = assert_not_started(&m.endpoint, &["--path", &path], &[]);
    assert!(
        e.contains("LD_PRELOAD") && e.contains("--allow-name"),
        "{e}"
    );
    let path2 = unique_path("refused-path");
    put_secure(&m.endpoint, &format!("{path2}/PATH"), "/evil");
    assert_not_started(&m.endpoint, &["--path", &path2], &[]);
    // Allowed explicitly: the value is set (LD_PRELOAD of a missing file only warns).
    let s = assert_ok(&run(&mut show(
        &m.endpoint,
        &["--path", &path2, "--allow-name", "PATH"],
        &["PATH"],
    )));
    assert!(s.contains("PATH=/evil"), "{s}");
}

#[test]
fn required_names_and_empty_paths() {
    let m = moto();
    let path = unique_path("require");
    put_secure(&m.endpoint, &format!("{path}/PRESENT"), "v");
    let e = assert_not_started(
        &m.endpoint,
        &[
            "--path",
            &path,
            "--require",
            "PRESENT",
            "--require",
            "MISSING",
        ],
        &[],
    );
    assert!(e.contains("MISSING") && !e.contains("PRESENT,"), "{e}");
    assert_ok(&run(&mut show(
        &m.endpoint,
        &["--path", &path, "--require", "PRESENT"],
        &["PRESENT"],
    )));
    // An empty path is an error (tests/empty.rs); with --allow-empty only a warning.
    let empty = unique_path("empty");
    let out = run(&mut show(
        &m.endpoint,
        &["--path", &empty, "--allow-empty"],
        &["X"],
    ));
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secrets under"));
}

#[test]
fn no_override_keeps_the_inherited_value() {
    let m = moto();
    let path = unique_path("override");
    put_secure(&m.endpoint, &format!("{path}/MODE"), "from-secret");
    let out = run(show(&m.endpoint, &["--path", &path], &["MODE"]).env("MODE", "inherited-value"));
    assert!(assert_ok(&out).contains("MODE=from-secret"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MODE")
            && !stderr.contains("from-secret")
            && !stderr.contains("inherited-value")
    );
    let out = run(
        show(&m.endpoint, &["--path", &path, "--no-override"], &["MODE"]).env("MODE", "inherited"),
    );
    assert!(assert_ok(&out).contains("MODE=inherited"));
}

#[test]
fn unreachable_backend_fails_closed_within_the_deadline() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let e = assert_not_started(&endpoint, &["--path", "/prod/app", "--timeout", "3"], &[]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(e.contains("/prod/app"), "names the path: {e}");
    // A stalled server: the deadline still holds.
    let proxy = Proxy::start(&moto().endpoint);
    proxy.set_faults(Faults {
        stall: 1.0,
        ..Default::default()
    });
    let start = Instant::now();
    let e = assert_not_started(
        &proxy.endpoint(),
        &["--path", "/prod/app"],
        &[("ECS_SECRETS_TIMEOUT", "2")],
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(e.contains("deadline") || e.contains("timed out"), "{e}");
}

#[test]
fn revoked_versions_are_never_injected() {
    let m = moto();
    let path = unique_path("revoked");
    let out = run(ecs(&m.endpoint).args([
        "create",
        "--path",
        &path,
        "--name",
        "K",
        "--payload",
        "first",
    ]));
    assert_ok(&out);
    assert_ok(&run(ecs(&m.endpoint).args([
        "create",
        "--path",
        &path,
        "--name",
        "K",
        "--payload",
        "second",
    ])));
    assert_ok(&run(ecs(&m.endpoint).args([
        "revoke", "--path", &path, "--name", "K", "--serial", "2",
    ])));
    let proxy = Proxy::start(&m.endpoint);
    let s = assert_ok(&run(&mut show(
        &proxy.endpoint(),
        &["--path", &path],
        &["K"],
    )));
    assert!(
        s.contains("K=first"),
        "falls back to the newest active: {s}"
    );
    assert_eq!(proxy.total(), 1, "still one page: {:?}", proxy.ops());
    assert_ok(&run(ecs(&m.endpoint).args([
        "revoke", "--path", &path, "--name", "K", "--serial", "1",
    ])));
    // Every version revoked: the path is empty, an error unless --allow-empty (issue 20).
    let e = assert_fail(&run(&mut show(&m.endpoint, &["--path", &path], &["K"])));
    assert!(e.contains(&format!("no secrets under {path} ")), "{e}");
    let s = assert_ok(&run(&mut show(
        &m.endpoint,
        &["--path", &path, "--allow-empty"],
        &["K"],
    )));
    assert!(s.contains("K=<unset>"), "every version revoked: {s}");
}

#[test]
fn debug_logs_requests_but_never_values() {
    let m = moto();
    let path = unique_path("debug");
    put_secure(&m.endpoint, &format!("{path}/TOKEN"), "s3cr3t-debug-value");
    let out = run(ecs(&m.endpoint).args(["exec", "--debug", "--path", &path, "--", "true"]));
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GetParametersByPath"), "{stderr}");
    assert!(!stderr.contains("s3cr3t-debug-value"), "{stderr}");
}

#[test]
fn ecs_task_role_credentials_are_used() {
    let m = moto();
    let path = unique_path("taskrole");
    put_secure(&m.endpoint, &format!("{path}/A"), "via-task-role");
    let creds = EcsCredsServer::start(Some("Bearer task-token"));
    let out = run(show(&m.endpoint, &["--path", &path], &["A"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.url())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer task-token"));
    assert!(assert_ok(&out).contains("A=via-task-role"));
    assert!(creds.hits() >= 1);
    assert!(creds
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer task-token")));
}

#[test]
fn missing_or_rejected_credentials_fail_closed() {
    let m = moto();
    let path = unique_path("nocreds");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let e = assert_not_started_with(&m.endpoint, &["--path", &path, "--timeout", "5"], |c| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
    });
    assert!(e.to_lowercase().contains("credentials"), "{e}");
    // The task-role endpoint refuses us (wrong token).
    let creds = EcsCredsServer::start(Some("Bearer right"));
    let e = assert_not_started_with(&m.endpoint, &["--path", &path, "--timeout", "5"], |c| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.url())
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer wrong");
    });
    assert!(e.to_lowercase().contains("credentials"), "{e}");
}

#[test]
fn per_service_endpoint_overrides_the_general_one() {
    let m = moto();
    let path = unique_path("endpoint");
    put_secure(&m.endpoint, &format!("{path}/A"), "via-ssm-endpoint");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = show(
        &format!("http://127.0.0.1:{port}"),
        &["--path", &path, "--timeout", "5"],
        &["A"],
    );
    c.env("AWS_ENDPOINT_URL_SSM", &m.endpoint);
    assert!(assert_ok(&run(&mut c)).contains("A=via-ssm-endpoint"));
}
