//! `serval calendar ...`: delegates, import and export, working on the store directly (safe
//! while the server runs: SQLite serializes writers).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serval_calendar::admin::{self, DelegateLevel, ShareLevel};
use serval_core::Directory;

use crate::{config, CalendarCmd};

pub fn run(config_path: Option<&Path>, cmd: CalendarCmd) -> anyhow::Result<ExitCode> {
    let loaded = config::load(config_path);
    if loaded.problems.has_errors() {
        config::report(&loaded, &mut std::io::stderr());
        anyhow::bail!("the config has errors (listed above)");
    }
    let engine = crate::commands::open_engine(&loaded)?;
    let directory = Directory::on(engine.clone(), &loaded.config.directory);
    let store = serval_calendar::store::open(&engine).context("cannot open the calendar store")?;
    let store = store.as_ref();
    match cmd {
        CalendarCmd::Delegate {
            owner,
            delegate,
            read,
            write,
            remove,
        } => {
            let level = match (read, write, remove) {
                (true, _, _) => DelegateLevel::Read,
                (_, true, _) => DelegateLevel::Write,
                (_, _, true) => DelegateLevel::Remove,
                _ => anyhow::bail!("say --read, --write or --remove"),
            };
            admin::delegate(store, &directory, &owner, &delegate, level)?;
            match level {
                DelegateLevel::Read => {
                    println!("`{delegate}` may now read the calendars of `{owner}`")
                }
                DelegateLevel::Write => {
                    println!("`{delegate}` may now edit the calendars of `{owner}`")
                }
                DelegateLevel::Remove => {
                    println!("`{delegate}` is no longer a delegate of `{owner}`")
                }
            }
        }
        CalendarCmd::Share {
            owner,
            calendar,
            sharee,
            read,
            write,
            remove,
        } => {
            let level = match (read, write, remove) {
                (true, _, _) => ShareLevel::Read,
                (_, true, _) => ShareLevel::Write,
                (_, _, true) => ShareLevel::Remove,
                _ => anyhow::bail!("say --read, --write or --remove"),
            };
            let affected = admin::share(store, &directory, &owner, &calendar, &sharee, level)?;
            let what = match level {
                ShareLevel::Read => "now shared read-only with",
                ShareLevel::Write => "now shared read-write with",
                ShareLevel::Remove => "no longer shared with",
            };
            println!("{owner}/{calendar} is {what} {}", affected.join(", "));
        }
        CalendarCmd::Import {
            file,
            user,
            calendar,
        } => {
            if directory.user(&user)?.is_none() {
                anyhow::bail!("no user named `{user}`");
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "import [{bar:30}] {pos}/{len} objects {per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let now = i64::try_from(serval_core::now_unix()).unwrap_or(i64::MAX);
            let summary = admin::import_ics(store, &user, &calendar, &text, now, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            println!(
                "imported into {user}/{calendar}: {} created, {} updated, {} rejected",
                summary.created,
                summary.updated,
                summary.rejected.len()
            );
            for (uid, reason) in &summary.rejected {
                println!("  rejected {uid}: {reason}");
            }
        }
        CalendarCmd::Export {
            user,
            calendar,
            output,
        } => {
            let text = admin::export_ics(store, &user, &calendar)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
