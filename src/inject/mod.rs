//! Turning fetched secrets into what a process sees: environment names and refusals
//! (`env`), shell/dotenv/json text (`shell`, `output`), and files on tmpfs (`files`, with
//! `manifest` recording which files are ours).

pub mod env;
pub mod files;
pub mod manifest;
pub mod output;
pub mod outputs;
pub mod shell;
pub mod template;
