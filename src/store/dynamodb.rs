//! DynamoDB + KMS backend (envelope encryption). Not built yet.

use crate::error::{Error, Result};
use crate::secret::{Fetched, Payload, Secret, VersionInfo};

pub const MAX_PAYLOAD: usize = 64 * 1024;

#[derive(Clone)]
pub struct DynamoStore {
    #[allow(dead_code)]
    ddb: aws_sdk_dynamodb::Client,
    #[allow(dead_code)]
    kms: aws_sdk_kms::Client,
    #[allow(dead_code)]
    table: String,
    #[allow(dead_code)]
    kms_key: Option<String>,
}

fn todo() -> Error {
    Error::usage("the dynamodb backend is not available yet")
}

impl DynamoStore {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        kms_key: Option<String>,
    ) -> Self {
        DynamoStore {
            ddb,
            kms,
            table,
            kms_key,
        }
    }
    pub async fn read_path(&self, _path: &str) -> Result<Vec<Secret>> {
        Err(todo())
    }
    pub async fn create(&self, _path: &str, _name: &str, _payload: &Payload) -> Result<u64> {
        Err(todo())
    }
    pub async fn revoke(&self, _path: &str, _name: &str, _serial: u64) -> Result<()> {
        Err(todo())
    }
    pub async fn fetch(&self, _path: &str, _name: &str, _serial: Option<u64>) -> Result<Fetched> {
        Err(todo())
    }
    pub async fn versions(&self, _path: &str, _name: &str) -> Result<Vec<VersionInfo>> {
        Err(todo())
    }
    pub async fn list(&self, _path: &str, _all: bool) -> Result<Vec<VersionInfo>> {
        Err(todo())
    }
}
