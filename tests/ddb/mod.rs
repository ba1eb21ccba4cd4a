//! Helpers shared by the dynamodb test binaries: the table, the binary with the dynamodb
//! backend, raw item access, and a create parked in the proxy.

// Each test binary uses a different subset of these.
#![allow(dead_code)]

use crate::common::*;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub const TABLE: &str = "ecs-secrets";

/// The shared moto with the default table and the default key alias, made once per binary.
pub fn moto_ready() -> &'static str {
    static READY: OnceLock<String> = OnceLock::new();
    READY.get_or_init(|| {
        let m = moto();
        make_table(&m.endpoint, TABLE);
        create_key(&m.endpoint, Some("alias/ecs-secrets"));
        m.endpoint.clone()
    })
}

/// A table laid out as `ecs-secrets setup` makes it.
pub fn make_table(endpoint: &str, name: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    block_on(
        dynamodb(endpoint)
            .create_table()
            .table_name(name)
            .attribute_definitions(attr("path"))
            .attribute_definitions(attr("sk"))
            .key_schema(key("path", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send(),
    )
    .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}

/// The binary, dynamodb backend selected through the environment.
pub fn ddb(endpoint: &str) -> Command {
    let mut c = ecs(endpoint);
    c.env("ECS_SECRETS_BACKEND", "dynamodb");
    c
}

#[track_caller]
pub fn create(endpoint: &str, path: &str, name: &str, value: &[u8]) -> u64 {
    let out = stdin_run(
        ddb(endpoint).args(["create", "--path", path, "--name", name, "--payload-stdin"]),
        value,
    );
    let v: serde_json::Value = serde_json::from_str(assert_ok(&out).trim()).unwrap();
    assert_eq!(v["name"], name);
    v["serial"].as_u64().unwrap()
}

/// `exec` that prints the given variables (or `<unset>`) one per line.
pub fn show(endpoint: &str, args: &[&str], vars: &[&str]) -> Command {
    let mut c = ddb(endpoint);
    c.arg("exec").args(args).arg("--").arg("sh").arg("-c");
    let script: String = vars
        .iter()
        .map(|v| format!("printf '%s=%s\\n' {v} \"${{{v}-<unset>}}\";"))
        .collect();
    c.arg(script);
    c
}

/// Runs `exec` with a command that would leave a marker; asserts failure with exactly one
/// error line, and that the command never started. Returns stderr.
#[track_caller]
pub fn assert_not_started(endpoint: &str, path: &str) -> String {
    assert_exec_not_started(ddb(endpoint), &["--path", path])
}

pub fn get_raw(endpoint: &str, table: &str, path: &str, sk: &str) -> Option<HashMap<String, Av>> {
    block_on(
        dynamodb(endpoint)
            .get_item()
            .table_name(table)
            .key("path", Av::S(path.into()))
            .key("sk", Av::S(sk.into()))
            .consistent_read(true)
            .send(),
    )
    .unwrap_or_else(|e| panic!("GetItem {path} {sk}: {e:?}"))
    .item
}

pub fn put_raw(endpoint: &str, table: &str, item: HashMap<String, Av>) {
    block_on(
        dynamodb(endpoint)
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send(),
    )
    .unwrap_or_else(|e| panic!("PutItem: {e:?}"));
}

/// Copy `attrs` of one item onto another (both must exist).
pub fn copy_attrs(endpoint: &str, from: (&str, &str), to: (&str, &str), attrs: &[&str]) {
    let src = get_raw(endpoint, TABLE, from.0, from.1).expect("source item");
    let mut dst = get_raw(endpoint, TABLE, to.0, to.1).expect("target item");
    for a in attrs {
        dst.insert(a.to_string(), src[*a].clone());
    }
    put_raw(endpoint, TABLE, dst);
}

/// The operations the proxy saw, without their service prefix.
pub fn short_ops(p: &Proxy) -> Vec<String> {
    p.ops()
        .iter()
        .map(|o| o.rsplit('.').next().unwrap().to_string())
        .collect()
}

pub fn ops_summary(p: &Proxy) -> String {
    format!("{} requests: {:?}", p.total(), p.ops())
}

/// Starts `create --name B --payload b1` under `path` through a proxy that holds every `op`
/// request for `latency_ms`, and returns once the first `op` has reached the proxy (so the
/// create is parked inside it) with the proxy and the running create.
pub fn create_held_at(ep: &str, path: &str, op: &str, latency_ms: u64) -> (Proxy, Child) {
    let proxy = Proxy::start(ep);
    proxy.set_faults(Faults {
        latency_ms,
        only_op: Some(op.into()),
        ..Default::default()
    });
    let mut c = ddb(&proxy.endpoint());
    c.args(["create", "--path", path, "--name", "B", "--payload", "b1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while proxy.count(op) == 0 {
        assert!(
            t0.elapsed().as_secs() < 30,
            "no {op}: {}",
            ops_summary(&proxy)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (proxy, child)
}

/// A table of the original AWS Labs ecs-secrets tool, filled as it did: per record a KMS
/// data key (no encryption context), `EncryptedData` = base64(nonce ‖ AES-256-GCM(ct ‖ tag))
/// under its first 32 bytes without authenticated data, `EncryptedDataKey` = base64(blob).
pub fn legacy_table(endpoint: &str, records: &[(&str, u64, &[u8], bool)]) -> String {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    use ring::rand::{SecureRandom, SystemRandom};
    let table = format!(
        "ECS-Secrets-{}-Secrets",
        unique_path("app").replace('/', "-").trim_matches('-')
    );
    let alias = format!(
        "alias/ECS-Secrets-{}",
        unique_path("cmk").replace('/', "-").trim_matches('-')
    );
    create_key(endpoint, Some(&alias));
    let attr = |n: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let client = dynamodb(endpoint);
    block_on(
        client
            .create_table()
            .table_name(&table)
            .attribute_definitions(attr("Name", ScalarAttributeType::S))
            .attribute_definitions(attr("Serial", ScalarAttributeType::N))
            .key_schema(key("Name", KeyType::Hash))
            .key_schema(key("Serial", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send(),
    )
    .unwrap();
    for (name, serial, value, active) in records {
        let dk = block_on(
            kms(endpoint)
                .generate_data_key()
                .key_id(&alias)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .send(),
        )
        .unwrap();
        let plain = dk.plaintext().unwrap().as_ref();
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).unwrap();
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &plain[..32]).unwrap());
        let mut buf = value.to_vec();
        k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .unwrap();
        let mut data = nonce.to_vec();
        data.extend_from_slice(&buf);
        let b64 = |b: &[u8]| aws_smithy_types::base64::encode(b);
        block_on(
            client
                .put_item()
                .table_name(&table)
                .item("Name", Av::S(name.to_string()))
                .item("Serial", Av::N(serial.to_string()))
                .item("EncryptedData", Av::S(b64(&data)))
                .item(
                    "EncryptedDataKey",
                    Av::S(b64(dk.ciphertext_blob().unwrap().as_ref())),
                )
                .item("Active", Av::Bool(*active))
                .send(),
        )
        .unwrap();
    }
    table
}

/// A table with other keys than ours (a table that is not an ecs-secrets table).
pub fn make_foreign_table(
    endpoint: &str,
    name: &str,
    hash: (&str, ScalarAttributeType),
    range: Option<(&str, ScalarAttributeType)>,
) {
    let attr = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let mut c = dynamodb(endpoint)
        .create_table()
        .table_name(name)
        .attribute_definitions(attr(hash.0, hash.1.clone()))
        .key_schema(key(hash.0, KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest);
    if let Some((n, t)) = range {
        c = c
            .attribute_definitions(attr(n, t))
            .key_schema(key(n, KeyType::Range));
    }
    block_on(c.send()).unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}
