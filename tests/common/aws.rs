//! AWS SDK clients for seeding and inspecting moto independently of the tool
//! under test.
//!
//! The configs are built from the service `Config` builders directly rather
//! than `aws_config::defaults()`, so nothing leaks in from the environment of
//! the test process (AWS_PROFILE, ~/.aws, IMDS, ...).
//!
//! The helpers are synchronous (they `block_on` a shared runtime); do not call
//! them from inside an async test's runtime. Clients can be used from async
//! code as usual.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::timeout::TimeoutConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// A multi-threaded runtime shared by the test binary, so `block_on` works
/// from any test thread concurrently.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-rt")
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    rt().block_on(f)
}

/// aws-config is built without default features, so there is no default
/// HTTP client: make one (rustls/ring, as the binary uses). One per SDK
/// client, so pooled connections never outlive the runtime that made them.
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

/// Retries: the SDK's standard 3 attempts, but with a short backoff so
/// fault-injection tests stay fast. Override with `.retry_config(..)`.
fn retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(100))
}

/// Without an operation timeout a stalled request would hang the test.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// Generates `$config_fn(endpoint) -> Builder` (for tweaking, e.g.
/// `.retry_config(RetryConfig::disabled())`) and `$client_fn(endpoint) -> Client`.
macro_rules! client_fns {
    ($sdk:ident, $config_fn:ident, $client_fn:ident) => {
        pub fn $config_fn(endpoint: &str) -> $sdk::config::Builder {
            super::loopback_addr(endpoint);
            $sdk::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials())
                .endpoint_url(endpoint)
                .http_client(http_client())
                .retry_config(retry())
                .timeout_config(timeouts())
        }

        pub fn $client_fn(endpoint: &str) -> $sdk::Client {
            $sdk::Client::from_conf($config_fn(endpoint).build())
        }
    };
}

client_fns!(aws_sdk_ssm, ssm_config, ssm);
client_fns!(aws_sdk_kms, kms_config, kms);
client_fns!(aws_sdk_dynamodb, dynamodb_config, dynamodb);
client_fns!(
    aws_sdk_secretsmanager,
    secretsmanager_config,
    secretsmanager
);

/// Puts `name` = `value` as a SecureString (default key, overwriting);
/// returns the new version.
#[track_caller]
pub fn put_secure(endpoint: &str, name: &str, value: &str) -> i64 {
    let out = block_on(
        ssm(endpoint)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send(),
    )
    .unwrap_or_else(|e| panic!("PutParameter {name}: {e:?}"));
    out.version()
}

/// Puts `n` SecureStrings `path/p000`, `path/p001`, ... with values
/// `value-000-<path>`, ...; returns the `(name, value)` pairs in order.
#[track_caller]
pub fn put_many(endpoint: &str, path: &str, n: usize) -> Vec<(String, String)> {
    let path = path.trim_end_matches('/');
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("{path}/p{i:03}"), format!("value-{i:03}-{path}")))
        .collect();
    let client = ssm(endpoint);
    block_on(async {
        // A few at a time (moto serves each request on its own thread).
        for chunk in pairs.chunks(8) {
            let mut set = tokio::task::JoinSet::new();
            for (name, value) in chunk {
                let put = client
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(true);
                let name = name.clone();
                set.spawn(async move {
                    put.send()
                        .await
                        .map_err(|e| format!("PutParameter {name}: {e:?}"))
                });
            }
            while let Some(r) = set.join_next().await {
                if let Err(e) = r.expect("put task") {
                    panic!("{e}");
                }
            }
        }
    });
    pairs
}

/// The decrypted value of parameter `name`, or `None` if it does not exist.
#[track_caller]
pub fn get_plain(endpoint: &str, name: &str) -> Option<String> {
    let r = block_on(
        ssm(endpoint)
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send(),
    );
    match r {
        Ok(out) => out.parameter().and_then(|p| p.value()).map(str::to_string),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            None
        }
        Err(e) => panic!("GetParameter {name}: {e:?}"),
    }
}

/// Creates a symmetric KMS key, with `alias` (`alias/...`) if given; returns its id.
#[track_caller]
pub fn create_key(endpoint: &str, alias: Option<&str>) -> String {
    let client = kms(endpoint);
    block_on(async {
        let key = client
            .create_key()
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateKey: {e:?}"));
        let id = key
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .expect("key id");
        if let Some(alias) = alias {
            client
                .create_alias()
                .alias_name(alias)
                .target_key_id(&id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateAlias {alias}: {e:?}"));
        }
        id
    })
}
