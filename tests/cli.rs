//! The command line's manners (contract §1, §2): help with examples on every command, `-h`,
//! `-V`, a bare `ecs-secrets`, completions for bash, zsh and fish that the shells load and
//! complete with, a man page that `man` renders without warnings, durations with units, and
//! `setup --dry-run` / `--policy-dir`.

mod common;

use common::*;
use std::process::Command;

const COMMANDS: &[&str] = &[
    "exec",
    "env",
    "create",
    "rotate",
    "revoke",
    "fetch",
    "list",
    "rotate-key",
    "import",
    "setup",
    "daemon",
    "sync",
    "install-links",
    "completions",
    "man",
];

fn out_of(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = run(cmd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn installed(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "{tool} is not installed: apt-get install {package} (scripts/deps.sh does)"
    );
}

#[test]
fn every_command_has_help_with_examples_under_h_and_help() {
    for cmd in COMMANDS {
        for flag in ["-h", "--help"] {
            let (code, stdout, stderr) = out_of(Command::new(bin()).args([cmd, flag]));
            assert_eq!(code, Some(0), "{cmd} {flag}: {stderr}");
            assert!(
                stdout.starts_with(&format!("Usage: ecs-secrets {cmd}")),
                "{cmd}: {stdout}"
            );
            assert!(
                stdout.contains("\nExamples:\n"),
                "{cmd} {flag} has no examples: {stdout}"
            );
            assert!(stdout.contains("-h, --help"), "{cmd}: {stdout}");
        }
    }
    let (code, top, _) = out_of(Command::new(bin()).arg("-h"));
    assert_eq!(code, Some(0));
    assert!(
        top.contains("Secrets Manager") && top.contains("Examples:"),
        "{top}"
    );
    for cmd in COMMANDS {
        assert!(
            top.contains(&format!("  {cmd} ")),
            "top-level help lists {cmd}: {top}"
        );
    }
    // Through the link names too.
    let dir = TempDir::new("cli-links");
    let link = dir.path().join("ecs-secrets-exec");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let (code, stdout, _) = out_of(Command::new(&link).arg("-h"));
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("Usage: ecs-secrets exec"), "{stdout}");
}

#[test]
fn version_names_the_version_the_commit_and_the_target() {
    for flag in ["-V", "--version"] {
        let (code, stdout, _) = out_of(Command::new(bin()).arg(flag));
        assert_eq!(code, Some(0));
        let line = stdout.trim_end();
        let rest = line
            .strip_prefix(&format!("ecs-secrets {} (", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{flag}: {line}"));
        let (commit, target) = rest.trim_end_matches(')').split_once(' ').unwrap();
        assert!(!commit.is_empty() && !commit.contains(' '), "{line}");
        assert!(target.ends_with("-linux-gnu"), "{line}");
    }
}

#[test]
fn bare_ecs_secrets_prints_the_help_and_exits_2() {
    let (code, stdout, stderr) = out_of(&mut Command::new(bin()));
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("Usage: ecs-secrets"), "{stderr}");
    assert!(stderr.contains("Commands:"), "{stderr}");
}

#[test]
fn a_value_that_looks_like_h_is_still_a_value() {
    // `--payload -h` is the payload "-h", not a help request (and never echoed).
    let m = moto();
    let path = unique_path("cli-h");
    let out =
        run(ecs(&m.endpoint).args(["create", "--path", &path, "--name", "A", "--payload", "-h"]));
    assert_ok(&out);
    let out = run(ecs(&m.endpoint).args(["fetch", "--path", &path, "--name", "A"]));
    assert_eq!(assert_ok_json(&out)["payload"], "-h");
    // After `--`, `-h` belongs to CMD.
    let out = run(ecs(&m.endpoint).args([
        "exec",
        "--path",
        &path,
        "--",
        "sh",
        "-c",
        "echo \"$1\"",
        "x",
        "-h",
    ]));
    assert_eq!(assert_ok(&out), "-h\n");
}

fn bash_complete(line: &str) -> Vec<String> {
    installed("bash", "bash");
    let words: Vec<&str> = line.split(' ').collect();
    let script = format!(
        "source <('{bin}' completions bash) || exit 9\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\n_ecs_secrets\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin = bin(),
        words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
        cword = words.len() - 1,
    );
    let (code, stdout, stderr) = out_of(Command::new("bash").args(["-c", &script]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    stdout.lines().map(String::from).collect()
}

#[test]
fn bash_completes_commands_flags_and_values() {
    let (code, stdout, stderr) = out_of(Command::new("bash").args([
        "-c",
        &format!(
            "source <('{}' completions bash); complete -p ecs-secrets",
            bin()
        ),
    ]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "complete -F _ecs_secrets ecs-secrets");
    assert_eq!(bash_complete("ecs-secrets ex"), ["exec"]);
    assert_eq!(bash_complete("ecs-secrets exec --ref"), ["--refresh"]);
    assert_eq!(bash_complete("ecs-secrets setup --dry"), ["--dry-run"]);
    assert_eq!(
        bash_complete("ecs-secrets env --backend "),
        ["ssm", "dynamodb", "secretsmanager"]
    );
    assert_eq!(
        bash_complete("ecs-secrets-exec --no-"),
        ["--no-env", "--no-override"]
    );
    assert_eq!(bash_complete("ecs-secrets --vers"), ["--version"]);
}

#[test]
fn zsh_and_fish_load_their_scripts_and_complete() {
    installed("zsh", "zsh");
    installed("fish", "fish");
    let home = TempDir::new("cli-zsh");
    let zsh = format!(
        "autoload -U compinit && compinit -u -D && source <('{}' completions zsh) && print -r -- ${{_comps[ecs-secrets]}}",
        bin()
    );
    let (code, stdout, stderr) = out_of(
        Command::new("zsh")
            .args(["-f", "-c", &zsh])
            .env("HOME", home.path())
            .env("ZDOTDIR", home.path()),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.trim(), "_ecs-secrets");

    let fish = format!(
        "'{bin}' completions fish | source; complete -C'ecs-secrets ex'; complete -C'ecs-secrets sync --refr'; complete -C'ecs-secrets-exec --backend='",
        bin = bin()
    );
    let (code, stdout, stderr) = out_of(
        Command::new("fish")
            .args(["--no-config", "-c", &fish])
            .env("HOME", home.path()),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let firsts: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(firsts.contains(&"exec"), "{stdout}");
    assert!(firsts.contains(&"--refresh"), "{stdout}");
    assert!(firsts.contains(&"--backend=secretsmanager"), "{stdout}");
}

#[test]
fn man_renders_the_page_without_warnings() {
    installed("man", "man-db");
    let dir = TempDir::new("cli-man");
    let page = dir.path().join("ecs-secrets.1");
    let (code, roff, _) = out_of(Command::new(bin()).arg("man"));
    assert_eq!(code, Some(0));
    std::fs::write(&page, &roff).unwrap();
    let (code, text, stderr) = out_of(
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("LC_ALL", "C.UTF-8"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "man warned:\n{stderr}");
    for cmd in COMMANDS {
        assert!(
            text.contains(&format!("ecs-secrets {cmd}")),
            "man page lacks {cmd}"
        );
    }
    assert!(
        text.contains("--refresh") && text.contains("EXIT STATUS"),
        "{text}"
    );
}

#[test]
fn durations_take_units_and_nothing_loose() {
    let m = moto();
    let path = unique_path("cli-dur");
    assert_ok(&run(ecs(&m.endpoint).args([
        "create",
        "--path",
        &path,
        "--name",
        "A",
        "--payload",
        "v",
    ])));
    for (flag, value) in [
        ("--timeout", "1m"),
        ("--timeout", "1m30s"),
        ("--timeout", "0.5m"),
    ] {
        let out = run(ecs(&m.endpoint).args(["env", "--path", &path, flag, value]));
        assert_ok(&out);
    }
    for value in ["2h", " 5", "5 m", "1e2", "5ms"] {
        let out = run(ecs(&m.endpoint).args(["env", "--path", &path, "--timeout", value]));
        assert_eq!(out.status.code(), Some(2), "{value:?}: {}", describe(&out));
    }
    let out = run(ecs(&m.endpoint)
        .args(["env", "--path", &path])
        .env("ECS_SECRETS_TIMEOUT", "1m"));
    assert_ok(&out);
}

#[test]
fn setup_dry_run_creates_nothing_and_policy_dir_writes_attachable_documents() {
    let m = fresh_moto();
    let path = unique_path("cli-setup");
    let role = "arn:aws:iam::123456789012:role/app-task";
    let proxy = Proxy::start(&m.endpoint);
    let out = run(ecs(&proxy.endpoint()).args([
        "setup",
        "--backend",
        "dynamodb",
        "--path",
        &path,
        "--fetch-role",
        role,
        "--dry-run",
    ]));
    let stdout = assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KMS key") && stderr.contains("would be created"),
        "{stderr}"
    );
    assert!(
        stderr.contains("DynamoDB table ecs-secrets: would be created"),
        "{stderr}"
    );
    assert!(
        proxy.ops().iter().all(|o| o.contains("Describe")),
        "a dry run only looks: {:?}",
        proxy.ops()
    );
    let accesses: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["access"].to_string())
        .collect();
    assert!(accesses.contains(&"\"fetch\"".to_string()), "{stdout}");

    // For real, with the policies as files.
    let dir = TempDir::new("cli-policies");
    let out = run(ecs(&m.endpoint)
        .args([
            "setup",
            "--path",
            &path,
            "--fetch-role",
            role,
            "--policy-dir",
        ])
        .arg(dir.path()));
    let lines: Vec<serde_json::Value> = assert_ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in &lines {
        let name = line["policy_name"].as_str().unwrap();
        let file = dir.path().join(format!("{name}.json"));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc, line["policy"], "{name}");
        assert_eq!(doc["Version"], "2012-10-17");
    }
    let attach = format!("--policy-document file://{}/", dir.path().display());
    assert!(stderr.contains(&attach), "{stderr}");
    // The documents are what IAM accepts, as printed.
    let fetch = lines.iter().find(|l| l["access"] == "fetch").unwrap();
    let name = fetch["policy_name"].as_str().unwrap();
    let file = dir.path().join(format!("{name}.json"));
    let doc = std::fs::read_to_string(&file).unwrap();
    aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("RoleName", "app-task"),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[]}"#,
            ),
        ],
    );
    aws_query(
        &m.endpoint,
        "iam",
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "app-task"),
            ("PolicyName", name),
            ("PolicyDocument", &doc),
        ],
    );

    // A missing directory is a usage error before anything is created.
    let out =
        run(ecs(&m.endpoint).args(["setup", "--path", &path, "--policy-dir", "/nonexistent/dir"]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mkdir -p"),
        "{}",
        describe(&out)
    );
}

#[test]
fn json_keys_case_upper_gives_the_names_rds_secrets_need() {
    let m = moto();
    let path = unique_path("cli-case");
    let rds = r#"{"username":"admin","password":"pw","db":{"port":5432}}"#;
    put_secure(&m.endpoint, &format!("{path}/DB"), rds);
    let out = run(ecs(&m.endpoint).args([
        "env",
        "--path",
        &path,
        "--json-keys",
        "--json-keys-case",
        "upper",
        "--format",
        "json",
    ]));
    let v = assert_ok_json(&out);
    assert_eq!(
        v,
        serde_json::json!({"DB_USERNAME": "admin", "DB_PASSWORD": "pw", "DB_DB_PORT": "5432"})
    );
    // The variables, and exec.
    let out = run(ecs(&m.endpoint)
        .args([
            "exec",
            "--path",
            &path,
            "--",
            "sh",
            "-c",
            "echo \"$DB_USERNAME\"",
        ])
        .env("ECS_SECRETS_JSON_KEYS", "1")
        .env("ECS_SECRETS_JSON_KEYS_CASE", "upper"));
    assert_eq!(assert_ok(&out), "admin\n");
    // keep is the default and can be said.
    let out = run(ecs(&m.endpoint).args([
        "env",
        "--path",
        &path,
        "--json-keys",
        "--json-keys-case",
        "keep",
        "--format",
        "json",
    ]));
    assert_eq!(assert_ok_json(&out)["DB_username"], "admin");
    // Without --json-keys it would do nothing: a usage error; so is an unknown case.
    for args in [
        &["--json-keys-case", "upper"][..],
        &["--json-keys", "--json-keys-case", "lower"][..],
    ] {
        let out = run(ecs(&m.endpoint).args(["env", "--path", &path]).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("admin"));
    }
}
