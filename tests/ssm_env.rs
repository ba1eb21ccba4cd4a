//! `env`: shell output that `eval` restores byte for byte in dash, bash, zsh and busybox sh;
//! dotenv read back by python-dotenv; json; fail-closed output.

mod common;

use common::*;
use std::process::Command;

/// Hostile values Parameter Store can hold (it stores UTF-8 text; non-UTF-8 bytes are
/// covered on the dynamodb backend).
fn hostile() -> Vec<(&'static str, String)> {
    let ascii: String = (1u8..=127).map(char::from).collect();
    vec![
        ("QUOTES", r#"it's "quoted" ''"#.to_string()),
        (
            "SUBST",
            "$(touch PWNED) `touch PWNED` ${HOME} $HOME".to_string(),
        ),
        ("BACKSLASH", r"back\slash \\ \n \' \\\".to_string()),
        ("NEWLINES", "line1\nline2\n\n".to_string()),
        ("DASH", "-n".to_string()),
        ("EQ", "=start=".to_string()),
        ("GLOB", "* ? [a-z] ~".to_string()),
        ("BANG", "!! !$ !#".to_string()),
        ("SPACES", "  leading and trailing  \t".to_string()),
        ("ASCII", ascii),
        ("UNICODE", "пароль 密码 🙂 \u{200b}".to_string()),
        ("SEMI", "a; exit 3; b && c || d | e > f < g".to_string()),
    ]
}

fn seed(path: &str) -> Vec<(&'static str, String)> {
    let values = hostile();
    for (k, v) in &values {
        put_secure(&moto().endpoint, &format!("{path}/{k}"), v);
    }
    values
}

fn shells() -> Vec<Vec<&'static str>> {
    vec![
        vec!["dash"],
        vec!["bash"],
        vec!["zsh"],
        vec!["busybox", "sh"],
    ]
}

#[test]
fn eval_restores_hostile_values_in_every_shell() {
    let m = moto();
    let path = unique_path("eval");
    let values = seed(&path);
    let dir = TempDir::new("eval");
    for shell in shells() {
        let name = shell.join("-");
        let out_dir = dir.join(&name);
        std::fs::create_dir(&out_dir).unwrap();
        // The documented pattern, then each variable written raw to a file.
        let mut script = String::from(
            "vars=$(ecs-secrets env --path \"$P\") || exit 1; eval \"$vars\" || exit 9\n",
        );
        for (k, _) in &values {
            script.push_str(&format!("printf '%s' \"${k}\" > \"$OUT/{k}\"\n"));
        }
        let mut c = Command::new(shell[0]);
        c.args(&shell[1..]).arg("-c").arg(&script);
        scrub_env(&mut c, &m.endpoint);
        let bin_dir = std::path::Path::new(bin()).parent().unwrap();
        c.env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
        )
        .env("P", &path)
        .env("OUT", &out_dir)
        .current_dir(&out_dir);
        let out = run(&mut c);
        assert_ok(&out);
        for (k, v) in &values {
            let got = std::fs::read(out_dir.join(k)).unwrap();
            assert_eq!(got, v.as_bytes(), "{name}: {k} differs");
        }
        assert!(
            !out_dir.join("PWNED").exists(),
            "{name}: a value was executed"
        );
    }
}

#[test]
fn failure_prints_only_a_line_that_makes_eval_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = run(ecs(&endpoint).args(["env", "--path", "/prod/app", "--timeout", "2"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains("export"), "{stdout}");
    // Even a caller that ignores the exit status stops at the eval.
    for shell in shells() {
        let mut c = Command::new(shell[0]);
        c.args(&shell[1..])
            .arg("-c")
            .arg("eval \"$(cat)\"; echo REACHED");
        let out = stdin_run(&mut c, stdout.as_bytes());
        assert_ne!(out.status.code(), Some(0), "{shell:?}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("REACHED"),
            "{shell:?}"
        );
    }
    // Other formats print nothing at all on failure.
    for f in ["dotenv", "json"] {
        let out = run(ecs(&endpoint).args([
            "env",
            "--path",
            "/prod/app",
            "--timeout",
            "2",
            "--format",
            f,
        ]));
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "{f}: {}", describe(&out));
    }
}

#[test]
fn refusals_print_nothing_partial() {
    let m = moto();
    let path = unique_path("env-refuse");
    put_secure(&m.endpoint, &format!("{path}/AAA_FIRST"), "fine-value");
    put_secure(&m.endpoint, &format!("{path}/LD_PRELOAD"), "x");
    let out = run(ecs(&m.endpoint).args(["env", "--path", &path]));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("fine-value") && !stdout.contains("export"),
        "{stdout}"
    );
    let out = run(ecs(&m.endpoint).args(["env", "--path", &path, "--allow-name", "LD_PRELOAD"]));
    assert!(assert_ok(&out).contains("export LD_PRELOAD='x'"));
}

#[test]
fn dotenv_is_read_back_exactly_by_python_dotenv() {
    let m = moto();
    let path = unique_path("dotenv");
    let values: Vec<(&str, String)> = seed(&path)
        .into_iter()
        // `${` is expanded by every dotenv reader and a trailing backslash cannot be read
        // back by python-dotenv; such values are refused (tested below).
        .filter(|(_, v)| !v.contains("${") && !v.ends_with('\\'))
        .collect();
    let sub = unique_path("dotenv-sub");
    for (k, v) in &values {
        put_secure(&m.endpoint, &format!("{sub}/{k}"), v);
    }
    let out = run(ecs(&m.endpoint).args(["env", "--format", "dotenv", "--path", &sub]));
    let text = assert_ok(&out);
    let dir = TempDir::new("dotenv");
    let file = dir.join(".env");
    std::fs::write(&file, &text).unwrap();
    let py = Command::new("python3")
        .arg("-c")
        .arg("import json,sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1])))")
        .arg(&file)
        .output()
        .expect("python3 with python-dotenv (scripts/deps.sh installs it)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    for (k, v) in &values {
        assert_eq!(got[k].as_str(), Some(v.as_str()), "{k}");
    }
    assert_eq!(got.as_object().unwrap().len(), values.len());
    // A value with `${` or a trailing backslash is refused, naming the secret, printing nothing.
    let out = run(ecs(&m.endpoint).args(["env", "--format", "dotenv", "--path", &path]));
    let e = assert_fail(&out);
    assert!(e.contains("BACKSLASH") && out.stdout.is_empty(), "{e}");
    let only_subst = unique_path("dotenv-subst");
    put_secure(&m.endpoint, &format!("{only_subst}/SUBST"), "a ${HOME} b");
    let out = run(ecs(&m.endpoint).args(["env", "--format", "dotenv", "--path", &only_subst]));
    let e = assert_fail(&out);
    assert!(
        e.contains("SUBST") && !e.contains("HOME") && out.stdout.is_empty(),
        "{e}"
    );
}

#[test]
fn json_is_one_object() {
    let m = moto();
    let path = unique_path("json");
    let values = seed(&path);
    let out = run(ecs(&m.endpoint).args(["env", "--format", "json", "--path", &path]));
    let got: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    for (k, v) in &values {
        assert_eq!(got[k].as_str(), Some(v.as_str()), "{k}");
    }
}

#[test]
fn multi_call_names_select_the_mode() {
    let m = moto();
    let path = unique_path("links");
    put_secure(&m.endpoint, &format!("{path}/GREETING"), "hello there");
    let dir = TempDir::new("links");
    let out = run(Command::new(bin()).arg("install-links").arg(dir.path()));
    assert_ok(&out);
    let env_link = dir.join("ecs-secrets-env");
    let exec_link = dir.join("ecs-secrets-exec");
    assert!(env_link
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    let mut c = Command::new(&env_link);
    scrub_env(&mut c, &m.endpoint).env("ECS_SECRETS_PATH", &path);
    assert_eq!(assert_ok(&run(&mut c)), "export GREETING='hello there'\n");
    let mut c = Command::new(&exec_link);
    scrub_env(&mut c, &m.endpoint)
        .env("ECS_SECRETS_PATH", &path)
        .args(["--", "sh", "-c", "printf %s \"$GREETING\""]);
    assert_eq!(assert_ok(&run(&mut c)), "hello there");
    // Running install-links again replaces the links.
    assert_ok(&run(Command::new(bin())
        .arg("install-links")
        .arg(dir.path())));
}

#[test]
fn help_and_version_touch_no_aws_and_usage_errors_exit_2() {
    // No endpoint at all: nothing may be contacted.
    let mut c = Command::new(bin());
    c.env_clear().arg("--help");
    let out = run(&mut c);
    assert!(assert_ok(&out).contains("exec"));
    let out = run(Command::new(bin()).env_clear().arg("--version"));
    assert!(assert_ok(&out).starts_with("ecs-secrets "));
    let out = run(Command::new(bin()).env_clear().args(["exec", "--help"]));
    assert!(assert_ok(&out).contains("--allow-name"));
    for args in [
        vec!["exec", "--path", "/a/b"],
        vec!["exec", "--", "true"],
        vec!["env", "--path", "relative", "--format", "shell"],
        vec!["env", "--path", "/a/b", "--format", "yaml"],
        vec!["fetch", "--path", "/a/b", "--name", "1BAD"],
        vec![
            "revoke", "--path", "/a/b", "--name", "X", "--serial", "zero",
        ],
        vec!["bogus"],
        vec!["exec", "--path", "/a/b", "--timeout", "-1", "--", "true"],
    ] {
        let out = run(Command::new(bin()).env_clear().args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ecs-secrets: error:"),
            "{args:?}"
        );
    }
}
