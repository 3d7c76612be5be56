//! `serval mail ...` and `serval sendmail`: the queue as `mailq` shows it, flush, delete,
//! bounce, the smarthost probe, the Postfix import, and the sendmail(1) interface.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serval_mail::sendmail::{self, Submitted};

use crate::commands::{admin_api, load_checked, open_directory};

#[derive(Subcommand)]
pub enum MailCommand {
    /// List the queue: ID, size, arrival, sender, each pending recipient, attempts, next try
    /// and the last error (like `mailq`). Read from the running server, else the spool.
    Queue {
        #[arg(long)]
        json: bool,
    },
    /// Retry every deferred message now.
    Flush,
    /// Remove a message from the queue without delivering it.
    Delete { id: String },
    /// Give up on a message now: its sender gets a DSN.
    Bounce { id: String },
    /// Open a session to the smarthost as a delivery would (CONNECT, STARTTLS, AUTH), send a
    /// MAIL FROM probe and RSET; exit 1 naming the step that failed and the server's reply.
    TestRelay,
    /// Print the DKIM TXT records to publish, in zone-file form (the key is generated into
    /// the data directory when `[mail.dkim] enabled` and there is none yet).
    DkimRecords,
    /// Print a [mail] table from Postfix's main.cf (and the smarthost's sasl_passwd line);
    /// list on stderr what could not be taken.
    ImportPostfix {
        /// The folder holding main.cf (e.g. /etc/postfix).
        dir: PathBuf,
        /// Where to write the smarthost password found in sasl_passwd (mode 0600; default
        /// `mail-relay.password` in the data directory).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// sendmail(1) as cron, git hooks and PHP's mail() call it.
#[derive(Args)]
pub struct SendmailArgs {
    /// Take recipients from the To, Cc and Bcc fields (added to any given as arguments).
    #[arg(short = 't')]
    extract: bool,
    /// Envelope sender (default: your login name at the mail host name; "<>" for none).
    #[arg(short = 'f', visible_short_alias = 'r', value_name = "FROM")]
    from: Option<String>,
    /// The sender's full name, for a From field added when the message has none.
    #[arg(short = 'F', value_name = "NAME")]
    full_name: Option<String>,
    /// A line holding only "." does not end the message.
    #[arg(short = 'i')]
    ignore_dots: bool,
    /// sendmail options: `-oi` is `-i`; others are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    options: Vec<String>,
    /// Mode: only `-bm` (deliver mail, the default) is supported.
    #[arg(short = 'b', value_name = "MODE")]
    mode: Option<String>,
    /// Say where the message went.
    #[arg(short = 'v')]
    verbose: bool,
    /// Recipients (a bare name gets the mail host name as its domain).
    recipients: Vec<String>,
}

pub fn run(config_path: Option<&Path>, command: MailCommand) -> anyhow::Result<ExitCode> {
    match command {
        MailCommand::Queue { json } => queue(config_path, json),
        MailCommand::Flush => action(config_path, "flush", ""),
        MailCommand::Delete { id } => delete(config_path, &id),
        MailCommand::Bounce { id } => action(config_path, "bounce", &id),
        MailCommand::TestRelay => test_relay(config_path),
        MailCommand::DkimRecords => dkim_records(config_path),
        MailCommand::ImportPostfix { dir, password_file } => {
            import_postfix(config_path, &dir, password_file)
        }
    }
}

fn action(config_path: Option<&Path>, action: &str, id: &str) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "action": action, "id": id });
    let doc = admin_api(config_path, "/services/mail/action", Some(body))?;
    println!("{}", doc["message"].as_str().unwrap_or("done"));
    Ok(ExitCode::SUCCESS)
}

fn delete(config_path: Option<&Path>, id: &str) -> anyhow::Result<ExitCode> {
    if !serval_mail::queue::spool::is_queue_id(id) {
        bail!("`{id}` is not a queue ID (see `serval mail queue`)");
    }
    match action(config_path, "delete", id) {
        Ok(code) => Ok(code),
        Err(e) if e.to_string().contains("no server answers") => {
            // No server: nothing delivers, so removing the files is safe.
            let loaded = load_checked(config_path)?;
            let spool = spool(&loaded.data_dir)?;
            spool
                .remove(id)
                .with_context(|| format!("no message {id} in {}", spool.queue.display()))?;
            println!("{id} deleted (no server ran; removed from the spool)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

fn spool(data_dir: &Path) -> anyhow::Result<serval_mail::queue::spool::Spool> {
    let dir = serval_mail::config::mail_dir(data_dir);
    serval_mail::queue::spool::Spool::open(&dir)
        .with_context(|| format!("cannot open the queue in {}", dir.display()))
}

fn queue(config_path: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let messages: Vec<serde_json::Value> = match admin_api(config_path, "/services/mail", None) {
        Ok(doc) => doc["detail"]["queue"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(e) => {
            let loaded = load_checked(config_path)?;
            // No running server (or no mail service in it): the files are the truth.
            tracing::debug!("admin API: {e:#}");
            eprintln!("(no running mail service answered; read from the spool directory)");
            spool(&loaded.data_dir)?
                .snapshot()
                .into_iter()
                .map(|m| serde_json::to_value(m).unwrap_or_default())
                .collect()
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&messages)?);
        return Ok(ExitCode::SUCCESS);
    }
    if messages.is_empty() {
        println!("Mail queue is empty");
        return Ok(ExitCode::SUCCESS);
    }
    let now = serval_core::now_unix();
    println!("-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------");
    let mut bytes = 0;
    for m in &messages {
        let size = m["size"].as_u64().unwrap_or(0);
        bytes += size;
        let arrived = m["received_at"].as_u64().unwrap_or(0);
        let sender = m["sender"].as_str().unwrap_or("");
        println!(
            "{:<17} {:>8} {:<20} {}",
            m["id"].as_str().unwrap_or(""),
            size,
            arrival(arrived),
            if sender.is_empty() {
                "<> (bounce)"
            } else {
                sender
            }
        );
        let attempts = m["attempts"].as_u64().unwrap_or(0);
        let next = m["next_try"].as_u64().unwrap_or(0);
        let when = if m["in_flight"].as_bool() == Some(true) {
            "being delivered now".to_string()
        } else if next <= now {
            "next try now".to_string()
        } else {
            format!(
                "next try in {}",
                serval_mail::queue::humantime_secs(next - now)
            )
        };
        let error = m["last_error"].as_str().unwrap_or("");
        println!(
            "   ({attempts} attempt{}, {when}{}{error})",
            if attempts == 1 { "" } else { "s" },
            if error.is_empty() { "" } else { ": " }
        );
        for r in m["pending"].as_array().into_iter().flatten() {
            println!("{:48}{}", "", r.as_str().unwrap_or(""));
        }
        println!();
    }
    println!(
        "-- {} Kbytes in {} Request{}.",
        bytes.div_ceil(1024),
        messages.len(),
        if messages.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// "Mon Dec  7 20:00:00", as mailq shows it (UTC).
fn arrival(unix: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix as i64) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second]"
    );
    t.format(&format).unwrap_or_default()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn test_relay(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let mail = &loaded.config.mail;
    let report = runtime()?
        .block_on(serval_mail::relay_test::run(mail, &loaded.data_dir))
        .map_err(anyhow::Error::msg)?;
    println!(
        "smarthost {} (tls = \"{}\", {})",
        report.hop,
        match mail.relay.tls {
            serval_mail::config::RelayTls::None => "none",
            serval_mail::config::RelayTls::Starttls => "starttls",
            serval_mail::config::RelayTls::Tls => "tls",
        },
        if mail.relay.user.is_empty() {
            "no AUTH".to_string()
        } else {
            format!("AUTH as {}", mail.relay.user)
        }
    );
    for line in &report.steps {
        println!("{line}");
    }
    match report.failure {
        None => {
            println!("the smarthost takes mail from Serval");
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("{:<9} FAILED {}", f.stage.name(), f.message);
            eprintln!(
                "serval: {} failed at {}: {}",
                f.stage.name(),
                report.hop,
                f.message
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn dkim_records(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = load_checked(config_path)?;
    let mail = &loaded.config.mail;
    if !mail.dkim.enabled {
        bail!("DKIM signing is off: set [mail.dkim] enabled = true (and local_domains)");
    }
    let signer = serval_mail::dkim::Signer::load_or_create(
        &serval_mail::config::mail_dir(&loaded.data_dir).join(".dkim"),
        &mail.dkim,
        &loaded.data_dir,
        mail.local_domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect(),
    )
    .map_err(anyhow::Error::msg)?;
    let records = signer.records();
    if records.is_empty() {
        bail!("mail.local_domains is empty: there is no domain to sign for");
    }
    for (name, value) in records {
        println!("{}", serval_mail::dkim::zone_line(&name, &value));
    }
    Ok(ExitCode::SUCCESS)
}

fn import_postfix(
    config_path: Option<&Path>,
    dir: &Path,
    password_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut import = match serval_mail::import_postfix::import(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("serval: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(password) = import.relay_password.take() {
        let loaded = load_checked(config_path)?;
        let (path, configured) = match password_file {
            Some(p) => (p.clone(), p),
            None => {
                let name = PathBuf::from("mail-relay.password");
                (loaded.data_dir.join(&name), name)
            }
        };
        write_secret(&path, &password)?;
        import.mail.relay.password_file = configured;
        eprintln!(
            "wrote the password for {} to {} (mode 0600)",
            import.mail.relay.user,
            path.display()
        );
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        mail: &'a serval_mail::MailConfig,
    }
    println!(
        "# Imported from {} by serval mail import-postfix: replace the [mail] table of serval.toml.",
        dir.display()
    );
    println!(
        "{}",
        toml::to_string(&Doc { mail: &import.mail })?.trim_end()
    );
    for line in &import.taken {
        eprintln!("imported: {line}");
    }
    for line in &import.skipped {
        eprintln!("not imported: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a secret readable by its owner only; an existing different file is kept.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(existing) = std::fs::read_to_string(path) {
        if existing.trim_end_matches(['\r', '\n']) == secret {
            return Ok(());
        }
        bail!(
            "{} exists with another password: remove it or pass --password-file",
            path.display()
        );
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

pub fn sendmail(config_path: Option<&Path>, args: SendmailArgs) -> anyhow::Result<ExitCode> {
    let fail = |code: u8, message: String| {
        eprintln!("serval sendmail: {message}");
        Ok(ExitCode::from(code))
    };
    if args.mode.as_deref().is_some_and(|m| m != "m") {
        return fail(
            sendmail::EX_USAGE,
            format!(
                "-b{} is not supported (only -bm, delivering a message)",
                args.mode.unwrap_or_default()
            ),
        );
    }
    let loaded = load_checked(config_path)?;
    let mail = &loaded.config.mail;
    let hostname = mail.effective_hostname();
    let qualify = |a: &str| {
        let a = a.trim().trim_start_matches('<').trim_end_matches('>');
        if a.contains('@') || a.is_empty() {
            a.to_string()
        } else {
            format!("{a}@{hostname}")
        }
    };
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into());
    let sender = match &args.from {
        Some(f) => qualify(f),
        None => qualify(&login),
    };

    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading the message from standard input")?;
    let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");
    let mut message = sendmail::read_message(&input, ignore_dots);
    let from_field = match &args.full_name {
        Some(name) => format!("{name} <{sender}>"),
        None => sender.clone(),
    };
    if !sender.is_empty() {
        message = sendmail::add_from_if_missing(message, &from_field);
    }
    let mut recipients: Vec<String> = args.recipients.iter().map(|r| qualify(r)).collect();
    if args.extract {
        for r in sendmail::header_recipients(&message) {
            let r = qualify(&r);
            if !recipients.iter().any(|x| x.eq_ignore_ascii_case(&r)) {
                recipients.push(r);
            }
        }
    }
    recipients.retain(|r| !r.is_empty());
    if recipients.is_empty() {
        return fail(
            sendmail::EX_USAGE,
            "no recipients: give them as arguments, or -t to read To, Cc and Bcc".into(),
        );
    }
    if message.len() as u64 > mail.max_message_size.0 {
        return fail(
            sendmail::EX_DATAERR,
            format!(
                "the message is {} bytes; mail.max_message_size is {}",
                message.len(),
                mail.max_message_size.0
            ),
        );
    }

    // The running server first: its SMTP listener relays for mynetworks (loopback).
    let mut no_server = Vec::new();
    for addr in mail.listen.addrs() {
        if addr.port() == 0 {
            continue;
        }
        let addr = crate::commands::loopback_for(*addr);
        match runtime()?.block_on(sendmail::submit(
            addr,
            &hostname,
            &sender,
            &recipients,
            &message,
        )) {
            Submitted::Queued(id) => {
                if args.verbose {
                    eprintln!("serval sendmail: queued as {id} by the server at {addr}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Submitted::Refused { reply, code } => return fail(code, reply),
            Submitted::NoServer(e) => no_server.push(e),
        }
    }
    let directory = open_directory(&loaded)?;
    let users = serval_mail::users::LocalUsers {
        directory,
        local_domains: mail.effective_local_domains(),
        postmaster: mail.postmaster.trim().to_string(),
    };
    match sendmail::drop_into_queue(
        &serval_mail::config::mail_dir(&loaded.data_dir),
        &hostname,
        &users,
        &sender,
        &recipients,
        &message,
    ) {
        Ok(id) => {
            if !mail.enabled {
                eprintln!("serval sendmail: queued as {id}, but [mail] enabled = false: it waits in the queue until the mail service runs");
            } else if args.verbose {
                eprintln!(
                    "serval sendmail: no server answered ({}); queued as {id} in the spool for the server to pick up",
                    no_server.join("; ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((message, code)) => fail(code, message),
    }
}
