//! A private certificate authority made with `openssl` for the TLS tests: a CA certificate,
//! and a server certificate it signed for `127.0.0.1` and `localhost`.

use std::path::PathBuf;
use std::process::Command;

use super::TempDir;

pub const OPENSSL_MISSING: &str =
    "openssl not found on PATH: install it with `apt-get install openssl` (scripts/deps.sh)";

/// The files live as long as this value.
pub struct TestCa {
    _dir: TempDir,
    /// The CA certificate (PEM): what a client must trust.
    pub ca: PathBuf,
    /// The server certificate (PEM) and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[track_caller]
fn openssl(args: &[&str]) {
    let out = match Command::new("openssl").args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{OPENSSL_MISSING}"),
        Err(e) => panic!("openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = TempDir::new("testca");
        let p = |n: &str| dir.join(n).to_str().expect("UTF-8 temp path").to_string();
        let (ca_key, ca, key, csr, cert, ext) = (
            p("ca.key"),
            p("ca.pem"),
            p("server.key"),
            p("server.csr"),
            p("server.pem"),
            p("server.ext"),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=ecs-secrets test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write the extensions file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        TestCa {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            _dir: dir,
        }
    }
}
