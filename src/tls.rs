//! The HTTPS client under every AWS call: rustls on ring, the trust roots, and the forward
//! proxy. (`aws.rs` wraps it to make certificate errors final.)
//!
//! Trust roots, each certificate parsed once (a certificate that several sources name is
//! added once, by its DER bytes):
//! - Mozilla's, compiled in, so an image without /etc/ssl works;
//! - with `SSL_CERT_FILE` and/or `SSL_CERT_DIR` set, the certificates they name (OpenSSL's
//!   variables; unreadable entries are skipped, as OpenSSL does);
//! - with `AWS_CA_BUNDLE` set (the AWS SDKs' variable for a private CA or a TLS-inspecting
//!   proxy), the certificates of that PEM file. It was named on purpose, so a file that cannot
//!   be read or holds a certificate that does not parse fails every request, saying so.
//!
//! Proxy: `HTTPS_PROXY` (or `https_proxy`) carries every `https://` request through an HTTP
//! CONNECT tunnel, except to the hosts `NO_PROXY` (or `no_proxy`) names. Plain `http://`
//! requests never use a proxy: those are the link-local credential endpoints (ECS, EKS Pod
//! Identity, IMDS) and local endpoints, which a proxy must not see. `HTTP_PROXY` is ignored
//! for the same reason. A value that is not a proxy URL fails every request, saying so.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Connector};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::HashSet;
use std::path::Path;

/// The HTTPS client, or, when `AWS_CA_BUNDLE` or `HTTPS_PROXY` is unusable, a client whose
/// every request fails with that reason (nothing is sent anywhere else instead).
pub fn https_client() -> SharedHttpClient {
    match settings() {
        Ok((store, proxy)) => build(store, proxy),
        Err(reason) => SharedHttpClient::new(Refuse(reason)),
    }
}

fn settings() -> Result<(tls::TrustStore, ProxyConfig), String> {
    let roots = Roots::from_env()?;
    let proxy = proxy_from_env()?;
    Ok((roots.into_store(), proxy))
}

fn build(store: tls::TrustStore, proxy: ProxyConfig) -> SharedHttpClient {
    let ctx = tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("the TLS context has no fallible settings here");
    // The same connector `Builder::build_https` makes, plus the proxy, which only the
    // connector builder takes.
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = Connector::builder();
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.proxy_config(proxy.clone())
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(ctx.clone())
            .build()
    })
}

/// The trust roots as DER, deduplicated.
#[derive(Default)]
struct Roots {
    seen: HashSet<Vec<u8>>,
    pem: Vec<Vec<u8>>,
}

impl Roots {
    fn from_env() -> Result<Roots, String> {
        let mut roots = Roots::default();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            // Compiled in and known to parse: no check needed.
            roots.add_trusted(der.as_ref());
        }
        let file = std::env::var_os("SSL_CERT_FILE");
        let dir = std::env::var_os("SSL_CERT_DIR");
        if file.is_some() || dir.is_some() {
            // The same reader (and rules) as before: rustls-native-certs reads exactly these
            // two variables when either is set, each file once.
            for der in rustls_native_certs::load_native_certs().certs {
                roots.add_checked(der.as_ref());
            }
        }
        if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty()) {
            roots.add_bundle(Path::new(&bundle))?;
        }
        Ok(roots)
    }

    fn add_bundle(&mut self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|e| format!("AWS_CA_BUNDLE={shown}: cannot read it: {e}"))?;
        let mut n = 0;
        for (i, der) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let der = der.map_err(|e| {
                format!(
                    "AWS_CA_BUNDLE={shown}: certificate {} is not valid PEM: {e}",
                    i + 1
                )
            })?;
            if !self.seen.contains(der.as_ref()) {
                parses(&der).map_err(|e| {
                    format!(
                        "AWS_CA_BUNDLE={shown}: certificate {} is not a usable CA certificate: {e}",
                        i + 1
                    )
                })?;
                self.add_trusted(der.as_ref());
            }
            n += 1;
        }
        if n == 0 {
            return Err(format!(
                "AWS_CA_BUNDLE={shown}: no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)"
            ));
        }
        Ok(())
    }

    /// A certificate from the system's files: added when new and parsable (one that does not
    /// parse is skipped, as rustls does with these files).
    fn add_checked(&mut self, der: &[u8]) {
        if !self.seen.contains(der) && parses(&CertificateDer::from(der)).is_ok() {
            self.add_trusted(der);
        }
    }

    /// Adds `der` unless already present. The SDK expects it to parse (it panics otherwise).
    fn add_trusted(&mut self, der: &[u8]) {
        if self.seen.insert(der.to_vec()) {
            self.pem.push(pem(der));
        }
    }

    fn into_store(self) -> tls::TrustStore {
        let mut store = tls::TrustStore::empty().with_native_roots(false);
        for p in self.pem {
            store.add_pem_certificate(p);
        }
        store
    }
}

/// Whether rustls accepts `der` as a trust anchor: the same check the SDK makes (with
/// `expect`) when it builds its root store. Only certificates that are not already known
/// are checked, so in the usual case (system files holding Mozilla's roots) none is.
fn parses(der: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    rustls::RootCertStore::empty().add(der.clone())
}

fn pem(der: &[u8]) -> Vec<u8> {
    let b64 = aws_smithy_types::base64::encode(der);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    out
}

fn env_either(upper: &str, lower: &str) -> Option<String> {
    [upper, lower]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
}

/// `HTTPS_PROXY` with `NO_PROXY` applied; disabled when unset. A bare `host:port` means
/// `http://host:port`, as curl reads it.
fn proxy_from_env() -> Result<ProxyConfig, String> {
    let Some(raw) = env_either("HTTPS_PROXY", "https_proxy") else {
        return Ok(ProxyConfig::disabled());
    };
    let url = raw.trim();
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let shown = shown_proxy(&url);
    let mut cfg = ProxyConfig::https(url.as_str()).map_err(|e| {
        format!("HTTPS_PROXY={shown} is not a usable proxy URL ({e}); expected http://host:port")
    })?;
    if let Some(rules) = env_either("NO_PROXY", "no_proxy") {
        cfg = cfg.no_proxy(rules);
    }
    Ok(cfg)
}

/// A proxy URL without its password, for messages.
fn shown_proxy(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://<credentials>@{host}{}", &rest[authority_end..]),
        None => url.to_string(),
    }
}

/// A client that sends nothing: every request fails at once with the reason, never retried.
#[derive(Debug)]
struct Refuse(String);

impl HttpClient for Refuse {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RefuseConnector(self.0.clone()))
    }
}

#[derive(Debug)]
struct RefuseConnector(String);

impl HttpConnector for RefuseConnector {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let reason = self.0.clone();
        // `other` without a kind: no retry classifier retries it.
        HttpConnectorFuture::ready(Err(ConnectorError::other(reason.into(), None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_named_twice_is_added_once() {
        let mut roots = Roots::default();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            roots.add_trusted(der.as_ref());
        }
        let n = roots.pem.len();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            roots.add_checked(der.as_ref());
        }
        assert_eq!(roots.pem.len(), n);
        roots.add_checked(b"not a certificate");
        assert_eq!(roots.pem.len(), n);
    }

    #[test]
    fn proxy_passwords_are_not_shown() {
        assert_eq!(
            shown_proxy("http://u:secret@proxy:3128/x"),
            "http://<credentials>@proxy:3128/x"
        );
        assert_eq!(shown_proxy("http://proxy:3128"), "http://proxy:3128");
    }
}
