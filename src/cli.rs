//! The command line, as close to what the user typed as possible (argh structs only).
//! Validation and environment variables are `config.rs`'s job.

use argh::FromArgs;

pub mod generate;
pub mod table;

/// ecs-secrets: secrets from SSM Parameter Store, Secrets Manager or DynamoDB+KMS into
/// containers. Run as ecs-secrets-exec it is `ecs-secrets exec`, as ecs-secrets-env
/// `ecs-secrets env` (see install-links).
#[derive(FromArgs, Debug)]
#[cfg_attr(test, derive(argh::ArgsInfo))]
#[argh(
    help_triggers("-h", "--help", "help"),
    example = "ENTRYPOINT [\"ecs-secrets-exec\", \"--\", \"/run.sh\"]   (in a Dockerfile; ECS_SECRETS_PATH=/prod/app)",
    example = "ecs-secrets exec --path /prod/app -- /app/server",
    example = "vars=$(ecs-secrets env --path /prod/app) || exit 1; eval \"$vars\"",
    example = "printf %s \"$PW\" | ecs-secrets create --path /prod/app --name DB_PASSWORD --payload-stdin",
    example = "ecs-secrets exec --help",
    note = "Every flag is also read from its ECS_SECRETS_* variable (named in each command's help); AWS settings come from the standard AWS_* variables and files. Documentation: docs/ in the source tree, `ecs-secrets man`.",
    error_code(0, "success"),
    error_code(1, "the operation failed (AWS, network, deadline, data)"),
    error_code(2, "usage or configuration error"),
    error_code(126, "exec: CMD cannot be executed"),
    error_code(127, "exec: CMD not found")
)]
pub struct TopLevel {
    /// print the version (with commit and target) and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[cfg_attr(test, derive(argh::ArgsInfo))]
#[argh(subcommand)]
pub enum Command {
    Exec(ExecArgs),
    Env(EnvArgs),
    Create(CreateArgs),
    Rotate(RotateArgs),
    Revoke(RevokeArgs),
    Fetch(FetchArgs),
    List(ListArgs),
    RotateKey(RotateKeyArgs),
    Import(ImportArgs),
    Setup(SetupArgs),
    Daemon(DaemonArgs),
    Sync(SyncArgs),
    InstallLinks(InstallLinksArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// The options every store-using command shares (contract §2), as typed.
#[derive(Debug, Default, Clone)]
pub struct SharedArgs {
    pub backend: Option<String>,
    pub path: Vec<String>,
    pub recursive: bool,
    pub table: Option<String>,
    pub kms_key: Option<String>,
    pub timeout: Option<String>,
    pub debug: bool,
}

/// Gives every command access to its shared options.
pub trait HasShared {
    fn shared(&self) -> SharedArgs;
}

/// Declares a subcommand struct with the shared options prepended (argh has no flatten).
macro_rules! command {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        #[derive(FromArgs, Debug)]
        #[cfg_attr(test, derive(argh::ArgsInfo))]
        #[argh(help_triggers("-h", "--help", "help"))]
        $(#[$meta])*
        pub struct $name {
            /// where secrets are stored: ssm, dynamodb or secretsmanager [env ECS_SECRETS_BACKEND;
            /// default ssm]
            #[argh(option)]
            pub backend: Option<String>,
            /// the scope, e.g. /prod/grafana; repeatable for exec, env and list (later wins)
            /// [env ECS_SECRETS_PATH, comma-separated, else AWS_ENV_PATH]
            #[argh(option)]
            pub path: Vec<String>,
            /// ssm, secretsmanager: include nested paths; env names are the relative path with / as _
            /// [env ECS_SECRETS_RECURSIVE=1]
            #[argh(switch)]
            pub recursive: bool,
            /// dynamodb table [env ECS_SECRETS_TABLE; default ecs-secrets]
            #[argh(option)]
            pub table: Option<String>,
            /// KMS key id, ARN or alias for writes [env ECS_SECRETS_KMS_KEY; default
            /// alias/ecs-secrets for dynamodb, SSM's default key for ssm]
            #[argh(option)]
            pub kms_key: Option<String>,
            /// overall deadline for AWS requests, retries included: seconds or a duration
            /// such as 90s, 2m, 1m30s [env ECS_SECRETS_TIMEOUT; default 30]
            #[argh(option)]
            pub timeout: Option<String>,
            /// request-level diagnostics on stderr, never payloads [env ECS_SECRETS_DEBUG=1]
            #[argh(switch)]
            pub debug: bool,
            $($body)*
        }

        impl HasShared for $name {
            fn shared(&self) -> SharedArgs {
                SharedArgs {
                    backend: self.backend.clone(),
                    path: self.path.clone(),
                    recursive: self.recursive,
                    table: self.table.clone(),
                    kms_key: self.kms_key.clone(),
                    timeout: self.timeout.clone(),
                    debug: self.debug,
                }
            }
        }
    };
}

command! {
    /// fetch the secrets of the path(s), put them in the environment (and files), then
    /// become CMD (execve: same PID, signals go straight to it); with --refresh, stay its
    /// parent and keep the secrets current
    #[argh(subcommand, name = "exec")]
    #[argh(example = "ecs-secrets exec --path /prod/app -- /app/server", example = "ecs-secrets exec --path /prod/db --files /run/secrets --file-env --no-env --user 999:999 -- docker-entrypoint.sh postgres", example = "ecs-secrets exec --path /prod/web --template /etc/nginx/auth.tmpl:/run/secrets/auth --refresh 5m --on-change signal:SIGHUP -- nginx -g \"daemon off;\"", example = "DB=arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db ecs-secrets exec --resolve-refs -- /app/server")]
    pub struct ExecArgs {
        /// also write each secret to DIR/<NAME> (mode 0400; DIR must be tmpfs or ramfs)
        #[argh(option)]
        pub files: Option<String>,
        /// with --files: also set <NAME>_FILE=DIR/<NAME>
        #[argh(switch)]
        pub file_env: bool,
        /// put no secret values in the environment (use with --files)
        #[argh(switch)]
        pub no_env: bool,
        /// with --files: allow a directory that is not on tmpfs or ramfs
        #[argh(switch)]
        pub allow_disk: bool,
        /// keep an inherited variable when a secret has the same name
        #[argh(switch)]
        pub no_override: bool,
        /// drop privileges to USER[:GROUP] (names or numbers) after writing files
        #[argh(option)]
        pub user: Option<String>,
        /// fail unless a secret with this env name was fetched (repeatable)
        #[argh(option)]
        pub require: Vec<String>,
        /// allow a secret to set this otherwise refused name, e.g. PATH or LD_PRELOAD (repeatable)
        #[argh(option)]
        pub allow_name: Vec<String>,
        /// JSON-object values become one variable per leaf, <NAME>_<KEY>
        /// [env ECS_SECRETS_JSON_KEYS=1]
        #[argh(switch)]
        pub json_keys: bool,
        /// with --json-keys: keep (default) or upper, which upper-cases the key part
        /// (DB_USERNAME) [env ECS_SECRETS_JSON_KEYS_CASE]
        #[argh(option)]
        pub json_keys_case: Option<String>,
        /// a path with no secret is a warning, not an error
        /// [env ECS_SECRETS_ALLOW_EMPTY=1]
        #[argh(switch)]
        pub allow_empty: bool,
        /// replace every inherited variable whose whole value is an SSM or Secrets Manager
        /// reference (ECS valueFrom, ssm:/NAME, secretsmanager:NAME) by its value
        /// [env ECS_SECRETS_RESOLVE_REFS=1]
        #[argh(switch)]
        pub resolve_refs: bool,
        /// stay CMD's parent and fetch again at this interval, e.g. 300 or 5m (see --on-change)
        #[argh(option)]
        pub refresh: Option<String>,
        /// with --refresh: add a random 0 to this duration to each interval [default a tenth
        /// of --refresh]
        #[argh(option)]
        pub splay: Option<String>,
        /// with --refresh, when values changed: restart (default), signal:NAME, exit, or
        /// none (files only)
        #[argh(option)]
        pub on_change: Option<String>,
        /// with --refresh: time between SIGTERM and SIGKILL when stopping CMD [default 10s]
        #[argh(option)]
        pub grace: Option<String>,
        /// render the file SRC into DEST ({{ NAME }}, {{ NAME | json }}…; written like
        /// --files) (repeatable) [env ECS_SECRETS_TEMPLATES=SRC:DEST,…]
        #[argh(option)]
        pub template: Vec<String>,
        /// the command to run, after --
        #[argh(positional, greedy)]
        pub cmd: Vec<String>,
    }
}

command! {
    /// print the secrets of the path(s) for eval (shell), docker compose (dotenv) or json
    #[argh(subcommand, name = "env")]
    #[argh(example = "vars=$(ecs-secrets env --path /prod/app) || exit 1; eval \"$vars\"", example = "ecs-secrets env --path /prod/app --format dotenv > /run/secrets/app.env")]
    pub struct EnvArgs {
        /// output format: shell (default), dotenv or json
        #[argh(option)]
        pub format: Option<String>,
        /// allow a secret to set this otherwise refused name (repeatable)
        #[argh(option)]
        pub allow_name: Vec<String>,
        /// fail unless a secret with this env name was fetched (repeatable)
        #[argh(option)]
        pub require: Vec<String>,
        /// JSON-object values become one variable per leaf, <NAME>_<KEY>
        /// [env ECS_SECRETS_JSON_KEYS=1]
        #[argh(switch)]
        pub json_keys: bool,
        /// with --json-keys: keep (default) or upper, which upper-cases the key part
        /// (DB_USERNAME) [env ECS_SECRETS_JSON_KEYS_CASE]
        #[argh(option)]
        pub json_keys_case: Option<String>,
        /// a path with no secret is a warning, not an error
        /// [env ECS_SECRETS_ALLOW_EMPTY=1]
        #[argh(switch)]
        pub allow_empty: bool,
        /// replace every inherited variable whose whole value is an SSM or Secrets Manager
        /// reference (ECS valueFrom, ssm:/NAME, secretsmanager:NAME) by its value
        /// [env ECS_SECRETS_RESOLVE_REFS=1]
        #[argh(switch)]
        pub resolve_refs: bool,
    }
}

command! {
    /// store a new version of a secret
    #[argh(subcommand, name = "create")]
    #[argh(example = "printf %s \"$PW\" | ecs-secrets create --path /prod/app --name DB_PASSWORD --payload-stdin", example = "ecs-secrets create --path /prod/app --name TLS_KEY --payload-location key.pem")]
    pub struct CreateArgs {
        /// the secret's name, e.g. DB_PASSWORD
        #[argh(option)]
        pub name: String,
        /// the value (visible in argv and shell history: prefer the other two)
        #[argh(option)]
        pub payload: Option<String>,
        /// read the value from this file
        #[argh(option)]
        pub payload_location: Option<String>,
        /// read the value from standard input
        #[argh(switch)]
        pub payload_stdin: bool,
    }
}

command! {
    /// store a new version, then revoke every older active version
    #[argh(subcommand, name = "rotate")]
    #[argh(example = "ecs-secrets rotate --path /prod/app --name API_TOKEN --generate 32")]
    pub struct RotateArgs {
        /// the secret's name
        #[argh(option)]
        pub name: String,
        /// the value (visible in argv and shell history: prefer the others)
        #[argh(option)]
        pub payload: Option<String>,
        /// read the value from this file
        #[argh(option)]
        pub payload_location: Option<String>,
        /// read the value from standard input
        #[argh(switch)]
        pub payload_stdin: bool,
        /// generate a random printable value of this many characters
        #[argh(option)]
        pub generate: Option<String>,
    }
}

command! {
    /// revoke one version: it is never handed out again
    #[argh(subcommand, name = "revoke")]
    #[argh(example = "ecs-secrets revoke --path /prod/app --name DB_PASSWORD --serial 3")]
    pub struct RevokeArgs {
        /// the secret's name
        #[argh(option)]
        pub name: String,
        /// the serial to revoke
        #[argh(option)]
        pub serial: String,
    }
}

command! {
    /// print the newest active version of a secret, or the given serial
    #[argh(subcommand, name = "fetch")]
    #[argh(example = "ecs-secrets fetch --path /prod/app --name DB_PASSWORD", example = "ecs-secrets fetch --path /prod/app --name DB_PASSWORD --serial 2")]
    pub struct FetchArgs {
        /// the secret's name
        #[argh(option)]
        pub name: String,
        /// a specific serial
        #[argh(option)]
        pub serial: Option<String>,
    }
}

command! {
    /// list the names under the path(s) with serials; never payloads
    #[argh(subcommand, name = "list")]
    #[argh(example = "ecs-secrets list --path /prod/app --all-versions")]
    pub struct ListArgs {
        /// every version, revoked ones included, not just the newest active
        #[argh(switch)]
        pub all_versions: bool,
    }
}

command! {
    /// dynamodb: start a new data-key generation for the path and re-seal active versions
    #[argh(subcommand, name = "rotate-key")]
    #[argh(example = "ecs-secrets rotate-key --backend dynamodb --path /prod/app")]
    pub struct RotateKeyArgs {}
}

command! {
    /// dynamodb: copy secrets in from an original AWS Labs ecs-secrets table, a credstash
    /// table or an SSM Parameter Store path (exactly one source)
    #[argh(subcommand, name = "import")]
    #[argh(example = "ecs-secrets import --backend dynamodb --path /prod/app --from-credstash-table credential-store", example = "ecs-secrets import --backend dynamodb --path /prod/app --from-ssm-path /prod/app")]
    pub struct ImportArgs {
        /// the original table, e.g. ECS-Secrets-myapp-Secrets: its active versions
        #[argh(option)]
        pub from_ecs_secrets_table: Option<String>,
        /// a credstash table, e.g. credential-store: every version of every credential
        #[argh(option)]
        pub from_credstash_table: Option<String>,
        /// with --from-credstash-table: the KMS encryption context k=v the credentials were
        /// stored with (repeat for several pairs)
        #[argh(option)]
        pub context: Vec<String>,
        /// an SSM Parameter Store path, e.g. /prod/app: the newest active version of each
        /// secret under it
        #[argh(option)]
        pub from_ssm_path: Option<String>,
    }
}

command! {
    /// create the KMS key (and dynamodb table) the path needs, idempotently, and print
    /// least-privilege IAM policies for its readers and writers
    #[argh(subcommand, name = "setup")]
    #[argh(
        note = "Creates, when missing: the KMS key --kms-key (default alias/ecs-secrets) with its alias and automatic rotation, for every backend (ssm and secretsmanager too, so that the policies can confine decryption to the path); for dynamodb also the table (PAY_PER_REQUEST). --dry-run creates nothing: it says what would be created and prints the policies."
    )]
    #[argh(example = "ecs-secrets setup --path /prod/app --fetch-role arn:aws:iam::123456789012:role/app-task --dry-run", example = "ecs-secrets setup --path /prod/app --fetch-role arn:aws:iam::123456789012:role/app-task --create-principal arn:aws:iam::123456789012:role/deployer --policy-dir policies", example = "ecs-secrets setup --backend dynamodb --path /prod/app --fetch-role arn:aws:iam::123456789012:role/app-task --cloudformation > secrets.yaml")]
    pub struct SetupArgs {
        /// a role that reads the path's secrets (repeatable)
        #[argh(option)]
        pub fetch_role: Vec<String>,
        /// a principal that writes the path's secrets (repeatable)
        #[argh(option)]
        pub create_principal: Vec<String>,
        /// a role that runs the `daemon` sidecar of the path (repeatable)
        #[argh(option)]
        pub daemon_role: Vec<String>,
        /// print a CloudFormation template instead of calling AWS
        #[argh(switch)]
        pub cloudformation: bool,
        /// create nothing: look up what exists, say what would be created, print the policies
        #[argh(switch)]
        pub dry_run: bool,
        /// also write each policy document to DIR/<policy name>.json, ready for
        /// aws iam put-role-policy --policy-document file://DIR/<policy name>.json
        #[argh(option)]
        pub policy_dir: Option<String>,
    }
}

command! {
    /// serve the secrets of the path over a small REST API (sidecar)
    #[argh(subcommand, name = "daemon")]
    #[argh(example = "ecs-secrets daemon --path /prod/app --token-file /run/secrets/token --read-only --cache-ttl 5m")]
    pub struct DaemonArgs {
        /// address to listen on [default 127.0.0.1:8080]
        #[argh(option)]
        pub listen: Option<String>,
        /// file holding the token clients send as X-ECS-Secrets-Token [or env ECS_SECRETS_TOKEN]
        #[argh(option)]
        pub token_file: Option<String>,
        /// serve reads only (no POST routes)
        #[argh(switch)]
        pub read_only: bool,
        /// how long to cache reads, e.g. 60 or 5m; 0 disables [default 60s]
        #[argh(option)]
        pub cache_ttl: Option<String>,
        /// allow listening on a non-loopback address without a token
        #[argh(switch)]
        pub allow_unauthenticated: bool,
    }
}

command! {
    /// write the secrets to files with exec's rules, then exit 0 (an init container); with
    /// --refresh keep them current until SIGTERM (a sidecar)
    #[argh(subcommand, name = "sync")]
    #[argh(example = "ecs-secrets sync --path /prod/app --files /run/secrets", example = "ecs-secrets sync --path /prod/app --files /run/secrets --refresh 5m --splay 1m")]
    pub struct SyncArgs {
        /// write each secret to DIR/<NAME> (mode 0400; DIR must be tmpfs or ramfs)
        #[argh(option)]
        pub files: Option<String>,
        /// allow a directory that is not on tmpfs or ramfs
        #[argh(switch)]
        pub allow_disk: bool,
        /// give the files (and DIR, when created) to USER[:GROUP] (names or numbers)
        #[argh(option)]
        pub user: Option<String>,
        /// fail unless a secret with this env name was fetched (repeatable)
        #[argh(option)]
        pub require: Vec<String>,
        /// allow a secret to use this otherwise refused name (repeatable)
        #[argh(option)]
        pub allow_name: Vec<String>,
        /// JSON-object values become one file per leaf, <NAME>_<KEY>
        /// [env ECS_SECRETS_JSON_KEYS=1]
        #[argh(switch)]
        pub json_keys: bool,
        /// with --json-keys: keep (default) or upper, which upper-cases the key part
        /// (DB_USERNAME) [env ECS_SECRETS_JSON_KEYS_CASE]
        #[argh(option)]
        pub json_keys_case: Option<String>,
        /// a path with no secret is a warning, not an error
        /// [env ECS_SECRETS_ALLOW_EMPTY=1]
        #[argh(switch)]
        pub allow_empty: bool,
        /// also write every inherited variable whose whole value is an SSM or Secrets Manager
        /// reference, as a file named by the variable [env ECS_SECRETS_RESOLVE_REFS=1]
        #[argh(switch)]
        pub resolve_refs: bool,
        /// fetch again at this interval (e.g. 300 or 5m) and rewrite the files that changed
        #[argh(option)]
        pub refresh: Option<String>,
        /// render the file SRC into DEST ({{ NAME }}, {{ NAME | json }}…; written like
        /// --files) (repeatable) [env ECS_SECRETS_TEMPLATES=SRC:DEST,…]
        #[argh(option)]
        pub template: Vec<String>,
        /// with --refresh: add a random 0 to this duration to each interval [default a tenth
        /// of --refresh]
        #[argh(option)]
        pub splay: Option<String>,
    }
}

/// create the ecs-secrets-exec and ecs-secrets-env links in DIR
#[derive(FromArgs, Debug)]
#[cfg_attr(test, derive(argh::ArgsInfo))]
#[argh(
    subcommand,
    name = "install-links",
    help_triggers("-h", "--help", "help"),
    example = "RUN [\"/usr/local/bin/ecs-secrets\", \"install-links\", \"/usr/local/bin\"]   (in a Dockerfile)"
)]
pub struct InstallLinksArgs {
    /// the directory to create the links in
    #[argh(positional)]
    pub dir: String,
}

/// print a shell completion script for bash, zsh or fish
#[derive(FromArgs, Debug)]
#[cfg_attr(test, derive(argh::ArgsInfo))]
#[argh(
    subcommand,
    name = "completions",
    help_triggers("-h", "--help", "help"),
    example = "source <(ecs-secrets completions bash)",
    example = "ecs-secrets completions zsh > ~/.zfunc/_ecs-secrets",
    example = "ecs-secrets completions fish > ~/.config/fish/completions/ecs-secrets.fish"
)]
pub struct CompletionsArgs {
    /// bash, zsh or fish
    #[argh(positional)]
    pub shell: String,
}

/// print the manual page (roff)
#[derive(FromArgs, Debug)]
#[cfg_attr(test, derive(argh::ArgsInfo))]
#[argh(
    subcommand,
    name = "man",
    help_triggers("-h", "--help", "help"),
    example = "ecs-secrets man > ecs-secrets.1 && man -l ecs-secrets.1"
)]
pub struct ManArgs {}
