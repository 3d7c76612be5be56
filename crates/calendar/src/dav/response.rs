//! Multistatus (RFC 4918 §13) and precondition error bodies.
//!
//! Well-known namespaces get fixed prefixes declared once on the root (D, C, CS, ICAL);
//! any other namespace is declared on the property element itself.

use super::request::PropName;
use super::xml::{escape, NS_APPLE_ICAL, NS_CALDAV, NS_CALSERVER, NS_DAV};
use std::fmt::Write;

/// A property value ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Empty,
    Text(String),
    /// Already-serialised child XML using the root's prefixes.
    Xml(String),
    Hrefs(Vec<String>),
}

const ROOT_NAMESPACES: &str = concat!(
    " xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"",
    " xmlns:CS=\"http://calendarserver.org/ns/\" xmlns:ICAL=\"http://apple.com/ns/ical/\""
);

fn prefix_of(ns: &str) -> Option<&'static str> {
    match ns {
        NS_DAV => Some("D"),
        NS_CALDAV => Some("C"),
        NS_CALSERVER => Some("CS"),
        NS_APPLE_ICAL => Some("ICAL"),
        _ => None,
    }
}

/// Writes `<name>value</name>` for one property.
pub fn write_prop(out: &mut String, name: &PropName, value: &PropValue) {
    let (open, close) = match prefix_of(&name.ns) {
        Some(prefix) => (
            format!("{prefix}:{}", name.name),
            format!("{prefix}:{}", name.name),
        ),
        None if name.ns.is_empty() => (name.name.clone(), name.name.clone()),
        None => (
            format!("X:{} xmlns:X=\"{}\"", name.name, escape(&name.ns)),
            format!("X:{}", name.name),
        ),
    };
    match value {
        PropValue::Empty => {
            let _ = write!(out, "<{open}/>");
        }
        PropValue::Text(text) => {
            let _ = write!(out, "<{open}>{}</{close}>", escape(text));
        }
        PropValue::Xml(inner) => {
            let _ = write!(out, "<{open}>{inner}</{close}>");
        }
        PropValue::Hrefs(hrefs) => {
            let _ = write!(out, "<{open}>");
            for href in hrefs {
                let _ = write!(out, "<D:href>{}</D:href>", escape(href));
            }
            let _ = write!(out, "</{close}>");
        }
    }
}

/// One `DAV:response` with 200 and 404 propstats; also used nested, inside properties
/// of an expand-property answer (RFC 3253 §3.8).
pub fn write_response(
    out: &mut String,
    href: &str,
    found: &[(PropName, PropValue)],
    not_found: &[PropName],
) {
    let _ = write!(out, "<D:response><D:href>{}</D:href>", escape(href));
    if !found.is_empty() || not_found.is_empty() {
        out.push_str("<D:propstat><D:prop>");
        for (name, value) in found {
            write_prop(out, name, value);
        }
        out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }
    if !not_found.is_empty() {
        out.push_str("<D:propstat><D:prop>");
        for name in not_found {
            write_prop(out, name, &PropValue::Empty);
        }
        out.push_str("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
    }
    out.push_str("</D:response>");
}

/// A multistatus body under construction.
pub struct Multistatus {
    out: String,
}

impl Default for Multistatus {
    fn default() -> Self {
        Self::new()
    }
}

impl Multistatus {
    pub fn new() -> Self {
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus{ROOT_NAMESPACES}>"
        );
        Self { out }
    }

    /// One resource with its found properties (200) and missing ones (404).
    pub fn response(
        &mut self,
        href: &str,
        found: &[(PropName, PropValue)],
        not_found: &[PropName],
    ) {
        write_response(&mut self.out, href, found, not_found);
    }

    /// PROPPATCH result: every property with the same status.
    pub fn propstat_status(&mut self, href: &str, names: &[PropName], status: &str) {
        let _ = write!(
            self.out,
            "<D:response><D:href>{}</D:href><D:propstat><D:prop>",
            escape(href)
        );
        for name in names {
            write_prop(&mut self.out, name, &PropValue::Empty);
        }
        let _ = write!(
            self.out,
            "</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat></D:response>"
        );
    }

    /// A resource with only a status (missing multiget href, deleted sync member).
    pub fn status(&mut self, href: &str, status: &str) {
        let _ = write!(
            self.out,
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 {status}</D:status></D:response>",
            escape(href)
        );
    }

    /// A response carrying a status and a DAV-namespace precondition element (RFC 4918
    /// §14.24 allows `DAV:error` inside `DAV:response`).
    pub fn status_with_error(&mut self, href: &str, status: &str, dav_element: &str) {
        let _ = write!(
            self.out,
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 {status}</D:status><D:error><D:{dav_element}/></D:error></D:response>",
            escape(href),
        );
    }

    pub fn sync_token(&mut self, token: &str) {
        let _ = write!(self.out, "<D:sync-token>{}</D:sync-token>", escape(token));
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</D:multistatus>\n");
        self.out
    }
}

/// `DAV:error` body naming a failed precondition (RFC 4918 §16, RFC 4791 §1.3).
pub fn error_body(ns: &str, element: &str, inner: &str, description: &str) -> String {
    let prefix = prefix_of(ns).unwrap_or("D");
    // What exactly is wrong, in CalendarServer's element (Apple clients log it): the
    // precondition alone does not tell a user which line of their file broke.
    let description = if description.is_empty() {
        String::new()
    } else {
        format!(
            "<error-description xmlns=\"http://twistedmatrix.com/xml_namespace/dav/\">{}</error-description>",
            crate::dav::xml::escape(description)
        )
    };
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error{ROOT_NAMESPACES}><{prefix}:{element}>{inner}</{prefix}:{element}>{description}</D:error>\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::xml;

    #[test]
    fn multistatus_round_trips_through_our_parser() {
        let mut ms = Multistatus::new();
        ms.response(
            "/calendars/users/ann/work/",
            &[
                (
                    PropName::new(NS_DAV, "displayname"),
                    PropValue::Text("Work & play".into()),
                ),
                (
                    PropName::new(NS_DAV, "resourcetype"),
                    PropValue::Xml("<D:collection/><C:calendar/>".into()),
                ),
                (PropName::new("urn:x", "odd"), PropValue::Text("1".into())),
            ],
            &[PropName::new(NS_CALSERVER, "getctag")],
        );
        ms.status("/gone.ics", "404 Not Found");
        ms.sync_token("http://serval.invalid/sync/3");
        let text = ms.finish();
        let root = xml::parse(text.as_bytes()).unwrap();
        assert!(root.is(NS_DAV, "multistatus"));
        let response = root.child(NS_DAV, "response").unwrap();
        let prop = response
            .child(NS_DAV, "propstat")
            .unwrap()
            .child(NS_DAV, "prop")
            .unwrap();
        assert_eq!(
            prop.child(NS_DAV, "displayname").unwrap().text_content(),
            "Work & play"
        );
        assert!(prop
            .child(NS_DAV, "resourcetype")
            .unwrap()
            .child(NS_CALDAV, "calendar")
            .is_some());
        assert!(prop.child("urn:x", "odd").is_some());
        assert_eq!(
            root.child(NS_DAV, "sync-token").unwrap().text_content(),
            "http://serval.invalid/sync/3"
        );
    }

    #[test]
    fn error_body_names_the_precondition() {
        let body = error_body(
            NS_CALDAV,
            "no-uid-conflict",
            "<D:href>/a.ics</D:href>",
            "UID <x> is used",
        );
        let root = xml::parse(body.as_bytes()).unwrap();
        assert!(root.child(NS_CALDAV, "no-uid-conflict").is_some());
        let description = root
            .child(
                "http://twistedmatrix.com/xml_namespace/dav/",
                "error-description",
            )
            .expect("description");
        assert_eq!(description.text, "UID <x> is used");
    }
}
