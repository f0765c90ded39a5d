//! The one-shot commands: `check`, `route`, `doctor`.

use crate::EXIT_CONFIG;
use relay::config::ldap::LdapConfig;
use relay::config::{Config, RoutingSource};
use relay::route::explain::Explanation;
use relay::route::reload::Contacts;
use relay::route::router::Router;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Loads the config, printing every error; `None` = exit 2.
pub(crate) fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

/// Loads the config and the contacts table, printing every error; `None` = exit 2.
/// With the directory as the source the table is its cache, which may not
/// exist yet (then the placeholder: nothing is routed as a contact).
pub(crate) fn load_all(path: &Path) -> Option<(Config, Arc<Contacts>)> {
    let config = load_config(path)?;
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    if matches!(config.routing.source, RoutingSource::Ldap(_)) && !config.routing.contacts.exists()
    {
        let contacts = Contacts::pending(&config.routing.contacts, routes);
        return Some((config, contacts));
    }
    match Contacts::load(&config.routing.contacts, routes) {
        Ok(contacts) => Some((config, contacts)),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

/// `check`: the config and the contacts table load; with `online` and the
/// directory as the source, also binds and counts what it would route.
pub(crate) fn check(path: &Path, online: bool) -> ExitCode {
    let Some((config, contacts)) = load_all(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let table = match (&config.routing.source, contacts.is_loaded()) {
        (RoutingSource::Ldap(_), false) => format!(
            "no directory snapshot cached yet at {}",
            config.routing.contacts.display()
        ),
        (RoutingSource::Ldap(_), true) => format!(
            "{} contact(s) in the cached directory snapshot {}",
            contacts.current().len(),
            config.routing.contacts.display()
        ),
        (RoutingSource::File, _) => format!(
            "{} contact(s) in {}",
            contacts.current().len(),
            config.routing.contacts.display()
        ),
    };
    println!(
        "{}: OK ({} listener(s), {} route(s), {table})",
        path.display(),
        config.listeners.len(),
        config.routes.len(),
    );
    match (&config.routing.source, online) {
        (RoutingSource::Ldap(ldap), true) => check_directory(ldap, contacts.routes()),
        _ => ExitCode::SUCCESS,
    }
}

/// `check --online`: bind, read everything the mirror would, and count.
fn check_directory(ldap: &LdapConfig, routes: &BTreeSet<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coexist-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(relay::directory::survey(ldap, routes)) {
        Ok(survey) => {
            println!("directory: OK ({survey})");
            for p in &survey.problems {
                println!("directory: left out: {p}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("directory: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `route`: the decision for each address.
pub(crate) fn route(
    path: &Path,
    json: bool,
    client: Option<IpAddr>,
    addresses: &[String],
) -> ExitCode {
    let Some((config, contacts)) = load_all(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let router = Router::new(&config.relay, &config.routing, contacts);
    let table = router.table();
    // Without --client, answer as for a trusted client (what the relay would do for
    // mail it accepts from the organisation itself).
    let client = client
        .or_else(|| config.relay.trusted_networks.first().map(|n| n.addr()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut rows: Vec<Explanation> = addresses
        .iter()
        .map(|a| Explanation::new(&config, &router, &table, a, client))
        .collect();
    // The TLS policy each would get needs DNS (MTA-STS, TLSA): one runtime for all.
    if let Ok(rt) = tokio::runtime::Runtime::new() {
        for row in &mut rows {
            if let (Some(route), Some(rewritten)) = (&row.route, &row.rewritten) {
                let domain = rewritten.rsplit_once('@').map_or("", |(_, d)| d);
                row.tls =
                    Some(rt.block_on(relay::deliver::tls_policy::describe(&config, route, domain)));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else {
        for row in rows {
            println!("{row}");
        }
    }
    ExitCode::SUCCESS
}

/// `doctor`: operational checks.
pub(crate) fn doctor(path: &Path, json: bool) -> ExitCode {
    // A broken contacts table is one of the things doctor reports, so only the
    // config itself is a usage error here.
    let Some(config) = load_config(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let report = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(relay::doctor::run(&config, &Default::default())),
        Err(e) => {
            eprintln!("coexist-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::json!(report));
    } else {
        print!("{report}");
    }
    ExitCode::from(report.exit_code())
}
