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

pub fn run(
    cfg: &StoreConfig,
    fetch_roles: &[String],
    create_principals: &[String],
    daemon_roles: &[String],
    cloudformation: bool,
) -> Result<ExitCode> {
    let readers = parse_principals("--fetch-role", fetch_roles)?;
    let writers = parse_principals("--create-principal", create_principals)?;
    let daemons = parse_principals("--daemon-role", daemon_roles)?;
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
    let lines = rt.block_on(crate::aws::with_deadline(
        cfg.timeout.max(SETUP_DEADLINE),
        &what,
        provision::provision(cfg, path, key, &readers, &writers, &daemons),
    ))?;
    print(&lines)?;
    Ok(ExitCode::Success)
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
