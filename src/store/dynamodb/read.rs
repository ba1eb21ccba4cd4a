//! DynamoDB, the read path: Queries of a path's partition (`read_path`, `fetch`,
//! `versions`, `list`), and the query builders and layout check the write path uses too.

use super::*;

impl DynamoStore {
    /// A strongly consistent Query of the path's partition, optionally of one sort-key
    /// prefix. The whole partition is read with a string condition on the sort key too
    /// (every item of ours sorts from `k#` on): DynamoDB refuses that Query on a table
    /// whose keys are not ours, instead of answering "nothing under this path".
    pub(super) fn query(&self, path: &str, prefix: Option<&str>) -> QueryFluentBuilder {
        let q = self
            .ddb
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_names("#p", A_PATH)
            .expression_attribute_values(":p", Av::S(path.to_string()));
        match prefix {
            None => q
                .key_condition_expression("#p = :p AND #sk >= :first")
                .expression_attribute_names("#sk", A_SK)
                .expression_attribute_values(":first", Av::S(KEY_PREFIX.to_string())),
            Some(pre) => q
                .key_condition_expression("#p = :p AND begins_with(#sk, :pre)")
                .expression_attribute_names("#sk", A_SK)
                .expression_attribute_values(":pre", Av::S(pre.to_string())),
        }
    }

    /// Version metadata only (no ciphertext).
    pub(super) fn metadata(q: QueryFluentBuilder) -> QueryFluentBuilder {
        q.projection_expression("#sk, #n, #s, #a, #c")
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#n", A_NAME)
            .expression_attribute_names("#s", A_SERIAL)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#c", A_CREATED)
    }

    /// What a start-up read needs and nothing more (no path, kind, created time, write
    /// token or key id): smaller responses, so more secrets fit one 1 MB page, and a
    /// faster Query (moto answers 200 items in a quarter of the time).
    pub(super) fn for_reading(q: QueryFluentBuilder) -> QueryFluentBuilder {
        q.projection_expression("#sk, #n, #s, #a, #ct, #no, #g, #b, #r")
            .expression_attribute_names("#sk", A_SK)
            .expression_attribute_names("#n", A_NAME)
            .expression_attribute_names("#s", A_SERIAL)
            .expression_attribute_names("#a", A_ACTIVE)
            .expression_attribute_names("#ct", A_CT)
            .expression_attribute_names("#no", A_NONCE)
            .expression_attribute_names("#g", A_GEN)
            .expression_attribute_names("#b", A_BLOB)
            .expression_attribute_names("#r", A_RETIRED)
    }

    /// Every page of a Query. Returns the items and the number of pages.
    pub(super) async fn pages(
        &self,
        q: QueryFluentBuilder,
        what: &str,
    ) -> Result<(Vec<Item>, u32)> {
        let mut out = Vec::new();
        let mut start = None;
        let mut pages = 0u32;
        loop {
            let resp = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.ddb_error(what.to_string(), e))?;
            pages += 1;
            out.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok((out, pages))
    }

    pub(super) async fn partition(&self, path: &str) -> Result<(Partition, u32)> {
        let what = format!("reading {path} from DynamoDB table {}", self.table);
        let (items, pages) = self.pages(self.query(path, None), &what).await?;
        Ok((Partition::parse(path, &items, true)?, pages))
    }

    pub async fn read_path(&self, path: &str) -> Result<Vec<Secret>> {
        let what = format!("reading {path} from DynamoDB table {}", self.table);
        let (items, pages) = self
            .pages(Self::for_reading(self.query(path, None)), &what)
            .await?;
        if items.is_empty() {
            self.check_layout().await?;
        }
        let part = Partition::parse(path, &items, true)?;
        let needed = part.newest_active();
        let keys = self.keys_for(path, &part, &needed).await?;
        let mut out = Vec::with_capacity(needed.len());
        for v in &needed {
            out.push(Secret {
                name: v.name.clone(),
                serial: v.serial,
                payload: self.open(path, v, &part, &keys)?,
            });
        }
        crate::log::debug(format_args!(
            "{path}: {} secrets in {pages} Query page(s) and {} KMS Decrypt(s)",
            out.len(),
            keys.len()
        ));
        Ok(out)
    }

    /// An empty read must mean an empty path, not a table laid out otherwise (DynamoDB
    /// refuses our Query on such a table, but DynamoDB-compatible stores may answer it
    /// with nothing). DescribeTable is not among the fetch role's permissions: when it is
    /// refused, the Query's own check stands.
    pub(super) async fn check_layout(&self) -> Result<()> {
        let resp = match self
            .ddb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let err = self.ddb_error(format!("describing DynamoDB table {}", self.table), e);
                return match err.aws_kind() {
                    Some(AwsKind::AccessDenied) => Ok(()),
                    _ => Err(err),
                };
            }
        };
        let Some(t) = resp.table else { return Ok(()) };
        let type_of = |name: &str| {
            t.attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == name)
                .map(|a| a.attribute_type().as_str().to_string())
        };
        let key_of = |kind: &str| {
            t.key_schema()
                .iter()
                .find(|k| k.key_type().as_str() == kind)
                .map(|k| k.attribute_name().to_string())
        };
        let ours = key_of("HASH").as_deref() == Some(A_PATH)
            && key_of("RANGE").as_deref() == Some(A_SK)
            && type_of(A_PATH).as_deref() == Some("S")
            && type_of(A_SK).as_deref() == Some("S");
        if ours {
            return Ok(());
        }
        let show = |kind: &str| match key_of(kind) {
            Some(n) => format!("`{n}` ({})", type_of(&n).unwrap_or_else(|| "?".into())),
            None => "none".into(),
        };
        Err(Error::data(format!(
            "DynamoDB table {} is not an ecs-secrets table: its hash key is {} and its range key {}, where `{A_PATH}` (S) and `{A_SK}` (S) are expected; check --table, or create one with `ecs-secrets setup --backend dynamodb`",
            self.table,
            show("HASH"),
            show("RANGE")
        )))
    }

    /// The NotFound error for a name/serial, naming what exists.
    pub(super) async fn not_found(&self, path: &str, name: &str, serial: Option<u64>) -> Error {
        let versions = match self.versions(path, name).await {
            Ok(v) => v,
            Err(e) => return e,
        };
        if versions.is_empty() {
            return Error::not_found(format!(
                "no secret {path}/{} in DynamoDB table {}",
                printable(name),
                self.table
            ));
        }
        let list: Vec<String> = versions.iter().map(|v| v.serial.to_string()).collect();
        match serial {
            Some(s) => Error::not_found(format!(
                "{path}/{} has no serial {s} (serials: {})",
                printable(name),
                list.join(", ")
            )),
            None => Error::not_found(format!(
                "{path}/{} has no active version: every serial is revoked (serials: {})",
                printable(name),
                list.join(", ")
            )),
        }
    }

    pub async fn fetch(&self, path: &str, name: &str, serial: Option<u64>) -> Result<Fetched> {
        Self::check_name(name)?;
        let v = match serial {
            Some(s) => {
                let resp = self
                    .ddb
                    .get_item()
                    .table_name(&self.table)
                    .key(A_PATH, Av::S(path.into()))
                    .key(A_SK, Av::S(version_sk(name, s)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| self.ddb_error(format!("reading {path}/{name} serial {s}"), e))?;
                match resp.item {
                    Some(item) => parse_version(path, &item, true)?,
                    None => return Err(self.not_found(path, name, Some(s)).await),
                }
            }
            None => {
                let what = format!("reading {path}/{name} from DynamoDB table {}", self.table);
                let (items, _) = self
                    .pages(self.query(path, Some(&name_prefix(name))), &what)
                    .await?;
                let part = Partition::parse(path, &items, true)?;
                let newest = part.versions.into_iter().rfind(|v| v.active);
                match newest {
                    Some(v) => v,
                    None => return Err(self.not_found(path, name, None).await),
                }
            }
        };
        if !v.active {
            return Ok(Fetched {
                name: name.to_string(),
                serial: v.serial,
                active: false,
                payload: None,
            });
        }
        let payload = self.open_one(path, &v).await?;
        Ok(Fetched {
            name: name.to_string(),
            serial: v.serial,
            active: true,
            payload: Some(payload),
        })
    }

    /// Version metadata under a sort-key prefix, sorted by name then serial.
    pub(super) async fn metadata_of(
        &self,
        path: &str,
        prefix: &str,
        what: &str,
    ) -> Result<Vec<Version>> {
        let q = Self::metadata(self.query(path, Some(prefix)));
        let (items, _) = self.pages(q, what).await?;
        Ok(Partition::parse(path, &items, false)?.versions)
    }

    pub async fn versions(&self, path: &str, name: &str) -> Result<Vec<VersionInfo>> {
        Self::check_name(name)?;
        let what = format!("reading the versions of {path}/{name} from DynamoDB");
        Ok(self
            .metadata_of(path, &name_prefix(name), &what)
            .await?
            .iter()
            .map(Version::info)
            .collect())
    }

    pub async fn list(&self, path: &str, all: bool) -> Result<Vec<VersionInfo>> {
        let what = format!("listing {path} in DynamoDB table {}", self.table);
        let versions = self.metadata_of(path, VERSION_PREFIX, &what).await?;
        if all {
            return Ok(versions.iter().map(Version::info).collect());
        }
        let part = Partition {
            versions,
            keys: BTreeMap::new(),
        };
        Ok(part
            .newest_active()
            .into_iter()
            .map(Version::info)
            .collect())
    }
}
