//! One top-level key of a JSON-object secret, as ECS decodes it: a string is itself, any
//! other JSON is its compact text. Errors never carry the value.

use crate::secret::Payload;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of one object in document order, duplicates kept (so they can be refused).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The value of `key` in the JSON object `payload`; `Err` says why not (without the value).
pub fn extract(payload: &Payload, key: &str) -> Result<Payload, String> {
    let text = payload
        .as_str()
        .ok_or("the secret is not text, so it has no JSON keys")?;
    let members: Members = serde_json::from_str(text)
        .map_err(|_| "the secret is not a JSON object, so it has no JSON keys".to_string())?;
    let mut found = members.0.iter().filter(|(k, _)| k == key);
    let Some((_, raw)) = found.next() else {
        return Err(format!(
            "the secret has no JSON key {:?}",
            crate::inject::env::printable(key)
        ));
    };
    if found.next().is_some() {
        return Err(format!(
            "the secret has the JSON key {:?} twice",
            crate::inject::env::printable(key)
        ));
    }
    let raw = raw.get();
    let value = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|_| "bad JSON string".to_string())?
    } else {
        super::expand::compact(raw)
    };
    if value.as_bytes().contains(&0) {
        return Err(
            "the JSON key holds a NUL byte, which no environment variable can carry".into(),
        );
    }
    Ok(Payload::from_string(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(doc: &str, key: &str) -> Result<String, String> {
        extract(&Payload::from_string(doc.into()), key).map(|p| p.as_str().unwrap().to_string())
    }

    #[test]
    fn keys_decode_as_ecs_does() {
        let doc = r#"{"user":"admin","port":5432,"big":123456789012345678901234567890,"o":{ "a" : [1, "x y"] },"t":true,"n":null,"q":"a\"b\nc"}"#;
        assert_eq!(get(doc, "user").unwrap(), "admin");
        assert_eq!(get(doc, "port").unwrap(), "5432");
        assert_eq!(get(doc, "big").unwrap(), "123456789012345678901234567890");
        assert_eq!(get(doc, "o").unwrap(), r#"{"a":[1,"x y"]}"#);
        assert_eq!(get(doc, "t").unwrap(), "true");
        assert_eq!(get(doc, "n").unwrap(), "null");
        assert_eq!(get(doc, "q").unwrap(), "a\"b\nc");
    }

    #[test]
    fn failures_name_no_value() {
        for (doc, key) in [
            ("hunter2", "k"),
            ("[\"hunter2\"]", "k"),
            ("{\"k\":\"hunter2\",\"k\":\"x\"}", "k"),
            ("{\"j\":\"hunter2\"}", "k"),
            ("{\"k\":\"hunter2\\u0000\"}", "k"),
        ] {
            let e = get(doc, key).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
