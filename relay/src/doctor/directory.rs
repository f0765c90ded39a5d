//! With `routing.source = "ldap"`: the directory as the relay's mirror sees it
//! (bind, search, entry count, change-tracking mode), each finding with its fix.

use super::Check;
use crate::config::ldap::LdapConfig;
use crate::config::Config;
use crate::directory::client::DirectoryError;
use std::collections::BTreeSet;
use std::time::Duration;

/// The directory checks (none for the file source).
pub(super) async fn check(config: &Config, budget: Duration) -> Vec<Check> {
    let crate::config::RoutingSource::Ldap(ldap) = &config.routing.source else {
        return Vec::new();
    };
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    let what = format!("directory {}", ldap.base);
    match tokio::time::timeout(budget, crate::directory::survey(ldap, &routes)).await {
        Err(_) => vec![Check::fail(
            what,
            format!("no answer within {}s", budget.as_secs()),
            "check that a server in [ldap] url is up and reachable from this host",
        )],
        Ok(Err(e)) => vec![Check::fail(what, e.to_string(), fix(ldap, &e))],
        Ok(Ok(s)) => {
            let mut checks = Vec::new();
            checks.push(if s.sync {
                Check::ok(&what, s.to_string())
            } else {
                Check::warn(
                    &what,
                    s.to_string(),
                    "changes reach the relay only at each [ldap] refresh: on OpenLDAP add the syncprov overlay to this database (RFC 4533), or lower refresh",
                )
            });
            if !s.problems.is_empty() {
                let shown: Vec<String> =
                    s.problems.iter().take(3).map(ToString::to_string).collect();
                checks.push(Check::warn(
                    format!("{what}: entries"),
                    format!("{} entr(y/ies) left out of the routing snapshot: {}", s.problems.len(), shown.join("; ")),
                    "correct those entries (the relay routes everything else meanwhile); `coexist-relay check --online` lists them all",
                ));
            }
            if !s.deliver_and_redirect.is_empty() {
                checks.push(Check::warn(
                    format!("{what}: deliverAndRedirect"),
                    format!("{} forwarded user(s) with deliverAndRedirect TRUE, e.g. {}", s.deliver_and_redirect.len(), s.deliver_and_redirect[0]),
                    "set deliverAndRedirect to FALSE on them: the relay sends their mail to the contact only, so Exchange's copy-to-mailbox promise would be broken",
                ));
            }
            checks
        }
    }
}

/// What to do about a failed survey.
fn fix(ldap: &LdapConfig, e: &DirectoryError) -> String {
    match e {
        DirectoryError::Password { .. } => "write the service account's password on the first line of [ldap] password_file".into(),
        DirectoryError::Ca(_) => "point [ldap] ca at a PEM file with the CA certificate that signed the directory's certificate".into(),
        DirectoryError::Bind { .. } => format!("check [ldap] bind_dn ({}) and the password in password_file; the account must be enabled", ldap.bind_dn),
        DirectoryError::Operation { rc: Some(32), .. } => format!("[ldap] base ({}) does not exist on the server: correct it", ldap.base),
        DirectoryError::Operation { rc: Some(50), .. } => "give the service account read access to users and contacts under [ldap] base".into(),
        _ => "check [ldap] url (host, port, ldaps:// or StartTLS), the firewall, and that the server's certificate is signed by a CA in [ldap] ca or the system roots".into(),
    }
}
