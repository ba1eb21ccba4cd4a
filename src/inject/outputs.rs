//! Everything a start writes to files: `--files DIR` and every `--template SRC:DEST`, grouped
//! by directory, so that each directory is written once, with one manifest listing all of
//! its files (a template removed from the flags then has its output removed the next time
//! that directory is written, like the file of a secret that is gone).
//!
//! `Outputs::prepare` runs before anything is fetched, with the start's privileges: it reads
//! and parses every SRC and checks every directory (tmpfs/ramfs, not a symlink). SRC is read
//! once; a refresh renders the same templates with the new values. `Outputs::write` renders
//! every template before writing anything, so a template that fails to render writes nothing.

use super::env::Injection;
use super::files::{self, Item};
use super::template::{self, Template};
use crate::config::ExecConfig;
use crate::error::Result;
use nix::errno::Errno;
use std::path::{Path, PathBuf};

struct Group {
    dir: PathBuf,
    /// `--files` (its secrets go here) or only templates.
    has_files: bool,
    /// Indexes into `Outputs::templates`.
    templates: Vec<usize>,
}

pub struct Outputs {
    groups: Vec<Group>,
    templates: Vec<(Template, String)>,
    allow_disk: bool,
}

impl Outputs {
    /// Read every SRC, check every directory; nothing is created or written.
    pub fn prepare(cfg: &ExecConfig) -> Result<Outputs> {
        let mut groups: Vec<(Option<Key>, Group)> = Vec::new();
        if let Some(dir) = &cfg.files {
            files::check_dir(dir, cfg.allow_disk)?;
            groups.push((
                key(dir),
                Group {
                    dir: dir.clone(),
                    has_files: true,
                    templates: Vec::new(),
                },
            ));
        }
        let mut templates = Vec::with_capacity(cfg.templates.len());
        for (i, spec) in cfg.templates.iter().enumerate() {
            templates.push((template::load(&spec.src)?, spec.dest_name.clone()));
            let same = |d: &Path, k: &Option<Key>| {
                d.components().eq(spec.dest_dir.components())
                    || k.is_some() && *k == key(&spec.dest_dir)
            };
            if let Some((_, g)) = groups.iter_mut().find(|(k, g)| same(&g.dir, k)) {
                g.templates.push(i);
                continue;
            }
            files::check_dir_for(&spec.dest_dir, files::TEMPLATE_DIR, cfg.allow_disk)?;
            groups.push((
                key(&spec.dest_dir),
                Group {
                    dir: spec.dest_dir.clone(),
                    has_files: false,
                    templates: vec![i],
                },
            ));
        }
        Ok(Outputs {
            groups: groups.into_iter().map(|(_, g)| g).collect(),
            templates,
            allow_disk: cfg.allow_disk,
        })
    }

    /// Nothing to write (no `--files`, no `--template`).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Render every template, then write each directory (atomically per file; the files of
    /// one directory are renamed into place only when all of them are written).
    pub fn write(&self, secrets: &[Injection], owner: Option<(u32, u32)>) -> Result<()> {
        let rendered = self
            .templates
            .iter()
            .map(|(t, _)| t.render(secrets))
            .collect::<Result<Vec<_>>>()?;
        for g in &self.groups {
            let mut items: Vec<Item<'_>> = if g.has_files {
                files::items_of(secrets)?
            } else {
                Vec::new()
            };
            for &i in &g.templates {
                items.push(Item {
                    name: &self.templates[i].1,
                    bytes: &rendered[i],
                    what: format!(
                        "--template {}",
                        super::env::printable(&self.templates[i].0.src)
                    ),
                });
            }
            let flag = if g.has_files {
                files::FILES
            } else {
                files::TEMPLATE_DIR
            };
            files::write_items(&g.dir, flag, &items, owner, self.allow_disk)?;
        }
        Ok(())
    }
}

/// A directory's identity, to find one directory named two ways (`/run/s` and
/// `/var/run/s`): its device and inode, or, when it does not exist yet, its parent's and
/// its name. `None` when neither can be found (the check of the directory then fails).
#[derive(PartialEq, Eq)]
struct Key(u64, u64, Option<Vec<u8>>);

fn key(dir: &Path) -> Option<Key> {
    use std::os::unix::ffi::OsStrExt;
    match nix::sys::stat::stat(dir) {
        Ok(st) => Some(Key(st.st_dev, st.st_ino, None)),
        Err(Errno::ENOENT) => {
            let name = dir.file_name()?.as_bytes().to_vec();
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let st = nix::sys::stat::stat(parent).ok()?;
            Some(Key(st.st_dev, st.st_ino, Some(name)))
        }
        Err(_) => None,
    }
}
