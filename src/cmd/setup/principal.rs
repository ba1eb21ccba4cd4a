//! `--fetch-role` and `--create-principal`: IAM principal ARNs.

use crate::error::{Error, Result};
use crate::inject::env::printable;

/// An IAM principal given with `--fetch-role` or `--create-principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Principal {
    pub arn: String,
    pub kind: PrincipalKind,
    /// The name (last path segment), which CloudFormation attaches policies by.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrincipalKind {
    Role,
    User,
    Group,
}

pub(super) fn parse_principal(flag: &str, arn: &str) -> Result<Principal> {
    let bad = || {
        Error::usage(format!(
            "{flag} {:?}: expected an IAM role, user or group ARN, e.g. arn:aws:iam::123456789012:role/my-task-role",
            printable(arn)
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" || !parts[3].is_empty() {
        return Err(bad());
    }
    let (kind, rest) = if let Some(r) = parts[5].strip_prefix("role/") {
        (PrincipalKind::Role, r)
    } else if let Some(r) = parts[5].strip_prefix("user/") {
        (PrincipalKind::User, r)
    } else if let Some(r) = parts[5].strip_prefix("group/") {
        (PrincipalKind::Group, r)
    } else {
        return Err(bad());
    };
    let name = rest.rsplit('/').next().unwrap_or_default();
    let ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || !name.chars().all(ok) || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(Principal {
        arn: arn.to_string(),
        kind,
        name: name.to_string(),
    })
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
        let p = parse_principal("--x", "arn:aws-cn:iam::123456789012:user/ops").unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        for bad in [
            "app-task",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::abc:role/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(parse_principal("--fetch-role", bad).is_err(), "{bad}");
        }
    }
}
