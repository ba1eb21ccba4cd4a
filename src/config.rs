//! Flags + environment → validated, immutable configuration. This is the only module that
//! reads environment variables (from one snapshot taken at start); everything after it sees
//! a `Config`. (The AWS SDK reads its own standard variables in `aws.rs`, by design.)

pub mod refresh;
pub mod refs;

use crate::cli::{self, HasShared, SharedArgs};
use crate::error::{Error, Result};
use crate::names;
use crate::secret::Payload;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A snapshot of the process environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    /// For tests: an environment made of these pairs.
    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get_os(&self, key: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_os_str())
    }

    /// A variable as UTF-8; a non-UTF-8 value of one of our variables is a usage error.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        match self.get_os(key) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| Error::usage(format!("{key} is not valid UTF-8"))),
        }
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key)?.as_deref().map(str::trim) {
            None | Some("") | Some("0") | Some("false") | Some("no") => Ok(false),
            Some("1") | Some("true") | Some("yes") => Ok(true),
            Some(_) => Err(Error::usage(format!(
                "{key} is not a boolean: use 1 or 0 (true/false, yes/no)"
            ))),
        }
    }

    /// Every inherited variable, for the child of `exec`.
    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Ssm,
    Dynamodb,
    SecretsManager,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Ssm => "ssm",
            Backend::Dynamodb => "dynamodb",
            Backend::SecretsManager => "secretsmanager",
        }
    }
}

/// Where secrets live and how to reach them: the validated shared options.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: Backend,
    pub paths: Vec<String>,
    pub recursive: bool,
    pub table: String,
    pub kms_key: Option<String>,
    pub timeout: Duration,
    pub debug: bool,
    /// `--allow-empty` (exec, env, sync): a path with no secret is a warning, not an error.
    pub allow_empty: bool,
}

impl StoreConfig {
    /// The single path of a one-path command.
    pub fn path(&self) -> &str {
        &self.paths[0]
    }
}

pub const DEFAULT_TABLE: &str = "ecs-secrets";
pub const DEFAULT_DYNAMODB_KEY: &str = "alias/ecs-secrets";
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathArity {
    /// exec, env, list: one or more paths.
    Many,
    /// admin commands and the daemon: exactly one.
    One,
    /// setup with --cloudformation may still name a path; rotate-key etc. need one.
    Optional,
    /// exec and env with --resolve-refs: any number of paths, none included.
    ManyOrNone,
}

pub fn store_config(shared: &SharedArgs, env: &Env, arity: PathArity) -> Result<StoreConfig> {
    let backend = match shared
        .backend
        .clone()
        .or(env.get("ECS_SECRETS_BACKEND")?)
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("ssm") => Backend::Ssm,
        Some("dynamodb") => Backend::Dynamodb,
        Some("secretsmanager") => Backend::SecretsManager,
        Some(_) => {
            return Err(Error::usage(
                "unknown backend: use --backend ssm, dynamodb or secretsmanager",
            ))
        }
    };

    let raw_paths: Vec<String> = if !shared.path.is_empty() {
        shared.path.clone()
    } else if let Some(v) = env.get("ECS_SECRETS_PATH")? {
        split_paths(&v)
    } else if let Some(v) = env.get("AWS_ENV_PATH")? {
        split_paths(&v)
    } else {
        Vec::new()
    };
    let paths = raw_paths
        .iter()
        .map(|p| validate_path(p))
        .collect::<Result<Vec<_>>>()?;
    match arity {
        PathArity::Many | PathArity::One if paths.is_empty() => {
            return Err(Error::usage(
                "no path given: pass --path /<env>/<app> or set ECS_SECRETS_PATH",
            ))
        }
        PathArity::One | PathArity::Optional if paths.len() > 1 => {
            return Err(Error::usage(format!(
                "this command takes one path, got {}: {}",
                paths.len(),
                paths.join(", ")
            )))
        }
        _ => {}
    }

    let recursive = shared.recursive || env.flag("ECS_SECRETS_RECURSIVE")?;
    if recursive && backend == Backend::Dynamodb {
        return Err(Error::usage(
            "--recursive applies to the ssm and secretsmanager backends only: dynamodb paths are flat",
        ));
    }

    let table = shared
        .table
        .clone()
        .or(env.get("ECS_SECRETS_TABLE")?)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TABLE.to_string());
    validate_table(&table)?;

    let kms_key = shared
        .kms_key
        .clone()
        .or(env.get("ECS_SECRETS_KMS_KEY")?)
        .filter(|k| !k.is_empty());

    let timeout = match (&shared.timeout, env.get("ECS_SECRETS_TIMEOUT")?) {
        (Some(t), _) => parse_timeout(t, "--timeout")?,
        (None, Some(t)) => parse_timeout(&t, "ECS_SECRETS_TIMEOUT")?,
        (None, None) => Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
    };
    let debug = shared.debug || env.flag("ECS_SECRETS_DEBUG")?;

    Ok(StoreConfig {
        backend,
        paths,
        recursive,
        table,
        kms_key,
        timeout,
        debug,
        allow_empty: false,
    })
}

fn split_paths(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The bounds of `--timeout`: below a tenth of a second no AWS request can complete (and a
/// value like 1e-300 would be a zero deadline); above an hour a start is stuck, not slow.
pub const MIN_TIMEOUT_SECS: f64 = 0.1;
pub const MAX_TIMEOUT_SECS: f64 = 3600.0;

fn parse_timeout(t: &str, source: &str) -> Result<Duration> {
    crate::duration::parse(t, source, MIN_TIMEOUT_SECS, MAX_TIMEOUT_SECS)
}

/// A path: `/seg[/seg…]`, segments of `[A-Za-z0-9_.-]`, not under SSM's reserved `/aws` or
/// `/ssm`. A trailing `/` is dropped.
pub fn validate_path(p: &str) -> Result<String> {
    let trimmed = p.trim();
    let path = trimmed.trim_end_matches('/');
    let bad = |why: &str| {
        Err(Error::usage(format!(
            "invalid path \"{}\": {why} (expected /<env>/<app>, e.g. /prod/grafana)",
            crate::names::printable(trimmed)
        )))
    };
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if path.is_empty() {
        return bad("/ alone is the root, not a path: name at least one segment");
    }
    if !path.starts_with('/') {
        return bad("it must start with /");
    }
    if path.len() > 900 {
        return bad("it is longer than 900 characters");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return bad("it has an empty segment");
    }
    if let Some(s) = segments
        .iter()
        .find(|s| !s.chars().all(names::is_name_char) || **s == "." || **s == "..")
    {
        return bad(&format!(
            "segment \"{}\" may hold only letters, digits, _ . -",
            crate::names::printable(s)
        ));
    }
    let first = segments[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return bad("paths starting with aws or ssm are reserved by AWS");
    }
    Ok(path.to_string())
}

/// A secret name (see `names::validate_name`); invalid is a usage error.
pub fn validate_name(n: &str) -> Result<String> {
    names::validate_name(n).map_err(Error::usage)
}

fn validate_table(t: &str) -> Result<()> {
    let ok = (3..=255).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid table name \"{}\": 3-255 letters, digits, _ . -",
            crate::names::printable(t)
        )))
    }
}

/// `--serial` (see `names::parse_serial`); invalid is a usage error that, like every
/// error about a flag's value, does not repeat the value.
pub fn parse_serial(s: &str) -> Result<u64> {
    names::parse_serial(s)
        .map_err(|_| Error::usage("invalid --serial: serials are whole numbers from 1"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Shell,
    Dotenv,
    Json,
}

/// `exec`'s validated configuration.
#[derive(Debug)]
pub struct ExecConfig {
    pub store: StoreConfig,
    pub files: Option<PathBuf>,
    pub file_env: bool,
    pub no_env: bool,
    pub allow_disk: bool,
    pub no_override: bool,
    pub user: Option<String>,
    pub require: Vec<String>,
    pub allow_names: Vec<String>,
    pub cmd: Vec<OsString>,
    /// `--json-keys`: expand JSON-object values (start/expand.rs).
    pub json_keys: bool,
    /// `--json-keys-case`: the key part as is or upper-cased.
    pub json_keys_case: KeyCase,
    /// `--resolve-refs`: the inherited variables holding references (refs/); empty without.
    pub refs: Vec<refs::Ref>,
    /// `--refresh`: supervise CMD instead of becoming it.
    pub refresh: Option<refresh::Refresh>,
    /// `--template SRC:DEST` [env ECS_SECRETS_TEMPLATES]: rendered with the secrets.
    pub templates: Vec<TemplateSpec>,
}

/// One `--template SRC:DEST`, checked for shape only (nothing is opened here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub src: PathBuf,
    /// DEST's directory (`.` when DEST has none) and file name.
    pub dest_dir: PathBuf,
    pub dest_name: String,
}

/// `--template SRC:DEST` (repeatable), or else `ECS_SECRETS_TEMPLATES=SRC:DEST,SRC:DEST`.
/// Each pair has exactly one `:`; DEST's file name is `[A-Za-z0-9_][A-Za-z0-9_.-]*`; no two
/// pairs share a DEST.
pub fn templates(flags: &[String], env: &Env) -> Result<Vec<TemplateSpec>> {
    let from_env;
    let (pairs, origin): (Vec<&str>, &str) = if !flags.is_empty() {
        (flags.iter().map(String::as_str).collect(), "--template")
    } else {
        from_env = env.get("ECS_SECRETS_TEMPLATES")?.unwrap_or_default();
        if from_env.is_empty() {
            return Ok(Vec::new());
        }
        (from_env.split(',').collect(), "ECS_SECRETS_TEMPLATES")
    };
    let mut out: Vec<TemplateSpec> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let shown = names::printable(pair);
        let bad = |why: &str| {
            Error::usage(format!(
                "invalid {origin} \"{shown}\": {why} (use SRC:DEST, e.g. \
                 /etc/nginx/auth.tmpl:/run/secrets/auth{})",
                if origin == "--template" {
                    ""
                } else {
                    "; pairs are separated by commas"
                }
            ))
        };
        let (src, dest) = match pair.split_once(':') {
            Some((s, d)) if !d.contains(':') => (s, d),
            Some(_) => return Err(bad("more than one ':' (paths with ':' are not supported)")),
            None => return Err(bad("no ':' between SRC and DEST")),
        };
        if src.is_empty() || dest.is_empty() {
            return Err(bad("SRC and DEST must both be given"));
        }
        let dest_path = Path::new(dest);
        let name = match dest_path.file_name().and_then(|n| n.to_str()) {
            Some(n) if !dest.ends_with('/') && names::is_file_name(n) => n,
            _ => {
                return Err(bad(
                    "DEST must end in a file name of letters, digits, '_', '.' and '-' (not \
                     starting with '.' or '-')",
                ))
            }
        };
        let dir: PathBuf = match dest_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.components().collect(),
            _ => PathBuf::from("."),
        };
        let spec = TemplateSpec {
            src: PathBuf::from(src),
            dest_dir: dir,
            dest_name: name.to_string(),
        };
        if out
            .iter()
            .any(|o| o.dest_dir == spec.dest_dir && o.dest_name == spec.dest_name)
        {
            return Err(bad("another template already writes this DEST"));
        }
        out.push(spec);
    }
    Ok(out)
}

pub fn exec_config(a: &cli::ExecArgs, env: &Env) -> Result<ExecConfig> {
    let cmd = a.cmd.iter().map(OsString::from).collect();
    exec_config_with_cmd(a, env, cmd)
}

/// As `exec_config`, with the command taken raw from after `--` (it may not be UTF-8).
pub fn exec_config_with_cmd(
    a: &cli::ExecArgs,
    env: &Env,
    cmd: Vec<OsString>,
) -> Result<ExecConfig> {
    let (arity, refs) = refs_config(a.resolve_refs, env)?;
    let mut store = store_config(&a.shared(), env, arity)?;
    store.allow_empty = allow_empty(a.allow_empty, env)?;
    check_nothing(&store, refs.len())?;
    if cmd.is_empty() {
        return Err(Error::usage(
            "no command given: ecs-secrets exec [options] -- CMD [ARG…]",
        ));
    }
    if a.file_env && a.files.is_none() {
        return Err(Error::usage("--file-env needs --files DIR"));
    }
    let templates = templates(&a.template, env)?;
    let json_keys = json_keys(a.json_keys, env)?;
    let writes_files = a.files.is_some() || !templates.is_empty();
    if a.allow_disk && !writes_files {
        return Err(Error::usage(
            "--allow-disk needs --files DIR or --template SRC:DEST",
        ));
    }
    if a.no_env && !writes_files {
        return Err(Error::usage(
            "--no-env without --files or --template would inject nothing: add --files DIR",
        ));
    }
    let files = match &a.files {
        None => None,
        Some(d) if d.is_empty() => return Err(Error::usage("--files needs a directory")),
        Some(d) => Some(PathBuf::from(d)),
    };
    if let Some(u) = &a.user {
        if u.is_empty() || u.starts_with(':') || u.ends_with(':') || u.matches(':').count() > 1 {
            return Err(Error::usage(
                "invalid --user: use USER or USER:GROUP (names or numbers)",
            ));
        }
    }
    let refresh = refresh::parse(
        &refresh::RefreshArgs {
            refresh: a.refresh.as_deref(),
            splay: a.splay.as_deref(),
            on_change: a.on_change.as_deref(),
            grace: a.grace.as_deref(),
        },
        writes_files,
    )?;
    Ok(ExecConfig {
        refresh,
        templates,
        store,
        files,
        file_env: a.file_env,
        no_env: a.no_env,
        allow_disk: a.allow_disk,
        no_override: a.no_override,
        user: a.user.clone(),
        require: a.require.clone(),
        allow_names: a.allow_name.clone(),
        cmd,
        json_keys,
        json_keys_case: json_keys_case(a.json_keys_case.as_deref(), json_keys, env)?,
        refs,
    })
}

/// `env`'s validated configuration.
#[derive(Debug)]
pub struct EnvConfig {
    pub store: StoreConfig,
    pub format: Format,
    pub require: Vec<String>,
    pub allow_names: Vec<String>,
    /// `--json-keys`: expand JSON-object values (start/expand.rs).
    pub json_keys: bool,
    /// `--json-keys-case`: the key part as is or upper-cased.
    pub json_keys_case: KeyCase,
    /// `--resolve-refs`: the inherited variables holding references (refs/); empty without.
    pub refs: Vec<refs::Ref>,
}

pub fn env_config(a: &cli::EnvArgs, env: &Env) -> Result<EnvConfig> {
    let (arity, refs) = refs_config(a.resolve_refs, env)?;
    let mut store = store_config(&a.shared(), env, arity)?;
    store.allow_empty = allow_empty(a.allow_empty, env)?;
    check_nothing(&store, refs.len())?;
    let format = match a.format.as_deref() {
        None | Some("shell") => Format::Shell,
        Some("dotenv") => Format::Dotenv,
        Some("json") => Format::Json,
        Some(_) => return Err(Error::usage("unknown --format: use shell, dotenv or json")),
    };
    Ok(EnvConfig {
        store,
        format,
        require: a.require.clone(),
        allow_names: a.allow_name.clone(),
        json_keys: json_keys(a.json_keys, env)?,
        json_keys_case: json_keys_case(
            a.json_keys_case.as_deref(),
            json_keys(a.json_keys, env)?,
            env,
        )?,
        refs,
    })
}

/// `--resolve-refs` with no path and no variable holding a reference: nothing at all to
/// fetch, the same mistake as an empty path (a variable misnamed, a reference misspelt).
/// Checked with the configuration, before anything is fetched; with `--allow-empty` the
/// fetch warns instead.
pub fn check_nothing(cfg: &StoreConfig, refs: usize) -> Result<()> {
    if cfg.allow_empty || refs > 0 || !cfg.paths.is_empty() {
        return Ok(());
    }
    Err(Error::usage(
        "--resolve-refs: no path given and no variable holds a reference: nothing to fetch; \
         set a variable to a reference (ssm:/NAME, secretsmanager:NAME or an ARN), add --path, \
         or pass --allow-empty (ECS_SECRETS_ALLOW_EMPTY=1) if nothing is expected",
    ))
}

/// `--allow-empty` [env ECS_SECRETS_ALLOW_EMPTY=1].
pub fn allow_empty(flag: bool, env: &Env) -> Result<bool> {
    Ok(flag || env.flag("ECS_SECRETS_ALLOW_EMPTY")?)
}

/// `--json-keys` [env ECS_SECRETS_JSON_KEYS=1].
pub fn json_keys(flag: bool, env: &Env) -> Result<bool> {
    Ok(flag || env.flag("ECS_SECRETS_JSON_KEYS")?)
}

/// How `--json-keys` writes the key part of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyCase {
    /// As in the JSON (`DB_username`).
    #[default]
    Keep,
    /// ASCII upper case (`DB_USERNAME`), as RDS-managed secrets need.
    Upper,
}

/// `--json-keys-case keep|upper` [env ECS_SECRETS_JSON_KEYS_CASE]. It only means something
/// with `--json-keys`: given without it, it is a usage error (a setting that would do
/// nothing is a mistake to point out, not to ignore).
pub fn json_keys_case(flag: Option<&str>, json_keys: bool, env: &Env) -> Result<KeyCase> {
    let (value, origin) = match flag {
        Some(v) => (Some(v.to_string()), "--json-keys-case"),
        None => (
            env.get("ECS_SECRETS_JSON_KEYS_CASE")?
                .filter(|v| !v.is_empty()),
            "ECS_SECRETS_JSON_KEYS_CASE",
        ),
    };
    let Some(value) = value else {
        return Ok(KeyCase::Keep);
    };
    let case = match value.as_str() {
        "keep" => KeyCase::Keep,
        "upper" => KeyCase::Upper,
        _ => return Err(Error::usage(format!("{origin} takes keep or upper"))),
    };
    if !json_keys {
        return Err(Error::usage(format!(
            "{origin} applies to JSON keys: add --json-keys (ECS_SECRETS_JSON_KEYS=1), or drop {origin}"
        )));
    }
    Ok(case)
}

/// `--resolve-refs` [env ECS_SECRETS_RESOLVE_REFS=1]: paths become optional, and the
/// references among the inherited variables are collected (a malformed one is an error).
pub fn refs_config(flag: bool, env: &Env) -> Result<(PathArity, Vec<refs::Ref>)> {
    if flag || env.flag("ECS_SECRETS_RESOLVE_REFS")? {
        Ok((PathArity::ManyOrNone, refs::collect(env)?))
    } else {
        Ok((PathArity::Many, Vec::new()))
    }
}

/// Where a new version's value comes from.
#[derive(Debug)]
pub enum PayloadSource {
    Arg(Payload),
    File(PathBuf),
    Stdin,
    Generate(usize),
}

pub const MAX_GENERATE: usize = 4096;

pub fn payload_source(
    payload: &Option<String>,
    location: &Option<String>,
    stdin: bool,
    generate: Option<&String>,
) -> Result<PayloadSource> {
    let given =
        payload.is_some() as u8 + location.is_some() as u8 + stdin as u8 + generate.is_some() as u8;
    if given != 1 {
        let choices = if generate.is_some() || given == 0 {
            "--payload, --payload-location, --payload-stdin or (rotate) --generate"
        } else {
            "--payload, --payload-location or --payload-stdin"
        };
        return Err(Error::usage(format!("give exactly one of {choices}")));
    }
    if let Some(p) = payload {
        return Ok(PayloadSource::Arg(Payload::from_string(p.clone())));
    }
    if let Some(l) = location {
        return Ok(PayloadSource::File(PathBuf::from(l)));
    }
    if let Some(g) = generate {
        return match g.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_GENERATE).contains(&n) => Ok(PayloadSource::Generate(n)),
            _ => Err(Error::usage(format!(
                "invalid --generate: give a length from 1 to {MAX_GENERATE}"
            ))),
        };
    }
    Ok(PayloadSource::Stdin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(paths: &[&str]) -> SharedArgs {
        SharedArgs {
            path: paths.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn flag_wins_over_variable_and_variable_over_aws_env_path() {
        let env = Env::from_pairs([("ECS_SECRETS_PATH", "/a/b,/c/d"), ("AWS_ENV_PATH", "/x/y")]);
        let c = store_config(&shared(&["/p/q"]), &env, PathArity::Many).unwrap();
        assert_eq!(c.paths, vec!["/p/q"]);
        let c = store_config(&shared(&[]), &env, PathArity::Many).unwrap();
        assert_eq!(c.paths, vec!["/a/b", "/c/d"]);
        let env = Env::from_pairs([("AWS_ENV_PATH", "/x/y/")]);
        let c = store_config(&shared(&[]), &env, PathArity::Many).unwrap();
        assert_eq!(c.paths, vec!["/x/y"]);
    }

    #[test]
    fn missing_path_and_too_many_paths_are_usage_errors() {
        let env = Env::default();
        let e = store_config(&shared(&[]), &env, PathArity::Many).unwrap_err();
        assert!(e.to_string().contains("--path"), "{e}");
        let e = store_config(&shared(&["/a/b", "/c/d"]), &env, PathArity::One).unwrap_err();
        assert!(e.to_string().contains("one path"), "{e}");
    }

    #[test]
    fn timeout_backend_and_booleans() {
        let env = Env::from_pairs([
            ("ECS_SECRETS_TIMEOUT", "2.5"),
            ("ECS_SECRETS_BACKEND", "dynamodb"),
            ("ECS_SECRETS_DEBUG", "1"),
        ]);
        let c = store_config(&shared(&["/a/b"]), &env, PathArity::One).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.backend, Backend::Dynamodb);
        assert!(c.debug);
        assert_eq!(c.table, "ecs-secrets");
        for bad in [
            "0", "-1", "abc", "4000", "1e-300", "0.09", "NaN", "inf", "-0", "1e400",
            // Durations are digits and units only (0.2.0): no spaces, no exponents.
            " 2 ", "1e1", "2h",
        ] {
            let env = Env::from_pairs([("ECS_SECRETS_TIMEOUT", bad)]);
            assert!(store_config(&shared(&["/a/b"]), &env, PathArity::One).is_err());
        }
        for good in ["0.1", "3600", "2", "10s", "1m", "1m30s", "1h"] {
            let env = Env::from_pairs([("ECS_SECRETS_TIMEOUT", good)]);
            assert!(
                store_config(&shared(&["/a/b"]), &env, PathArity::One).is_ok(),
                "{good}"
            );
        }
        let env = Env::from_pairs([("ECS_SECRETS_RECURSIVE", "maybe")]);
        assert!(store_config(&shared(&["/a/b"]), &env, PathArity::One).is_err());
        let env = Env::from_pairs([("ECS_SECRETS_BACKEND", "vault")]);
        assert!(store_config(&shared(&["/a/b"]), &env, PathArity::One).is_err());
    }

    #[test]
    fn paths_are_validated() {
        assert_eq!(validate_path("/prod/grafana/").unwrap(), "/prod/grafana");
        for bad in [
            "prod", "/", "//x", "/a//b", "/a b", "/aws/x", "/ssm", "/a/$(x)", "/a/..",
        ] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        // Each says what is actually wrong (issue 25 item 9: `/` was "must start with /").
        for (bad, why) in [
            ("/", "the root, not a path"),
            ("///", "the root, not a path"),
            ("", "it is empty"),
            ("prod", "must start with /"),
        ] {
            let e = validate_path(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("DB_PASSWORD").is_ok());
        assert!(validate_name("db.password-1").is_ok());
        assert!(validate_name("db/password").is_ok());
        for bad in ["", "1ABC", "A B", "A=B", "/A", "A/", "a//b", "A\0B", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        // The wrappers keep the messages of `names`, as usage errors.
        let e = validate_name("1ABC").unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            names::validate_name("1ABC").unwrap_err(),
            "{e}"
        );
        let e = parse_serial("0").unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "invalid --serial: serials are whole numbers from 1"
        );
    }

    #[test]
    fn exactly_one_payload_source() {
        let none: Option<String> = None;
        assert!(payload_source(&none, &none, false, None).is_err());
        assert!(payload_source(&Some("x".into()), &Some("f".into()), false, None).is_err());
        assert!(matches!(
            payload_source(&none, &none, true, None).unwrap(),
            PayloadSource::Stdin
        ));
        assert!(matches!(
            payload_source(&none, &none, false, Some(&"32".to_string())).unwrap(),
            PayloadSource::Generate(32)
        ));
        assert!(payload_source(&none, &none, false, Some(&"0".to_string())).is_err());
    }
}
