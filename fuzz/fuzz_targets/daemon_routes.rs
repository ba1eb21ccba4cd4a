//! Properties of the daemon's request routing (`src/daemon/route.rs`): `parse` never panics;
//! a parsed name passes validation and has no `.` or `..` part; a route re-encoded (plain,
//! with `%2F`, or every byte escaped) parses back to the same route; refusals are safe to
//! print.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The same module tree as in the crate, seen from route.rs: `super::names`.
#[path = "../../src/names.rs"]
#[allow(dead_code)]
mod names;
#[path = "../../src/daemon/route.rs"]
#[allow(dead_code)]
mod route;

use route::{parse, NoRoute, Route};

/// Every byte as `%XX`, upper- or lower-case hex.
fn escape_all(s: &str, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The route's path under `prefix` with the name written as `enc`.
fn path_of(route: &Route, prefix: &str, enc: &str) -> String {
    match route {
        Route::Secret { serial: None, .. } => format!("{prefix}/secrets/{enc}"),
        Route::Secret {
            serial: Some(s), ..
        } => format!("{prefix}/secrets/{enc}/{s}"),
        Route::Revoke { serial, .. } => format!("{prefix}/revoke/{enc}/{serial}"),
        _ => unreachable!(),
    }
}

/// Starts that lead to each route. Without a sanitizer libFuzzer does not see inside string
/// comparisons, so from scratch it would hardly ever get past `/latest/`.
const STARTS: &[&str] = &[
    "/latest/secrets/",
    "/v1/secrets/",
    "/latest/revoke/",
    "/v1/revoke/",
    "/latest/",
    "/v1/",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    // The first byte picks a start for the rest.
    if let Some(&first) = data.first() {
        if let Some(rest) = text.get(1..) {
            check(&format!("{}{rest}", STARTS[first as usize % STARTS.len()]));
        }
    }
});

fn check(path: &str) {
    let (route, prefix) = match parse(path) {
        Ok(r) => r,
        Err(NoRoute::Unknown) => return,
        Err(NoRoute::Bad(msg)) => {
            // Goes into a JSON error body and the terminal of whoever reads it.
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            return;
        }
    };
    let _ = (route.allow(false), route.allow(true), route.template());
    let (name, serial) = match &route {
        Route::Ping => return assert_eq!(path, "/ping"),
        Route::Version => return assert_eq!(path, format!("{prefix}/version")),
        Route::List => return assert_eq!(path, format!("{prefix}/secrets")),
        Route::Secret { name, serial } => (name, *serial),
        Route::Revoke { name, serial } => (name, Some(*serial)),
    };
    assert!(prefix == "/latest" || prefix == "/v1", "{prefix}");
    assert!(path.starts_with(&format!("{prefix}/")));
    assert_eq!(names::validate_name(name).as_deref(), Ok(name.as_str()));
    assert!(
        name.split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".."),
        "{name:?}"
    );
    assert!(serial.is_none_or(|s| s >= 1));

    for enc in [
        name.replace('/', "%2F"),
        escape_all(name, false),
        escape_all(name, true),
    ] {
        let again = parse(&path_of(&route, prefix, &enc)).map(|(r, p)| (r, p.to_string()));
        assert_eq!(
            again,
            Ok((route_clone(&route), prefix.to_string())),
            "{enc}"
        );
    }
    // Plain slashes are the same route, except that in `/secrets/{name}` a nested name whose
    // last part is all digits reads as `{name}/{serial}`: such names need `%2F`.
    let plain = parse(&path_of(&route, prefix, name)).map(|(r, _)| r);
    match (&route, name.rsplit_once('/')) {
        (Route::Secret { serial: None, .. }, Some((head, last)))
            if last.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let want = names::parse_serial(last)
                .map(|s| Route::Secret {
                    name: head.to_string(),
                    serial: Some(s),
                })
                .map_err(NoRoute::Bad);
            assert_eq!(plain, want, "{name:?}");
        }
        _ => assert_eq!(plain, Ok(route_clone(&route)), "{name:?}"),
    }
}

/// `Route` is not `Clone` in the crate (it does not need to be).
fn route_clone(r: &Route) -> Route {
    match r {
        Route::Ping => Route::Ping,
        Route::Version => Route::Version,
        Route::List => Route::List,
        Route::Secret { name, serial } => Route::Secret {
            name: name.clone(),
            serial: *serial,
        },
        Route::Revoke { name, serial } => Route::Revoke {
            name: name.clone(),
            serial: *serial,
        },
    }
}
