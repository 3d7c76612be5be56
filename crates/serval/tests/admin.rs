//! The admin site over real HTTP: login, CSRF, authorization, the JSON API, `serval status`,
//! `/metrics` and `/healthz`.

mod common;

use common::TestDir;
use reqwest::blocking::Client;

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap()
}

/// The value of the hidden `csrf` field in a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a csrf field")
        + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn login(client: &Client, base: &str, user: &str, password: &str) -> reqwest::blocking::Response {
    let page = client
        .get(format!("{base}/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = csrf_of(&page);
    client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .unwrap()
}

#[test]
fn admin_logs_in_manages_users_and_logs_out() {
    let t = TestDir::new("");
    t.add_user("root", "rootpw", true);
    let server = t.serve();
    let base = &server.admin_url;
    let c = browser();

    let r = c.get(format!("{base}/admin/")).send().unwrap();
    assert!(
        r.url().path().starts_with("/login"),
        "unauthenticated visit goes to login, got {}",
        r.url()
    );

    let r = login(&c, base, "root", "wrong");
    let body = r.text().unwrap();
    assert!(body.contains("wrong user name or password"), "{body}");

    let r = login(&c, base, "root", "rootpw");
    assert_eq!(r.url().path(), "/admin/");
    let body = r.text().unwrap();
    assert!(
        body.contains("Overview") && body.contains("Serval"),
        "{body}"
    );

    let users = c
        .get(format!("{base}/admin/users"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = csrf_of(&users);
    // A form without the right CSRF token changes nothing.
    let r = c
        .post(format!("{base}/admin/users"))
        .form(&[
            ("csrf", "forged"),
            ("action", "add"),
            ("name", "mallory"),
            ("password", "x"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{base}/admin/users"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "add"),
            ("name", "dora"),
            ("password", "pw"),
            ("full_name", "Dora <b>"),
            ("kind", "person"),
        ])
        .send()
        .unwrap();
    let page = r.text().unwrap();
    assert!(page.contains("Added user dora."), "{page}");
    assert!(page.contains("Dora &lt;b&gt;"), "names are escaped: {page}");
    assert!(!page.contains("mallory"));

    let groups = c
        .get(format!("{base}/admin/groups"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let r = c
        .post(format!("{base}/admin/groups"))
        .form(&[
            ("csrf", csrf_of(&groups).as_str()),
            ("action", "add-member"),
            ("group", "admin"),
            ("user", "dora"),
        ])
        .send()
        .unwrap();
    assert!(r.text().unwrap().contains("Added dora to admin."));

    let logs = c
        .get(format!("{base}/admin/logs"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        logs.contains("admin logged in"),
        "the live log shows recent lines: {logs}"
    );
    assert!(!logs.contains("rootpw"), "passwords never reach the log");

    let r = c
        .post(format!("{base}/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert!(r.url().path().starts_with("/login"));
    let r = c.get(format!("{base}/admin/users")).send().unwrap();
    assert!(r.url().path().starts_with("/login"), "the session ended");
}

#[test]
fn session_cookie_is_httponly_and_samesite_strict() {
    let t = TestDir::new("");
    t.add_user("root", "rootpw", true);
    let server = t.serve();
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let r = login(&c, &server.admin_url, "root", "rootpw");
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("serval_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: no Secure flag"
    );
}

#[test]
fn non_admin_is_refused() {
    let t = TestDir::new("");
    t.add_user("root", "rootpw", true);
    t.add_user("plain", "plainpw", false);
    let server = t.serve();
    let c = browser();
    let body = login(&c, &server.admin_url, "plain", "plainpw")
        .text()
        .unwrap();
    assert!(body.contains("not a member of the admin group"), "{body}");
    let r = c
        .get(format!("{}/admin/users", server.admin_url))
        .send()
        .unwrap();
    assert!(r.url().path().starts_with("/login"));
    // Basic credentials of a non-admin on the API: 403.
    let r = Client::new()
        .get(format!("{}/api/v1/users", server.admin_url))
        .basic_auth("plain", Some("plainpw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn first_run_creates_the_first_admin_from_loopback() {
    let t = TestDir::new("");
    let server = t.serve();
    let c = browser();
    let page = c
        .get(format!("{}/login", server.admin_url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("No administrator exists yet"), "{page}");
    let r = c
        .post(format!("{}/setup", server.admin_url))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("username", "boss"),
            ("password", "pw"),
            ("password2", "pw"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.url().path(), "/admin/");
    let out = t.run(&["group", "list"], "");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("admin") && l.contains("boss")),
        "{}",
        out.stdout
    );
    // Once an admin exists, setup is closed.
    let page = browser()
        .get(format!("{}/login", server.admin_url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("No administrator exists yet"));
}

#[test]
fn api_requires_authorization_and_csrf_for_cookie_changes() {
    let t = TestDir::new("");
    t.add_user("root", "rootpw", true);
    let server = t.serve();
    let base = &server.admin_url;
    let anon = Client::new();
    assert_eq!(
        anon.get(format!("{base}/api/v1/status"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        anon.get(format!("{base}/api/v1/status"))
            .bearer_auth("wrong")
            .send()
            .unwrap()
            .status(),
        401
    );

    let token = std::fs::read_to_string(t.data_dir().join("admin.token")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.data_dir().join("admin.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the token file is private");
    let status: serde_json::Value = anon
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["process"]["rss_bytes"].as_u64().unwrap() > 0);

    let r = anon
        .post(format!("{base}/api/v1/users"))
        .basic_auth("root", Some("rootpw"))
        .json(&serde_json::json!({"name": "erin", "password": "pw", "email": "erin@example.org"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = anon
        .post(format!("{base}/api/v1/users"))
        .basic_auth("root", Some("rootpw"))
        .json(&serde_json::json!({"name": "erin"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    let users: serde_json::Value = anon
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let text = users.to_string();
    assert!(
        text.contains("erin@example.org") && !text.contains("argon2"),
        "{text}"
    );

    // A logged-in browser must send X-CSRF-Token for API changes.
    let c = browser();
    login(&c, base, "root", "rootpw");
    let r = c
        .delete(format!("{base}/api/v1/users/erin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = c
        .get(format!("{base}/admin/users"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let r = c
        .delete(format!("{base}/api/v1/users/erin"))
        .header("x-csrf-token", csrf_of(&page))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .delete(format!("{base}/api/v1/users/erin"))
        .header("x-csrf-token", csrf_of(&page))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn serval_status_asks_the_running_server() {
    let t = TestDir::new("");
    let server = t.serve();
    let out = t.run(&["status"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Serval {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        out.stdout
    );
    let admin_addr = server.admin_url.trim_start_matches("http://");
    assert!(out.stdout.contains(admin_addr), "{}", out.stdout);
    drop(server);
    let out = t.run(&["status"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is `serval serve` running?"),
        "{}",
        out.stderr
    );
}

/// Parses the Prometheus text format strictly enough to catch a broken exposition.
#[test]
fn metrics_and_healthz() {
    let t = TestDir::new("");
    let server = t.serve();
    let c = Client::new();
    assert_eq!(
        c.get(format!("{}/healthz", server.admin_url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    let text = c
        .get(format!("{}/metrics", server.admin_url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {metric}"
        );
        samples.insert(metric.to_string(), value);
    }
    assert!(samples["process_resident_memory_bytes"] > 1_000_000.0);
    assert!(samples["process_start_time_seconds"] > 1.6e9);
    assert!(samples.contains_key("process_cpu_seconds_total"));
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}

#[test]
fn admin_over_tls_with_a_self_signed_certificate_kept_across_restarts() {
    let t = TestDir::new("[tls]\nself_signed = true\n");
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(
        t.config(),
        config.replace("[admin]\n", "[admin]\ntls = true\n"),
    )
    .unwrap();
    t.add_user("root", "rootpw", true);
    let client = Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cert_path = t.data_dir().join("tls/self-signed.crt");
    let first_cert = {
        let server = t.serve();
        assert!(
            server.admin_url.starts_with("https://"),
            "{}",
            server.admin_url
        );
        let page = client
            .get(format!("{}/login", server.admin_url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let r = client
            .post(format!("{}/login", server.admin_url))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("username", "root"),
                ("password", "rootpw"),
            ])
            .send()
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.contains("; Secure"),
            "cookies over TLS are Secure: {cookie}"
        );
        let key_mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(t.data_dir().join("tls/self-signed.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(key_mode & 0o077, 0, "the private key is private");
        std::fs::read(&cert_path).unwrap()
    };
    let server = t.serve();
    assert_eq!(
        client
            .get(format!("{}/healthz", server.admin_url))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        first_cert,
        "the certificate is reused, not regenerated"
    );
    assert!(
        Client::new()
            .get(format!("{}/healthz", server.admin_url))
            .send()
            .is_err(),
        "an unknown self-signed cert is not trusted by default"
    );
}
