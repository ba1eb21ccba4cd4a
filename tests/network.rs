//! Networks users really have, through the real binary: moto over HTTPS with a private CA
//! (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`/`SSL_CERT_DIR`), and a forward proxy (`HTTPS_PROXY`,
//! `NO_PROXY`) that records every tunnel it opens.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One private CA and one moto serving HTTPS with its certificate, per test binary.
fn tls_moto() -> &'static (TestCa, Moto) {
    static M: OnceLock<(TestCa, Moto)> = OnceLock::new();
    M.get_or_init(|| {
        let ca = TestCa::new();
        let m = fresh_moto_tls(&ca.cert, &ca.key);
        (ca, m)
    })
}

/// A fresh path holding one secret on the HTTPS moto (written through the binary, trusting
/// the CA with SSL_CERT_FILE, which every version of it reads).
fn seeded(tag: &str) -> String {
    let (ca, m) = tls_moto();
    let path = unique_path(tag);
    let out = stdin_run(
        ecs(&m.endpoint).env("SSL_CERT_FILE", &ca.ca).args([
            "create",
            "--path",
            &path,
            "--name",
            "NET_CHECK",
            "--payload-stdin",
        ]),
        b"over-tls",
    );
    assert_ok(&out);
    path
}

/// `env --path` against the HTTPS moto, with nothing trusted but the compiled-in roots.
fn read(path: &str) -> Command {
    let (_, m) = tls_moto();
    let mut c = ecs(&m.endpoint);
    c.args(["env", "--path", path, "--timeout", "15"]);
    c
}

#[track_caller]
fn assert_read(c: &mut Command) -> Output {
    let out = run(c);
    assert!(
        assert_ok(&out).contains("NET_CHECK='over-tls'"),
        "{}",
        describe(&out)
    );
    out
}

#[track_caller]
fn assert_refused(c: &mut Command) -> String {
    let out = run(c);
    let stderr = assert_fail(&out);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("over-tls"),
        "{}",
        describe(&out)
    );
    stderr
}

#[test]
fn aws_ca_bundle_adds_a_private_ca_to_the_trusted_roots() {
    let (ca, _) = tls_moto();
    let path = seeded("ca-bundle");
    let e = assert_refused(&mut read(&path));
    assert!(
        e.contains("not trusted") && e.contains("AWS_CA_BUNDLE"),
        "{e}"
    );
    assert_read(read(&path).env("AWS_CA_BUNDLE", &ca.ca));
    // A bundle of the system's roots with the private CA appended, as users build them.
    let dir = TempDir::new("bundle");
    let bundle = dir.join("bundle.pem");
    let mut text = std::fs::read(SYSTEM_BUNDLE).unwrap_or_default();
    text.extend(std::fs::read(&ca.ca).unwrap());
    std::fs::write(&bundle, text).unwrap();
    assert_read(read(&path).env("AWS_CA_BUNDLE", &bundle));
}

#[test]
fn an_unusable_aws_ca_bundle_fails_closed_naming_it() {
    let (ca, _) = tls_moto();
    let path = seeded("ca-bundle-bad");
    let dir = TempDir::new("bad-bundle");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let corrupt = dir.join("corrupt.pem");
    let mut text = std::fs::read(&ca.ca).unwrap();
    text.extend_from_slice(
        b"-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    std::fs::write(&corrupt, text).unwrap();
    let cases: [(&Path, &str); 3] = [
        (&dir.join("missing.pem"), "cannot read it"),
        (&empty, "no PEM certificate"),
        (&corrupt, "certificate 2 is not a usable CA certificate"),
    ];
    for (file, why) in cases {
        let e = assert_refused(read(&path).env("AWS_CA_BUNDLE", file));
        assert!(
            e.contains(&format!("AWS_CA_BUNDLE={}", file.display())) && e.contains(why),
            "{why}: {e}"
        );
        // Refused at once, not retried until the deadline.
        assert!(!e.contains("deadline"), "{e}");
    }
}

#[test]
fn ssl_cert_file_and_dir_together_each_add_their_roots() {
    let (ca, _) = tls_moto();
    let path = seeded("ssl-vars");
    let dir = TempDir::new("certdir");
    std::fs::copy(&ca.ca, dir.join("private-ca.pem")).unwrap();
    // The private CA in the directory, the system bundle in the file.
    assert_read(
        read(&path)
            .env("SSL_CERT_FILE", SYSTEM_BUNDLE)
            .env("SSL_CERT_DIR", dir.path()),
    );
    // The private CA in the file, the system directory (which holds the bundle too).
    assert_read(
        read(&path)
            .env("SSL_CERT_FILE", &ca.ca)
            .env("SSL_CERT_DIR", "/etc/ssl/certs"),
    );
}

#[test]
fn https_proxy_tunnels_every_request_and_no_proxy_bypasses_it() {
    let (ca, m) = tls_moto();
    let path = seeded("proxy");
    let target = format!("127.0.0.1:{}", m.port);
    for var in ["HTTPS_PROXY", "https_proxy"] {
        let proxy = ConnectProxy::start();
        assert_read(
            read(&path)
                .env("SSL_CERT_FILE", &ca.ca)
                .env(var, proxy.url()),
        );
        let t = proxy.targets();
        assert!(
            !t.is_empty() && t.iter().all(|x| *x == target),
            "{var}: {t:?}"
        );
        // A NO_PROXY rule for another host changes nothing.
        let proxy = ConnectProxy::start();
        assert_read(
            read(&path)
                .env("SSL_CERT_FILE", &ca.ca)
                .env(var, proxy.url())
                .env("NO_PROXY", "example.com,.internal"),
        );
        assert!(!proxy.targets().is_empty(), "{var}");
    }
    for rule in ["127.0.0.1", "127.0.0.0/8", "example.com,127.0.0.1"] {
        let proxy = ConnectProxy::start();
        assert_read(
            read(&path)
                .env("SSL_CERT_FILE", &ca.ca)
                .env("HTTPS_PROXY", proxy.url())
                .env("NO_PROXY", rule),
        );
        assert_eq!(proxy.targets(), Vec::<String>::new(), "NO_PROXY={rule}");
        let proxy = ConnectProxy::start();
        assert_read(
            read(&path)
                .env("SSL_CERT_FILE", &ca.ca)
                .env("HTTPS_PROXY", proxy.url())
                .env("no_proxy", rule),
        );
        assert_eq!(proxy.targets(), Vec::<String>::new(), "no_proxy={rule}");
    }
}

#[test]
fn plain_http_credential_endpoints_never_go_through_the_proxy() {
    let (ca, m) = tls_moto();
    let path = seeded("proxy-creds");
    let proxy = ConnectProxy::start();
    let agent = EcsCredsServer::start(Some("Bearer task-token"));
    assert_read(
        read(&path)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url())
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer task-token")
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", proxy.url())
            .env("HTTP_PROXY", proxy.url()),
    );
    assert!(agent.hits() >= 1);
    let t = proxy.targets();
    let target = format!("127.0.0.1:{}", m.port);
    assert!(!t.is_empty() && t.iter().all(|x| *x == target), "{t:?}");
}

#[test]
fn an_unusable_https_proxy_fails_closed() {
    let (ca, _) = tls_moto();
    let path = seeded("proxy-bad");
    // Not a URL: named, without its password, and not retried.
    let e = assert_refused(
        read(&path)
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", "http://user:pw-s3cret@pro xy:3128"),
    );
    assert!(
        e.contains("HTTPS_PROXY=http://<credentials>@pro xy:3128 is not a usable proxy URL"),
        "{e}"
    );
    assert!(!e.contains("pw-s3cret") && !e.contains("deadline"), "{e}");
    // A proxy that is not there: the request fails; it is never sent around the proxy.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = assert_refused(
        read(&path)
            .args(["--timeout", "5"])
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", format!("http://{closed}")),
    );
    assert!(e.contains("error:"), "{e}");
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs `c`, failing the test if it is still running after 20 s (a read that blocks).
#[track_caller]
fn run_bounded(c: &mut Command) -> Output {
    run_with(c, None, std::time::Duration::from_secs(20))
        .unwrap_or_else(|o| panic!("still running after 20 s (blocked?)\n{}", describe(&o)))
}

#[test]
fn ca_files_from_outside_are_read_only_as_bounded_regular_files() {
    let (ca, _) = tls_moto();
    let path = seeded("ca-files");
    let dir = TempDir::new("ca-files");
    let fifo = dir.join("bundle.pem");
    mkfifo(&fifo);
    let big = dir.join("big.pem");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    // AWS_CA_BUNDLE naming a FIFO, a device, a 4 GiB file: refused at once, naming it and
    // what it is (a FIFO used to hang the start for ever, /dev/zero to eat the memory).
    let cases: [(&Path, &str); 3] = [
        (&fifo, "it is a FIFO, not a regular file"),
        (Path::new("/dev/zero"), "it is a device, not a regular file"),
        (&big, "it is larger than 4 MiB"),
    ];
    for (file, why) in cases {
        let out = run_bounded(read(&path).env("AWS_CA_BUNDLE", file));
        let e = assert_fail(&out);
        assert!(
            e.contains(&format!(
                "AWS_CA_BUNDLE={}: cannot read it: {why}",
                file.display()
            )),
            "{e}"
        );
        assert!(
            !e.contains("check network access") && !e.contains("deadline"),
            "{e}"
        );
    }
    // SSL_CERT_DIR holding a 4 GiB sparse .pem, a FIFO and a link to /dev/zero, next to
    // the CA: the others are skipped (the oversized one with a warning), the CA is read.
    let certs = TempDir::new("certdir-big");
    std::fs::copy(&ca.ca, certs.join("private-ca.pem")).unwrap();
    std::fs::File::create(certs.join("huge.pem"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    mkfifo(&certs.join("fifo.pem"));
    std::os::unix::fs::symlink("/dev/zero", certs.join("zero.pem")).unwrap();
    let out = run_bounded(read(&path).env("SSL_CERT_DIR", certs.path()));
    assert!(
        assert_ok(&out).contains("NET_CHECK='over-tls'"),
        "{}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipping the certificates of")
            && err.contains("huge.pem: it is larger than 4 MiB"),
        "{err}"
    );
    // SSL_CERT_FILE naming a FIFO: skipped with a warning, not waited on.
    let out = run_bounded(
        read(&path)
            .env("SSL_CERT_FILE", &fifo)
            .env("AWS_CA_BUNDLE", &ca.ca),
    );
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it is a FIFO"),
        "{}",
        describe(&out)
    );
}

#[test]
fn no_proxy_star_ports_and_bracketed_ipv6_as_curl_reads_them() {
    let (ca, m) = tls_moto();
    let path = seeded("no-proxy-curl");
    // `*` alone exempts addresses too (hyper read it as a domain rule only).
    let proxy = ConnectProxy::start();
    assert_read(
        read(&path)
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", proxy.url())
            .env("NO_PROXY", "*"),
    );
    assert_eq!(proxy.targets(), Vec::<String>::new(), "NO_PROXY=*");
    // An entry with a port: that host on that port only.
    let localhost = format!("https://localhost:{}", m.port);
    for (rule, exempt) in [
        (format!("localhost:{}", m.port), true),
        (format!("localhost:{}", m.port + 1), false),
        ("other.example,.localhost".to_string(), true),
    ] {
        let proxy = ConnectProxy::start();
        assert_read(
            read(&path)
                .env("AWS_ENDPOINT_URL", &localhost)
                .env("SSL_CERT_FILE", &ca.ca)
                .env("HTTPS_PROXY", proxy.url())
                .env("NO_PROXY", &rule),
        );
        assert_eq!(proxy.targets().is_empty(), exempt, "NO_PROXY={rule}");
    }
    // IPv6 loopback, with and without brackets, and `*`: never offered to the proxy
    // (nothing listens there, so the read fails, but directly).
    for rule in ["[::1]", "::1", "*", "::1/128"] {
        let proxy = ConnectProxy::start();
        let out = run_bounded(
            ecs(&format!("https://[::1]:{}", m.port))
                .args(["env", "--path", &path, "--timeout", "3"])
                .env("SSL_CERT_FILE", &ca.ca)
                .env("HTTPS_PROXY", proxy.url())
                .env("NO_PROXY", rule),
        );
        assert_fail(&out);
        assert_eq!(proxy.targets(), Vec::<String>::new(), "NO_PROXY={rule}");
    }
}

#[test]
fn proxy_and_certificate_failures_blame_the_right_thing() {
    let (ca, m) = tls_moto();
    let path = seeded("blame");
    // A proxy that wants credentials: at once (not retried to the deadline), naming it
    // and how to give them.
    let proxy = ConnectProxy::start_mode(ProxyMode::WantsCredentials);
    let e = assert_refused(
        read(&path)
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", proxy.url()),
    );
    assert!(
        e.contains(&format!(
            "the proxy HTTPS_PROXY={} wants credentials",
            proxy.url()
        )) && e.contains("http://USER:PASSWORD@host:port"),
        "{e}"
    );
    assert!(
        !e.contains("deadline") && !e.contains("check network"),
        "{e}"
    );
    // A proxy that never answers CONNECT: the proxy is named, not AWS.
    let silent = ConnectProxy::start_mode(ProxyMode::Silent);
    let out = run_bounded(
        ecs(&m.endpoint)
            .args(["env", "--path", &path, "--timeout", "4"])
            .env("SSL_CERT_FILE", &ca.ca)
            .env("HTTPS_PROXY", silent.url()),
    );
    let e = assert_fail(&out);
    assert!(
        e.contains(&format!(
            "the proxy HTTPS_PROXY={} did not set up the tunnel",
            silent.url()
        )),
        "{e}"
    );
    assert!(!e.contains("AWS stopped answering"), "{e}");
    // A trusted certificate for another name, with AWS_CA_BUNDLE set: the name is the
    // problem, not the trust store.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", m.port).parse().unwrap();
    let redirect = ConnectProxy::start_mode(ProxyMode::RedirectTo(addr));
    let e = assert_refused(
        read(&path)
            .env(
                "AWS_ENDPOINT_URL",
                format!("https://not-in-the-cert.test:{}", m.port),
            )
            .env("AWS_CA_BUNDLE", &ca.ca)
            .env("HTTPS_PROXY", redirect.url()),
    );
    assert!(
        e.contains("does not name the host") && !e.contains("set AWS_CA_BUNDLE"),
        "{e}"
    );
    // An untrusted certificate with AWS_CA_BUNDLE set: the bundle lacks its CA.
    let other = TempDir::new("other-ca");
    let bundle = other.join("system.pem");
    std::fs::copy(SYSTEM_BUNDLE, &bundle).unwrap();
    let e = assert_refused(read(&path).env("AWS_CA_BUNDLE", &bundle));
    assert!(
        e.contains(&format!(
            "AWS_CA_BUNDLE={} does not hold the CA",
            bundle.display()
        )),
        "{e}"
    );
}
