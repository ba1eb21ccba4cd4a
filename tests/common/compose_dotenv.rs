//! A reference reader of docker compose's `env_file`: the rules of compose-go's dotenv
//! parser (`dotenv/parser.go`, `expandEscapes`, and `template.Substitute` for `$`), as of
//! compose-go v2 (2026), re-implemented here because docker compose cannot be installed on
//! the test machines. Variables expand against an empty environment (what a value would
//! become is not the point: that it changes is).
//!
//! The rules modelled:
//! - a statement starts at the first non-space; a line starting with `#` is a comment; an
//!   optional `export ` prefix; the key runs to `=` (or `:`), spaces around it trimmed;
//! - a value starting with `'` or `"` runs to the first matching quote not preceded by a
//!   backslash, across newlines. Inside, a backslash before the quote yields the quote; a
//!   backslash before anything else is kept with that character;
//! - single-quoted: the text so collected, nothing else;
//! - double-quoted: then the escapes `\a \b \c \f \n \r \t \v \" \\` (Go's meaning) and
//!   `\$` (→ `$$`), `\0NNN` octal; then variable substitution;
//! - unquoted: to the end of the line, cut at ` #`, right-trimmed, then substitution;
//! - substitution: `$$` → `$`; `$name` and `${name…}` (name `[_A-Za-z][_A-Za-z0-9]*`) →
//!   the variable (empty here); `${` without a valid name is an error; any other `$` stays.

use std::collections::BTreeMap;

/// The variables compose would read from `src`, or the error it would report.
pub fn parse(src: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = src;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        if rest.starts_with('#') {
            match rest.find('\n') {
                Some(i) => {
                    rest = &rest[i..];
                    continue;
                }
                None => return Ok(out),
            }
        }
        if let Some(r) = rest.strip_prefix("export") {
            if r.starts_with([' ', '\t']) {
                rest = r.trim_start_matches([' ', '\t']);
            }
        }
        let end = rest
            .find(['=', ':', '\n'])
            .ok_or_else(|| format!("no '=' after {rest:?}"))?;
        if rest.as_bytes()[end] == b'\n' {
            return Err(format!(
                "inherited variable {:?} not modelled",
                &rest[..end]
            ));
        }
        let key = rest[..end].trim().to_string();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("bad key {key:?}"));
        }
        rest = rest[end + 1..].trim_start_matches([' ', '\t']);
        let (value, after) = value(rest)?;
        out.insert(key, value);
        rest = after;
    }
}

fn value(src: &str) -> Result<(String, &str), String> {
    let quote = match src.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => {
            let (line, rest) = src.split_once('\n').unwrap_or((src, ""));
            let line = line.split_once(" #").map_or(line, |(v, _)| v);
            return Ok((substitute(line.trim_end())?, rest));
        }
    };
    let mut collected = String::new();
    let mut escaped = false;
    for (i, c) in src.char_indices().skip(1) {
        if c != quote {
            if !escaped && c == '\\' {
                escaped = true;
                continue;
            }
            if escaped {
                escaped = false;
                collected.push('\\');
            }
            collected.push(c);
            continue;
        }
        if escaped {
            escaped = false;
            collected.push(c);
            continue;
        }
        let rest = &src[i + 1..];
        let value = if quote == '"' {
            substitute(&unescape(&collected))?
        } else {
            collected
        };
        return Ok((value, rest));
    }
    Err(format!("unterminated quoted value {src:?}"))
}

/// compose-go's `expandEscapes`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            // `\c` is not a Go escape: UnquoteChar fails and the text stays.
            Some('c') => out.push('\\'),
            Some(e @ ('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '"' | '\\')) => {
                chars.next();
                out.push(match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    other => other,
                });
            }
            Some('$') => {
                chars.next();
                out.push_str("$$");
            }
            Some('0') => {
                chars.next();
                let mut digits = String::new();
                while digits.len() < 3 && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    digits.push(chars.next().unwrap());
                }
                // Go reads `\NNN` (three octal digits) only.
                match u8::from_str_radix(&digits, 8) {
                    Ok(b) if digits.len() == 3 => out.push(char::from(b)),
                    _ => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// compose-go's `template.Substitute` against an empty environment.
fn substitute(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let name_start = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let n = b[i + 1];
        if n == b'$' {
            out.push('$');
            i += 2;
        } else if name_start(n) {
            i += 2;
            while i < b.len() && name_char(b[i]) {
                i += 1;
            }
        } else if n == b'{' {
            let close = s[i..]
                .find('}')
                .ok_or_else(|| format!("Invalid template: {s:?}"))?;
            let inner = &b[i + 2..i + close];
            if inner.is_empty() || !name_start(inner[0]) {
                return Err(format!("Invalid template: {s:?}"));
            }
            i += close + 1;
        } else {
            out.push('$');
            i += 1;
        }
    }
    Ok(out)
}
