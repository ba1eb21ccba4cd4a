//! Secret names → environment names, and the names a secret may not set. Pure functions
//! with no dependencies, so the fuzz targets can include this file on its own.

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
}
