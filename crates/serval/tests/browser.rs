//! The admin page in a real headless browser (Debian `chromium` + `chromium-driver`, driven over
//! WebDriver with fantoccini): log in, add a user, see it listed, log out; a non-admin is refused.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDir;
use fantoccini::{ClientBuilder, Locator};

struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> Driver {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install the Debian packages `chromium` and `chromium-driver`"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts (Debian package chromium-driver)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a WebDriver session with headless chromium")
}

/// Waits (up to 10 s) until the page's path starts with `prefix`; clicks navigate asynchronously.
async fn wait_path(b: &fantoccini::Client, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = b.current_url().await.unwrap().path().to_string();
        if path.starts_with(prefix) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "browser stayed on {path}, expected {prefix}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(b: &fantoccini::Client, css: &str) -> String {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn log_in(b: &fantoccini::Client, base: &str, user: &str, password: &str) {
    b.goto(&format!("{base}/login")).await.unwrap();
    b.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_in_headless_chromium() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = TestDir::new("");
    t.add_user("root", "rootpw", true);
    t.add_user("plain", "plainpw", false);
    let server = t.serve();
    let base = server.admin_url.clone();
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;

    log_in(&b, &base, "root", "rootpw").await;
    wait_path(&b, "/admin/").await;
    let heading = text_of(&b, "main h1").await;
    assert_eq!(heading, "Overview");

    b.find(Locator::LinkText("Users"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("add-user"))
        .await
        .unwrap();
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("frank")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=full_name]"))
        .await
        .unwrap()
        .send_keys("Frank Lloyd")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("frankpw")
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = text_of(&b, ".msg").await;
    assert_eq!(status, "Added user frank.");
    let row = text_of(&b, "tr[data-user=frank]").await;
    assert!(row.contains("Frank Lloyd"), "{row}");

    if let Ok(dir) = std::env::var("SERVAL_SCREENSHOT_DIR") {
        let png = b.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("admin-users.png"), png).unwrap();
    }

    b.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&b, "/login").await;
    assert!(text_of(&b, ".msg").await.contains("Logged out."));
    b.goto(&format!("{base}/admin/users")).await.unwrap();
    wait_path(&b, "/login").await;

    log_in(&b, &base, "plain", "plainpw").await;
    wait_path(&b, "/login").await;
    let message = text_of(&b, ".msg").await;
    assert!(
        message.contains("not a member of the admin group"),
        "{message}"
    );
    b.goto(&format!("{base}/admin/")).await.unwrap();
    wait_path(&b, "/login").await;
    b.close().await.unwrap();
}

/// A static site served by the web service, rendered by headless Chromium: the page, its
/// stylesheet (compressed), an SVG image and a script fetching JSON all arrive; the admin
/// page's Web panel lists the site with its requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_site_renders_in_headless_chromium() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = TestDir::new("");
    let root = t.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>loading</title><link rel=\"stylesheet\" href=\"style.css\"></head>\
         <body><h1 id=\"h\">Office intranet</h1><img id=\"logo\" src=\"logo.svg\"><p id=\"from-json\"></p><script src=\"app.js\"></script></body></html>",
    )
    .unwrap();
    std::fs::write(
        root.join("style.css"),
        format!(
            "h1 {{ color: rgb(10, 120, 200); }}\n{}",
            "/* padding */\n".repeat(100)
        ),
    )
    .unwrap();
    std::fs::write(root.join("logo.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"32\"><rect width=\"64\" height=\"32\" fill=\"teal\"/></svg>").unwrap();
    std::fs::write(
        root.join("data.json"),
        "{\"greeting\": \"Hello from JSON\"}",
    )
    .unwrap();
    std::fs::write(
        root.join("app.js"),
        "fetch('data.json').then(r => r.json()).then(d => { document.getElementById('from-json').textContent = d.greeting; document.title = 'ready'; });",
    )
    .unwrap();
    let config = std::fs::read_to_string(t.config())
        .unwrap()
        .replace("[web]\nenabled = false", "");
    std::fs::write(
        t.config(),
        format!("{config}\n[web]\nlisten = \"127.0.0.1:{port}\"\n[[web.site]]\nhost = \"www.office.test\"\nroot = {:?}\n", root.display().to_string()),
    )
    .unwrap();
    t.add_user("root", "rootpw", true);
    let server = t.serve();
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;
    b.goto(&format!("http://127.0.0.1:{port}/")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.title().await.unwrap() != "ready" {
        assert!(
            Instant::now() < deadline,
            "the page's script never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(text_of(&b, "#from-json").await, "Hello from JSON");
    let color = b
        .execute(
            "return getComputedStyle(document.getElementById('h')).color",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(color, serde_json::json!("rgb(10, 120, 200)"));
    let width = b
        .execute(
            "return document.getElementById('logo').naturalWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width, serde_json::json!(64));
    let encoding = b
        .execute(
            "return fetch('style.css').then(r => r.headers.get('content-encoding'))",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        matches!(encoding.as_str(), Some("br") | Some("gzip")),
        "{encoding}"
    );

    log_in(&b, &server.admin_url, "root", "rootpw").await;
    wait_path(&b, "/admin/").await;
    b.find(Locator::LinkText("Web"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&b, "/admin/service/web").await;
    let table = text_of(&b, "main table").await;
    assert!(table.contains("www.office.test"), "{table}");
    b.close().await.unwrap();
}
