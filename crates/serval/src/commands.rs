//! The command-line commands other than `serve`: check, user, group, status, backup, restore.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serval_core::directory::{NewUser, PrincipalKind};
use serval_core::{Directory, Store};

use crate::config::{self, Loaded};
use crate::datadir;
use crate::{GroupCmd, UserCmd};

pub fn check(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = config::load(config_path);
    let mut has_errors = config::report(&loaded, &mut std::io::stdout());
    let mut store_errors = 0;
    if !has_errors && loaded.config.store.engine == serval_core::config::StoreEngineKind::Postgres {
        if let Err(problem) = check_postgres(&loaded) {
            println!("error: store.url: {problem}");
            store_errors += 1;
            has_errors = true;
        }
    }
    let (errors, warnings) = loaded
        .problems
        .iter()
        .fold((0, 0), |(e, w), p| match p.severity {
            serval_core::config::Severity::Error => (e + 1, w),
            serval_core::config::Severity::Warning => (e, w + 1),
        });
    let errors = errors + store_errors;
    println!(
        "{}: {errors} error(s), {warnings} warning(s)",
        loaded.describe_source()
    );
    Ok(if has_errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Connects to the configured PostgreSQL and compares its schema with this binary's.
fn check_postgres(loaded: &Loaded) -> Result<(), String> {
    use serval_core::store::postgres;
    let settings = serval_core::store::pg_settings(&loaded.config.store, &loaded.data_dir)
        .map_err(|e| e.to_string())?;
    let found = postgres::probe(&settings).map_err(|e| e.to_string())?;
    let mut known = postgres::core_schema_versions();
    known.push((
        "calendar",
        serval_calendar::store::postgres_schema_version(),
    ));
    let target = postgres::redact(&settings.url);
    if found.is_empty() {
        println!(
            "store: PostgreSQL at {target} answers; its tables are created at the first start"
        );
        return Ok(());
    }
    for (component, version) in &found {
        if let Some((_, ours)) = known.iter().find(|(c, _)| c == component) {
            if version > ours {
                return Err(format!(
                    "{target} holds {component} schema version {version}, written by a newer Serval \
                     (this one knows up to {ours}); run that version or a newer one"
                ));
            }
        }
    }
    let behind: Vec<String> = known
        .iter()
        .filter(|(c, ours)| {
            found
                .iter()
                .find(|(f, _)| f == c)
                .is_none_or(|(_, v)| v < ours)
        })
        .map(|(c, ours)| format!("{c} (to v{ours})"))
        .collect();
    if behind.is_empty() {
        println!("store: PostgreSQL at {target} answers; schema up to date");
    } else {
        println!(
            "store: PostgreSQL at {target} answers; the next start upgrades {}",
            behind.join(", ")
        );
    }
    Ok(())
}

/// Loads the config for a command that needs the store; config errors stop it.
pub(crate) fn load_checked(config_path: Option<&Path>) -> anyhow::Result<Loaded> {
    let loaded = config::load(config_path);
    if loaded.problems.has_errors() {
        config::report(&loaded, &mut std::io::stderr());
        bail!("the config has errors (listed above)");
    }
    Ok(loaded)
}

/// The node's store as `[store]` says (SQLite file or PostgreSQL), migrated.
pub(crate) fn open_engine(loaded: &Loaded) -> anyhow::Result<serval_core::store::Engine> {
    datadir::ensure(&loaded.data_dir)?;
    serval_core::store::open_engine(
        &loaded.config.store,
        &datadir::store_path(&loaded.data_dir),
        &loaded.data_dir,
    )
    .context("cannot open the store")
}

pub(crate) fn open_directory(loaded: &Loaded) -> anyhow::Result<Directory> {
    Ok(Directory::on(
        open_engine(loaded)?,
        &loaded.config.directory,
    ))
}

/// Reads a password from stdin (one line) or prompts twice on a terminal.
fn read_password(from_stdin: bool, what: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            bail!("standard input held no password");
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password; pass --password-stdin and pipe it in");
    }
    let first = rpassword::prompt_password(format!("Password for {what}: "))?;
    let second = rpassword::prompt_password("Again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

pub fn user(config_path: Option<&Path>, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let directory = open_directory(&loaded)?;
    match cmd {
        UserCmd::Add {
            name,
            password,
            full_name,
            email,
            kind,
        } => {
            let kind: PrincipalKind = kind.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            serval_core::directory::check_name(&name)?;
            if directory.user(&name)?.is_some() {
                bail!("user `{name}` already exists");
            }
            let secret = if kind == PrincipalKind::Person || password.password_stdin {
                Some(read_password(password.password_stdin, &name)?)
            } else {
                None
            };
            directory.add_user(&NewUser {
                name: &name,
                password: secret.as_deref(),
                full_name: full_name.as_deref().unwrap_or(""),
                email: email.as_deref().unwrap_or(""),
                kind: Some(kind),
            })?;
            println!("added {} `{name}`", kind.as_str());
        }
        UserCmd::Passwd { name, password } => {
            if directory.user(&name)?.is_none() {
                bail!("no user named `{name}`");
            }
            let secret = read_password(password.password_stdin, &name)?;
            directory.set_password(&name, &secret)?;
            println!("password of `{name}` changed");
        }
        UserCmd::Del { name } => {
            directory.delete_user(&name)?;
            println!("deleted user `{name}`");
        }
        UserCmd::List { json } => {
            let users = directory.list_users()?;
            let groups = directory.list_groups()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{:<20} {:<9} {:<24} {:<28} GROUPS",
                    "NAME", "KIND", "FULL NAME", "E-MAIL"
                );
                for u in users {
                    let member_of: Vec<&str> = groups
                        .iter()
                        .filter(|g| g.members.contains(&u.name))
                        .map(|g| g.name.as_str())
                        .collect();
                    println!(
                        "{:<20} {:<9} {:<24} {:<28} {}",
                        u.name,
                        u.kind.as_str(),
                        u.full_name,
                        u.email,
                        member_of.join(",")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn group(config_path: Option<&Path>, cmd: GroupCmd) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let directory = open_directory(&loaded)?;
    match cmd {
        GroupCmd::Add { name } => {
            directory.add_group(&name)?;
            println!("added group `{name}`");
        }
        GroupCmd::Del { name } => {
            if name == serval_core::directory::ADMIN_GROUP {
                bail!("the admin group is built in and cannot be deleted");
            }
            directory.delete_group(&name)?;
            println!("deleted group `{name}`");
        }
        GroupCmd::AddMember { group, user } => {
            directory.add_member(&group, &user)?;
            println!("`{user}` is now a member of `{group}`");
        }
        GroupCmd::RemoveMember { group, user } => {
            directory.remove_member(&group, &user)?;
            println!("`{user}` is no longer a member of `{group}`");
        }
        GroupCmd::List { json } => {
            let groups = directory.list_groups()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                println!("{:<20} MEMBERS", "GROUP");
                for g in groups {
                    println!("{:<20} {}", g.name, g.members.join(","));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Calls the running server's admin API at `path` (GET, or POST with `body`) with the bearer
/// token from data_dir; its JSON answer.
/// A wildcard listener is reachable on loopback.
pub(crate) fn loopback_for(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}

pub fn admin_api(
    config_path: Option<&Path>,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let loaded = load_checked(config_path)?;
    let admin = &loaded.config.admin;
    let Some(addr) = admin.listen.addrs().first().copied() else {
        bail!("admin.listen is empty: the server has no admin API to ask");
    };
    let host = loopback_for(addr).ip();
    // The running server records its real address (port 0 resolved); fall back to the config.
    let base = datadir::read_admin_url(&loaded.data_dir).unwrap_or_else(|| {
        format!(
            "{}://{}",
            if admin.tls { "https" } else { "http" },
            std::net::SocketAddr::new(host, addr.port())
        )
    });
    let url = format!("{base}/api/v1{path}");
    let token = datadir::read_token(&loaded.data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            // The admin site may use the self-signed certificate; the bearer token, not the
            // certificate, proves who we talk to on this machine.
            .danger_accept_invalid_certs(host.is_loopback())
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        let request = match &body {
            Some(body) => client.post(&url).json(body),
            None => client.get(&url),
        };
        let response =
            request.bearer_auth(&token).send().await.with_context(|| {
                format!("no server answers at {url} (is `serval serve` running?)")
            })?;
        let status = response.status();
        let doc: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "{url} answered {status}: {}",
                doc["error"].as_str().unwrap_or("")
            );
        }
        Ok::<_, anyhow::Error>(doc)
    })
}

pub fn status(config_path: Option<&Path>, raw_json: bool) -> anyhow::Result<ExitCode> {
    let doc = admin_api(config_path, "/status", None)?;
    if raw_json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let uptime = doc["uptime_seconds"].as_u64().unwrap_or(0);
    println!(
        "Serval {} up {} · RSS {:.1} MiB · CPU {:.1} s",
        doc["version"].as_str().unwrap_or("?"),
        human(uptime),
        doc["process"]["rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        doc["process"]["cpu_seconds"].as_f64().unwrap_or(0.0)
    );
    let list = |v: &serde_json::Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "{:<10} {:<28} {:<10} {:>11}  LOAD",
        "SERVICE", "LISTEN", "UP", "CONNECTIONS"
    );
    println!(
        "{:<10} {:<28} {:<10} {:>11}  -",
        "admin",
        list(&doc["admin"]["listen"]),
        human(uptime),
        "-"
    );
    let now = serval_core::now_unix();
    for s in doc["services"].as_array().into_iter().flatten() {
        let since = now.saturating_sub(s["started_at"].as_u64().unwrap_or(now));
        println!(
            "{:<10} {:<28} {:<10} {:>11}  {}",
            s["name"].as_str().unwrap_or("?"),
            list(&s["listen"]),
            human(since),
            s["connections"].as_u64().unwrap_or(0),
            s["load"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pages")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs a PostgreSQL client tool (pg_dump, pg_restore) against the configured database,
/// the password passed in its environment, never on the command line.
fn run_pg_tool(loaded: &Loaded, tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let settings = serval_core::store::pg_settings(&loaded.config.store, &loaded.data_dir)?;
    let target = serval_core::store::postgres::redact(&settings.url);
    let mut command = std::process::Command::new(tool);
    command.args(args).arg("--dbname").arg(&settings.url);
    if let Some(password) = &settings.password {
        command.env("PGPASSWORD", password);
    }
    let status = command.status().with_context(|| {
        format!("cannot run {tool} (Debian package postgresql-client) for {target}")
    })?;
    if !status.success() {
        bail!("{tool} failed for {target} ({status})");
    }
    Ok(())
}

pub fn backup(config_path: Option<&Path>, dest: &Path) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    if dest.exists() {
        bail!("{} already exists; choose a new file name", dest.display());
    }
    if loaded.config.store.engine == serval_core::config::StoreEngineKind::Postgres {
        // pg_dump takes a consistent snapshot of the whole database in one transaction, and
        // its custom format restores with pg_restore; rewriting that would gain nothing.
        run_pg_tool(
            &loaded,
            "pg_dump",
            &[
                "--format=custom".as_ref(),
                "--no-owner".as_ref(),
                "--file".as_ref(),
                dest.as_os_str(),
            ],
        )?;
        let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        println!(
            "wrote {} ({size} bytes) with pg_dump, a consistent snapshot of {}",
            dest.display(),
            serval_core::store::postgres::redact(&loaded.config.store.url)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store_path = datadir::store_path(&loaded.data_dir);
    if !store_path.is_file() {
        bail!("there is no store at {} to back up", store_path.display());
    }
    if dest.exists() {
        bail!("{} already exists; choose a new file name", dest.display());
    }
    let store = Store::open(&store_path).context("cannot open the store")?;
    let bar = progress_bar("backup");
    store
        .backup_to(dest, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| format!("backup to {} failed", dest.display()))?;
    bar.finish_and_clear();
    let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({size} bytes), a consistent snapshot of {}",
        dest.display(),
        store_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(config_path: Option<&Path>, backup_file: &Path) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    if !backup_file.is_file() {
        bail!("{} does not exist", backup_file.display());
    }
    if loaded.config.store.engine == serval_core::config::StoreEngineKind::Postgres {
        // Other nodes may be using the database: stop them first (the restore replaces
        // every table in one pass; a node writing meanwhile would see them vanish).
        run_pg_tool(
            &loaded,
            "pg_restore",
            &[
                "--clean".as_ref(),
                "--if-exists".as_ref(),
                "--no-owner".as_ref(),
                "--single-transaction".as_ref(),
                backup_file.as_os_str(),
            ],
        )?;
        println!(
            "restored {} from {}",
            serval_core::store::postgres::redact(&loaded.config.store.url),
            backup_file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    datadir::ensure(&loaded.data_dir)?;
    let _lock = datadir::lock(&loaded.data_dir).context("restore refused")?;
    let store_path = datadir::store_path(&loaded.data_dir);
    serval_core::store::restore_from(backup_file, &store_path)
        .with_context(|| format!("cannot restore from {}", backup_file.display()))?;
    // Opening applies any migrations this version has beyond the backup's.
    Store::open(&store_path).context("the restored store does not open")?;
    println!(
        "restored {} from {}",
        store_path.display(),
        backup_file.display()
    );
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

pub fn import_qtusers(
    config_path: Option<&Path>,
    users: &Path,
    groups: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let directory = open_directory(&loaded)?;
    let report = serval_stream::access::qtusers::import_qtusers(&directory, users, groups)
        .with_context(|| format!("cannot import {}", users.display()))?;
    println!(
        "realm \"{}\": {} user(s) imported",
        report.realm,
        report.imported_users.len()
    );
    for name in &report.imported_users {
        println!("  imported user {name}");
    }
    for (what, why) in &report.skipped_users {
        println!("  skipped {what}: {why}");
    }
    for (group, members) in &report.imported_groups {
        println!("  group {group}: {}", members.join(", "));
    }
    for (what, why) in &report.skipped_groups {
        println!("  skipped {what}: {why}");
    }
    if report.realm != loaded.config.directory.realm {
        println!(
            "note: these accounts keep working for Digest logins in realm \"{}\" (protected folders whose rule or qtaccess AuthName names it); they join realm \"{}\" when they set a password",
            report.realm, loaded.config.directory.realm
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `serval store migrate --to postgres://...`: snapshot, copy, verify, report.
pub fn store_migrate(
    config_path: Option<&Path>,
    to: &str,
    password_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use serval_core::store::{copy, postgres, PgSettings, PgStore};
    let loaded = load_checked(config_path)?;
    let store_path = datadir::store_path(&loaded.data_dir);
    if !store_path.is_file() {
        bail!(
            "there is no SQLite store at {} to migrate",
            store_path.display()
        );
    }
    let target = postgres::redact(to);
    let password = match password_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        None => std::env::var("PGPASSWORD").ok(),
    };
    // A consistent snapshot first, so a running server may go on writing meanwhile.
    let snapshot_dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let snapshot_path = snapshot_dir.path().join("snapshot.db");
    Store::open(&store_path)
        .context("cannot open the store")?
        .backup_to(&snapshot_path, |_, _| {})
        .context("cannot snapshot the store")?;
    let snapshot = Store::open(&snapshot_path).context("cannot open the snapshot")?;
    let pg = PgStore::connect(&PgSettings {
        url: to.to_owned(),
        password,
        pool_size: 4,
        statement_timeout: std::time::Duration::from_secs(600),
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .with_context(|| format!("cannot use {target}"))?;
    serval_calendar::store::PgCalendarStore::open(pg.clone())
        .map_err(|e| anyhow::anyhow!("cannot create the calendar tables in {target}: {e}"))?;
    let occupied: i64 = pg
        .run(|client| async move {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM cal_collection)",
                    &[],
                )
                .await?;
            Ok::<_, serval_core::store::StoreError>(row.get(0))
        })
        .context("cannot read the target")?;
    if occupied > 0 {
        bail!("{target} already holds users or calendars; migrate into an empty database");
    }
    let tables: Vec<&'static copy::TableCopy> = copy::CORE_TABLES
        .iter()
        .chain(serval_calendar::store::copy_tables())
        .collect();
    let bar = indicatif::ProgressBar::new(tables.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tables")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut reports = Vec::new();
    for table in tables {
        bar.set_message(table.name);
        let report = copy::copy_table(&snapshot, &pg, table).with_context(|| {
            format!(
                "copying {} failed; {target} may hold a partial copy",
                table.name
            )
        })?;
        reports.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{:<18} {:>8}  sha-256 (source = target)", "table", "rows");
    for report in &reports {
        println!(
            "{:<18} {:>8}  {}",
            report.table,
            report.rows,
            &report.checksum[..16]
        );
    }
    println!(
        "copied {} into {target}: every table's row count and checksum match.\n\
         To use it, set in [store]: engine = \"postgres\", url = \"{target}\" and restart.",
        store_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `serval dns query NAME [TYPE]`.
pub fn dns_query(
    config_path: Option<&Path>,
    name: &str,
    record_type: &str,
    server: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let dns = &loaded.config.dns;
    let Some(mut addr) = server.or_else(|| dns.listen.addrs().first().copied()) else {
        bail!("dns.listen is empty: there is no resolver to ask");
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let report = serval_dns::client::query(addr, name, record_type).map_err(anyhow::Error::msg)?;
    println!("{} {}", report.code, report.verdict);
    if let Some(ede) = &report.ede {
        println!("EDE {ede}");
    }
    for record in &report.records {
        println!("{record}");
    }
    Ok(if report.verdict == "bogus" {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `serval dns flush [NAME]`, through the running server's admin API.
pub fn dns_flush(config_path: Option<&Path>, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "action": "flush", "name": name.unwrap_or("") });
    let doc = admin_api(config_path, "/services/dns/action", Some(body))?;
    println!("{}", doc["message"].as_str().unwrap_or("flushed"));
    Ok(ExitCode::SUCCESS)
}
