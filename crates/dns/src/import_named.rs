//! `serval dns import-named /etc/named.conf`: BIND's forwarders, client ACLs and primary
//! zones as a `[dns]` table, and a list of what could not be taken.
//!
//! named.conf's grammar (statements `name [args] { ... };`, `//`, `#` and `/* */` comments,
//! quoted strings, `include`) is small and no kept crate parses it, so it is read here.

use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RecordType};

use crate::config::{Cidr, DnsConfig, LocalZoneConfig};

/// One statement: its words (`zone`, `"office.test"`, ...) and its block, if any.
#[derive(Debug, Clone, PartialEq)]
struct Statement {
    words: Vec<String>,
    block: Option<Vec<Statement>>,
    line: usize,
}

/// What the import made.
#[derive(Debug, Default)]
pub struct Import {
    pub dns: DnsConfig,
    /// "FILE:LINE: what", one per thing left out.
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn tokens(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '{' | '}' | ';' => out.push((c.to_string(), line)),
            '"' => {
                let mut word = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    if c == '\n' {
                        line += 1;
                    }
                    word.push(c);
                }
                out.push((format!("\"{word}"), line));
            }
            c => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push((word, line));
            }
        }
    }
    out
}

fn parse_block(
    tokens: &[(String, usize)],
    at: &mut usize,
    path: &Path,
) -> Result<Vec<Statement>, ImportError> {
    let mut statements = Vec::new();
    let error = |line, reason: &str| ImportError::Syntax {
        path: path.to_owned(),
        line,
        reason: reason.into(),
    };
    loop {
        let Some((first, line)) = tokens.get(*at) else {
            return Ok(statements);
        };
        if first == "}" {
            return Ok(statements);
        }
        let line = *line;
        let mut words = Vec::new();
        let mut block = None;
        loop {
            let Some((token, l)) = tokens.get(*at) else {
                return Err(error(line, "statement without its closing `;`"));
            };
            *at += 1;
            match token.as_str() {
                ";" => break,
                "{" => {
                    block = Some(parse_block(tokens, at, path)?);
                    match tokens.get(*at) {
                        Some((t, _)) if t == "}" => *at += 1,
                        _ => return Err(error(*l, "`{` without its `}`")),
                    }
                }
                "}" => return Err(error(*l, "unexpected `}`")),
                word => words.push(word.trim_start_matches('"').to_owned()),
            }
        }
        if !words.is_empty() || block.is_some() {
            statements.push(Statement { words, block, line });
        }
    }
}

/// Reads `path` and its `include`s into one list of statements, each tagged with its file.
fn read(path: &Path, depth: usize) -> Result<Vec<(PathBuf, Statement)>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let tokens = tokens(&text);
    let mut at = 0;
    let statements = parse_block(&tokens, &mut at, path)?;
    if at < tokens.len() {
        return Err(ImportError::Syntax {
            path: path.to_owned(),
            line: tokens[at].1,
            reason: "unexpected `}`".into(),
        });
    }
    let mut out = Vec::new();
    for s in statements {
        if s.words.first().map(String::as_str) == Some("include") && depth < 8 {
            if let Some(file) = s.words.get(1) {
                let included = resolve(path, file);
                out.extend(read(&included, depth + 1)?);
                continue;
            }
        }
        out.push((path.to_owned(), s));
    }
    Ok(out)
}

fn resolve(config: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_owned()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Address-match list entries as CIDRs; named ACLs expanded; what cannot be taken, noted.
fn addresses(
    block: &[Statement],
    acls: &[(String, Vec<Statement>)],
    file: &Path,
    skipped: &mut Vec<String>,
) -> Vec<Cidr> {
    let mut out = Vec::new();
    for entry in block {
        let word = entry.words.join(" ");
        match word.as_str() {
            "localhost" => out.extend(
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|c| Cidr::try_from(c.to_string()).ok()),
            ),
            "any" => out.extend(
                ["0.0.0.0/0", "::/0"]
                    .iter()
                    .filter_map(|c| Cidr::try_from(c.to_string()).ok()),
            ),
            "none" => {}
            "localnets" => skipped.push(format!(
                "{}:{}: `localnets` (list the office's networks in [dns] allow)",
                file.display(),
                entry.line
            )),
            w if w.starts_with('!') => skipped.push(format!(
                "{}:{}: negated entry `{w}` (allow lists only what is allowed)",
                file.display(),
                entry.line
            )),
            w => match acls.iter().find(|(name, _)| name == w) {
                Some((_, inner)) => out.extend(addresses(inner, acls, file, skipped)),
                None => match Cidr::try_from(if w.contains('/') {
                    w.to_owned()
                } else if w.contains(':') {
                    format!("{w}/128")
                } else {
                    format!("{w}/32")
                }) {
                    Ok(c) => out.push(c),
                    Err(_) => skipped.push(format!(
                        "{}:{}: address-match entry `{w}`",
                        file.display(),
                        entry.line
                    )),
                },
            },
        }
    }
    out
}

/// Reads a zone file into `records` lines relative to the zone (what `[[dns.local_zone]]` takes).
fn zone_records(origin: &str, path: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let apex = Name::from_ascii(format!("{}.", origin.trim_end_matches('.')))
        .map_err(|e| e.to_string())?;
    let (_, sets) = hickory_proto::serialize::txt::Parser::new(
        &text,
        Some(path.to_owned()),
        Some(apex.clone()),
    )
    .parse()
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = Vec::new();
    let mut left_out = Vec::new();
    for (key, set) in sets {
        // The SOA and the apex NS are Serval's own (it answers the zone itself).
        if key.record_type == RecordType::SOA {
            continue;
        }
        let owner = Name::from(key.name().clone());
        if key.record_type == RecordType::NS && owner == apex {
            continue;
        }
        let relative = if owner == apex {
            "@".to_owned()
        } else {
            let text = owner.to_ascii();
            text.strip_suffix(&format!(".{}", apex.to_ascii()))
                .unwrap_or(&text)
                .to_owned()
        };
        for record in set.records_without_rrsigs() {
            let line = format!(
                "{relative} {} {} {}",
                record.ttl,
                record.record_type(),
                record.data
            );
            if line.contains('\n') {
                left_out.push(format!("{} {}", owner, record.record_type()));
                continue;
            }
            lines.push(line);
        }
    }
    Ok((lines, left_out))
}

/// Imports `path` (named.conf).
pub fn import(path: &Path) -> Result<Import, ImportError> {
    let statements = read(path, 0)?;
    let mut import = Import::default();
    import.dns.enabled = true;
    import.dns.allow.clear();
    let acls: Vec<(String, Vec<Statement>)> = statements
        .iter()
        .filter(|(_, s)| s.words.first().map(String::as_str) == Some("acl"))
        .filter_map(|(_, s)| Some((s.words.get(1)?.clone(), s.block.clone().unwrap_or_default())))
        .collect();
    for (file, s) in &statements {
        let at = |line: usize| format!("{}:{line}", file.display());
        match s.words.first().map(String::as_str) {
            Some("acl") => {}
            Some("options") => {
                for o in s.block.as_deref().unwrap_or_default() {
                    let key = o.words.first().map(String::as_str).unwrap_or("");
                    match key {
                        "forwarders" => {
                            for f in o.block.as_deref().unwrap_or_default() {
                                import
                                    .dns
                                    .forwarders
                                    .push(f.words.join(" ").replace(" port ", ":"));
                            }
                        }
                        "allow-query" | "allow-recursion" => {
                            let list = addresses(
                                o.block.as_deref().unwrap_or_default(),
                                &acls,
                                file,
                                &mut import.skipped,
                            );
                            for c in list {
                                if !import.dns.allow.contains(&c) {
                                    import.dns.allow.push(c);
                                }
                            }
                        }
                        "dnssec-validation" => {
                            import.dns.dnssec = o.words.get(1).map(String::as_str) != Some("no");
                        }
                        "directory" | "pid-file" | "forward" | "recursion" | "listen-on-v6"
                        | "auth-nxdomain" => {}
                        other => import
                            .skipped
                            .push(format!("{}: option `{other}`", at(o.line))),
                    }
                }
            }
            Some("zone") => {
                let name = s.words.get(1).cloned().unwrap_or_default();
                let block = s.block.as_deref().unwrap_or_default();
                let value = |k: &str| {
                    block
                        .iter()
                        .find(|o| o.words.first().map(String::as_str) == Some(k))
                        .and_then(|o| o.words.get(1).cloned())
                };
                let kind = value("type").unwrap_or_default();
                if name == "."
                    || name.ends_with("in-addr.arpa")
                        && matches!(kind.as_str(), "master" | "primary")
                        && is_default_zone(&name)
                    || kind == "hint"
                {
                    import.skipped.push(format!("{}: zone \"{name}\" (type {kind}): Serval has its own root hints and default zones", at(s.line)));
                    continue;
                }
                if !matches!(kind.as_str(), "master" | "primary") {
                    import.skipped.push(format!("{}: zone \"{name}\" of type {kind} (only primary zones become local zones)", at(s.line)));
                    continue;
                }
                let Some(zone_file) = value("file") else {
                    import
                        .skipped
                        .push(format!("{}: zone \"{name}\" has no file", at(s.line)));
                    continue;
                };
                match zone_records(&name, &resolve(path, &zone_file)) {
                    Ok((records, left_out)) => {
                        for r in left_out {
                            import
                                .skipped
                                .push(format!("{}: record {r} of zone \"{name}\"", at(s.line)));
                        }
                        import.dns.local_zones.push(LocalZoneConfig {
                            name: name.trim_end_matches('.').to_owned(),
                            records,
                            ttl: 3600,
                        });
                    }
                    Err(e) => import
                        .skipped
                        .push(format!("{}: zone \"{name}\": {e}", at(s.line))),
                }
            }
            Some(other) => import
                .skipped
                .push(format!("{}: `{other}` statement", at(s.line))),
            None => {}
        }
    }
    if import.dns.allow.is_empty() {
        import.dns.allow = DnsConfig::default().allow;
    }
    Ok(import)
}

/// BIND's built-in reverse zones (localhost, 127, 0, 255), which Debian's named.conf lists.
fn is_default_zone(name: &str) -> bool {
    matches!(
        name,
        "127.in-addr.arpa" | "0.in-addr.arpa" | "255.in-addr.arpa"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarders_acls_and_primary_zones_are_taken_the_rest_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("named.conf"),
            "// Debian style\nacl office { 192.168.1.0/24; 10.0.0.1; };\n\
             options {\n  directory \"/var/cache/bind\";\n  forwarders { 192.0.2.53; 192.0.2.54 port 5300; };\n\
             allow-recursion { office; localhost; !192.168.1.9; };\n  dnssec-validation auto;\n  querylog yes; /* gone */\n};\n\
             include \"zones.conf\";\nlogging { channel x { file \"/var/log/x\"; }; };\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zones.conf"),
            "zone \".\" { type hint; file \"/usr/share/dns/root.hints\"; };\n\
             zone \"office.test\" { type master; file \"db.office\"; };\n\
             zone \"branch.test\" { type slave; masters { 192.0.2.1; }; };\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("db.office"),
            "$TTL 3600\n@ IN SOA ns hostmaster 1 1 1 1 1\n@ IN NS ns\nns IN A 192.168.1.2\nprinter IN A 192.168.1.50\n@ IN MX 10 mail.office.test.\n",
        )
        .unwrap();
        let import = import(&dir.path().join("named.conf")).unwrap();
        let dns = &import.dns;
        assert_eq!(dns.forwarders, ["192.0.2.53", "192.0.2.54:5300"]);
        assert_eq!(dns.allow.len(), 4, "{:?}", dns.allow);
        assert_eq!(dns.local_zones.len(), 1);
        let zone = &dns.local_zones[0];
        assert_eq!(zone.name, "office.test");
        assert!(
            zone.records
                .contains(&"printer 3600 A 192.168.1.50".to_owned()),
            "{:?}",
            zone.records
        );
        assert!(
            zone.records
                .iter()
                .any(|r| r.starts_with("@ 3600 MX 10 mail.office.test.")),
            "{:?}",
            zone.records
        );
        let skipped = import.skipped.join("\n");
        for expected in [
            "!192.168.1.9",
            "option `querylog`",
            "`logging` statement",
            "zone \".\"",
            "zone \"branch.test\" of type slave",
        ] {
            assert!(skipped.contains(expected), "{expected} not in:\n{skipped}");
        }
        let mut problems = crate::config::Problems::default();
        dns.validate(&mut problems);
        assert!(!problems.has_errors(), "{problems:?}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("named.conf"),
            "options {\n forwarders { 192.0.2.1; };\n",
        )
        .unwrap();
        let error = import(&dir.path().join("named.conf"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("named.conf:"), "{error}");
    }
}
