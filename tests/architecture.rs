//! The architecture, checked rather than remembered (ARCHITECTURE.md describes it).
//!
//! Every top-level module of `src/` sits in one layer of `LAYERS`, from the bottom up. A
//! module may use its own layer and the layers below it, never one above: every `crate::`
//! path (`use crate::{a, b::c}` groups included) and every `super::` path that climbs out of
//! its top-level module is an edge, and an edge that points up fails this test, as does a
//! cycle among top-level modules (possible only inside one layer), an item of the crate root
//! (`lib.rs`) used from below it, and a top-level module missing from the table. The scan
//! reads the source text itself (comments, strings and char literals skipped), so it needs
//! no tool beyond the compiler.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A new top-level module must be added here, to the lowest layer
/// whose modules are all it needs (and a layer of its own if it is above all of them).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaf types and helpers",
        &[
            "error",
            "secret",
            "log",
            "sort",
            "names",
            "tls",
            "crypto",
            "runtime",
            "duration",
            "fsread",
            "build_info",
        ],
    ),
    ("flags as typed", &["cli", "argv"]),
    ("configuration: plain validated data", &["config"]),
    ("AWS: SDK loading, retries, deadlines", &["aws"]),
    ("stores and reference resolution", &["store", "refs"]),
    (
        "injection and the process: names, quoting, files, users, execve",
        &["inject", "privs", "exec"],
    ),
    ("the start pipeline", &["start"]),
    ("supervision: exec --refresh", &["supervise"]),
    ("commands", &["cmd"]),
    ("daemon", &["daemon"]),
];

// ---------------------------------------------------------------------------------------
// Scanning

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
}

/// Tokens with their line numbers: identifiers and the punctuation this scan cares about;
/// comments, strings, char literals, lifetimes and numbers are dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += (c[i] == '\n') as usize;
                    i += 1;
                }
            }
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                line += (at(i) == '\n') as usize;
                i += 1;
            }
            i += 1;
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1; // a lifetime or label: its name is an identifier of no interest
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings: r"…", r#"…"#, br#"…"#.
            if (word == "r" || word == "br") && (at(i) == '"' || at(i) == '#') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    i += hashes + 1;
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                            i += 1 + hashes;
                            break;
                        }
                        line += (c[i] == '\n') as usize;
                        i += 1;
                    }
                    continue;
                }
            }
            if !word.starts_with(|d: char| d.is_ascii_digit()) {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Punct("::"), line));
            i += 2;
        } else {
            let p = match ch {
                '{' => "{",
                '}' => "}",
                ',' => ",",
                '*' => "*",
                ';' => ";",
                '$' => "$",
                _ => "",
            };
            if !p.is_empty() {
                out.push((Tok::Punct(p), line));
            }
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn punct(t: Option<&(Tok, usize)>, p: &str) -> bool {
    matches!(t, Some((Tok::Punct(q), _)) if *q == p)
}

/// The first names after a path prefix ending at `toks[i]` (just after its `::`): one name,
/// or the first name of each item of a `{…}` group, or `*`.
fn names_after(toks: &[(Tok, usize)], i: usize) -> Vec<String> {
    if let Some(n) = ident(toks.get(i)) {
        return vec![n.to_string()];
    }
    if punct(toks.get(i), "*") {
        return vec!["*".to_string()];
    }
    if !punct(toks.get(i), "{") {
        return Vec::new();
    }
    let (mut out, mut depth, mut item_start) = (Vec::new(), 0, true);
    for (t, _) in &toks[i..] {
        match t {
            Tok::Punct("{") => {
                depth += 1;
                item_start = depth == 1;
                continue;
            }
            Tok::Punct("}") => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(",") if depth == 1 => {
                item_start = true;
                continue;
            }
            Tok::Ident(n) if item_start && depth == 1 && n != "self" => out.push(n.clone()),
            Tok::Punct("*") if item_start && depth == 1 => out.push("*".to_string()),
            _ => {}
        }
        item_start = false;
    }
    out
}

/// Where a file's paths lead out of its top-level module: (line, name under the crate root).
/// `module` is the file's module path (`["store", "ssm"]` for src/store/ssm/mod.rs).
fn escapes(src: &str, module: &[String]) -> Vec<(usize, String)> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) deepen the path that `super` climbs.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here = toks[i].1;
        match &toks[i].0 {
            Tok::Punct("{") => {
                let is_mod = i >= 2
                    && ident(toks.get(i - 2)) == Some("mod")
                    && ident(toks.get(i - 1)).is_some();
                if is_mod {
                    inline.push(depth);
                }
                depth += 1;
            }
            Tok::Punct("}") => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "crate" && punct(toks.get(i + 1), "::") => {
                for n in names_after(&toks, i + 2) {
                    out.push((here, n));
                }
            }
            Tok::Ident(w) if w == "super" && !punct(toks.get(i.wrapping_sub(1)), "::") => {
                let mut ups = 0;
                let mut j = i;
                while ident(toks.get(j)) == Some("super") && punct(toks.get(j + 1), "::") {
                    ups += 1;
                    j += 2;
                }
                let level = module.len() + inline.len();
                if ups >= level {
                    // Climbed to the crate root (or past it, which rustc refuses anyway).
                    for n in names_after(&toks, j) {
                        out.push((here, n));
                    }
                }
                i = j.max(i + 1); // `pub(super)` climbs nothing
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The modules `lib.rs` declares.
fn declared(lib: &str) -> BTreeSet<String> {
    let toks = tokens(lib);
    let mut out = BTreeSet::new();
    for w in toks.windows(3) {
        if ident(Some(&w[0])) == Some("mod") && punct(Some(&w[2]), ";") {
            if let Some(n) = ident(Some(&w[1])) {
                out.insert(n.to_string());
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// src/a/b.rs → [a, b]; src/a/mod.rs → [a]; src/a.rs → [a].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" {
        parts.push(stem);
    }
    parts
}

struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// Every edge between two top-level modules (or from one to an item of the crate root,
/// `to` = "lib"), and the declared modules.
fn graph() -> (BTreeSet<String>, Vec<Edge>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules = declared(&lib);
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let (mut edges, mut problems) = (Vec::new(), Vec::new());
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_path_buf();
        if rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
            continue;
        }
        let module = module_of(&rel);
        let from = module[0].clone();
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, name) in escapes(&text, &module) {
            if name == from {
                continue;
            }
            let to = if modules.contains(&name) {
                name
            } else {
                problems.push(format!(
                    "src/{}:{line}: `{from}` uses `crate::{name}`, an item of the crate root \
                     (lib.rs), which sits above every module: move the item down to the \
                     layer of its users",
                    rel.display()
                ));
                "lib".to_string()
            };
            edges.push(Edge {
                from: from.clone(),
                to,
                file: rel.display().to_string(),
                line,
            });
        }
    }
    (modules, edges, problems)
}

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&m))
}

/// The cycles among top-level modules, each as a path `a → b → … → a`.
fn cycles(adj: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        m: &str,
        adj: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        if let Some(p) = stack.iter().position(|s| s == m) {
            let mut c = stack[p..].to_vec();
            c.push(m.to_string());
            out.push(c);
            return;
        }
        if done.contains(m) {
            return;
        }
        stack.push(m.to_string());
        for n in adj.get(m).into_iter().flatten() {
            visit(n, adj, stack, done, out);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let (mut out, mut done) = (Vec::new(), BTreeSet::new());
    for m in adj.keys() {
        visit(m, adj, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The checks

#[test]
fn every_path_points_down_and_no_module_cycle() {
    let (modules, edges, mut problems) = graph();
    for m in &modules {
        if layer_of(m).is_none() {
            problems.push(format!(
                "src/{m}: a top-level module missing from LAYERS in tests/architecture.rs: add \
                 it to the lowest layer whose modules are all it uses (see ARCHITECTURE.md)"
            ));
        }
    }
    for (_, ms) in LAYERS {
        for m in *ms {
            if !modules.contains(*m) {
                problems.push(format!(
                    "LAYERS in tests/architecture.rs names `{m}`, which lib.rs does not \
                     declare: remove it from the table"
                ));
            }
        }
    }
    let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &edges {
        adj.entry(e.from.clone()).or_default().insert(e.to.clone());
        let (Some(f), Some(t)) = (layer_of(&e.from), layer_of(&e.to)) else {
            continue;
        };
        if t > f {
            problems.push(format!(
                "src/{}:{}: `{}` (layer {f}, {}) uses `crate::{}` (layer {t}, {}): a module \
                 may use only its own layer and those below; move the code it needs down, or \
                 the caller up",
                e.file, e.line, e.from, LAYERS[f].0, e.to, LAYERS[t].0
            ));
        }
    }
    for c in cycles(&adj) {
        let at: Vec<String> = edges
            .iter()
            .filter(|e| c.windows(2).any(|w| w[0] == e.from && w[1] == e.to))
            .map(|e| format!("src/{}:{}", e.file, e.line))
            .collect();
        problems.push(format!(
            "a cycle among top-level modules: {} (at {})",
            c.join(" → "),
            at.join(", ")
        ));
    }
    for (m, to) in &adj {
        println!(
            "{m} → {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        problems.is_empty(),
        "the layering of src/ is broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scan_sees_groups_and_escaping_supers_and_skips_comments_and_strings() {
    let m = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let names = |src: &str, module: &[&str]| -> Vec<String> {
        escapes(src, &m(module))
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    };
    let src = r##"
        use crate::{a, b::{c, d}, self};
        use crate::e::f as g;
        pub(crate) fn x() -> crate::h::T { crate::i::j() }
        // use crate::not_me;
        /* crate::nor_me */
        const S: &str = "crate::nor_this";
        const R: &str = r#"crate::nor_raw "x" "#;
        fn l<'a>(c: char) -> &'a str { if c == '"' { "" } else { "" } }
        use crate::k;
    "##;
    assert_eq!(names(src, &["top"]), ["a", "b", "e", "h", "i", "k"]);
    // super from src/top/sub.rs stays in `top`; from a test module inside it too; two
    // levels from src/top/sub.rs reach the root.
    let src = "use super::x; mod tests { use super::*; use super::super::y; }
               use super::super::{z, w::v};";
    assert_eq!(names(src, &["top", "sub"]), ["z", "w"]);
    assert_eq!(names("use super::q;", &["top"]), ["q"]);
    assert_eq!(
        names("mod t { use super::*; }", &["top"]),
        Vec::<String>::new()
    );
    assert_eq!(names("pub(super) fn f() {} use crate::a;", &["top"]), ["a"]);
}
