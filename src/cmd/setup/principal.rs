//! `--fetch-role` and `--create-principal`: IAM principal ARNs, validated in full, and the
//! account they must share with the one setup (or the stack) works in.
//!
//! Policies attach to principals by name within one account (`put-role-policy
//! --role-name`, a managed policy's `Roles`), so a principal of another account or
//! partition would be silently replaced by a same-named one of the account that runs
//! setup or deploys the stack. Such principals are refused.

use crate::error::{Error, Result};
use crate::inject::env::printable;

/// The partitions an IAM ARN can name (commercial, China, GovCloud).
const PARTITIONS: &[&str] = &["aws", "aws-cn", "aws-us-gov"];

/// An IAM principal given with `--fetch-role` or `--create-principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Principal {
    pub arn: String,
    pub kind: PrincipalKind,
    /// The name (last path segment), which policies are attached by.
    pub name: String,
    pub partition: String,
    /// Twelve digits.
    pub account: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrincipalKind {
    Role,
    User,
    Group,
}

impl PrincipalKind {
    fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Role => "role",
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
        }
    }

    /// IAM's limit on the name: 64 for roles and users, 128 for groups.
    fn max_name(self) -> usize {
        match self {
            PrincipalKind::Role | PrincipalKind::User => 64,
            PrincipalKind::Group => 128,
        }
    }
}

/// `arn:PARTITION:iam::ACCOUNT:(role|user|group)/[PATH/]NAME`, as IAM defines them: a known
/// partition, no region, a 12-digit account, a path of non-empty segments of printable
/// ASCII (at most 512 characters with its slashes) and a name of `[A-Za-z0-9+=,.@_-]`.
pub(super) fn parse_principal(flag: &str, arn: &str) -> Result<Principal> {
    let bad = |why: String| {
        Error::usage(format!(
            "{flag} \"{}\": {why}; expected an IAM role, user or group ARN, e.g. arn:aws:iam::123456789012:role/my-task-role",
            printable(arn)
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(bad("not an ARN".into()));
    };
    if prefix != "arn" {
        return Err(bad("not an ARN".into()));
    }
    if !PARTITIONS.contains(&partition) {
        return Err(bad(format!(
            "unknown partition \"{}\" (expected one of {})",
            printable(partition),
            PARTITIONS.join(", ")
        )));
    }
    if service != "iam" {
        return Err(bad(format!(
            "service \"{}\" is not iam (a role's session ARN from sts cannot be given a policy; give the role's ARN)",
            printable(service)
        )));
    }
    if !region.is_empty() {
        return Err(bad("IAM ARNs have no region".into()));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "account \"{}\" is not 12 digits",
            printable(account)
        )));
    }
    let Some((kind, rest)) = [
        PrincipalKind::Role,
        PrincipalKind::User,
        PrincipalKind::Group,
    ]
    .into_iter()
    .find_map(|k| Some((k, resource.strip_prefix(k.as_str())?.strip_prefix('/')?))) else {
        return Err(bad("the resource is not role/…, user/… or group/…".into()));
    };
    let (path, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, rest),
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || name.len() > kind.max_name() || !name.chars().all(name_char) {
        return Err(bad(format!(
            "a {} name has 1 to {} of the characters A-Z a-z 0-9 + = , . @ _ -",
            kind.as_str(),
            kind.max_name()
        )));
    }
    // The path without its leading and trailing slash; IAM counts both.
    if path.is_some_and(|p| {
        p.len() + 2 > 512
            || p.split('/')
                .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()))
    }) {
        return Err(bad(
            "the path has an empty segment, a character outside printable ASCII, or more than 512 characters".into(),
        ));
    }
    Ok(Principal {
        arn: arn.to_string(),
        kind,
        name: name.to_string(),
        partition: partition.to_string(),
        account: account.to_string(),
    })
}

/// Every ARN of one flag, parsed; the same ARN twice counts once. Two ARNs of the same kind
/// and name (IAM names are unique in an account whatever the path, and case-insensitive)
/// are refused: they cannot both exist, and one would get the other's policy.
pub(super) fn parse_principals(flag: &str, arns: &[String]) -> Result<Vec<Principal>> {
    let mut out: Vec<Principal> = Vec::new();
    for arn in arns {
        let p = parse_principal(flag, arn)?;
        if out.iter().any(|q| q.arn == p.arn) {
            continue;
        }
        if let Some(q) = out.iter().find(|q| {
            q.kind == p.kind
                && q.account == p.account
                && q.partition == p.partition
                && q.name.eq_ignore_ascii_case(&p.name)
        }) {
            return Err(Error::usage(format!(
                "{flag} {} and {}: IAM {} names are unique in an account (whatever the path, ignoring case), so both cannot exist; give one",
                q.arn,
                p.arn,
                p.kind.as_str()
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// The one (partition, account) all the principals are in, for a template: a stack lives in
/// one account and attaches by name there. `None` without principals.
pub(super) fn one_account<'a>(
    all: impl IntoIterator<Item = &'a Principal>,
) -> Result<Option<(String, String)>> {
    let mut first: Option<&Principal> = None;
    for p in all {
        match first {
            None => first = Some(p),
            Some(f) if (f.partition.as_str(), f.account.as_str()) != (&p.partition, &p.account) => {
                return Err(Error::usage(format!(
                    "{} is in account {} ({}) and {} in account {} ({}): a stack deploys into one account and attaches its policies by name there; make one template per account",
                    f.arn, f.account, f.partition, p.arn, p.account, p.partition
                )))
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|p| (p.partition.clone(), p.account.clone())))
}

/// Setup against AWS: every principal must be in the account and partition setup works in
/// (those of the KMS key). A principal of another account would get the printed policy
/// attached to a same-named one here, and cross-account reads need a key policy and a
/// table resource policy that setup does not write.
pub(super) fn check_account<'a>(
    all: impl IntoIterator<Item = &'a Principal>,
    partition: &str,
    account: &str,
) -> Result<()> {
    for p in all {
        if p.partition != partition || p.account != account {
            return Err(Error::usage(format!(
                "{} is in account {} ({}), but setup works in account {account} ({partition}), the account of the KMS key: policies attach by name within one account, and setup does not write the key policy and table resource policy that cross-account access needs; run setup with credentials of account {} or give a principal of account {account}",
                p.arn, p.account, p.partition, p.account
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_iam_roles_users_or_groups() {
        let p = parse_principal(
            "--fetch-role",
            "arn:aws:iam::123456789012:role/svc/app-task",
        )
        .unwrap();
        assert_eq!((p.kind, p.name.as_str()), (PrincipalKind::Role, "app-task"));
        assert_eq!(
            (p.partition.as_str(), p.account.as_str()),
            ("aws", "123456789012")
        );
        let p = parse_principal("--x", "arn:aws-cn:iam::123456789012:user/ops").unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        let p = parse_principal("--x", "arn:aws-us-gov:iam::123456789012:group/a/b/c/g").unwrap();
        assert_eq!((p.kind, p.name.as_str()), (PrincipalKind::Group, "g"));
        let long = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(64));
        assert!(parse_principal("--x", &long).is_ok());
        for bad in [
            "app-task",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::abc:role/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            // The issue's three.
            "arn:aws:iam:::role/app",
            "arn:evil:iam::1:role/app",
            "arn::iam::123456789012:role/app",
            "arn:aws:iam::1:role/app",
            "arn:aws:iam::1234567890123:role/app",
            "arn:aws:iam::12345678901a:role/app",
            "arn:aws:iam:us-east-1:123456789012:role/app",
            "arn:aws:iam::123456789012:roles/app",
            "arn:aws:iam::123456789012:rolex/app",
            "arn:aws:iam::123456789012:policy/app",
            "arn:aws:iam::123456789012:role//app",
            "arn:aws:iam::123456789012:role/a\u{7f}/app",
            "arn:aws:iam::123456789012:role/app\n",
            "ARN:aws:iam::123456789012:role/app",
            "arn:AWS:iam::123456789012:role/app",
            &format!("arn:aws:iam::123456789012:role/{}", "r".repeat(65)),
            &format!("arn:aws:iam::123456789012:role/{}/r", "p".repeat(511)),
        ] {
            assert!(parse_principal("--fetch-role", bad).is_err(), "{bad}");
        }
        let group = format!("arn:aws:iam::123456789012:group/{}", "g".repeat(128));
        assert!(parse_principal("--x", &group).is_ok());
    }

    #[test]
    fn the_same_name_twice_is_refused_and_the_same_arn_counts_once() {
        let a = |s: &str| s.to_string();
        let v = parse_principals(
            "--fetch-role",
            &[
                a("arn:aws:iam::123456789012:role/app"),
                a("arn:aws:iam::123456789012:role/app"),
                a("arn:aws:iam::123456789012:user/app"),
            ],
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        let e = parse_principals(
            "--fetch-role",
            &[
                a("arn:aws:iam::123456789012:role/a/app"),
                a("arn:aws:iam::123456789012:role/b/App"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("role/a/app") && e.contains("role/b/App"), "{e}");
    }

    #[test]
    fn principals_must_share_the_account_and_partition() {
        let p = |s: &str| parse_principal("--x", s).unwrap();
        let here = p("arn:aws:iam::111111111111:role/app");
        let other = p("arn:aws:iam::999999999999:role/app");
        let gov = p("arn:aws-us-gov:iam::111111111111:user/ops");
        assert_eq!(
            one_account([&here, &here]).unwrap(),
            Some(("aws".into(), "111111111111".into()))
        );
        assert_eq!(one_account([]).unwrap(), None);
        assert!(one_account([&here, &other]).is_err());
        assert!(one_account([&here, &gov]).is_err());
        assert!(check_account([&here], "aws", "111111111111").is_ok());
        let e = check_account([&here, &other], "aws", "111111111111")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("999999999999") && e.contains("111111111111"),
            "{e}"
        );
        assert!(check_account([&gov], "aws", "111111111111").is_err());
    }
}
