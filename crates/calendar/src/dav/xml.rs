//! A bounded XML element tree for WebDAV request bodies, built with quick-xml.
//!
//! DAV bodies are small and their meaning depends on nesting, so a tree (namespace URI +
//! local name per element) is simpler to interpret than a stream. Clients pick arbitrary
//! prefixes; only resolved namespace URIs are kept. Size, depth and element count are
//! capped before anything grows.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

pub const NS_DAV: &str = "DAV:";
pub const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const NS_CALSERVER: &str = "http://calendarserver.org/ns/";
pub const NS_APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// Request bodies above this are refused (CalendarServer caps multiget hrefs at 5,000;
/// 5,000 hrefs of ~200 bytes fit in 1 MiB).
pub const MAX_XML_BYTES: usize = 1024 * 1024;
/// Nesting depth; calendar-query filters are the deepest legitimate bodies (~8).
pub const MAX_XML_DEPTH: usize = 32;
/// Elements per body.
pub const MAX_XML_ELEMENTS: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML body is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("XML nesting deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("XML body has more than {limit} elements")]
    TooManyElements { limit: usize },
    #[error("malformed XML at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error("namespace prefix `{prefix}` is not declared")]
    UnknownPrefix { prefix: String },
    #[error("empty XML body")]
    Empty,
    #[error("expected <{expected}>, found <{found}>")]
    UnexpectedRoot { expected: String, found: String },
}

/// One element: namespace URI ("" when unbound), local name, attributes (by local name),
/// text content and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Text content of this element and its descendants, trimmed.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out.trim().to_owned()
    }

    fn collect_text(&self, out: &mut String) {
        out.push_str(&self.text);
        for child in &self.children {
            child.collect_text(out);
        }
    }
}

/// Parses a whole body into its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    if body.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge {
            size: body.len(),
            limit: MAX_XML_BYTES,
        });
    }
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().expand_empty_elements = true;
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut n_elements = 0usize;
    loop {
        let offset = reader.buffer_position();
        let malformed = |reason: String| XmlError::Malformed { offset, reason };
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| malformed(e.to_string()))?;
        match event {
            Event::Start(start) => {
                n_elements += 1;
                if n_elements > MAX_XML_ELEMENTS {
                    return Err(XmlError::TooManyElements {
                        limit: MAX_XML_ELEMENTS,
                    });
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(XmlError::TooDeep {
                        limit: MAX_XML_DEPTH,
                    });
                }
                let ns = namespace_of(ns)?;
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| malformed(e.to_string()))?;
                    let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
                    let value = attr
                        .unescape_value()
                        .map_err(|e| malformed(e.to_string()))?
                        .into_owned();
                    attrs.push((key, value));
                }
                stack.push(Element {
                    ns,
                    name,
                    attrs,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(malformed("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current
                        .text
                        .push_str(&text.decode().map_err(|e| malformed(e.to_string()))?);
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::GeneralRef(reference) => {
                let Some(current) = stack.last_mut() else {
                    continue;
                };
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    current.text.push(ch);
                } else {
                    let name: &[u8] = &reference;
                    let entity = match name {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(malformed(format!(
                                "unknown entity &{};",
                                String::from_utf8_lossy(other)
                            )))
                        }
                    };
                    current.text.push(entity);
                }
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    XmlError::Empty
                } else {
                    malformed("unexpected end of body".into())
                });
            }
            // DOCTYPE is refused outright: no entity expansion from untrusted bodies.
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed".into())),
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
        buf.clear();
    }
}

fn namespace_of(resolved: ResolveResult<'_>) -> Result<String, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(XmlError::UnknownPrefix {
            prefix: String::from_utf8_lossy(&prefix).into_owned(),
        }),
    }
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_to_namespaces() {
        let root = parse(br#"<?xml version="1.0"?><x:propfind xmlns:x="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><x:prop><c:calendar-data/><displayname xmlns="DAV:"/></x:prop></x:propfind>"#).unwrap();
        assert!(root.is(NS_DAV, "propfind"));
        let prop = root.child(NS_DAV, "prop").unwrap();
        assert!(prop.children[0].is(NS_CALDAV, "calendar-data"));
        assert!(prop.children[1].is(NS_DAV, "displayname"));
    }

    #[test]
    fn entities_and_text_are_decoded() {
        let root = parse(b"<a xmlns='DAV:'>x &amp; y &#65;<![CDATA[<z>]]></a>").unwrap();
        assert_eq!(root.text_content(), "x & y A<z>");
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(matches!(
            parse(b"<x:a/>"),
            Err(XmlError::UnknownPrefix { .. })
        ));
        assert!(parse(b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
        for cut in 0..40 {
            let body = b"<d:propfind xmlns:d=\"DAV:\"><d:prop/></d:propfind>";
            let _ = parse(body.get(..cut).unwrap_or(body));
        }
    }
}
