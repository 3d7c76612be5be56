//! The "Mail" page of the admin site: the queue with each message's reason and actions,
//! the last deferrals and bounces, the postmaster's latest notices, DKIM records to publish.
//! The same actions serve `serval mail flush|delete|bounce` through the admin API.

use std::sync::Arc;

use serval_core::html::escape;

use crate::queue::{humantime_secs, Queue};

pub struct MailPanel {
    pub(crate) queue: Arc<Queue>,
    pub(crate) signer: Option<Arc<crate::dkim::Signer>>,
    pub(crate) hostname: String,
    pub(crate) local_domains: Vec<String>,
    pub(crate) relay: String,
}

impl MailPanel {
    /// Subjects of the newest messages in the postmaster's Maildir.
    fn postmaster_notices(&self) -> Vec<(u64, String)> {
        let dir = self
            .queue
            .spool
            .mailboxes
            .join(self.queue.postmaster())
            .join("new");
        let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                let secs = modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                Some((secs, e.path()))
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        files
            .into_iter()
            .take(10)
            .map(|(t, path)| {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let (headers, _) = crate::message::split_headers(&bytes);
                let subject = crate::message::header_value(headers, "subject").unwrap_or_default();
                (t, subject)
            })
            .collect()
    }
}

impl serval_core::service::AdminPanel for MailPanel {
    fn render(&self, csrf_field: &str, action_url: &str) -> String {
        let now = serval_core::now_unix();
        let messages = self.queue.list();
        let mut html = format!(
            "<p>Host name <code>{}</code>; local domains {}; mail for other domains goes to <strong>{}</strong>.</p>",
            escape(&self.hostname),
            self.local_domains
                .iter()
                .map(|d| format!("<code>{}</code>", escape(d)))
                .collect::<Vec<_>>()
                .join(", "),
            escape(&self.relay)
        );
        let m = &self.queue.metrics;
        html.push_str(&format!(
            "<p>Accepted {}, delivered {}, deferred {}, bounced {} since start.</p>",
            m.accepted.get(),
            m.delivered.get(),
            m.deferred.get(),
            m.bounced.get()
        ));
        html.push_str(&format!("<h3>Queue ({} messages)</h3>", messages.len()));
        if messages.is_empty() {
            html.push_str("<p>The queue is empty.</p>");
        } else {
            html.push_str(&format!(
                "<form method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"action\" value=\"flush\"><button>Retry all now</button></form>",
                escape(action_url),
                csrf_field
            ));
            html.push_str("<table><tr><th>ID</th><th>From</th><th>To (pending)</th><th>Age</th><th>Attempts</th><th>Next try</th><th>Last error</th><th></th></tr>");
            for msg in messages.iter().take(500) {
                let next = if msg.in_flight {
                    "delivering".to_string()
                } else if msg.next_try <= now {
                    "now".to_string()
                } else {
                    format!("in {}", humantime_secs(msg.next_try - now))
                };
                let actions = ["retry", "delete", "bounce"]
                    .iter()
                    .map(|a| {
                        format!(
                            "<form method=\"post\" action=\"{}\" style=\"display:inline\">{}<input type=\"hidden\" name=\"action\" value=\"{a}\"><input type=\"hidden\" name=\"id\" value=\"{}\"><button>{a}</button></form>",
                            escape(action_url),
                            csrf_field,
                            escape(&msg.id)
                        )
                    })
                    .collect::<String>();
                html.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&msg.id),
                    escape(if msg.sender.is_empty() { "<> (bounce)" } else { &msg.sender }),
                    escape(&msg.pending.join(", ")),
                    humantime_secs(now.saturating_sub(msg.received_at)),
                    msg.attempts,
                    next,
                    escape(msg.last_error.as_deref().unwrap_or("")),
                    actions
                ));
            }
            html.push_str("</table>");
        }
        let events = self.queue.events();
        html.push_str("<h3>Last deferrals and bounces</h3>");
        if events.is_empty() {
            html.push_str("<p>None since start.</p>");
        } else {
            html.push_str("<table><tr><th>When</th><th>ID</th><th>What</th><th>Recipient</th><th>Next hop</th><th>Reply or error</th></tr>");
            for e in events.iter().take(30) {
                html.push_str(&format!(
                    "<tr><td>{} ago</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    humantime_secs(now.saturating_sub(e.at)),
                    escape(&e.id),
                    e.kind,
                    escape(&e.recipients),
                    escape(&e.hop),
                    escape(&e.reason)
                ));
            }
            html.push_str("</table>");
        }
        let notices = self.postmaster_notices();
        html.push_str(&format!(
            "<h3>Postmaster mailbox ({})</h3>",
            escape(self.queue.postmaster())
        ));
        if notices.is_empty() {
            html.push_str("<p>No notices.</p>");
        } else {
            html.push_str("<ul>");
            for (t, subject) in notices {
                html.push_str(&format!(
                    "<li>{} ago: {}</li>",
                    humantime_secs(now.saturating_sub(t)),
                    escape(&subject)
                ));
            }
            html.push_str("</ul>");
        }
        html.push_str("<h3>DKIM</h3>");
        match &self.signer {
            None => {
                html.push_str("<p>Signing is off (<code>[mail.dkim] enabled = false</code>).</p>")
            }
            Some(signer) => {
                html.push_str("<p>Publish these TXT records, then mail from these domains is verifiably yours:</p><table><tr><th>Name</th><th>TXT</th></tr>");
                for (name, value) in signer.records() {
                    html.push_str(&format!(
                        "<tr><td><code>{}</code></td><td><code style=\"word-break:break-all\">{}</code></td></tr>",
                        escape(&name),
                        escape(&value)
                    ));
                }
                html.push_str("</table>");
            }
        }
        html
    }

    fn handle_action(&self, form: &[(String, String)]) -> Result<String, String> {
        let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
        let id = field("id").unwrap_or("");
        if !id.is_empty() && !crate::queue::spool::is_queue_id(id) {
            return Err(format!("`{id}` is not a queue ID"));
        }
        match field("action") {
            Some("flush") => Ok(format!(
                "{} messages will be retried now",
                self.queue.flush(None)
            )),
            Some("retry") => match self.queue.flush(Some(id)) {
                0 => Err(format!(
                    "no deferred message {id} (it may be being delivered)"
                )),
                _ => Ok(format!("{id} will be retried now")),
            },
            Some("delete") => self.queue.delete(id).map(|()| format!("{id} deleted")),
            Some("bounce") => {
                let queue = self.queue.clone();
                let id_owned = id.to_string();
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current()
                        .block_on(async move { queue.bounce_now(&id_owned).await })
                })
                .map(|()| format!("{id} returned to its sender"))
            }
            _ => Err("unknown action; use flush, retry, delete or bounce".into()),
        }
    }

    fn json(&self) -> serde_json::Value {
        let m = &self.queue.metrics;
        serde_json::json!({
            "hostname": self.hostname,
            "local_domains": self.local_domains,
            "route": self.relay,
            "queue": self.queue.list(),
            "events": self.queue.events(),
            "accepted": m.accepted.get(),
            "delivered": m.delivered.get(),
            "deferred": m.deferred.get(),
            "bounced": m.bounced.get(),
            "dkim": self.signer.as_ref().map(|s| s.records()),
        })
    }
}
