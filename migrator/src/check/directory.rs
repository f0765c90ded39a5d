//! The directory's share of the pre-flight: the users readable, where the
//! contacts go writable (the contacts table's folder; with LDAP, a bind and
//! the two flip writes asked without writing, see
//! [`crate::directory::ldap::probe`]), the route, the state folder.

use super::SAMPLE;
use crate::config::{Config, DirectorySource};
use crate::directory::ldap::probe::WriteProbe;
use crate::directory::ldap::LdapDirectory;
use crate::directory::{Directory, User};
use relay::config::ldap::LdapConfig;
use relay::directory::client::DirectoryError;
use relay::doctor::Check;
use std::path::Path;

/// The directory's lines and the state folder; returns the users to open.
pub(super) fn directory_checks(
    config: &Config,
    directory: &Directory,
    named: &[String],
    checks: &mut Vec<Check>,
) -> Vec<User> {
    let (users, ldap) = match &config.directory {
        DirectorySource::File => {
            let users = file_users(config, directory, checks);
            file_checks(config, directory, checks);
            (users, None)
        }
        DirectorySource::Ldap(l) => {
            let d = LdapDirectory::new(l, config.default_quota, config.routing.route.clone());
            (ldap_checks(l, &d, checks), Some((l, d)))
        }
    };
    if let Err(e) = directory.check_route() {
        let fix = match ldap {
            None => "set [routing] route to a route the relay has, or \"\"",
            Some(_) => "set [ldap] route_attribute (the contact attribute the relay reads the route from), or [routing] route = \"\"",
        };
        checks.push(Check::fail("contacts route", e.to_string(), fix));
    }
    let state = &config.migration.state_dir;
    let state_folder = if state.exists() {
        state.as_path()
    } else {
        state.parent().unwrap_or_else(|| Path::new("."))
    };
    checks.push(writable(
        "state folder",
        state_folder,
        "checkpoints are written there",
    ));

    let searched = match &config.directory {
        DirectorySource::File => config.users.display().to_string(),
        DirectorySource::Ldap(l) => format!("(no user with that mail under {})", l.base),
    };
    let chosen = choose(&searched, users, named, checks);
    if let (Some((l, d)), Some(first)) = (&ldap, chosen.first()) {
        checks.push(user_write(l, d, &first.address));
    }
    chosen
}

/// The named users (warning about disabled and unknown ones), or a sample
/// of the enabled ones.
fn choose(
    searched: &str,
    users: Vec<User>,
    named: &[String],
    checks: &mut Vec<Check>,
) -> Vec<User> {
    if named.is_empty() {
        return users
            .into_iter()
            .filter(|u| u.enabled)
            .take(SAMPLE)
            .collect();
    }
    let mut chosen = Vec::new();
    for name in named {
        match users
            .iter()
            .find(|u| relay::address::same_address(&u.address, name))
        {
            Some(u) if !u.enabled => checks.push(Check::warn(
                format!("user {}", u.address),
                "disabled in the directory: migrate will refuse it",
                "enable the account in the directory first",
            )),
            Some(u) => chosen.push(u.clone()),
            None => checks.push(Check::fail(
                format!("user {name}"),
                format!("not in the directory {searched}"),
                "check the spelling, or add the user to the directory",
            )),
        }
    }
    chosen
}

/// Whether the migrator may create files in `folder`.
fn writable(what: &str, folder: &Path, why: &str) -> Check {
    let shown = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    match rustix::fs::access(shown, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Check::ok(what, format!("{} is writable", shown.display())),
        Err(e) => Check::fail(
            what,
            format!("{} is not writable: {e}", shown.display()),
            format!(
                "give the migrator's user write access to {} ({why})",
                shown.display()
            ),
        ),
    }
}

/// `users.csv`.
fn file_users(config: &Config, directory: &Directory, checks: &mut Vec<Check>) -> Vec<User> {
    match directory.users() {
        Ok(u) => {
            checks.push(Check::ok(
                "directory users",
                format!(
                    "{}: {} user(s), {} enabled",
                    config.users.display(),
                    u.len(),
                    u.iter().filter(|u| u.enabled).count()
                ),
            ));
            u
        }
        Err(e) => {
            checks.push(Check::fail(
                "directory users",
                e.to_string(),
                "correct the users file (header: address,display_name,target,quota,enabled)",
            ));
            Vec::new()
        }
    }
}

/// The relay's contacts table and its folder.
fn file_checks(config: &Config, directory: &Directory, checks: &mut Vec<Check>) {
    let contacts = &config.routing.contacts;
    match directory.flipped() {
        Ok(flipped) => checks.push(Check::ok(
            "contacts table",
            format!("{}: {} contact(s)", contacts.display(), flipped.len()),
        )),
        Err(e) => checks.push(Check::fail(
            "contacts table",
            e.to_string(),
            "correct the relay's contacts table, or point [routing] contacts at it",
        )),
    }
    let folder = contacts.parent().unwrap_or_else(|| Path::new("."));
    checks.push(writable(
        "contacts folder",
        folder,
        "the contacts table is replaced through a temp file there",
    ));
}

/// The bind, the users, `contacts_base` and whether a contact may be added
/// there; returns the users.
fn ldap_checks(l: &LdapConfig, d: &LdapDirectory, checks: &mut Vec<Check>) -> Vec<User> {
    match d.check_bind() {
        Ok(url) => checks.push(Check::ok(
            "directory bind",
            format!("{url}: bound as {:?}", l.bind_dn),
        )),
        Err(e) => {
            let fix = bind_fix(&e);
            checks.push(Check::fail("directory bind", e.to_string(), fix));
            return Vec::new();
        }
    }
    let users = match d.users() {
        Ok(found) => {
            let enabled = found.iter().filter(|u| u.user.enabled).count();
            let flipped = found.iter().filter(|u| u.flipped()).count();
            let detail = format!(
                "{}: {} user(s) with mail, {enabled} enabled, {flipped} forwarded already",
                l.base,
                found.len()
            );
            checks.push(if found.is_empty() {
                Check::warn(
                    "directory users",
                    detail,
                    "check [ldap] base and filter, and that bind_dn may read users' mail",
                )
            } else {
                Check::ok("directory users", detail)
            });
            found.into_iter().map(|u| u.user).collect()
        }
        Err(e) => {
            checks.push(Check::fail(
                "directory users",
                e.to_string(),
                "check [ldap] base and filter, and that bind_dn may read users' mail, altRecipient and targetAddress",
            ));
            Vec::new()
        }
    };
    let base = match d.check_contacts_base() {
        Ok(dn) => {
            checks.push(Check::ok("contacts_base", format!("{dn} is there")));
            dn
        }
        Err(e) => {
            let fix = if e.rc() == Some(32) {
                "create that entry (an organizationalUnit), or set [ldap] contacts_base to where forwarding contacts go"
            } else {
                "give bind_dn read access to [ldap] contacts_base"
            };
            checks.push(Check::fail("contacts_base", e.to_string(), fix));
            return users;
        }
    };
    let fix = format!(
        "give {:?} the right to add and delete contact entries under {base} (OpenLDAP: access to \
         dn.children=\"{base}\" by dn.exact=\"{}\" write, and attrs=children on the base; Active \
         Directory: Create/Delete Contact objects on that OU)",
        l.bind_dn, l.bind_dn
    );
    let what = "contacts_base write";
    checks.push(match d.probe_contact_write() {
        WriteProbe::NoOp => Check::ok(
            what,
            "a contact may be added: the add was sent with the LDAP No-Op control, the server \
             checked it and wrote nothing",
        ),
        WriteProbe::Effective(attribute) => Check::ok(
            what,
            format!("a contact may be added: {attribute} of {base} lists contact (read; nothing written)"),
        ),
        WriteProbe::AddedAndDeleted(dn) => Check::ok(
            what,
            format!(
                "a contact may be added: the server offers neither the No-Op control nor \
                 effective rights, so a probe contact {dn} was added, deleted, and is gone"
            ),
        ),
        WriteProbe::Refused(e) => Check::fail(what, e.to_string(), fix),
        WriteProbe::NotEffective { attribute, missing } => Check::fail(
            what,
            format!("{attribute} of {base} does not list {missing}"),
            fix,
        ),
        WriteProbe::LeftBehind { dn, error } => Check::fail(
            what,
            format!("a probe contact was added but is still there: {error}"),
            format!("delete {dn} by hand (ldapdelete); {fix}"),
        ),
        WriteProbe::Unknown(why) => Check::warn(
            what,
            why,
            "migrate one user first: its flip will tell",
        ),
    });
    users
}

/// Whether the first user to open may get the flip's attributes.
fn user_write(l: &LdapConfig, d: &LdapDirectory, address: &str) -> Check {
    let what = format!("user {address} forwarding write");
    let fix = format!(
        "give {:?} write access to users' altRecipient and deliverAndRedirect (OpenLDAP: access to \
         dn.subtree=\"{}\" attrs=altRecipient,deliverAndRedirect by dn.exact=\"{}\" write; Active \
         Directory: Write altRecipient and deliverAndRedirect on the users' OU)",
        l.bind_dn, l.base, l.bind_dn
    );
    match d.probe_user_write(address) {
        WriteProbe::NoOp => Check::ok(
            what,
            "altRecipient and deliverAndRedirect may be set: the modify was sent with the LDAP \
             No-Op control, the server checked it and wrote nothing",
        ),
        WriteProbe::Effective(attribute) => Check::ok(
            what,
            format!("altRecipient and deliverAndRedirect may be set: {attribute} lists both (read; nothing written)"),
        ),
        WriteProbe::AddedAndDeleted(_) => Check::ok(what, "altRecipient may be set"),
        WriteProbe::Refused(e) => Check::fail(what, e.to_string(), fix),
        WriteProbe::NotEffective { attribute, missing } => Check::fail(
            what,
            format!("{attribute} does not list {missing}"),
            fix,
        ),
        WriteProbe::LeftBehind { error, .. } => Check::fail(
            what,
            error.to_string(),
            format!("coexist-migrator rollback {address}"),
        ),
        WriteProbe::Unknown(why) => Check::warn(
            what,
            why,
            "migrate one user first: its flip will tell",
        ),
    }
}

/// What to do about a failed bind.
fn bind_fix(e: &DirectoryError) -> String {
    match e {
        DirectoryError::Password { .. } => {
            "write the service account's password on the first line of [ldap] password_file (mode 0600)".into()
        }
        DirectoryError::Ca(_) => "point [ldap] ca at the PEM of the CA that issued the directory's certificate".into(),
        DirectoryError::Connect { .. } => {
            "check [ldap] url, that the server is reachable from this machine, and its TLS certificate (StartTLS on ldap://, or ldaps://)".into()
        }
        DirectoryError::Bind { .. } => "check [ldap] bind_dn and the password in [ldap] password_file".into(),
        DirectoryError::NoServer(each) => each
            .first()
            .map(bind_fix)
            .unwrap_or_else(|| "add a server to [ldap] url".into()),
        _ => "check [ldap] url, bind_dn and password_file".into(),
    }
}
