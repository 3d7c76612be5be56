//! Where a walk starts: the root name servers.
//!
//! Compiled-in hints (IANA's named.root of 2024-07, with B-root's 2023 renumbering), an
//! optional `root_hints_file` over them, and the set learnt by priming (RFC 8109), which is
//! kept in `data_dir` and preferred at the next start: a restart works even when every hinted
//! address has since been retired.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};

/// One root server: its name and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootServer {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// IANA's root hints (named.root, last changed 2024-07-18).
const HINTS: [(&str, &str, &str); 13] = [
    ("a.root-servers.net.", "198.41.0.4", "2001:503:ba3e::2:30"),
    ("b.root-servers.net.", "170.247.170.2", "2801:1b8:10::b"),
    ("c.root-servers.net.", "192.33.4.12", "2001:500:2::c"),
    ("d.root-servers.net.", "199.7.91.13", "2001:500:2d::d"),
    ("e.root-servers.net.", "192.203.230.10", "2001:500:a8::e"),
    ("f.root-servers.net.", "192.5.5.241", "2001:500:2f::f"),
    ("g.root-servers.net.", "192.112.36.4", "2001:500:12::d0d"),
    ("h.root-servers.net.", "198.97.190.53", "2001:500:1::53"),
    ("i.root-servers.net.", "192.36.148.17", "2001:7fe::53"),
    ("j.root-servers.net.", "192.58.128.30", "2001:503:c27::2:30"),
    ("k.root-servers.net.", "193.0.14.129", "2001:7fd::1"),
    ("l.root-servers.net.", "199.7.83.42", "2001:500:9f::42"),
    ("m.root-servers.net.", "202.12.27.33", "2001:dc3::35"),
];

/// The compiled-in hints.
pub fn compiled_hints() -> Vec<RootServer> {
    HINTS
        .iter()
        .map(|(name, v4, v6)| RootServer {
            name: (*name).to_owned(),
            addresses: [v4, v6].iter().filter_map(|a| a.parse().ok()).collect(),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Parses a hints file in named.root format: `. NS name` lines and the names' A/AAAA lines.
pub fn parse_hints(text: &str, path: &Path) -> Result<Vec<RootServer>, HintsError> {
    let parse_error = |reason: String| HintsError::Parse {
        path: path.to_owned(),
        reason,
    };
    let (_, records) =
        hickory_proto::serialize::txt::Parser::new(text, Some(path.to_owned()), Some(Name::root()))
            .parse()
            .map_err(|e| parse_error(e.to_string()))?;
    let mut servers: Vec<RootServer> = Vec::new();
    if let Some(ns) = records
        .iter()
        .find(|(key, _)| key.record_type == RecordType::NS && key.name().is_root())
    {
        for record in ns.1.records_without_rrsigs() {
            if let RData::NS(target) = &record.data {
                servers.push(RootServer {
                    name: target.0.to_lowercase().to_ascii(),
                    addresses: Vec::new(),
                });
            }
        }
    }
    if servers.is_empty() {
        return Err(parse_error("no `. NS` records".into()));
    }
    for (key, set) in &records {
        let owner = Name::from(key.name().clone()).to_lowercase().to_ascii();
        let Some(server) = servers.iter_mut().find(|s| s.name == owner) else {
            continue;
        };
        for record in set.records_without_rrsigs() {
            match &record.data {
                RData::A(a) => server.addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => server.addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    servers.retain(|s| !s.addresses.is_empty());
    if servers.is_empty() {
        return Err(parse_error(
            "no address (A or AAAA) for any root server named".into(),
        ));
    }
    Ok(servers)
}

/// Reads `root_hints_file`.
pub fn read_hints(path: &Path) -> Result<Vec<RootServer>, HintsError> {
    let text = std::fs::read_to_string(path).map_err(|source| HintsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_hints(&text, path)
}

/// What priming learnt, as kept in `data_dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrimedRoots {
    /// Seconds since the Unix epoch.
    pub primed_at: u64,
    pub servers: Vec<RootServer>,
}

/// The file priming writes: `DATA_DIR/dns/root-servers.json`.
pub fn primed_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dns").join("root-servers.json")
}

/// The root set of the last priming, if one was kept and reads back whole.
pub fn load_primed(data_dir: &Path) -> Option<PrimedRoots> {
    let text = std::fs::read_to_string(primed_path(data_dir)).ok()?;
    let primed: PrimedRoots = serde_json::from_str(&text).ok()?;
    (!primed.servers.is_empty()).then_some(primed)
}

/// Keeps a priming's result: written to a temporary file and renamed, so a crash mid-write
/// leaves the previous set.
pub fn save_primed(data_dir: &Path, primed: &PrimedRoots) -> std::io::Result<()> {
    let path = primed_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(primed).map_err(std::io::Error::other)?;
    std::fs::write(&temporary, text)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_hints_have_thirteen_servers_with_both_families() {
        let hints = compiled_hints();
        assert_eq!(hints.len(), 13);
        assert!(hints.iter().all(|s| s.addresses.len() == 2));
        assert_eq!(
            hints[1].addresses[0],
            "170.247.170.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_named_root_file_is_read() {
        let text = ".  3600000  NS  A.ROOT.TEST.\n\
                    .  3600000  NS  B.ROOT.TEST.\n\
                    A.ROOT.TEST.  3600000  A  127.0.0.2\n\
                    A.ROOT.TEST.  3600000  AAAA  ::1\n\
                    ; B has no address: dropped\n";
        let servers = parse_hints(text, Path::new("hints")).unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].name, "a.root.test.");
        assert_eq!(servers[0].addresses.len(), 2);
        let error = parse_hints("a.root.test. 1 A 127.0.0.1\n", Path::new("h")).unwrap_err();
        assert!(error.to_string().contains("no `. NS` records"), "{error}");
    }

    #[test]
    fn primed_roots_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_primed(dir.path()).is_none());
        let primed = PrimedRoots {
            primed_at: 1,
            servers: compiled_hints(),
        };
        save_primed(dir.path(), &primed).unwrap();
        assert_eq!(load_primed(dir.path()).unwrap().servers, primed.servers);
    }
}
