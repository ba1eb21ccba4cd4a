//! Adversarial input and leak checks: hostile names, hostile values (every ASCII byte,
//! multi-byte UTF-8, shell and JSON metacharacters) byte-exact through `exec --files` on a
//! tmpfs and through the daemon, 1,000 secrets in one path, and no secret value ever in
//! stderr (even with --debug), in stdout where it is not the product, in a daemon's error
//! bodies, or in the argv of any process.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Values SSM can hold (UTF-8, no NUL) that break naive quoting, escaping or decoding.
fn hostile_values() -> Vec<(&'static str, String)> {
    let ascii: String = (1u8..=127).map(char::from).collect();
    let multi = "é ü ß € 中文 日本語 🔑🦀 e\u{301} \u{FEFF}bom \u{202E}rtl \u{2028}ls \u{10FFFF} \u{7FF}\u{800}\u{FFFF}\u{10000}";
    // Exactly 4096 bytes (Parameter Store's limit), ASCII and multi-byte mixed.
    let block = format!("{ascii}é中🔑");
    let mut long = block.repeat(4096 / block.len());
    long.push_str(&"~".repeat(4096 - long.len()));
    assert_eq!(long.len(), 4096);
    vec![
        ("ASCII_ALL", ascii.clone()),
        ("ASCII_REVERSED", ascii.chars().rev().collect()),
        ("UTF8", multi.to_string()),
        ("QUOTES", r#"'single' "double" '\'' "\"" it's"#.to_string()),
        (
            "SUBST",
            "$(id) `id` ${HOME} $HOME $((1+1)) <(true) ;|&>".to_string(),
        ),
        (
            "BACKSLASHES",
            r"\ \\ \n \0 \x41 \u0041 \' C:\dir\".to_string(),
        ),
        ("NEWLINES", "\nfirst\n\nsecond\r\nthird\n\n".to_string()),
        (
            "JSONISH",
            r#"{"payload":"x"} \u0000 </script> %00"#.to_string(),
        ),
        ("BLANKS", "  \t leading and trailing \t  ".to_string()),
        ("DASHES", "--help".to_string()),
        ("PRINTF", "%s%n%x %2F %%".to_string()),
        ("LONG", long),
        // Names with dots and dashes (their env and file names map to `_`).
        ("db.password", format!("dotted {ascii}")),
        ("api-key", format!("dashed {multi}")),
        ("a.b-c_d", "'\"`$\\".to_string()),
        ("x--y..z", "\n".to_string()),
    ]
}

/// A tmpfs mounted under a temp dir for the duration of a test; unmounted on drop.
struct Tmpfs {
    mnt: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    fn mount(tag: &str) -> Tmpfs {
        let dir = TempDir::new(tag);
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
            .arg(&mnt)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs: {}", describe(&out));
        let t = Tmpfs { mnt, _dir: dir };
        assert_eq!(fs_magic(&t.mnt), TMPFS_MAGIC, "not a tmpfs");
        t
    }

    fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Before the temp dir is removed (fields drop after this). Lazy if still busy.
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

#[test]
fn hostile_values_are_byte_exact_in_files_on_tmpfs() {
    let m = moto();
    let path = unique_path("hostile-files");
    let values = hostile_values();
    for (name, value) in &values {
        put_secure(&m.endpoint, &format!("{path}/{name}"), value);
    }
    let fs = Tmpfs::mount("hostile-tmpfs");
    let dir = fs.path().join("secrets");
    let out = run(ecs(&m.endpoint)
        .args(["exec", "--path", &path, "--files"])
        .arg(&dir)
        .args(["--no-env", "--", "true"]));
    assert_ok(&out);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut want: Vec<String> = values
        .iter()
        .map(|(n, _)| n.replace(['.', '-'], "_"))
        .collect();
    // Beside the secrets, only the record of what ecs-secrets wrote.
    want.push(".ecs-secrets-files".to_string());
    want.sort();
    assert_eq!(files, want);
    for (name, value) in &values {
        let f = dir.join(name.replace(['.', '-'], "_"));
        let got = std::fs::read(&f).unwrap();
        assert!(
            got == value.as_bytes(),
            "{name}: the file differs\n got: {:?}\nwant: {:?}",
            String::from_utf8_lossy(&got),
            value
        );
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{name}");
    }
    // Nothing of it on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("leading and trailing"), "{stderr}");
}

#[test]
fn hostile_values_and_names_through_the_daemon() {
    let m = moto();
    let path = unique_path("hostile-daemon");
    let values = hostile_values();
    for (name, value) in &values {
        put_secure(&m.endpoint, &format!("{path}/{name}"), value);
    }
    // Nested names with dots and dashes (the daemon reads a name, not the whole path).
    let nested = [
        ("nested/db.pass-word", "n1 \n'\""),
        ("a-b/c.d/e_f", "n2 $(x)"),
    ];
    for (name, value) in nested {
        put_secure(&m.endpoint, &format!("{path}/{name}"), value);
    }
    let d = DaemonProcess::start(&m.endpoint, &path, &["--cache-ttl", "0"]);
    let get = |route: &str| {
        let r = d
            .get(route)
            .unwrap_or_else(|e| panic!("GET {route}: {e}\n{}", d.stderr()));
        assert_eq!(r.status, 200, "GET {route}: {}", r.text());
        r.json()
    };
    for (name, value) in &values {
        let v = get(&format!("/latest/secrets/{name}"));
        assert_eq!(
            v,
            json!({"name": name, "serial": 1, "payload": value, "active": true}),
            "{name}"
        );
    }
    for (name, value) in nested {
        for route in [
            format!("/latest/secrets/{name}"),
            format!("/v1/secrets/{}", name.replace('/', "%2F")),
            format!(
                "/latest/secrets/{}/1",
                name.replace('.', "%2E").replace('-', "%2d")
            ),
        ] {
            let v = get(&route);
            assert_eq!(
                (&v["name"], &v["payload"]),
                (&json!(name), &json!(value)),
                "{route}"
            );
        }
    }
    // The list names them all, exactly.
    let list = get("/latest/secrets");
    let mut listed: Vec<&str> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut want: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
    want.sort();
    // Nested names are not direct children of the path: not in the (non-recursive) list.
    assert_eq!(listed, want);
    // Writes: the value JSON-escaped in the body arrives exactly, and reads back exactly.
    for (name, value) in values
        .iter()
        .filter(|(n, _)| ["ASCII_ALL", "UTF8", "NEWLINES"].contains(n))
    {
        let body = json!({ "payload": value }).to_string();
        let r = d.post(&format!("/latest/secrets/{name}"), &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), json!({"name": name, "serial": 2}));
        assert_eq!(
            get_plain(&m.endpoint, &format!("{path}/{name}")).as_deref(),
            Some(value.as_str()),
            "{name}"
        );
        assert_eq!(
            get(&format!("/v1/secrets/{name}/2"))["payload"],
            json!(value)
        );
    }
    // Names a shell or a path would misread: refused before AWS is asked.
    for bad in [
        "..",
        "a/..",
        "%2E%2E",
        "a%2F..%2Fb",
        "$(id)",
        "a%0Ab",
        "a%20b",
        "-%00",
    ] {
        let r = d.get(&format!("/latest/secrets/{bad}")).unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

/// Reads every process's argv until stopped, asserting no marker.
fn argv_watch<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    stop: &'s AtomicBool,
) -> std::thread::ScopedJoinHandle<'s, usize> {
    scope.spawn(move || {
        let mut samples = 0;
        while !stop.load(Ordering::Relaxed) {
            for argv in all_argv() {
                assert!(!argv.contains("LEAKMARK"), "a value is in an argv: {argv}");
            }
            samples += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        samples
    })
}

#[test]
fn the_daemon_never_leaks_values() {
    let m = moto();
    let path = unique_path("daemon-leak");
    let value = format!("{} it's $(x) \\ \n end", marker("d"));
    put_secure(&m.endpoint, &format!("{path}/SECRET"), &value);
    put_secure(
        &m.endpoint,
        &format!("{path}/SECRET"),
        &format!("{value} v2"),
    );
    let proxy = Proxy::start(&m.endpoint);
    let d = DaemonProcess::start(
        &proxy.endpoint(),
        &path,
        &["--debug", "--cache-ttl", "0", "--timeout", "2"],
    );
    let posted = marker("posted");
    let mut errors = Vec::new();
    let stop = AtomicBool::new(false);
    let samples = std::thread::scope(|s| {
        let watch = argv_watch(s, &stop);
        let req = |method: &str, route: &str, body: &str| {
            let r = d
                .request(method, route, &[], body.as_bytes())
                .unwrap_or_else(|e| panic!("{method} {route}: {e}"));
            (r.status, r.text())
        };
        let mut expect = |method: &str, route: &str, body: &str, status: u16| {
            let (got, text) = req(method, route, body);
            assert_eq!(got, status, "{method} {route}: {text}");
            if status != 200 {
                errors.push(format!("{method} {route} {status}: {text}"));
            }
            text
        };
        // The product: a read returns the value.
        assert!(expect("GET", "/latest/secrets/SECRET", "", 200).contains(&marker("d")));
        assert!(expect("GET", "/v1/secrets/SECRET/1", "", 200).contains(&marker("d")));
        // Everything else never carries a value.
        for (method, route, body, status) in [
            ("GET", "/latest/secrets", "", 200),
            (
                "POST",
                "/latest/secrets/NEW",
                &*json!({ "payload": posted }).to_string(),
                200,
            ),
            ("POST", "/latest/revoke/SECRET/1", "", 200),
            ("GET", "/latest/secrets/SECRET/1", "", 410),
            ("GET", "/latest/secrets/SECRET/9", "", 404),
            ("GET", "/latest/secrets/MISSING", "", 404),
            ("GET", "/latest/revoke/SECRET/2", "", 405),
            (
                "POST",
                "/latest/secrets/SECRET/2",
                &*json!({ "payload": posted }).to_string(),
                405,
            ),
            ("GET", "/latest/secrets/1bad", "", 400),
            ("GET", "/nope", "", 404),
        ] {
            let text = expect(method, route, body, status);
            assert!(!text.contains("LEAKMARK"), "{method} {route}: {text}");
        }
        // Bodies that are not {"payload":"…"} but hold the value.
        let long = format!(r#"{{"payload":"{posted}{}"}}"#, "x".repeat(5000));
        for body in [
            format!(r#"{{"payload":"{posted}","x":1}}"#),
            format!(r#"{{"value":"{posted}"}}"#),
            format!(r#"{{"payload":["{posted}"]}}"#),
            format!(r#"{{"payload":"{posted}"#),
            format!(r#"{{"payload":"{posted}\u0000"}}"#),
            format!("payload={posted}"),
            format!(r#"{{"payload":"{posted}\x"}}"#),
            long,
        ] {
            expect("POST", "/latest/secrets/BAD", &body, 400);
        }
        // Upstream failures while reading and writing the values.
        proxy.set_faults(Faults {
            error500: 1.0,
            ..Default::default()
        });
        let (status, text) = req("GET", "/latest/secrets/SECRET", "");
        assert!(matches!(status, 502 | 504), "{status}");
        errors.push(text);
        let (status, text) = req(
            "POST",
            "/latest/secrets/NEW",
            &json!({ "payload": posted }).to_string(),
        );
        assert!(matches!(status, 502 | 504), "{status}");
        errors.push(text);
        proxy.set_faults(Faults {
            stall: 1.0,
            ..Default::default()
        });
        let (status, text) = req("GET", "/latest/secrets/SECRET", "");
        assert_eq!(status, 504, "{text}");
        errors.push(text);
        proxy.clear_faults();
        stop.store(true, Ordering::Relaxed);
        watch.join().unwrap()
    });
    assert!(samples > 10, "argv observed {samples} times");
    for e in &errors {
        assert!(!e.contains("LEAKMARK"), "an error body has a value: {e}");
        assert!(e.contains("\"error\""), "{e}");
    }
    // The posted value did arrive (so it was there to leak).
    assert_eq!(
        get_plain(&m.endpoint, &format!("{path}/NEW")).as_deref(),
        Some(posted.as_str())
    );
    let stderr = d.stop();
    assert!(
        stderr.contains("ecs-secrets: debug:"),
        "ran with --debug: {stderr}"
    );
    assert!(
        stderr.contains("POST /latest/secrets/{name} 200"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("LEAKMARK"),
        "a value is in the daemon's stderr:\n{stderr}"
    );
}

/// Issue 10, finding 7: `create --payload=VALUE` was refused with "Unrecognized argument:
/// --payload=VALUE", and argh's other messages quote values too (a repeated option, a stray
/// word). The `=` form now works, and no mistake on the command line — unknown flag, a
/// switch given a value, a missing value, a repeated option, a stray word, a bad number —
/// shows a value in its message.
#[test]
fn flag_equals_value_works_and_parse_errors_never_echo_values() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("argv");
    let value = marker("argv");
    let out = run(ecs(e).args([
        "create",
        &format!("--path={path}"),
        "--name=DB",
        &format!("--payload={value}=tail"),
    ]));
    assert!(
        assert_ok(&out).contains("\"serial\":1"),
        "{}",
        describe(&out)
    );
    let out = run(ecs(e).args(["fetch", "--path", &path, "--name", "DB"]));
    let got: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(got["payload"], json!(format!("{value}=tail")));

    let p = format!("--path={path}");
    let v = value.as_str();
    let pv = format!("--payload={value}");
    let lower = value.to_ascii_lowercase();
    for args in [
        vec!["create", &p, "--name", "X", "--payload-stdin=", v],
        vec![
            "create",
            &p,
            "--name",
            "X",
            &format!("--payload-stdin={value}"),
        ],
        vec!["create", &p, "--name", "X", &format!("--paylod={value}")],
        vec!["create", &p, "--name", "X", &format!("--{lower}")],
        vec!["create", &p, "--name", "X", &format!("-{value}")],
        vec!["create", &p, "--name", "X", "--payload", v, "--payload", v],
        vec!["create", &p, "--name", "X", &pv, &pv],
        vec!["create", &p, "--name", "X", "--payload", "first", v],
        vec!["create", &p, "--name", "X", v],
        vec!["rotate", &p, "--name", "X", "--generate", v],
        vec![
            "create",
            &p,
            "--name",
            "X",
            "--timeout",
            v,
            "--payload",
            "x",
        ],
        vec!["revoke", &p, "--name", "X", "--serial", v, "--serial", v],
        vec!["env", &p, "--format", v],
        vec!["env", &p, "--backend", v],
        vec!["exec", &p, "--user", &format!(":{value}"), "--", "true"],
        vec![&format!("--{lower}=1")],
        vec!["create", &p, "--name", "X", &pv, "--payload"],
    ] {
        let out = run(ecs(e).args(&args));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
        assert!(
            !all.to_ascii_uppercase().contains("LEAKMARK"),
            "{args:?} echoed a value:\n{all}"
        );
        assert!(all.contains("ecs-secrets: error:"), "{args:?}\n{all}");
    }
    // Nor the value of one of our variables.
    for var in [
        "ECS_SECRETS_DEBUG",
        "ECS_SECRETS_RECURSIVE",
        "ECS_SECRETS_TIMEOUT",
        "ECS_SECRETS_BACKEND",
    ] {
        let out = run(ecs(e).args(["env", &p]).env(var, v));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}\n{}", describe(&out));
        assert!(
            stderr.contains(var) || stderr.contains("backend"),
            "{var}: {stderr}"
        );
        assert!(!stderr.contains("LEAKMARK"), "{var}: {stderr}");
    }
    // The messages still say what is wrong.
    let out = run(ecs(e).args(["create", &p, "--name", "X", &pv, &pv]));
    assert!(assert_fail(&out).contains("--payload was given more than once"));
    let out = run(ecs(e).args(["create", &p, "--name", "X", "--payload"]));
    assert!(assert_fail(&out).contains("--payload needs a value"));
    let out = run(ecs(e).args(["create", &p, "--name", "X", "--payload-stdin=yes"]));
    assert!(assert_fail(&out).contains("--payload-stdin is a switch"));
    let out = run(ecs(e).args(["create", &p, "--name", "X", "--paylaod=zz"]));
    assert!(assert_fail(&out).contains("unknown flag --paylaod"));
    // Nothing was created by any of them.
    let out = run(ecs(e).args(["list", "--path", &path]));
    assert_eq!(assert_ok(&out).lines().count(), 1);
}

/// Rewrite version `serial` of `path/name` (dynamodb, generation 1) to hold `value`, sealed
/// exactly as the tool seals: what another writer with the same KMS access could store.
fn reseal_dynamodb_version(endpoint: &str, path: &str, name: &str, serial: u64, value: &[u8]) {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    use ecs_secrets::crypto::{seal, Binding, DataKey};
    use ecs_secrets::store::dynamodb::{key_sk, version_sk, CONTEXT_KEY};
    let ddb = dynamodb(endpoint);
    let key_item = block_on(
        ddb.get_item()
            .table_name("ecs-secrets")
            .key("path", Av::S(path.into()))
            .key("sk", Av::S(key_sk(1)))
            .consistent_read(true)
            .send(),
    )
    .unwrap()
    .item
    .expect("generation 1 of the path's data key");
    let blob = key_item["encrypted_key"].as_b().unwrap().clone();
    let plain = block_on(
        kms(endpoint)
            .decrypt()
            .ciphertext_blob(blob)
            .encryption_context(CONTEXT_KEY, path)
            .send(),
    )
    .unwrap();
    let key = DataKey::from_slice(plain.plaintext().unwrap().as_ref()).unwrap();
    let b = Binding {
        path,
        name,
        serial,
        generation: 1,
    };
    let sealed = seal(&key, &b, value).unwrap();
    block_on(
        ddb.update_item()
            .table_name("ecs-secrets")
            .key("path", Av::S(path.into()))
            .key("sk", Av::S(version_sk(name, serial)))
            .update_expression("SET ciphertext = :c, nonce = :n")
            .expression_attribute_values(":c", Av::B(sealed.ciphertext.into()))
            .expression_attribute_values(":n", Av::B(sealed.nonce.to_vec().into()))
            .send(),
    )
    .unwrap();
}

/// Issue 10, finding 4: a value with a NUL byte written by another tool made `exec` panic
/// with a backtrace and `env` print the raw NUL (shells then read `ab`, silently). Every
/// read now fails with one line naming the secret, on both backends and for every consumer:
/// exec (with and without --files), env in its three formats, fetch, and the daemon.
#[test]
fn a_nul_inside_a_stored_value_fails_every_read_naming_the_secret() {
    let m = moto();
    let e = &m.endpoint;
    let ssm_path = unique_path("nul-ssm");
    put_secure(e, &format!("{ssm_path}/FINE"), "fine");
    put_secure(e, &format!("{ssm_path}/HAS_NUL"), "a\0b");
    // dynamodb: the table and key made by `setup`, a version created by the tool, then
    // re-sealed with a NUL inside, as another writer holding the same keys could.
    let ddb_path = unique_path("nul-ddb");
    let backend = [("ECS_SECRETS_BACKEND", "dynamodb")];
    assert_ok(&run(ecs(e)
        .args(["setup", "--path", &ddb_path])
        .envs(backend)));
    for (name, value) in [("FINE", "fine"), ("HAS_NUL", "a_b")] {
        assert_ok(&run(ecs(e)
            .args([
                "create",
                "--path",
                &ddb_path,
                "--name",
                name,
                "--payload",
                value,
            ])
            .envs(backend)));
    }
    reseal_dynamodb_version(e, &ddb_path, "HAS_NUL", 1, b"a\0b");

    let files = Scratch::shm("nul-files");
    for (path, vars) in [(&ssm_path, &[][..]), (&ddb_path, &backend[..])] {
        let named = format!("{path}/HAS_NUL");
        let check = |args: &[&str]| {
            let out = run(ecs(e).args(args).envs(vars.iter().copied()));
            let stderr = assert_fail(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", describe(&out));
            assert!(
                stderr.contains(&named) && stderr.contains("NUL byte"),
                "{args:?}\n{}",
                describe(&out)
            );
            assert_eq!(stderr.lines().count(), 1, "{args:?}\n{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            out
        };
        let mut exec = ecs(e);
        exec.envs(vars.iter().copied());
        assert_exec_not_started(exec, &["--path", path]);
        let dir = files.join(&format!("d{}", path.len() % 7));
        let mut exec = ecs(e);
        exec.envs(vars.iter().copied());
        let d = dir.to_str().unwrap();
        assert_exec_not_started(exec, &["--path", path, "--files", d, "--no-env"]);
        assert!(!dir.exists(), "no file written");
        let out = check(&["env", "--path", path]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "echo 'ecs-secrets: failed to load secrets, see the error above' >&2; exit 1\n"
        );
        for f in ["dotenv", "json"] {
            let out = check(&["env", "--path", path, "--format", f]);
            assert!(out.stdout.is_empty(), "{f}");
        }
        let out = check(&["fetch", "--path", path, "--name", "HAS_NUL"]);
        assert!(out.stdout.is_empty());
        // The other secret of the path still reads.
        let out = run(ecs(e)
            .args(["fetch", "--path", path, "--name", "FINE"])
            .envs(vars.iter().copied()));
        assert!(assert_ok(&out).contains("\"payload\":\"fine\""));
        let mut c = ecs(e);
        c.args(["daemon", "--path", path, "--listen", "127.0.0.1:0"])
            .envs(vars.iter().copied());
        let d = DaemonProcess::spawn(c);
        let r = d.get("/latest/secrets/HAS_NUL").unwrap();
        assert_eq!(r.status, 502, "{}", r.text());
        let body = r.json();
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(&named) && msg.contains("NUL byte"), "{msg}");
        assert!(!r.text().contains("a\\u0000b"), "{}", r.text());
        d.stop();
    }
}

/// Issue 10, finding 9: 40 secrets of 60 KiB (dynamodb) made execve fail with "Argument list
/// too long", exit 126, after the files were written. The size is now checked first: exit 1,
/// one line saying what is too large and what to do, nothing started; and what it suggests
/// (`--files DIR --no-env`) works.
#[test]
fn an_environment_over_the_kernel_limit_fails_before_exec_saying_what_to_do() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("e2big");
    let backend = [("ECS_SECRETS_BACKEND", "dynamodb")];
    assert_ok(&run(ecs(e).args(["setup", "--path", &path]).envs(backend)));
    let value = vec![b'v'; 60 * 1024];
    for i in 0..40 {
        let out = stdin_run(
            ecs(e)
                .args(["create", "--path", &path, "--payload-stdin", "--name"])
                .arg(format!("BIG_{i:02}"))
                .envs(backend),
            &value,
        );
        assert_ok(&out);
    }
    // A fixed stack limit (8 MiB, the usual default) makes the kernel's limit 2 MiB.
    let wrapped = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("ulimit -s 8192 && exec \"$0\" \"$@\"")
            .arg(bin())
            .args(args);
        scrub_env(&mut c, e).envs(backend);
        c
    };
    let shm = Scratch::shm("e2big");
    let marker = shm.join("started");
    let m_s = marker.to_str().unwrap();
    let out = run(&mut wrapped(&["exec", "--path", &path, "--", "touch", m_s]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!marker.exists(), "nothing started");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("over Linux's limit of 2097152 bytes")
            && stderr.contains("40 secrets in the environment take")
            && stderr.contains("--files DIR --no-env"),
        "{stderr}"
    );
    assert!(!stderr.contains("vvvv"), "{stderr}");
    // With --files, no file was written either.
    let dir = shm.join("secrets");
    let d = dir.to_str().unwrap();
    let out = run(&mut wrapped(&[
        "exec",
        "--path",
        &path,
        "--files",
        d,
        "--file-env",
        "--",
        "touch",
        m_s,
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!dir.exists() && !marker.exists());
    // What the message suggests works.
    let out = run(&mut wrapped(&[
        "exec",
        "--path",
        &path,
        "--files",
        d,
        "--no-env",
        "--file-env",
        "--",
        "sh",
        "-c",
        "wc -c < \"$BIG_39_FILE\"",
    ]));
    assert_eq!(assert_ok(&out).trim(), "61440");
}
