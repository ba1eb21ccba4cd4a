//! The flag table `argv.rs` walks the command line with: for every command, its flags
//! (argh's implicit `--help` first, then the struct's fields in order) and positionals.
//!
//! Written out by hand instead of derived (`argh::ArgsInfo` generates descriptions and
//! builders for every flag, ~20 KB of binary for four facts per flag). A unit test below
//! checks it against the derive, so a flag added to a struct in `cli.rs` and not here fails
//! `cargo test --lib`.

use argh::Optionality;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// A switch: no value.
    Nothing,
    /// An option given at most once.
    Value,
    /// An option that may repeat.
    Values,
}

/// One command (or the top level) as the walk sees it.
pub struct Cmd {
    pub name: &'static str,
    pub flags: &'static [(&'static str, Takes)],
    pub positionals: &'static [Optionality],
}

use Takes::{Nothing, Value, Values};

/// `--help`, then the options every store-using command shares (the `command!` macro).
macro_rules! shared {
    ($($own:expr),* $(,)?) => {
        &[
            ("--help", Nothing),
            ("--backend", Value),
            ("--path", Values),
            ("--recursive", Nothing),
            ("--table", Value),
            ("--kms-key", Value),
            ("--timeout", Value),
            ("--debug", Nothing),
            $($own),*
        ]
    };
}

pub static TOP: Cmd = Cmd {
    name: "ecs-secrets",
    flags: &[("--help", Nothing), ("--version", Nothing)],
    positionals: &[],
};

pub static COMMANDS: &[Cmd] = &[
    Cmd {
        name: "exec",
        flags: shared![
            ("--files", Value),
            ("--file-env", Nothing),
            ("--no-env", Nothing),
            ("--allow-disk", Nothing),
            ("--no-override", Nothing),
            ("--user", Value),
            ("--require", Values),
            ("--allow-name", Values),
            ("--json-keys", Nothing),
            ("--json-keys-case", Value),
            ("--allow-empty", Nothing),
            ("--resolve-refs", Nothing),
            ("--refresh", Value),
            ("--splay", Value),
            ("--on-change", Value),
            ("--grace", Value),
            ("--template", Values),
        ],
        positionals: &[Optionality::Greedy],
    },
    Cmd {
        name: "env",
        flags: shared![
            ("--format", Value),
            ("--allow-name", Values),
            ("--require", Values),
            ("--json-keys", Nothing),
            ("--json-keys-case", Value),
            ("--allow-empty", Nothing),
            ("--resolve-refs", Nothing),
        ],
        positionals: &[],
    },
    Cmd {
        name: "create",
        flags: shared![
            ("--name", Value),
            ("--payload", Value),
            ("--payload-location", Value),
            ("--payload-stdin", Nothing),
        ],
        positionals: &[],
    },
    Cmd {
        name: "rotate",
        flags: shared![
            ("--name", Value),
            ("--payload", Value),
            ("--payload-location", Value),
            ("--payload-stdin", Nothing),
            ("--generate", Value),
        ],
        positionals: &[],
    },
    Cmd {
        name: "revoke",
        flags: shared![("--name", Value), ("--serial", Value)],
        positionals: &[],
    },
    Cmd {
        name: "fetch",
        flags: shared![("--name", Value), ("--serial", Value)],
        positionals: &[],
    },
    Cmd {
        name: "list",
        flags: shared![("--all-versions", Nothing)],
        positionals: &[],
    },
    Cmd {
        name: "rotate-key",
        flags: shared![],
        positionals: &[],
    },
    Cmd {
        name: "import",
        flags: shared![
            ("--from-ecs-secrets-table", Value),
            ("--from-credstash-table", Value),
            ("--context", Values),
            ("--from-ssm-path", Value),
        ],
        positionals: &[],
    },
    Cmd {
        name: "setup",
        flags: shared![
            ("--fetch-role", Values),
            ("--create-principal", Values),
            ("--daemon-role", Values),
            ("--cloudformation", Nothing),
            ("--dry-run", Nothing),
            ("--policy-dir", Value),
        ],
        positionals: &[],
    },
    Cmd {
        name: "daemon",
        flags: shared![
            ("--listen", Value),
            ("--token-file", Value),
            ("--read-only", Nothing),
            ("--cache-ttl", Value),
            ("--allow-unauthenticated", Nothing),
        ],
        positionals: &[],
    },
    Cmd {
        name: "sync",
        flags: shared![
            ("--files", Value),
            ("--allow-disk", Nothing),
            ("--user", Value),
            ("--require", Values),
            ("--allow-name", Values),
            ("--json-keys", Nothing),
            ("--json-keys-case", Value),
            ("--allow-empty", Nothing),
            ("--resolve-refs", Nothing),
            ("--refresh", Value),
            ("--template", Values),
            ("--splay", Value),
        ],
        positionals: &[],
    },
    Cmd {
        name: "install-links",
        flags: &[("--help", Nothing)],
        positionals: &[Optionality::Required],
    },
    Cmd {
        name: "completions",
        flags: &[("--help", Nothing)],
        positionals: &[Optionality::Required],
    },
    Cmd {
        name: "man",
        flags: &[("--help", Nothing)],
        positionals: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfoKind};

    fn same(table: &Cmd, derived: &CommandInfoWithArgs) {
        let flags: Vec<(&str, Takes)> = derived
            .flags
            .iter()
            .map(|f| {
                let takes = match (&f.kind, &f.optionality) {
                    (FlagInfoKind::Switch, _) => Nothing,
                    (FlagInfoKind::Option { .. }, Optionality::Repeating) => Values,
                    (FlagInfoKind::Option { .. }, _) => Value,
                };
                (f.long, takes)
            })
            .collect();
        assert_eq!(table.flags, flags.as_slice(), "flags of {}", table.name);
        let ours: Vec<&Optionality> = table.positionals.iter().collect();
        let positionals: Vec<&Optionality> =
            derived.positionals.iter().map(|p| &p.optionality).collect();
        assert_eq!(ours, positionals, "positionals of {}", table.name);
    }

    #[test]
    fn the_table_is_what_argh_derives() {
        let top = crate::cli::TopLevel::get_args_info();
        same(&TOP, &top);
        let names: Vec<&str> = top.commands.iter().map(|c| c.name).collect();
        let ours: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        assert_eq!(ours, names);
        for (cmd, sub) in COMMANDS.iter().zip(&top.commands) {
            assert_eq!(cmd.name, sub.command.name);
            same(cmd, &sub.command);
        }
    }
}
