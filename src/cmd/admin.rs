//! One-shot administration: create, rotate, revoke, fetch, list. Compact JSON on stdout, one
//! object per line; diagnostics on stderr.

use crate::config::{PayloadSource, StoreConfig};
use crate::error::{Error, ExitCode, Result};
use crate::secret::Payload;
use crate::store::Store;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// Run one admin operation under the deadline with a connected store.
fn with_store<T>(
    cfg: &StoreConfig,
    what: &str,
    f: impl AsyncFnOnce(&Store) -> Result<T>,
) -> Result<T> {
    let rt = super::runtime()?;
    rt.block_on(crate::aws::with_deadline(cfg.timeout, what, async {
        let store = super::connect(cfg).await;
        f(&store).await
    }))
}

/// Write one line of output; the buffer may hold a payload and is wiped.
fn emit(line: Zeroizing<Vec<u8>>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(&line)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

/// Read at most `max + 1` bytes, so an oversized input is detected without reading it all.
fn read_limited(mut r: impl Read, max: usize, what: &str) -> Result<Payload> {
    let mut buf = Zeroizing::new(Vec::new());
    r.by_ref()
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("cannot read the payload from {what}: {e}")))?;
    Ok(Payload::new(std::mem::take(&mut *buf)))
}

/// The new value, from its source. Bytes are taken exactly (no newline is stripped).
pub fn read_payload(src: PayloadSource, max: usize) -> Result<Payload> {
    match src {
        PayloadSource::Arg(p) => Ok(p),
        PayloadSource::File(path) => {
            let f = std::fs::File::open(&path).map_err(|e| {
                Error::usage(format!(
                    "cannot open --payload-location {}: {e}",
                    path.display()
                ))
            })?;
            read_limited(f, max, &path.display().to_string())
        }
        PayloadSource::Stdin => read_limited(std::io::stdin().lock(), max, "standard input"),
        PayloadSource::Generate(len) => generate(len),
    }
}

/// A random printable value: letters and digits, drawn from the OS CSPRNG with rejection
/// sampling (no modulo bias).
pub fn generate(len: usize) -> Result<Payload> {
    use ring::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let limit = 256 - (256 % ALPHABET.len()); // 248: the largest multiple of 62 ≤ 256
    let rng = SystemRandom::new();
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut pool = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        rng.fill(&mut pool[..])
            .map_err(|_| Error::io("the system random number generator failed"))?;
        for &b in pool.iter() {
            if (b as usize) < limit && out.len() < len {
                out.push(ALPHABET[b as usize % ALPHABET.len()]);
            }
        }
    }
    Ok(Payload::new(std::mem::take(&mut *out)))
}

pub fn create(cfg: &StoreConfig, name: &str, src: PayloadSource) -> Result<ExitCode> {
    let path = cfg.path();
    let what = format!("creating {path}/{name}");
    let serial = with_store(cfg, &what, async |store: &Store| {
        let payload = read_payload(src, store.max_payload())?;
        store.create(path, name, &payload).await
    })?;
    emit(Zeroizing::new(
        format!("{{\"name\":{},\"serial\":{serial}}}", json_str(name)).into_bytes(),
    ))?;
    Ok(ExitCode::Success)
}

pub fn rotate(cfg: &StoreConfig, name: &str, src: PayloadSource) -> Result<ExitCode> {
    let path = cfg.path();
    let what = format!("rotating {path}/{name}");
    let (serial, revoked) = with_store(cfg, &what, async |store: &Store| {
        let payload = read_payload(src, store.max_payload())?;
        let serial = store.create(path, name, &payload).await?;
        let revoked = store.revoke_older(path, name, serial).await?;
        Ok((serial, revoked))
    })?;
    let list: Vec<String> = revoked.iter().map(u64::to_string).collect();
    emit(Zeroizing::new(
        format!(
            "{{\"name\":{},\"serial\":{serial},\"revoked\":[{}]}}",
            json_str(name),
            list.join(",")
        )
        .into_bytes(),
    ))?;
    Ok(ExitCode::Success)
}

pub fn revoke(cfg: &StoreConfig, name: &str, serial: u64) -> Result<ExitCode> {
    let path = cfg.path();
    let what = format!("revoking {path}/{name} serial {serial}");
    with_store(cfg, &what, async |store: &Store| {
        store.revoke(path, name, serial).await
    })?;
    emit(Zeroizing::new(
        format!(
            "{{\"name\":{},\"serial\":{serial},\"active\":false}}",
            json_str(name)
        )
        .into_bytes(),
    ))?;
    Ok(ExitCode::Success)
}

/// The contract's fetch object. The payload is escaped straight into a wiped buffer.
pub fn fetched_json(f: &crate::secret::Fetched) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    buf.extend_from_slice(
        format!(
            "{{\"name\":{},\"serial\":{},\"payload\":",
            json_str(&f.name),
            crate::secret::serial_json(f.serial)
        )
        .as_bytes(),
    );
    let text = match &f.payload {
        None => "",
        Some(p) => p.as_str().ok_or_else(|| {
            Error::data(format!(
                "{} serial {} is not UTF-8 text and cannot be printed as JSON",
                f.name, f.serial
            ))
        })?,
    };
    serde_json::to_writer(&mut *buf, text)
        .map_err(|e| Error::data(format!("cannot encode json: {e}")))?;
    buf.extend_from_slice(format!(",\"active\":{}}}", f.active).as_bytes());
    Ok(buf)
}

pub fn fetch(cfg: &StoreConfig, name: &str, serial: Option<u64>) -> Result<ExitCode> {
    let path = cfg.path();
    let what = format!("fetching {path}/{name}");
    let f = with_store(cfg, &what, async |store: &Store| {
        store.fetch(path, name, serial).await
    })?;
    emit(fetched_json(&f)?)?;
    if f.active {
        Ok(ExitCode::Success)
    } else {
        crate::log::error(format_args!(
            "{path}/{name} serial {} is revoked; its payload is never returned",
            f.serial
        ));
        Ok(ExitCode::Failure)
    }
}

pub fn list(cfg: &StoreConfig, all_versions: bool) -> Result<ExitCode> {
    let what = format!("listing {}", cfg.paths.join(", "));
    let per_path = with_store(cfg, &what, async |store: &Store| {
        let mut out = Vec::new();
        for p in &cfg.paths {
            out.push((p.clone(), store.list(p, all_versions).await?));
        }
        Ok(out)
    })?;
    let mut lines = String::new();
    for (path, versions) in per_path {
        for v in versions {
            lines.push_str(&format!(
                "{{\"path\":{},\"name\":{},\"serial\":{},{}\"active\":{},\"created\":{}}}\n",
                json_str(&path),
                json_str(&v.name),
                crate::secret::serial_json(v.serial),
                v.version_id_json(),
                v.active,
                json_str(&v.created)
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_printable_random_and_sized() {
        let a = generate(40).unwrap();
        let b = generate(40).unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.as_bytes().iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(a, b);
    }

    #[test]
    fn oversized_input_is_detected() {
        let p = read_limited(&b"0123456789"[..], 4, "test").unwrap();
        assert_eq!(p.len(), 5);
    }
}
