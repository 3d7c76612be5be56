//! Who may play what: per-folder rules (old `qtaccess` files and `[[stream.access]]` TOML
//! rules), IP allow/deny lists, and the RTSP Basic/Digest check against Serval's directory.
//!
//! Start at [`gate::AccessGate::check`], called for every request of every session, so a SETUP
//! or PLAY never rides on another URL's grant. [`policy`] finds the rule for a movie path;
//! [`qtaccess`] and [`qtusers`] read the old server's files; [`ip`] holds CIDR lists.
//!
//! **How TOML rules and `qtaccess` files combine** (decided here, stated in the config docs):
//! both are rules placed on a folder, and the one nearest the movie applies, as with the old
//! server's files. A `[[stream.access]]` rule counts only if its `require` list is not empty;
//! on the same folder the TOML rule wins (the admin's config is the authority). IP lists come
//! from the deepest matching TOML rule, whatever supplies the users, and `[stream] allow/deny`
//! apply everywhere first. No rule and no file: anyone may play.

pub mod gate;
pub mod ip;
pub mod policy;
pub mod qtaccess;
pub mod qtusers;

use serde::{Deserialize, Serialize};

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// Cleartext password (RFC 7617); Digest answers are accepted too.
    Basic,
    /// RFC 7616 Digest only: the password never crosses the network.
    #[default]
    Digest,
}

/// One principal allowed by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    User(String),
    Group(String),
    /// Any authenticated user.
    ValidUser,
    /// Anyone, without authentication.
    AnyUser,
}

impl Requirement {
    /// Parses the TOML spelling: `user:bob`, `group:staff`, `valid-user`, `any-user`.
    pub fn parse(text: &str) -> Result<Requirement, String> {
        let text = text.trim();
        match text.split_once(':') {
            Some((kind, name)) if !name.trim().is_empty() && name.len() <= 256 => {
                let name = name.trim().to_owned();
                match kind.trim() {
                    "user" => Ok(Requirement::User(name)),
                    "group" => Ok(Requirement::Group(name)),
                    _ => Err(format!(
                        "`{text}`: use user:NAME, group:NAME, valid-user or any-user"
                    )),
                }
            }
            None if text == "valid-user" => Ok(Requirement::ValidUser),
            None if text == "any-user" => Ok(Requirement::AnyUser),
            _ => Err(format!(
                "`{}`: use user:NAME, group:NAME, valid-user or any-user",
                text.chars().take(64).collect::<String>()
            )),
        }
    }
}

/// What a request wants to do to a movie (the old `<Limit>` actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// DESCRIBE, SETUP, PLAY and the other player methods.
    Read,
    /// ANNOUNCE, RECORD (broadcasting).
    Write,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_spellings() {
        assert_eq!(
            Requirement::parse("user:bob"),
            Ok(Requirement::User("bob".into()))
        );
        assert_eq!(
            Requirement::parse("group: staff"),
            Ok(Requirement::Group("staff".into()))
        );
        assert_eq!(Requirement::parse("valid-user"), Ok(Requirement::ValidUser));
        assert_eq!(Requirement::parse("any-user"), Ok(Requirement::AnyUser));
        assert!(Requirement::parse("user:").is_err());
        assert!(Requirement::parse("role:x").is_err());
        assert!(Requirement::parse("everyone").is_err());
    }
}
