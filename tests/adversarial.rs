//! Adversarial input and leak checks: hostile names, 1,000 secrets in one path, and no
//! secret value ever in stderr (even with --debug), in stdout where it is not the product,
//! or in the argv of any process.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A value that cannot appear anywhere by accident.
fn marker(tag: &str) -> String {
    format!("LEAKMARK{}{tag}{}", std::process::id(), "zq")
}

#[test]
fn hostile_names_map_or_fail_closed_naming_the_secret() {
    let m = moto();
    let path = unique_path("names");
    put_secure(&m.endpoint, &format!("{path}/with.dots"), "a");
    put_secure(&m.endpoint, &format!("{path}/with-dashes"), "b");
    put_secure(&m.endpoint, &format!("{path}/MiXeD_case"), "c");
    let out = run(ecs(&m.endpoint).args(["env", "--format", "json", "--path", &path]));
    let v: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"with_dots": "a", "with_dashes": "b", "MiXeD_case": "c"})
    );
    let bad = unique_path("names-digit");
    put_secure(&m.endpoint, &format!("{bad}/9lives"), "x");
    let out = run(ecs(&m.endpoint).args(["exec", "--path", &bad, "--", "true"]));
    assert!(assert_fail(&out).contains("9lives"));
    for refused in [
        "BASH_ENV",
        "BASH_FUNC_ls%%",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "IFS",
        "LD_LIBRARY_PATH",
    ] {
        // SSM names cannot hold `%`: map it the way a store would.
        let stored = refused.replace('%', "_");
        let p = unique_path("names-refused");
        put_secure(&m.endpoint, &format!("{p}/{stored}"), "x");
        let out = run(ecs(&m.endpoint).args(["env", "--path", &p]));
        let e = assert_fail(&out);
        assert!(e.contains("--allow-name"), "{refused}: {e}");
    }
}

#[test]
fn a_thousand_secrets_in_one_path() {
    let m = moto();
    let path = unique_path("thousand");
    let expected = put_many(&m.endpoint, &path, 1000);
    let proxy = Proxy::start(&m.endpoint);
    let out = run(ecs(&proxy.endpoint()).args([
        "env",
        "--format",
        "json",
        "--path",
        &path,
        "--timeout",
        "60",
    ]));
    let v: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1000);
    for (name, value) in &expected {
        assert_eq!(
            v[name.rsplit('/').next().unwrap()].as_str(),
            Some(value.as_str())
        );
    }
    // 100 full pages; moto adds one empty page with a token after a full last page.
    let pages = proxy.count("GetParametersByPath");
    assert!((100..=101).contains(&pages), "{pages}");
    assert_eq!(proxy.total(), pages);
    let out = run(ecs(&m.endpoint).args([
        "exec",
        "--path",
        &path,
        "--timeout",
        "60",
        "--",
        "sh",
        "-c",
        "env | grep -c '^p[0-9][0-9][0-9]='",
    ]));
    assert_eq!(assert_ok(&out).trim(), "1000");
}

#[test]
fn values_never_leak_into_stderr_or_non_product_stdout() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("leak");
    let value = marker("v");
    let payload = format!("{value} it's $(x) \\ \n end");
    put_secure(e, &format!("{path}/SECRET"), &payload);
    put_secure(e, &format!("{path}/SECRET"), &payload);
    put_secure(e, &format!("{path}/OTHER"), &format!("{value}-other"));
    let check = |args: &[&str], product: bool| {
        let mut c = ecs(e);
        c.args(args).env("ECS_SECRETS_DEBUG", "1");
        let out = run(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stderr.contains("LEAKMARK"),
            "{args:?} leaked into stderr:\n{stderr}"
        );
        if !product {
            assert!(
                !stdout.contains("LEAKMARK"),
                "{args:?} leaked into stdout:\n{stdout}"
            );
        }
        assert!(
            stderr.contains("ecs-secrets: debug:"),
            "{args:?} ran with --debug: {stderr}"
        );
        out
    };
    assert_ok(&check(&["exec", "--path", &path, "--", "true"], false));
    for f in ["shell", "json"] {
        assert_ok(&check(&["env", "--format", f, "--path", &path], true));
    }
    assert_ok(&check(
        &["env", "--format", "dotenv", "--path", &path],
        true,
    ));
    assert_ok(&check(
        &["fetch", "--path", &path, "--name", "SECRET"],
        true,
    ));
    assert_ok(&check(&["list", "--path", &path, "--all-versions"], false));
    assert_ok(&check(
        &[
            "revoke", "--path", &path, "--name", "SECRET", "--serial", "2",
        ],
        false,
    ));
    assert_fail(&check(
        &[
            "fetch", "--path", &path, "--name", "SECRET", "--serial", "2",
        ],
        false,
    ));
    assert_ok(&check(
        &[
            "rotate",
            "--path",
            &path,
            "--name",
            "OTHER",
            "--generate",
            "24",
        ],
        false,
    ));
    // Failures: a refused name and a required name missing, with values present.
    let refused = unique_path("leak-refused");
    put_secure(e, &format!("{refused}/LD_PRELOAD"), &value);
    put_secure(e, &format!("{refused}/FINE"), &value);
    assert_fail(&check(&["exec", "--path", &refused, "--", "true"], false));
    assert_fail(&check(&["env", "--path", &refused], false));
    assert_fail(&check(
        &["env", "--path", &path, "--require", "NOPE"],
        false,
    ));
    // A create from stdin: the value is neither echoed nor logged.
    let mut c = ecs(e);
    c.args([
        "create",
        "--debug",
        "--path",
        &path,
        "--name",
        "NEW",
        "--payload-stdin",
    ]);
    let out = stdin_run(&mut c, value.as_bytes());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && !all.contains("LEAKMARK"), "{all}");
}

/// Every process's argv, as one string per process.
fn all_argv() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for entry in rd.flatten() {
            if let Ok(b) = std::fs::read(entry.path().join("cmdline")) {
                out.push(String::from_utf8_lossy(&b).replace('\0', " "));
            }
        }
    }
    out
}

#[test]
fn values_never_appear_in_any_argv() {
    let m = moto();
    let path = unique_path("argv");
    let value = marker("argv");
    put_secure(&m.endpoint, &format!("{path}/TOKEN"), &value);
    // Slow responses keep the binary alive long enough to be observed.
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        latency_ms: 400,
        ..Default::default()
    });
    let mut c = ecs(&proxy.endpoint());
    c.args(["exec", "--path", &path, "--", "sleep", "1"]);
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut samples = 0;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        for argv in all_argv() {
            assert!(!argv.contains("LEAKMARK"), "a value is in an argv: {argv}");
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(samples > 10, "observed the run {samples} times");
    // The same for env through the latency proxy.
    let mut c = ecs(&proxy.endpoint());
    c.args(["env", "--path", &path]);
    let child = c.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        for argv in all_argv() {
            assert!(!argv.contains("LEAKMARK"), "a value is in an argv: {argv}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&value));
}
