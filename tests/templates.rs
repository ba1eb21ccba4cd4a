//! `--template SRC:DEST` on `exec` (with and without `--refresh`) and `sync`, through the
//! real binary against moto: every filter round-trips hostile values through the real parser
//! of its format (Python's json, PyYAML, xml.etree, urllib.parse, sh, base64) byte for byte;
//! every failure fails closed with nothing written and CMD not started; a refresh renders
//! again before the `--on-change` signal reaches CMD; `--user` owns the output.

mod common;
mod supervised;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SM: [&str; 2] = ["--backend", "secretsmanager"];

#[track_caller]
fn put_sm(endpoint: &str, path: &str, name: &str, value: &str) {
    let full = format!("{}/{name}", path.trim_start_matches('/'));
    block_on(
        secretsmanager(endpoint)
            .create_secret()
            .name(&full)
            .secret_string(value)
            .send(),
    )
    .unwrap_or_else(|e| panic!("CreateSecret {full}: {e:?}"));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn write(p: &Path, text: &str) -> String {
    std::fs::write(p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// What XML 1.0 can carry (its filter refuses the rest).
fn xml_ok(v: &str) -> bool {
    !v.chars()
        .any(|c| (c < ' ' && !"\t\n\r".contains(c)) || c == '\u{FFFE}' || c == '\u{FFFF}')
}

/// Values that break naive quoting in some format, each in every filter's round trip
/// (XML cannot carry C0 controls besides tab, newline and carriage return, nor U+FFFE and
/// U+FFFF: `CONTROLS` and `NONCHARS` are left out of its template; the refusal is checked
/// in `failures_fail_closed…`).
fn hostile() -> Vec<(&'static str, String)> {
    let markup = r#"&amp; <a href="x">'y'</a> ]]> <!-- --> </script> &#0;"#;
    let unicode = "é ü ß € 中文 🔑🦀 e\u{301} \u{FEFF}bom \u{202E}rtl \u{2028}ls \u{2029}ps \
                   \u{85}nel \u{A0}nbsp \u{10FFFF}";
    let mut big = String::new();
    while big.len() < 10 * 1024 {
        big.push_str(&format!(
            "{markup} {unicode} \"q\" 'q' \\ \n\r\t ${{X}} {{{{ A }}}} %41 % @:/?#[]+= "
        ));
    }
    vec![
        ("QUOTES", r#"'single' "double" '\'' "\"" it's"#.into()),
        ("BACKSLASHES", r"\ \\ \n \0 \x41 \u0041 \' C:\dir\".into()),
        ("NEWLINES", "\nfirst\n\nsecond\r\nthird\r\n\t\n".into()),
        (
            "SUBST",
            "$(id) `id` ${HOME} $HOME {{ A }} {{ }} }} %s %41 %%".into(),
        ),
        ("MARKUP", markup.into()),
        (
            "URLISH",
            "user@host:5432/db?x=1&y=2#frag +plus %2F space ~._-".into(),
        ),
        ("UNICODE", unicode.into()),
        (
            "YAMLISH",
            "- a: b\n? c\n: d # e\n--- ... !tag &anchor *alias |\n> ".into(),
        ),
        ("BLANKS", "  \t leading and trailing \t  ".into()),
        (
            "CONTROLS",
            (1u8..=31).chain([127]).map(char::from).collect(),
        ),
        ("NONCHARS", "x\u{FFFE}y\u{FFFF}z".into()),
        ("BIG", big),
    ]
}

const CHECK: &str = r#"
import base64, json, subprocess, sys, urllib.parse, xml.etree.ElementTree as ET
import yaml
d, want = sys.argv[1], json.load(open(sys.argv[2], encoding="utf-8"))
vals, xml_names = want["values"], want["xml"]
bad = []
def check(fmt, name, got):
    if got != vals[name]:
        bad.append("%s %s: got %r" % (fmt, name, got[:80] if isinstance(got, (str, bytes)) else got))
j = json.load(open(d + "/t.json", encoding="utf-8"))
y = yaml.safe_load(open(d + "/t.yaml", encoding="utf-8"))
root = ET.parse(d + "/t.xml").getroot()
els = {e.get("n"): e for e in root}
for n in vals:
    check("json", n, j[n])
    check("yaml", n, y["block"][n])
    check("yaml flow", n, y["flow_" + n][0])
    raw = open(d + "/raw_" + n, "rb").read()
    check("raw", n, raw[1:-1].decode("utf-8"))
for n in xml_names:
    e = els[n]
    check("xml attribute \"", n, e.get("a"))
    check("xml attribute '", n, e.get("b"))
    check("xml text", n, e.text or "")
for line in open(d + "/t.url", encoding="ascii"):
    n, u = line.rstrip("\n").split(" ", 1)
    s = urllib.parse.urlsplit(u)
    unq = lambda v: urllib.parse.unquote(v, errors="strict")
    check("url userinfo", n, unq(s.password or ""))
    check("url path", n, unq(s.path[len("/db/"):]))
    q = urllib.parse.parse_qs(s.query, keep_blank_values=True, errors="strict")
    check("url query", n, q["v"][0])
    check("url fragment", n, unq(s.fragment))
for line in open(d + "/t.b64", encoding="ascii"):
    n, b = (line.rstrip("\n").split(" ", 1) + [""])[:2]
    check("base64", n, base64.b64decode(b, validate=True).decode("utf-8"))
for n in vals:
    out = subprocess.run(["sh", "-c", '. "$1"; printf "%s" "$' + n + '"', "sh", d + "/t.sh"],
                         capture_output=True, check=True).stdout
    check("sh", n, out.decode("utf-8"))
print("\n".join(bad) if bad else "ok")
"#;

#[test]
fn every_filter_round_trips_hostile_values_through_its_formats_parser() {
    let m = moto();
    let path = unique_path("tmpl-roundtrip");
    let values = hostile();
    for (n, v) in &values {
        put_sm(&m.endpoint, &path, n, v);
    }
    let src = Scratch::shm("tmpl-src");
    let out = Scratch::shm("tmpl-out");
    let dest = out.join("d");
    let mut json = String::from("{\"_\": 0");
    let mut yaml = String::from("block:\n");
    let mut flow = String::new();
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<r>\n");
    let (mut url, mut b64, mut sh) = (String::new(), String::new(), String::new());
    let mut args: Vec<String> = Vec::new();
    for (n, v) in &values {
        json.push_str(&format!(",\n  \"{n}\": {{{{ {n} | json }}}}"));
        yaml.push_str(&format!("  {n}: {{{{ {n} | yaml }}}}\n"));
        flow.push_str(&format!("flow_{n}: [{{{{{n}|yaml}}}}]\n"));
        if xml_ok(v) {
            xml.push_str(&format!(
                "  <e n=\"{n}\" a=\"{{{{ {n} | xml }}}}\" b='{{{{ {n} | xml }}}}'>{{{{ {n} | xml }}}}</e>\n"
            ));
        }
        url.push_str(&format!(
            "{n} postgres://app:{{{{ {n} | url }}}}@db.example:5432/db/{{{{ {n} | url }}}}?v={{{{ {n} | url }}}}&w=1#{{{{ {n} | url }}}}\n"
        ));
        b64.push_str(&format!("{n} {{{{ {n} | base64 }}}}\n"));
        sh.push_str(&format!("{n}={{{{ {n} | shell }}}}\n"));
        let raw = write(
            &src.join(&format!("raw_{n}.tmpl")),
            &format!("<{{{{ {n} }}}}>"),
        );
        args.push(format!("{raw}:{}/raw_{n}", dest.display()));
    }
    json.push_str("\n}\n");
    yaml.push_str(&flow);
    xml.push_str("</r>\n");
    for (name, text) in [
        ("t.json", &json),
        ("t.yaml", &yaml),
        ("t.xml", &xml),
        ("t.url", &url),
        ("t.b64", &b64),
        ("t.sh", &sh),
    ] {
        let s = write(&src.join(&format!("{name}.tmpl")), text);
        args.push(format!("{s}:{}/{name}", dest.display()));
    }
    let mut c = ecs(&m.endpoint);
    c.args(["sync", "--path", &path]).args(SM);
    for a in &args {
        c.args(["--template", a]);
    }
    let o = run(&mut c);
    assert_ok(&o);

    let want = serde_json::json!({
        "values": values.iter().map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "xml": values.iter().filter(|(_, v)| xml_ok(v)).map(|(n, _)| *n).collect::<Vec<_>>(),
    });
    let want_file = src.join("want.json");
    std::fs::write(&want_file, want.to_string()).unwrap();
    let check = run(Command::new("python3")
        .args(["-c", CHECK])
        .arg(&dest)
        .arg(&want_file));
    assert!(
        check.status.success(),
        "the checker needs python3 with PyYAML (scripts/deps.sh installs it: pip install \
         pyyaml)\n{}",
        describe(&check)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");

    // Written like --files: DEST's directory created 0700, each output 0400, all recorded.
    assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o7777, 0o700);
    for name in ["t.json", "raw_BIG"] {
        assert_eq!(
            std::fs::metadata(dest.join(name)).unwrap().mode() & 0o7777,
            0o400
        );
    }
    let manifest = std::fs::read_to_string(dest.join(".ecs-secrets-files")).unwrap();
    assert_eq!(manifest.lines().count(), 1 + values.len() + 6, "{manifest}");
}

/// Runs `exec ARGS -- touch MARKER` expecting a failure before CMD starts; asserts that
/// `dir` holds exactly `left` afterwards, and that no secret value is in stderr.
#[track_caller]
fn fails_closed(endpoint: &str, args: &[String], dir: &Path, left: &[&str]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = assert_exec_not_started(ecs(endpoint), &args);
    assert!(!err.contains("hunter2"), "a value in the message: {err}");
    if left.is_empty() {
        assert!(!dir.exists(), "{} was created", dir.display());
    } else {
        assert_eq!(entries(dir), left, "nothing written or removed");
    }
    err
}

#[test]
fn failures_fail_closed_naming_src_and_line_with_nothing_written() {
    let m = moto();
    let path = unique_path("tmpl-fail");
    put_secure(&m.endpoint, &format!("{path}/A"), "hunter2-a");
    put_secure(&m.endpoint, &format!("{path}/CTRL"), "hunter2\u{1}");
    let src = Scratch::shm("tmpl-fail-src");
    let out = Scratch::shm("tmpl-fail-out");
    let dest = out.join("new");
    let good = write(&src.join("good.tmpl"), "a={{ A | url }}\n");
    let files = out.join("files");
    let base = |t: &str| -> Vec<String> {
        vec![
            "--path".into(),
            path.clone(),
            "--files".into(),
            files.to_str().unwrap().into(),
            "--template".into(),
            format!("{good}:{}/good", dest.display()),
            "--template".into(),
            format!("{t}:{}/bad", dest.display()),
        ]
    };
    let cases = [
        (
            "unknown-name",
            "ok {{ A }}\n\n{{ NOPE }}\n",
            "line 3: no secret was fetched for NOPE",
        ),
        (
            "unknown-filter",
            "{{ A }}\n{{ A | jsn }}",
            "line 2: unknown filter \"jsn\"",
        ),
        ("unclosed", "x\n{{ A | json", "line 2: \"{{\" is not closed"),
        ("empty", "{{ }}", "line 1: empty placeholder"),
        (
            "two-filters",
            "{{ A | json | url }}",
            "line 1: {{ A | json | url }} has more than one filter",
        ),
        (
            "xml-control",
            "<a>{{ A | xml }}</a>\n<b>{{ CTRL | xml }}</b>",
            "line 2: the value of",
        ),
    ];
    for (tag, text, want) in cases {
        let t = write(&src.join(&format!("{tag}.tmpl")), text);
        let err = fails_closed(&m.endpoint, &base(&t), &dest, &[]);
        assert!(
            err.contains(&format!("--template {t}, {want}")),
            "{tag}: {err}"
        );
        assert!(!files.exists(), "{tag}: --files written");
    }

    // SRC missing, a FIFO (must not hang), a directory, too big.
    let fifo = src.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let big = write(&src.join("big"), &"x".repeat(1024 * 1024 + 1));
    for (t, want) in [
        (
            src.join("missing").to_str().unwrap().to_string(),
            "cannot open the template",
        ),
        (fifo.to_str().unwrap().to_string(), "not a regular file"),
        (src.0.to_str().unwrap().to_string(), "not a regular file"),
        (big, "larger than 1024 KiB"),
    ] {
        let err = fails_closed(&m.endpoint, &base(&t), &dest, &[]);
        assert!(err.contains(&format!("--template {t}: {want}")), "{err}");
    }

    // DEST on disk, or its directory a symlink: refused before anything is fetched.
    let disk = Scratch::disk("tmpl-disk");
    let on_disk = vec![
        "--path".into(),
        path.clone(),
        "--template".into(),
        format!("{good}:{}/good", disk.join("d").display()),
    ];
    let err = fails_closed(&m.endpoint, &on_disk, &disk.join("d"), &[]);
    assert!(
        err.contains("not on tmpfs or ramfs") && err.contains("--allow-disk"),
        "{err}"
    );
    assert!(err.contains("the --template directory"), "{err}");
    std::os::unix::fs::symlink(&out.0, out.join("link")).unwrap();
    let err = fails_closed(
        &m.endpoint,
        &[
            "--path".into(),
            path.clone(),
            "--template".into(),
            format!("{good}:{}/x", out.join("link").display()),
        ],
        &out.join("link/x"),
        &[],
    );
    assert!(err.contains("symbolic link"), "{err}");

    // A bad pair: usage errors.
    for (pair, want) in [
        ("a", "no ':'"),
        ("a:b:c", "more than one ':'"),
        (":x", "both be given"),
        ("x:/run/", "file name"),
        ("x:/run/.hidden", "file name"),
    ] {
        let o =
            run(ecs(&m.endpoint).args(["exec", "--path", &path, "--template", pair, "--", "true"]));
        assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{}",
            describe(&o)
        );
    }
}

#[test]
fn a_template_removed_from_the_flags_has_its_output_removed() {
    let m = moto();
    let path = unique_path("tmpl-gone");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let src = Scratch::shm("tmpl-gone-src");
    let out = Scratch::shm("tmpl-gone-out");
    let t = write(&src.join("t"), "a={{A}}");
    let pair = |name: &str| format!("{t}:{}/{name}", out.join("d").display());
    let sync = |pairs: &[String]| {
        let mut c = ecs(&m.endpoint);
        c.args(["sync", "--path", &path]);
        for p in pairs {
            c.args(["--template", p]);
        }
        assert_ok(&run(&mut c));
    };
    sync(&[pair("one.conf"), pair("two.conf")]);
    assert_eq!(
        entries(&out.join("d")),
        [".ecs-secrets-files", "one.conf", "two.conf"]
    );
    sync(&[pair("one.conf")]);
    assert_eq!(entries(&out.join("d")), [".ecs-secrets-files", "one.conf"]);
    // Beside --files in the same directory (named two ways): one manifest for both.
    let mut c = ecs(&m.endpoint);
    c.args(["sync", "--path", &path, "--files"])
        .arg(out.join("d"))
        .args([
            "--template",
            &format!("{t}:{}/./one.conf", out.join("d").display()),
        ]);
    assert_ok(&run(&mut c));
    assert_eq!(
        entries(&out.join("d")),
        [".ecs-secrets-files", "A", "one.conf"]
    );
    // A template named like a secret in the --files directory is refused, nothing changed.
    let mut c = ecs(&m.endpoint);
    c.args(["sync", "--path", &path, "--files"])
        .arg(out.join("d"))
        .args(["--template", &pair("A")]);
    let err = assert_fail(&run(&mut c));
    assert!(err.contains("taken"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("d/A")).unwrap(), "one");
    assert_eq!(
        std::fs::read_to_string(out.join("d/one.conf")).unwrap(),
        "a=one"
    );
}

#[test]
fn sync_gives_the_output_to_user_and_reads_templates_from_the_environment() {
    let m = moto();
    let path = unique_path("tmpl-user");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "p@ss:w/rd");
    let src = Scratch::shm("tmpl-user-src");
    let out = Scratch::shm("tmpl-user-out");
    let t1 = write(
        &src.join("jdbc.tmpl"),
        "url=jdbc:postgresql://db/app?password={{ DB_PASSWORD | url }}\n",
    );
    let t2 = write(&src.join("auth.tmpl"), "{{DB_PASSWORD}}");
    let mut c = ecs(&m.endpoint);
    c.args(["sync", "--path", &path, "--user", "65534:65534"])
        .env(
            "ECS_SECRETS_TEMPLATES",
            format!(
                "{t1}:{}/app.properties,{t2}:{}/auth",
                out.join("d").display(),
                out.join("d").display()
            ),
        );
    assert_ok(&run(&mut c));
    let f = out.join("d/app.properties");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "url=jdbc:postgresql://db/app?password=p%40ss%3Aw%2Frd\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("d/auth")).unwrap(),
        "p@ss:w/rd"
    );
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o400);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    let d = std::fs::metadata(out.join("d")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid()), (0o700, 65534));
}

#[test]
fn exec_no_env_puts_values_only_in_the_rendered_file() {
    let m = moto();
    let path = unique_path("tmpl-noenv");
    put_secure(&m.endpoint, &format!("{path}/A"), "only-in-the-file");
    let src = Scratch::shm("tmpl-noenv-src");
    let out = Scratch::shm("tmpl-noenv-out");
    let t = write(&src.join("t"), "{\"a\": {{ A | json }}}");
    let dest = out.join("d/conf.json");
    let o = run(ecs(&m.endpoint).args([
        "exec",
        "--path",
        &path,
        "--no-env",
        "--template",
        &format!("{t}:{}", dest.display()),
        "--",
        "sh",
        "-c",
        &format!("echo \"env=${{A-unset}}\"; cat {}", dest.display()),
    ]));
    assert_eq!(assert_ok(&o), "env=unset\n{\"a\": \"only-in-the-file\"}");
}

#[test]
fn a_refresh_renders_again_before_the_signal_reaches_the_command() {
    use supervised::*;
    let m = moto();
    let path = unique_path("tmpl-refresh");
    put_secure(&m.endpoint, &format!("{path}/A"), "one");
    let src = Scratch::shm("tmpl-refresh-src");
    let out = Scratch::shm("tmpl-refresh-out");
    // Large enough that a torn write would be seen by the reader loop below.
    let t = write(&src.join("t"), &"v={{ A | json }};".repeat(4000));
    let dest = out.join("d/conf");
    let script = format!(
        "f={f}; echo \"start $(head -c 10 $f)\"; \
         trap 'echo \"hup $(head -c 10 $f)\"' HUP; \
         while :; do n=$(wc -c < $f); [ \"$n\" -eq {one} ] || [ \"$n\" -eq {two} ] || echo \"torn $n\"; sleep 0.02; done",
        f = dest.display(),
        one = "v=\"one\";".len() * 4000,
        two = "v=\"two\";".len() * 4000,
    );
    let mut r = Running::start(exec_sh(
        &m.endpoint,
        &path,
        &[
            "--refresh",
            "1",
            "--splay",
            "0",
            "--on-change",
            "signal:SIGHUP",
            "--template",
            &format!("{t}:{}", dest.display()),
        ],
        &script,
    ));
    assert_eq!(r.line("start ", PATIENCE), "start v=\"one\";v=");
    put_secure(&m.endpoint, &format!("{path}/A"), "two");
    assert_eq!(r.line("hup ", PATIENCE), "hup v=\"two\";v=");
    let more = r.drain(Duration::from_secs(2));
    assert!(!more.iter().any(|l| l.starts_with("torn")), "{more:?}");
    assert!(
        !r.seen.iter().any(|l| l.starts_with("torn")),
        "{:?}",
        r.seen
    );
    assert!(r.running());
}
