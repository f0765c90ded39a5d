//! The directory source (`directory.source = "ldap"`): users are read from
//! LDAP / Active Directory and the flip is written there, as the seed's
//! migration tool did (DESIGN.md "The directory").
//!
//! The flip is two writes, each idempotent:
//! 1. the forwarding contact under `contacts_base`
//!    (`cn: <address> (cloud)`, `objectClass: contact`, `displayName`,
//!    `mail` and `targetAddress: SMTP:<target>`,
//!    `msExchHideFromAddressLists: TRUE`);
//! 2. the user's `altRecipient` = that DN and `deliverAndRedirect: FALSE`:
//!    this is the moment mail starts flowing to the cloud.
//!
//! A retry finds the contact by the user's `altRecipient`, else by its
//! `targetAddress` under `contacts_base`, else by its DN: one contact per user,
//! ever, even when a run was killed between the writes. Rollback clears
//! `altRecipient` (mail flows on-premises again), then deletes the contact.
//! A write the directory refuses fails that user with the server's words and
//! undoes what this call had written.
//!
//! The rest of the migrator calls [`super::Directory`] synchronously; the
//! LDAP client is tokio. So this backend owns a small runtime of its own and
//! waits on it from the caller's thread: it works from async code and from
//! plain `main` alike.

pub mod probe;

use crate::directory::user::User;
use ldap3::{Mod, Scope};
use relay::config::ldap::LdapConfig;
use relay::directory::client::{self, Connection, DirectoryError};
use relay::directory::model::{self, attr, DirEntry};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Mutex;

/// A user as the directory holds them.
#[derive(Debug, Clone)]
pub struct DirUser {
    /// What the rest of the migrator sees.
    pub user: User,
    /// The entry.
    pub entry: DirEntry,
}

impl DirUser {
    /// DESIGN.md: ready = `mail` present, not disabled, no `altRecipient`,
    /// no `targetAddress` of its own.
    pub fn ready(&self) -> bool {
        self.user.enabled
            && self.entry.alt_recipient.is_none()
            && self.entry.target_address.is_none()
    }

    /// Whether the user is forwarded (has a contact).
    pub fn flipped(&self) -> bool {
        self.entry.alt_recipient.is_some()
    }
}

/// Owns the backend's runtime; shuts it down without blocking, so dropping
/// the last handle inside an async task is fine.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The LDAP backend: configuration, runtime, one connection kept open and
/// shared by the workers' calls.
#[derive(Clone)]
pub struct LdapDirectory {
    config: Arc<LdapConfig>,
    default_quota: Option<u64>,
    route: Option<String>,
    runtime: Arc<Runtime>,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("base", &self.config.base)
            .finish()
    }
}

impl LdapDirectory {
    /// The backend for `config`; `route` is `[routing] route` (written to
    /// `[ldap] route_attribute` on new contacts when both are set).
    pub fn new(
        config: &LdapConfig,
        default_quota: Option<u64>,
        route: Option<String>,
    ) -> LdapDirectory {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ldap")
            .enable_all()
            .build()
            .expect("a tokio runtime for the LDAP client");
        LdapDirectory {
            config: Arc::new(config.clone()),
            default_quota,
            route,
            runtime: Arc::new(Runtime(Some(runtime))),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether `[ldap] route_attribute` is set.
    pub fn has_route_attribute(&self) -> bool {
        self.config.route_attribute.is_some()
    }

    /// Where users are searched (for messages).
    pub fn base(&self) -> &str {
        &self.config.base
    }

    /// Runs `f` on the backend's runtime and waits for it.
    fn block<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let rt = self.runtime.0.as_ref().expect("runtime until dropped");
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().expect("the LDAP task ends with an answer")
    }

    /// Every user with `mail` under `base` (with `[ldap] filter`).
    pub fn users(&self) -> Result<Vec<DirUser>, DirectoryError> {
        let this = self.clone();
        self.block(async move { this.read_users().await })
    }

    /// Writes the flip for `user` (both steps; idempotent).
    pub fn flip(&self, user: &User, target: &str) -> Result<(), DirectoryError> {
        let (this, address, display, target) = (
            self.clone(),
            user.address.clone(),
            user.display_name.clone(),
            target.to_string(),
        );
        self.block(async move { this.write_flip(&address, &display, &target).await })
    }

    /// Rolls `address` back; whether there was a contact.
    pub fn unflip(&self, address: &str) -> Result<bool, DirectoryError> {
        let (this, address) = (self.clone(), address.to_string());
        self.block(async move { this.remove_flip(&address).await })
    }

    /// `check`: connects and binds; the server's URL.
    pub fn check_bind(&self) -> Result<String, DirectoryError> {
        let this = self.clone();
        self.block(async move { probe::bind(&this).await })
    }

    /// `check`: `contacts_base` (else `base`) exists; its DN.
    pub fn check_contacts_base(&self) -> Result<String, DirectoryError> {
        let this = self.clone();
        self.block(async move {
            probe::contacts_base(&this).await?;
            Ok(this.contacts_base().to_string())
        })
    }

    /// `check`: whether a contact may be added under `contacts_base`
    /// (asked without writing where the server allows, [`probe`]).
    pub fn probe_contact_write(&self) -> probe::WriteProbe {
        let this = self.clone();
        self.block(async move { probe::add_contact(&this).await })
    }

    /// `check`: whether `address`'s entry may get the flip's attributes
    /// (never written for real, [`probe`]).
    pub fn probe_user_write(&self, address: &str) -> probe::WriteProbe {
        let (this, address) = (self.clone(), address.to_string());
        self.block(async move { probe::modify_user(&this, &address).await })
    }

    /// The connection, (re)made when there is none or it has closed. The
    /// lock is held only to hand out a clone: the workers' flips run on the
    /// one connection at the same time (ldap3 multiplexes them), each
    /// user's two writes still in order within its own call.
    async fn connection(&self) -> Result<Connection, DirectoryError> {
        let mut guard = self.conn.lock().await;
        let closed = match guard.as_mut() {
            Some(c) => c.ldap.is_closed(),
            None => true,
        };
        if closed {
            *guard = Some(client::connect(&self.config).await?);
        }
        Ok(guard.clone().expect("connected above"))
    }

    async fn read_users(&self) -> Result<Vec<DirUser>, DirectoryError> {
        let conn = self.connection().await?;
        let found = conn
            .search_all(
                &self.config.base,
                &model::user_filter(self.config.filter.as_deref()),
                &model::user_attributes(),
            )
            .await?;
        drop(conn);
        Ok(found
            .iter()
            .filter_map(|e| DirEntry::parse(&e.dn, &e.attrs, None))
            .filter(|e| e.kind == model::Kind::User)
            .filter_map(|entry| {
                let address = entry.mail.clone()?;
                Some(DirUser {
                    user: User {
                        display_name: entry.display_name.clone().unwrap_or_default(),
                        target: None,
                        quota: self.default_quota,
                        enabled: !entry.disabled(),
                        address,
                    },
                    entry,
                })
            })
            .collect())
    }

    /// The user entry whose `mail` is `address`.
    async fn find_user(
        &self,
        conn: &Connection,
        address: &str,
    ) -> Result<Option<DirEntry>, DirectoryError> {
        let filter = format!(
            "(&{}(mail={}))",
            model::user_filter(self.config.filter.as_deref()),
            ldap3::ldap_escape(address)
        );
        let found = conn
            .search_all(&self.config.base, &filter, &model::user_attributes())
            .await?;
        Ok(found
            .iter()
            .find_map(|e| DirEntry::parse(&e.dn, &e.attrs, None)))
    }

    fn contacts_base(&self) -> &str {
        self.config
            .contacts_base
            .as_deref()
            .unwrap_or(&self.config.base)
    }

    /// The DN a new contact for `address` gets.
    fn contact_dn(&self, address: &str) -> String {
        format!(
            "cn={},{}",
            ldap3::dn_escape(format!("{address} (cloud)")),
            self.contacts_base()
        )
    }

    /// The contact entry at `dn`, if there is one (and it is a contact).
    async fn read_contact(
        &self,
        conn: &Connection,
        dn: &str,
    ) -> Result<Option<DirEntry>, DirectoryError> {
        let result = conn
            .handle()
            .search(
                dn,
                Scope::Base,
                "(objectClass=contact)",
                vec![attr::OBJECT_CLASS, attr::TARGET_ADDRESS],
            )
            .await;
        match result {
            Ok(r) if r.1.rc == 32 => Ok(None), // noSuchObject
            Ok(r) => {
                let (entries, _) = r
                    .success()
                    .map_err(|e| conn.error(format!("read {dn}"), &e))?;
                Ok(entries.into_iter().find_map(|e| {
                    let e = ldap3::SearchEntry::construct(e);
                    DirEntry::parse(&e.dn, &e.attrs, None)
                }))
            }
            Err(e) => Err(conn.error(format!("read {dn}"), &e)),
        }
    }

    /// An existing contact for this user: by `altRecipient`, else by
    /// `targetAddress` under `contacts_base`, else at the DN a new one gets.
    async fn existing_contact(
        &self,
        conn: &Connection,
        user: &DirEntry,
        address: &str,
        target: &str,
    ) -> Result<Option<String>, DirectoryError> {
        if let Some(alt) = &user.alt_recipient {
            if self.read_contact(conn, alt).await?.is_some() {
                return Ok(Some(alt.clone()));
            }
        }
        let filter = format!(
            "(&(objectClass=contact)(targetAddress={}))",
            ldap3::ldap_escape(format!("SMTP:{target}"))
        );
        let found = conn
            .search_all(self.contacts_base(), &filter, &[attr::OBJECT_CLASS])
            .await?;
        if let Some(e) = found.first() {
            return Ok(Some(e.dn.clone()));
        }
        let dn = self.contact_dn(address);
        Ok(self.read_contact(conn, &dn).await?.map(|_| dn))
    }

    async fn write_flip(
        &self,
        address: &str,
        display: &str,
        target: &str,
    ) -> Result<(), DirectoryError> {
        let conn = self.connection().await?;
        let user = self
            .find_user(&conn, address)
            .await?
            .ok_or_else(|| not_found(&conn, address, &self.config.base))?;
        let (dn, created) = match self.existing_contact(&conn, &user, address, target).await? {
            Some(dn) => {
                self.point_contact(&conn, &dn, target).await?;
                (dn, false)
            }
            None => (
                self.add_contact(&conn, address, display, target).await?,
                true,
            ),
        };
        let already = user
            .alt_recipient
            .as_deref()
            .is_some_and(|a| model::dn_key(a) == model::dn_key(&dn))
            && user.deliver_and_redirect == Some(false);
        if already {
            return Ok(());
        }
        let mods = vec![
            Mod::Replace(attr::ALT_RECIPIENT, HashSet::from([dn.as_str()])),
            Mod::Replace(attr::DELIVER_AND_REDIRECT, HashSet::from(["FALSE"])),
        ];
        let result = conn
            .handle()
            .modify(&user.dn, mods)
            .await
            .and_then(|r| r.success());
        if let Err(e) = result {
            let error = conn.error(format!("set altRecipient on {}", user.dn), &e);
            if created {
                // Nothing half-written: the contact this call made goes again.
                let _ = conn.handle().delete(&dn).await;
            }
            return Err(error);
        }
        Ok(())
    }

    /// Makes an existing contact point at `target` (a retry with a changed
    /// target template, or the contact found by its DN).
    async fn point_contact(
        &self,
        conn: &Connection,
        dn: &str,
        target: &str,
    ) -> Result<(), DirectoryError> {
        let current = self.read_contact(conn, dn).await?;
        let want = format!("SMTP:{target}");
        if current
            .and_then(|c| c.target_address)
            .is_some_and(|t| t.eq_ignore_ascii_case(&want))
        {
            return Ok(());
        }
        let mods = vec![
            Mod::Replace(attr::TARGET_ADDRESS, HashSet::from([want.as_str()])),
            Mod::Replace(attr::MAIL, HashSet::from([target])),
        ];
        conn.handle()
            .modify(dn, mods)
            .await
            .and_then(|r| r.success())
            .map(|_| ())
            .map_err(|e| conn.error(format!("update {dn}"), &e))
    }

    async fn add_contact(
        &self,
        conn: &Connection,
        address: &str,
        display: &str,
        target: &str,
    ) -> Result<String, DirectoryError> {
        let dn = self.contact_dn(address);
        let cn = format!("{address} (cloud)");
        let target_address = format!("SMTP:{target}");
        let display = if display.is_empty() { address } else { display };
        let mut attrs: Vec<(&str, HashSet<&str>)> = vec![
            (attr::OBJECT_CLASS, HashSet::from(["top", "contact"])),
            (attr::CN, HashSet::from([cn.as_str()])),
            (attr::DISPLAY_NAME, HashSet::from([display])),
            (attr::MAIL, HashSet::from([target])),
            (
                attr::TARGET_ADDRESS,
                HashSet::from([target_address.as_str()]),
            ),
            (attr::HIDE, HashSet::from(["TRUE"])),
        ];
        if let (Some(attribute), Some(route)) = (&self.config.route_attribute, &self.route) {
            attrs.push((attribute.as_str(), HashSet::from([route.as_str()])));
        }
        conn.handle()
            .add(&dn, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(|e| conn.error(format!("add {dn}"), &e))?;
        Ok(dn)
    }

    async fn remove_flip(&self, address: &str) -> Result<bool, DirectoryError> {
        let conn = self.connection().await?;
        let user = self.find_user(&conn, address).await?;
        let mut contact = None;
        if let Some(user) = &user {
            if let Some(alt) = &user.alt_recipient {
                // First the flip back (mail flows on-premises again)...
                let mods: Vec<Mod<&str>> = vec![Mod::Delete(attr::ALT_RECIPIENT, HashSet::new())];
                conn.handle()
                    .modify(&user.dn, mods)
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| conn.error(format!("clear altRecipient on {}", user.dn), &e))?;
                contact = Some(alt.clone());
            }
        }
        // ...then the contact: the one it named, or one a killed run left at
        // the DN a new contact gets.
        let dn = match contact {
            Some(dn) => Some(dn),
            None => {
                let dn = self.contact_dn(address);
                self.read_contact(&conn, &dn).await?.map(|_| dn)
            }
        };
        let Some(dn) = dn else {
            return Ok(false);
        };
        // Only a contact under contacts_base is ours to delete.
        if !model::dn_key(&dn).ends_with(&model::dn_key(self.contacts_base()))
            || self.read_contact(&conn, &dn).await?.is_none()
        {
            return Ok(true);
        }
        conn.handle()
            .delete(&dn)
            .await
            .and_then(|r| r.success())
            .map_err(|e| conn.error(format!("delete {dn}"), &e))?;
        Ok(true)
    }
}

fn not_found(conn: &Connection, address: &str, base: &str) -> DirectoryError {
    DirectoryError::Operation {
        url: conn.url.text.clone(),
        op: format!("find the user {address}"),
        reason: format!("no user with mail={address} under {base}"),
        rc: None,
    }
}
