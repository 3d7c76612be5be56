//! RFC 5011 tracking of the root's key-signing keys, so a KSK rollover (KSK-2024 replacing
//! KSK-2017 now) never needs a new anchors file: a new KSK the root publishes, signed by a
//! trusted key, becomes trusted after the 30-day hold-down; a key the root revokes (REVOKE bit,
//! self-signed) stops being trusted at once.
//!
//! The state lives in `DATA_DIR/dns/trust-anchors.json`; the configured anchors (compiled-in or
//! `trust_anchors_file`) are never rewritten. Pure: keys and the time in, the new state and the
//! changes (for the log) out.

use std::path::{Path, PathBuf};

use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, PublicKey as _, PublicKeyBuf, Verifier as _};
use hickory_proto::rr::{Name, Record, RecordType};
use serde::{Deserialize, Serialize};

use super::dnssec::{self, Anchors};

/// RFC 5011 2.4.1: a new key is trusted after 30 days in view.
pub const ADD_HOLD_DOWN: u32 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Seen, signed by a trusted key, in the hold-down.
    AddPending,
    /// Trusted.
    Valid,
    /// Trusted but no longer published.
    Missing,
    /// Revoked by its owner: never trusted again.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedKey {
    pub tag: u16,
    pub algorithm: u8,
    /// The public key, base64.
    pub public_key: String,
    pub state: KeyState,
    /// Seconds since the epoch.
    pub first_seen: u32,
    pub last_seen: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    pub keys: Vec<TrackedKey>,
    pub checked_at: u32,
}

fn encode(key: &DNSKEY) -> String {
    data_encoding::BASE64.encode(key.public_key().public_bytes())
}

/// The tag a key has without its REVOKE bit (its tag as a trust anchor).
fn unrevoked_tag(key: &DNSKEY) -> u16 {
    let flags = key.flags() & !0x0080;
    DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(key.public_key().public_bytes().to_vec(), key.algorithm()),
    )
    .calculate_key_tag()
    .unwrap_or(0)
}

impl TrustState {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dns").join("trust-anchors.json")
    }

    pub fn load(data_dir: &Path) -> TrustState {
        std::fs::read_to_string(Self::path(data_dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Written to a temporary file and renamed: a crash leaves the previous state.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(data_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension("json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, &path)
    }

    /// The anchors validation uses: the configured ones and the keys this state made valid,
    /// less the revoked ones.
    pub fn effective(&self, configured: &Anchors) -> Anchors {
        let revoked: Vec<&str> = self
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Revoked)
            .map(|k| k.public_key.as_str())
            .collect();
        let mut anchors = configured.clone();
        anchors
            .keys
            .retain(|k| !revoked.contains(&encode(k).as_str()));
        for tracked in self
            .keys
            .iter()
            .filter(|k| matches!(k.state, KeyState::Valid | KeyState::Missing))
        {
            if let Ok(bytes) = data_encoding::BASE64.decode(tracked.public_key.as_bytes()) {
                let key = DNSKEY::with_flags(
                    257,
                    PublicKeyBuf::new(bytes, Algorithm::from_u8(tracked.algorithm)),
                );
                if !anchors.keys.iter().any(|k| encode(k) == tracked.public_key) {
                    anchors.keys.push(key);
                }
            }
        }
        anchors.revoked = revoked.iter().map(|s| (*s).to_owned()).collect();
        anchors
    }

    /// Takes in the root's DNSKEY RRset (`records`, with RRSIGs), already validated by a
    /// trusted key, seen at `now`; the changes, as sentences for the log.
    pub fn observe(&mut self, records: &[Record], configured: &Anchors, now: u32) -> Vec<String> {
        let root = Name::root();
        let mut changes = Vec::new();
        let keys: Vec<DNSKEY> = records
            .iter()
            .filter(|r| r.name.is_root())
            .filter_map(dnssec::dnskey)
            .filter(|k| k.zone_key() && k.secure_entry_point())
            .cloned()
            .collect();
        for key in &keys {
            let public = encode(key);
            let tag = unrevoked_tag(key);
            if key.revoke() {
                // Only the key itself may revoke itself (RFC 5011 2.1).
                let self_signed = dnssec::verify_rrset(
                    records,
                    &root,
                    RecordType::DNSKEY,
                    &root,
                    std::slice::from_ref(key),
                    now,
                )
                .is_ok();
                if !self_signed {
                    continue;
                }
                match self.keys.iter_mut().find(|k| k.public_key == public) {
                    Some(k) if k.state == KeyState::Revoked => k.last_seen = now,
                    Some(k) => {
                        k.state = KeyState::Revoked;
                        k.last_seen = now;
                        changes.push(format!(
                            "root KSK {tag} revoked by the root: no longer trusted"
                        ));
                    }
                    None => {
                        self.keys.push(TrackedKey {
                            tag,
                            algorithm: u8::from(key.algorithm()),
                            public_key: public,
                            state: KeyState::Revoked,
                            first_seen: now,
                            last_seen: now,
                        });
                        changes.push(format!(
                            "root KSK {tag} revoked by the root: no longer trusted"
                        ));
                    }
                }
                continue;
            }
            let configured_key = configured.trusts(key);
            match self.keys.iter_mut().find(|k| k.public_key == public) {
                Some(k) => {
                    k.last_seen = now;
                    match k.state {
                        KeyState::AddPending
                            if now.saturating_sub(k.first_seen) >= ADD_HOLD_DOWN =>
                        {
                            k.state = KeyState::Valid;
                            changes.push(format!(
                                "root KSK {tag} is now trusted (seen for 30 days, RFC 5011)"
                            ));
                        }
                        KeyState::Missing => {
                            k.state = KeyState::Valid;
                            changes.push(format!("root KSK {tag} is published again"));
                        }
                        _ => {}
                    }
                }
                None => {
                    let state = if configured_key {
                        KeyState::Valid
                    } else {
                        KeyState::AddPending
                    };
                    if state == KeyState::AddPending {
                        changes.push(format!(
                            "new root KSK {tag} seen: trusted after a 30-day hold-down (RFC 5011)"
                        ));
                    }
                    self.keys.push(TrackedKey {
                        tag,
                        algorithm: u8::from(key.algorithm()),
                        public_key: public,
                        state,
                        first_seen: now,
                        last_seen: now,
                    });
                }
            }
        }
        let published: Vec<String> = keys.iter().map(encode).collect();
        self.keys.retain(|k| {
            let gone = !published.contains(&k.public_key);
            // A pending key that disappears starts over if it comes back (RFC 5011 4).
            !(gone && k.state == KeyState::AddPending)
        });
        for k in &mut self.keys {
            if !published.contains(&k.public_key) && k.state == KeyState::Valid {
                k.state = KeyState::Missing;
                changes.push(format!(
                    "root KSK {} is no longer published (kept as a trust anchor)",
                    k.tag
                ));
            }
        }
        self.checked_at = now;
        changes
    }

    /// One line for the log and the admin page: "20326 valid, 38696 valid".
    pub fn summary(&self) -> String {
        if self.keys.is_empty() {
            return "not checked yet".into();
        }
        self.keys
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    k.tag,
                    match k.state {
                        KeyState::AddPending => "pending (hold-down)",
                        KeyState::Valid => "valid",
                        KeyState::Missing => "missing",
                        KeyState::Revoked => "revoked",
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::{RData, Record};

    use super::*;

    fn ksk(byte: u8) -> DNSKEY {
        DNSKEY::with_flags(257, PublicKeyBuf::new(vec![byte; 32], Algorithm::ED25519))
    }

    fn set(keys: &[DNSKEY]) -> Vec<Record> {
        keys.iter()
            .map(|k| {
                Record::from_rdata(
                    Name::root(),
                    3600,
                    RData::DNSSEC(DNSSECRData::DNSKEY(k.clone())),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_ksk_is_trusted_after_the_hold_down_and_a_vanished_one_is_kept_missing() {
        let old = ksk(1);
        let configured = Anchors {
            ds: Vec::new(),
            keys: vec![old.clone()],
            revoked: Vec::new(),
        };
        let new = ksk(2);
        let mut state = TrustState::default();
        assert!(state
            .observe(&set(std::slice::from_ref(&old)), &configured, 1000)
            .is_empty());
        let changes = state.observe(&set(&[old.clone(), new.clone()]), &configured, 2000);
        assert!(changes[0].contains("30-day hold-down"), "{changes:?}");
        assert!(!state.effective(&configured).trusts(&new));
        state.observe(
            &set(&[old.clone(), new.clone()]),
            &configured,
            2000 + ADD_HOLD_DOWN - 1,
        );
        assert!(!state.effective(&configured).trusts(&new));
        let changes = state.observe(
            &set(&[old.clone(), new.clone()]),
            &configured,
            2000 + ADD_HOLD_DOWN,
        );
        assert!(changes[0].contains("now trusted"), "{changes:?}");
        assert!(state.effective(&configured).trusts(&new));
        // The old key leaves the root: still trusted, marked missing.
        let changes = state.observe(
            &set(std::slice::from_ref(&new)),
            &configured,
            3000 + ADD_HOLD_DOWN,
        );
        assert!(changes[0].contains("no longer published"), "{changes:?}");
        assert!(state.summary().contains("missing"), "{}", state.summary());
        // Kept across a restart.
        let dir = tempfile::tempdir().unwrap();
        state.save(dir.path()).unwrap();
        assert_eq!(TrustState::load(dir.path()), state);
    }

    #[test]
    fn a_pending_key_that_disappears_starts_over() {
        let old = ksk(1);
        let configured = Anchors {
            ds: Vec::new(),
            keys: vec![old.clone()],
            revoked: Vec::new(),
        };
        let mut state = TrustState::default();
        state.observe(&set(&[old.clone(), ksk(3)]), &configured, 0);
        state.observe(&set(std::slice::from_ref(&old)), &configured, 10);
        state.observe(
            &set(&[old.clone(), ksk(3)]),
            &configured,
            ADD_HOLD_DOWN + 20,
        );
        assert!(!state.effective(&configured).trusts(&ksk(3)));
    }

    #[test]
    fn revoked_keys_leave_the_effective_anchors() {
        let old = ksk(1);
        let configured = Anchors {
            ds: Vec::new(),
            keys: vec![old.clone()],
            revoked: Vec::new(),
        };
        let state = TrustState {
            keys: vec![TrackedKey {
                tag: 1,
                algorithm: 15,
                public_key: encode(&old),
                state: KeyState::Revoked,
                first_seen: 0,
                last_seen: 0,
            }],
            checked_at: 0,
        };
        assert!(!state.effective(&configured).trusts(&old));
    }
}
