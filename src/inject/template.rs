//! `--template SRC:DEST`: a configuration file with `{{ NAME }}` placeholders, rendered with
//! the fetched secrets, each value escaped for the format it lands in.
//!
//! A small renderer of its own rather than a template engine: there is no logic to run (no
//! loops, conditions, includes or loaders), only placeholders, so there is nothing a template
//! could do besides insert values — and the whole grammar fits in this file:
//!
//! - `{{` always opens a placeholder, which must close with `}}` on the same line. Between
//!   them: `NAME` (`[A-Za-z_][A-Za-z0-9_]*`, a fetched secret's environment name) with at
//!   most one filter, `NAME | FILTER`, spaces optional; or a literal in double quotes,
//!   `{{ "{{" }}`, to write `{{` itself. Anything else is a syntax error naming the line.
//! - `}}` outside a placeholder is plain text (JSON and nginx files are full of it).
//! - Filters: none (the value as it is), `json`, `yaml`, `xml`, `url`, `shell`, `base64`.
//!
//! Errors name SRC, the line, and the secret (by name); never a value, even when rendering
//! fails after values were inserted (the partial output is dropped, zeroized, unseen).

use super::env::{printable, Injection};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The largest SRC read: a configuration file, not a data set.
pub const MAX_SRC_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Raw,
    Json,
    Yaml,
    Xml,
    Url,
    Shell,
    Base64,
}

const FILTERS: &str = "json, yaml, xml, url, shell or base64";

impl Filter {
    fn parse(s: &str) -> Option<Filter> {
        Some(match s {
            "json" => Filter::Json,
            "yaml" => Filter::Yaml,
            "xml" => Filter::Xml,
            "url" => Filter::Url,
            "shell" => Filter::Shell,
            "base64" => Filter::Base64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Filter::Raw => "no filter",
            Filter::Json => "json",
            Filter::Yaml => "yaml",
            Filter::Xml => "xml",
            Filter::Url => "url",
            Filter::Shell => "shell",
            Filter::Base64 => "base64",
        }
    }

    /// The most bytes one value byte can become (`\u00XX`, `&quot;`).
    const MAX_GROWTH: usize = 6;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Bytes of SRC copied as they are.
    Text(std::ops::Range<usize>),
    /// `{{ "…" }}`: a range of SRC too (the inside of the quotes).
    Literal(std::ops::Range<usize>),
    Value {
        name: String,
        filter: Filter,
        line: usize,
    },
}

/// A parsed template. Holds SRC's text (not secret) and where the values go.
#[derive(Debug, Clone)]
pub struct Template {
    /// SRC as given, for messages.
    pub src: String,
    text: Vec<u8>,
    pieces: Vec<Piece>,
}

/// Read SRC (following symlinks: it is part of the image) and parse it. Only a regular file
/// of at most `MAX_SRC_BYTES` is read, opened without blocking, so a FIFO or a device put at
/// SRC cannot hang the start or feed it without end (`crate::fsread`).
pub fn load(src: &std::path::Path) -> Result<Template> {
    use crate::fsread::{read_bounded, FileError};
    let shown = printable(&src.to_string_lossy());
    let text = read_bounded(src, MAX_SRC_BYTES).map_err(|e| {
        Error::usage(format!(
            "--template {shown}: {}",
            match e {
                FileError::Missing => "cannot open the template: it does not exist; check the \
                                       path (SRC is read from the image, before privileges are \
                                       dropped)"
                    .to_string(),
                FileError::NotRegular(kind) => format!(
                    "not a regular file (it is {kind}; a FIFO, device, socket or directory is \
                     refused): point SRC at the template file"
                ),
                FileError::TooLarge(..) => format!(
                    "larger than {} KiB: a template is a configuration file; split it",
                    MAX_SRC_BYTES / 1024
                ),
                FileError::Io(e) => format!("cannot open the template: {e}"),
            }
        ))
    })?;
    Template::parse(&src.to_string_lossy(), text.to_vec())
}

/// Why a value cannot be written with a filter (the value itself is never described).
enum Refusal {
    NotUtf8,
    /// A character the format cannot carry at all.
    Unrepresentable(&'static str),
}

impl Template {
    /// Parse SRC's bytes. `src` is how SRC is named in messages.
    pub fn parse(src: &str, text: Vec<u8>) -> Result<Template> {
        let shown = printable(src);
        let err = |line: usize, why: String| {
            Error::usage(format!("--template {shown}, line {line}: {why}"))
        };
        let b = &text[..];
        let mut pieces = Vec::new();
        let (mut i, mut line, mut text_start) = (0, 1, 0);
        while i < b.len() {
            if b[i] == b'\n' {
                line += 1;
                i += 1;
                continue;
            }
            if !(b[i] == b'{' && b.get(i + 1) == Some(&b'{')) {
                i += 1;
                continue;
            }
            if text_start < i {
                pieces.push(Piece::Text(text_start..i));
            }
            // The closing `}}`, on this line, outside a quoted literal.
            let start = i + 2;
            let mut j = start;
            let mut quoted = false;
            let end = loop {
                match b.get(j) {
                    None | Some(b'\n') => {
                        return Err(err(
                            line,
                            "\"{{\" is not closed by \"}}\" on the same line (to write \"{{\" \
                             itself, use {{ \"{{\" }})"
                                .into(),
                        ))
                    }
                    Some(b'"') => quoted = !quoted,
                    Some(b'}') if !quoted && b.get(j + 1) == Some(&b'}') => break j,
                    _ => {}
                }
                j += 1;
            };
            pieces.push(parse_inside(b, start..end, line).map_err(|why| err(line, why))?);
            i = end + 2;
            text_start = i;
        }
        if text_start < b.len() {
            pieces.push(Piece::Text(text_start..b.len()));
        }
        Ok(Template {
            src: src.to_string(),
            text,
            pieces,
        })
    }

    /// The environment names this template uses, each once, in order of first use.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Value { name, .. } = p {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Render with `secrets` (by environment name). The output is allocated once at its
    /// largest possible size, so no copy of a value is left behind by a reallocation.
    pub fn render(&self, secrets: &[Injection]) -> Result<Zeroizing<Vec<u8>>> {
        let shown = printable(&self.src);
        let mut found: Vec<&Injection> = Vec::with_capacity(self.pieces.len());
        let mut room = 0usize;
        for p in &self.pieces {
            match p {
                Piece::Text(r) | Piece::Literal(r) => room += r.len(),
                Piece::Value { name, line, .. } => {
                    let s = secrets
                        .iter()
                        .find(|s| &s.env_name == name)
                        .ok_or_else(|| {
                            Error::data(format!(
                            "--template {shown}, line {line}: no secret was fetched for {name}: \
                             check its name (placeholders use the environment name, after \
                             --json-keys) and the --path it comes from"
                        ))
                        })?;
                    room += s.secret.payload.len() * Filter::MAX_GROWTH + 8;
                    found.push(s);
                }
            }
        }
        let mut out = Zeroizing::new(Vec::with_capacity(room));
        let mut values = found.into_iter();
        for p in &self.pieces {
            match p {
                Piece::Text(r) | Piece::Literal(r) => out.extend_from_slice(&self.text[r.clone()]),
                Piece::Value { name, filter, line } => {
                    let s = values.next().expect("one secret per placeholder");
                    escape(*filter, s.secret.payload.as_bytes(), &mut out).map_err(|why| {
                        let why = match why {
                            Refusal::NotUtf8 => "is not valid UTF-8".to_string(),
                            Refusal::Unrepresentable(what) => format!("contains {what}"),
                        };
                        Error::data(format!(
                            "--template {shown}, line {line}: the value of {} ({name}) {why}, \
                             which {} cannot carry: use {{{{ {name} | base64 }}}} and decode \
                             it in the application, or change the secret",
                            s.full_name(),
                            filter.name()
                        ))
                    })?;
                }
            }
        }
        debug_assert!(out.len() <= room, "no reallocation");
        Ok(out)
    }
}

fn parse_inside(
    b: &[u8],
    r: std::ops::Range<usize>,
    line: usize,
) -> std::result::Result<Piece, String> {
    let inner = &b[r.clone()];
    let lead = inner.iter().take_while(|c| is_space(**c)).count();
    let trail = inner.iter().rev().take_while(|c| is_space(**c)).count();
    if lead == inner.len() {
        return Err("empty placeholder {{ }}: put a secret's name in it".into());
    }
    let (s, e) = (r.start + lead, r.end - trail);
    let t = &b[s..e];
    if t[0] == b'"' {
        // The scan that found the end closed every quote it opened.
        if t.len() >= 2 && t[t.len() - 1] == b'"' && !t[1..t.len() - 1].contains(&b'"') {
            return Ok(Piece::Literal(s + 1..e - 1));
        }
        return Err(format!(
            "{} is not one literal: write {{{{ \"TEXT\" }}}} with no '\"' inside TEXT",
            shown_inner(t)
        ));
    }
    let mut parts = t.split(|c| *c == b'|');
    let name = trim(parts.next().unwrap_or_default());
    let filter = parts.next().map(trim);
    if parts.next().is_some() {
        return Err(format!(
            "{} has more than one filter: use one of {FILTERS}",
            shown_inner(t)
        ));
    }
    if name.is_empty() {
        return Err(format!("{} has no secret name before '|'", shown_inner(t)));
    }
    let valid = (name[0].is_ascii_alphabetic() || name[0] == b'_')
        && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !valid {
        return Err(format!(
            "{} does not name a secret: a name is letters, digits and '_' (the environment \
             name), and a filter follows '|'",
            shown_inner(t)
        ));
    }
    let filter = match filter {
        None => Filter::Raw,
        Some([]) => return Err(format!("{} has no filter after '|'", shown_inner(t))),
        Some(f) => Filter::parse(std::str::from_utf8(f).unwrap_or_default()).ok_or_else(|| {
            format!(
                "unknown filter \"{}\": use {FILTERS}",
                printable(&String::from_utf8_lossy(&f[..f.len().min(40)]))
            )
        })?,
    };
    Ok(Piece::Value {
        name: String::from_utf8(name.to_vec()).expect("ASCII"),
        filter,
        line,
    })
}

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s.iter().take_while(|c| is_space(**c)).count();
    let z = s[a..].iter().rev().take_while(|c| is_space(**c)).count();
    &s[a..s.len() - z]
}

/// A placeholder's inside for messages (SRC text, never a value), shortened.
fn shown_inner(t: &[u8]) -> String {
    let cut = &t[..t.len().min(60)];
    let more = if cut.len() < t.len() { "…" } else { "" };
    format!(
        "{{{{ {}{more} }}}}",
        printable(&String::from_utf8_lossy(cut))
    )
}

fn escape(f: Filter, v: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), Refusal> {
    match f {
        Filter::Raw => out.extend_from_slice(v),
        Filter::Json => json(utf8(v)?, out),
        Filter::Yaml => yaml(utf8(v)?, out),
        Filter::Xml => xml(utf8(v)?, out)?,
        Filter::Url => url(v, out),
        Filter::Shell => {
            if v.contains(&0) {
                return Err(Refusal::Unrepresentable("a NUL byte"));
            }
            out.push(b'\'');
            for &c in v {
                if c == b'\'' {
                    out.extend_from_slice(b"'\\''");
                } else {
                    out.push(c);
                }
            }
            out.push(b'\'');
        }
        Filter::Base64 => base64(v, out),
    }
    Ok(())
}

fn utf8(v: &[u8]) -> std::result::Result<&str, Refusal> {
    std::str::from_utf8(v).map_err(|_| Refusal::NotUtf8)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex2(out: &mut Vec<u8>, c: u32) {
    out.push(HEX[(c >> 4 & 0xf) as usize]);
    out.push(HEX[(c & 0xf) as usize]);
}

fn hex4(out: &mut Vec<u8>, c: u32) {
    hex2(out, c >> 8);
    hex2(out, c);
}

/// A JSON string literal, quotes included. Besides what JSON requires (`"`, `\`, controls),
/// `<`, `>`, `&`, DEL, U+2028 and U+2029 are escaped too, so the literal is also safe inside
/// an HTML `<script>` and in JavaScript before ES2019.
fn json(v: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in v.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(b"\\u");
                hex4(out, ch as u32);
            }
            _ => push_char(out, ch),
        }
    }
    out.push(b'"');
}

/// A YAML double-quoted scalar. Every character YAML would not keep as it is is escaped:
/// controls (tab and newline included: raw ones are folded), DEL, the C1 range (NEL is a
/// line break), LS, PS, the BOM and the non-characters U+FFFE and U+FFFF.
fn yaml(v: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in v.chars() {
        let short: Option<&[u8]> = match ch {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\0' => Some(b"\\0"),
            '\u{7}' => Some(b"\\a"),
            '\u{8}' => Some(b"\\b"),
            '\t' => Some(b"\\t"),
            '\n' => Some(b"\\n"),
            '\u{b}' => Some(b"\\v"),
            '\u{c}' => Some(b"\\f"),
            '\r' => Some(b"\\r"),
            '\u{1b}' => Some(b"\\e"),
            '\u{85}' => Some(b"\\N"),
            '\u{2028}' => Some(b"\\L"),
            '\u{2029}' => Some(b"\\P"),
            _ => None,
        };
        match (short, ch) {
            (Some(s), _) => out.extend_from_slice(s),
            (None, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}') => {
                out.extend_from_slice(b"\\x");
                hex2(out, ch as u32);
            }
            (None, '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                out.extend_from_slice(b"\\u");
                hex4(out, ch as u32);
            }
            _ => push_char(out, ch),
        }
    }
    out.push(b'"');
}

/// Safe in element text and in attribute values with either quote: the five markup
/// characters and raw tab, newline and carriage return (which a parser normalises to
/// spaces in attributes) become character references. What XML 1.0 cannot carry at all
/// (the other C0 controls, U+FFFE, U+FFFF) is refused.
fn xml(v: &str, out: &mut Vec<u8>) -> std::result::Result<(), Refusal> {
    for ch in v.chars() {
        let r: &[u8] = match ch {
            '&' => b"&amp;",
            '<' => b"&lt;",
            '>' => b"&gt;",
            '"' => b"&quot;",
            '\'' => b"&apos;",
            '\t' => b"&#9;",
            '\n' => b"&#10;",
            '\r' => b"&#13;",
            '\u{0}'..='\u{1f}' => {
                return Err(Refusal::Unrepresentable(
                    "a control character XML 1.0 does not allow",
                ))
            }
            '\u{fffe}' | '\u{ffff}' => {
                return Err(Refusal::Unrepresentable(
                    "U+FFFE or U+FFFF, which XML 1.0 does not allow",
                ))
            }
            _ => {
                push_char(out, ch);
                continue;
            }
        };
        out.extend_from_slice(r);
    }
    Ok(())
}

/// Percent-encoded: every byte outside RFC 3986's unreserved set (`A-Za-z0-9-._~`), so the
/// value is one component (user, password, path segment, query value) wherever it lands.
fn url(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c);
        } else {
            out.push(b'%');
            hex2(out, c as u32);
        }
    }
}

/// Standard base64 (RFC 4648 §4), with padding.
fn base64(v: &[u8], out: &mut Vec<u8>) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in v.chunks(3) {
        let n = chunk.len();
        let w = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= n {
                out.push(A[(w >> (18 - 6 * k) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

fn push_char(out: &mut Vec<u8>, ch: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Payload, Secret};

    fn inj(name: &str, v: &[u8]) -> Injection {
        Injection {
            env_name: name.into(),
            path: "/p".into(),
            secret: Secret {
                name: name.into(),
                serial: 1,
                payload: Payload::new(v.to_vec()),
            },
        }
    }

    fn render(src: &str, secrets: &[Injection]) -> Result<Vec<u8>> {
        Template::parse("t.tmpl", src.as_bytes().to_vec())?
            .render(secrets)
            .map(|o| o.to_vec())
    }

    fn err(src: &str, secrets: &[Injection]) -> String {
        render(src, secrets).unwrap_err().to_string()
    }

    fn one(filter: &str, v: &[u8]) -> Vec<u8> {
        render(&format!("{{{{ V | {filter} }}}}"), &[inj("V", v)]).unwrap()
    }

    #[test]
    fn placeholders_text_and_literals() {
        let s = [inj("A", b"1"), inj("B_2", b"two")];
        assert_eq!(render("x{{A}}y{{ B_2 }}z", &s).unwrap(), b"x1ytwoz");
        assert_eq!(render("{{\tA\t|\tjson }}", &s).unwrap(), b"\"1\"");
        assert_eq!(render("}} {} { } }}}", &s).unwrap(), b"}} {} { } }}}");
        assert_eq!(render("{{ \"{{\" }}{{\"}}\"}}", &s).unwrap(), b"{{}}");
        assert_eq!(render("", &s).unwrap(), b"");
        // Bytes around placeholders are kept, whatever they are.
        let t = Template::parse("t", b"\xff{{A}}\r\n".to_vec()).unwrap();
        assert_eq!(&t.render(&s).unwrap()[..], b"\xff1\r\n");
        assert_eq!(
            Template::parse("t", b"{{A}}{{B_2|url}}{{A}}".to_vec())
                .unwrap()
                .names(),
            ["A", "B_2"]
        );
    }

    #[test]
    fn syntax_errors_name_src_and_line() {
        let s = [inj("A", b"1")];
        let cases = [
            ("a\n\nb {{ A", 3, "not closed"),
            ("{{ A\n}}", 1, "not closed"),
            ("x\n{{ }}", 2, "empty placeholder"),
            ("{{}}", 1, "empty placeholder"),
            ("{{ | json }}", 1, "no secret name"),
            ("{{ A | }}", 1, "no filter after"),
            ("{{ A | jsn }}", 1, "unknown filter \"jsn\""),
            ("{{ A | JSON }}", 1, "unknown filter"),
            ("{{ A | json | url }}", 1, "more than one filter"),
            ("{{ 1A }}", 1, "does not name a secret"),
            ("{{ A B }}", 1, "does not name a secret"),
            ("{{ a.b }}", 1, "does not name a secret"),
            ("{{ \"x }}", 1, "not closed"),
            ("{{ \"a\" b }}", 1, "not one literal"),
            ("{{ {{ A }} }}", 1, "does not name"),
        ];
        for (src, line, what) in cases {
            let e = err(src, &s);
            assert!(
                e.starts_with(&format!("--template t.tmpl, line {line}: ")) && e.contains(what),
                "{src:?}: {e}"
            );
        }
    }

    #[test]
    fn unknown_names_and_unencodable_values_never_show_values() {
        let e = err("ok {{ A }}\n{{ NOPE }}", &[inj("A", b"hunter2")]);
        assert!(e.contains("line 2") && e.contains("NOPE"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        for (f, v, what) in [
            ("json", &b"hunter2\xff"[..], "not valid UTF-8"),
            ("yaml", b"hunter2\xc3", "not valid UTF-8"),
            ("xml", b"hunter2\x01", "control character"),
            ("xml", "hunter2\u{fffe}".as_bytes(), "U+FFFE"),
            ("shell", b"hunter2\0", "NUL"),
        ] {
            // A value inserted before the failing one must not leak either.
            let e = err(
                &format!("{{{{ A }}}}\n\n{{{{ V | {f} }}}}"),
                &[inj("A", b"hunter2"), inj("V", v)],
            );
            assert!(
                e.contains("line 3") && e.contains("/p/V") && e.contains(what),
                "{f}: {e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn filters_escape_for_their_format() {
        assert_eq!(
            one("json", b"a\"b\\c\n</x>\x01\x7f"),
            br#""a\"b\\c\n\u003C/x\u003E\u0001\u007F""#
        );
        assert_eq!(
            one("json", "\u{2028}é".as_bytes()),
            "\"\\u2028é\"".as_bytes()
        );
        assert_eq!(
            one(
                "yaml",
                "a\"\\\t\n\0\u{85}\u{2028}\u{feff}\u{7f}\u{1}é: #".as_bytes()
            ),
            "\"a\\\"\\\\\\t\\n\\0\\N\\L\\uFEFF\\x7F\\x01é: #\"".as_bytes()
        );
        assert_eq!(
            one("xml", b"<a b=\"c\" d='e'>&\t\n\r"),
            b"&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt;&amp;&#9;&#10;&#13;"
        );
        assert_eq!(
            one("url", b"a b/c@d:e%~-._\xff"),
            b"a%20b%2Fc%40d%3Ae%25~-._%FF"
        );
        assert_eq!(one("shell", b"it's $x"), b"'it'\\''s $x'");
        assert_eq!(one("shell", b"\xff"), b"'\xff'");
        for (v, b) in [
            (&b""[..], &b""[..]),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"\xff\xfe\xfd", b"//79"),
        ] {
            assert_eq!(one("base64", v), b);
        }
        assert_eq!(one("json", b""), b"\"\"");
        assert_eq!(one("yaml", b""), b"\"\"");
        assert_eq!(render("{{V}}", &[inj("V", b"\0\xff")]).unwrap(), b"\0\xff");
    }

    #[test]
    fn the_output_is_never_reallocated() {
        let worst = vec![b'\x01'; 10_000];
        for f in ["json", "yaml", "url", "shell", "base64"] {
            let t = Template::parse("t", format!("x{{{{ V | {f} }}}}y").into_bytes()).unwrap();
            let out = t.render(&[inj("V", &worst)]).unwrap();
            assert!(out.capacity() >= out.len());
        }
    }
}
