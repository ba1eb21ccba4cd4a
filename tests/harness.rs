//! Self-tests of the integration-test harness in `tests/common`.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::timeout::TimeoutConfig;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use common::*;

/// An SSM client through `endpoint` that never retries, so one call is one request.
fn ssm_no_retry(endpoint: &str) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(
        ssm_config(endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// PutParameter of a String "v" as `name` (one request), which must succeed.
fn put_string(client: &aws_sdk_ssm::Client, name: &str) {
    block_on(
        client
            .put_parameter()
            .name(name)
            .value("v")
            .r#type(ParameterType::String)
            .send(),
    )
    .unwrap();
}

/// A raw awsJson SSM request (no SDK) through `endpoint`.
fn raw_ssm(endpoint: &str, op: &str, body: &str) -> std::io::Result<HttpResponse> {
    http_request(
        "POST",
        &format!("{endpoint}/"),
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", &format!("AmazonSSM.{op}")),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ssm/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        body.as_bytes(),
    )
}

#[test]
fn moto_starts_and_answers() {
    let m = moto();
    assert!(std::ptr::eq(m, moto()), "moto() must be a singleton");
    assert_eq!(m.endpoint, format!("http://127.0.0.1:{}", m.port));

    let dash = http_request("GET", &format!("{}/moto-api/", m.endpoint), &[], b"").unwrap();
    assert_eq!(dash.status, 200);

    let name = format!("{}/greeting", unique_path("moto"));
    assert_eq!(get_plain(&m.endpoint, &name), None);
    assert_eq!(put_secure(&m.endpoint, &name, "hello"), 1);
    assert_eq!(put_secure(&m.endpoint, &name, "hello again"), 2);
    assert_eq!(
        get_plain(&m.endpoint, &name).as_deref(),
        Some("hello again")
    );
}

#[test]
fn put_many_seeds_a_path() {
    let m = moto();
    let path = unique_path("many");
    let pairs = put_many(&m.endpoint, &path, 12);
    assert_eq!(pairs.len(), 12);
    let out = block_on(
        ssm(&m.endpoint)
            .get_parameters_by_path()
            .path(&path)
            .with_decryption(true)
            .max_results(10)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>(),
    )
    .unwrap();
    assert_eq!(out.len(), 2, "12 parameters at 10 per page");
    let mut got: Vec<(String, String)> = out
        .iter()
        .flat_map(|page| page.parameters())
        .map(|p| {
            (
                p.name().unwrap().to_string(),
                p.value().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, pairs);
}

#[test]
fn kms_key_and_alias() {
    let m = moto();
    let alias = format!(
        "alias/{}",
        unique_path("key").trim_start_matches('/').replace('/', "-")
    );
    let id = create_key(&m.endpoint, Some(&alias));
    let out = block_on(
        kms(&m.endpoint)
            .encrypt()
            .key_id(&alias)
            .plaintext(aws_sdk_kms::primitives::Blob::new("x"))
            .send(),
    )
    .unwrap();
    assert!(
        out.key_id().unwrap().contains(&id),
        "{:?} vs {id}",
        out.key_id()
    );
}

#[test]
fn unique_paths_are_distinct_and_valid() {
    let a = unique_path("a b/c");
    let b = unique_path("a b/c");
    assert_ne!(a, b);
    for p in [&a, &b] {
        assert!(p.starts_with("/t/a_b/c-"), "{p}");
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)),
            "{p}"
        );
    }
}

#[test]
fn proxy_forwards_and_counts() {
    let proxy = Proxy::start(&moto().endpoint);
    let client = ssm(&proxy.endpoint());
    let name = format!("{}/x", unique_path("proxy"));

    block_on(
        client
            .put_parameter()
            .name(&name)
            .value("v1")
            .r#type(ParameterType::SecureString)
            .send(),
    )
    .unwrap();
    // The client puts its connection back in its pool on a task of its own, just after the
    // answer: under a loaded machine the next request could find the pool still empty and
    // open a second connection. Give it a moment; reuse is what this test checks, not speed.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = block_on(
        client
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send(),
    )
    .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("v1"));

    assert_eq!(proxy.count("PutParameter"), 1);
    assert_eq!(proxy.count("GetParameter"), 1);
    assert_eq!(proxy.count("GetParameters"), 0);
    assert_eq!(proxy.total(), 2);
    assert_eq!(
        proxy.ops(),
        ["AmazonSSM.PutParameter", "AmazonSSM.GetParameter"]
    );
    assert_eq!(proxy.faults_injected(), 0);
    // moto closes every connection; the proxy must still keep the client's alive.
    assert_eq!(proxy.connections(), 1, "SDK connection was not reused");

    proxy.reset();
    assert_eq!(proxy.total(), 0);
    assert!(proxy.ops().is_empty());
}

#[test]
fn proxy_throttle_reaches_the_sdk() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        throttle: 1.0,
        ..Faults::default()
    });
    let name = format!("{}/x", unique_path("throttle"));

    let err = block_on(
        ssm_no_retry(&proxy.endpoint())
            .put_parameter()
            .name(&name)
            .value("v")
            .send(),
    )
    .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(proxy.count("PutParameter"), 1);
    assert_eq!(proxy.faults_injected(), 1);
    // Throttled requests never reach moto.
    assert_eq!(get_plain(&m.endpoint, &name), None);

    // The SDK classifies it as retryable: the default client tries 3 times.
    proxy.reset();
    let err = block_on(ssm(&proxy.endpoint()).get_parameter().name(&name).send()).unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(proxy.count("GetParameter"), 3);
    assert_eq!(proxy.faults_injected(), 3);
}

#[test]
fn proxy_error500_and_only_op() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    proxy.set_faults(Faults {
        error500: 1.0,
        only_op: Some("GetParameter".into()),
        ..Faults::default()
    });
    let client = ssm_no_retry(&proxy.endpoint());
    let name = format!("{}/x", unique_path("e500"));

    // Not the faulted operation: passes through.
    put_string(&client, &name);
    let err = block_on(client.get_parameter().name(&name).send()).unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("InternalServerError"));
    assert_eq!(proxy.faults_injected(), 1);
    assert_eq!(proxy.total(), 2);

    proxy.clear_faults();
    block_on(client.get_parameter().name(&name).send()).unwrap();
}

#[test]
fn proxy_latency_is_applied() {
    let proxy = Proxy::start(&moto().endpoint);
    let client = ssm_no_retry(&proxy.endpoint());
    let name = format!("{}/x", unique_path("latency"));
    put_string(&client, &name);

    proxy.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    for _ in 0..2 {
        let t = Instant::now();
        block_on(client.get_parameter().name(&name).send()).unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "took only {took:?}");
    }
    assert_eq!(proxy.faults_injected(), 0, "latency alone is not a fault");
}

#[test]
fn proxy_reset_truncate_and_stall() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint);
    let client = ssm_no_retry(&proxy.endpoint());
    let name = format!("{}/x", unique_path("broken"));

    // reset: moto executes the request, the client gets a broken connection.
    proxy.set_faults(Faults {
        reset: 1.0,
        ..Faults::default()
    });
    let err = block_on(
        client
            .put_parameter()
            .name(&name)
            .value("v")
            .r#type(ParameterType::String)
            .send(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "reset: {err:?}"
    );
    assert_eq!(
        get_plain(&m.endpoint, &name).as_deref(),
        Some("v"),
        "reset requests are forwarded"
    );

    // truncate: half a body.
    proxy.set_faults(Faults {
        truncate: 1.0,
        ..Faults::default()
    });
    let err = block_on(client.get_parameter().name(&name).send()).unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "truncate: {err:?}"
    );
    // Also at the byte level: the promised length is not delivered.
    let raw = raw_ssm(
        &proxy.endpoint(),
        "GetParameter",
        &format!(r#"{{"Name":"{name}"}}"#),
    );
    assert!(raw.is_err(), "truncated response parsed: {raw:?}");

    // stall: no answer at all, until the proxy goes away.
    proxy.set_faults(Faults {
        stall: 1.0,
        ..Faults::default()
    });
    let impatient = aws_sdk_ssm::Client::from_conf(
        ssm_config(&proxy.endpoint())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build(),
    );
    let t = Instant::now();
    let err = block_on(impatient.get_parameter().name(&name).send()).unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "stall: {err:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.faults_injected(), 4);

    // A stalled connection must not keep the proxy alive.
    let addr: SocketAddr = format!("127.0.0.1:{}", proxy.port()).parse().unwrap();
    let stalled =
        std::thread::spawn(move || raw_ssm(&format!("http://{addr}"), "DescribeParameters", "{}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.total() < 5 {
        assert!(Instant::now() < deadline, "stalled request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    drop(proxy);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(
        stalled.join().unwrap().is_err(),
        "stalled request got an answer"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "old proxy still listening"
    );
}

#[test]
fn proxy_faults_follow_the_seed() {
    let proxy = Proxy::start(&moto().endpoint);
    let pattern = |seed: u64| -> Vec<u16> {
        proxy.set_faults(Faults {
            throttle: 0.5,
            seed,
            ..Faults::default()
        });
        (0..40)
            .map(|_| {
                raw_ssm(&proxy.endpoint(), "DescribeParameters", "{}")
                    .unwrap()
                    .status
            })
            .collect()
    };
    let a = pattern(7);
    let throttled = a.iter().filter(|&&s| s == 400).count();
    assert!(a.iter().all(|&s| s == 200 || s == 400), "{a:?}");
    assert!(
        (8..=32).contains(&throttled),
        "{throttled}/40 throttled at p=0.5"
    );
    assert_eq!(pattern(7), a, "same seed, same faults");
    assert_ne!(pattern(8), a, "different seed, different faults");
    assert_eq!(proxy.count("DescribeParameters"), 120);
}

#[test]
fn proxy_records_query_protocol_actions() {
    let proxy = Proxy::start(&moto().endpoint);
    let sts = |proxy: &Proxy| {
        http_request(
            "POST",
            &format!("{}/", proxy.endpoint()),
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/sts/aws4_request, \
                     SignedHeaders=host, Signature=0",
                ),
            ],
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )
        .unwrap()
    };
    let ok = sts(&proxy);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.text().contains("GetCallerIdentityResult"),
        "{}",
        ok.text()
    );
    assert_eq!(proxy.ops(), ["GetCallerIdentity"]);

    proxy.set_faults(Faults {
        throttle: 1.0,
        ..Faults::default()
    });
    let throttled = sts(&proxy);
    assert_eq!(throttled.status, 400);
    assert!(
        throttled.text().contains("<Code>Throttling</Code>"),
        "{}",
        throttled.text()
    );
    assert_eq!(proxy.count("GetCallerIdentity"), 2);
}

#[test]
fn ecs_creds_server_answers() {
    let server = EcsCredsServer::start(None);
    assert!(server.url().starts_with("http://127.0.0.1:") && server.url().ends_with("/creds"));
    let r = http_request("GET", &server.url(), &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["AccessKeyId"], "ASIATEST");
    assert_eq!(v["SecretAccessKey"], "secret");
    assert_eq!(v["Token"], "token");
    let exp = v["Expiration"].as_str().unwrap();
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(&exp[..13], &rfc3339(in_an_hour)[..13], "{exp}"); // same hour, give or take a tick
    assert!(exp.ends_with('Z'));
    assert_eq!(server.hits(), 1);
}

#[test]
fn ecs_creds_server_enforces_auth() {
    let server = EcsCredsServer::start(Some("Bearer sekrit"));
    let get = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        http_request("GET", &server.url(), &headers, b"")
            .unwrap()
            .status
    };
    assert_eq!(get(None), 401);
    assert_eq!(get(Some("Bearer wrong")), 401);
    assert_eq!(get(Some("Bearer sekrit")), 200);
    assert_eq!(server.hits(), 3);
    assert_eq!(
        server.authorizations(),
        [
            None,
            Some("Bearer wrong".to_string()),
            Some("Bearer sekrit".to_string())
        ]
    );
}

#[test]
fn rfc3339_known_dates() {
    let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
}

#[test]
fn ecs_command_has_a_scrubbed_environment() {
    let cmd = ecs("http://127.0.0.1:9");
    assert_eq!(cmd.get_program(), bin());
    assert!(std::path::Path::new(bin()).is_file(), "{} missing", bin());

    // The same environment, observed through env(1).
    let out = run(scrub_env(
        &mut Command::new("/usr/bin/env"),
        "http://127.0.0.1:9",
    ));
    let env = assert_ok(&out);
    let mut keys: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_CONFIG_FILE",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SHARED_CREDENTIALS_FILE",
            "HOME",
            "PATH",
        ]
    );
    assert!(env.contains("AWS_ENDPOINT_URL=http://127.0.0.1:9\n"));
    let home = env.lines().find_map(|l| l.strip_prefix("HOME=")).unwrap();
    assert!(std::path::Path::new(home).is_dir(), "HOME {home} missing");
    let config = env
        .lines()
        .find_map(|l| l.strip_prefix("AWS_CONFIG_FILE="))
        .unwrap();
    assert!(!std::path::Path::new(config).exists());
}

#[test]
fn run_helpers() {
    let out = stdin_run(Command::new("cat").arg("-"), b"piped\n");
    assert_eq!(assert_ok(&out), "piped\n");

    let out = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]));
    assert_eq!(assert_fail(&out), "oops\n");
    assert_eq!(out.status.code(), Some(3));

    let t = Instant::now();
    let out = run_with(
        Command::new("sleep").arg("30"),
        None,
        Duration::from_millis(200),
    )
    .unwrap_err();
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn fresh_moto_is_isolated_and_killed() {
    let shared = moto();
    let fresh = fresh_moto();
    assert_ne!(fresh.port, shared.port);
    let name = format!("{}/x", unique_path("fresh"));
    put_secure(&fresh.endpoint, &name, "only here");
    assert_eq!(
        get_plain(&fresh.endpoint, &name).as_deref(),
        Some("only here")
    );
    assert_eq!(get_plain(&shared.endpoint, &name), None);

    let addr: SocketAddr = format!("127.0.0.1:{}", fresh.port).parse().unwrap();
    let log = fresh.log.clone();
    assert!(log.is_file());
    drop(fresh);
    assert!(
        TcpStream::connect(addr).is_err(),
        "fresh moto still listening after drop"
    );
    assert!(!log.exists(), "log dir not cleaned up");
}
