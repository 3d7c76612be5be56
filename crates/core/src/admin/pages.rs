//! Server-rendered HTML of the admin site: one layout, a small stylesheet, no JavaScript.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use super::session::{AdminSession, CSRF_FIELD};
use crate::directory::{Group, User};
use crate::html::escape;
use crate::service::RunningService;

const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1d2330;background:#f4f5f7}
header{background:#1f2a3a;color:#fff;padding:0 24px;display:flex;align-items:center;gap:28px;height:52px}
header .brand{font-weight:700;font-size:18px;letter-spacing:.5px}header nav{display:flex;gap:4px;flex:1}
header nav a{color:#c9d3e3;text-decoration:none;padding:6px 12px;border-radius:6px}header nav a:hover,header nav a.on{background:#33425a;color:#fff}
header form{margin:0}header .who{color:#c9d3e3;font-size:13px;margin-right:8px}
main{max-width:1080px;margin:24px auto;padding:0 24px}h1{font-size:22px;margin:0 0 16px}h2{font-size:17px;margin:28px 0 10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:10px;padding:18px 20px;margin-bottom:18px}
table{width:100%;border-collapse:collapse;background:#fff}th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6578;background:#fafbfc}
input[type=text],input[type=password],input[type=email],select{padding:7px 9px;border:1px solid #c3c9d4;border-radius:6px;font:inherit;min-width:150px}
button{padding:7px 14px;border:0;border-radius:6px;background:#2f6fde;color:#fff;font:inherit;cursor:pointer}button.quiet{background:#e7eaf0;color:#1d2330}button.danger{background:#c8402f}
form.inline{display:inline-flex;gap:6px;align-items:center;margin:0}.row{display:flex;gap:10px;flex-wrap:wrap;align-items:center}
.msg{background:#e8f1ff;border:1px solid #b9d0f5;padding:10px 14px;border-radius:8px;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:14px}.stat{font-size:24px;font-weight:600}.muted{color:#68728a;font-size:13px}
.ok{color:#137a3c;font-weight:600}.bad{color:#b3261e;font-weight:600}pre.log{background:#10151e;color:#d6deeb;padding:14px;border-radius:8px;overflow:auto;max-height:70vh;font-size:12.5px;white-space:pre-wrap}
.login{max-width:380px;margin:80px auto}.login label{display:block;margin:12px 0 4px;font-weight:600}.login input{width:100%}.login button{margin-top:16px;width:100%}
";

/// The navigation bar's inputs: who is logged in, the current page, the running services.
type Nav<'a> = (&'a AdminSession, &'a str, &'a [Arc<dyn RunningService>]);

fn page(title: &str, nav: Option<Nav<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(4096 + body.len());
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · Serval</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    out.push_str("<header><span class=\"brand\">Serval</span>");
    if let Some((session, current, services)) = nav {
        out.push_str("<nav>");
        let mut links = vec![
            ("/admin/".to_string(), "Overview".to_string()),
            ("/admin/users".into(), "Users".into()),
            ("/admin/groups".into(), "Groups".into()),
        ];
        for s in services.iter().filter(|s| s.admin_panel().is_some()) {
            links.push((format!("/admin/service/{}", s.name()), capitalize(s.name())));
        }
        links.push(("/admin/logs".into(), "Log".into()));
        for (href, label) in links {
            let on = if href == current { " class=\"on\"" } else { "" };
            let _ = write!(
                out,
                "<a href=\"{}\"{on}>{}</a>",
                escape(&href),
                escape(&label)
            );
        }
        let _ = write!(
            out,
            "</nav><span class=\"who\">{}</span><form method=\"post\" action=\"/logout\">{}<button class=\"quiet\" type=\"submit\">Log out</button></form>",
            escape(&session.user),
            csrf_input(session)
        );
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main></body></html>");
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn csrf_input(session: &AdminSession) -> String {
    format!(
        "<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{}\">",
        escape(&session.csrf)
    )
}

fn message(msg: Option<&str>) -> String {
    msg.map(|m| format!("<div class=\"msg\" role=\"status\">{}</div>", escape(m)))
        .unwrap_or_default()
}

pub(super) fn message_page(title: &str, text: &str) -> String {
    page(title, None, &format!("<div class=\"card login\"><h1>{}</h1><p>{}</p><p><a href=\"/admin/\">Back</a></p></div>", escape(title), escape(text)))
}

pub(super) fn login_page(
    csrf: &str,
    msg: Option<&str>,
    first_run: bool,
    no_admin_remote: bool,
) -> String {
    let csrf = format!(
        "<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{}\">",
        escape(csrf)
    );
    let body = if first_run {
        format!(
            "<div class=\"card login\"><h1>Welcome to Serval</h1>{}<p class=\"muted\">No administrator exists yet. Create the first one; it joins the <b>admin</b> group.</p>\
             <form method=\"post\" action=\"/setup\">{csrf}<label for=\"username\">User name</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required>\
             <label for=\"password2\">Password again</label><input type=\"password\" id=\"password2\" name=\"password2\" autocomplete=\"new-password\" required>\
             <button type=\"submit\">Create administrator</button></form></div>",
            message(msg)
        )
    } else {
        let hint = if no_admin_remote {
            "<p class=\"muted\">No administrator exists yet. On the server, run <code>serval user add admin</code> and <code>serval group add-member admin admin</code>, or open this page from the server itself.</p>"
        } else {
            ""
        };
        format!(
            "<div class=\"card login\"><h1>Log in</h1>{}{hint}<form method=\"post\" action=\"/login\">{csrf}\
             <label for=\"username\">User name</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Log in</button></form></div>",
            message(msg)
        )
    };
    page("Log in", None, &body)
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

pub(super) fn overview(
    session: &AdminSession,
    status: &Value,
    services: &[Arc<dyn RunningService>],
) -> String {
    let mut b = String::from("<h1>Overview</h1><div class=\"grid\">");
    let uptime = status["uptime_seconds"].as_u64().unwrap_or(0);
    let rss = status["process"]["rss_bytes"].as_u64().unwrap_or(0);
    let conns: u64 = services.iter().map(|s| s.connections()).sum();
    for (label, value) in [
        ("Version", format!("Serval {}", crate::VERSION)),
        ("Uptime", human_duration(uptime)),
        ("Connections", conns.to_string()),
        ("Memory", format!("{:.1} MiB", rss as f64 / 1048576.0)),
    ] {
        let _ = write!(b, "<div class=\"card\"><div class=\"muted\">{label}</div><div class=\"stat\">{}</div></div>", escape(&value));
    }
    b.push_str("</div><h2>Services</h2><table><thead><tr><th>Service</th><th>State</th><th>Addresses</th><th>Up since</th><th>Connections</th><th>Load</th></tr></thead><tbody>");
    let admin_listen: Vec<String> = status["admin"]["listen"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let _ = write!(
        b,
        "<tr><td>admin</td><td class=\"ok\">running</td><td>{}</td><td>{}</td><td>-</td><td>-</td></tr>",
        escape(&admin_listen.join(", ")),
        escape(&human_duration(uptime))
    );
    for s in services {
        let addrs: Vec<String> = s.listen_addrs().iter().map(ToString::to_string).collect();
        let since = s
            .started_at()
            .elapsed()
            .map(|d| human_duration(d.as_secs()))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td><a href=\"/admin/service/{name}\">{name}</a></td><td class=\"ok\">running</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&addrs.join(", ")),
            escape(&since),
            s.connections(),
            escape(&s.load_summary()),
            name = escape(s.name())
        );
    }
    b.push_str("</tbody></table>");
    if services.is_empty() {
        b.push_str("<p class=\"muted\">No service is enabled. Enable one in the config file (see <code>serval config default</code>) and restart.</p>");
    }
    page("Overview", Some((session, "/admin/", services)), &b)
}

pub(super) fn users(
    session: &AdminSession,
    users: &[User],
    groups: &[Group],
    msg: Option<&str>,
    services: &[Arc<dyn RunningService>],
) -> String {
    let csrf = csrf_input(session);
    let mut b = format!("<h1>Users</h1>{}", message(msg));
    let _ = write!(
        b,
        "<div class=\"card\"><h2 style=\"margin-top:0\">Add a user</h2><form method=\"post\" action=\"/admin/users\" class=\"row\" id=\"add-user\">{csrf}\
         <input type=\"hidden\" name=\"action\" value=\"add\">\
         <input type=\"text\" name=\"name\" placeholder=\"user name\" aria-label=\"user name\" required>\
         <input type=\"text\" name=\"full_name\" placeholder=\"full name\" aria-label=\"full name\">\
         <input type=\"email\" name=\"email\" placeholder=\"e-mail\" aria-label=\"e-mail\">\
         <input type=\"password\" name=\"password\" placeholder=\"password\" aria-label=\"password\" autocomplete=\"new-password\">\
         <select name=\"kind\" aria-label=\"kind\"><option value=\"person\">person</option><option value=\"room\">room</option><option value=\"resource\">resource</option></select>\
         <button type=\"submit\">Add user</button></form></div>"
    );
    b.push_str("<table id=\"users\"><thead><tr><th>Name</th><th>Full name</th><th>E-mail</th><th>Kind</th><th>Groups</th><th>Password</th><th></th></tr></thead><tbody>");
    for u in users {
        let member_of: Vec<&str> = groups
            .iter()
            .filter(|g| g.members.contains(&u.name))
            .map(|g| g.name.as_str())
            .collect();
        let name = escape(&u.name);
        let _ = write!(
            b,
            "<tr data-user=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><form method=\"post\" action=\"/admin/users\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"action\" value=\"passwd\"><input type=\"hidden\" name=\"name\" value=\"{name}\">\
             <input type=\"password\" name=\"password\" placeholder=\"new password\" aria-label=\"new password for {name}\" autocomplete=\"new-password\" required><button class=\"quiet\" type=\"submit\">Set</button></form></td>\
             <td><form method=\"post\" action=\"/admin/users\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"action\" value=\"delete\"><input type=\"hidden\" name=\"name\" value=\"{name}\">\
             <button class=\"danger\" type=\"submit\">Delete</button></form></td></tr>",
            escape(&u.full_name),
            escape(&u.email),
            u.kind.as_str(),
            escape(&member_of.join(", ")),
        );
    }
    b.push_str("</tbody></table>");
    page("Users", Some((session, "/admin/users", services)), &b)
}

pub(super) fn groups(
    session: &AdminSession,
    users: &[User],
    groups: &[Group],
    msg: Option<&str>,
    services: &[Arc<dyn RunningService>],
) -> String {
    let csrf = csrf_input(session);
    let mut b = format!("<h1>Groups</h1>{}", message(msg));
    let _ = write!(
        b,
        "<div class=\"card\"><form method=\"post\" action=\"/admin/groups\" class=\"row\">{csrf}<input type=\"hidden\" name=\"action\" value=\"add\">\
         <input type=\"text\" name=\"group\" placeholder=\"group name\" aria-label=\"group name\" required><button type=\"submit\">Add group</button></form></div>"
    );
    let user_options: String = users
        .iter()
        .map(|u| format!("<option value=\"{n}\">{n}</option>", n = escape(&u.name)))
        .collect();
    b.push_str("<table id=\"groups\"><thead><tr><th>Group</th><th>Members</th><th>Add member</th><th></th></tr></thead><tbody>");
    for g in groups {
        let name = escape(&g.name);
        let mut members = String::new();
        for m in &g.members {
            let _ = write!(
                members,
                "<form method=\"post\" action=\"/admin/groups\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"action\" value=\"remove-member\">\
                 <input type=\"hidden\" name=\"group\" value=\"{name}\"><input type=\"hidden\" name=\"user\" value=\"{m}\">{m} <button class=\"quiet\" type=\"submit\" title=\"remove {m}\">×</button></form> ",
                m = escape(m)
            );
        }
        let delete = if g.name == crate::directory::ADMIN_GROUP {
            String::from("<span class=\"muted\">built in</span>")
        } else {
            format!("<form method=\"post\" action=\"/admin/groups\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"action\" value=\"delete\"><input type=\"hidden\" name=\"group\" value=\"{name}\"><button class=\"danger\" type=\"submit\">Delete</button></form>")
        };
        let _ = write!(
            b,
            "<tr data-group=\"{name}\"><td>{name}</td><td>{members}</td><td><form method=\"post\" action=\"/admin/groups\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"add-member\"><input type=\"hidden\" name=\"group\" value=\"{name}\">\
             <select name=\"user\" aria-label=\"user to add to {name}\">{user_options}</select><button class=\"quiet\" type=\"submit\">Add</button></form></td><td>{delete}</td></tr>"
        );
    }
    b.push_str("</tbody></table>");
    page("Groups", Some((session, "/admin/groups", services)), &b)
}

pub(super) fn logs(
    session: &AdminSession,
    lines: &[String],
    services: &[Arc<dyn RunningService>],
) -> String {
    let mut text = String::new();
    for line in lines.iter().rev().take(500).rev() {
        text.push_str(&escape(line));
        text.push('\n');
    }
    if text.is_empty() {
        text.push_str("(nothing logged yet)");
    }
    // A meta refresh keeps the tail live without JavaScript.
    let body = format!(
        "<meta http-equiv=\"refresh\" content=\"5\"><h1>Log</h1><p class=\"muted\">The last {} lines, newest at the bottom; this page refreshes every 5 seconds.</p><pre class=\"log\" id=\"log\">{text}</pre>",
        lines.len().min(500)
    );
    page("Log", Some((session, "/admin/logs", services)), &body)
}

pub(super) fn service(
    session: &AdminSession,
    service: &dyn RunningService,
    panel_html: &str,
    msg: Option<&str>,
    services: &[Arc<dyn RunningService>],
) -> String {
    let addrs: Vec<String> = service
        .listen_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let body = format!(
        "<h1>{}</h1>{}<p class=\"muted\">Listening on {} · {} open connections · {}</p>{panel_html}",
        escape(&capitalize(service.name())),
        message(msg),
        escape(&addrs.join(", ")),
        service.connections(),
        escape(&service.load_summary())
    );
    let current = format!("/admin/service/{}", service.name());
    page(service.name(), Some((session, &current, services)), &body)
}
