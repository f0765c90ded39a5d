//! The pre-flight's questions to the directory (`check`): would the two
//! writes of a flip be allowed? Asked without writing wherever the server
//! can answer that:
//! 1. the write itself with the LDAP No-Op control, critical
//!    (draft-zeilenga-ldap-noop; OpenLDAP: OID 1.3.6.1.4.1.4203.666.5.2): the
//!    server checks the schema, the parent and every access rule, then
//!    answers `noOperation` (16654) and commits nothing. A server that does
//!    not know the control must refuse the whole request
//!    (`unavailableCriticalExtension`, RFC 4511 §4.1.11), so nothing is
//!    written there either;
//! 2. else Active Directory's constructed effective rights:
//!    `allowedChildClassesEffective` on `contacts_base` must list `contact`,
//!    `allowedAttributesEffective` on the user `altRecipient` and
//!    `deliverAndRedirect`;
//! 3. else, for the contact only: a probe contact (no `mail` route: no user
//!    points at it, so no relay routes by it) is added, deleted, and looked
//!    for again; the report says so and, should the delete fail, names the
//!    entry to remove. A user entry is never written for real: without 1 or 2
//!    its write stays unknown until the first flip.

use super::LdapDirectory;
use ldap3::controls::RawControl;
use ldap3::{Mod, Scope};
use relay::directory::client::{Connection, DirectoryError};
use relay::directory::model::attr;
use std::collections::HashSet;

/// LDAP No-Op control, as OpenLDAP implements it (an experimental arc: the
/// draft never got a registered OID).
const NO_OP: &str = "1.3.6.1.4.1.4203.666.5.2";
/// `noOperation`: the request would have succeeded; nothing was done.
const RC_NO_OPERATION: u32 = 16654;
/// `unavailableCriticalExtension` (RFC 4511 §4.1.9).
const RC_UNAVAILABLE_CRITICAL: u32 = 12;
/// `noSuchObject`.
const RC_NO_SUCH_OBJECT: u32 = 32;

/// What the directory said about one write.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WriteProbe {
    /// Allowed: the server evaluated it under the No-Op control and wrote
    /// nothing.
    NoOp,
    /// Allowed by Active Directory's effective rights (the attribute read).
    Effective(&'static str),
    /// Allowed: a probe entry was added, deleted, and is gone (its DN).
    AddedAndDeleted(String),
    /// Refused, in the server's words.
    Refused(DirectoryError),
    /// The effective rights (the attribute) lack what the flip writes.
    NotEffective {
        /// The attribute read.
        attribute: &'static str,
        /// What it does not list.
        missing: String,
    },
    /// Something was written and is still there: the probe contact whose
    /// delete failed, or (from a server that ignored the critical No-Op
    /// control) the user's forwarding.
    LeftBehind {
        /// The entry.
        dn: String,
        /// Why the delete failed.
        error: DirectoryError,
    },
    /// The server cannot answer without a real write (why).
    Unknown(String),
}

/// The server bound to (its URL as configured).
pub(super) async fn bind(dir: &LdapDirectory) -> Result<String, DirectoryError> {
    Ok(dir.connection().await?.url.text)
}

/// `contacts_base` exists and can be read.
pub(super) async fn contacts_base(dir: &LdapDirectory) -> Result<(), DirectoryError> {
    let conn = dir.connection().await?;
    let base = dir.contacts_base().to_string();
    conn.handle()
        .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .and_then(|r| r.success())
        .map(|_| ())
        .map_err(|e| conn.error(format!("read {base}"), &e))
}

/// Whether a forwarding contact may be added under `contacts_base`.
pub(super) async fn add_contact(dir: &LdapDirectory) -> WriteProbe {
    let conn = match dir.connection().await {
        Ok(c) => c,
        Err(e) => return WriteProbe::Refused(e),
    };
    let (cn, dn) = probe_name(dir);
    let attrs = contact_attributes(dir, &cn);
    let attrs: Vec<(&str, HashSet<&str>)> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    let mut ldap = conn.handle();
    let answer = ldap.with_controls(no_op()).add(&dn, attrs.clone()).await;
    match answer {
        Ok(r) if r.rc == RC_NO_OPERATION => return WriteProbe::NoOp,
        // The control ignored against RFC 4511: the entry was written.
        Ok(r) if r.rc == 0 => return delete_probe(&conn, &dn).await,
        Ok(r) if r.rc == RC_UNAVAILABLE_CRITICAL => {}
        Ok(r) => {
            let e = ldap3::LdapError::LdapResult { result: r };
            return WriteProbe::Refused(conn.error(format!("add {dn} (No-Op)"), &e));
        }
        Err(e) => return WriteProbe::Refused(conn.error(format!("add {dn} (No-Op)"), &e)),
    }
    let base = dir.contacts_base().to_string();
    match effective(&conn, &base, "allowedChildClassesEffective").await {
        Ok(Some(classes)) => {
            return if classes.iter().any(|c| c.eq_ignore_ascii_case("contact")) {
                WriteProbe::Effective("allowedChildClassesEffective")
            } else {
                WriteProbe::NotEffective {
                    attribute: "allowedChildClassesEffective",
                    missing: "contact".into(),
                }
            };
        }
        Ok(None) => {}
        Err(e) => return WriteProbe::Refused(e),
    }
    let added = conn
        .handle()
        .add(&dn, attrs)
        .await
        .and_then(|r| r.success());
    match added {
        Ok(_) => delete_probe(&conn, &dn).await,
        Err(e) => WriteProbe::Refused(conn.error(format!("add {dn}"), &e)),
    }
}

/// Whether the user `address`'s entry may get the flip's `altRecipient` and
/// `deliverAndRedirect` (never written for real).
pub(super) async fn modify_user(dir: &LdapDirectory, address: &str) -> WriteProbe {
    let conn = match dir.connection().await {
        Ok(c) => c,
        Err(e) => return WriteProbe::Refused(e),
    };
    let user = match dir.find_user(&conn, address).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return WriteProbe::Unknown(format!("no user with mail={address} under {}", dir.base()))
        }
        Err(e) => return WriteProbe::Refused(e),
    };
    let contact = dir.contact_dn(address);
    let mods = vec![
        Mod::Replace(attr::ALT_RECIPIENT, HashSet::from([contact.as_str()])),
        Mod::Replace(attr::DELIVER_AND_REDIRECT, HashSet::from(["FALSE"])),
    ];
    let mut ldap = conn.handle();
    let op = format!("modify {} (No-Op)", user.dn);
    match ldap.with_controls(no_op()).modify(&user.dn, mods).await {
        Ok(r) if r.rc == RC_NO_OPERATION => return WriteProbe::NoOp,
        Ok(r) if r.rc == RC_UNAVAILABLE_CRITICAL => {}
        Ok(r) if r.rc == 0 => {
            // The control ignored: the flip's attributes were written. Only
            // possible against RFC 4511; say so, the user now forwards.
            return WriteProbe::LeftBehind {
                dn: user.dn.clone(),
                error: DirectoryError::Operation {
                    url: conn.url.text.clone(),
                    op,
                    reason: "the server ignored the critical No-Op control and wrote \
                             altRecipient: remove it from the user (coexist-migrator rollback)"
                        .into(),
                    rc: Some(0),
                },
            };
        }
        Ok(r) => {
            let e = ldap3::LdapError::LdapResult { result: r };
            return WriteProbe::Refused(conn.error(op, &e));
        }
        Err(e) => return WriteProbe::Refused(conn.error(op, &e)),
    }
    match effective(&conn, &user.dn, "allowedAttributesEffective").await {
        Ok(Some(attributes)) => {
            let missing: Vec<&str> = [attr::ALT_RECIPIENT, attr::DELIVER_AND_REDIRECT]
                .into_iter()
                .filter(|a| !attributes.iter().any(|x| x.eq_ignore_ascii_case(a)))
                .collect();
            if missing.is_empty() {
                WriteProbe::Effective("allowedAttributesEffective")
            } else {
                WriteProbe::NotEffective {
                    attribute: "allowedAttributesEffective",
                    missing: missing.join(", "),
                }
            }
        }
        Ok(None) => WriteProbe::Unknown(
            "the server has neither the No-Op control nor effective rights to ask, and a user \
             entry is not written to find out"
                .into(),
        ),
        Err(e) => WriteProbe::Refused(e),
    }
}

/// The critical No-Op control, for the next operation.
fn no_op() -> Vec<RawControl> {
    vec![RawControl {
        ctype: NO_OP.into(),
        crit: true,
        val: None,
    }]
}

/// An Active Directory constructed attribute of `dn`, `None` when the
/// server does not return it (not AD).
async fn effective(
    conn: &Connection,
    dn: &str,
    attribute: &str,
) -> Result<Option<Vec<String>>, DirectoryError> {
    let (entries, _) = conn
        .handle()
        .search(dn, Scope::Base, "(objectClass=*)", vec![attribute])
        .await
        .and_then(|r| r.success())
        .map_err(|e| conn.error(format!("read {attribute} of {dn}"), &e))?;
    Ok(entries.into_iter().find_map(|e| {
        let e = ldap3::SearchEntry::construct(e);
        e.attrs
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    }))
}

/// Deletes the probe entry and makes sure it is gone.
async fn delete_probe(conn: &Connection, dn: &str) -> WriteProbe {
    let deleted = conn
        .handle()
        .delete(dn)
        .await
        .and_then(|r| r.success())
        .map_err(|e| conn.error(format!("delete {dn}"), &e));
    if let Err(error) = deleted {
        return WriteProbe::LeftBehind {
            dn: dn.to_string(),
            error,
        };
    }
    let still = conn
        .handle()
        .search(dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await;
    match still {
        Ok(r) if r.1.rc == RC_NO_SUCH_OBJECT => WriteProbe::AddedAndDeleted(dn.to_string()),
        Ok(r) => WriteProbe::LeftBehind {
            dn: dn.to_string(),
            error: DirectoryError::Operation {
                url: conn.url.text.clone(),
                op: format!("look for {dn} after its delete"),
                reason: format!("still there (search answered {})", r.1.rc),
                rc: Some(r.1.rc),
            },
        },
        Err(e) => WriteProbe::LeftBehind {
            dn: dn.to_string(),
            error: conn.error(format!("look for {dn} after its delete"), &e),
        },
    }
}

/// A `cn` no contact has (the flip's are `<address> (cloud)`), and its DN
/// under `contacts_base`.
fn probe_name(dir: &LdapDirectory) -> (String, String) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let cn = format!("coexist-check-{stamp:x}-{:x}", std::process::id());
    let dn = format!("cn={cn},{}", dir.contacts_base());
    (cn, dn)
}

/// The attributes a flip's contact has, with an address that cannot be
/// delivered to (RFC 2606 `.invalid`).
fn contact_attributes(dir: &LdapDirectory, cn: &str) -> Vec<(String, Vec<String>)> {
    const PROBE: &str = "coexist-check@probe.invalid";
    let mut attrs = vec![
        (
            attr::OBJECT_CLASS.into(),
            vec!["top".into(), "contact".into()],
        ),
        (attr::CN.into(), vec![cn.into()]),
        (
            attr::DISPLAY_NAME.into(),
            vec!["coexist-migrator check (probe, safe to delete)".into()],
        ),
        (attr::MAIL.into(), vec![PROBE.into()]),
        (attr::TARGET_ADDRESS.into(), vec![format!("SMTP:{PROBE}")]),
        (attr::HIDE.into(), vec!["TRUE".into()]),
    ];
    if let (Some(attribute), Some(route)) = (&dir.config.route_attribute, &dir.route) {
        attrs.push((attribute.clone(), vec![route.clone()]));
    }
    attrs
}
