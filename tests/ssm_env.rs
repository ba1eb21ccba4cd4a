//! `env`: shell output that `eval` restores byte for byte in dash, bash, zsh and busybox sh;
//! dotenv read back by python-dotenv and by docker compose's rules; json; fail-closed output.

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
        ("DOLLAR", "pa$word $_x $$ $5 $ \\q\n\"".to_string()),
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
        let bin_dir = bin_dir();
        c.env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir))
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

/// What python-dotenv reads from the dotenv file `text` (with its default interpolation).
fn python_dotenv(text: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let dir = TempDir::new("dotenv");
    let file = dir.join(".env");
    std::fs::write(&file, text).unwrap();
    let py = Command::new("python3")
        .arg("-c")
        .arg("import json,sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1])))")
        .arg(&file)
        .output()
        .expect("python3 with python-dotenv (scripts/deps.sh installs it)");
    assert!(
        py.status.success(),
        "python-dotenv (scripts/deps.sh installs it): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    got.as_object().unwrap().clone()
}

#[test]
fn dotenv_is_read_back_exactly_by_python_dotenv_and_compose() {
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
    // `$word` is written where compose does not expand it (single quotes).
    assert!(text.contains("DOLLAR='pa$word"), "{text}");
    let got = python_dotenv(text.as_bytes());
    let compose = compose_dotenv::parse(&text).unwrap();
    for (k, v) in &values {
        assert_eq!(got[*k].as_str(), Some(v.as_str()), "python-dotenv: {k}");
        assert_eq!(compose.get(*k), Some(v), "compose: {k}");
    }
    assert_eq!(got.len(), values.len());
    assert_eq!(compose.len(), values.len());
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
    // `$word` with a single quote: no quoting reads back exactly in both; refused.
    let both = unique_path("dotenv-dollar-quote");
    put_secure(&m.endpoint, &format!("{both}/MIXED"), "it's pa$word");
    let out = run(ecs(&m.endpoint).args(["env", "--format", "dotenv", "--path", &both]));
    let e = assert_fail(&out);
    assert!(
        e.contains("MIXED") && e.contains("--format shell") && !e.contains("pa$word"),
        "{e}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_compose_reference_reader_follows_compose_go() {
    let got = compose_dotenv::parse(
        "# c\nA=\"a\\\"b\\\\c\\nd\"\nexport B='x\\'y $z \\\\'\nC=\"pa$word $5 $$ \\$x\"\nD=plain # note\n",
    )
    .unwrap();
    assert_eq!(got["A"], "a\"b\\c\nd");
    assert_eq!(got["B"], "x'y $z \\\\");
    assert_eq!(got["C"], "pa $5 $ $x");
    assert_eq!(got["D"], "plain");
    assert!(compose_dotenv::parse("E=\"${\"\n").is_err());
}

/// Random values over the characters that matter to dotenv readers, rendered by the
/// binary's dotenv writer: each one written is read back exactly by python-dotenv and by
/// compose's rules; each one refused is one that no quoting could carry to both.
#[test]
fn dotenv_writer_fuzz_against_both_readers() {
    use ecs_secrets::config::Format;
    use ecs_secrets::inject::{env::plan, output::render};
    use ecs_secrets::secret::{Payload, Secret};
    const ALPHABET: &[&str] = &[
        "$", "$", "{", "}", "'", "\"", "\\", "\n", "\r", "\t", " ", "#", "=", "a", "Z", "_", "5",
        "%", "é", "🙂", "x", "\\n",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut written, mut refused) = (Vec::new(), 0usize);
    for i in 0..4000 {
        let len = (next() % 12) as usize;
        let v: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let one = plan(
            vec![(
                "/f".into(),
                vec![Secret {
                    name: format!("V{i}"),
                    serial: 1,
                    payload: Payload::new(v.clone().into_bytes()),
                }],
            )],
            &[],
            &[],
        )
        .unwrap();
        match render(Format::Dotenv, &one) {
            Ok(line) => written.push((format!("V{i}"), v, line.to_vec())),
            Err(_) => {
                let b = v.as_bytes();
                let expands = b.windows(2).any(|w| {
                    w[0] == b'$' && (w[1].is_ascii_alphabetic() || b"_${".contains(&w[1]))
                });
                let single_ok = !v.contains('\'') && !v.contains('\r') && !v.contains("\\\\");
                assert!(
                    v.contains("${") || v.ends_with('\\') || (expands && !single_ok),
                    "refused without cause: {v:?}"
                );
                refused += 1;
            }
        }
    }
    let text: Vec<u8> = written.iter().flat_map(|(_, _, l)| l.clone()).collect();
    let py = python_dotenv(&text);
    let compose = compose_dotenv::parse(std::str::from_utf8(&text).unwrap()).unwrap();
    for (k, v, line) in &written {
        let shown = String::from_utf8_lossy(line);
        assert_eq!(py[k].as_str(), Some(v.as_str()), "python-dotenv: {shown}");
        assert_eq!(compose.get(k), Some(v), "compose: {shown}");
    }
    assert!(
        written.len() > 2000 && refused > 100,
        "{} {refused}",
        written.len()
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

const FAILURE_LINE: &str =
    "echo 'ecs-secrets: failed to load secrets, see the error above' >&2; exit 1\n";

/// Issue 10, finding 2: usage and configuration errors of `env` used to leave stdout empty,
/// so `eval "$(ecs-secrets env)"; next` went on to `next`. Every failure — of the arguments,
/// of the environment variables, under the `ecs-secrets-env` name, with a format that could
/// not be read — now leaves exactly the line that makes the evaluating shell exit.
#[test]
fn every_env_failure_fails_closed_under_eval() {
    use std::os::unix::ffi::OsStrExt;
    let m = moto();
    let path = unique_path("env-usage");
    put_secure(&m.endpoint, &format!("{path}/FINE"), "fine-value");
    let dir = TempDir::new("env-usage");
    let link = dir.join("ecs-secrets-env");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let non_utf8 = std::ffi::OsStr::from_bytes(b"/a/\xff").to_os_string();
    // (program, arguments, environment)
    type Case<'a> = (
        &'a std::path::Path,
        Vec<std::ffi::OsString>,
        Vec<(&'a str, &'a str)>,
    );
    let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    let b = std::path::Path::new(bin());
    let p = path.as_str();
    let cases: Vec<Case> = vec![
        (b, os(&["env"]), vec![("ECS_SECRETS_PATH", "")]),
        (b, os(&["env", "--path", p, "--bogus"]), vec![]),
        (b, os(&["env", "--path", p, "--format", "yaml"]), vec![]),
        (b, os(&["env", "--path", p, "--format"]), vec![]),
        (
            b,
            os(&["env", "--path", p, "--format=json", "--format=json"]),
            vec![],
        ),
        (
            b,
            os(&["env", "--require", "--format", "json", "--path", p]),
            vec![],
        ),
        (b, os(&["env", "--path", p, "--timeout", "abc"]), vec![]),
        (b, os(&["env", "--path", p, "--timeout=1e-300"]), vec![]),
        (b, os(&["env", "--path", p, "--debug=1"]), vec![]),
        (b, os(&["env", "--path", p, "stray"]), vec![]),
        (b, os(&["env", "--path", "relative"]), vec![]),
        (
            b,
            os(&["env"]),
            vec![("ECS_SECRETS_PATH", p), ("ECS_SECRETS_DEBUG", "maybe")],
        ),
        (
            b,
            os(&["env"]),
            vec![("ECS_SECRETS_PATH", p), ("ECS_SECRETS_BACKEND", "vault")],
        ),
        (
            b,
            os(&["env"]),
            vec![("ECS_SECRETS_PATH", p), ("ECS_SECRETS_TIMEOUT", "0")],
        ),
        (b, os(&["env", "--path", p, "--table", "x"]), vec![]),
        (
            b,
            vec!["env".into(), "--path".into(), non_utf8.clone()],
            vec![],
        ),
        (&link, os(&[]), vec![]),
        (&link, os(&["--path", p, "--format", "toml"]), vec![]),
        (
            &link,
            os(&["--path", p]),
            vec![("ECS_SECRETS_RECURSIVE", "maybe")],
        ),
        (&link, vec!["--path".into(), non_utf8], vec![]),
    ];
    for (program, args, vars) in &cases {
        let mut c = Command::new(program);
        scrub_env(&mut c, &m.endpoint)
            .args(args)
            .envs(vars.iter().copied());
        let out = run(&mut c);
        let what = format!("{program:?} {args:?} {vars:?}");
        assert_eq!(out.status.code(), Some(2), "{what}\n{}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            FAILURE_LINE,
            "{what}\n{}",
            describe(&out)
        );
        // The reported pattern: the exit status is ignored, the eval must stop the script.
        let mut sh = Command::new("dash");
        sh.arg("-c")
            .arg("eval \"$(\"$@\")\"; echo CONTINUED")
            .arg("sh")
            .arg(program)
            .args(args);
        scrub_env(&mut sh, &m.endpoint).envs(vars.iter().copied());
        let out = run(&mut sh);
        assert_ne!(out.status.code(), Some(0), "{what}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("CONTINUED"),
            "{what}\n{}",
            describe(&out)
        );
    }
    // A format read as dotenv or json prints nothing at all on failure (no reader of those
    // would make sense of a shell line).
    for f in ["--format=json", "--format=dotenv"] {
        let out = run(ecs(&m.endpoint).args(["env", f, "--path", "relative"]));
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(out.stdout.is_empty(), "{f}: {}", describe(&out));
    }
    // --help and --version are unchanged.
    let out = run(ecs(&m.endpoint).args(["env", "--help"]));
    assert!(assert_ok(&out).starts_with("Usage: ecs-secrets env"));
    let out = run(Command::new(&link).env_clear().arg("--help"));
    assert!(assert_ok(&out).starts_with("Usage: ecs-secrets env"));
    let out = run(ecs(&m.endpoint).args(["--version"]));
    assert!(assert_ok(&out).starts_with("ecs-secrets "));
    // And the flags spelled with `=` work.
    let out = run(ecs(&m.endpoint).args(["env", &format!("--path={path}"), "--format=json"]));
    assert_eq!(assert_ok(&out), "{\"FINE\":\"fine-value\"}\n");
}

/// Issue 16, finding 12: `--timeout 1e-300` was accepted and reported a "0s deadline". The
/// timeout is bounded below as well as above, from the flag and the variable alike, as a
/// usage error before anything is contacted.
#[test]
fn timeout_is_bounded_below_and_above() {
    // Nothing listens here: a start that got past the check would fail with exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    for t in [
        "1e-300", "0.0001", "0.09", "0", "-0", "NaN", "inf", "3601", "1e400",
    ] {
        for cmd in [
            vec!["env", "--path", "/a/b", "--timeout", t],
            vec!["exec", "--path", "/a/b", "--timeout", t, "--", "true"],
            vec!["list", "--path", "/a/b", &format!("--timeout={t}")],
        ] {
            let out = run(ecs(&endpoint).args(&cmd));
            assert_eq!(out.status.code(), Some(2), "{cmd:?}\n{}", describe(&out));
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(
                e.contains("--timeout is out of range: use from 0.1 to 3600 seconds")
                    || e.contains("--timeout is not a number of seconds"),
                "{cmd:?}: {e}"
            );
            assert!(!e.contains("deadline"), "{e}");
        }
        let out = run(ecs(&endpoint)
            .args(["env", "--path", "/a/b"])
            .env("ECS_SECRETS_TIMEOUT", t));
        assert_eq!(out.status.code(), Some(2), "{t}\n{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ECS_SECRETS_TIMEOUT is"),
            "{}",
            describe(&out)
        );
    }
    // The smallest accepted value is a real deadline.
    let out = run(ecs(&endpoint).args(["env", "--path", "/a/b", "--timeout", "0.1"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

/// A sibling of finding 2: a signal that ends `env` while it fetches (a `timeout`, an
/// orchestrator stopping the task) left stdout empty, so `eval` went on. The terminating
/// signals that can be caught now leave the failure line too.
#[test]
fn a_signal_while_fetching_leaves_the_failure_line() {
    use std::process::Stdio;
    let m = moto();
    let path = unique_path("env-signal");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let proxy = Proxy::start(&m.endpoint);
        proxy.set_faults(Faults {
            stall: 1.0,
            ..Default::default()
        });
        let mut c = ecs(&proxy.endpoint());
        c.args(["env", "--path", &path, "--timeout", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while proxy.total() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no request reached the proxy"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            FAILURE_LINE,
            "signal {sig}\n{}",
            describe(&out)
        );
        assert_eq!(out.status.code(), Some(128 + sig), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stopped by a signal"),
            "{}",
            describe(&out)
        );
    }
}
