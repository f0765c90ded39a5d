//! Deciding again before every attempt (DESIGN.md "Relay behaviour"): a user
//! migrated (or rolled back) while mail for them waited in the queue gets it
//! where they live now, never in the mailbox they left — even when the hop the
//! message was waiting for was down at the moment of the flip.
//!
//! Only decisions the routing source or the accepted domains made are taken
//! again: a trusted client's mail to another domain went where that client
//! sent it, and stays there.

use crate::envelope::{Envelope, RecipientStatus, RouteReason};
use crate::metrics::metrics;
use crate::route::router::Router;

/// Re-decides every pending recipient of `envelope` whose route came from the
/// contacts or an accepted domain, with the snapshot in force. A changed
/// decision rewrites the recipient, moves it to its new route and makes it due
/// now (the old route's back-off says nothing about the new one); returns how
/// many moved.
pub fn reroute(router: &Router, envelope: &mut Envelope, now: i64) -> usize {
    let table = router.table();
    let mut moved = 0;
    for rcpt in &mut envelope.recipients {
        let redecided = matches!(
            rcpt.reason,
            RouteReason::Contact | RouteReason::AcceptedDomain | RouteReason::Rule { .. }
        );
        if rcpt.status != RecipientStatus::Pending || !redecided {
            continue;
        }
        // A decision that fails now (a contact gone for an address only a
        // contact made routable) keeps the one the message was accepted with.
        let Ok(decision) = router.decide(&table, &rcpt.address, envelope.client_ip) else {
            continue;
        };
        if decision.route == rcpt.route && decision.rewritten == rcpt.rewritten {
            continue;
        }
        tracing::info!(
            "{}: to=<{}>, orig_to=<{}>, rerouted from {} to {} (was to=<{}>)",
            envelope.id,
            decision.rewritten,
            rcpt.address,
            rcpt.route,
            decision.route,
            rcpt.rewritten
        );
        metrics().reroute(&rcpt.route, &decision.route);
        rcpt.route = decision.route;
        rcpt.rewritten = decision.rewritten;
        rcpt.reason = decision.reason;
        rcpt.next_attempt = now;
        moved += 1;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RelayConfig, RoutingConfig};
    use crate::envelope::Recipient;
    use crate::queue::file_format::tests::sample_envelope;
    use crate::route::reload::Contacts;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn recipient(address: &str, route: &str, reason: RouteReason) -> Recipient {
        Recipient {
            address: address.into(),
            rewritten: address.into(),
            route: route.into(),
            reason,
            notify: Default::default(),
            orcpt: None,
            status: RecipientStatus::Pending,
            attempts: 1,
            next_attempt: 500,
            last_error: None,
        }
    }

    #[test]
    fn a_flip_and_a_rollback_move_only_what_the_directory_decided() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("contacts");
        std::fs::write(&table, "").unwrap();
        let routes: BTreeSet<String> = ["cloud", "onprem", "internet"].map(String::from).into();
        let contacts = Contacts::load(&table, routes).unwrap();
        let relay = RelayConfig {
            accepted_domains: vec!["corp.example".into()],
            trusted_networks: vec!["192.0.2.0/24".parse().unwrap()],
            trusted_tls_names: Vec::new(),
        };
        let routing = RoutingConfig {
            source: crate::config::RoutingSource::File,
            contacts: table.clone(),
            contact_route: "cloud".into(),
            accepted_route: "onprem".into(),
            default_route: "internet".into(),
            subaddress_separator: "+".into(),
            rules: Vec::new(),
        };
        let router = Router::new(&relay, &routing, Arc::clone(&contacts));
        let mut envelope = sample_envelope("0123456789ABCDEF");
        envelope.recipients = vec![
            recipient("bob@corp.example", "onprem", RouteReason::AcceptedDomain),
            recipient("eve@partner.example", "internet", RouteReason::Default),
            Recipient {
                status: RecipientStatus::Delivered {
                    reply: "250".into(),
                },
                ..recipient("bob+x@corp.example", "onprem", RouteReason::AcceptedDomain)
            },
        ];
        assert_eq!(
            reroute(&router, &mut envelope, 100),
            0,
            "nothing changed yet"
        );

        // bob is migrated while his message waits.
        std::fs::write(&table, "bob@corp.example bob@tenant.cloud.example\n").unwrap();
        contacts.reload().unwrap();
        assert_eq!(reroute(&router, &mut envelope, 100), 1);
        let bob = &envelope.recipients[0];
        assert_eq!(
            (bob.route.as_str(), bob.rewritten.as_str(), &bob.reason),
            ("cloud", "bob@tenant.cloud.example", &RouteReason::Contact)
        );
        assert_eq!(bob.next_attempt, 100, "due at once on its new route");
        assert_eq!(
            envelope.recipients[1].route, "internet",
            "a trusted client's route stays"
        );
        assert_eq!(
            envelope.recipients[2].route, "onprem",
            "delivered is delivered"
        );

        // And rolled back: home again.
        std::fs::write(&table, "").unwrap();
        contacts.reload().unwrap();
        assert_eq!(reroute(&router, &mut envelope, 200), 1);
        let bob = &envelope.recipients[0];
        assert_eq!(
            (bob.route.as_str(), bob.rewritten.as_str()),
            ("onprem", "bob@corp.example")
        );
        let moved = metrics()
            .recipients_rerouted_total
            .with_label_values(&["cloud", "onprem"])
            .get();
        assert!(moved >= 1);
    }
}
