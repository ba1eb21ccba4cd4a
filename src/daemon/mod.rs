//! The sidecar REST API (contract §6): the original ecs-secrets daemon's routes, hardened.
//!
//! - `mod.rs`: the daemon's own flags → a validated `DaemonConfig`, then `run`: connect,
//!   check AWS once, bind, serve until SIGTERM/SIGINT.
//! - `server.rs`: the accept loop (mini-redis style `run(listener, shutdown)`): a bound on
//!   connections, header/body read timeouts, graceful drain.
//! - `conn.rs`: one connection served by hyper with its bounds (fixed socket buffers,
//!   writes the client does not take), and the table of open connections that evicts the
//!   one waiting on its client the longest.
//! - `wire.rs`: the socket under hyper: times writes; JSON bodies on hyper's own errors.
//! - `route.rs`: request path → `Route` (pure; fuzzed by `fuzz/fuzz_targets/daemon_routes.rs`).
//! - `routes.rs`: request → route → handler → `Reply`.
//! - `guard.rs`: refusals before routing (ambiguous `Host`, proxies, browsers, tokens).
//! - `auth.rs`: the token, compared in constant time.
//! - `cache.rs`: TTL cache with single-flight fetches; plaintext wiped on eviction.
//! - `reply.rs`: JSON replies and the one error → HTTP status mapping.

mod auth;
mod cache;
mod conn;
mod guard;
mod reply;
mod route;
mod routes;
mod server;
mod wire;

use crate::cli::DaemonArgs;
use crate::config::{Env, StoreConfig};
use crate::error::{Error, ExitCode, Result};
// `route.rs` names it `super::names`, which also resolves when the fuzz target includes
// both files side by side.
use crate::names;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use auth::Token;

/// `--listen` when not given.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// `--cache-ttl` when not given.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// The longest `--cache-ttl` accepted: a day. Longer would mostly keep revoked-elsewhere
/// values alive.
pub const MAX_CACHE_TTL_SECS: u64 = 86_400;
/// Tokens shorter than this get a warning (they are still accepted).
const SHORT_TOKEN: usize = 16;

/// The daemon's validated configuration (beyond the shared `StoreConfig`).
#[derive(Debug)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    pub token: Option<Token>,
    pub read_only: bool,
    pub cache_ttl: Duration,
    pub allow_unauthenticated: bool,
}

impl DaemonConfig {
    /// Without a token on a loopback address, `Host` must name loopback too: this is what
    /// stops a web page from reading secrets through DNS rebinding.
    pub fn checks_host(&self) -> bool {
        self.token.is_none() && is_loopback(self.listen.ip())
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// `--listen`: `IP:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`), `localhost:PORT`,
/// or Go's `:PORT` (every interface). No DNS lookups.
pub fn parse_listen(s: &str) -> Result<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = |p: &str| p.parse::<u16>().ok();
    if let Some(p) = s.strip_prefix("localhost:").and_then(port) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p));
    }
    if let Some(p) = s.strip_prefix(':').and_then(port) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p));
    }
    // The value is not repeated: no parse error echoes what follows a value-taking flag.
    Err(Error::usage(
        "invalid --listen: use IP:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or 0.0.0.0:8080",
    ))
}

/// `--cache-ttl`: a duration from 0 (no caching) to a day.
pub fn parse_cache_ttl(s: &str) -> Result<Duration> {
    crate::duration::parse(s, "--cache-ttl", 0.0, MAX_CACHE_TTL_SECS as f64)
}

/// Flags + environment → `DaemonConfig`. Every refusal here is a usage error (exit 2).
pub fn daemon_config(args: &DaemonArgs, env: &Env) -> Result<DaemonConfig> {
    let listen = match &args.listen {
        Some(l) => parse_listen(l)?,
        None => DEFAULT_LISTEN,
    };
    let cache_ttl = match &args.cache_ttl {
        Some(t) => parse_cache_ttl(t)?,
        None => DEFAULT_CACHE_TTL,
    };
    // A flag wins over the variable (contract §2).
    let token = match &args.token_file {
        Some(f) => Some(auth::token_from_file(std::path::Path::new(f))?),
        None => match env.get_os("ECS_SECRETS_TOKEN") {
            Some(v) => Some(auth::token_from_env(v)?),
            None => None,
        },
    };
    if let Some(t) = &token {
        if t.len() < SHORT_TOKEN {
            crate::log::warn(format_args!(
                "the token is only {} characters: use at least {SHORT_TOKEN} random ones \
                 (e.g. `head -c 24 /dev/urandom | base64`)",
                t.len()
            ));
        }
    }
    if token.is_none() && !is_loopback(listen.ip()) && !args.allow_unauthenticated {
        return Err(Error::usage(format!(
            "--listen {listen} is not a loopback address: anyone who can reach it could read \
             the secrets. Set a token (--token-file FILE or ECS_SECRETS_TOKEN), listen on \
             127.0.0.1, or pass --allow-unauthenticated"
        )));
    }
    Ok(DaemonConfig {
        listen,
        token,
        read_only: args.read_only,
        cache_ttl,
        allow_unauthenticated: args.allow_unauthenticated,
    })
}

/// Two workers (one on a single CPU). Measured with `bench/daemon.sh` on 2 busy cores
/// shared with wrk and other work: one thread gave 55–74k req/s with a p99 of 4–14 ms, as
/// every request waits whenever that thread is preempted; two gave 90–93k req/s with a p99
/// of 2.1–2.7 ms, for 0.7 MiB more RSS. More workers would only take CPU from the
/// application this sidecar serves.
fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(4)
        .thread_name("ecs-secrets-daemon")
        .enable_all()
        .build()
        .map_err(|e| Error::io(format!("cannot start the async runtime: {e}")))
}

/// The name looked up at start-up to prove credentials, reachability and permissions
/// (one GetParameterHistory, or one Query). It need not exist.
const STARTUP_PROBE: &str = "_ecs-secrets-daemon-startup-check";

pub fn run(cfg: &StoreConfig, args: &DaemonArgs, env: &Env) -> Result<ExitCode> {
    // A long-running process: a stalled or closed log pipe must never block a worker.
    crate::log::never_block();
    let dcfg = daemon_config(args, env)?;
    if dcfg.token.is_none() && !is_loopback(dcfg.listen.ip()) {
        crate::log::warn(format_args!(
            "listening on {} without a token (--allow-unauthenticated): anyone who can reach \
             it can read the secrets of {}",
            dcfg.listen,
            cfg.path()
        ));
    }
    // glibc gives every thread that allocates under contention an arena of its own, which
    // under many concurrent clients grows the RSS with no leak (soak, 32 clients: 7.1 ->
    // 13.4 MiB). Two arenas limit that, set before the runtime's threads exist; what
    // still creeps up inside them, `spawn_trimmer` hands back.
    // SAFETY: mallopt only changes allocator tuning; no allocation is in flight here.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let rt = runtime()?;
    rt.block_on(serve(cfg, dcfg))
}

async fn serve(cfg: &StoreConfig, dcfg: DaemonConfig) -> Result<ExitCode> {
    let path = cfg.path().to_string();
    let store = crate::store::connect(cfg).await;
    // Fail fast: a daemon that starts but cannot read is worse than one that does not start.
    crate::aws::with_deadline(
        cfg.timeout,
        &format!("checking access to {path}"),
        store.versions(&path, STARTUP_PROBE),
    )
    .await
    .map_err(|e| match e {
        Error::Usage(m) => Error::Usage(m),
        e => Error::data(format!(
            "cannot start: {e}\n(the daemon checks its credentials and access to {path} once \
             at start-up; nothing was served)"
        )),
    })?;

    // Signals before the "listening" line, so a supervisor that reacts to the line can
    // already stop us cleanly.
    let signals = server::Signals::install()?;
    let listener = tokio::net::TcpListener::bind(dcfg.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}: {e}", dcfg.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io(format!("cannot read the listening address: {e}")))?;
    let state = Arc::new(routes::State::new(store, path, cfg.timeout, dcfg));
    spawn_trimmer();
    crate::log::info(format_args!("listening on {local}"));
    server::run(listener, state, signals).await;
    Ok(ExitCode::Success)
}

/// Hand the memory freed since the last time back to the kernel, every 10 s. Under many
/// concurrent clients with refreshes the freed blocks are scattered through glibc's arenas
/// and RSS creeps up although nothing leaks (soak: 7.6 -> 12.9 MiB over 16.5 M answers and
/// 4,455 refreshes with two arenas; flat without refreshes); `malloc_trim` releases the
/// free pages inside the heaps, not only at their tops. Milliseconds for a heap this size.
fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only returns free memory to the kernel; no pointer is
            // invalidated.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: Option<&str>) -> DaemonArgs {
        DaemonArgs {
            backend: None,
            path: vec![],
            recursive: false,
            table: None,
            kms_key: None,
            timeout: None,
            debug: false,
            listen: listen.map(String::from),
            token_file: None,
            read_only: false,
            cache_ttl: None,
            allow_unauthenticated: false,
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert_eq!(
            parse_listen("localhost:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(parse_listen(":9").unwrap().to_string(), "0.0.0.0:9");
        for bad in ["", "8080", "example.com:80", "127.0.0.1", "127.0.0.1:99999"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_includes_mapped_v4() {
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.0.0.2".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
    }

    #[test]
    fn non_loopback_needs_a_token_or_an_explicit_opt_out() {
        let env = Env::default();
        let e = daemon_config(&args(Some("0.0.0.0:8080")), &env).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(e.to_string().contains("--allow-unauthenticated"), "{e}");
        let mut a = args(Some("0.0.0.0:8080"));
        a.allow_unauthenticated = true;
        assert!(daemon_config(&a, &env).is_ok());
        let env = Env::from_pairs([("ECS_SECRETS_TOKEN", "0123456789abcdef0123")]);
        let c = daemon_config(&args(Some("0.0.0.0:8080")), &env).unwrap();
        assert!(c.token.is_some() && !c.checks_host());
        let c = daemon_config(&args(None), &Env::default()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.cache_ttl, DEFAULT_CACHE_TTL);
        assert!(c.checks_host());
    }

    #[test]
    fn cache_ttl_bounds() {
        assert_eq!(parse_cache_ttl("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_cache_ttl("86400").unwrap(),
            Duration::from_secs(86400)
        );
        assert_eq!(parse_cache_ttl("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_cache_ttl("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["-1", "x", "86401", "", " 5", "5 ", "25h"] {
            assert!(parse_cache_ttl(bad).is_err(), "{bad}");
        }
    }
}
