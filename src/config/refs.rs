//! Which values are references, and what they name. A value is a reference only when the
//! WHOLE value has one of the forms below; anything else (text around an ARN, an ARN of a
//! service we do not read, an SSM ARN of something other than a parameter) is not one.
//!
//! - `arn:<partition>:ssm:<region>:<account>:parameter/<name>` (ECS's `valueFrom`)
//! - `ssm:/<name>`
//! - `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>[:<json-key>[:<version-stage>[:<version-id>]]]`
//! - `secretsmanager:<name>[:<json-key>[:<version-stage>[:<version-id>]]]`
//!
//! A value that starts like one of these but does not parse is malformed: an error naming
//! the variable, never passed through to the application. Except a URL: `ssm://…` and
//! `secretsmanager://…` (a short form's name never starts with `//`) are values.
//!
//! `collect` finds the references among the inherited variables: the configuration of
//! `--resolve-refs` (refs/ resolves them; the start pipeline merges their values).

use super::Env;
use crate::error::{Error, Result};
use crate::names::printable;

pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];
/// Secrets Manager's stage that BatchGetSecretValue answers: asking for it is no pin.
pub const CURRENT: &str = "AWSCURRENT";

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Parameter Store parameter, by name (`ssm:/…`) or, for the ARN form, by its whole
    /// ARN (read with decryption).
    Ssm {
        region: Option<String>,
        name: String,
    },
    /// A Secrets Manager secret by name or ARN, optionally one JSON key of it, optionally a
    /// version stage and/or version id (a pin: one GetSecretValue of its own).
    Sm {
        region: Option<String>,
        id: String,
        json_key: Option<String>,
        stage: Option<String>,
        version_id: Option<String>,
    },
}

impl Target {
    pub fn region(&self) -> Option<&str> {
        match self {
            Target::Ssm { region, .. } | Target::Sm { region, .. } => region.as_deref(),
        }
    }

    pub fn json_key(&self) -> Option<&str> {
        match self {
            Target::Sm { json_key, .. } => json_key.as_deref(),
            Target::Ssm { .. } => None,
        }
    }

    /// A Secrets Manager reference to a version other than AWSCURRENT.
    pub fn is_pinned(&self) -> bool {
        matches!(self, Target::Sm { stage, version_id, .. }
            if version_id.is_some() || stage.as_deref().is_some_and(|s| s != CURRENT))
    }
}

/// `Ok(None)`: not a reference. `Err(why)`: meant as one, but malformed.
pub fn parse(value: &str) -> Result<Option<Target>, String> {
    // `ssm://host/x`, `secretsmanager://…`: a URL of that scheme, not a short form (whose
    // name never starts with `//`). It stays a value, as any text that is no reference.
    if ["ssm://", "secretsmanager://"]
        .iter()
        .any(|p| value.starts_with(p))
    {
        return Ok(None);
    }
    if let Some(rest) = value.strip_prefix("ssm:") {
        if !rest.starts_with('/') {
            return Err("an ssm: reference is ssm:/<name> (the name starts with /)".into());
        }
        return ssm_name(rest).map(|name| Some(Target::Ssm { region: None, name }));
    }
    if let Some(rest) = value.strip_prefix("secretsmanager:") {
        let parts: Vec<&str> = rest.split(':').collect();
        return sm(None, parts[0], &parts[1..]).map(Some);
    }
    let Some(rest) = value.strip_prefix("arn:") else {
        return Ok(None);
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    if parts.len() < 5 {
        return Ok(None);
    }
    let (partition, service, region, account, resource) =
        (parts[0], parts[1], parts[2], parts[3], parts[4]);
    if service != "ssm" && service != "secretsmanager" {
        return Ok(None);
    }
    if service == "ssm" && !resource.starts_with("parameter/") {
        return Ok(None); // a document, an association…: not something we read
    }
    if service == "secretsmanager" && !resource.starts_with("secret:") {
        return Ok(None);
    }
    if !PARTITIONS.contains(&partition) {
        return Err(format!(
            "partition {:?} is not one of aws, aws-cn, aws-us-gov",
            printable(partition)
        ));
    }
    check_region(region)?;
    check_partition(partition, region)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("account {:?} is not 12 digits", printable(account)));
    }
    let region = Some(region.to_string());
    if service == "ssm" {
        let rest = &resource["parameter/".len()..];
        // SSM writes the ARN of `/a/b` as `parameter/a/b` and of `x` as `parameter/x`.
        let name = if rest.contains('/') {
            format!("/{rest}")
        } else {
            rest.to_string()
        };
        // Asked for by its ARN, so that it is read from the account the ARN names (SSM
        // takes a parameter's ARN as its name, and a shared parameter only that way) and
        // answered only by that ARN (refs/ssm.rs): never our parameter of the same name.
        ssm_name(&name)?;
        let arn = format!(
            "arn:{partition}:ssm:{}:{account}:parameter/{rest}",
            region.as_deref().unwrap_or_default()
        );
        return Ok(Some(Target::Ssm { region, name: arn }));
    }
    let fields: Vec<&str> = resource["secret:".len()..].split(':').collect();
    let arn_id = format!(
        "arn:{partition}:secretsmanager:{}:{account}:secret:{}",
        region.as_deref().unwrap_or_default(),
        fields[0]
    );
    let mut t = sm(region, fields[0], &fields[1..])?;
    if let Target::Sm { id, .. } = &mut t {
        *id = arn_id;
    }
    Ok(Some(t))
}

/// The region must be one of the partition's: `arn:aws-cn:ssm:eu-west-1:…` names no
/// parameter anywhere, and reading it in eu-west-1 (partition aws) would be reading another
/// one. China regions start with `cn-`, GovCloud ones with `us-gov-`.
fn check_partition(partition: &str, region: &str) -> Result<(), String> {
    let of_region = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    if partition == of_region {
        Ok(())
    } else {
        Err(format!(
            "region {region} is in partition {of_region}, not {partition}: the ARN names no \
             parameter or secret that can be read"
        ))
    }
}

fn check_region(r: &str) -> Result<(), String> {
    let ok = (4..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("region {:?} is not a region name", printable(r)))
    }
}

/// Parameter names: letters, digits, `_ . - /`, at most 2048 characters. A `:` would be a
/// version selector, which ECS's `valueFrom` does not use either.
fn ssm_name(name: &str) -> Result<String, String> {
    if name.contains(':') {
        return Err(
            "parameter version selectors (name:version, name:label) are not supported".into(),
        );
    }
    let ok = !name.is_empty()
        && name.len() <= 2048
        && name != "/"
        && !name.contains("//")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{:?} is not a parameter name (letters, digits, _ . - /)",
            printable(name)
        ))
    }
}

fn sm(region: Option<String>, name: &str, rest: &[&str]) -> Result<Target, String> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-!".contains(c));
    if !ok {
        return Err(format!(
            "{:?} is not a secret name (letters, digits, / _ + = . @ - and the ! of rds!… names)",
            printable(name)
        ));
    }
    if rest.len() > 3 {
        return Err(
            "too many fields: after the secret come at most json-key:version-stage:version-id"
                .into(),
        );
    }
    let field = |i: usize| rest.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
    let (json_key, stage, version_id) = (field(0), field(1), field(2));
    for (what, v, max) in [
        ("version stage", &stage, 256),
        ("version id", &version_id, 64),
    ] {
        if let Some(v) = v {
            if v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("{what} {:?} is not valid", printable(v)));
            }
        }
    }
    Ok(Target::Sm {
        region,
        id: name.to_string(),
        json_key,
        stage,
        version_id,
    })
}

/// One inherited variable holding a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub var: String,
    /// The reference as written (not secret).
    pub text: String,
    pub target: Target,
}

impl Ref {
    /// `$DB_PASSWORD (ssm:/prod/db)`, for messages.
    pub fn label(&self) -> String {
        format!("${} ({})", self.var, printable(&self.text))
    }
}

fn valid_var(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The references among the inherited variables (the last value of a repeated name, as
/// `getenv` sees it). A malformed reference is an error naming the variable.
pub fn collect(env: &Env) -> Result<Vec<Ref>> {
    let vars = env.vars();
    let mut out: Vec<Ref> = Vec::new();
    for (i, (k, v)) in vars.iter().enumerate() {
        if vars[i + 1..].iter().any(|(k2, _)| k2 == k) {
            continue;
        }
        let lossy = v.to_string_lossy();
        let parsed = parse(&lossy);
        if parsed == Ok(None) {
            continue;
        }
        let k = k.to_string_lossy();
        // Meant as a reference but not UTF-8: malformed, never passed through.
        let parsed = match v.to_str() {
            Some(_) => parsed,
            None => Err("it is not valid UTF-8".into()),
        };
        let (k, v) = (k.as_ref(), lossy.as_ref());
        let target = match parsed {
            Ok(None) => continue,
            Ok(Some(t)) => t,
            Err(why) => {
                return Err(Error::usage(format!(
                    "--resolve-refs: malformed reference ${} ({}): {why}",
                    printable(k),
                    printable(v)
                )))
            }
        };
        if !valid_var(k) {
            return Err(Error::usage(format!(
                "--resolve-refs: the variable {:?} holds the reference {} but its name is not a valid environment name",
                printable(k),
                printable(v)
            )));
        }
        out.push(Ref {
            var: k.to_string(),
            text: v.to_string(),
            target,
        });
    }
    crate::sort::sort_by(&mut out, |a, b| a.var.cmp(&b.var));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssm(region: Option<&str>, name: &str) -> Option<Target> {
        Some(Target::Ssm {
            region: region.map(String::from),
            name: name.into(),
        })
    }

    #[test]
    fn the_forms() {
        assert_eq!(parse("ssm:/prod/db").unwrap(), ssm(None, "/prod/db"));
        assert_eq!(
            parse("arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db").unwrap(),
            ssm(
                Some("eu-west-1"),
                "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db"
            )
        );
        assert_eq!(
            parse("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/Top").unwrap(),
            ssm(
                Some("cn-north-1"),
                "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/Top"
            )
        );
        let t = parse("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:db-AbCdEf:password:AWSPREVIOUS:")
            .unwrap()
            .unwrap();
        assert_eq!(
            t,
            Target::Sm {
                region: Some("us-gov-west-1".into()),
                id: "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:db-AbCdEf"
                    .into(),
                json_key: Some("password".into()),
                stage: Some("AWSPREVIOUS".into()),
                version_id: None,
            }
        );
        assert!(t.is_pinned());
        let t = parse("secretsmanager:rds!db-1234::AWSCURRENT")
            .unwrap()
            .unwrap();
        assert!(!t.is_pinned() && t.json_key().is_none());
        let t = parse("secretsmanager:prod/db:user").unwrap().unwrap();
        assert_eq!(t.json_key(), Some("user"));
        assert!(!t.is_pinned());
        let t = parse("secretsmanager:prod/db:::v1").unwrap().unwrap();
        assert!(t.is_pinned());
    }

    #[test]
    fn every_arn_field_is_kept() {
        // The account, the partition and the region all stay in what is asked for.
        for v in [
            "arn:aws:ssm:us-east-1:999999999999:parameter/ref/db",
            "arn:aws-cn:ssm:cn-north-1:999999999999:parameter/ref/db",
            "arn:aws-us-gov:ssm:us-gov-east-1:123456789012:parameter/ref/db",
        ] {
            let Some(Target::Ssm { name, region }) = parse(v).unwrap() else {
                panic!("{v}")
            };
            assert_eq!(name, v);
            assert_eq!(region.as_deref(), v.split(':').nth(3));
        }
        let v = "arn:aws-cn:secretsmanager:cn-north-1:999999999999:secret:db-AbCdEf";
        let Some(Target::Sm { id, region, .. }) = parse(v).unwrap() else {
            panic!("{v}")
        };
        assert_eq!((id.as_str(), region.as_deref()), (v, Some("cn-north-1")));
    }

    #[test]
    fn not_references() {
        for v in [
            "",
            "hello",
            "/prod/db",
            " ssm:/prod/db",
            "x arn:aws:ssm:us-east-1:123456789012:parameter/a",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:ssm:us-east-1:123456789012:document/x",
            "arn:aws:s3:::bucket",
            "arn:aws",
            "postgres://u:p@h/db",
            // URLs whose scheme is a short form's prefix (issue 20, finding 6)
            "ssm://host/x",
            "ssm://",
            "secretsmanager://host/x",
        ] {
            assert_eq!(parse(v), Ok(None), "{v}");
        }
    }

    #[test]
    fn malformed() {
        for v in [
            "ssm:prod/db",
            "ssm:/",
            "ssm:/a b",
            "ssm:/a:3",
            "ssm:/a//b",
            "secretsmanager:",
            "secretsmanager:a b",
            "secretsmanager:a:k:s:v:extra",
            "arn:aws-iso:ssm:us-east-1:123456789012:parameter/a",
            "arn:aws:ssm:US-EAST-1:123456789012:parameter/a",
            "arn:aws:ssm:us-east-1.evil.com:123456789012:parameter/a",
            "arn:aws:ssm:us-east-1:12345:parameter/a",
            "arn:aws:ssm:us-east-1:123456789012:parameter/",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
            // A region outside the ARN's partition (issue 20, finding 4).
            "arn:aws-cn:ssm:eu-west-1:123456789012:parameter/a",
            "arn:aws:ssm:cn-north-1:123456789012:parameter/a",
            "arn:aws-us-gov:ssm:us-east-1:123456789012:parameter/a",
            "arn:aws:ssm:us-gov-west-1:123456789012:parameter/a",
            "arn:aws-cn:secretsmanager:us-east-1:123456789012:secret:a",
            "arn:aws:secretsmanager:cn-northwest-1:123456789012:secret:a",
        ] {
            assert!(parse(v).is_err(), "{v}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn collect_takes_whole_values_and_the_last_of_a_name() {
        let e = env(&[
            ("A", "ssm:/old"),
            ("B", "see ssm:/x"),
            ("A", "ssm:/new"),
            ("C", "arn:aws:iam::123456789012:role/r"),
            ("D", "secretsmanager:db:password"),
        ]);
        let r = collect(&e).unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.var.as_str(), r.text.as_str()))
                .collect::<Vec<_>>(),
            vec![("A", "ssm:/new"), ("D", "secretsmanager:db:password")]
        );
        let e = collect(&env(&[("X", "ssm:nope")])).unwrap_err().to_string();
        assert!(e.contains("$X") && e.contains("ssm:nope"), "{e}");
        let e = collect(&env(&[("X.Y", "ssm:/a")])).unwrap_err().to_string();
        assert!(e.contains("X.Y"), "{e}");
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bad = Env::from_pairs([(
            OsString::from("B"),
            OsString::from_vec(b"ssm:/a\xff".to_vec()),
        )]);
        let e = collect(&bad).unwrap_err().to_string();
        assert!(e.contains("$B") && e.contains("UTF-8"), "{e}");
        let fine = Env::from_pairs([(OsString::from("B"), OsString::from_vec(b"x\xff".to_vec()))]);
        assert!(collect(&fine).unwrap().is_empty());
    }
}
