//! `serval bench calendar`: PUT N events over HTTP keep-alive into one calendar, then time
//! a one-month REPORT, a multiget of 100 and a sync-collection after 100 changes.
//!
//! The event mix is realistic: single, all-day, weekly recurring with a moved instance,
//! and Europe/Berlin TZID events, spread over one year from 2026-01-01.

use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{step}: server answered {status}")]
    Status { step: String, status: u16 },
}

/// Results; rates are per second.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub n_events: usize,
    /// PUT rate for each block of 1,000 events (flat is the goal).
    pub put_rates: Vec<f64>,
    pub report_month: Duration,
    pub report_month_hits: usize,
    /// The server cut the month REPORT short (a 507 number-of-matches-within-limits, as
    /// Serval does past `http::MAX_QUERY_WITH_DATA_RESULTS`); the hits are what it sent.
    pub report_month_truncated: bool,
    pub multiget_100: Duration,
    pub sync_after_100: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "PUT {} events over one keep-alive connection",
            self.n_events
        )?;
        for (i, rate) in self.put_rates.iter().enumerate() {
            writeln!(
                f,
                "  events {:>6}-{:<6} {:>8.0} PUT/s",
                i * 1000 + 1,
                ((i + 1) * 1000).min(self.n_events),
                rate
            )?;
        }
        writeln!(
            f,
            "one-month REPORT (calendar-data, {} hits{}): {:.1} ms",
            self.report_month_hits,
            if self.report_month_truncated {
                ", truncated by the server's result cap"
            } else {
                ""
            },
            self.report_month.as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "multiget of 100 (calendar-data): {:.1} ms",
            self.multiget_100.as_secs_f64() * 1e3
        )?;
        write!(
            f,
            "sync-collection after 100 changes: {:.1} ms",
            self.sync_after_100.as_secs_f64() * 1e3
        )
    }
}

/// The i-th event of the mix.
pub fn event(i: usize) -> String {
    let day = i % 365;
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
        + chrono::Days::new(u64::try_from(day).unwrap_or(0));
    let ymd = date.format("%Y%m%d");
    let hour = 8 + i % 9;
    let body = match i % 4 {
        0 => format!("DTSTART:{ymd}T{hour:02}0000Z\r\nDTEND:{ymd}T{hour:02}3000Z\r\nSUMMARY:Meeting {i}\r\n"),
        1 => {
            let next = (date + chrono::Days::new(1)).format("%Y%m%d");
            format!("DTSTART;VALUE=DATE:{ymd}\r\nDTEND;VALUE=DATE:{next}\r\nSUMMARY:All day {i}\r\n")
        }
        2 => format!(
            "DTSTART:{ymd}T{hour:02}0000Z\r\nDTEND:{ymd}T{hour:02}1500Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Weekly {i}\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:{next}T{hour:02}0000Z\r\nDTSTART:{next}T{later:02}0000Z\r\nDTEND:{next}T{later:02}1500Z\r\nSUMMARY:Weekly {i} (moved)\r\n",
            next = (date + chrono::Days::new(7)).format("%Y%m%d"),
            later = hour + 1
        ),
        _ => format!("DTSTART;TZID=Europe/Berlin:{ymd}T{hour:02}0000\r\nDTEND;TZID=Europe/Berlin:{ymd}T{hour:02}4500\r\nSUMMARY:Berlin {i}\r\n"),
    };
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval-bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20260101T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n")
}

fn check(step: &str, response: &reqwest::Response) -> Result<(), BenchError> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(BenchError::Status {
            step: step.to_owned(),
            status: response.status().as_u16(),
        })
    }
}

fn method(name: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(name.as_bytes()).unwrap_or(reqwest::Method::GET)
}

/// Runs the benchmark against `base` (e.g. `http://127.0.0.1:8008`) as `user`; creates the
/// calendar `calendar_name` in the user's home.
pub async fn bench(
    base: &str,
    user: &str,
    password: &str,
    calendar_name: &str,
    n_events: usize,
) -> Result<BenchReport, BenchError> {
    let cal = format!("{base}/calendars/users/{user}/{calendar_name}/");
    bench_collection(&cal, user, password, n_events).await
}

/// The benchmark against any CalDAV server: `cal` is the URL of a calendar collection to create
/// (e.g. Radicale's `http://127.0.0.1:5232/USER/bench/`).
pub async fn bench_collection(
    cal: &str,
    user: &str,
    password: &str,
    n_events: usize,
) -> Result<BenchReport, BenchError> {
    let cal = cal.to_string();
    let cal_path = reqwest::Url::parse(&cal)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| cal.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let r = client
        .request(method("MKCALENDAR"), &cal)
        .basic_auth(user, Some(password))
        .send()
        .await?;
    check("MKCALENDAR", &r)?;
    let mut put_rates = Vec::new();
    let mut block_start = Instant::now();
    for i in 0..n_events {
        let r = client
            .put(format!("{cal}{i}.ics"))
            .basic_auth(user, Some(password))
            .header("Content-Type", "text/calendar")
            .header("If-None-Match", "*")
            .body(event(i))
            .send()
            .await?;
        check("PUT", &r)?;
        if (i + 1) % 1000 == 0 || i + 1 == n_events {
            let in_block = (i % 1000) + 1;
            put_rates.push(in_block as f64 / block_start.elapsed().as_secs_f64());
            block_start = Instant::now();
        }
    }
    let query = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260601T000000Z" end="20260701T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let mut best = Duration::MAX;
    let mut hits = 0;
    let mut truncated = false;
    for _ in 0..5 {
        let started = Instant::now();
        let r = client
            .request(method("REPORT"), &cal)
            .basic_auth(user, Some(password))
            .header("Depth", "1")
            .body(query)
            .send()
            .await?;
        check("REPORT", &r)?;
        let text = r.text().await?;
        best = best.min(started.elapsed());
        // Servers pick their own prefixes (Radicale uses a default namespace): count the
        // closing tags of any `response` element.
        // A truncated answer (RFC 5323 §5.17) adds one response for the collection itself.
        truncated = text.contains("number-of-matches-within-limits");
        hits = (text.matches("response>").count() / 2).saturating_sub(usize::from(truncated));
    }
    let hrefs: String = (0..100.min(n_events))
        .map(|i| format!("<D:href>{cal_path}{i}.ics</D:href>"))
        .collect();
    let multiget = format!(
        r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"#
    );
    let started = Instant::now();
    let r = client
        .request(method("REPORT"), &cal)
        .basic_auth(user, Some(password))
        .body(multiget)
        .send()
        .await?;
    check("multiget", &r)?;
    r.text().await?;
    let multiget_100 = started.elapsed();

    let sync0 = r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#;
    let r = client
        .request(method("REPORT"), &cal)
        .basic_auth(user, Some(password))
        .body(sync0)
        .send()
        .await?;
    check("sync", &r)?;
    let text = r.text().await?;
    let token = text
        .split("<D:sync-token>")
        .nth(1)
        .and_then(|t| t.split("</D:sync-token>").next())
        .unwrap_or_default()
        .to_owned();
    for i in 0..100.min(n_events) {
        let r = client
            .put(format!("{cal}{i}.ics"))
            .basic_auth(user, Some(password))
            .header("Content-Type", "text/calendar")
            .body(event(i).replace("SUMMARY:", "SUMMARY:Changed "))
            .send()
            .await?;
        check("PUT (change)", &r)?;
    }
    let sync = format!(
        r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
    );
    let started = Instant::now();
    let r = client
        .request(method("REPORT"), &cal)
        .basic_auth(user, Some(password))
        .body(sync)
        .send()
        .await?;
    check("sync after changes", &r)?;
    r.text().await?;
    let sync_after_100 = started.elapsed();
    Ok(BenchReport {
        n_events,
        put_rates,
        report_month: best,
        report_month_hits: hits,
        report_month_truncated: truncated,
        multiget_100,
        sync_after_100,
    })
}

/// Two nodes on one shared store writing the same calendar at once.
#[derive(Debug, Clone)]
pub struct TwoWriterReport {
    pub n_events: usize,
    /// Events per second through both nodes together.
    pub put_rate_total: f64,
    /// Events per second through each node.
    pub put_rate_per_node: [f64; 2],
    /// Events each node lists in a full sync-collection afterwards (both should be `n_events`).
    pub listed_per_node: [usize; 2],
    /// Both nodes answered the same sync token afterwards.
    pub sync_tokens_agree: bool,
}

impl fmt::Display for TwoWriterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events through two nodes at once: {:.0} PUT/s together ({:.0} + {:.0}); each node lists {} and {}; sync tokens {}",
            self.n_events,
            self.put_rate_total,
            self.put_rate_per_node[0],
            self.put_rate_per_node[1],
            self.listed_per_node[0],
            self.listed_per_node[1],
            if self.sync_tokens_agree { "agree" } else { "DIFFER" }
        )
    }
}

/// Creates the calendar through the first node, then PUTs `n_events` into it, the even ones
/// through `cals[0]` and the odd ones through `cals[1]` at the same time (each URL is the
/// same calendar as seen by one node), and reads the result back through both.
pub async fn bench_two_writers(
    cals: [&str; 2],
    user: &str,
    password: &str,
    n_events: usize,
) -> Result<TwoWriterReport, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2)
        .build()?;
    let r = client
        .request(method("MKCALENDAR"), cals[0])
        .basic_auth(user, Some(password))
        .send()
        .await?;
    check("MKCALENDAR", &r)?;
    let started = Instant::now();
    let writer = |node: usize| {
        let client = client.clone();
        let cal = cals[node].to_string();
        let (user, password) = (user.to_string(), password.to_string());
        async move {
            let node_started = Instant::now();
            let mut count = 0usize;
            for i in (node..n_events).step_by(2) {
                let r = client
                    .put(format!("{cal}{i}.ics"))
                    .basic_auth(&user, Some(&password))
                    .header("Content-Type", "text/calendar")
                    .header("If-None-Match", "*")
                    .body(event(i))
                    .send()
                    .await?;
                check("PUT", &r)?;
                count += 1;
            }
            Ok::<f64, BenchError>(count as f64 / node_started.elapsed().as_secs_f64())
        }
    };
    let (a, b) = tokio::join!(writer(0), writer(1));
    let put_rate_per_node = [a?, b?];
    let put_rate_total = n_events as f64 / started.elapsed().as_secs_f64();
    let sync0 = r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#;
    let mut listed_per_node = [0; 2];
    let mut tokens = Vec::new();
    for (node, cal) in cals.iter().enumerate() {
        let r = client
            .request(method("REPORT"), *cal)
            .basic_auth(user, Some(password))
            .body(sync0)
            .send()
            .await?;
        check("sync", &r)?;
        let text = r.text().await?;
        listed_per_node[node] = text.matches("<D:response>").count();
        tokens.push(
            text.split("<D:sync-token>")
                .nth(1)
                .and_then(|t| t.split("</D:sync-token>").next())
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Ok(TwoWriterReport {
        n_events,
        put_rate_total,
        put_rate_per_node,
        listed_per_node,
        sync_tokens_agree: !tokens[0].is_empty() && tokens[0] == tokens[1],
    })
}
