//! Who is local: recipients in the local domains are directory users (by name or by their
//! e-mail address) or the postmaster.

use serval_core::Directory;

use crate::envelope::split_address;
use crate::smtp::session::{RecipientClass, Recipients};

pub struct LocalUsers {
    pub directory: Directory,
    /// Lower case, with the host name.
    pub local_domains: Vec<String>,
    pub postmaster: String,
}

impl LocalUsers {
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| d == domain)
    }
}

impl Recipients for LocalUsers {
    fn classify(&self, address: &str) -> RecipientClass {
        let Some((local, domain)) = split_address(address) else {
            return RecipientClass::UnknownLocal;
        };
        if !self.is_local_domain(&domain) {
            return RecipientClass::Remote;
        }
        let lower = local.to_ascii_lowercase();
        // RFC 5321 4.5.1 and RFC 2142: postmaster (any case) must reach a person.
        if lower == "postmaster" || lower == "mailer-daemon" || lower == "abuse" {
            return RecipientClass::Local {
                user: self.postmaster.clone(),
            };
        }
        match self.directory.user(&lower) {
            Ok(Some(user)) => return RecipientClass::Local { user: user.name },
            Ok(None) => {}
            Err(_) => return RecipientClass::Unavailable,
        }
        match self.directory.user_by_email(&address.to_ascii_lowercase()) {
            Ok(Some(user)) => RecipientClass::Local { user: user.name },
            Ok(None) => RecipientClass::UnknownLocal,
            Err(_) => RecipientClass::Unavailable,
        }
    }
}
