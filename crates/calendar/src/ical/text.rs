//! Property and parameter values as text, for CalDAV text-match (RFC 4791 §9.7.5).
//!
//! calcard keeps values typed; text-match compares against the value as written,
//! so non-text values are serialised with calcard's writer and cut after the name.

use calcard::icalendar::{ICalendarEntry, ICalendarParameterName, ICalendarValue};

/// The value of a property as a client wrote it (TEXT unescaped, others as in the file).
pub fn property_text(entry: &ICalendarEntry) -> String {
    if let [ICalendarValue::Text(text)] = entry.values.as_slice() {
        return text.clone();
    }
    let mut line = String::new();
    if entry.write_to(&mut line).is_err() {
        return String::new();
    }
    let unfolded = line.replace("\r\n ", "").replace("\r\n", "");
    value_after_colon(&unfolded).to_owned()
}

/// The text after the first colon that is not inside a quoted parameter value.
fn value_after_colon(line: &str) -> &str {
    let mut in_quotes = false;
    for (index, ch) in line.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return line.get(index + 1..).unwrap_or(""),
            _ => {}
        }
    }
    ""
}

/// Values of parameter `name` on `entry`, as text.
pub fn parameter_texts(entry: &ICalendarEntry, name: &str) -> Vec<String> {
    entry
        .params
        .iter()
        .filter(|p| parameter_name(&p.name).eq_ignore_ascii_case(name))
        .map(|p| p.value.as_text().map(str::to_owned).unwrap_or_default())
        .collect()
}

fn parameter_name(name: &ICalendarParameterName) -> &str {
    name.as_str()
}
