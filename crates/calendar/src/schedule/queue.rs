//! The outgoing iTIP queue as the admin page shows it: who sent what to whom and when,
//! newest first. Message bodies stay out of the page (they hold meeting titles); the
//! JSON view gives their size only.

use crate::store::schedule::QueuedItip;

/// Rows shown on the admin page.
pub const ADMIN_ROWS: usize = 50;

/// An HTML section for the calendar panel.
pub fn html(queue: &[QueuedItip]) -> String {
    let mut out = String::from("<h3>Scheduling messages waiting for mail delivery (iMIP)</h3>");
    if queue.is_empty() {
        out.push_str("<p>None queued.</p>");
        return out;
    }
    out.push_str(
        "<table><tr><th>Queued</th><th>From</th><th>To</th><th>Method</th><th>UID</th></tr>",
    );
    for item in queue {
        let queued = chrono::DateTime::<chrono::Utc>::from_timestamp(item.queued_at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            queued,
            escape(&item.sender),
            escape(&item.recipient),
            escape(&item.method),
            escape(&item.uid)
        ));
    }
    out.push_str("</table>");
    out
}

pub fn json(queue: &[QueuedItip]) -> serde_json::Value {
    serde_json::Value::Array(
        queue
            .iter()
            .map(|q| {
                serde_json::json!({
                    "id": q.id, "sender": q.sender, "recipient": q.recipient,
                    "method": q.method, "uid": q.uid, "queued_at": q.queued_at,
                    "bytes": q.message.len(),
                })
            })
            .collect(),
    )
}

fn escape(text: &str) -> String {
    crate::dav::xml::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_rows_are_escaped_and_bodies_left_out() {
        let item = QueuedItip {
            id: 1,
            sender: "ann".into(),
            recipient: "mailto:<zed>@elsewhere.org".into(),
            method: "REQUEST".into(),
            uid: "m1".into(),
            message: "SUMMARY:Secret".into(),
            queued_at: 0,
        };
        let page = html(std::slice::from_ref(&item));
        assert!(page.contains("mailto:&lt;zed&gt;@elsewhere.org"), "{page}");
        assert!(page.contains("1970-01-01 00:00 UTC"));
        assert!(!page.contains("Secret"));
        assert_eq!(json(&[item])[0]["bytes"], 14);
        assert!(html(&[]).contains("None queued"));
    }

    #[test]
    fn the_admin_panel_lists_the_queue() {
        use crate::store::schedule::{NewItip, ScheduleStore};
        use serval_core::service::AdminPanel;
        let dir = tempfile::tempdir().unwrap();
        let store = serval_core::Store::open(&dir.path().join("serval.db")).unwrap();
        let directory = serval_core::Directory::new(
            store.clone(),
            &serval_core::config::DirectoryConfig::default(),
        );
        let calendars = crate::store::SqliteCalendarStore::open(store.clone()).unwrap();
        calendars
            .queue_itip(
                &NewItip {
                    sender: "ann",
                    recipient: "mailto:zed@elsewhere.org",
                    method: "CANCEL",
                    uid: "m9",
                    message: "BEGIN:VCALENDAR",
                },
                0,
            )
            .unwrap();
        let panel = crate::admin::CalendarPanel {
            store: std::sync::Arc::new(calendars),
            directory,
        };
        let page = panel.render("", "/admin/calendar");
        assert!(
            page.contains("mailto:zed@elsewhere.org") && page.contains("CANCEL"),
            "{page}"
        );
        assert_eq!(panel.json()["itip_queue"][0]["uid"], "m9");
    }
}
