//! Secret names → environment names, the names a secret may not set, and the validation of
//! names and serials. Pure functions with no dependencies (errors are plain `String`s that
//! `config.rs` wraps), so the fuzz targets can include this file on its own.

/// Names that change how programs load or start; a secret may set them only when allowed
/// with `--allow-name`.
const REFUSED_EXACT: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PERL5OPT",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "PATH",
];
const REFUSED_PREFIX: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_"];

pub fn is_refused(env_name: &str) -> bool {
    REFUSED_EXACT.contains(&env_name) || REFUSED_PREFIX.iter().any(|p| env_name.starts_with(p))
}

/// A secret name → its environment name: every character outside `[A-Za-z0-9_]` becomes `_`
/// (so nested names `db/password` become `db_password`); case is kept.
pub fn env_name(secret_name: &str) -> String {
    secret_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Untrusted text (names from the store, user input) made safe for a terminal: control
/// characters and non-ASCII are escaped.
pub fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_default).collect::<String>()
}

/// A file name ecs-secrets may write and later remove: `[A-Za-z0-9_][A-Za-z0-9_.-]*`, at
/// most 225 bytes so that its temporary `.NAME.ecs-secrets-<16 hex>` fits NAME_MAX (an
/// environment name is one; so is `auth.conf`). Never hidden, so never the manifest or a
/// temporary file; never `/`, `.` or `..`.
pub fn is_file_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 225
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A character of a path segment or a secret name (besides the `/` between nested parts).
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A secret name: `[A-Za-z0-9_.-]`, optionally with inner `/` (nested, ssm), whose env
/// name (after `.`/`-`/`/` → `_`) does not start with a digit.
pub fn validate_name(n: &str) -> Result<String, String> {
    // `printable` already escapes (`"` and `\` too): quoted, not `{:?}`, which escaped twice.
    let bad = |why: &str| Err(format!("invalid secret name \"{}\": {why}", printable(n)));
    if n.is_empty() {
        return bad("it is empty");
    }
    if n.len() > 256 {
        return bad("it is longer than 256 characters");
    }
    if n.starts_with('/') || n.ends_with('/') || n.contains("//") {
        return bad("it may not start or end with / or contain //");
    }
    if !n.chars().all(|c| is_name_char(c) || c == '/') {
        return bad("use only letters, digits and _ . - (and / between nested parts)");
    }
    if n.split('/').any(|s| s == "." || s == "..") {
        return bad("it may not have . or .. parts");
    }
    if n.as_bytes()[0].is_ascii_digit() {
        return bad("an environment variable name cannot start with a digit");
    }
    Ok(n.to_string())
}

/// A serial: a whole number from 1 (surrounding whitespace ignored).
pub fn parse_serial(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid serial \"{}\": serials are whole numbers from 1",
            printable(s)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_and_keep_case() {
        assert_eq!(env_name("db.password-x"), "db_password_x");
        assert_eq!(env_name("nested/Name"), "nested_Name");
        assert_eq!(env_name("GF_DATABASE_USER"), "GF_DATABASE_USER");
        assert_eq!(env_name("é=x"), "__x");
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn names_are_validated() {
        for ok in [
            "DB_PASSWORD",
            "db.password-1",
            "db/password",
            "a...b",
            "x--y",
            "_1",
        ] {
            assert_eq!(validate_name(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "", "1ABC", "A B", "A=B", "/A", "A/", "a//b", "A\0B", "é", "a/../b", ".", "a/.",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"a".repeat(256)).is_ok());
        assert!(validate_name(&"a".repeat(257)).is_err());
        // Control characters are shown escaped, never raw.
        let e = validate_name("a\u{1b}[31m").unwrap_err();
        assert_eq!(
            e,
            "invalid secret name \"a\\u{1b}[31m\": use only letters, digits and _ . - (and / \
             between nested parts)"
        );
    }

    #[test]
    fn serials_are_whole_numbers_from_one() {
        assert_eq!(parse_serial("1"), Ok(1));
        assert_eq!(parse_serial(" 42 "), Ok(42));
        assert_eq!(parse_serial(&u64::MAX.to_string()), Ok(u64::MAX));
        for bad in ["0", "-1", "+", "", "1.5", "x", "18446744073709551616"] {
            let e = parse_serial(bad).unwrap_err();
            assert!(e.starts_with("invalid serial"), "{e}");
        }
    }
}
