//! Environment-name collisions, refused at write time. Two active secrets of one path whose
//! names map to the same environment name (`a.b` and `a-b` both set `a_b`) make every start
//! of the path fail, so no write of a new version may create such a pair. Checked here, once,
//! for every backend and every writer (create, rotate, the daemon's POST); import calls
//! [`check_batch`] with the names it is about to write.
//!
//! A race: two creates of colliding names at once both pass the check before writing. So
//! `Store::create` checks again after its write and, when a colliding active secret appeared
//! meanwhile, revokes its own new version and fails. Of two such creates the one whose check
//! ran second sees the other; if both see each other both undo: never are both left active
//! (reads being consistent after a write returns), but both may be undone.

use super::Store;
use crate::error::{Error, Result};
use crate::names::{env_name, is_refused, printable};

fn refusal(path: &str, name: &str, other: &str) -> String {
    format!(
        "{path}/{} and the active secret {path}/{} would both set the environment name {}, \
         which would make every start of {path} fail: choose another name, or revoke every \
         version of {} first",
        printable(name),
        printable(other),
        printable(&env_name(name)),
        printable(other)
    )
}

/// Refuse writing versions of `new` names when two of them, or one of them and an active
/// secret of the path (`active`), would set the same environment name.
pub fn check_batch<'a>(
    path: &str,
    new: impl IntoIterator<Item = &'a str>,
    active: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    // (environment name, secret name, whether it is one of the new ones)
    let mut seen: Vec<(String, &str, bool)> = active
        .into_iter()
        .map(|n| (env_name(n), n, false))
        .collect();
    for name in new {
        let env = env_name(name);
        if let Some((_, other, is_new)) = seen.iter().find(|(e, n, _)| *e == env && *n != name) {
            let why = if *is_new {
                format!(
                    "{path}/{} and {path}/{} would both set the environment name {}, which \
                     would make every start of {path} fail: rename one in the source first",
                    printable(other),
                    printable(name),
                    printable(&env)
                )
            } else {
                refusal(path, name, other)
            };
            return Err(Error::usage(format!("nothing written: {why}")));
        }
        seen.push((env, name, true));
    }
    Ok(())
}

impl Store {
    /// Every name of the path that has versions (ssm: nested names too, whatever
    /// `--recursive` says, since a recursive reader sees them).
    async fn names(&self, path: &str) -> Result<Vec<String>> {
        match self {
            Store::Ssm(s) => s.names(path).await,
            Store::Dynamodb(d) => Ok(d
                .list(path, false)
                .await?
                .into_iter()
                .map(|v| v.name)
                .collect()),
            Store::SecretsManager(m) => m.names(path).await,
        }
    }

    /// The active secret of `path`, other than `name`, that sets the same environment name.
    pub(super) async fn collision(&self, path: &str, name: &str) -> Result<Option<String>> {
        let env = env_name(name);
        let mut candidates: Vec<String> = self
            .names(path)
            .await?
            .into_iter()
            .filter(|n| n != name && env_name(n) == env)
            .collect();
        crate::sort::sort(&mut candidates);
        candidates.dedup();
        for other in candidates {
            if self.versions(path, &other).await?.iter().any(|v| v.active) {
                return Ok(Some(other));
            }
        }
        Ok(None)
    }

    /// Refuse, before writing, a name that collides with an active secret of the path.
    /// (A name that readers refuse without `--allow-name` is only warned about: that flag
    /// exists for it.)
    pub(super) async fn check_collision(&self, path: &str, name: &str) -> Result<()> {
        let env = env_name(name);
        if is_refused(&env) {
            crate::log::warn(format_args!(
                "{path}/{} sets {}, which changes how programs load or start: every start of \
                 {path} fails unless it passes --allow-name {}",
                printable(name),
                printable(&env),
                printable(&env)
            ));
        }
        match self.collision(path, name).await? {
            Some(other) => Err(Error::usage(format!(
                "nothing written: {}",
                refusal(path, name, &other)
            ))),
            None => Ok(()),
        }
    }

    /// After writing `serial` of `name`: if a colliding active secret appeared meanwhile (a
    /// concurrent create), revoke `serial` again and fail.
    pub(super) async fn undo_if_collided(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        let Some(other) = self.collision(path, name).await? else {
            return Ok(());
        };
        let why = refusal(path, name, &other);
        match self.revoke(path, name, serial).await {
            Ok(()) => Err(Error::usage(format!(
                "{why} ({} was created at the same time; serial {serial} of {path}/{} was \
                 written and has been revoked again)",
                printable(&other),
                printable(name)
            ))),
            Err(e) => Err(Error::data(format!(
                "{why}: {} was created at the same time, and revoking serial {serial} of \
                 {path}/{} again failed: {e}; revoke it by hand",
                printable(&other),
                printable(name)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_refuse_pairs_within_and_against_the_path() {
        assert!(check_batch("/p", ["a", "b", "a"], ["c"]).is_ok());
        let e = check_batch("/p", ["db.password", "db-password"], []).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("/p/db-password")
                && m.contains("/p/db.password")
                && m.contains("db_password"),
            "{m}"
        );
        assert!(check_batch("/p", ["a-b"], ["a.b"]).is_err());
        assert!(check_batch("/p", ["nested/x"], ["nested_x"]).is_err());
        // Case is kept in environment names: no collision.
        assert!(check_batch("/p", ["DB"], ["db"]).is_ok());
    }
}
