//! The command line as argh is given it: `--flag=value` split in two, and every mistake
//! reported here, by flag name and argument position, never by value.
//!
//! argh's own messages quote what the user typed ("Unrecognized argument: --payload=…",
//! "Error parsing option '--payload' with value '…': duplicate values provided"), and a
//! value may be a secret. So the arguments are walked first with the flag table of
//! `cli/table.rs` (checked against argh's `ArgsInfo` derive in its tests): every token is known to be a flag, a flag's value or a positional
//! before argh runs, and anything argh would reject is rejected here, naming only flags.

use crate::cli::table::{Takes, COMMANDS, TOP};
use crate::error::{Error, Result};
use argh::Optionality;

/// What argh treats as a request for help (the `help_triggers` of every struct in cli.rs).
const HELP: [&str; 3] = ["-h", "--help", "help"];

/// The walked command line: what to give argh, and every `(flag, value)` pair seen (values
/// of repeatable flags included), in order.
#[derive(Debug, Default)]
pub struct Walked {
    pub args: Vec<String>,
    pub options: Vec<(String, String)>,
    /// The subcommand, when one was recognised.
    pub command: Option<String>,
    /// Every value and positional the user typed: what an error message must never show.
    pub values: Vec<String>,
}

/// Walk `args` (without argv[0]): the arguments for argh, or the first mistake. Messages
/// number arguments as the user typed them: `implied` says the first one (the mode) came
/// from the program's name, not the command line.
pub fn walk(args: &[String], implied: bool) -> Result<Walked> {
    let mut w = Walked::default();
    walk_into(args, &mut w, implied).map(|()| w)
}

/// As `walk`, but on a mistake also what was walked before it (to tell which format an
/// `env` that failed was asked for).
pub fn walk_partial(args: &[String]) -> Walked {
    let mut w = Walked::default();
    let _ = walk_into(args, &mut w, false);
    w
}

fn walk_into(args: &[String], w: &mut Walked, implied: bool) -> Result<()> {
    // The number the user sees for args[i].
    let number = |i: usize| if implied { i } else { i + 1 };
    let top = &TOP;
    let mut i = 0;
    // Top-level switches (--version, --help), then the subcommand.
    while i < args.len() {
        let a = &args[i];
        if HELP.contains(&a.as_str()) {
            // argh prints the help (or its own complaint about what follows).
            w.args.extend(args[i..].iter().cloned());
            return Ok(());
        }
        if a == "-V" {
            // --version's short form (argh knows it as such).
            w.args.push(a.clone());
            i += 1;
            continue;
        }
        if a.starts_with('-') && a != "-" {
            let (name, inline) = split_inline(a);
            match top.flags.iter().find(|f| f.0 == name) {
                Some(_) if inline.is_some() => return Err(takes_no_value(name)),
                Some(_) => w.args.push(a.clone()),
                None => {
                    let known: Vec<&str> = top.flags.iter().map(|f| f.0).collect();
                    return Err(unknown_flag(a, number(i), "ecs-secrets", &known));
                }
            }
            i += 1;
            continue;
        }
        break;
    }
    let Some(name) = args.get(i) else {
        return Ok(());
    };
    let Some(info) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(Error::usage(format!(
            "unknown command \"{}\": run `ecs-secrets --help` for the list",
            crate::names::printable(&shorten(name))
        )));
    };
    w.command = Some(name.clone());
    w.args.push(name.clone());
    i += 1;
    let cmd = format!("ecs-secrets {}", info.name);
    let mut positionals = 0usize;
    let mut seen: Vec<&str> = Vec::new();
    while i < args.len() {
        let a = &args[i];
        let pos = i;
        i += 1;
        if a == "--" {
            // Everything after is positional, for argh to place.
            w.values.extend(args[i..].iter().cloned());
            w.args.extend(args[pos..].iter().cloned());
            return Ok(());
        }
        if HELP.contains(&a.as_str()) {
            w.args.extend(args[pos..].iter().cloned());
            return Ok(());
        }
        if !a.starts_with('-') || a == "-" {
            w.values.push(a.clone());
            let Some(p) = info.positionals.get(positionals) else {
                return Err(Error::usage(format!(
                    "unexpected argument {}: `{cmd}` takes {}; quote a value that has spaces, \
                     and give every value after its flag",
                    number(pos),
                    match info.positionals.len() {
                        0 => "no positional arguments".to_string(),
                        1 => "one positional argument".to_string(),
                        n => format!("{n} positional arguments"),
                    }
                )));
            };
            if *p == Optionality::Greedy {
                // exec's CMD: the rest is the command's own, untouched.
                w.values.extend(args[pos + 1..].iter().cloned());
                w.args.extend(args[pos..].iter().cloned());
                return Ok(());
            }
            if *p != Optionality::Repeating {
                positionals += 1;
            }
            w.args.push(a.clone());
            continue;
        }
        let (name, inline) = split_inline(a);
        let Some(&(long, takes)) = info.flags.iter().find(|f| f.0 == name) else {
            let known: Vec<&str> = info.flags.iter().map(|f| f.0).collect();
            return Err(unknown_flag(a, number(pos), &cmd, &known));
        };
        match takes {
            Takes::Nothing => {
                if inline.is_some() {
                    return Err(takes_no_value(name));
                }
                w.args.push(name.to_string());
            }
            Takes::Value | Takes::Values => {
                let value = match inline {
                    Some(v) => v.to_string(),
                    None => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            v.clone()
                        }
                        None => {
                            return Err(Error::usage(format!(
                                "{name} needs a value: {name} VALUE or {name}=VALUE"
                            )))
                        }
                    },
                };
                // Recorded before the duplicate check: a caller reading `options` after
                // the error sees both.
                w.values.push(value.clone());
                w.options.push((name.to_string(), value.clone()));
                if takes != Takes::Values {
                    if seen.contains(&long) {
                        return Err(Error::usage(format!(
                            "{name} was given more than once: give it once"
                        )));
                    }
                    seen.push(long);
                }
                w.args.push(name.to_string());
                w.args.push(value);
            }
        }
    }
    Ok(())
}

/// `--flag=value` → (`--flag`, Some(`value`)); anything else → (itself, None).
fn split_inline(a: &str) -> (&str, Option<&str>) {
    match a.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v)),
        _ => (a, None),
    }
}

fn takes_no_value(name: &str) -> Error {
    Error::usage(format!(
        "{name} is a switch and takes no value: give {name} alone"
    ))
}

/// Names the flag only when it is a near miss of a real one (a typo): anything else may be
/// a stray value, and is named by its position (`number`, as the user counts).
fn unknown_flag(a: &str, number: usize, cmd: &str, known: &[&str]) -> Error {
    let (name, _) = split_inline(a);
    let near = known
        .iter()
        .filter(|k| name.len() <= 40 && edit_distance(name, k) <= 2)
        .min_by_key(|k| edit_distance(name, k));
    let shown = match near {
        Some(k) => format!("unknown flag {name} (did you mean {k}?)"),
        None => format!("argument {number} is not a flag of `{cmd}`"),
    };
    Error::usage(format!("{shown}: run `{cmd} --help` for the flags"))
}

/// Levenshtein distance (short strings only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// argh's message for what the walk let through (a required flag missing, in practice),
/// unless it quotes anything the user typed as a value.
pub fn argh_message(output: &str, w: &Walked) -> String {
    let quoted = w
        .values
        .iter()
        .any(|v| !v.is_empty() && output.contains(v.as_str()));
    if quoted {
        "invalid command line".to_string()
    } else {
        output.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn walk_t(a: &[String]) -> Result<Walked> {
        walk(a, false)
    }

    fn err(a: &[&str]) -> String {
        walk_t(&args(a)).unwrap_err().to_string()
    }

    #[test]
    fn equals_form_is_split_for_options_only() {
        let w = walk_t(&args(&[
            "create",
            "--name=DB",
            "--payload=a=b",
            "--timeout",
            "3",
        ]))
        .unwrap();
        assert_eq!(
            w.args,
            [
                "create",
                "--name",
                "DB",
                "--payload",
                "a=b",
                "--timeout",
                "3"
            ]
        );
        assert_eq!(w.options[1], ("--payload".to_string(), "a=b".to_string()));
        // A value that looks like a flag is still the value.
        let w = walk_t(&args(&["create", "--payload", "--name=x", "--name", "N"])).unwrap();
        assert_eq!(w.args[2], "--name=x");
        // exec's command is never rewritten.
        let w = walk_t(&args(&["exec", "--path=/a/b", "ls", "--color=auto", "x"])).unwrap();
        assert_eq!(
            w.args,
            ["exec", "--path", "/a/b", "ls", "--color=auto", "x"]
        );
    }

    #[test]
    fn errors_never_show_values() {
        for bad in [
            vec![
                "create",
                "--name",
                "N",
                "--payload-stdin=SuperSecretValue123",
            ],
            vec!["create", "--nmae=SuperSecretValue123"],
            vec![
                "create",
                "--payload",
                "SuperSecretValue123",
                "--payload",
                "x",
            ],
            vec!["create", "--payload=SuperSecretValue123", "--payload=x"],
            vec![
                "create",
                "--name",
                "N",
                "--payload",
                "Super",
                "SecretValue123",
            ],
            vec!["create", "--name", "N", "-SuperSecretValue123"],
            vec!["create", "--name", "N", "--SuperSecretValue123"],
            vec!["--SuperSecretValue123=1"],
        ] {
            let e = err(&bad);
            assert!(
                !e.contains("Secret") && !e.contains("Super"),
                "{bad:?}: {e}"
            );
        }
        assert!(err(&["create", "--payload"]).contains("--payload needs a value"));
        assert!(err(&["create", "--payload=a", "--payload", "b"]).contains("more than once"));
        assert!(err(&["env", "--fromat=json"])
            .contains("unknown flag --fromat (did you mean --format?)"));
        assert!(err(&["env", "--zzzzzz"]).contains("argument 2 is not a flag"));
        assert!(err(&["env", "--debug=1"]).contains("takes no value"));
        assert!(err(&["bogus"]).contains("unknown command \"bogus\""));
        // Repeatable flags repeat.
        assert!(walk_t(&args(&["env", "--path=/a/b", "--path", "/c/d"])).is_ok());
    }

    #[test]
    fn help_and_positionals_pass_through() {
        let w = walk_t(&args(&["create", "--help"])).unwrap();
        assert_eq!(w.args, ["create", "--help"]);
        let w = walk_t(&args(&["install-links", "/bin"])).unwrap();
        assert_eq!(w.args, ["install-links", "/bin"]);
        assert!(err(&["install-links", "/bin", "/x"]).contains("unexpected argument 3"));
        // Under the ecs-secrets-env name, `env` is not one of the user's arguments.
        let e = walk(&args(&["env", "--path", "/a/b", "stray"]), true).unwrap_err();
        assert!(e.to_string().contains("unexpected argument 3"), "{e}");
        let w = walk_t(&args(&["--version"])).unwrap();
        assert_eq!(w.args, ["--version"]);
    }

    #[test]
    fn argh_messages_that_quote_a_value_are_replaced() {
        let w = walk_t(&args(&["create", "--payload", "hunter2"])).unwrap();
        assert_eq!(argh_message("bad 'hunter2'\n", &w), "invalid command line");
        assert_eq!(
            argh_message("Required options not provided:\n    --name\n", &w),
            "Required options not provided:\n    --name"
        );
    }
}
