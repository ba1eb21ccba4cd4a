//! AWS query-protocol calls (IAM, CloudFormation) to moto, for services the tests have no
//! SDK client for.

use super::{http_request, HttpResponse};

/// An AWS query-protocol call (IAM, CloudFormation) with a placeholder signature: moto
/// routes by the credential scope and does not check signatures.
pub fn aws_query(endpoint: &str, service: &str, params: &[(&str, &str)]) -> HttpResponse {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    http_request(
        "POST",
        &format!("{endpoint}/"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", &auth),
        ],
        body.join("&").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{service} {params:?}: {e}"))
}

/// Deploys `template` into moto's CloudFormation as `stack`, asserts it reached
/// CREATE_COMPLETE and returns the DescribeStacks answer (it carries the outputs).
pub fn deploy_stack(endpoint: &str, stack: &str, template: &str) -> HttpResponse {
    let r = aws_query(
        endpoint,
        "cloudformation",
        &[
            ("Action", "CreateStack"),
            ("Version", "2010-05-15"),
            ("StackName", stack),
            ("TemplateBody", template.trim()),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = aws_query(
        endpoint,
        "cloudformation",
        &[
            ("Action", "DescribeStacks"),
            ("Version", "2010-05-15"),
            ("StackName", stack),
        ],
    );
    assert!(
        r.text()
            .contains("<StackStatus>CREATE_COMPLETE</StackStatus>"),
        "{}",
        r.text()
    );
    r
}

/// IAM returns policy documents URL-encoded.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
