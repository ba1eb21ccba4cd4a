//! setup: create what the backend needs, idempotently, and print least-privilege IAM
//! policies for the readers and writers of one path; or, with `--cloudformation`, print a
//! template that does the same without calling AWS.
//!
//! dynamodb: the table (PAY_PER_REQUEST, waited for until ACTIVE) and the KMS key with its
//! alias. ssm: the key and alias only. A second run finds everything in place, changes
//! nothing, and prints the same policies.
//!
//! Three policies: `fetch` (exec, env, sync), `create` (the admin commands), `daemon` (the
//! sidecar's reads, which need serials: on ssm the parameter history, on secretsmanager
//! reads by version id, both of which the fetch policy leaves out so that its readers never
//! reach a revoked version; a daemon that writes needs the create policy too).
//!
//! principal.rs parses `--fetch-role`/`--create-principal`/`--daemon-role`, policy.rs writes the policy
//! documents of each backend, template.rs the CloudFormation template and provision.rs
//! calls AWS; sm.rs holds the Secrets Manager policies.

mod policy;
mod principal;
mod provision;
mod sm;
mod template;

use crate::config::{StoreConfig, DEFAULT_DYNAMODB_KEY};
use crate::error::{Error, ExitCode, Result};
use principal::{one_account, parse_principals, Principal, PrincipalKind};
use std::io::Write;
use std::time::Duration;

/// How long setup may take at least, whatever `--timeout` says: a new table takes a while
/// to become ACTIVE.
const SETUP_DEADLINE: Duration = Duration::from_secs(300);

/// The key setup creates or checks: `--kms-key`, else `alias/ecs-secrets` (for ssm too:
/// SSM's own default key cannot be confined to a path).
fn key_spec(cfg: &StoreConfig) -> &str {
    cfg.kms_key.as_deref().unwrap_or(DEFAULT_DYNAMODB_KEY)
}

fn is_alias(key: &str) -> bool {
    key.starts_with("alias/")
}

pub fn run(cfg: &StoreConfig, a: &crate::cli::SetupArgs) -> Result<ExitCode> {
    let cloudformation = a.cloudformation;
    let readers = parse_principals("--fetch-role", &a.fetch_role)?;
    let writers = parse_principals("--create-principal", &a.create_principal)?;
    let daemons = parse_principals("--daemon-role", &a.daemon_role)?;
    if cloudformation && (a.dry_run || a.policy_dir.is_some()) {
        return Err(Error::usage(
            "--cloudformation calls no AWS API and writes no policy files: give it without --dry-run and --policy-dir",
        ));
    }
    let policy_dir = a.policy_dir.as_deref().map(check_policy_dir).transpose()?;
    let key = key_spec(cfg);
    if key.starts_with("alias/aws/") {
        return Err(Error::usage(format!(
            "--kms-key {key}: alias/aws/ names AWS managed keys, which cannot be confined to a path; use a key of your own, e.g. alias/ecs-secrets"
        )));
    }
    if cloudformation {
        let account = one_account(readers.iter().chain(&writers).chain(&daemons))?;
        if let Some((partition, account)) = &account {
            note(format_args!(
                "the template attaches its policies by name to principals of account {account} ({partition}); its rule PrincipalsAreInTheDeployingAccount makes CloudFormation refuse to deploy it into any other account"
            ));
        }
        let t = template::template(cfg, &readers, &writers, &daemons, account.as_ref());
        print(&format!("{t}\n"))?;
        return Ok(ExitCode::Success);
    }
    let path = cfg.path();
    let rt = super::runtime()?;
    let what = format!("setting up the {} backend", cfg.backend.as_str());
    let plan = provision::Plan {
        dry_run: a.dry_run,
        policy_dir: policy_dir.as_deref(),
    };
    let lines = rt.block_on(crate::aws::with_deadline(
        cfg.timeout.max(SETUP_DEADLINE),
        &what,
        provision::provision(cfg, path, key, &readers, &writers, &daemons, &plan),
    ))?;
    if let Some(dir) = &policy_dir {
        write_policies(dir, &lines)?;
    }
    print(&lines)?;
    Ok(ExitCode::Success)
}

/// `--policy-dir DIR`: an existing directory (checked before anything is created).
fn check_policy_dir(dir: &str) -> Result<std::path::PathBuf> {
    let p = std::path::PathBuf::from(dir);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(Error::usage(format!(
            "--policy-dir {dir}: not a directory: give an existing directory"
        ))),
        Err(e) => Err(Error::usage(format!(
            "--policy-dir {dir}: {e}: create the directory first (mkdir -p {dir})"
        ))),
    }
}

/// One ready-to-attach policy document per line of `lines`: `DIR/<policy_name>.json`.
fn write_policies(dir: &std::path::Path, lines: &str) -> Result<()> {
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::data(format!("setup produced an unreadable policy line: {e}")))?;
        let (Some(name), Some(policy)) = (v["policy_name"].as_str(), v.get("policy")) else {
            continue;
        };
        let file = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(policy).expect("a JSON value serialises");
        std::fs::write(&file, format!("{text}\n"))
            .map_err(|e| Error::io(format!("cannot write {}: {e}", file.display())))?;
        note(format_args!("wrote {}", file.display()));
    }
    Ok(())
}

/// A human diagnostic on stderr (stdout carries only the policies).
fn note(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "ecs-secrets: {args}");
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(format!("cannot write to stdout: {e}")))
}
