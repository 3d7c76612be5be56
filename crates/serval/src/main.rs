//! `serval`: one binary for the services of Mac OS X Server. This crate is the command line and the
//! wiring; everything else lives in `serval-core` and the service crates.

mod bench;
mod bench_dns;
mod bench_mail;
mod bench_web;
mod calendar_cli;
mod commands;
mod config;
mod config_docs;
mod datadir;
mod mail_cli;
mod serve;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "serval",
    version,
    about = "Streaming, calendars and more for a small office, in one binary",
    propagate_version = true
)]
struct Cli {
    /// Config file (default: ./serval.toml if present, else the built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every enabled service and the admin site.
    Serve,
    /// Print or inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Validate a config: name every problem and warn about risky settings. Exit status 1 on errors.
    Check,
    /// Manage users of the directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups of the directory.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Ask the running server what runs, where, since when and with what load.
    Status {
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent snapshot of the store (safe while the server runs).
    Backup {
        /// Destination file (must not exist).
        file: PathBuf,
    },
    /// Replace the store with a backup. Refuses while a server runs on the same data directory.
    Restore {
        /// A file written by `serval backup`.
        file: PathBuf,
    },
    /// The store engine: copy the embedded SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Streaming administration.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Calendar administration: delegates, import and export of .ics files.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Web administration: import an Apache configuration.
    #[command(subcommand)]
    Web(WebCommand),
    /// DNS: ask the running resolver, flush its cache.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Mail: the queue, flush, delete, bounce, the smarthost probe, the Postfix import.
    #[command(subcommand)]
    Mail(mail_cli::MailCommand),
    /// sendmail(1) for hooks and cron: the message on standard input, recipients as
    /// arguments or with -t from its To, Cc and Bcc.
    Sendmail(mail_cli::SendmailArgs),
    /// Benchmarks that start the server under test and print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum WebCommand {
    /// Read an Apache httpd configuration (e.g. /etc/apache2) and print its virtual hosts as
    /// [[web.site]] tables for serval.toml; what could not be taken goes to standard error.
    ImportApache {
        /// The folder holding apache2.conf or httpd.conf.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy this node's SQLite store into an empty PostgreSQL database (from a consistent
    /// snapshot, so the server may keep running), then verify every table's rows and checksum.
    Migrate {
        /// postgres://USER@HOST:PORT/DATABASE
        #[arg(long)]
        to: String,
        /// File whose first line is the password (default: $PGPASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DnsCommand {
    /// Ask the running resolver (its first `[dns] listen` address) and print the answer and
    /// `secure`, `insecure` or `bogus`, with the Extended DNS Error when there is one.
    Query {
        name: String,
        #[arg(default_value = "A")]
        record_type: String,
        /// Ask this address instead (e.g. when `listen` has port 0).
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
    },
    /// Drop cached and stale answers: all of them, or NAME's.
    Flush { name: Option<String> },
    /// Print a `[dns]` table from BIND's named.conf (forwarders, ACLs, primary zones with
    /// their zone files) and list on stderr what could not be taken.
    ImportNamed { file: PathBuf },
}

#[derive(Subcommand)]
enum StreamCommand {
    /// Import the users of an old QuickTime/Darwin Streaming Server `qtusers` file (and groups of a
    /// `qtgroups` file), keeping their Digest hashes so their passwords keep working for players.
    ImportQtusers {
        /// The `qtusers` file (first line `realm NAME`, then `user:crypt:HA1`).
        file: PathBuf,
        /// The `qtgroups` file (`group: user1 user2`).
        #[arg(long)]
        groups: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Let DELEGATE read or edit OWNER's calendars (CalendarServer proxies), or remove the grant.
    /// DELEGATE is a user name or `group:NAME`.
    Delegate {
        owner: String,
        delegate: String,
        #[arg(long, conflicts_with_all = ["write", "remove"])]
        read: bool,
        #[arg(long, conflicts_with_all = ["read", "remove"])]
        write: bool,
        #[arg(long, conflicts_with_all = ["read", "write"])]
        remove: bool,
    },
    /// Share OWNER's calendar with a user or `group:NAME`, read-only or read-write, or stop sharing.
    /// The calendar appears in each sharee's home, as when shared from Apple Calendar.
    Share {
        owner: String,
        calendar: String,
        sharee: String,
        #[arg(long, conflicts_with_all = ["write", "remove"])]
        read: bool,
        #[arg(long, conflicts_with_all = ["read", "remove"])]
        write: bool,
        #[arg(long, conflicts_with_all = ["read", "write"])]
        remove: bool,
    },
    /// Import an .ics file (an iCal Server or CalendarServer export, or any calendar file) into a
    /// user's calendar, creating it if needed.
    Import {
        file: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        calendar: String,
    },
    /// Export a user's calendar as one .ics file on standard output (or --output FILE).
    Export {
        #[arg(long)]
        user: String,
        #[arg(long)]
        calendar: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// RTSP load: many sessions against Serval and gst-rtsp-server, side by side.
    Stream(serval_stream_bench::StreamBenchArgs),
    /// CalDAV: PUT rate as a calendar grows, REPORT, multiget and sync times; Serval and Radicale.
    Calendar(bench::CalendarBenchArgs),
    /// Web: static file and PHP (php-fpm) req/s and latency; Serval and nginx.
    Web(bench_web::WebBenchArgs),
    /// DNS: cold and cached resolution, q/s per core, latency, RSS; Serval and Unbound.
    Dns(bench_dns::DnsBenchArgs),
    /// Mail: msg/s accepted and relayed, accept latency, CPU, RSS, over an empty and a
    /// deferred queue; Serval and Postfix.
    Mail(bench_mail::MailBenchArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the complete default config, every key commented.
    Default,
}

#[derive(Args)]
struct PasswordArgs {
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (prompts for the password on a terminal).
    Add {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// person, room or resource (rooms and resources have calendars but no password).
        #[arg(long, default_value = "person")]
        kind: String,
    },
    /// Set a user's password.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete a user.
    Del { name: String },
    /// List users (never prints password hashes).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Add a group.
    Add { name: String },
    /// Delete a group.
    Del { name: String },
    /// Add a user to a group.
    AddMember { group: String, user: String },
    /// Remove a user from a group.
    RemoveMember { group: String, user: String },
    /// List groups and their members.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Every TLS client and server in the process uses ring; naming it here keeps clients that
    // ask rustls for "the default" (instant-acme's) working when another crate in the build
    // also compiles aws-lc-rs in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve::run(cli.config.as_deref()),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", config::default_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => commands::check(cli.config.as_deref()),
        Command::User(cmd) => commands::user(cli.config.as_deref(), cmd),
        Command::Group(cmd) => commands::group(cli.config.as_deref(), cmd),
        Command::Status { json } => commands::status(cli.config.as_deref(), json),
        Command::Backup { file } => commands::backup(cli.config.as_deref(), &file),
        Command::Restore { file } => commands::restore(cli.config.as_deref(), &file),
        Command::Stream(StreamCommand::ImportQtusers { file, groups }) => {
            commands::import_qtusers(cli.config.as_deref(), &file, groups.as_deref())
        }
        Command::Calendar(cmd) => calendar_cli::run(cli.config.as_deref(), cmd),
        Command::Web(WebCommand::ImportApache { dir }) => import_apache(&dir),
        Command::Dns(DnsCommand::Query {
            name,
            record_type,
            server,
        }) => commands::dns_query(cli.config.as_deref(), &name, &record_type, server),
        Command::Dns(DnsCommand::ImportNamed { file }) => import_named(&file),
        Command::Dns(DnsCommand::Flush { name }) => {
            commands::dns_flush(cli.config.as_deref(), name.as_deref())
        }
        Command::Mail(cmd) => mail_cli::run(cli.config.as_deref(), cmd),
        Command::Sendmail(args) => mail_cli::sendmail(cli.config.as_deref(), args),
        Command::Store(StoreCommand::Migrate { to, password_file }) => {
            commands::store_migrate(cli.config.as_deref(), &to, password_file.as_deref())
        }
        Command::Bench(BenchCommand::Stream(args)) => {
            serval_stream_bench::run(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Calendar(args)) => bench::calendar(args),
        Command::Bench(BenchCommand::Web(args)) => bench_web::web(args),
        Command::Bench(BenchCommand::Dns(args)) => bench_dns::dns(args),
        Command::Bench(BenchCommand::Mail(args)) => bench_mail::mail(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("serval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) use {CalendarCommand as CalendarCmd, GroupCommand as GroupCmd, UserCommand as UserCmd};

/// `serval web import-apache`: TOML on stdout, the report on stderr.
fn import_named(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let import = match serval_dns::import_named::import(file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("serval: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        dns: &'a serval_dns::DnsConfig,
    }
    println!(
        "# Imported from {} by serval dns import-named: replace the [dns] table of serval.toml.",
        file.display()
    );
    println!("{}", toml::to_string(&Doc { dns: &import.dns })?.trim_end());
    for line in &import.skipped {
        eprintln!("not imported: {line}");
    }
    eprintln!(
        "imported {} forwarder(s), {} allowed network(s), {} zone(s) from {}",
        import.dns.forwarders.len(),
        import.dns.allow.len(),
        import.dns.local_zones.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn import_apache(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let import = match serval_web::apache::import_dir(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("serval: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    #[derive(serde::Serialize)]
    struct Sites<'a> {
        site: &'a [serval_web::config::SiteConfig],
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        web: Sites<'a>,
    }
    let text = toml::to_string(&Doc {
        web: Sites {
            site: &import.sites,
        },
    })?;
    println!(
        "# Imported from {} by serval web import-apache: paste under [web] in serval.toml.",
        dir.display()
    );
    println!("{}", text.trim_end());
    eprintln!(
        "imported {} site(s) from {}",
        import.sites.len(),
        dir.display()
    );
    for line in &import.todo {
        eprintln!("to do: {line}");
    }
    for line in &import.skipped {
        eprintln!("not taken: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// mimalloc in place of glibc's malloc: HTTP request handling allocates and frees many small
/// buffers per request, and with glibc they cost about 10% of the web service's CPU (`serval
/// bench web`: static req/s 0.72-0.83x nginx's before, 0.88-0.93x after); the streaming
/// server's RSS per session is unchanged (`serval bench stream`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
