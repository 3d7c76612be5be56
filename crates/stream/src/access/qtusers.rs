//! The old server's password files: `qtusers` (first line `realm <name>`, then
//! `user:crypt(password):MD5(user:realm:password)`) and `qtgroups` (`group: user1 user2`), and
//! their import into Serval's directory.
//!
//! Only the Digest HA1 carries over (stored under the file's realm, so players keep logging in
//! with their old passwords); the crypt(3) hash is kept for reference and Basic logins of such
//! accounts wait until the user sets a new password (see `Directory::import_digest_user`).
//! Parsing is pure; [`import_qtusers`] is the one function that touches the directory.

use std::path::{Path, PathBuf};

use serval_core::Directory;

/// Largest users or groups file read (a few thousand accounts).
pub const MAX_PASSWORD_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Longest realm kept.
const MAX_REALM_BYTES: usize = 256;
/// Longest crypt(3) field kept; DES crypt is 13 characters, MD5-crypt about 34.
const MAX_CRYPT_BYTES: usize = 128;
/// Most members listed on one `qtgroups` line.
const MAX_GROUP_MEMBERS: usize = 10_000;

/// One account line of a `qtusers` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QtUser {
    pub name: String,
    /// The crypt(3) hash of the password, empty when the line had none.
    pub crypt: String,
    /// `MD5(user:realm:password)`, lower-case hex.
    pub md5_ha1: String,
}

/// A parsed `qtusers` file: its realm, its accounts and the lines that were not accounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QtUsersFile {
    pub realm: String,
    pub users: Vec<QtUser>,
    /// (line number, why) for lines that could not be read.
    pub bad_lines: Vec<(usize, String)>,
}

/// A parsed `qtgroups` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QtGroupsFile {
    pub groups: Vec<(String, Vec<String>)>,
    pub bad_lines: Vec<(usize, String)>,
}

/// Why a password file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum QtUsersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: usize,
    },
    #[error("the first line must be `realm <name>` (the realm the HA1 values were made for)")]
    NoRealmLine,
    #[error("the directory failed: {0}")]
    Directory(#[from] serval_core::directory::DirectoryError),
}

/// What an import did, account by account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// The Digest realm the imported HA1 values belong to.
    pub realm: String,
    /// Users whose HA1 was stored (new accounts, or existing ones given this realm's HA1).
    pub imported_users: Vec<String>,
    /// (user or line, why) for accounts not imported.
    pub skipped_users: Vec<(String, String)>,
    /// Groups created or found, with the members added.
    pub imported_groups: Vec<(String, Vec<String>)>,
    /// (group member or line, why) for memberships not imported.
    pub skipped_groups: Vec<(String, String)>,
}

/// Parses the text of a `qtusers` file.
pub fn parse_qtusers(text: &str) -> Result<QtUsersFile, QtUsersError> {
    let mut lines = text.lines().enumerate();
    let realm = loop {
        let Some((_, line)) = lines.next() else {
            return Err(QtUsersError::NoRealmLine);
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, realm) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let realm = realm.trim();
        if !keyword.eq_ignore_ascii_case("realm")
            || realm.is_empty()
            || realm.len() > MAX_REALM_BYTES
            || realm.contains('"')
        {
            return Err(QtUsersError::NoRealmLine);
        }
        break realm.to_owned();
    };
    let mut file = QtUsersFile {
        realm,
        ..QtUsersFile::default()
    };
    for (index, line) in lines {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, ':').collect();
        let [name, crypt, ha1] = fields.as_slice() else {
            file.bad_lines
                .push((line_no, "expected `user:crypt:HA1`".to_owned()));
            continue;
        };
        if name.is_empty() {
            file.bad_lines.push((line_no, "empty user name".to_owned()));
            continue;
        }
        if ha1.len() != 32 || !ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
            file.bad_lines.push((
                line_no,
                format!("user `{}`: HA1 is not 32 hex digits", truncate(name)),
            ));
            continue;
        }
        if crypt.len() > MAX_CRYPT_BYTES {
            file.bad_lines.push((
                line_no,
                format!(
                    "user `{}`: crypt field over {MAX_CRYPT_BYTES} bytes",
                    truncate(name)
                ),
            ));
            continue;
        }
        file.users.push(QtUser {
            name: (*name).to_owned(),
            crypt: (*crypt).to_owned(),
            md5_ha1: ha1.to_ascii_lowercase(),
        });
    }
    Ok(file)
}

/// Parses the text of a `qtgroups` file.
pub fn parse_qtgroups(text: &str) -> QtGroupsFile {
    let mut file = QtGroupsFile::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((group, members)) = line.split_once(':') else {
            file.bad_lines
                .push((line_no, "expected `group: user1 user2`".to_owned()));
            continue;
        };
        let group = group.trim();
        if group.is_empty() {
            file.bad_lines
                .push((line_no, "empty group name".to_owned()));
            continue;
        }
        let members: Vec<String> = members
            .split_whitespace()
            .take(MAX_GROUP_MEMBERS)
            .map(str::to_owned)
            .collect();
        file.groups.push((group.to_owned(), members));
    }
    file
}

/// Imports a `qtusers` file (and optionally a `qtgroups` file) into `directory`. Accounts whose
/// names the directory refuses, and malformed lines, are skipped and listed with the reason;
/// the import of the rest goes on.
pub fn import_qtusers(
    directory: &Directory,
    users: &Path,
    groups: Option<&Path>,
) -> Result<ImportReport, QtUsersError> {
    let users_file = parse_qtusers(&read_bounded(users)?)?;
    let mut report = ImportReport {
        realm: users_file.realm.clone(),
        ..ImportReport::default()
    };
    for (line, why) in &users_file.bad_lines {
        report
            .skipped_users
            .push((format!("line {line}"), why.clone()));
    }
    for user in &users_file.users {
        let crypt = (!user.crypt.is_empty()).then_some(user.crypt.as_str());
        match directory.import_digest_user(&user.name, &users_file.realm, &user.md5_ha1, crypt) {
            Ok(()) => report.imported_users.push(user.name.clone()),
            Err(serval_core::directory::DirectoryError::InvalidName(_)) => {
                report.skipped_users.push((
                    truncate(&user.name),
                    "not a valid directory user name".to_owned(),
                ))
            }
            Err(error) => return Err(error.into()),
        }
    }
    let Some(groups) = groups else {
        return Ok(report);
    };
    let groups_file = parse_qtgroups(&read_bounded(groups)?);
    for (line, why) in &groups_file.bad_lines {
        report
            .skipped_groups
            .push((format!("line {line}"), why.clone()));
    }
    for (group, members) in &groups_file.groups {
        match directory.add_group(group) {
            Ok(()) | Err(serval_core::directory::DirectoryError::GroupExists(_)) => {}
            Err(serval_core::directory::DirectoryError::InvalidName(_)) => {
                report.skipped_groups.push((
                    truncate(group),
                    "not a valid directory group name".to_owned(),
                ));
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        let mut added = Vec::new();
        for member in members {
            match directory.add_member(group, member) {
                Ok(()) => added.push(member.clone()),
                Err(serval_core::directory::DirectoryError::NoSuchUser(_)) => {
                    report.skipped_groups.push((
                        format!("{}: {}", truncate(group), truncate(member)),
                        "no such user in the directory".to_owned(),
                    ))
                }
                Err(error) => return Err(error.into()),
            }
        }
        report.imported_groups.push((group.clone(), added));
    }
    Ok(report)
}

fn read_bounded(path: &Path) -> Result<String, QtUsersError> {
    let read_error = |source| QtUsersError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > u64::try_from(MAX_PASSWORD_FILE_BYTES).unwrap_or(u64::MAX) {
        return Err(QtUsersError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_PASSWORD_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    // Old files may hold Latin-1 names; those become U+FFFD and are then refused as names.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serval_core::directory::{digest_ha1, DigestAlgorithm};

    fn line(user: &str, realm: &str, password: &str) -> String {
        format!(
            "{user}:AbCdEfGhIjKlM:{}\n",
            digest_ha1(DigestAlgorithm::Md5, user, realm, password)
        )
    }

    #[test]
    fn users_file_parses_and_lists_bad_lines() {
        let text = format!(
            "realm Streaming Server\n{}{}garbage\n:x:{}\nbob:x:nothex\n",
            line("alice", "Streaming Server", "wonder"),
            line("bob", "Streaming Server", "builder"),
            "0".repeat(32)
        );
        let file = parse_qtusers(&text).unwrap();
        assert_eq!(file.realm, "Streaming Server");
        assert_eq!(
            file.users
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(file.users[0].crypt, "AbCdEfGhIjKlM");
        assert_eq!(
            file.bad_lines.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [4, 5, 6]
        );
    }

    #[test]
    fn users_file_needs_the_realm_line() {
        assert!(matches!(
            parse_qtusers("alice:x:0123\n"),
            Err(QtUsersError::NoRealmLine)
        ));
        assert!(matches!(parse_qtusers(""), Err(QtUsersError::NoRealmLine)));
        assert!(matches!(
            parse_qtusers("realm\n"),
            Err(QtUsersError::NoRealmLine)
        ));
    }

    #[test]
    fn groups_file_parses() {
        let file = parse_qtgroups("staff: alice bob\nbroadcaster:\nnocolon\n");
        assert_eq!(
            file.groups,
            [
                (
                    "staff".to_string(),
                    vec!["alice".to_string(), "bob".to_string()]
                ),
                ("broadcaster".to_string(), vec![])
            ]
        );
        assert_eq!(file.bad_lines.len(), 1);
    }

    #[test]
    fn import_keeps_ha1_under_the_old_realm_and_reports_skips() {
        let dir = tempfile::tempdir().unwrap();
        let store = serval_core::Store::open(&dir.path().join("s.db")).unwrap();
        let directory = Directory::new(store, &serval_core::config::DirectoryConfig::default());
        let users = dir.path().join("qtusers");
        let groups = dir.path().join("qtgroups");
        std::fs::write(
            &users,
            format!(
                "realm Streaming Server\n{}{}",
                line("alice", "Streaming Server", "wonder"),
                line("bad name!", "Streaming Server", "x")
            ),
        )
        .unwrap();
        std::fs::write(&groups, "staff: alice ghost\n").unwrap();
        let report = import_qtusers(&directory, &users, Some(&groups)).unwrap();
        assert_eq!(report.imported_users, ["alice"]);
        assert_eq!(report.skipped_users.len(), 1);
        assert_eq!(
            report.imported_groups,
            [("staff".to_string(), vec!["alice".to_string()])]
        );
        assert_eq!(report.skipped_groups.len(), 1);
        assert_eq!(
            directory
                .digest_ha1("alice", "Streaming Server", DigestAlgorithm::Md5)
                .unwrap(),
            Some(digest_ha1(
                DigestAlgorithm::Md5,
                "alice",
                "Streaming Server",
                "wonder"
            ))
        );
        assert!(directory.is_member("staff", "alice").unwrap());
    }
}
