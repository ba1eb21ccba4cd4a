//! The documentation is tested like the code: every relative link resolves (files and
//! anchors), every flag the parser knows is in the commands reference and every flag there
//! exists, and the README's try-out runs as written against a local moto.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files users read: README, the top-level notes, docs/, and the READMEs of
/// examples/ and docker/.
fn doc_files() -> Vec<PathBuf> {
    let r = root();
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|f| r.join(f))
        .chain(
            ["examples/README.md", "docker/README.md"]
                .iter()
                .map(|f| r.join(f)),
        )
        .collect();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(r.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    for f in &files {
        assert!(f.is_file(), "{} is missing", f.display());
    }
    files
}

/// The lines of a Markdown file outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces
/// become `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            (1..=6)
                .contains(&hashes)
                .then(|| l[hashes..].strip_prefix(' '))
                .flatten()
                .map(slug)
        })
        .collect()
}

/// Every `](target)` of the prose (inline code spans removed first).
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let mut clean = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                clean.push(c);
            }
        }
        let mut rest = clean.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (target, anchor) = match link.split_once('#') {
                Some((t, a)) => (t, Some(a)),
                None => (link.as_str(), None),
            };
            let path = if target.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(target)
            };
            if !path.exists() {
                broken.push(format!("{}: {link} (no such file)", rel(&file)));
                continue;
            }
            if let Some(anchor) = anchor {
                let known = if path.is_file() && path.extension().is_some_and(|e| e == "md") {
                    anchors(&std::fs::read_to_string(&path).unwrap())
                } else {
                    BTreeSet::new()
                };
                if !known.contains(anchor) {
                    broken.push(format!(
                        "{}: {link} (no heading with that anchor)",
                        rel(&file)
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn every_page_in_docs_is_reachable_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> = links(&readme)
        .into_iter()
        .filter_map(|l| l.split('#').next().map(str::to_owned))
        .collect();
    for page in doc_files()
        .iter()
        .filter(|p| p.parent().unwrap().ends_with("docs"))
    {
        let name = format!("docs/{}", page.file_name().unwrap().to_str().unwrap());
        assert!(linked.contains(&name), "README.md does not link to {name}");
    }
}

#[test]
fn the_readme_stays_short() {
    let n = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        n <= 300,
        "README.md has {n} lines: keep it <= 300 and move reference to docs/"
    );
}

/// The commands whose flags the reference must list.
const COMMANDS: &[&str] = &[
    "exec",
    "env",
    "create",
    "rotate",
    "revoke",
    "fetch",
    "list",
    "rotate-key",
    "import",
    "setup",
    "sync",
    "daemon",
    "install-links",
];

/// `--flag` words in a text: two dashes, a lower-case letter, then letters, digits, dashes.
fn flag_words(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + 2 < b.len() {
        let starts = b[i] == b'-'
            && b[i + 1] == b'-'
            && (i == 0 || !(b[i - 1] == b'-' || b[i - 1].is_ascii_alphanumeric()));
        if starts && b[i + 2].is_ascii_lowercase() {
            let mut j = i + 2;
            while j < b.len()
                && (b[j].is_ascii_lowercase() || b[j].is_ascii_digit() || b[j] == b'-')
            {
                j += 1;
            }
            out.insert(
                String::from_utf8_lossy(&b[i..j])
                    .trim_end_matches('-')
                    .to_owned(),
            );
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The flags each command's `--help` lists (the parser's own table).
fn parser_flags() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for cmd in COMMANDS.iter().map(|c| vec![*c]).chain([vec![]]) {
        let out = run(Command::new(bin()).args(&cmd).arg("--help"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{cmd:?} --help: {}",
            describe(&out)
        );
        let help = String::from_utf8(out.stdout).unwrap();
        // Option lines: `  --flag  description` or `  -h, --help, help  description`.
        for line in help.lines().filter(|l| l.starts_with("  -")) {
            let names = line.trim_start().split("  ").next().unwrap();
            all.extend(
                names
                    .split(", ")
                    .filter(|n| n.starts_with("--"))
                    .map(str::to_owned),
            );
        }
    }
    all
}

#[test]
fn the_reference_lists_every_flag_and_only_real_ones() {
    let reference = std::fs::read_to_string(root().join("docs/commands.md")).unwrap();
    let documented = flag_words(&reference);
    let known = parser_flags();
    assert!(
        known.contains("--path") && known.contains("--refresh"),
        "help parsed: {known:?}"
    );
    let missing: Vec<_> = known.iter().filter(|f| !documented.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "docs/commands.md does not document {missing:?}"
    );
    // Words that look like flags but are not ours: a mistake quoted as an example, the
    // placeholder of the syntax, and the AWS CLI's own flags in commands shown for it.
    let examples = [
        "--paylaod",
        "--flag",
        "--policy-document",
        "--role-name",
        "--policy-name",
        "--cli-input-json",
    ];
    let unknown: Vec<_> = documented
        .iter()
        .filter(|f| !known.contains(*f) && !examples.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/commands.md documents flags the parser does not know: {unknown:?}"
    );
}

/// The fenced block after `<!-- try-out` in the README.
fn try_out_block() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = readme
        .split_once("<!-- try-out")
        .expect("README.md has a <!-- try-out --> block")
        .1;
    let start = after
        .find("```sh\n")
        .expect("a ```sh block follows the marker")
        + 6;
    let end = after[start..].find("```").unwrap() + start;
    after[start..end].to_owned()
}

#[test]
fn the_readme_try_out_runs_as_written() {
    let block = try_out_block();
    assert!(
        block.lines().count() <= 5,
        "the try-out is five commands:\n{block}"
    );
    for tool in ["moto_server", "curl", "pip"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .unwrap()
                .success(),
            "{tool} is not installed: run scripts/deps.sh (moto, pip) and apt-get install curl"
        );
    }
    let port = "5999";
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 5999)).is_err(),
        "something already listens on 127.0.0.1:{port}, which the README's try-out uses"
    );
    // `ecs-secrets` on PATH, as the README assumes; HOME an empty directory.
    let dir = TempDir::new("try-out");
    let path = format!("{}:{}", bin_dir(), std::env::var("PATH").unwrap());
    let mut child = Command::new("bash")
        .args(["-eo", "pipefail", "-c", &block])
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // moto was started in the background by the block, in the block's process group: stop
    // everything the block started (and the block itself if it hung).
    unsafe { libc_kill(-pgid, 9) };
    let status = status.unwrap_or_else(|| child.wait().unwrap());
    let out = std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout.contains("the app got a 6-character password"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout.contains("a mistyped path does not start the app"),
        "{}",
        describe(&out)
    );
    assert!(!stdout.contains("never printed"), "{}", describe(&out));
    assert!(!stdout.contains("s3cr3t") && !String::from_utf8_lossy(&out.stderr).contains("s3cr3t"));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
