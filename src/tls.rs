//! The HTTPS client under every AWS call: rustls on ring, the trust roots, and the forward
//! proxy. (`aws.rs` wraps it to make certificate errors final.)
//!
//! Trust roots, each certificate added once (a certificate that several sources name is
//! recognised by its text, or its DER bytes, and neither decoded nor parsed again):
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
use rustls::pki_types::CertificateDer;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
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

/// The trust roots, each certificate added once. A certificate is known by its base64 text
/// first (so the usual duplicates, the same PEM in a bundle, in a directory and compiled in,
/// are skipped before any decoding), then by its DER bytes. A new certificate from a file is
/// parsed twice: checked here, because the SDK panics on one that does not parse, and again
/// when the SDK builds its root store (which takes PEM only).
#[derive(Default)]
struct Roots {
    seen_text: Seen,
    seen_der: Seen,
    pem: Vec<Vec<u8>>,
}

/// A set of certificates' bytes (DER or base64), hashed by their length and last 48 bytes
/// only: those fall in the signature, which differs between any two certificates, so a hit
/// is then confirmed by comparing all the bytes. Hashing whole certificates was a fifth of
/// the cost of reading the system's bundle and directory.
#[derive(Default)]
struct Seen(HashMap<(usize, [u8; 48]), Vec<Vec<u8>>>);

impl Seen {
    fn key(b: &[u8]) -> (usize, [u8; 48]) {
        let mut tail = [0u8; 48];
        let t = &b[b.len().saturating_sub(48)..];
        tail[..t.len()].copy_from_slice(t);
        (b.len(), tail)
    }

    fn contains(&self, b: &[u8]) -> bool {
        self.0
            .get(&Self::key(b))
            .is_some_and(|v| v.iter().any(|x| x == b))
    }

    /// Whether `b` was new.
    fn insert(&mut self, b: &[u8]) -> bool {
        let v = self.0.entry(Self::key(b)).or_default();
        if v.iter().any(|x| x == b) {
            return false;
        }
        v.push(b.to_vec());
        true
    }
}

impl Roots {
    fn from_env() -> Result<Roots, String> {
        let file = std::env::var_os("SSL_CERT_FILE");
        let dirs = std::env::var_os("SSL_CERT_DIR");
        let bundle = std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty());
        if file.is_none() && dirs.is_none() && bundle.is_none() {
            // Only the compiled-in roots: nothing to recognise, so nothing to remember.
            let pem = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| pem(der.as_ref()).0)
                .collect();
            return Ok(Roots {
                pem,
                ..Roots::default()
            });
        }
        let mut roots = Roots {
            seen_text: Seen(HashMap::with_capacity(512)),
            seen_der: Seen(HashMap::with_capacity(512)),
            pem: Vec::with_capacity(256),
        };
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            // Compiled in and known to parse: no check needed.
            roots.add_trusted(der.as_ref(), None);
        }
        if file.is_some() || dirs.is_some() {
            roots.add_system(file.as_deref().map(Path::new), dirs.as_deref());
        }
        if let Some(bundle) = bundle {
            roots.add_bundle(Path::new(&bundle))?;
        }
        Ok(roots)
    }

    /// OpenSSL's variables, read as rustls-native-certs reads them: the file, then each
    /// directory of the `:`-separated list (not recursively), every file once (symlinks are
    /// followed, and a file already read under another name is skipped). What cannot be
    /// read, decoded or parsed is skipped.
    fn add_system(&mut self, file: Option<&Path>, dirs: Option<&std::ffi::OsStr>) {
        let mut files_seen = HashSet::new();
        let mut read = |path: &Path, roots: &mut Roots| {
            let Ok(meta) = std::fs::metadata(path) else {
                return;
            };
            if meta.is_file() && files_seen.insert((meta.dev(), meta.ino())) {
                if let Ok(bytes) = std::fs::read(path) {
                    for body in pem_bodies(&text(&bytes)) {
                        if let Ok(Some(der)) = roots.decode_new(body) {
                            if parses(&der).is_ok() {
                                roots.add_trusted(&der, Some(body));
                            }
                        }
                    }
                }
            }
        };
        if let Some(f) = file {
            read(f, self);
        }
        for dir in dirs.map(std::env::split_paths).into_iter().flatten() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                read(&p, self);
            }
        }
    }

    fn add_bundle(&mut self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|e| format!("AWS_CA_BUNDLE={shown}: cannot read it: {e}"))?;
        let mut n = 0;
        for body in pem_bodies(&text(&bytes)) {
            n += 1;
            let der = self.decode_new(body).map_err(|()| {
                format!("AWS_CA_BUNDLE={shown}: certificate {n} is not valid PEM (base64)")
            })?;
            if let Some(der) = der {
                parses(&der).map_err(|e| {
                    format!(
                        "AWS_CA_BUNDLE={shown}: certificate {n} is not a usable CA certificate: {e}"
                    )
                })?;
                self.add_trusted(&der, Some(body));
            }
        }
        if n == 0 {
            return Err(format!(
                "AWS_CA_BUNDLE={shown}: no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)"
            ));
        }
        Ok(())
    }

    /// The DER of a PEM body not seen before, `None` for one already known (by its text or
    /// its bytes), `Err` for one that is not base64.
    fn decode_new(&mut self, body: &str) -> Result<Option<Vec<u8>>, ()> {
        if self.seen_text.contains(body.as_bytes()) {
            return Ok(None);
        }
        // Line by line (whitespace inside a line is not base64, and fails below).
        let mut b64 = String::with_capacity(body.len());
        for line in body.lines() {
            b64.push_str(line.trim());
        }
        let der = aws_smithy_types::base64::decode(&b64).map_err(|_| ())?;
        if der.is_empty() {
            return Err(());
        }
        if self.seen_der.contains(&der) {
            // Known under another formatting: remember this one too.
            self.seen_text.insert(body.as_bytes());
            return Ok(None);
        }
        Ok(Some(der))
    }

    /// Adds `der` (which must parse: the SDK panics otherwise) unless already present.
    fn add_trusted(&mut self, der: &[u8], body: Option<&str>) {
        if !self.seen_der.insert(der) {
            return;
        }
        let (pem, ours) = pem(der);
        if let Some(b) = body.filter(|b| b.as_bytes() != &pem[ours.clone()]) {
            self.seen_text.insert(b.as_bytes());
        }
        self.seen_text.insert(&pem[ours]);
        self.pem.push(pem);
    }

    fn into_store(self) -> tls::TrustStore {
        let mut store = tls::TrustStore::empty().with_native_roots(false);
        for p in self.pem {
            store.add_pem_certificate(p);
        }
        store
    }
}

/// A file's bytes as text: `str::from_utf8` is fast on ASCII, the lossy conversion only
/// for the rare file that is not UTF-8 (whose certificate blocks are ASCII all the same).
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The text between the markers of each `CERTIFICATE` block of a PEM file, trimmed (other
/// blocks, and text between blocks, are ignored). Found with `str::find`, which is fast:
/// nothing here looks at each byte.
fn pem_bodies(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let after = &rest[b + BEGIN.len()..];
        let Some(e) = after.find(END) else { break };
        out.push(after[..e].trim());
        rest = &after[e + END.len()..];
    }
    out
}

/// Whether rustls accepts `der` as a trust anchor: the same check the SDK makes (with
/// `expect`) when it builds its root store. Only certificates not already known are
/// checked, so in the usual case (system files holding Mozilla's roots) few are.
fn parses(der: &[u8]) -> Result<(), rustls::Error> {
    rustls::RootCertStore::empty().add(CertificateDer::from(der.to_vec()))
}

/// `der` as PEM, and where its body (the part between the markers) lies in it: 64-column
/// lines of base64 joined by `\n`, exactly as OpenSSL writes certificates, so a system
/// file's copy of a compiled-in root is recognised by its text.
fn pem(der: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
    let b64 = aws_smithy_types::base64::encode(der);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.extend_from_slice(BEGIN.as_bytes());
    out.push(b'\n');
    let start = out.len();
    for (i, line) in b64.as_bytes().chunks(64).enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line);
    }
    let body = start..out.len();
    out.push(b'\n');
    out.extend_from_slice(END.as_bytes());
    out.push(b'\n');
    (out, body)
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
    fn a_root_named_twice_is_added_once_and_decoded_at_most_once() {
        let mut roots = Roots::default();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            roots.add_trusted(der.as_ref(), None);
        }
        let n = roots.pem.len();
        // The same roots as PEM text, as a system bundle holds them: known by their text.
        let bundle = String::from_utf8(roots.pem.concat()).unwrap();
        let bodies = pem_bodies(&bundle);
        assert_eq!(bodies.len(), n);
        for b in &bodies {
            assert_eq!(roots.decode_new(b), Ok(None));
            assert!(roots.seen_text.contains(b.as_bytes()));
        }
        // Other line lengths and CRLF: known by their DER once decoded, and that text
        // remembered.
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let b64 = aws_smithy_types::base64::encode(der);
        let mut odd = format!("junk\r\n{BEGIN}\r\n");
        for line in b64.as_bytes().chunks(76) {
            odd.push_str(std::str::from_utf8(line).unwrap());
            odd.push_str("\r\n");
        }
        odd.push_str(END);
        odd.push_str("\r\ntrailing");
        let bodies = pem_bodies(&odd);
        assert_eq!(bodies.len(), 1);
        assert!(!roots.seen_text.contains(bodies[0].as_bytes()));
        assert_eq!(roots.decode_new(bodies[0]), Ok(None));
        assert!(roots.seen_text.contains(bodies[0].as_bytes()));
        assert_eq!(roots.pem.len(), n);
        assert_eq!(roots.decode_new("not base64!"), Err(()));
        assert_eq!(pem_bodies(&format!("{BEGIN}\nAAAA")), Vec::<&str>::new());
        assert!(parses(b"not a certificate").is_err());
    }

    #[test]
    fn seen_compares_all_the_bytes_behind_the_tail() {
        let mut seen = Seen::default();
        let a = [vec![1u8; 100], vec![9u8; 48]].concat();
        let b = [vec![2u8; 100], vec![9u8; 48]].concat();
        assert!(seen.insert(&a));
        assert!(!seen.insert(&a));
        assert!(!seen.contains(&b), "same length and tail, other bytes");
        assert!(seen.insert(&b));
        assert!(seen.contains(&a) && seen.contains(&b));
        assert!(seen.insert(b"short") && seen.contains(b"short"));
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
