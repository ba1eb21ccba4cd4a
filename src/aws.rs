//! The one place AWS clients are configured: region and credentials from the standard chain,
//! endpoint overrides, retries, timeouts bounded by `--timeout`, a user-agent naming us, one
//! TLS stack (rustls on ring) with compiled-in trust roots, and `--debug` request logging.
//! Also: turning SDK errors into our errors with AWS's code kept and a next step named.

use crate::config::StoreConfig;
use crate::error::{AwsKind, Error, Result};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::future::Future;
use std::time::{Duration, Instant};

pub mod files;
mod retry;
pub use retry::inherit;

pub const USER_AGENT_APP: &str = concat!("ecs-secrets-", env!("CARGO_PKG_VERSION"));

/// Load the shared SDK configuration. Reads the standard AWS variables and files through
/// aws-config; invents none.
pub async fn load(cfg: &StoreConfig) -> SdkConfig {
    // Retries and their backoff live in the connector (aws/retry.rs), which retries until
    // the deadline; an attempt is abandoned only when it stalls: no byte for `stall`
    // (the read timeout: until the first byte; between chunks, retry.rs). No whole-attempt
    // timeout, which would cut off a slow answer that is still arriving.
    let stall = retry::stall_timeout(cfg.timeout);
    let timeouts = TimeoutConfig::builder()
        // The connection (TCP, a proxy's CONNECT tunnel, TLS) gets three quarters of the
        // stall: its timeout then always fires before the read timeout, which also runs during
        // the connect. Equal, the two raced, and an unanswered CONNECT was sometimes blamed on
        // AWS instead of the proxy (seen under qemu-user's slower start of the connect).
        .connect_timeout((stall * 3 / 4).min(Duration::from_secs(3)))
        .read_timeout(stall)
        .disable_operation_attempt_timeout()
        // A backstop only: every call runs under `with_deadline(--timeout)`, which fires
        // first and can name what the attempts went through; an SDK timeout on the same
        // tick would win the race with a bare "timed out".
        .operation_timeout(cfg.timeout + Duration::from_secs(1))
        .build();
    // The SDK's own retries see only what the connector does not retry: unsigned requests
    // (the credential endpoints) and, after minutes of throttling, an answer handed back so
    // that the request is signed anew.
    let retries = RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5));
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .app_name(AppName::new(USER_AGENT_APP).expect("static app name is valid"))
        .retry_config(retries)
        .timeout_config(timeouts);
    // The shared config and credentials files, read by us, bounded (aws/files.rs); when one
    // is unusable, nothing is sent and every request fails with the reason.
    let loader = match files::profile_files() {
        Ok(profiles) => loader.profile_files(profiles).http_client(http_client()),
        Err(reason) => loader
            .profile_files(files::no_profile_files())
            .credentials_provider(files::Refuse(reason.clone()))
            .http_client(crate::tls::refusing_client(reason)),
    };
    let sdk = loader.load().await;
    if cfg.debug {
        debug_region(&sdk);
    }
    // The token files the chain reads, checked before every resolution (aws/files.rs).
    match sdk.credentials_provider() {
        Some(chain) => sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    files::CheckedTokenFiles(chain),
                ),
            )
            .build(),
        None => sdk,
    }
}

/// `--debug`: the region in use, once per process (a refresh loads the config again).
/// The endpoint of each service is printed with its first request (`Attempts`).
fn debug_region(sdk: &SdkConfig) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let region = sdk.region().map(|r| r.as_ref().to_string());
        crate::log::debug(format_args!(
            "region {}{}",
            region.as_deref().unwrap_or("none (set AWS_REGION)"),
            sdk.endpoint_url()
                .map(|u| format!(", endpoint override {}", host_of(u)))
                .unwrap_or_default()
        ));
    });
}

/// `scheme://host[:port]` of a URL, without any user info, path or query.
fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    }
}

/// Services whose endpoint `--debug` has printed.
static ENDPOINTS_SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// HTTPS as `crate::tls` builds it (trust roots, proxy), with certificate errors final.
fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(CertErrorsAreFinal(crate::tls::https_client()))
}

/// Every connector it hands out retries signed requests until the deadline (retry.rs).
/// A certificate the trust roots reject is rejected again on every retry: make such a
/// failure final, so it is reported as itself at once instead of being retried until the
/// deadline hides it. Everything else passes through untouched.
#[derive(Debug)]
struct CertErrorsAreFinal(SharedHttpClient);

impl HttpClient for CertErrorsAreFinal {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let tls = SharedHttpConnector::new(CertErrorsAreFinalConnector(
            self.0.http_connector(settings, components),
        ));
        SharedHttpConnector::new(retry::Retrying {
            inner: tls,
            stall: settings
                .read_timeout()
                .unwrap_or(retry::stall_timeout(Duration::MAX)),
        })
    }

    /// Not passed on: the hyper client's validation only builds a connector and throws it
    /// away ("so native certs load at client initialization"), which re-parses all 118 trust
    /// roots for every SDK client created (SSM, and STS inside the credential chain) — 57 % of
    /// a zero-secret start-up's instructions. Nothing is lost: it discards that connector's
    /// result and always returns `Ok`. The connector is built once, for the first request.
    fn validate_base_client_config(
        &self,
        _components: &RuntimeComponentsBuilder,
        _cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct CertErrorsAreFinalConnector(SharedHttpConnector);

impl HttpConnector for CertErrorsAreFinalConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = self.0.call(request);
        HttpConnectorFuture::new(async move {
            call.await.map_err(|e| {
                if is_certificate_error(&e) {
                    // `other` without a kind: no retry classifier retries it.
                    ConnectorError::other(e.into(), None)
                } else {
                    e
                }
            })
        })
    }
}

/// Whether rustls rejected the server's certificate somewhere in this error chain.
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    certificate_error(e).is_some()
}

/// What rustls found wrong with the server's certificate, if that is what failed.
fn certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    match find::<rustls::Error>(e) {
        Some(rustls::Error::InvalidCertificate(c)) => Some(c),
        _ => None,
    }
}

/// The first error of type `T` in this error chain (looking inside `io::Error` payloads).
pub fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error::source() skips its own payload (itself often another io::Error
        // wrapping the rustls error), so descend into the payload instead.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(payload) => Some(payload as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

const CERT_HINT: &str = "; the server's certificate is not trusted: the compiled-in Mozilla \
    roots are used, plus SSL_CERT_FILE/SSL_CERT_DIR/AWS_CA_BUNDLE when set — for a private CA \
    or a TLS-inspecting proxy, set AWS_CA_BUNDLE to its PEM bundle";

/// The next step for a certificate the server presented and rustls refused, by what was
/// wrong with it.
fn cert_hint(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::NotValidForName | C::NotValidForNameContext { .. } => "; the server's certificate \
            does not name the host that was asked for (a trust store cannot fix that): check \
            that AWS_ENDPOINT_URL uses a name the certificate was issued for, or whether a \
            TLS-inspecting proxy presents a certificate for another name"
            .to_string(),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "; the server's certificate is expired or not yet valid: check this machine's \
             clock, or have the server's certificate renewed"
                .to_string()
        }
        _ => match std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty()) {
            Some(b) => format!(
                "; the server's certificate is not trusted, and AWS_CA_BUNDLE={} does not \
                 hold the CA that issued it: add that CA's certificate (PEM) to the bundle",
                std::path::Path::new(&b).display()
            ),
            None => CERT_HINT.to_string(),
        },
    }
}

/// The credentials the SDK's chain would use, by the variables set (in the chain's order),
/// and what to check about them.
fn credentials_hint() -> String {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID").is_some() {
        return "; check the credentials: the access key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
                (and AWS_SESSION_TOKEN for temporary ones) is used first"
            .to_string();
    }
    if let Some(p) = set("AWS_PROFILE") {
        return format!(
            "; check the credentials of the profile AWS_PROFILE={}",
            crate::names::printable(&p)
        );
    }
    if let (Some(role), Some(file)) = (set("AWS_ROLE_ARN"), set("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        return format!(
            "; check the web identity credentials (EKS IRSA): the role AWS_ROLE_ARN={} \
             must trust this cluster's OIDC provider and service account, and the token in \
             AWS_WEB_IDENTITY_TOKEN_FILE={} must be current",
            crate::names::printable(&role),
            crate::names::printable(&file)
        );
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        return "; check the credentials: the ECS task role or EKS Pod Identity association \
                (AWS_CONTAINER_CREDENTIALS_*)"
            .to_string();
    }
    hint(AwsKind::Credentials).to_string()
}

/// Where the chain would be fetching credentials from while no request was signed yet, if
/// from an endpoint.
fn credential_endpoint() -> Option<String> {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID").is_some() || set("AWS_PROFILE").is_some() {
        return None;
    }
    let imds_off = set("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let (Some(role), Some(_)) = (set("AWS_ROLE_ARN"), set("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        return Some(format!(
            "STS (AssumeRoleWithWebIdentity for AWS_ROLE_ARN={})",
            crate::names::printable(&role)
        ));
    }
    if let Some(rel) = set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        return Some(format!(
            "the ECS credentials endpoint (http://169.254.170.2{})",
            crate::names::printable(&rel)
        ));
    }
    if let Some(full) = set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return Some(format!(
            "the container credentials endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI={}",
            crate::names::printable(&full)
        ));
    }
    (!imds_off)
        .then(|| "the EC2 instance metadata service (IMDS, http://169.254.169.254)".to_string())
}

/// Run `fut` under the overall deadline (`--timeout`), which bounds credential resolution,
/// every page and every retry together.
pub async fn with_deadline<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let tally = retry::SharedTally::default();
    if let Ok(mut t) = tally.lock() {
        t.deadline = timeout;
    }
    let started = Instant::now();
    match tokio::time::timeout(timeout, retry::tallied(tally.clone(), fut)).await {
        Ok(r) => r,
        Err(_) => {
            let t = tally.lock().unwrap_or_else(|e| e.into_inner());
            Err(Error::Deadline(deadline_message(
                what,
                timeout,
                started.elapsed(),
                &t,
            )))
        }
    }
}

/// What a deadline error says: the deadline, what the attempts went through, the last
/// cause, and a next step that fits that cause (raising --timeout only where more time
/// would help).
fn deadline_message(what: &str, timeout: Duration, took: Duration, t: &retry::Tally) -> String {
    use retry::Cause;
    let head = format!(
        "{what}: no complete answer within the {}s deadline",
        fmt_secs(timeout)
    );
    if t.attempts == 0 {
        // Nothing signed was sent: stuck before, e.g. resolving credentials.
        let last = last_attempt()
            .map(|l| format!(" (last attempt: {l})"))
            .unwrap_or_default();
        if let Some(source) = credential_endpoint() {
            return format!(
                "{head}{last}; no request was signed yet: the credentials were still being \
                 fetched from {source} — check that it answers from here, or raise --timeout"
            );
        }
        return format!("{head}{last}; check connectivity to AWS, or raise --timeout");
    }
    let mut failed = Vec::new();
    for (n, one, many) in [
        (t.throttled, "throttled", "throttled"),
        (t.server_errors, "server error", "server errors"),
        (t.network, "connection failed", "connections failed"),
        (t.stalled, "stalled", "stalled"),
    ] {
        match n {
            0 => {}
            1 => failed.push(format!("1 {one}")),
            n => failed.push(format!("{n} {many}")),
        }
    }
    let failed = if failed.is_empty() {
        String::new()
    } else {
        format!(": {}", failed.join(", "))
    };
    let plural = if t.attempts == 1 { "" } else { "s" };
    let mut msg = format!(
        "{head}: {} attempt{plural} in {:.1} s{failed}",
        t.attempts,
        took.as_secs_f64()
    );
    let stall = fmt_secs(t.stall);
    let last = match &t.last {
        Some((_, l)) => format!("; last failure: {l}"),
        None => String::new(),
    };
    let (cause, in_flight) = (t.last.as_ref().map(|l| l.0), t.in_flight > 0);
    // The last failure decides the advice; with none, what was still pending.
    let via_proxy = match (cause, &t.proxy) {
        (Some(Cause::Stalled | Cause::Network), Some((proxy, true))) => format!(
            "; the proxy HTTPS_PROXY={proxy} did not set up the tunnel (no answer to CONNECT, \
             or a refusal): check that the proxy is up and lets this host through, or exempt \
             the endpoint with NO_PROXY"
        ),
        (Some(Cause::Stalled), Some((proxy, false))) => format!(
            "; no answer through the proxy HTTPS_PROXY={proxy} ({stall} s without a byte): the \
             proxy or AWS behind it stopped answering — check the proxy and its connectivity \
             to AWS, or raise --timeout if it is merely slow"
        ),
        _ => String::new(),
    };
    let hint = if !via_proxy.is_empty() {
        via_proxy
    } else {
        match cause {
            None if in_flight => format!(
                "; a request was still waiting for its answer (an attempt is given up only after \
             {stall} s without a byte): AWS is slow or unreachable — check connectivity to \
             AWS, or raise --timeout"
            ),
            Some(Cause::Throttled) => throttled_hint(t.throttled_service),
            Some(Cause::ServerError) => {
                "; AWS kept answering with server errors: a problem on its side, try again later"
                    .to_string()
            }
            Some(Cause::Network) => hint(AwsKind::Network).to_string(),
            Some(Cause::Stalled) => format!(
            "; AWS stopped answering ({stall} s without a byte): check connectivity to AWS, or \
             raise --timeout if it is merely slow"
        ),
            None => "; check connectivity to AWS, or raise --timeout".to_string(),
        }
    };
    msg.push_str(&last);
    msg.push_str(&hint);
    msg
}

/// The advice for a deadline spent throttled. Moving to the dynamodb backend is advice only
/// when Parameter Store or Secrets Manager throttled: DynamoDB's and KMS's own quotas are
/// what the dynamodb backend uses.
fn throttled_hint(service: Option<&str>) -> String {
    let (whose, instead) = match service {
        Some("ssm") => ("Parameter Store", ", or use the dynamodb backend"),
        Some("secretsmanager") => ("Secrets Manager", ", or use the dynamodb backend"),
        Some("dynamodb") => ("DynamoDB", ""),
        Some("kms") => ("KMS", ""),
        _ => ("AWS", ""),
    };
    format!(
        "; {whose} throttled the requests: its request-rate quota is per account and region, \
         shared by every task. Starting K tasks that each need P requests takes at least \
         K × P ÷ quota seconds (docs/fleet.md in the documentation): raise --timeout to that, \
         or stagger the starts{instead}"
    )
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// Classify an SDK error and name the next step. `context` says what we were doing
/// ("reading /prod/app from SSM"). Service messages are kept (they carry the useful detail)
/// but pass through `redact` for writes, since a validation message could echo input.
pub fn error<E, R>(context: impl Into<String>, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    error_redacted(context, e, None)
}

pub fn error_redacted<E, R>(
    context: impl Into<String>,
    e: SdkError<E, R>,
    secret: Option<&[u8]>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // Generic over every operation's error type: only what needs the type is read here;
    // the rest is one non-generic function (one copy in the binary, not one per operation).
    let sort = match &e {
        SdkError::ServiceError(s) => Sort::Service {
            code: s.err().code(),
            message: s.err().message(),
        },
        SdkError::TimeoutError(_) => Sort::Timeout,
        SdkError::DispatchFailure(d) => Sort::Dispatch {
            timeout: d.is_timeout(),
        },
        _ => Sort::Other,
    };
    classify(context.into(), sort, &e, secret)
}

/// What kind of `SdkError` an error is, with what its type alone can tell.
enum Sort<'a> {
    Service {
        code: Option<&'a str>,
        message: Option<&'a str>,
    },
    Timeout,
    Dispatch {
        timeout: bool,
    },
    Other,
}

fn classify(
    context: String,
    sort: Sort<'_>,
    e: &(dyn std::error::Error + 'static),
    secret: Option<&[u8]>,
) -> Error {
    // AWS_CA_BUNDLE or HTTPS_PROXY unusable, or the proxy wanting credentials: what failed
    // is the way to AWS, and the reason names the variable and the fix.
    let own_reason = find::<crate::tls::Unusable>(e).is_some()
        || find::<crate::tls::ProxyAuthRequired>(e).is_some();
    let (kind, detail) = match sort {
        _ if own_reason => (AwsKind::Network, chain(e)),
        Sort::Service { code, message } => {
            let code = code.unwrap_or("UnknownError");
            let msg = message.unwrap_or("");
            let kind = kind_of_code(code);
            (
                kind,
                if msg.is_empty() {
                    code.to_string()
                } else {
                    format!("{code}: {msg}")
                },
            )
        }
        Sort::Timeout => (AwsKind::Timeout, "timed out".to_string()),
        Sort::Dispatch { timeout } => {
            let text = chain(e);
            let kind = if timeout {
                AwsKind::Timeout
            } else if looks_like_credentials(&text) {
                AwsKind::Credentials
            } else {
                AwsKind::Network
            };
            (kind, text)
        }
        Sort::Other => {
            let text = chain(e);
            let kind = if looks_like_credentials(&text) {
                AwsKind::Credentials
            } else {
                AwsKind::Service
            };
            (kind, text)
        }
    };
    let hint = if let Some(c) = certificate_error(e) {
        cert_hint(c)
    } else if own_reason || find::<files::TokenFileUnusable>(e).is_some() {
        // The reason names the variable and what fixes it.
        String::new()
    } else if let Some(h) = detail_hint(&detail) {
        h.to_string()
    } else if kind == AwsKind::Credentials {
        credentials_hint()
    } else {
        hint(kind).to_string()
    };
    let detail = match secret {
        Some(s) if !s.is_empty() => redact(&detail, s),
        _ => detail,
    };
    let (detail, tried) = providers_tried(&detail);
    Error::Aws {
        kind,
        context,
        detail: crate::names::printable(detail),
        hint: format!("{hint}{tried}"),
    }
}

/// The SDK's "no credentials found in chain. Attempted:\n  Environment: …\n  Profile: …"
/// as a first line and then one readable line per provider tried (`printable` would show
/// its newlines as a literal `\n`, one unreadable line).
fn providers_tried(detail: &str) -> (&str, String) {
    let Some((head, list)) = detail.split_once("Attempted:") else {
        return (detail, String::new());
    };
    let tried: String = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.replacen("the credential provider was not enabled: ", "", 1);
            format!("\n  tried {}", crate::names::printable(&l))
        })
        .collect();
    (head.trim_end().trim_end_matches('.'), tried)
}

/// An error and its sources as one line: each distinct message once, joined by ": ".
/// (The SDK's `DisplayErrorContext` appends a Debug dump, which is noise in a one-line error.)
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        if !msg.is_empty() && !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn looks_like_credentials(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("credentials") || t.contains("identity")
}

pub fn kind_of_code(code: &str) -> AwsKind {
    match code {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "KMSAccessDeniedException" => AwsKind::AccessDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "SignatureDoesNotMatch" => AwsKind::Credentials,
        "ParameterNotFound"
        | "ParameterVersionNotFound"
        | "ResourceNotFoundException"
        | "NotFoundException" => AwsKind::NotFound,
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyUpdates"
        | "ProvisionedThroughputExceededException"
        | "RequestThrottled"
        | "LimitExceededException"
        | "SlowDown" => AwsKind::Throttled,
        "ConditionalCheckFailedException" | "TransactionConflictException" => AwsKind::Conflict,
        "ValidationException"
        | "ParameterPatternMismatchException"
        | "ParameterLimitExceeded"
        | "InvalidKeyId"
        | "HierarchyTypeMismatchException"
        | "ParameterMaxVersionLimitExceeded"
        | "InvalidCiphertextException"
        | "UnsupportedParameterType" => AwsKind::Invalid,
        _ => AwsKind::Service,
    }
}

/// A next step that the error itself decides, where the kind's would be wrong: a KMS key
/// that is disabled or pending deletion needs enabling, not a permission (SSM names it
/// `KMSInvalidStateException` too, Secrets Manager wraps it in its message); no region
/// makes the SDK say "missing signing region", which is no network problem.
fn detail_hint(detail: &str) -> Option<&'static str> {
    if [
        "DisabledException",
        "KMSInvalidStateException",
        "is disabled",
        "pending deletion",
    ]
    .iter()
    .any(|c| detail.contains(c))
    {
        return Some(KMS_STATE_HINT);
    }
    let d = detail.to_ascii_lowercase();
    if [
        "signing region",
        "missing region",
        "no region",
        "region is not set",
    ]
    .iter()
    .any(|c| d.contains(c))
    {
        return Some(NO_REGION_HINT);
    }
    None
}

pub const KMS_STATE_HINT: &str = "; the KMS key is disabled or pending deletion: enable it \
    (`aws kms enable-key --key-id KEY`; a key pending deletion first needs \
    `aws kms cancel-key-deletion --key-id KEY`), or use another key";

pub const NO_REGION_HINT: &str = "; no AWS region is configured: set AWS_REGION (e.g. \
    AWS_REGION=eu-west-1), AWS_DEFAULT_REGION, or `region` in the AWS_PROFILE's config file";

fn hint(kind: AwsKind) -> &'static str {
    match kind {
        AwsKind::Credentials => "; check the credentials: the ECS task role (AWS_CONTAINER_CREDENTIALS_*), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        AwsKind::AccessDenied => "; grant the role this permission (`ecs-secrets setup --fetch-role ARN` prints the policy)",
        AwsKind::NotFound => "",
        AwsKind::Throttled => "; throttled: raise --timeout, or stagger concurrent starts",
        AwsKind::Network => "; check network access to the AWS endpoint (AWS_ENDPOINT_URL, VPC endpoints, proxy settings)",
        AwsKind::Timeout => "; check connectivity to AWS, or raise --timeout",
        AwsKind::Invalid | AwsKind::Conflict | AwsKind::Service => "",
    }
}

/// Replace any occurrence of `secret` (as text) in `text`.
pub fn redact(text: &str, secret: &[u8]) -> String {
    match std::str::from_utf8(secret) {
        Ok(s) if !s.is_empty() => text.replace(s, "<redacted>"),
        _ => text.to_string(),
    }
}

/// Watches every HTTP attempt: remembers how the last one went (so a deadline error can say
/// "last attempt: HTTP 400 ThrottlingException" rather than only "timed out"), and with
/// `--debug` prints one stderr line per attempt: service, operation, status, time. Never a
/// body, so never a payload.
#[derive(Debug)]
pub struct Attempts {
    pub debug: bool,
}

static LAST_ATTEMPT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// How the most recent HTTP attempt of this process ended, if any ended.
pub fn last_attempt() -> Option<String> {
    LAST_ATTEMPT.lock().ok().and_then(|l| l.clone())
}

#[derive(Debug, Clone)]
struct AttemptStart(Instant);
impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "ecs-secrets-attempts"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.debug {
            let service = cfg
                .load::<Metadata>()
                .map(|m| m.service().to_string())
                .unwrap_or_else(|| "request".into());
            let mut shown = ENDPOINTS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
            if !shown.contains(&service) {
                crate::log::debug(format_args!(
                    "{service} endpoint {}",
                    host_of(ctx.request().uri())
                ));
                shown.push(service);
            }
        }
        cfg.interceptor_state()
            .store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "request".into());
        let ms = cfg
            .load::<AttemptStart>()
            .map(|s| format!("{:.1} ms", s.0.elapsed().as_secs_f64() * 1e3))
            .unwrap_or_default();
        let outcome = match (ctx.response(), ctx.output_or_error()) {
            (Some(r), result) => {
                let code = r
                    .headers()
                    .get("x-amzn-errortype")
                    .map(|c| format!(" {}", c.split(':').next().unwrap_or(c)))
                    .unwrap_or_default();
                let status = r.status().as_u16();
                // A success status with a failed result: the body broke off.
                let broke = match result {
                    Some(Err(e)) if (200..300).contains(&status) => {
                        let text = chain(e);
                        format!(", then: {}", text.chars().take(120).collect::<String>())
                    }
                    _ => String::new(),
                };
                format!("HTTP {status}{code}{broke}")
            }
            (None, Some(Err(e))) => {
                let text = chain(e);
                format!(
                    "no response: {}",
                    text.chars().take(160).collect::<String>()
                )
            }
            (None, _) => "no response".into(),
        };
        if let Ok(mut l) = LAST_ATTEMPT.lock() {
            *l = Some(format!("{op}: {outcome}"));
        }
        if self.debug {
            crate::log::debug(format_args!("{op}: {outcome} {ms}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_20_messages_say_what_fixes_them() {
        // No credentials: one line per provider tried, no literal `\n`.
        let sdk = "dispatch failure: other: the credential provider was not enabled: no \
                   credentials found in chain. Attempted:\n  Environment: the credential \
                   provider was not enabled: environment variable not set\n  Profile: the \
                   credential provider was not enabled\n";
        let (head, tried) = providers_tried(sdk);
        assert!(head.ends_with("no credentials found in chain"), "{head}");
        assert_eq!(
            tried,
            "\n  tried Environment: environment variable not set\n  tried Profile: the credential provider was not enabled"
        );
        assert_eq!(providers_tried("plain"), ("plain", String::new()));
        // A disabled key or one pending deletion: enable it, not "grant".
        for d in [
            "DisabledException: arn:aws:kms:us-east-1:1:key/k is disabled.",
            "KMSInvalidStateException: key is pending deletion",
        ] {
            assert_eq!(detail_hint(d), Some(KMS_STATE_HINT), "{d}");
            assert_ne!(
                kind_of_code(d.split(':').next().unwrap()),
                AwsKind::AccessDenied
            );
        }
        // No region: set AWS_REGION, not "check network access".
        for d in [
            "dispatch failure: other: Invalid Configuration: Missing Region",
            "failed to construct request: missing signing region",
        ] {
            assert_eq!(detail_hint(d), Some(NO_REGION_HINT), "{d}");
        }
        assert_eq!(detail_hint("ThrottlingException: Rate exceeded"), None);
        assert_eq!(
            host_of("https://u:p@ssm.eu-west-1.amazonaws.com/x?y"),
            "https://ssm.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn deadline_messages_name_the_attempts_and_advise_by_the_last_cause() {
        use retry::{Cause, Tally};
        let d = Duration::from_secs(30);
        let t = Tally {
            attempts: 9,
            network: 9,
            last: Some((Cause::Network, "no answer: Connection refused".into())),
            // The deadline can fire while an attempt is connecting: still the network's fault.
            in_flight: 1,
            stall: Duration::from_secs(15),
            ..Tally::default()
        };
        let m = deadline_message("reading /p", d, Duration::from_secs(30), &t);
        assert!(m.starts_with("reading /p: no complete answer within the 30s deadline: 9 attempts in 30.0 s: 9 connections failed; last failure: no answer: Connection refused; check network access"), "{m}");
        assert!(!m.contains("--timeout"), "{m}");
        let t = Tally {
            attempts: 12,
            throttled: 11,
            server_errors: 1,
            last: Some((Cause::Throttled, "HTTP 400 ThrottlingException".into())),
            ..Tally::default()
        };
        let m = deadline_message("reading /p", d, Duration::from_secs(30), &t);
        assert!(m.contains(": 11 throttled, 1 server error; last failure: HTTP 400 ThrottlingException; AWS throttled"), "{m}");
        assert!(m.contains("quota") && m.contains("raise --timeout"), "{m}");
        // Moving to dynamodb is advice only when Parameter Store or Secrets Manager throttled.
        assert!(!m.contains("dynamodb backend"), "{m}");
        for (service, whose, suggests_dynamodb) in [
            ("ssm", "Parameter Store throttled", true),
            ("secretsmanager", "Secrets Manager throttled", true),
            ("dynamodb", "DynamoDB throttled", false),
            ("kms", "KMS throttled", false),
        ] {
            let t = Tally {
                attempts: 3,
                throttled: 3,
                last: Some((Cause::Throttled, "HTTP 400 ThrottlingException".into())),
                throttled_service: Some(service),
                ..Tally::default()
            };
            let m = deadline_message("reading /p", d, Duration::from_secs(30), &t);
            assert!(m.contains(whose), "{m}");
            assert_eq!(
                m.contains("use the dynamodb backend"),
                suggests_dynamodb,
                "{m}"
            );
        }
        let t = Tally {
            attempts: 1,
            in_flight: 1,
            stall: Duration::from_secs(15),
            ..Tally::default()
        };
        let m = deadline_message("reading /p", d, Duration::from_secs(30), &t);
        assert!(
            m.contains("1 attempt in 30.0 s; a request was still waiting"),
            "{m}"
        );
    }

    #[test]
    fn certificate_errors_are_found_through_nested_io_errors() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        let outer = std::io::Error::other(inner);
        let connector = ConnectorError::io(Box::new(outer));
        assert!(is_certificate_error(&connector));
        let plain = ConnectorError::io(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(!is_certificate_error(&plain));
    }
}
