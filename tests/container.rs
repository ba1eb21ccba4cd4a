//! The container for real, without Docker: an empty root holding only the static binary
//! (and busybox, to be the application), entered with `unshare --fork --pid --mount` and
//! `chroot`, so the binary is PID 1 of its own PID namespace and finds nothing of an image
//! around it — no libc, no /etc, no /etc/ssl, no shell but the application's. The network
//! namespace is shared, so moto is reached on 127.0.0.1.
//!
//! Needs root (unshare, mount, chroot), busybox-static at /bin/busybox, util-linux and the
//! openssl CLI; `scripts/deps.sh` installs them.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";
/// The applets the test applications use.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "printf", "id", "stat", "ls", "kill", "sleep", "test", "[", "true",
    "grep", "head", "wc", "readlink",
];

/// Hard-links `from` to `to` (the debug binary is large), copying across filesystems.
fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    }
}

/// An empty root: `/ecs-secrets`, `/bin/busybox` with its applets, and empty `/run/secrets`
/// and `/proc` to mount on. Nothing else — no /etc, no /dev, no libc, no certificates. It
/// lives under the target dir, which is on disk (so `--files` there is refused).
struct Jail {
    root: Scratch,
}

/// How to enter a [`Jail`].
#[derive(Default, Clone, Copy)]
struct Enter<'a> {
    /// Mount a tmpfs on /run/secrets with these options.
    tmpfs: Option<&'a str>,
    /// Mount /proc (the new PID namespace's).
    proc: bool,
    /// `chroot --userspec`: start the binary itself as this user.
    userspec: Option<&'a str>,
    /// Root keeps only these capabilities (a `setpriv --bounding-set` list, e.g.
    /// `+chown,+setuid`), as with `capabilities.drop: ["ALL"]` plus `add` in ECS.
    caps: Option<&'a str>,
    /// Run chroot as a child (the app is then not PID 1) and these host commands after it,
    /// still in the namespace (e.g. to look at the tmpfs); `$root` is the jail.
    after: Option<&'a str>,
}

impl Jail {
    fn new(tag: &str) -> Jail {
        let root = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), tag);
        let r = &root.0;
        link_or_copy(Path::new(bin()), &r.join("ecs-secrets"));
        std::fs::create_dir(r.join("bin")).unwrap();
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: apt-get install busybox-static (scripts/deps.sh)"
        );
        link_or_copy(Path::new(BUSYBOX), &r.join("bin/busybox"));
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
        std::fs::create_dir_all(r.join("run/secrets")).unwrap();
        std::fs::create_dir(r.join("proc")).unwrap();
        Jail { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.0.join(rel)
    }

    /// Writes `rel` (e.g. `etc/passwd`) inside the jail.
    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }

    /// `unshare --fork --pid --mount`, mounts, then `chroot ROOT ARGV…` with the test
    /// environment (pointing at `endpoint`).
    fn command(&self, endpoint: &str, how: Enter<'_>, argv: &[&str]) -> Command {
        let mut script = String::from("set -e; root=$1; shift\n");
        if let Some(opts) = how.tmpfs {
            script.push_str(&format!(
                "mount -t tmpfs -o '{opts}' tmpfs \"$root/run/secrets\"\n"
            ));
        }
        if how.proc {
            script.push_str("mount -t proc proc \"$root/proc\"\n");
        }
        let mut chroot = match how.userspec {
            Some(u) => format!("chroot --userspec={u} \"$root\" \"$@\""),
            None => "chroot \"$root\" \"$@\"".to_string(),
        };
        if let Some(caps) = how.caps {
            // chroot itself needs SYS_CHROOT; the binary keeps it too, harmlessly.
            chroot = format!("setpriv --bounding-set=-all,+sys_chroot,{caps} {chroot}");
        }
        match how.after {
            None => script.push_str(&format!("exec {chroot}\n")),
            Some(after) => script.push_str(&format!(
                "set +e; {chroot}; rc=$?; echo \"-- exit $rc\"; {after}\nexit $rc\n"
            )),
        }
        let mut c = Command::new("unshare");
        scrub_env(&mut c, endpoint);
        c.args([
            "--fork",
            "--pid",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(&self.root.0)
        .args(argv);
        c
    }
}

/// `["/ecs-secrets", "exec", ARGS…, "--", "/bin/sh", "-c", SCRIPT]`.
fn exec_argv<'a>(args: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut v = vec!["/ecs-secrets", "exec"];
    v.extend_from_slice(args);
    v.extend_from_slice(&["--", "/bin/sh", "-c", script]);
    v
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn in_an_empty_root_the_app_is_pid_1_with_env_and_files() {
    let m = moto();
    let path = unique_path("pid1");
    put_secure(&m.endpoint, &format!("{path}/DB_USER"), "grafana");
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), "s3cret pw");
    let jail = Jail::new("pid1");
    let script = "echo pid=$$; echo user=$DB_USER; echo pw=$DB_PASSWORD; \
                  echo file=$DB_PASSWORD_FILE; echo content=$(cat $DB_PASSWORD_FILE); \
                  stat -c '%n %a %u %g' /run/secrets /run/secrets/DB_PASSWORD; \
                  stat -f -c 'fs=%T' /run/secrets; echo root: $(ls /)";
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter {
            tmpfs: Some("mode=0755,size=1m"),
            ..Default::default()
        },
        &exec_argv(
            &["--path", &path, "--files", "/run/secrets", "--file-env"],
            script,
        ),
    ));
    let s = assert_ok(&out);
    assert_eq!(
        lines(&s),
        [
            "pid=1",
            "user=grafana",
            "pw=s3cret pw",
            "file=/run/secrets/DB_PASSWORD",
            "content=s3cret pw",
            "/run/secrets 755 0 0",
            "/run/secrets/DB_PASSWORD 400 0 0",
            "fs=tmpfs",
            // Nothing but what the test put there: the image needs nothing else.
            "root: bin ecs-secrets proc run",
        ],
        "{}",
        describe(&out)
    );
}

/// Reads `child`'s stdout lines on a thread.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The host PID of the only child of `pid` (unshare's forked child: PID 1 inside).
fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let kids: Vec<u32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(kids.len(), 1, "unshare's children: {kids:?}");
    kids[0]
}

#[test]
fn sigterm_from_outside_reaches_the_apps_own_trap_as_pid_1() {
    let m = moto();
    let path = unique_path("sigterm");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let jail = Jail::new("sigterm");
    let script = "trap 'echo got TERM; exit 42' TERM; echo ready $$; \
                  while :; do sleep 1 & wait $!; done";
    let mut child = jail
        .command(
            &m.endpoint,
            Enter::default(),
            &exec_argv(&["--path", &path], script),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let rx = line_reader(&mut child);
    let ready = rx.recv_timeout(Duration::from_secs(60));
    if ready.as_deref() != Ok("ready 1") {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("no 'ready 1' line: {ready:?}\n{}", describe(&out));
    }

    // Inside, PID 1 is the application itself (busybox sh): exec replaced ecs-secrets,
    // nothing supervises it.
    let pid1 = only_child(child.id());
    let status = std::fs::read_to_string(format!("/proc/{pid1}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.ends_with("\t1"), "{nspid}");
    let exe = std::fs::read_link(format!("/proc/{pid1}/exe")).unwrap();
    assert_eq!(exe, jail.path("bin/busybox"));

    // As `docker stop` / ECS do: SIGTERM to the container's PID 1 from outside.
    // SAFETY: sending a signal to a process we started.
    assert_eq!(unsafe { libc::kill(pid1 as i32, libc::SIGTERM) }, 0);
    let got = rx.recv_timeout(Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the app did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got.as_deref(), Ok("got TERM"));
    assert_eq!(code, Some(42), "the trap's exit status");
}

#[test]
fn user_drop_in_an_empty_root_needs_no_etc_passwd() {
    let m = moto();
    let path = unique_path("userdrop");
    put_secure(&m.endpoint, &format!("{path}/TOKEN"), "t0ken");
    let jail = Jail::new("userdrop");
    let script = "echo pid=$$; id -u; id -g; id -G; echo home=$HOME; cat $TOKEN_FILE; echo; \
                  stat -c '%n %a %u %g' /run/secrets/app /run/secrets/app/TOKEN; \
                  grep -E '^(Uid|Gid|Groups|CapEff):' /proc/self/status";
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter {
            tmpfs: Some("mode=0755,size=1m"),
            proc: true,
            ..Default::default()
        },
        &exec_argv(
            &[
                "--path",
                &path,
                "--files",
                "/run/secrets/app",
                "--file-env",
                "--no-env",
                "--user",
                "65534:65534",
            ],
            script,
        ),
    ));
    let s = assert_ok(&out);
    let l = lines(&s);
    assert!(!jail.path("etc").exists());
    assert_eq!(
        &l[..9],
        [
            "pid=1",
            "65534",
            "65534",
            "65534",
            "home=/",
            "t0ken",
            "/run/secrets/app 700 65534 65534",
            "/run/secrets/app/TOKEN 400 65534 65534",
            "Uid:\t65534\t65534\t65534\t65534",
        ],
        "{}",
        describe(&out)
    );
    assert_eq!(l[9], "Gid:\t65534\t65534\t65534\t65534");
    assert!(l.contains(&"CapEff:\t0000000000000000"), "{s}");
    assert!(l.iter().any(|x| x.trim_end() == "Groups:\t65534"), "{s}");
}

#[test]
fn user_and_files_need_only_the_chown_setuid_and_setgid_capabilities() {
    let m = moto();
    let path = unique_path("caps");
    put_secure(&m.endpoint, &format!("{path}/A"), "capped");
    let jail = Jail::new("caps");
    let args = [
        "--path",
        &path,
        "--files",
        "/run/secrets/app",
        "--file-env",
        "--user",
        "1000:1000",
    ];
    let script = "id -u; cat $A_FILE; echo; stat -c '%a %u' /run/secrets/app $A_FILE";
    // No DAC_OVERRIDE or FOWNER: the new directory is filled before it is given away.
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter {
            tmpfs: Some("mode=0755,size=1m"),
            caps: Some("+chown,+setuid,+setgid"),
            ..Default::default()
        },
        &exec_argv(&args, script),
    )));
    assert_eq!(lines(&s), ["1000", "capped", "700 1000", "400 1000"], "{s}");
    // Without CHOWN the files cannot be given to the user: refused, nothing left behind.
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter {
            tmpfs: Some("mode=0755,size=1m"),
            caps: Some("+setuid,+setgid"),
            after: Some("ls -a \"$root/run/secrets\""),
            ..Default::default()
        },
        &exec_argv(&args, script),
    ));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("chown") && e.contains("CHOWN capability"), "{e}");
    assert_eq!(
        lines(&String::from_utf8_lossy(&out.stdout)),
        ["-- exit 1", ".", ".."],
        "{}",
        describe(&out)
    );
}

#[test]
fn named_users_come_from_the_images_passwd_and_group() {
    let m = moto();
    let path = unique_path("named");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    let jail = Jail::new("named");
    jail.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
    );
    jail.write(
        "etc/group",
        "root:x:0:\napp:x:1000:\naudio:x:29:other,app\nvideo:x:44:other\n",
    );
    let script = "id -u; id -g; id -G; echo home=$HOME; echo A=$A";
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &exec_argv(&["--path", &path, "--user", "app"], script),
    )));
    assert_eq!(
        lines(&s),
        ["1000", "1000", "1000 29", "home=/home/app", "A=a"]
    );
    // An explicit group replaces the supplementary ones.
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &exec_argv(&["--path", &path, "--user", "app:video"], script),
    )));
    assert_eq!(lines(&s)[..3], ["1000", "44", "44"]);
    // An unknown name fails before anything is fetched or written.
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &exec_argv(
            &[
                "--path",
                &path,
                "--user",
                "ghost",
                "--files",
                "/run/secrets/x",
            ],
            "echo started",
        ),
    ));
    let e = assert_fail(&out);
    assert!(e.contains("unknown user \"ghost\""), "{e}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(!jail.path("run/secrets/x").exists());
}

/// `--user` reads /etc/passwd and /etc/group only as bounded regular files: a link to
/// `/proc/self/fd/0` with a stdin that never closes, a FIFO nobody writes, or a huge file
/// fail at once instead of hanging before and outside `--timeout`.
#[test]
fn user_never_hangs_on_an_etc_file_that_is_not_a_regular_file() {
    let m = moto();
    let path = unique_path("etc-fifo");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    let jail = Jail::new("etc-fifo");
    std::fs::create_dir(jail.path("etc")).unwrap();
    let fifo = |rel: &str| {
        let st = Command::new("mkfifo").arg(jail.path(rel)).status().unwrap();
        assert!(st.success(), "mkfifo {rel}");
    };
    let reset = |rel: &str| {
        let _ = std::fs::remove_file(jail.path(rel));
    };
    // Runs the binary with a stdin pipe the test keeps open; a hang is a failure.
    let attempt = |user: &str| -> String {
        let mut c = jail.command(
            &m.endpoint,
            Enter {
                proc: true,
                ..Default::default()
            },
            &exec_argv(&["--path", &path, "--user", user], "echo started"),
        );
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdin = child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let hung = child.try_wait().unwrap().is_none();
        // Closing stdin lets a hung binary go on (and end), so nothing is left behind.
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            !hung,
            "--user {user} hung reading an /etc file\n{}",
            describe(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("started"),
            "{}",
            describe(&out)
        );
        assert_fail(&out)
    };
    let cases: [(&str, &str, &str); 4] = [
        ("etc/passwd", "app", "not a regular file"),
        ("etc/passwd", "1000", "not a regular file"),
        ("etc/group", "app", "not a regular file"),
        ("etc/group", "1000:staff", "not a regular file"),
    ];
    for (rel, user, want) in cases {
        reset("etc/passwd");
        reset("etc/group");
        jail.write("etc/passwd", "app:x:1000:1000::/home/app:/bin/sh\n");
        jail.write("etc/group", "staff:x:50:app\n");
        reset(rel);
        std::os::unix::fs::symlink("/proc/self/fd/0", jail.path(rel)).unwrap();
        let e = attempt(user);
        assert!(
            e.contains(want) && e.contains(&format!("/{rel}")),
            "{rel} {user}: {e}"
        );
        reset(rel);
        fifo(rel);
        let e = attempt(user);
        assert!(e.contains("a FIFO"), "{rel} {user}: {e}");
    }
    // Larger than the bound (a sparse file).
    reset("etc/passwd");
    jail.write("etc/passwd", "app:x:1000:1000::/home/app:/bin/sh\n");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(jail.path("etc/passwd"))
        .unwrap();
    f.set_len((16 << 20) + 1).unwrap();
    let e = attempt("app");
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn a_directory_on_disk_is_refused_and_allow_disk_accepts_it() {
    let m = moto();
    let path = unique_path("disk");
    put_secure(&m.endpoint, &format!("{path}/A"), "on-disk");
    let jail = Jail::new("disk");
    assert_ne!(fs_magic(&jail.path("run/secrets")), TMPFS_MAGIC);
    // No tmpfs mounted: /run/secrets is the jail's own directory, on disk.
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &exec_argv(
            &["--path", &path, "--files", "/run/secrets"],
            "echo started",
        ),
    ));
    let e = assert_fail(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        e.contains("--files /run/secrets is not on tmpfs or ramfs") && e.contains("--allow-disk"),
        "{e}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(!jail.path("run/secrets/A").exists());

    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &exec_argv(
            &["--path", &path, "--files", "/run/secrets", "--allow-disk"],
            "cat /run/secrets/A",
        ),
    )));
    assert_eq!(s, "on-disk");
    assert_eq!(
        std::fs::read_to_string(jail.path("run/secrets/A")).unwrap(),
        "on-disk"
    );
}

#[test]
fn a_full_tmpfs_part_way_removes_every_file_and_the_new_directory() {
    let m = moto();
    let path = unique_path("full");
    // One page each; the tmpfs holds one page.
    put_secure(&m.endpoint, &format!("{path}/A"), &"a".repeat(4000));
    put_secure(&m.endpoint, &format!("{path}/B"), &"b".repeat(4000));
    let jail = Jail::new("full");
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter {
            tmpfs: Some("mode=0755,size=4k"),
            after: Some("ls -a \"$root/run/secrets\""),
            ..Default::default()
        },
        &exec_argv(
            &[
                "--path",
                &path,
                "--files",
                "/run/secrets/app",
                "--user",
                "65534",
            ],
            "echo started",
        ),
    ));
    let s = String::from_utf8_lossy(&out.stdout);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        e.contains("secret") && e.contains("/run/secrets/app/B") && e.contains("full"),
        "{e}"
    );
    assert!(!e.contains("aaaa") && !e.contains("bbbb"), "{e}");
    // After the failure the tmpfs is as it was: no app/, no A, no temporary files.
    assert_eq!(lines(&s), ["-- exit 1", ".", ".."], "{}", describe(&out));
}

#[test]
fn user_is_refused_when_the_binary_does_not_run_as_root() {
    let m = moto();
    let path = unique_path("nonroot");
    put_secure(&m.endpoint, &format!("{path}/A"), "a");
    let jail = Jail::new("nonroot");
    let out = run(&mut jail.command(
        &m.endpoint,
        Enter {
            userspec: Some("65534:65534"),
            ..Default::default()
        },
        &exec_argv(&["--path", &path, "--user", "1000:1000"], "echo started"),
    ));
    let e = assert_fail(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        e.contains("--user 1000:1000 needs root") && e.contains("uid 65534"),
        "{e}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    // Without --user the same unprivileged binary works.
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter {
            userspec: Some("65534:65534"),
            ..Default::default()
        },
        &exec_argv(&["--path", &path], "id -u; echo A=$A"),
    )));
    assert_eq!(lines(&s), ["65534", "A=a"]);
}

#[test]
fn hostnames_resolve_through_the_images_etc_hosts() {
    // Docker and ECS bind-mount /etc/hosts and /etc/resolv.conf into every container,
    // scratch included; the static binary must resolve names with nothing else there.
    let m = moto();
    let path = unique_path("hosts");
    put_secure(&m.endpoint, &format!("{path}/A"), "resolved");
    let jail = Jail::new("hosts");
    jail.write(
        "etc/hosts",
        "127.0.0.1 localhost\n127.0.0.1 moto.internal\n",
    );
    let endpoint = format!("http://moto.internal:{}", m.port);
    let s = assert_ok(&run(&mut jail.command(
        &endpoint,
        Enter::default(),
        &exec_argv(&["--path", &path, "--timeout", "10"], "echo A=$A"),
    )));
    assert_eq!(s, "A=resolved\n");
}

#[test]
fn install_links_in_a_staging_dir_makes_a_working_entrypoint() {
    // What docker/Dockerfile does: install-links next to the binary in a staging dir (the
    // links are then relative and survive COPY into scratch), and the image's
    // ENTRYPOINT ["ecs-secrets-exec", "--", …] dispatches on argv[0].
    let m = moto();
    let path = unique_path("links");
    put_secure(&m.endpoint, &format!("{path}/A"), "linked");
    let jail = Jail::new("links");
    let out = run(Command::new(jail.path("ecs-secrets"))
        .args(["install-links", jail.path("").to_str().unwrap()]));
    assert_ok(&out);
    for l in ["ecs-secrets-exec", "ecs-secrets-env"] {
        assert_eq!(
            std::fs::read_link(jail.path(l)).unwrap(),
            Path::new("ecs-secrets"),
            "{l} is relative"
        );
    }
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &[
            "/ecs-secrets-exec",
            "--path",
            &path,
            "--",
            "/bin/sh",
            "-c",
            "echo $$ $A",
        ],
    )));
    assert_eq!(s, "1 linked\n");
    let s = assert_ok(&run(&mut jail.command(
        &m.endpoint,
        Enter::default(),
        &["/ecs-secrets-env", "--path", &path],
    )));
    assert_eq!(s, "export A='linked'\n");
}

// ---------------------------------------------------------------------------------------
// TLS: compiled-in roots, plus SSL_CERT_FILE when set.

fn openssl(dir: &Path, args: &[&str]) {
    let out = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(out.status.success(), "openssl {args:?}\n{}", describe(&out));
}

/// A test CA and a server certificate for 127.0.0.1 and localhost signed by it:
/// (`ca.pem`, `server.pem`, `server.key`) in `dir`.
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ecs-secrets test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// moto serving HTTPS on a loopback port with the given certificate; killed on drop.
struct HttpsMoto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl HttpsMoto {
    fn start(dir: &Path, cert: &Path, key: &Path) -> HttpsMoto {
        let mut errors = String::new();
        for attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = dir.join(format!("moto-{attempt}.log"));
            let out = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new("moto_server");
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
                .arg(cert)
                .arg("-k")
                .arg(key)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out);
            // SAFETY: only prctl between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("{MOTO_MISSING}: {e}"));
            let mut m = HttpsMoto { child, port, log };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                if let Some(st) = m.child.try_wait().unwrap() {
                    errors.push_str(&format!("moto exited {st}:\n{text}\n"));
                    break;
                }
                if text.contains("Running on")
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                {
                    return m;
                }
                if Instant::now() > deadline {
                    let _ = m.child.kill();
                    panic!("HTTPS moto did not start:\n{text}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("HTTPS moto did not start:\n{errors}");
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpsMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "HTTPS moto log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

#[test]
fn tls_trusts_ssl_cert_file_and_otherwise_only_the_compiled_in_roots() {
    let work = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "pki");
    let (ca, cert, key) = test_pki(&work.0);
    let moto = HttpsMoto::start(&work.0, &cert, &key);
    let path = unique_path("tls");

    // Seed through the binary on the host, trusting the test CA.
    let out = stdin_run(
        ecs(&moto.endpoint()).env("SSL_CERT_FILE", &ca).args([
            "create",
            "--path",
            &path,
            "--name",
            "TLS_OK",
            "--payload-stdin",
        ]),
        b"over-https",
    );
    assert_ok(&out);

    let jail = Jail::new("tls");
    std::fs::copy(&ca, jail.path("test-ca.pem")).unwrap();
    let argv = exec_argv(&["--path", &path, "--timeout", "8"], "echo TLS_OK=$TLS_OK");

    // The empty root has no /etc/ssl: with SSL_CERT_FILE the test CA is trusted.
    let mut c = jail.command(&moto.endpoint(), Enter::default(), &argv);
    c.env("SSL_CERT_FILE", "/test-ca.pem");
    assert_eq!(assert_ok(&run(&mut c)), "TLS_OK=over-https\n");

    // Without it only the compiled-in Mozilla roots are trusted: the handshake fails on
    // the certificate — at once, not retried until the deadline — and the command never
    // starts.
    let start = Instant::now();
    let out = run(&mut jail.command(&moto.endpoint(), Enter::default(), &argv));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "a certificate error is final: {:?}",
        start.elapsed()
    );
    let e = assert_fail(&out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("TLS_OK"));
    assert!(
        e.contains("invalid peer certificate: UnknownIssuer") && e.contains("SSL_CERT_FILE"),
        "{e}"
    );
    assert!(e.contains(&path), "names the path: {e}");
}

// ---------------------------------------------------------------------------------------
// examples/ and docker/: what users copy must at least be well-formed and use real flags.

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// The `--flags` in the usage line of `ecs-secrets SUB --help`.
fn flags_of(sub: &str) -> Vec<String> {
    let out = run(Command::new(bin()).args([sub, "--help"]));
    let help = assert_ok(&out);
    let usage = help
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line for {sub}: {help}"));
    usage
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// Checks every ecs-secrets invocation in `argv` (an exec's command may be another one);
/// returns how many there were.
fn check_invocation(argv: &[&str], file: &str) -> usize {
    let Some(start) = argv.iter().position(|a| {
        let base = a.rsplit('/').next().unwrap();
        base == "ecs-secrets" || base == "ecs-secrets-exec" || base == "ecs-secrets-env"
    }) else {
        return 0;
    };
    let base = argv[start].rsplit('/').next().unwrap();
    let (sub, rest) = match base {
        "ecs-secrets-exec" => ("exec", &argv[start + 1..]),
        "ecs-secrets-env" => ("env", &argv[start + 1..]),
        _ => (
            *argv
                .get(start + 1)
                .unwrap_or_else(|| panic!("{file}: ecs-secrets without a command")),
            &argv[start + 2..],
        ),
    };
    let known = flags_of(sub);
    let end = rest.iter().position(|a| *a == "--").unwrap_or(rest.len());
    for a in &rest[..end] {
        if a.starts_with("--") {
            assert!(
                known.iter().any(|k| k == a),
                "{file}: `ecs-secrets {sub}` has no flag {a} (it has {known:?})"
            );
        }
    }
    if sub == "exec" {
        assert!(
            end < rest.len(),
            "{file}: exec needs `--` before the command"
        );
        assert!(
            end + 1 < rest.len(),
            "{file}: exec needs a command after `--`"
        );
    }
    1 + if end < rest.len() {
        check_invocation(&rest[end + 1..], file)
    } else {
        0
    }
}

#[test]
fn examples_are_valid_task_definitions_that_use_real_flags() {
    const VARIABLES: &[&str] = &[
        "ECS_SECRETS_BACKEND",
        "ECS_SECRETS_PATH",
        "ECS_SECRETS_RECURSIVE",
        "ECS_SECRETS_TABLE",
        "ECS_SECRETS_KMS_KEY",
        "ECS_SECRETS_TIMEOUT",
        "ECS_SECRETS_DEBUG",
        "ECS_SECRETS_TOKEN",
    ];
    let readme = std::fs::read_to_string(repo("examples/README.md")).unwrap();
    let files = json_files(&repo("examples"));
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v["family"].is_string(), "{name}: family");
        assert!(
            readme.contains(&format!("(`{name}`)")) || readme.contains(&format!("({name})")),
            "{name} is not in the table of examples/README.md"
        );
        let containers = v["containerDefinitions"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: containerDefinitions"));
        assert!(!containers.is_empty(), "{name}");
        let mut invocations = 0;
        for c in containers {
            let cname = c["name"].as_str().unwrap_or_else(|| panic!("{name}: name"));
            let at = format!("{name} / {cname}");
            assert!(c["image"].is_string(), "{at}: image");
            assert_eq!(
                c["linuxParameters"]["initProcessEnabled"],
                serde_json::Value::Bool(true),
                "{at}: initProcessEnabled"
            );
            let strings = |key: &str| -> Vec<&str> {
                c[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or_else(|| panic!("{at}: {key}")))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut argv = strings("entryPoint");
            argv.extend(strings("command"));
            invocations += check_invocation(&argv, &at);
            for e in c["environment"].as_array().into_iter().flatten() {
                let n = e["name"].as_str().unwrap();
                assert!(e["value"].is_string(), "{at}: {n}");
                if n.starts_with("ECS_SECRETS_") {
                    assert!(VARIABLES.contains(&n), "{at}: unknown variable {n}");
                }
            }
        }
        assert!(invocations > 0, "{name} never runs ecs-secrets");
    }
    for f in json_files(&repo("examples/iam")) {
        let name = f.file_name().unwrap().to_str().unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("iam/{name}: {e}"));
        assert_eq!(v["Version"], "2012-10-17", "iam/{name}");
        assert!(v["Statement"].as_array().is_some_and(|s| !s.is_empty()));
        assert!(readme.contains(&format!("iam/{name}")), "iam/{name} unused");
    }
}

#[test]
fn the_dockerfile_builds_a_scratch_image_with_the_links() {
    let text = std::fs::read_to_string(repo("docker/Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert_eq!(froms.last().unwrap().trim(), "FROM scratch");
    let stages: Vec<&str> = froms
        .iter()
        .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(3).copied())
        .collect();
    for l in text.lines().filter(|l| l.contains("--from=")) {
        let stage = l.split("--from=").nth(1).unwrap().split_whitespace().next();
        assert!(
            stage.is_some_and(|s| stages.contains(&s)),
            "COPY from an unknown stage: {l}"
        );
    }
    assert!(
        text.contains("install-links /staging"),
        "links made in the build stage"
    );
    // The final stage takes /staging from the source build or the prebuilt binaries.
    assert!(text.contains("COPY --from=binaries /staging/ /"));
    // A static binary: the build takes .cargo/config.toml's flags (crt-static for both
    // triples) and refuses a binary that names a shared library.
    let cfg = std::fs::read_to_string(repo(".cargo/config.toml")).unwrap();
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let section = cfg
            .split(&format!("[target.{triple}]"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [target.{triple}] in .cargo/config.toml"));
        let section = section.split("\n[").next().unwrap();
        assert!(section.contains("+crt-static"), "{triple}: {section}");
    }
    assert!(
        text.contains("readelf -d") && text.contains("NEEDED"),
        "static or nothing"
    );
}
