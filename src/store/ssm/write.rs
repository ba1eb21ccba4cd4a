//! Parameter Store, the write path: create and revoke (see the parent module for how
//! revocation is recorded).
//!
//! Parameter Store has no conditional writes, so concurrent admin commands on one name
//! cannot exclude each other. Instead every command ends by *converging*: it re-reads the
//! history and, while the latest version does not resolve to the newest active serial (a
//! copy of a since-revoked serial, a copy written after a newer create, a revoked version),
//! writes the fix (a copy of the newest active serial, or a tombstone) and reads again.
//!
//! Why that converges: every write — a version, a copy, a label — is followed by a read by
//! the command that made it. Take the write that lands last: its command's next read sees
//! the final state; had that been wrong, the command would have written again, so it was
//! right. Every command computes "right" the same way from the same history, so two
//! repairers never fight over what the latest version should be, and once the last
//! create or label has landed only fixes remain, each based on a read that already sees
//! every create and label.

use super::*;

/// How many fixes one command writes before it gives up (each one answers a write of a
/// concurrent command; a run of 20 concurrent commands needs a few).
const MAX_REPAIRS: u32 = 64;

/// What readers currently get through GetParametersByPath.
#[derive(Debug, PartialEq)]
enum Visible {
    /// The payload of this active real serial (itself or a copy of it).
    Active(u64),
    /// Nothing: a tombstone, or no version at all.
    Nothing,
    /// A payload that has since been revoked (or is being revoked): must be replaced.
    Stale,
}

/// What the latest version must become so that readers get the newest active serial.
#[derive(Debug, PartialEq)]
enum Fix {
    Nothing,
    Copy(u64),
    Tombstone,
}

/// Whether `h` is revoked, counting `revoking` (a serial about to be labelled) as revoked.
fn is_revoked(h: &Hist, revoking: Option<u64>) -> bool {
    h.revoked || Some(h.version) == revoking
}

fn visible(hist: &[Hist], revoking: Option<u64>) -> Visible {
    let Some(latest) = hist.last() else {
        return Visible::Nothing;
    };
    let original = match latest.kind {
        Kind::Real => latest,
        Kind::Copy(k) => match hist.iter().find(|h| h.version == k && h.kind == Kind::Real) {
            Some(o) => o,
            None => return Visible::Stale,
        },
        Kind::Tombstone => return Visible::Nothing,
    };
    if is_revoked(original, revoking) {
        Visible::Stale
    } else {
        Visible::Active(original.version)
    }
}

/// The newest active real serial (what `fetch` answers), `revoking` counted as revoked.
fn newest_active(hist: &[Hist], revoking: Option<u64>) -> Option<u64> {
    hist.iter()
        .filter(|h| h.kind == Kind::Real && !is_revoked(h, revoking))
        .map(|h| h.version)
        .max()
}

fn fix_for(hist: &[Hist], revoking: Option<u64>) -> Fix {
    match (visible(hist, revoking), newest_active(hist, revoking)) {
        (Visible::Active(v), Some(w)) if v == w => Fix::Nothing,
        (Visible::Nothing, None) => Fix::Nothing,
        (_, Some(w)) => Fix::Copy(w),
        (_, None) => Fix::Tombstone,
    }
}

/// ecs-secrets writes only SecureStrings, and Parameter Store cannot change a parameter's
/// type: refuse, before writing, a name whose latest version is of another type.
fn check_writable(full_name: &str, hist: &[Hist]) -> Result<()> {
    check_type_of_latest(full_name, hist, "nothing was written")
}

/// The same, after this command wrote: another tool changed the type meanwhile.
fn check_still_writable(full_name: &str, hist: &[Hist]) -> Result<()> {
    check_type_of_latest(
        full_name,
        hist,
        "another tool wrote it while this command ran, so readers may not get its newest \
         active serial",
    )
}

fn check_type_of_latest(full_name: &str, hist: &[Hist], outcome: &str) -> Result<()> {
    let what = match hist.last().and_then(|h| h.ptype.as_ref()) {
        None | Some(ParameterType::SecureString) => return Ok(()),
        Some(ParameterType::String) => "a String parameter (stored unencrypted)",
        Some(ParameterType::StringList) => "a StringList parameter",
        Some(_) => "a parameter of an unknown type",
    };
    Err(Error::data(format!(
        "{} is {what}, not written by ecs-secrets, which writes only SecureStrings (and \
         Parameter Store cannot change a parameter's type): {outcome}; delete it \
         (aws ssm delete-parameter) and create it again with ecs-secrets",
        printable(full_name)
    )))
}

impl SsmStore {
    async fn put(&self, full_name: &str, value: &str, description: &str) -> Result<u64> {
        let resp = self
            .client
            .put_parameter()
            .name(full_name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key.clone())
            .description(description)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| {
                crate::aws::error_redacted(
                    format!("writing {full_name} to SSM Parameter Store"),
                    e,
                    Some(value.as_bytes()),
                )
            })?;
        Ok(resp.version.max(0) as u64)
    }

    pub async fn create(&self, path: &str, name: &str, payload: &Payload) -> Result<u64> {
        let value = payload
            .as_str()
            .expect("checked as UTF-8 by Store::check_payload");
        let full_name = full(path, name);
        check_writable(&full_name, &self.history(path, name).await?)?;
        let serial = self.put(&full_name, value, VERSION_DESCRIPTION).await?;
        self.converge(path, name).await?;
        Ok(serial)
    }

    /// Write what `fix` says the latest version must become.
    async fn apply(&self, path: &str, name: &str, fix: Fix) -> Result<()> {
        let full_name = full(path, name);
        match fix {
            Fix::Nothing => {}
            Fix::Copy(k) => {
                crate::log::debug(format_args!(
                    "{full_name}: latest version set to serial {k}"
                ));
                let v = self.value_of(path, name, k).await?;
                let value = v.as_str().unwrap_or_default();
                self.put(&full_name, value, &format!("{COPY_PREFIX}{k}"))
                    .await?;
            }
            Fix::Tombstone => {
                crate::log::debug(format_args!("{full_name}: no active serial left"));
                self.put(&full_name, TOMBSTONE, TOMBSTONE_DESCRIPTION)
                    .await?;
            }
        }
        Ok(())
    }

    /// Re-read and repair until the latest version resolves to the newest active serial
    /// (or a tombstone when none is active), at most `MAX_REPAIRS` fixes.
    async fn converge(&self, path: &str, name: &str) -> Result<()> {
        let full_name = full(path, name);
        for _ in 0..=MAX_REPAIRS {
            let hist = self.history(path, name).await?;
            check_still_writable(&full_name, &hist)?;
            match fix_for(&hist, None) {
                Fix::Nothing => return Ok(()),
                fix => self.apply(path, name, fix).await?,
            }
        }
        Err(Error::data(format!(
            "{full_name} kept changing under concurrent admin commands: after {MAX_REPAIRS} \
             repairs readers may still not see its newest active serial; once the other \
             commands are done, revoke any revoked serial again (it repairs)"
        )))
    }

    pub async fn revoke(&self, path: &str, name: &str, serial: u64) -> Result<()> {
        let hist = self.history(path, name).await?;
        let full_name = full(path, name);
        if hist.is_empty() {
            return Err(Error::not_found(format!("no secret {full_name}")));
        }
        let Some(target) = hist
            .iter()
            .find(|h| h.version == serial && h.kind == Kind::Real)
        else {
            return Err(Error::not_found(format!(
                "{full_name} has no serial {serial} (serials: {})",
                serial_list(&hist)
            )));
        };
        check_writable(&full_name, &hist)?;
        if !target.revoked {
            // Hide the payload before labelling it, so that a revoke stopped half-way never
            // leaves it visible: one fix from this read, no loop (another command that does
            // not know of this revocation yet could fight it; the loop below settles it).
            self.apply(path, name, fix_for(&hist, Some(serial))).await?;
            self.label_revoked(&full_name, serial).await?;
        }
        // Also when it was revoked already: a repeated revoke repairs what an interrupted
        // one left.
        self.converge(path, name).await
    }

    async fn label_revoked(&self, full_name: &str, serial: u64) -> Result<()> {
        let resp = self
            .client
            .label_parameter_version()
            .name(full_name)
            .parameter_version(serial as i64)
            .labels(revoked_label(serial))
            .send()
            .await
            .map_err(|e| {
                crate::aws::error(format!("labelling {full_name} serial {serial} revoked"), e)
            })?;
        if resp.invalid_labels.is_some_and(|l| !l.is_empty()) {
            return Err(Error::data(format!(
                "SSM refused the revocation label on {full_name} serial {serial}; \
                 a version holds at most 10 labels: remove one and revoke again"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(version: u64, kind: Kind, revoked: bool) -> Hist {
        Hist {
            version,
            kind,
            revoked,
            created: String::new(),
            ptype: Some(ParameterType::SecureString),
        }
    }

    #[test]
    fn visible_follows_copies_and_tombstones() {
        assert_eq!(
            visible(&[h(1, Kind::Real, false)], None),
            Visible::Active(1)
        );
        assert_eq!(visible(&[h(1, Kind::Real, true)], None), Visible::Stale);
        assert_eq!(visible(&[h(1, Kind::Real, false)], Some(1)), Visible::Stale);
        assert_eq!(
            visible(
                &[
                    h(1, Kind::Real, false),
                    h(2, Kind::Real, true),
                    h(3, Kind::Copy(1), false)
                ],
                None
            ),
            Visible::Active(1)
        );
        // The copy's original was revoked later: readers get a revoked payload until repaired.
        assert_eq!(
            visible(
                &[
                    h(1, Kind::Real, true),
                    h(2, Kind::Real, true),
                    h(3, Kind::Copy(1), false)
                ],
                None
            ),
            Visible::Stale
        );
        assert_eq!(
            visible(
                &[h(1, Kind::Real, true), h(2, Kind::Tombstone, false)],
                None
            ),
            Visible::Nothing
        );
    }

    #[test]
    fn fixes_for_the_races_that_were_found() {
        // revoke 3 and revoke 2 at once: 3's copy of 2 landed, then both labels.
        let both = [
            h(1, Kind::Real, false),
            h(2, Kind::Real, true),
            h(3, Kind::Real, true),
            h(4, Kind::Copy(2), false),
        ];
        assert_eq!(fix_for(&both, None), Fix::Copy(1));
        // A revoke's copy of 1 landed after a create of 4.
        let late = [
            h(1, Kind::Real, false),
            h(2, Kind::Real, true),
            h(3, Kind::Real, false),
            h(4, Kind::Real, false),
            h(5, Kind::Copy(1), false),
        ];
        assert_eq!(fix_for(&late, None), Fix::Copy(4));
        // A tombstone written after a create.
        let tomb = [h(1, Kind::Real, false), h(2, Kind::Tombstone, false)];
        assert_eq!(fix_for(&tomb, None), Fix::Copy(1));
        // Consistent states need nothing.
        assert_eq!(fix_for(&[h(1, Kind::Real, false)], None), Fix::Nothing);
        assert_eq!(fix_for(&[], None), Fix::Nothing);
        let gone = [h(1, Kind::Real, true), h(2, Kind::Tombstone, false)];
        assert_eq!(fix_for(&gone, None), Fix::Nothing);
        // Revoking the only active serial: a tombstone.
        assert_eq!(fix_for(&[h(1, Kind::Real, false)], Some(1)), Fix::Tombstone);
    }

    /// A model of the write path: 2 to 20 actors run create / revoke as the code does (each
    /// read and each write one atomic step, any other actor's steps in between), under
    /// random schedules. Once all have finished, the latest version resolves to the newest
    /// active serial, and no actor needed more than `MAX_REPAIRS` fixes.
    #[test]
    fn every_schedule_of_the_model_converges() {
        #[derive(Clone, Copy)]
        enum Op {
            Create,
            Revoke(u64),
        }
        enum Pc {
            Start,
            Hide(Fix),
            Label,
            Read,
            Write(Fix),
            Done,
        }
        fn put(hist: &mut Vec<Hist>, kind: Kind) {
            let version = hist.len() as u64 + 1;
            hist.push(h(version, kind, false));
        }
        fn apply(hist: &mut Vec<Hist>, fix: Fix) {
            match fix {
                Fix::Nothing => {}
                Fix::Copy(k) => put(hist, Kind::Copy(k)),
                Fix::Tombstone => put(hist, Kind::Tombstone),
            }
        }
        let mut seed = 0x5eed_u64;
        let mut below = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..3000 {
            let mut hist = Vec::new();
            let seeded = 1 + below(4);
            for _ in 0..seeded {
                put(&mut hist, Kind::Real);
            }
            let n = 2 + below(19);
            let mut actors: Vec<(Op, Pc, u32)> = (0..n)
                .map(|_| {
                    let op = if below(3) == 0 {
                        Op::Create
                    } else {
                        Op::Revoke(1 + below(seeded))
                    };
                    (op, Pc::Start, 0)
                })
                .collect();
            while let Some(i) = {
                let live: Vec<usize> = (0..actors.len())
                    .filter(|&i| !matches!(actors[i].1, Pc::Done))
                    .collect();
                (!live.is_empty()).then(|| live[below(live.len() as u64) as usize])
            } {
                let (op, pc, repairs) = &mut actors[i];
                *pc = match (std::mem::replace(pc, Pc::Done), *op) {
                    (Pc::Start, Op::Create) => {
                        put(&mut hist, Kind::Real);
                        Pc::Read
                    }
                    (Pc::Start, Op::Revoke(s)) => {
                        if hist[s as usize - 1].revoked {
                            Pc::Read
                        } else {
                            Pc::Hide(fix_for(&hist, Some(s)))
                        }
                    }
                    (Pc::Hide(fix), _) => {
                        apply(&mut hist, fix);
                        Pc::Label
                    }
                    (Pc::Label, Op::Revoke(s)) => {
                        hist[s as usize - 1].revoked = true;
                        Pc::Read
                    }
                    (Pc::Read, _) => match fix_for(&hist, None) {
                        Fix::Nothing => Pc::Done,
                        fix => Pc::Write(fix),
                    },
                    (Pc::Write(fix), _) => {
                        *repairs += 1;
                        assert!(*repairs <= MAX_REPAIRS);
                        apply(&mut hist, fix);
                        Pc::Read
                    }
                    (Pc::Label, Op::Create) | (Pc::Done, _) => unreachable!(),
                };
            }
            assert_eq!(fix_for(&hist, None), Fix::Nothing, "{hist:?}");
            match newest_active(&hist, None) {
                Some(w) => assert_eq!(visible(&hist, None), Visible::Active(w)),
                None => assert_eq!(visible(&hist, None), Visible::Nothing),
            }
        }
    }
}
