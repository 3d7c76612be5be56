//! The old server's per-folder `qtaccess` rule files (DSS `QTAccessFile`), parsed so an existing
//! movie tree keeps its protection unchanged.
//!
//! Accepted directives: `AuthScheme basic|digest`, `AuthName "realm"`, `require user a b`,
//! `require group g`, `require valid-user`, `require any-user`, and `<Limit READ>`,
//! `<Limit WRITE>`, `<Limit READ WRITE>` blocks. `AuthUserFile` and `AuthGroupFile` are accepted
//! and reported as ignored: users and groups come from Serval's directory (import the old files
//! with [`super::qtusers::import_qtusers`]). Pure: text in, rules out.

use super::{AuthScheme, Requirement};

/// The file name the old server looked for in each movie folder.
pub const QTACCESS_FILE_NAME: &str = "qtaccess";
/// Largest rule file read; real ones are a few lines.
pub const MAX_RULE_FILE_BYTES: usize = 64 * 1024;
/// Most principals named in one file; beyond this it is not a hand-written rule file.
pub const MAX_PRINCIPALS: usize = 1024;
/// Longest user, group or realm name kept.
pub const MAX_NAME_BYTES: usize = 256;

/// The rules of one `qtaccess` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QtAccess {
    pub scheme: Option<AuthScheme>,
    /// `AuthName`: the realm shown to clients.
    pub realm: Option<String>,
    /// Who may DESCRIBE, SETUP and PLAY. Requirements outside any `<Limit>` block apply here.
    pub read: Vec<Requirement>,
    /// Who may ANNOUNCE and RECORD (broadcasting; Serval serves no RECORD yet).
    pub write: Vec<Requirement>,
    /// Directives accepted without effect (`AuthUserFile`, `AuthGroupFile`), with line numbers.
    pub ignored: Vec<(usize, String)>,
}

/// Why a rule file was refused. The whole file is refused rather than half applied: a
/// typo must not silently open a protected folder (the caller denies access instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QtAccessError {
    #[error("rule file is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("line {line}: unknown directive `{directive}`")]
    UnknownDirective { line: usize, directive: String },
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("line {line}: `<Limit>` block is never closed")]
    UnclosedLimit { line: usize },
    #[error("more than {limit} principals named")]
    TooManyPrincipals { limit: usize },
}

/// Which actions the requirements being read apply to.
#[derive(Clone, Copy)]
struct Scope {
    read: bool,
    write: bool,
}

/// Parses the text of a `qtaccess` file.
pub fn parse_qtaccess(text: &str) -> Result<QtAccess, QtAccessError> {
    if text.len() > MAX_RULE_FILE_BYTES {
        return Err(QtAccessError::TooLarge {
            size: text.len(),
            limit: MAX_RULE_FILE_BYTES,
        });
    }
    let mut rules = QtAccess::default();
    let default_scope = Scope {
        read: true,
        write: false,
    };
    let mut scope = default_scope;
    let mut open_limit: Option<usize> = None;
    let mut n_principals = 0usize;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let invalid = |message: &str| QtAccessError::Invalid {
            line: line_no,
            message: message.to_owned(),
        };
        if let Some(inner) = line.strip_prefix('<') {
            let inner = inner
                .strip_suffix('>')
                .ok_or_else(|| invalid("a `<` block tag must end with `>`"))?;
            let mut words = inner.split_whitespace();
            let tag = words.next().unwrap_or_default();
            if tag.eq_ignore_ascii_case("/limit") {
                if open_limit.take().is_none() {
                    return Err(invalid("`</Limit>` without `<Limit>`"));
                }
                scope = default_scope;
                continue;
            }
            if !tag.eq_ignore_ascii_case("limit") {
                return Err(QtAccessError::UnknownDirective {
                    line: line_no,
                    directive: truncate(tag),
                });
            }
            if open_limit.is_some() {
                return Err(invalid("`<Limit>` blocks do not nest"));
            }
            let mut block = Scope {
                read: false,
                write: false,
            };
            for action in words {
                if action.eq_ignore_ascii_case("read") {
                    block.read = true;
                } else if action.eq_ignore_ascii_case("write") {
                    block.write = true;
                } else {
                    return Err(invalid("`<Limit>` takes READ and/or WRITE"));
                }
            }
            if !block.read && !block.write {
                return Err(invalid("`<Limit>` names no action (READ, WRITE)"));
            }
            scope = block;
            open_limit = Some(line_no);
            continue;
        }
        let (directive, rest) = match line.split_once(char::is_whitespace) {
            Some((directive, rest)) => (directive, rest.trim()),
            None => (line, ""),
        };
        match directive.to_ascii_lowercase().as_str() {
            "authscheme" => {
                rules.scheme = Some(match rest.to_ascii_lowercase().as_str() {
                    "basic" => AuthScheme::Basic,
                    "digest" => AuthScheme::Digest,
                    _ => return Err(invalid("AuthScheme is `basic` or `digest`")),
                });
            }
            "authname" => {
                let realm = unquote(rest);
                if realm.is_empty() || realm.len() > MAX_NAME_BYTES {
                    return Err(invalid("AuthName needs a realm of 1-256 bytes"));
                }
                if realm.contains('"') {
                    return Err(invalid("AuthName may not contain `\"`"));
                }
                rules.realm = Some(realm.to_owned());
            }
            "authuserfile" | "authgroupfile" => {
                rules.ignored.push((line_no, truncate(directive)));
            }
            "require" => {
                let requirements = parse_require(rest).map_err(|m| invalid(&m))?;
                n_principals = n_principals.saturating_add(requirements.len());
                if n_principals > MAX_PRINCIPALS {
                    return Err(QtAccessError::TooManyPrincipals {
                        limit: MAX_PRINCIPALS,
                    });
                }
                if scope.read {
                    rules.read.extend(requirements.iter().cloned());
                }
                if scope.write {
                    rules.write.extend(requirements);
                }
            }
            _ => {
                return Err(QtAccessError::UnknownDirective {
                    line: line_no,
                    directive: truncate(directive),
                })
            }
        }
    }
    if let Some(line) = open_limit {
        return Err(QtAccessError::UnclosedLimit { line });
    }
    Ok(rules)
}

/// `user a b`, `group g`, `valid-user`, `any-user`.
fn parse_require(rest: &str) -> Result<Vec<Requirement>, String> {
    let mut words = rest.split_whitespace();
    let kind = words.next().unwrap_or_default().to_ascii_lowercase();
    let names: Vec<&str> = words.collect();
    let check = |names: &[&str]| -> Result<(), String> {
        if names.is_empty() {
            return Err(format!("`require {kind}` names nobody"));
        }
        match names.iter().find(|n| n.len() > MAX_NAME_BYTES) {
            Some(_) => Err(format!("a name is over {MAX_NAME_BYTES} bytes")),
            None => Ok(()),
        }
    };
    match kind.as_str() {
        "user" => {
            check(&names)?;
            Ok(names
                .iter()
                .map(|n| Requirement::User((*n).to_owned()))
                .collect())
        }
        "group" => {
            check(&names)?;
            Ok(names
                .iter()
                .map(|n| Requirement::Group((*n).to_owned()))
                .collect())
        }
        "valid-user" if names.is_empty() => Ok(vec![Requirement::ValidUser]),
        "any-user" if names.is_empty() => Ok(vec![Requirement::AnyUser]),
        "valid-user" | "any-user" => Err(format!("`require {kind}` takes no names")),
        _ => Err("require takes user, group, valid-user or any-user".to_owned()),
    }
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the sample `qtaccess` that shipped with the old server.
    const SAMPLE: &str = "# protect this folder\n\
        AuthName \"Movies for staff\"\n\
        AuthScheme digest\n\
        AuthUserFile /Library/QuickTimeStreaming/Config/qtusers\n\
        AuthGroupFile /Library/QuickTimeStreaming/Config/qtgroups\n\
        require group staff\n\
        require user bob alice\n\
        <Limit WRITE>\n\
        require group broadcaster\n\
        </Limit>\n";

    #[test]
    fn sample_file_parses_into_read_and_write_rules() {
        let rules = parse_qtaccess(SAMPLE).unwrap();
        assert_eq!(rules.scheme, Some(AuthScheme::Digest));
        assert_eq!(rules.realm.as_deref(), Some("Movies for staff"));
        assert_eq!(
            rules.read,
            [
                Requirement::Group("staff".into()),
                Requirement::User("bob".into()),
                Requirement::User("alice".into())
            ]
        );
        assert_eq!(rules.write, [Requirement::Group("broadcaster".into())]);
        assert_eq!(
            rules.ignored,
            [
                (4, "AuthUserFile".to_string()),
                (5, "AuthGroupFile".to_string())
            ]
        );
    }

    #[test]
    fn limit_read_write_applies_to_both() {
        let rules =
            parse_qtaccess("<limit read write>\nrequire valid-user\n</limit>\nrequire any-user\n")
                .unwrap();
        assert_eq!(rules.read, [Requirement::ValidUser, Requirement::AnyUser]);
        assert_eq!(rules.write, [Requirement::ValidUser]);
        assert_eq!(rules.scheme, None);
    }

    #[test]
    fn mistakes_refuse_the_whole_file_with_the_line() {
        let cases = [
            ("AuthScheme ntlm\n", 1),
            ("require\n", 1),
            ("require user\n", 1),
            ("require valid-user bob\n", 1),
            ("\n<Limit>\n</Limit>\n", 2),
            ("<Limit READ>\n<Limit WRITE>\n", 2),
            ("</Limit>\n", 1),
            ("<Limit READ\n", 1),
            ("AuthName \"\"\n", 1),
        ];
        for (text, line) in cases {
            match parse_qtaccess(text) {
                Err(QtAccessError::Invalid { line: got, .. }) => {
                    assert_eq!(got, line, "{text:?}")
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(
            parse_qtaccess("Allow from all\n"),
            Err(QtAccessError::UnknownDirective {
                line: 1,
                directive: "Allow".into()
            })
        );
        assert_eq!(
            parse_qtaccess("<Limit READ>\nrequire valid-user\n"),
            Err(QtAccessError::UnclosedLimit { line: 1 })
        );
        assert!(matches!(
            parse_qtaccess(&"#".repeat(MAX_RULE_FILE_BYTES + 1)),
            Err(QtAccessError::TooLarge { .. })
        ));
        let many = format!("require user {}\n", "u ".repeat(MAX_PRINCIPALS + 1));
        assert!(matches!(
            parse_qtaccess(&many),
            Err(QtAccessError::TooManyPrincipals { .. })
        ));
    }

    #[test]
    fn empty_file_has_no_requirements() {
        assert_eq!(
            parse_qtaccess("\n# nothing\n").unwrap(),
            QtAccess::default()
        );
    }
}
