//! Finds the rule that governs a movie: the deepest matching `[[stream.access]]` rule and the
//! nearest `qtaccess` file up the folder tree, the nearer of the two applying (see the module
//! doc of [`crate::access`]).
//!
//! Rule files are read on each request rather than cached, so an admin's edit applies at once
//! and the old server's behaviour is kept; it costs a few `stat` calls per request on the
//! blocking pool where handlers run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ip::Cidr;
use super::qtaccess::{parse_qtaccess, QTACCESS_FILE_NAME};
use super::{Action, AuthScheme, Requirement};

/// Deepest folder nesting searched for rule files.
const MAX_FOLDER_DEPTH: usize = 32;

/// One `[[stream.access]]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessRuleConfig {
    /// Folder under the movies folder, `"private/"`; `""` or `"/"` is the whole folder.
    pub path: String,
    /// `user:NAME`, `group:NAME`, `valid-user`, `any-user`; empty leaves authentication to the
    /// `qtaccess` files below `path`.
    pub require: Vec<String>,
    /// `basic` or `digest`; unset uses `[stream] auth_scheme`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<AuthScheme>,
    /// The realm shown to players; unset uses the directory realm. Digest checks the password
    /// hash kept for this realm: directory accounts have one for the directory realm, accounts
    /// imported from `qtusers` for that file's realm (`"Streaming Server"`), so a rule for
    /// imported accounts names that realm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Client addresses allowed (empty: all), then denied (deny wins).
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl AccessRuleConfig {
    /// The rule's folder as path components.
    fn components(&self) -> Vec<&str> {
        self.path.split('/').filter(|c| !c.is_empty()).collect()
    }

    /// Problems of this rule, for `StreamConfig::validate`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.components().iter().any(|c| *c == ".." || *c == ".") {
            problems.push(format!("path `{}` may not contain `.` or `..`", self.path));
        }
        for requirement in &self.require {
            if let Err(message) = Requirement::parse(requirement) {
                problems.push(message);
            }
        }
        if let Some(realm) = &self.realm {
            if realm.is_empty() || realm.contains('"') || realm.len() > 256 {
                problems.push("realm must be 1-256 bytes without `\"`".to_owned());
            }
        }
        problems
    }
}

/// What governs one movie for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governing {
    /// `None`: anyone may play. `Some(list)`: one requirement must be met (an empty list
    /// admits nobody).
    pub requirements: Option<Vec<Requirement>>,
    pub scheme: AuthScheme,
    /// `None` uses the directory realm.
    pub realm: Option<String>,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Where the requirements came from, for logs: `config path "private/"` or a file path.
    pub source: String,
}

/// The configured rules and where to look for rule files.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    media_dir: PathBuf,
    rules: Vec<AccessRuleConfig>,
    default_scheme: AuthScheme,
}

impl AccessPolicy {
    pub fn new(
        media_dir: &Path,
        rules: Vec<AccessRuleConfig>,
        default_scheme: AuthScheme,
    ) -> AccessPolicy {
        AccessPolicy {
            media_dir: media_dir.to_path_buf(),
            rules,
            default_scheme,
        }
    }

    /// The rule for `url_path` (the request URL's path, percent-encoded, `/sub/x.mp4`).
    pub fn governing(&self, url_path: &str, action: Action) -> Governing {
        let Some(components) = decoded_components(url_path) else {
            // `..` or undecodable: the catalog refuses such paths too; refuse here first.
            return nobody("an unsafe path".to_owned(), self.default_scheme);
        };
        let matching = |rule: &&AccessRuleConfig| {
            let prefix = rule.components();
            prefix.len() <= components.len() && prefix.iter().zip(&components).all(|(a, b)| a == b)
        };
        let depth = |rule: &&AccessRuleConfig| rule.components().len();
        // IP lists come from the deepest matching rule, whether or not it names users.
        let (allow, deny) = self
            .rules
            .iter()
            .filter(matching)
            .max_by_key(depth)
            .map_or((Vec::new(), Vec::new()), |r| {
                (r.allow.clone(), r.deny.clone())
            });
        let rule = self
            .rules
            .iter()
            .filter(matching)
            .filter(|r| !r.require.is_empty())
            .max_by_key(depth);
        let file = self.nearest_file(&components, action);
        let mut governing = match (rule, file) {
            // A rule file deeper than the deepest TOML rule is nearer the movie: it applies.
            (Some(rule), Some((file_depth, file))) if file_depth > depth(&rule) => file,
            (None, Some((_, file))) => file,
            (Some(rule), _) => Governing {
                requirements: Some(match action {
                    Action::Read => rule
                        .require
                        .iter()
                        .filter_map(|r| Requirement::parse(r).ok())
                        .collect(),
                    // TOML rules do not grant broadcasting; that comes with RECORD support.
                    Action::Write => Vec::new(),
                }),
                scheme: rule.scheme.unwrap_or(self.default_scheme),
                realm: rule.realm.clone(),
                allow: Vec::new(),
                deny: Vec::new(),
                source: format!("config path {:?}", rule.path),
            },
            (None, None) => Governing {
                requirements: None,
                scheme: self.default_scheme,
                realm: None,
                allow: Vec::new(),
                deny: Vec::new(),
                source: "no rule".to_owned(),
            },
        };
        governing.allow = allow;
        governing.deny = deny;
        governing
    }

    /// The nearest `qtaccess` file from the movie's folder up to the movies folder.
    /// Returns the file's folder depth (0 = the movies folder) with what it says.
    fn nearest_file(&self, components: &[String], action: Action) -> Option<(usize, Governing)> {
        let folders = components.len().saturating_sub(1).min(MAX_FOLDER_DEPTH);
        for depth in (0..=folders).rev() {
            let mut folder = self.media_dir.clone();
            for component in components.iter().take(depth) {
                folder.push(component);
            }
            let file = folder.join(QTACCESS_FILE_NAME);
            let Ok(metadata) = std::fs::metadata(&file) else {
                continue;
            };
            let source = file.display().to_string();
            if !metadata.is_file() {
                continue;
            }
            let text = match read_rule_file(&file) {
                Ok(text) => text,
                Err(error) => {
                    tracing::warn!(target: "serval_stream::access", file = %source, %error,
                                   "cannot read rule file; its folder is closed to everyone");
                    return Some((depth, nobody(source, self.default_scheme)));
                }
            };
            let governing = match parse_qtaccess(&text) {
                Ok(rules) => {
                    for (line, directive) in &rules.ignored {
                        tracing::debug!(target: "serval_stream::access", file = %source, line, directive,
                                        "ignored: users and groups come from Serval's directory");
                    }
                    let mut requirements = match action {
                        Action::Read => rules.read,
                        Action::Write => rules.write,
                    };
                    // A rule file that names nobody for reading still means "protected": the
                    // old server then admitted any valid user.
                    if requirements.is_empty() && action == Action::Read {
                        requirements.push(Requirement::ValidUser);
                    }
                    Governing {
                        requirements: Some(requirements),
                        scheme: rules.scheme.unwrap_or(self.default_scheme),
                        realm: rules.realm,
                        allow: Vec::new(),
                        deny: Vec::new(),
                        source,
                    }
                }
                Err(error) => {
                    tracing::warn!(target: "serval_stream::access", file = %source, %error,
                                   "broken rule file; its folder is closed to everyone");
                    nobody(source, self.default_scheme)
                }
            };
            return Some((depth, governing));
        }
        None
    }
}

fn nobody(source: String, scheme: AuthScheme) -> Governing {
    Governing {
        requirements: Some(Vec::new()),
        scheme,
        realm: None,
        allow: Vec::new(),
        deny: Vec::new(),
        source,
    }
}

fn read_rule_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    let limit = u64::try_from(super::qtaccess::MAX_RULE_FILE_BYTES + 1).unwrap_or(u64::MAX);
    std::fs::File::open(path)?
        .take(limit)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Percent-decoded path components, or `None` for `.`/`..`, NUL or undecodable input.
fn decoded_components(url_path: &str) -> Option<Vec<String>> {
    let mut components = Vec::new();
    for raw in url_path.split('/').filter(|c| !c.is_empty()) {
        let decoded = urlencoding::decode(raw).ok()?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        components.push(decoded.into_owned());
    }
    Some(components)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, require: &[&str]) -> AccessRuleConfig {
        AccessRuleConfig {
            path: path.into(),
            require: require.iter().map(|s| s.to_string()).collect(),
            ..AccessRuleConfig::default()
        }
    }

    #[test]
    fn nearest_qtaccess_up_the_tree_applies() {
        let media = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(media.path().join("staff/deep/er")).unwrap();
        std::fs::create_dir_all(media.path().join("open")).unwrap();
        std::fs::write(
            media.path().join("staff/qtaccess"),
            "AuthName \"Staff\"\nAuthScheme basic\nrequire group staff\n",
        )
        .unwrap();
        std::fs::write(
            media.path().join("staff/deep/er/qtaccess"),
            "require user bob\n",
        )
        .unwrap();
        let policy = AccessPolicy::new(media.path(), Vec::new(), AuthScheme::Digest);
        let g = policy.governing("/staff/deep/a.mp4", Action::Read);
        assert_eq!(
            g.requirements,
            Some(vec![Requirement::Group("staff".into())])
        );
        assert_eq!(g.scheme, AuthScheme::Basic);
        assert_eq!(g.realm.as_deref(), Some("Staff"));
        let g = policy.governing("/staff/deep/er/b%20c.mp4", Action::Read);
        assert_eq!(g.requirements, Some(vec![Requirement::User("bob".into())]));
        assert_eq!(g.scheme, AuthScheme::Digest);
        assert_eq!(
            policy.governing("/open/a.mp4", Action::Read).requirements,
            None
        );
        assert_eq!(policy.governing("/a.mp4", Action::Read).requirements, None);
        assert_eq!(
            policy
                .governing("/open/%2e%2e/staff/a.mp4", Action::Read)
                .requirements,
            Some(Vec::new())
        );
    }

    #[test]
    fn broken_file_closes_its_folder() {
        let media = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(media.path().join("x")).unwrap();
        std::fs::write(media.path().join("x/qtaccess"), "require everybody\n").unwrap();
        let policy = AccessPolicy::new(media.path(), Vec::new(), AuthScheme::Digest);
        assert_eq!(
            policy.governing("/x/a.mp4", Action::Read).requirements,
            Some(Vec::new())
        );
    }

    #[test]
    fn the_nearer_of_toml_rule_and_file_applies_toml_winning_ties() {
        let media = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(media.path().join("private/films")).unwrap();
        std::fs::write(
            media.path().join("private/films/qtaccess"),
            "require user carol\n",
        )
        .unwrap();
        let mut ip_only = rule("private/films", &[]);
        ip_only.deny = vec![Cidr::try_from("10.0.0.0/8".to_string()).unwrap()];
        std::fs::write(media.path().join("private/qtaccess"), "require user dave\n").unwrap();
        let policy = AccessPolicy::new(
            media.path(),
            vec![
                rule("/", &["any-user"]),
                rule("private/", &["group:staff", "valid-user"]),
                ip_only,
            ],
            AuthScheme::Digest,
        );
        let g = policy.governing("/private/a.mp4", Action::Read);
        assert_eq!(
            g.requirements,
            Some(vec![
                Requirement::Group("staff".into()),
                Requirement::ValidUser
            ])
        );
        assert_eq!(
            policy
                .governing("/private/a.mp4", Action::Write)
                .requirements,
            Some(vec![])
        );
        let g = policy.governing("/private/films/a.mp4", Action::Read);
        assert_eq!(
            g.requirements,
            Some(vec![Requirement::User("carol".into())])
        );
        assert_eq!(g.deny.len(), 1);
        assert_eq!(
            policy
                .governing("/privateer.mp4", Action::Read)
                .requirements,
            Some(vec![Requirement::AnyUser])
        );
    }

    #[test]
    fn rule_problems_are_reported() {
        let mut bad = rule("../x", &["someone"]);
        bad.realm = Some("a\"b".into());
        assert_eq!(bad.problems().len(), 3);
        assert!(rule("private/", &["user:bob"]).problems().is_empty());
    }
}
