//! The URL space (documented in ARCHITECTURE terms):
//!
//! ```text
//! /.well-known/caldav                       -> 301 to /
//! /principals/users/NAME/                   user principal
//! /principals/users/NAME/calendar-proxy-read/   and -write/: delegate groups (CalendarServer)
//! /principals/groups/NAME/                  group principal
//! /calendars/users/NAME/                    calendar home
//! /calendars/users/NAME/CAL/                calendar collection
//! /calendars/users/NAME/CAL/OBJECT.ics      calendar object
//! ```
//! Names are percent-decoded; segments with `/`, `..` or control characters are refused.

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Root,
    WellKnown,
    Principals,
    UserPrincipals,
    User(String),
    ProxyGroup {
        owner: String,
        write: bool,
    },
    GroupPrincipals,
    Group(String),
    Calendars,
    Homes,
    Home(String),
    Collection {
        owner: String,
        calendar: String,
    },
    Object {
        owner: String,
        calendar: String,
        object: String,
    },
}

/// Longest path accepted.
pub const MAX_PATH_BYTES: usize = 2048;

pub fn parse(path: &str) -> Option<Target> {
    if path.len() > MAX_PATH_BYTES {
        return None;
    }
    let trimmed = path.trim_start_matches('/');
    let mut segments = Vec::new();
    for raw in trimmed.split('/').filter(|s| !s.is_empty()) {
        let decoded = urlencoding::decode(raw).ok()?.into_owned();
        if decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.chars().any(char::is_control)
        {
            return None;
        }
        segments.push(decoded);
    }
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    Some(match parts.as_slice() {
        [] => Target::Root,
        [".well-known", "caldav"] => Target::WellKnown,
        ["principals"] => Target::Principals,
        ["principals", "users"] => Target::UserPrincipals,
        ["principals", "users", name] => Target::User((*name).to_owned()),
        ["principals", "users", name, "calendar-proxy-read"] => Target::ProxyGroup {
            owner: (*name).to_owned(),
            write: false,
        },
        ["principals", "users", name, "calendar-proxy-write"] => Target::ProxyGroup {
            owner: (*name).to_owned(),
            write: true,
        },
        ["principals", "groups"] => Target::GroupPrincipals,
        ["principals", "groups", name] => Target::Group((*name).to_owned()),
        ["calendars"] => Target::Calendars,
        ["calendars", "users"] => Target::Homes,
        ["calendars", "users", name] => Target::Home((*name).to_owned()),
        ["calendars", "users", name, cal] => Target::Collection {
            owner: (*name).to_owned(),
            calendar: (*cal).to_owned(),
        },
        // Group calendar homes: the owner key is `group:NAME` (user names cannot hold ':').
        ["calendars", "groups", name] => Target::Home(format!("group:{name}")),
        ["calendars", "groups", name, cal] => Target::Collection {
            owner: format!("group:{name}"),
            calendar: (*cal).to_owned(),
        },
        ["calendars", "groups", name, cal, obj] => Target::Object {
            owner: format!("group:{name}"),
            calendar: (*cal).to_owned(),
            object: (*obj).to_owned(),
        },
        ["calendars", "users", name, cal, obj] => Target::Object {
            owner: (*name).to_owned(),
            calendar: (*cal).to_owned(),
            object: (*obj).to_owned(),
        },
        _ => return None,
    })
}

/// Bytes escaped in a path segment: everything but RFC 3986 `pchar` (unreserved,
/// sub-delims, ':' and '@'). Keeping '@' literal gives a resource one spelling, the one
/// clients wrote (caldav-server-tester's url.encode-at.identity).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn enc(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// The principal URL of a user, or of a group for a `group:NAME` owner key.
pub fn user_principal(name: &str) -> String {
    match name.strip_prefix("group:") {
        Some(group) => group_principal(group),
        None => format!("/principals/users/{}/", enc(name)),
    }
}

pub fn group_principal(name: &str) -> String {
    format!("/principals/groups/{}/", enc(name))
}

pub fn proxy_group(owner: &str, write: bool) -> String {
    format!(
        "{}calendar-proxy-{}/",
        user_principal(owner),
        if write { "write" } else { "read" }
    )
}

/// Calendar home of a user, or of a group for a `group:NAME` owner key.
pub fn home(owner: &str) -> String {
    match owner.strip_prefix("group:") {
        Some(group) => format!("/calendars/groups/{}/", enc(group)),
        None => format!("/calendars/users/{}/", enc(owner)),
    }
}

pub fn collection(owner: &str, calendar: &str) -> String {
    format!("{}{}/", home(owner), enc(calendar))
}

pub fn object(owner: &str, calendar: &str, object: &str) -> String {
    format!("{}{}", collection(owner, calendar), enc(object))
}

/// A principal named by href (absolute URL or path): a user, or a group as `group:NAME`.
pub fn principal_from_href(href: &str) -> Option<String> {
    let path = match href.find("://") {
        Some(scheme_end) => {
            let after = href.get(scheme_end + 3..)?;
            after.find('/').and_then(|i| after.get(i..)).unwrap_or("/")
        }
        None => href,
    };
    match parse(path)? {
        Target::User(name) => Some(name),
        Target::Group(name) => Some(format!("group:{name}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(
            parse(&object("ann lee", "work", "a b.ics")),
            Some(Target::Object {
                owner: "ann lee".into(),
                calendar: "work".into(),
                object: "a b.ics".into()
            })
        );
        assert_eq!(
            parse("/principals/users/ann/calendar-proxy-write/"),
            Some(Target::ProxyGroup {
                owner: "ann".into(),
                write: true
            })
        );
        assert_eq!(parse("/calendars/users/ann/%2e%2e/"), None);
        assert_eq!(parse("/calendars/users/ann/a%2Fb/"), None);
        assert_eq!(parse("/nope"), None);
        assert_eq!(
            object("ann", "a@b", "x y@z.ics"),
            "/calendars/users/ann/a@b/x%20y@z.ics"
        );
        assert_eq!(
            parse(&collection("group:staff", "rota")),
            Some(Target::Collection {
                owner: "group:staff".into(),
                calendar: "rota".into()
            })
        );
        assert_eq!(
            principal_from_href("http://h:8008/principals/users/bob/"),
            Some("bob".into())
        );
        assert_eq!(
            principal_from_href("/principals/groups/staff/"),
            Some("group:staff".into())
        );
    }
}
