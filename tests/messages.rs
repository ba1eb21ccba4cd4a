//! Error messages a user acted on wrongly (issue 20): each says what fixes that cause.
//! A KMS key disabled or pending deletion is a unit test in src/aws.rs (moto's KMS never
//! answers DisabledException or KMSInvalidStateException).

mod common;

use common::*;

#[test]
fn no_region_says_to_set_aws_region() {
    let m = moto();
    let mut c = ecs(&m.endpoint);
    c.env_remove("AWS_REGION");
    let e = assert_exec_not_started(c, &["--path", "/no/region", "--timeout", "5"]);
    assert!(e.contains("set AWS_REGION"), "{e}");
    assert!(!e.contains("check network access"), "{e}");
}

#[test]
fn no_credentials_is_one_readable_line_per_provider_tried() {
    let m = moto();
    let mut c = ecs(&m.endpoint);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let e = assert_exec_not_started(c, &["--path", "/no/creds", "--timeout", "5"]);
    assert!(!e.contains("\\n"), "a literal \\n: {e}");
    let tried: Vec<&str> = e.lines().filter(|l| l.starts_with("  tried ")).collect();
    assert!(
        tried.iter().any(|l| l.starts_with("  tried Environment:"))
            && tried.iter().any(|l| l.starts_with("  tried EcsContainer:")),
        "{e}"
    );
    assert!(
        e.lines().next().unwrap().contains("check the credentials"),
        "{e}"
    );
}

#[test]
fn debug_shows_the_region_and_endpoint_once_and_no_credentials() {
    let m = moto();
    let path = unique_path("debug-region");
    put_secure(&m.endpoint, &format!("{path}/A"), "v");
    let mut c = ecs(&m.endpoint);
    c.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLEDEBUG")
        .env("AWS_SECRET_ACCESS_KEY", "secret-key-never-shown")
        .args(["env", "--debug", "--path", &path]);
    let out = run(&mut c);
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let region: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("debug: region "))
        .collect();
    assert_eq!(
        region,
        [
            "ecs-secrets: debug: region us-east-1, endpoint override http://127.0.0.1:".to_string()
                + &m.port.to_string()
        ],
        "{err}"
    );
    let endpoint: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(" endpoint http"))
        .collect();
    assert_eq!(endpoint.len(), 1, "{err}");
    assert!(
        endpoint[0].ends_with(&format!("SSM endpoint http://127.0.0.1:{}", m.port)),
        "{err}"
    );
    assert!(
        !err.contains("secret-key-never-shown") && !err.contains("AKIDEXAMPLEDEBUG"),
        "{err}"
    );
}
