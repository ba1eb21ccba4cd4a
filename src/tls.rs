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
//! Every one of those files is read through `crate::fsread`: regular files only, size-capped,
//! opened non-blocking, so that none can block or grow without end outside `--timeout`.
//!
//! Proxy: `HTTPS_PROXY` (or `https_proxy`) carries every `https://` request through an HTTP
//! CONNECT tunnel, except to the hosts `NO_PROXY` (or `no_proxy`) names, matched here as curl
//! matches them ([`NoProxy`]; hyper's matcher treats `*` as a domain and ignores ports and
//! brackets): each request goes to one of two connectors, proxied or direct. Plain `http://`
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
        Ok((store, None)) => build(&ctx(store), ProxyConfig::disabled()),
        Ok((store, Some(proxy))) => {
            let ctx = ctx(store);
            SharedHttpClient::new(Routed {
                proxied: build(&ctx, proxy.config),
                direct: build(&ctx, ProxyConfig::disabled()),
                no_proxy: std::sync::Arc::new(proxy.no_proxy),
                shown: proxy.shown,
                has_credentials: proxy.has_credentials,
            })
        }
        Err(reason) => SharedHttpClient::new(Refuse(reason)),
    }
}

/// A client whose every request fails at once with `reason` (nothing is sent).
pub fn refusing_client(reason: String) -> SharedHttpClient {
    SharedHttpClient::new(Refuse(reason))
}

fn settings() -> Result<(tls::TrustStore, Option<Proxy>), String> {
    let roots = Roots::from_env()?;
    let proxy = proxy_from_env()?;
    Ok((roots.into_store(), proxy))
}

fn ctx(store: tls::TrustStore) -> tls::TlsContext {
    tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("the TLS context has no fallible settings here")
}

fn build(ctx: &tls::TlsContext, proxy: ProxyConfig) -> SharedHttpClient {
    let ctx = ctx.clone();
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

/// The largest certificate file read (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`, an entry of
/// `SSL_CERT_DIR`): a system bundle of every public root is about 220 KiB.
pub const MAX_CERT_FILE: u64 = 4 << 20;
/// The most read from `SSL_CERT_FILE` and `SSL_CERT_DIR` together, and the most entries
/// of the directories looked at (/etc/ssl/certs holds about 300, links included).
pub const MAX_CERT_BYTES: u64 = 32 << 20;
pub const MAX_CERT_ENTRIES: usize = 10_000;

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
    /// read, decoded or parsed is skipped, as OpenSSL does; so is what is not a regular file
    /// (a FIFO or a device would block or never end) or is larger than [`MAX_CERT_FILE`],
    /// with a warning. At most [`MAX_CERT_ENTRIES`] directory entries are looked at and
    /// [`MAX_CERT_BYTES`] read in all: the time spent here is bounded, since `--timeout`
    /// cannot interrupt it.
    fn add_system(&mut self, file: Option<&Path>, dirs: Option<&std::ffi::OsStr>) {
        let mut files_seen = HashSet::new();
        let mut budget = MAX_CERT_BYTES;
        let mut read = |path: &Path, roots: &mut Roots, named: bool| {
            let (f, meta) = match crate::fsread::open_regular(path, MAX_CERT_FILE) {
                Ok(x) => x,
                Err(crate::fsread::FileError::Missing) => return,
                // In a directory, only an oversized file is worth a word: other entries
                // (subdirectories, sockets) are as OpenSSL would skip them.
                Err(crate::fsread::FileError::NotRegular(_)) if !named => return,
                Err(e) => {
                    crate::log::warn(format_args!(
                        "skipping the certificates of {}: {e}",
                        path.display()
                    ));
                    return;
                }
            };
            if !files_seen.insert((meta.dev(), meta.ino())) {
                return;
            }
            if meta.len() > budget {
                crate::log::warn(format_args!(
                    "skipping the certificates of {}: SSL_CERT_FILE and SSL_CERT_DIR name more \
                     than {} MiB of files in all",
                    path.display(),
                    MAX_CERT_BYTES >> 20
                ));
                budget = 0;
                return;
            }
            if let Ok(bytes) = crate::fsread::read_open(f, &meta, MAX_CERT_FILE.min(budget)) {
                budget -= bytes.len() as u64;
                for body in pem_bodies(&text(&bytes)) {
                    if let Ok(Some(der)) = roots.decode_new(body) {
                        if parses(&der).is_ok() {
                            roots.add_trusted(&der, Some(body));
                        }
                    }
                }
            }
        };
        if let Some(f) = file {
            read(f, self, true);
        }
        let mut entries_left = MAX_CERT_ENTRIES;
        for dir in dirs.map(std::env::split_paths).into_iter().flatten() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if entries_left == 0 {
                    crate::log::warn(format_args!(
                        "SSL_CERT_DIR: only the first {MAX_CERT_ENTRIES} directory entries were read"
                    ));
                    return;
                }
                entries_left -= 1;
                read(&p, self, false);
            }
        }
    }

    fn add_bundle(&mut self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let bytes = crate::fsread::read_bounded(path, MAX_CERT_FILE).map_err(|e| {
            format!(
                "AWS_CA_BUNDLE={shown}: cannot read it: {e}; it must name a PEM file of CA \
                 certificates (a regular file of at most {} MiB)",
                MAX_CERT_FILE >> 20
            )
        })?;
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

/// `HTTPS_PROXY`, and the hosts `NO_PROXY` exempts; `None` when unset.
struct Proxy {
    config: ProxyConfig,
    no_proxy: NoProxy,
    /// The URL without its password, for messages.
    shown: String,
    has_credentials: bool,
}

/// `HTTPS_PROXY` with `NO_PROXY`; `None` when unset. A bare `host:port` means
/// `http://host:port`, as curl reads it.
fn proxy_from_env() -> Result<Option<Proxy>, String> {
    let Some(raw) = env_either("HTTPS_PROXY", "https_proxy") else {
        return Ok(None);
    };
    let url = raw.trim();
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let shown = shown_proxy(&url);
    let config = ProxyConfig::https(url.as_str()).map_err(|e| {
        format!("HTTPS_PROXY={shown} is not a usable proxy URL ({e}); expected http://host:port")
    })?;
    let no_proxy = NoProxy::parse(&env_either("NO_PROXY", "no_proxy").unwrap_or_default());
    Ok(Some(Proxy {
        config,
        no_proxy,
        has_credentials: shown.contains("<credentials>@"),
        shown,
    }))
}

/// `NO_PROXY`, read as curl 8.x reads it (lib/noproxy.c), with two additions curl lacks
/// (there it matches nothing; here what it plainly says):
/// - the whole value `*` (blanks around it allowed) exempts every host;
/// - entries are separated by commas and/or blanks; an empty entry is ignored;
/// - a name entry matches that host and every host below it on a label boundary
///   (`example.com` and `.example.com` both match `example.com` and `a.example.com`, never
///   `notexample.com`), case-insensitively, trailing dots ignored; `*.example.com` is read
///   as `.example.com` (as Go and hyper do; curl matches it literally, i.e. never);
/// - when the host is an IP address, only address entries apply: an exact IPv4 or IPv6
///   address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`; curl ≥ 7.86); a name entry never
///   matches an address (`localhost` does not exempt `127.0.0.1`);
/// - additions: an entry may name a port (`localhost:5802`, `10.1.2.3:443`, `[::1]:8443`),
///   then it matches only requests to that port; an IPv6 entry may be written in brackets
///   (`[::1]`, `[fd00::]/8`).
#[derive(Debug, Default, PartialEq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<(Pattern, Option<u16>)>,
}

#[derive(Debug, PartialEq)]
enum Pattern {
    /// Lower case, without leading or trailing dots.
    Name(String),
    /// An address and the length of the prefix compared.
    Net(std::net::IpAddr, u32),
}

impl NoProxy {
    pub fn parse(value: &str) -> NoProxy {
        if value.trim_matches([' ', '\t']) == "*" {
            return NoProxy {
                all: true,
                entries: Vec::new(),
            };
        }
        let entries = value
            .split([',', ' ', '\t'])
            .filter(|t| !t.is_empty())
            .filter_map(Self::entry)
            .collect();
        NoProxy {
            all: false,
            entries,
        }
    }

    fn entry(token: &str) -> Option<(Pattern, Option<u16>)> {
        use std::net::IpAddr;
        let net = |addr: &str, bits: Option<&str>| -> Option<Pattern> {
            let ip: IpAddr = addr.parse().ok()?;
            let full = if ip.is_ipv4() { 32 } else { 128 };
            // curl: no length, or 0, compares the whole address; a length out of range
            // matches nothing.
            let bits = match bits {
                None => full,
                Some(b) => match b.parse::<u32>().ok()? {
                    0 => full,
                    n if n <= full => n,
                    _ => return None,
                },
            };
            Some(Pattern::Net(ip, bits))
        };
        let port = |p: &str| p.parse::<u16>().ok();
        // `[v6]`, `[v6]/bits`, `[v6/bits]`, `[v6]:port`.
        if let Some(rest) = token.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let (addr, bits) = match inside.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (inside, None),
            };
            return match after {
                "" => Some((net(addr, bits)?, None)),
                a if a.starts_with('/') && bits.is_none() => {
                    Some((net(addr, Some(&a[1..]))?, None))
                }
                a => Some((net(addr, bits)?, Some(port(a.strip_prefix(':')?)?))),
            };
        }
        if let Some((addr, bits)) = token.split_once('/') {
            return Some((net(addr, Some(bits))?, None));
        }
        if let Ok(ip) = token.parse::<IpAddr>() {
            return Some((net(&ip.to_string(), None)?, None));
        }
        // `host:port` (one colon: more would be an unbracketed IPv6 address, handled above).
        let (host, p) = match token.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(port(p)?)),
            Some(_) => return None,
            None => (token, None),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some((net(&ip.to_string(), None)?, p));
        }
        let name = host.strip_prefix('*').unwrap_or(host);
        let name = name.trim_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return None;
        }
        Some((Pattern::Name(name), p))
    }

    /// Whether a request to `host` (brackets around an IPv6 address allowed) on `port`
    /// goes direct.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip = bare.parse::<std::net::IpAddr>().ok();
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|(pattern, p)| {
            if p.is_some_and(|p| p != port) {
                return false;
            }
            match (pattern, ip) {
                (Pattern::Net(net, bits), Some(ip)) => in_net(ip, *net, *bits),
                (Pattern::Name(n), None) => {
                    name == *n
                        || (name.len() > n.len()
                            && name.ends_with(n.as_str())
                            && name.as_bytes()[name.len() - n.len() - 1] == b'.')
                }
                _ => false,
            }
        })
    }
}

fn in_net(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u32) -> bool {
    use std::net::IpAddr;
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - bits;
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (b >> shift)
}

/// An error that happened on the way through the proxy (set up the tunnel, or the request
/// inside it): names the proxy, so that a message can blame the right thing.
#[derive(Debug)]
pub struct ViaProxy {
    pub proxy: String,
    /// The tunnel was never set up: the proxy did not answer CONNECT in time, or refused.
    pub tunnel: bool,
    source: aws_smithy_runtime_api::box_error::BoxError,
}

impl std::fmt::Display for ViaProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "through the proxy HTTPS_PROXY={}", self.proxy)
    }
}

impl std::error::Error for ViaProxy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The proxy's own refusal to tunnel without (valid) credentials: final, never retried.
#[derive(Debug)]
pub struct ProxyAuthRequired {
    pub proxy: String,
    pub had_credentials: bool,
}

impl std::fmt::Display for ProxyAuthRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.had_credentials {
            write!(
                f,
                "the proxy HTTPS_PROXY={} refused the credentials in its URL (HTTP 407 Proxy \
                 Authentication Required): check the user name and password in HTTPS_PROXY \
                 (http://USER:PASSWORD@host:port, special characters percent-encoded)",
                self.proxy
            )
        } else {
            write!(
                f,
                "the proxy HTTPS_PROXY={} wants credentials (HTTP 407 Proxy Authentication \
                 Required): put them in its URL, HTTPS_PROXY=http://USER:PASSWORD@host:port \
                 (special characters percent-encoded)",
                self.proxy
            )
        }
    }
}

impl std::error::Error for ProxyAuthRequired {}

/// The client with a proxy: each `https://` request goes through the proxy unless
/// `NO_PROXY` exempts its host, then it goes direct; plain `http://` never uses a proxy.
#[derive(Debug)]
struct Routed {
    proxied: SharedHttpClient,
    direct: SharedHttpClient,
    no_proxy: std::sync::Arc<NoProxy>,
    shown: String,
    has_credentials: bool,
}

impl HttpClient for Routed {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RoutedConnector {
            proxied: self.proxied.http_connector(settings, components),
            direct: self.direct.http_connector(settings, components),
            no_proxy: self.no_proxy.clone(),
            shown: self.shown.clone(),
            has_credentials: self.has_credentials,
        })
    }
}

#[derive(Debug)]
struct RoutedConnector {
    proxied: SharedHttpConnector,
    direct: SharedHttpConnector,
    no_proxy: std::sync::Arc<NoProxy>,
    shown: String,
    has_credentials: bool,
}

impl HttpConnector for RoutedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let uri: Option<hyper::Uri> = request.uri().parse().ok();
        let https = uri.as_ref().and_then(|u| u.scheme_str()) == Some("https");
        let exempt = uri.as_ref().is_some_and(|u| {
            self.no_proxy
                .matches(u.host().unwrap_or(""), u.port_u16().unwrap_or(443))
        });
        if !https || exempt {
            return self.direct.call(request);
        }
        let call = self.proxied.call(request);
        let (proxy, had_credentials) = (self.shown.clone(), self.has_credentials);
        HttpConnectorFuture::new(async move {
            call.await.map_err(|e| {
                let text = chain_text(&e);
                if text.contains("proxy authorization required") {
                    return ConnectorError::other(
                        Box::new(ProxyAuthRequired {
                            proxy,
                            had_credentials,
                        }),
                        None,
                    );
                }
                let tunnel = text.contains("connect timeout")
                    || text.contains("unsuccessful")
                    || text.contains("unexpected end of file");
                let (timeout, io, kind) = (e.is_timeout(), e.is_io(), e.as_other());
                let wrapped = Box::new(ViaProxy {
                    proxy,
                    tunnel,
                    source: e.into(),
                });
                if timeout {
                    ConnectorError::timeout(wrapped)
                } else if io {
                    ConnectorError::io(wrapped)
                } else {
                    ConnectorError::other(wrapped, kind)
                }
            })
        })
    }
}

/// An error and its sources as one lower-case line.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push_str(&err.to_string().to_ascii_lowercase());
        out.push_str(": ");
        next = err.source();
    }
    out
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

/// Why every request fails: `AWS_CA_BUNDLE` or `HTTPS_PROXY` cannot be used. The text names
/// the variable, the problem and the fix.
#[derive(Debug)]
pub struct Unusable(pub String);

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unusable {}

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
        let reason = Unusable(self.0.clone());
        // `other` without a kind: no retry classifier retries it.
        HttpConnectorFuture::ready(Err(ConnectorError::other(Box::new(reason), None)))
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
    fn no_proxy_follows_curl_plus_ports_and_brackets() {
        let np = NoProxy::parse;
        // `*` alone: everything, addresses included.
        for v in ["*", " * "] {
            for (h, p) in [
                ("127.0.0.1", 443),
                ("[::1]", 443),
                ("::1", 1),
                ("a.b", 5802),
            ] {
                assert!(np(v).matches(h, p), "{v:?} {h}");
            }
        }
        // Elsewhere `*` is no wildcard (curl).
        assert!(!np("*,example.com").matches("other.org", 443));
        // Names: suffixes on label boundaries, leading dot optional, any case, trailing dots.
        let n = np("example.com, .Internal.,,\tfoo");
        for h in [
            "example.com",
            "a.example.com",
            "EXAMPLE.COM.",
            "x.internal",
            "internal",
            "foo",
        ] {
            assert!(n.matches(h, 443), "{h}");
        }
        for h in [
            "notexample.com",
            "example.com.evil",
            "xinternal",
            "foo.bar",
            "127.0.0.1",
        ] {
            assert!(!n.matches(h, 443), "{h}");
        }
        assert!(np("*.example.com").matches("a.example.com", 443));
        // A name never matches an address, nor an address a name.
        assert!(!np("localhost").matches("127.0.0.1", 443));
        assert!(!np("127.0.0.1").matches("localhost", 443));
        // Addresses and CIDR blocks, v4 and v6, bracketed or not.
        let a = np("127.0.0.1,10.0.0.0/8,fd00::/8,[::1],[2001:db8::]/32");
        for h in [
            "127.0.0.1",
            "10.9.8.7",
            "[fd12::1]",
            "::1",
            "[::1]",
            "[2001:db8:1::5]",
        ] {
            assert!(a.matches(h, 443), "{h}");
        }
        for h in ["127.0.0.2", "11.0.0.1", "[fe80::1]", "[2001:db9::1]"] {
            assert!(!a.matches(h, 443), "{h}");
        }
        assert!(np("0.0.0.0/0").matches("0.0.0.0", 1) && !np("0.0.0.0/0").matches("1.2.3.4", 1));
        assert!(np("::/64").matches("[::5]", 1) && !np("10.0.0.0/33").matches("10.0.0.1", 1));
        // Ports: only that port.
        let p = np("localhost:5802,10.1.2.3:443,[::1]:8443");
        assert!(p.matches("localhost", 5802) && !p.matches("localhost", 443));
        assert!(p.matches("10.1.2.3", 443) && !p.matches("10.1.2.3", 80));
        assert!(p.matches("[::1]", 8443) && !p.matches("[::1]", 443));
        // Nonsense matches nothing.
        for v in ["", ",", "[::1", "host:notaport", "1.2.3.4/x", "[zz]"] {
            assert_eq!(np(v).entries.len(), 0, "{v:?}");
        }
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
