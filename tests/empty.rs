//! A path that yields no secret (issue 20, finding 3): a mistyped `--path` or the wrong
//! `AWS_REGION` must not start the application with nothing. `exec`, `env` (every format)
//! and `sync` fail naming the path, the backend and the region, unless `--allow-empty`
//! (`ECS_SECRETS_ALLOW_EMPTY=1`) makes it a warning. Each path given must yield something.
//! A refresh that finds a path emptied is tests/refresh.rs.

mod common;
mod ddb;

use common::*;

/// The one error line names the path, the backend and the region, and says how to go on.
#[track_caller]
fn names_everything(stderr: &str, path: &str, backend: &str, region: &str) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ecs-secrets: error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    for want in [
        &format!("no secrets under {path} "),
        &format!("backend {backend}"),
        &format!("region {region}"),
        "AWS_REGION",
        "--allow-empty",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
}

#[test]
fn exec_refuses_an_empty_path_on_every_backend() {
    // A table that exists, so that emptiness (not a missing table) is what is seen.
    let ep = ddb::moto_ready();
    for backend in ["ssm", "secretsmanager", "dynamodb"] {
        let path = unique_path("empty-exec");
        let e = assert_exec_not_started(ecs(ep), &["--backend", backend, "--path", &path]);
        names_everything(&e, &path, backend, "us-east-1");
    }
}

#[test]
fn the_wrong_region_is_named() {
    let m = moto();
    let path = unique_path("empty-region");
    put_secure(&m.endpoint, &format!("{path}/A"), "v");
    let mut c = ecs(&m.endpoint);
    c.env("AWS_REGION", "eu-west-3");
    let e = assert_exec_not_started(c, &["--path", &path]);
    names_everything(&e, &path, "ssm", "eu-west-3");
}

#[test]
fn every_path_given_must_yield_something() {
    let m = moto();
    let full = unique_path("empty-full");
    let typo = unique_path("empty-typo");
    put_secure(&m.endpoint, &format!("{full}/A"), "v");
    for args in [
        ["--path", &full, "--path", &typo],
        ["--path", &typo, "--path", &full],
    ] {
        let e = assert_exec_not_started(ecs(&m.endpoint), &args);
        names_everything(&e, &typo, "ssm", "us-east-1");
        assert!(!e.contains(&format!("{full} ")), "{e}");
    }
    // The variable form too.
    let mut c = ecs(&m.endpoint);
    c.env("ECS_SECRETS_PATH", format!("{full},{typo}"));
    let e = assert_exec_not_started(c, &[]);
    names_everything(&e, &typo, "ssm", "us-east-1");
}

#[test]
fn allow_empty_makes_it_a_warning_by_flag_or_variable() {
    let m = moto();
    let full = unique_path("empty-allow-full");
    let empty = unique_path("empty-allow");
    put_secure(&m.endpoint, &format!("{full}/A"), "v");
    for by_flag in [true, false] {
        let mut c = ecs(&m.endpoint);
        c.args(["exec", "--path", &full, "--path", &empty]);
        if by_flag {
            c.arg("--allow-empty");
        } else {
            c.env("ECS_SECRETS_ALLOW_EMPTY", "1");
        }
        c.args(["--", "sh", "-c", "echo A=$A"]);
        let out = run(&mut c);
        assert_eq!(assert_ok(&out), "A=v\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("no secrets under {empty}")), "{err}");
        assert!(!err.contains("error"), "{err}");
    }
}

#[test]
fn env_prints_only_the_failure_line_in_every_format() {
    let m = moto();
    let full = unique_path("empty-env-full");
    let empty = unique_path("empty-env");
    put_secure(&m.endpoint, &format!("{full}/A"), "secret-value");
    for format in ["shell", "dotenv", "json"] {
        let out =
            run(ecs(&m.endpoint)
                .args(["env", "--format", format, "--path", &full, "--path", &empty]));
        let err = assert_fail(&out);
        names_everything(&err, &empty, "ssm", "us-east-1");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("secret-value"), "{stdout}");
        if format == "shell" {
            // eval of what was printed fails, even when the caller ignores the status.
            let sh = run(std::process::Command::new("sh")
                .arg("-c")
                .arg("eval \"$1\"; echo survived")
                .arg("sh")
                .arg(&*stdout));
            assert!(!String::from_utf8_lossy(&sh.stdout).contains("survived"));
        } else {
            assert!(stdout.is_empty(), "{stdout}");
        }
    }
    let out = run(ecs(&m.endpoint).args([
        "env",
        "--format",
        "json",
        "--allow-empty",
        "--path",
        &full,
        "--path",
        &empty,
    ]));
    assert_eq!(assert_ok(&out), "{\"A\":\"secret-value\"}\n");
}

#[test]
fn sync_writes_nothing_for_an_empty_path() {
    let m = moto();
    let full = unique_path("empty-sync-full");
    let empty = unique_path("empty-sync");
    put_secure(&m.endpoint, &format!("{full}/A"), "v");
    let dir = Scratch::shm("empty-sync");
    let files = dir.0.join("out");
    let f = files.to_str().unwrap();
    let out = run(ecs(&m.endpoint).args(["sync", "--files", f, "--path", &full, "--path", &empty]));
    names_everything(&assert_fail(&out), &empty, "ssm", "us-east-1");
    assert!(!files.join("A").exists());
    assert_ok(&run(ecs(&m.endpoint).args([
        "sync",
        "--files",
        f,
        "--allow-empty",
        "--path",
        &full,
        "--path",
        &empty,
    ])));
    assert_eq!(std::fs::read_to_string(files.join("A")).unwrap(), "v");
}

#[test]
fn resolve_refs_with_nothing_to_fetch_is_refused() {
    let m = moto();
    let e = assert_exec_not_started(ecs(&m.endpoint), &["--resolve-refs"]);
    assert!(
        e.contains("nothing to fetch") && e.contains("--allow-empty"),
        "{e}"
    );
    let out = run(ecs(&m.endpoint).args(["env", "--resolve-refs"]));
    assert!(assert_fail(&out).contains("nothing to fetch"));
    let out = run(ecs(&m.endpoint).args(["exec", "--resolve-refs", "--allow-empty", "--", "true"]));
    assert_ok(&out);
    // A reference and no path: nothing to check for emptiness.
    let path = unique_path("empty-ref");
    put_secure(&m.endpoint, &format!("{path}/R"), "v");
    let out = run(ecs(&m.endpoint).env("X", format!("ssm:{path}/R")).args([
        "exec",
        "--resolve-refs",
        "--",
        "sh",
        "-c",
        "echo X=$X",
    ]));
    assert_eq!(assert_ok(&out), "X=v\n");
}

#[test]
fn json_keys_counts_the_stored_secret() {
    // A path holding one JSON object is not empty, whatever the object expands to.
    let m = moto();
    let path = unique_path("empty-json");
    put_secure(&m.endpoint, &format!("{path}/DB"), "{\"user\":\"u\"}");
    let out = run(ecs(&m.endpoint).args([
        "exec",
        "--json-keys",
        "--path",
        &path,
        "--",
        "sh",
        "-c",
        "echo $DB_user",
    ]));
    assert_eq!(assert_ok(&out), "u\n");
}
