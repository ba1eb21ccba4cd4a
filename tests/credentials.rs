//! The credential sources a container really has, each through the real binary with a
//! loopback stand-in: EKS IRSA (web identity token + role, against moto's STS), EKS Pod
//! Identity (container credentials URI + token file), a profile assuming a role from a
//! source profile, and EC2 IMDSv2. Each test removes the static keys the harness sets and
//! checks, through the counting proxy in front of moto, which key signed the reads.

mod common;

use common::*;
use std::process::Command;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/app-role";

/// A secret under a fresh path, a proxy in front of moto, and `env --path` through it with
/// no static credentials.
fn setup(tag: &str) -> (String, Proxy, Command) {
    let m = moto();
    let path = unique_path(tag);
    put_secure(&m.endpoint, &format!("{path}/CRED_CHECK"), "via-the-source");
    let proxy = Proxy::start(&m.endpoint);
    let mut c = ecs(&proxy.endpoint());
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["env", "--path", &path, "--timeout", "20"]);
    (path, proxy, c)
}

#[track_caller]
fn assert_read(c: &mut Command) {
    let out = run(c);
    assert!(
        assert_ok(&out).contains("CRED_CHECK='via-the-source'"),
        "{}",
        describe(&out)
    );
}

/// The keys that signed the SSM reads.
fn ssm_signers(p: &Proxy) -> Vec<Option<String>> {
    p.signers()
        .into_iter()
        .filter(|(op, _)| op.starts_with("AmazonSSM."))
        .map(|(_, k)| k)
        .collect()
}

#[test]
fn irsa_web_identity_token_assumes_the_role_with_sts() {
    let (_, proxy, mut c) = setup("irsa");
    let dir = TempDir::new("irsa");
    let token = dir.join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln",
    )
    .unwrap();
    c.env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env("AWS_ROLE_ARN", ROLE_ARN)
        .env("AWS_ROLE_SESSION_NAME", "pod-session");
    assert_read(&mut c);
    assert!(
        proxy.count("AssumeRoleWithWebIdentity") >= 1,
        "{:?}",
        proxy.ops()
    );
    let keys = ssm_signers(&proxy);
    // moto's STS hands out temporary ASIA… keys.
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| k.as_deref().is_some_and(|k| k.starts_with("ASIA"))),
        "{keys:?}"
    );
}

#[test]
fn eks_pod_identity_sends_the_token_from_its_file() {
    let (_, proxy, mut c) = setup("podid");
    let dir = TempDir::new("podid");
    let token_file = dir.join("eks-pod-identity-token");
    std::fs::write(&token_file, "pod-identity-token-7").unwrap();
    let agent = EcsCredsServer::start(Some("pod-identity-token-7"));
    c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    assert_read(&mut c);
    assert!(agent.hits() >= 1);
    assert!(agent
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("pod-identity-token-7")));
    let keys = ssm_signers(&proxy);
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.as_deref() == Some("ASIATEST")),
        "{keys:?}"
    );
    // A token the agent refuses fails closed, naming credentials.
    std::fs::write(&token_file, "stale-token").unwrap();
    let out = run(&mut c);
    let stderr = assert_fail(&out);
    assert!(stderr.to_lowercase().contains("credentials"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("CRED_CHECK"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_profile_with_role_arn_assumes_it_with_the_source_profiles_keys() {
    let (_, proxy, mut c) = setup("profile");
    let dir = TempDir::new("profile");
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(
        &config,
        format!(
            "[profile app]\nrole_arn = {ROLE_ARN}\nsource_profile = base\nrole_session_name = app-session\n\n[profile base]\nregion = us-east-1\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials,
        "[base]\naws_access_key_id = AKIDSOURCEPROFILE\naws_secret_access_key = base-secret\n",
    )
    .unwrap();
    c.env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_PROFILE", "app");
    assert_read(&mut c);
    let assume: Vec<_> = proxy
        .signers()
        .into_iter()
        .filter(|(op, _)| op == "AssumeRole")
        .collect();
    assert!(
        !assume.is_empty()
            && assume
                .iter()
                .all(|(_, k)| k.as_deref() == Some("AKIDSOURCEPROFILE")),
        "{:?}",
        proxy.signers()
    );
    let keys = ssm_signers(&proxy);
    assert!(
        !keys.is_empty()
            && keys.iter().all(|k| k
                .as_deref()
                .is_some_and(|k| k.starts_with("ASIA") && k != "AKIDSOURCEPROFILE")),
        "{keys:?}"
    );
}

#[test]
fn imdsv2_token_then_instance_role_credentials() {
    let (_, proxy, mut c) = setup("imds");
    let imds = ImdsServer::start();
    c.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    assert_read(&mut c);
    let reqs = imds.requests();
    assert!(
        reqs.iter()
            .any(|(m, p, _)| m == "PUT" && p == "/latest/api/token"),
        "{reqs:?}"
    );
    // Every metadata read carried the session token (IMDSv2, never v1).
    assert!(
        reqs.iter()
            .filter(|(m, _, _)| m == "GET")
            .all(|(_, _, authed)| *authed),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|(_, p, _)| p.ends_with("/test-instance-role")),
        "{reqs:?}"
    );
    let keys = ssm_signers(&proxy);
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.as_deref() == Some("ASIAIMDSTEST")),
        "{keys:?}"
    );
}

fn mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// `env --path` with no static credentials and a short deadline, straight to moto.
fn bare(path: &str, timeout: &str) -> Command {
    let mut c = ecs(&moto().endpoint);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["env", "--path", path, "--timeout", timeout]);
    c
}

#[track_caller]
fn run_bounded(c: &mut Command) -> std::process::Output {
    run_with(c, None, std::time::Duration::from_secs(20))
        .unwrap_or_else(|o| panic!("still running after 20 s (blocked?)\n{}", describe(&o)))
}

/// aws-config reads these files with a blocking, unbounded read: a FIFO used to hang the
/// start for ever (outside --timeout), /dev/zero to eat memory. Checked first now.
#[test]
fn token_files_that_are_not_bounded_regular_files_fail_at_once_naming_the_variable() {
    let path = unique_path("tokfiles");
    put_secure(&moto().endpoint, &format!("{path}/CRED_CHECK"), "x");
    let dir = TempDir::new("tokfiles");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let big = dir.join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let agent = EcsCredsServer::start(None);
    let cases: [(&std::path::Path, &str); 3] = [
        (&fifo, "it is a FIFO, not a regular file"),
        (
            std::path::Path::new("/dev/zero"),
            "it is a device, not a regular file",
        ),
        (&big, "it is larger than 64 KiB"),
    ];
    for (file, why) in cases {
        for var in [
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            let mut c = bare(&path, "30");
            if var.starts_with("AWS_CONTAINER") {
                c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url());
            } else {
                c.env("AWS_ROLE_ARN", ROLE_ARN);
            }
            let out = run_bounded(c.env(var, file));
            let e = assert_fail(&out);
            assert!(
                e.contains(&format!("{var}={}: cannot read it: {why}", file.display())),
                "{var}: {e}"
            );
            assert!(
                !e.contains("deadline") && !e.contains("ECS task role"),
                "{e}"
            );
        }
    }
    assert_eq!(agent.hits(), 0, "nothing sent with an unreadable token");
}

#[test]
fn irsa_errors_name_the_web_identity_role_and_token_file() {
    let path = unique_path("irsa-msg");
    let dir = TempDir::new("irsa-msg");
    let missing = dir.join("no-token");
    let out = run_bounded(
        bare(&path, "10")
            .env("AWS_ROLE_ARN", ROLE_ARN)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &missing),
    );
    let e = assert_fail(&out);
    assert!(
        e.contains(&format!("AWS_ROLE_ARN={ROLE_ARN}"))
            && e.contains(&format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE={}",
                missing.display()
            )),
        "{e}"
    );
    assert!(!e.contains("ECS task role"), "{e}");
}

#[test]
fn a_slow_credential_endpoint_is_named_by_the_deadline() {
    let path = unique_path("slow-creds");
    let agent = EcsCredsServer::start(None);
    agent.set_delay(std::time::Duration::from_secs(30));
    let out = run_bounded(bare(&path, "3").env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url()));
    let e = assert_fail(&out);
    assert!(
        e.contains("no request was signed yet")
            && e.contains(&format!(
                "the container credentials endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI={}",
                agent.url()
            )),
        "{e}"
    );
}

/// The shared config and credentials files: aws-config would read them with the same
/// blocking, unbounded read; now read by us, bounded, and refused when not regular files.
#[test]
fn profile_files_that_are_not_bounded_regular_files_fail_at_once_naming_them() {
    let path = unique_path("profile-files");
    let dir = TempDir::new("profile-files");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    for var in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        for (file, why) in [
            (fifo.as_path(), "it is a FIFO, not a regular file"),
            (
                std::path::Path::new("/dev/zero"),
                "it is a device, not a regular file",
            ),
        ] {
            let out = run_bounded(bare(&path, "30").env(var, file));
            let e = assert_fail(&out);
            assert!(
                e.contains(&format!("{var}={}: cannot read it: {why}", file.display())),
                "{var}: {e}"
            );
            assert!(!e.contains("deadline"), "{e}");
        }
    }
}

/// `/dev/null` is the usual way to say "no config file" (`AWS_CONFIG_FILE=/dev/null`): it is
/// a device, but it never blocks and is always empty, so it reads as an empty file.
#[test]
fn profile_files_at_dev_null_read_as_empty() {
    let path = unique_path("profile-null");
    put_secure(&moto().endpoint, &format!("{path}/NULL_CHECK"), "x");
    let out = run_bounded(
        ecs(&moto().endpoint)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .args(["env", "--path", &path, "--format", "json"]),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NULL_CHECK"),
        "{}",
        describe(&out)
    );
}
