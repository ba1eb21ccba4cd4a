//! `exec --files/--file-env/--no-env/--allow-disk` and `--user`, through the real binary
//! against moto, without namespaces: files go to a directory on /dev/shm (tmpfs). Needs root
//! for `--user` (as CI and this machine are); the namespaced, empty-root versions are in
//! `tests/container.rs`.

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// `exec ARGS -- sh -c SCRIPT`.
fn exec_sh(endpoint: &str, args: &[&str], script: &str) -> Command {
    let mut c = ecs(endpoint);
    c.arg("exec").args(args).args(["--", "sh", "-c", script]);
    c
}

/// Runs `exec ARGS -- touch MARKER`; asserts a failure with one error line and that the
/// command never started. Returns stderr.
fn assert_not_started(endpoint: &str, args: &[&str], adjust: impl FnOnce(&mut Command)) -> String {
    let mut c = ecs(endpoint);
    adjust(&mut c);
    assert_exec_not_started(c, args)
}

#[test]
fn each_secret_is_a_0400_file_and_file_env_points_at_it() {
    let m = moto();
    let path = unique_path("files");
    let pw = "p@ss w'rd\n$(not run) \\ \"end\"";
    put_secure(&m.endpoint, &format!("{path}/DB_PASSWORD"), pw);
    put_secure(&m.endpoint, &format!("{path}/db.user"), "grafana");
    let shm = Scratch::shm("files");
    let dir = shm.join("secrets");
    let dir_s = dir.to_str().unwrap();

    let out = run(&mut exec_sh(
        &m.endpoint,
        &["--path", &path, "--files", dir_s, "--file-env", "--no-env"],
        "printf 'value=%s\\n' \"${DB_PASSWORD-<unset>}\"; \
         printf 'file=%s\\n' \"$DB_PASSWORD_FILE\" \"$db_user_FILE\"; \
         printf 'content=%s\\n' \"$(cat \"$db_user_FILE\")\"",
    ));
    let s = assert_ok(&out);
    assert!(s.contains("value=<unset>\n"), "--no-env: {s}");
    assert!(
        s.contains(&format!("file={dir_s}/DB_PASSWORD\n"))
            && s.contains(&format!("file={dir_s}/db_user\n")),
        "{s}"
    );
    assert!(s.contains("content=grafana\n"), "{s}");

    // DIR was created 0700; each file holds the exact bytes, mode 0400, nothing else left.
    assert_eq!(mode(&dir), 0o700);
    // (and the manifest of what ecs-secrets wrote, see below).
    assert_eq!(
        entries(&dir),
        [".ecs-secrets-files", "DB_PASSWORD", "db_user"]
    );
    assert_eq!(
        std::fs::read(dir.join("DB_PASSWORD")).unwrap(),
        pw.as_bytes()
    );
    for f in ["DB_PASSWORD", "db_user"] {
        assert_eq!(mode(&dir.join(f)), 0o400, "{f}");
        assert_eq!(owner(&dir.join(f)), (0, 0), "{f}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("grafana") && !stderr.contains("p@ss"),
        "{stderr}"
    );

    // Without --no-env the values are in the environment too; a second run replaces the files.
    put_secure(&m.endpoint, &format!("{path}/db.user"), "grafana-2");
    let s = assert_ok(&run(&mut exec_sh(
        &m.endpoint,
        &["--path", &path, "--files", dir_s],
        "printf '%s|%s\\n' \"$db_user\" \"${db_user_FILE-<unset>}\"",
    )));
    assert_eq!(s, "grafana-2|<unset>\n");
    assert_eq!(std::fs::read(dir.join("db_user")).unwrap(), b"grafana-2");
    // (and the manifest of what ecs-secrets wrote, see below).
    assert_eq!(
        entries(&dir),
        [".ecs-secrets-files", "DB_PASSWORD", "db_user"]
    );
}

#[test]
fn user_owns_the_files_and_the_command_runs_as_that_user() {
    let m = moto();
    let path = unique_path("user");
    put_secure(&m.endpoint, &format!("{path}/TOKEN"), "t0ken");
    let shm = Scratch::shm("user");
    let dir = shm.join("app");
    let out = run(&mut exec_sh(
        &m.endpoint,
        &[
            "--path",
            &path,
            "--files",
            dir.to_str().unwrap(),
            "--file-env",
            "--user",
            "65534:65534",
        ],
        "id -u; id -g; id -G; cat \"$TOKEN_FILE\"; echo; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
    ));
    let s = assert_ok(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(&lines[..4], ["65534", "65534", "65534", "t0ken"], "{s}");
    // Real, effective, saved and filesystem ids all dropped; no supplementary group kept.
    let field = |n: &str| {
        s.lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} in {s}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{s}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{s}");
    assert_eq!(field("Groups:"), ["65534"], "{s}");
    assert_eq!(owner(&dir), (65534, 65534));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(owner(&dir.join("TOKEN")), (65534, 65534));
    assert_eq!(mode(&dir.join("TOKEN")), 0o400);
}

#[test]
fn a_planted_symlink_is_replaced_and_its_target_left_untouched() {
    let m = moto();
    let path = unique_path("symlink");
    put_secure(&m.endpoint, &format!("{path}/A"), "secret-a");
    put_secure(&m.endpoint, &format!("{path}/B"), "secret-b");
    let shm = Scratch::shm("symlink");
    let dir = shm.join("secrets");
    std::fs::create_dir(&dir).unwrap();
    let victim = shm.join("victim");
    std::fs::write(&victim, "original").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("A")).unwrap();
    // A dangling link: following it would create the file it names.
    let nowhere = shm.join("created-through-link");
    std::os::unix::fs::symlink(&nowhere, dir.join("B")).unwrap();

    assert_ok(&run(&mut exec_sh(
        &m.endpoint,
        &["--path", &path, "--files", dir.to_str().unwrap()],
        "true",
    )));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
    assert_eq!(mode(&victim), 0o644);
    assert!(!nowhere.exists(), "a dangling link was followed");
    for (f, v) in [("A", "secret-a"), ("B", "secret-b")] {
        let meta = std::fs::symlink_metadata(dir.join(f)).unwrap();
        assert!(meta.file_type().is_file(), "{f} is a regular file now");
        assert_eq!(std::fs::read_to_string(dir.join(f)).unwrap(), v);
        assert_eq!(mode(&dir.join(f)), 0o400);
    }
    assert_eq!(entries(&dir), [".ecs-secrets-files", "A", "B"]);
}

#[test]
fn a_directory_that_is_a_symlink_is_refused() {
    let m = moto();
    let path = unique_path("dirlink");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let shm = Scratch::shm("dirlink");
    let real = shm.join("real");
    std::fs::create_dir(&real).unwrap();
    let link = shm.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for dir in [
        link.to_str().unwrap().to_string(),
        format!("{}/", link.display()),
    ] {
        let e = assert_not_started(&m.endpoint, &["--path", &path, "--files", &dir], |_| {});
        assert!(
            e.contains("symbolic link") && e.contains(&*link.to_string_lossy()),
            "{e}"
        );
        assert!(entries(&real).is_empty());
    }
}

#[test]
fn a_directory_on_disk_is_refused_before_fetching_unless_allow_disk() {
    let m = moto();
    let path = unique_path("disk");
    put_secure(&m.endpoint, &format!("{path}/A"), "on-disk");
    let disk = Scratch::disk("disk");
    let dir = disk.join("secrets");
    let proxy = Proxy::start(&m.endpoint);
    let e = assert_not_started(
        &proxy.endpoint(),
        &["--path", &path, "--files", dir.to_str().unwrap()],
        |_| {},
    );
    assert!(
        e.contains("not on tmpfs or ramfs") && e.contains("--allow-disk"),
        "{e}"
    );
    assert_eq!(
        proxy.total(),
        0,
        "refused before fetching: {:?}",
        proxy.ops()
    );
    assert!(!dir.exists(), "a refused directory is not created");

    let mut c = exec_sh(
        &proxy.endpoint(),
        &[
            "--path",
            &path,
            "--files",
            dir.to_str().unwrap(),
            "--allow-disk",
        ],
        "cat \"$0\"",
    );
    let out = run(c.arg(dir.join("A")));
    assert_eq!(assert_ok(&out), "on-disk");
    assert_eq!(mode(&dir.join("A")), 0o400);
}

#[test]
fn a_failure_part_way_leaves_no_secret_file_and_starts_nothing() {
    let m = moto();
    let path = unique_path("partway");
    for n in ["A", "B", "C"] {
        put_secure(&m.endpoint, &format!("{path}/{n}"), &format!("value-{n}"));
    }
    let shm = Scratch::shm("partway");
    // B cannot be put in place: a non-empty directory is in the way.
    std::fs::create_dir(shm.join("B")).unwrap();
    std::fs::write(shm.join("B/keep"), "k").unwrap();
    let e = assert_not_started(
        &m.endpoint,
        &["--path", &path, "--files", shm.0.to_str().unwrap()],
        |_| {},
    );
    assert!(e.contains("/B") && e.contains("directory"), "{e}");
    assert!(!e.contains("value-"), "{e}");
    assert_eq!(
        entries(&shm.0),
        ["B"],
        "A, C and every temporary file removed"
    );
    assert_eq!(entries(&shm.join("B")), ["keep"]);
}

#[test]
fn file_env_names_colliding_with_a_secret_are_refused_unless_no_env() {
    let m = moto();
    let path = unique_path("fileenv");
    put_secure(&m.endpoint, &format!("{path}/KEY"), "k");
    put_secure(&m.endpoint, &format!("{path}/KEY_FILE"), "not-a-path");
    let shm = Scratch::shm("fileenv");
    let dir = shm.join("s");
    let e = assert_not_started(
        &m.endpoint,
        &[
            "--path",
            &path,
            "--files",
            dir.to_str().unwrap(),
            "--file-env",
        ],
        |_| {},
    );
    assert!(e.contains("KEY_FILE") && e.contains("--no-env"), "{e}");
    assert!(!e.contains("not-a-path"), "{e}");
    assert!(!dir.exists(), "nothing written");
    let s = assert_ok(&run(&mut exec_sh(
        &m.endpoint,
        &[
            "--path",
            &path,
            "--files",
            dir.to_str().unwrap(),
            "--file-env",
            "--no-env",
        ],
        "printf '%s\\n' \"$KEY_FILE\"",
    )));
    assert_eq!(s.trim(), format!("{}/KEY", dir.display()));
}

#[test]
fn an_unknown_user_is_refused_before_anything_is_fetched_or_written() {
    let m = moto();
    let path = unique_path("nouser");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let shm = Scratch::shm("nouser");
    let dir = shm.join("s");
    let proxy = Proxy::start(&m.endpoint);
    let e = assert_not_started(
        &proxy.endpoint(),
        &[
            "--path",
            &path,
            "--files",
            dir.to_str().unwrap(),
            "--user",
            "no-such-user-xyz",
        ],
        |_| {},
    );
    assert!(e.contains("unknown user \"no-such-user-xyz\""), "{e}");
    assert_eq!(proxy.total(), 0, "{:?}", proxy.ops());
    assert!(!dir.exists());
    let e = assert_not_started(
        &proxy.endpoint(),
        &["--path", &path, "--user", "65534:no-such-group-xyz"],
        |_| {},
    );
    assert!(e.contains("unknown group"), "{e}");
    assert_eq!(proxy.total(), 0, "{:?}", proxy.ops());
}

#[test]
fn user_is_refused_when_not_running_as_root() {
    let m = moto();
    let path = unique_path("notroot");
    put_secure(&m.endpoint, &format!("{path}/A"), "x");
    let proxy = Proxy::start(&m.endpoint);
    // The binary itself runs as 65534, as in an image with a USER instruction.
    let marker_dir = Scratch::shm("notroot");
    std::fs::set_permissions(&marker_dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = marker_dir.join("started");
    let mut c = Command::new("setpriv");
    scrub_env(&mut c, &proxy.endpoint());
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args(["exec", "--path", &path, "--user", "65534:65534", "--"])
        .arg("touch")
        .arg(&marker);
    let out = run(&mut c);
    let e = assert_fail(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(e.contains("needs root") && e.contains("uid 65534"), "{e}");
    assert!(!marker.exists());
    assert_eq!(proxy.total(), 0, "{:?}", proxy.ops());
}

#[test]
fn a_relative_directory_still_gives_absolute_file_variables() {
    let m = moto();
    let path = unique_path("relative");
    put_secure(&m.endpoint, &format!("{path}/K"), "v");
    let shm = Scratch::shm("relative");
    let mut c = exec_sh(
        &m.endpoint,
        &["--path", &path, "--files", "./s", "--file-env"],
        "printf '%s\\n' \"$K_FILE\"; cd / && cat \"$K_FILE\"",
    );
    let s = assert_ok(&run(c.current_dir(&shm.0)));
    assert_eq!(s, format!("{}/s/K\nv", shm.0.display()));
}

/// Issue 10, finding 6: a secret revoked between two runs over the same DIR (a tmpfs volume
/// that outlives a container restart) kept its file, revoked value and all. Now a run removes
/// the files an earlier run wrote for secrets that are gone — and only those: a file someone
/// else put in DIR, one replaced since, a symlink at a gone secret's name, and its target
/// are never touched.
#[test]
fn files_of_secrets_that_are_gone_are_removed_and_nothing_else() {
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("files-gone");
    for n in ["KEEP", "REVOKED", "REPLACED", "LINKED", "LATER"] {
        put_secure(e, &format!("{path}/{n}"), &format!("{n}-value-1"));
    }
    let shm = Scratch::shm("files-gone");
    let dir = shm.join("secrets");
    let d = dir.to_str().unwrap();
    let args = ["--path", &path, "--files", d, "--no-env"];
    assert_ok(&run(&mut exec_sh(e, &args, "true")));
    let visible = |dir: &Path| -> Vec<String> {
        entries(dir)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    assert_eq!(
        visible(&dir),
        ["KEEP", "LATER", "LINKED", "REPLACED", "REVOKED"]
    );
    // Someone else's files in DIR, one of them named like a secret.
    std::fs::write(dir.join("THEIRS"), "theirs").unwrap();
    std::fs::write(dir.join("NOT_A_SECRET"), "theirs too").unwrap();
    let target = shm.join("target");
    std::fs::write(&target, "link target").unwrap();
    // REPLACED: someone put their own file at its name; LINKED: a symlink now.
    std::fs::remove_file(dir.join("REPLACED")).unwrap();
    std::fs::write(dir.join("REPLACED"), "their replacement").unwrap();
    std::fs::remove_file(dir.join("LINKED")).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("LINKED")).unwrap();
    for n in ["REVOKED", "REPLACED", "LINKED"] {
        let out = run(ecs(e).args(["revoke", "--path", &path, "--name", n, "--serial", "1"]));
        assert_ok(&out);
    }
    // LATER changes value: still one file, the new value.
    put_secure(e, &format!("{path}/LATER"), "LATER-value-2");

    let out = run(&mut exec_sh(
        e,
        &args,
        &format!("cat '{d}/KEEP' '{d}/LATER'"),
    ));
    let out_text = assert_ok(&out);
    assert_eq!(out_text, "KEEP-value-1LATER-value-2");
    assert_eq!(
        visible(&dir),
        [
            "KEEP",
            "LATER",
            "LINKED",
            "NOT_A_SECRET",
            "REPLACED",
            "THEIRS"
        ],
        "REVOKED removed; the rest is not ours"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("THEIRS")).unwrap(),
        "theirs"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("REPLACED")).unwrap(),
        "their replacement"
    );
    assert!(std::fs::symlink_metadata(dir.join("LINKED"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "link target");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REPLACED was written by an earlier run") && stderr.contains("LINKED"),
        "{stderr}"
    );
    // No revoked value is left in any file ecs-secrets wrote.
    for f in entries(&dir) {
        let p = dir.join(&f);
        if std::fs::symlink_metadata(&p).unwrap().file_type().is_file() {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            assert!(!text.contains("REVOKED-value"), "{f}: {text}");
        }
    }
    // A path emptied entirely: every file of ours goes, the others stay.
    assert_ok(&run(ecs(e).args([
        "revoke", "--path", &path, "--name", "KEEP", "--serial", "1",
    ])));
    for serial in ["1", "2"] {
        let out = run(ecs(e).args([
            "revoke", "--path", &path, "--name", "LATER", "--serial", serial,
        ]));
        assert_ok(&out);
    }
    // (An emptied path is an error since 0.2.0; --allow-empty says it is expected.)
    assert_ok(&run(
        exec_sh(e, &args, "true").env("ECS_SECRETS_ALLOW_EMPTY", "1")
    ));
    assert_eq!(
        entries(&dir),
        [
            ".ecs-secrets-files",
            "LINKED",
            "NOT_A_SECRET",
            "REPLACED",
            "THEIRS"
        ],
        "only the manifest (now empty) and what is not ours"
    );
}

/// The manifest itself cannot be used against DIR: one planted by another user, a symlink
/// or a FIFO at its name is refused (the start fails, nothing is written, nothing removed).
#[test]
fn a_planted_manifest_is_refused_and_nothing_is_touched() {
    use std::os::unix::fs::PermissionsExt;
    let m = moto();
    let e = &m.endpoint;
    let path = unique_path("files-manifest");
    put_secure(e, &format!("{path}/A"), "a");
    let shm = Scratch::shm("files-manifest");
    let dir = shm.join("secrets");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    std::fs::write(dir.join("VICTIM"), "victim").unwrap();
    let manifest = dir.join(".ecs-secrets-files");
    let victim_ino = std::fs::metadata(dir.join("VICTIM")).unwrap().ino();
    let forged = format!("ecs-secrets files v1\nVICTIM {victim_ino} 6\n");
    std::fs::write(&manifest, &forged).unwrap();
    std::fs::set_permissions(dir.join("VICTIM"), std::fs::Permissions::from_mode(0o400)).unwrap();
    type Plant<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Plant)> = vec![
        (
            "not written by this user",
            Box::new(|| {
                std::fs::write(&manifest, &forged).unwrap();
                std::os::unix::fs::chown(&manifest, Some(65534), Some(65534)).unwrap();
            }),
        ),
        (
            "writable by others",
            Box::new(|| {
                std::fs::write(&manifest, &forged).unwrap();
                std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o666))
                    .unwrap();
            }),
        ),
        (
            "symbolic link",
            Box::new(|| {
                std::os::unix::fs::symlink(dir.join("VICTIM"), &manifest).unwrap();
            }),
        ),
        (
            "not a regular file",
            Box::new(|| {
                let c = std::ffi::CString::new(manifest.to_str().unwrap()).unwrap();
                // SAFETY: a NUL-terminated path we own.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }),
        ),
    ];
    for (why, plant) in cases {
        let _ = std::fs::remove_file(&manifest);
        plant();
        let stderr = assert_not_started(e, &["--path", &path, "--files", d, "--no-env"], |_| {});
        assert!(
            stderr.contains(".ecs-secrets-files") && stderr.contains(why),
            "{why}: {stderr}"
        );
        assert_eq!(entries(&dir), [".ecs-secrets-files", "VICTIM"], "{why}");
        assert_eq!(
            std::fs::read_to_string(dir.join("VICTIM")).unwrap(),
            "victim"
        );
    }
}
