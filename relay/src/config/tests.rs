//! Loader tests: defaults, paths, and each class of error with its line.

use super::*;
use std::net::Ipv4Addr;

const FILE: &str = "etc/coexist/relay.toml";

/// The smallest valid file: hostname, one plain listener, the three default routes.
const MINIMAL: &str = r#"[server]
hostname = "relay.corp.example"

[[listener]]
name = "smtp"
bind = "127.0.0.1:0"
tls = "none"

[route.onprem]
smarthost = ["exchange.corp.example"]
[route.cloud]
smarthost = ["mx.tenant.cloud.example:2525"]
[route.internet]
mx = true
"#;

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::from_str(text, Path::new(FILE))
}

/// The errors of `text`, rendered as `FILE:LINE: message`.
fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors, the config loaded:\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that `text` fails with exactly one error, at `line`, containing `fragment`.
fn assert_one_error(text: &str, line: usize, fragment: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let prefix = format!("{FILE}:{line}: ");
    assert!(
        errors[0].starts_with(&prefix) && errors[0].contains(fragment),
        "wanted {prefix}...{fragment}..., got {}",
        errors[0]
    );
}

/// `MINIMAL` with `extra` appended (so MINIMAL's 14 lines keep their numbers).
fn minimal_plus(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn minimal_config_gets_every_default() {
    let config = load(MINIMAL).expect("minimal config loads");
    let base = Path::new("etc/coexist");
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.server.hostname, "relay.corp.example");
    assert_eq!(config.server.spool_dir, base.join("spool"));
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "smtp");
    assert_eq!(config.listeners[0].bind, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.listeners[0].tls, ListenerTls::None);
    assert!(!config.listeners[0].require_tls);
    assert!(config.tls.is_none());

    let limits = &config.limits;
    assert_eq!(limits.max_message_size, 35 * 1024 * 1024);
    assert_eq!(limits.max_recipients, 500);
    assert_eq!(limits.max_connections, 1000);
    assert_eq!(limits.max_connections_per_ip, 50);
    assert_eq!(limits.command_timeout, Duration::from_secs(300));
    assert_eq!(limits.data_timeout, Duration::from_secs(600));
    assert_eq!(limits.max_errors, 10);
    assert_eq!(limits.max_received_headers, 50);
    assert_eq!(limits.bare_newline, BareNewline::Normalize);
    assert_eq!(limits.max_messages_per_minute_per_ip, 0);
    assert_eq!(limits.max_connections_per_minute_per_ip, 0);

    assert_eq!(config.relay.accepted_domains, vec!["corp.example"]);
    let loopback: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    assert_eq!(config.relay.trusted_networks, loopback);

    let routing = &config.routing;
    assert_eq!(routing.contacts, base.join("contacts"));
    assert_eq!(routing.contact_route, "cloud");
    assert_eq!(routing.accepted_route, "onprem");
    assert_eq!(routing.default_route, "internet");
    assert_eq!(routing.subaddress_separator, "+");
    assert!(routing.rules.is_empty());

    let onprem = &config.routes["onprem"];
    assert_eq!(onprem.smarthost, vec!["exchange.corp.example:25"]);
    assert!(!onprem.mx);
    assert_eq!(onprem.tls, OutboundTls::Opportunistic);
    assert_eq!(onprem.port, 25);
    assert_eq!(onprem.helo_name, None);
    assert_eq!(onprem.ca, None);
    assert_eq!(onprem.connect_timeout, Duration::from_secs(30));
    assert_eq!(onprem.command_timeout, Duration::from_secs(300));
    assert_eq!(onprem.data_timeout, Duration::from_secs(600));
    assert_eq!(
        config.routes["cloud"].smarthost,
        vec!["mx.tenant.cloud.example:2525"]
    );
    assert!(config.routes["internet"].mx);
    assert!(config.routes["internet"].smarthost.is_empty());

    assert!(config.dns.nameservers.is_empty());
    let queue = &config.queue;
    let minutes: Vec<Duration> = [1, 5, 15, 30, 60, 120, 240]
        .iter()
        .map(|m| Duration::from_secs(m * 60))
        .collect();
    assert_eq!(queue.retry_schedule, minutes);
    assert_eq!(queue.max_lifetime, Duration::from_secs(5 * 86400));
    assert_eq!(queue.delivery_concurrency, 100);
    assert_eq!(queue.per_host_concurrency, 20);
    assert_eq!(config.metrics.bind, "127.0.0.1:9125".parse().unwrap());
    assert_eq!(config.doctor, DoctorConfig::default());
}

#[test]
fn every_key_is_read() {
    let text = r#"
[server]
hostname = "Relay.Corp.Example."
spool_dir = "/var/spool/coexist"
shutdown_grace = "1m30s"
[[listener]]
name = "mx"
bind = "[::]:25"
tls = "starttls"
require_tls = true
[[listener]]
name = "smtps"
bind = "0.0.0.0:465"
tls = "implicit"
[tls]
cert = "tls/chain.pem"
key = "/etc/ssl/private/relay.key"
[limits]
max_message_size = 10485760
max_recipients = 100
max_connections = 20
max_connections_per_ip = 5
command_timeout = "2m"
data_timeout = "3m"
max_errors = 3
max_received_headers = 30
bare_newline = "reject"
max_messages_per_minute_per_ip = 60
max_connections_per_minute_per_ip = 120
[relay]
accepted_domains = ["Corp.Example.", "corp.example", "eu.corp.example"]
trusted_networks = ["10.1.0.0/16", "192.0.2.7", "2001:db8::/32"]
[routing]
contacts = "../shared/contacts"
contact_route = "m365"
accepted_route = "exchange"
default_route = "out"
subaddress_separator = ""
[[routing.rule]]
domain = "EU.corp.example."
route = "exchange-eu"
[route.m365]
smarthost = ["corp-example.mail.protection.outlook.com", "[2001:db8::25]:2525"]
tls = "verify"
port = 587
helo_name = "out.corp.example"
ca = "ca/tenant.pem"
connect_timeout = "10s"
command_timeout = "1m"
data_timeout = "2m"
[route.exchange]
smarthost = ["10.1.2.3"]
tls = "required"
[route.exchange-eu]
smarthost = ["10.2.2.3:25"]
tls = "none"
[route.out]
mx = true
[dns]
nameservers = ["192.0.2.53", "[2001:db8::53]:5353"]
[queue]
retry_schedule = ["30s", "10m"]
max_lifetime = "2d"
delivery_concurrency = 8
per_host_concurrency = 2
[metrics]
bind = "[::1]:9100"
[doctor]
spf_include = "spf.protection.outlook.com"
public_ip = "192.0.2.25"
"#;
    let config = load(text).unwrap_or_else(|e| panic!("{e:#?}"));
    let base = Path::new("etc/coexist");
    assert_eq!(config.server.hostname, "relay.corp.example");
    assert_eq!(config.server.spool_dir, Path::new("/var/spool/coexist"));
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(90));
    assert_eq!(config.listeners[0].tls, ListenerTls::StartTls);
    assert!(config.listeners[0].require_tls);
    assert_eq!(config.listeners[1].tls, ListenerTls::Implicit);
    let tls = config.tls.as_ref().expect("[tls] read");
    assert_eq!(tls.cert, base.join("tls/chain.pem"));
    assert_eq!(tls.key, Path::new("/etc/ssl/private/relay.key"));
    assert_eq!(config.limits.max_message_size, 10 * 1024 * 1024);
    assert_eq!(config.limits.bare_newline, BareNewline::Reject);
    assert_eq!(config.limits.max_errors, 3);
    assert_eq!(config.limits.max_messages_per_minute_per_ip, 60);
    assert_eq!(config.limits.max_connections_per_minute_per_ip, 120);
    assert_eq!(
        config.relay.accepted_domains,
        vec!["corp.example", "eu.corp.example"]
    );
    assert_eq!(
        config.relay.trusted_networks[1],
        "192.0.2.7/32".parse::<IpNet>().unwrap()
    );
    assert_eq!(config.routing.contacts, base.join("../shared/contacts"));
    assert_eq!(config.routing.subaddress_separator, "");
    assert_eq!(config.routing.rules[0].domain, "eu.corp.example");
    assert_eq!(config.routing.rules[0].route, "exchange-eu");
    let m365 = &config.routes["m365"];
    assert_eq!(
        m365.smarthost,
        vec![
            "corp-example.mail.protection.outlook.com:587",
            "[2001:db8::25]:2525"
        ]
    );
    assert_eq!(m365.tls, OutboundTls::Verify);
    assert_eq!(m365.helo_name.as_deref(), Some("out.corp.example"));
    assert_eq!(m365.ca, Some(base.join("ca/tenant.pem")));
    assert_eq!(m365.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.routes["exchange"].tls, OutboundTls::Required);
    assert_eq!(config.routes["exchange-eu"].tls, OutboundTls::None);
    assert_eq!(
        config.dns.nameservers,
        vec![
            "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap()
        ]
    );
    assert_eq!(
        config.queue.retry_schedule,
        vec![Duration::from_secs(30), Duration::from_secs(600)]
    );
    assert_eq!(config.queue.max_lifetime, Duration::from_secs(2 * 86400));
    assert_eq!(config.metrics.bind, "[::1]:9100".parse().unwrap());
    assert_eq!(
        config.doctor.spf_include.as_deref(),
        Some("spf.protection.outlook.com")
    );
    assert_eq!(
        config.doctor.public_ip,
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25)))
    );
}

#[test]
fn relative_paths_follow_the_file_not_the_working_directory() {
    let config = Config::from_str(MINIMAL, Path::new("relay.toml")).unwrap();
    assert_eq!(config.server.spool_dir, Path::new("spool"));
    let config = Config::from_str(MINIMAL, Path::new("/srv/a/b/relay.toml")).unwrap();
    assert_eq!(config.server.spool_dir, Path::new("/srv/a/b/spool"));
    assert_eq!(config.routing.contacts, Path::new("/srv/a/b/contacts"));
}

#[test]
fn tls_section_defaults_to_the_development_certificate() {
    let text = minimal_plus("[tls]\n");
    let config = load(&text).unwrap();
    let tls = config.tls.expect("[tls] present");
    assert_eq!(tls.cert, Path::new("etc/coexist/../certs/relay.crt"));
    assert_eq!(tls.key, Path::new("etc/coexist/../certs/relay.key"));
}

#[test]
fn load_reads_the_file_and_reports_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.server.spool_dir, dir.path().join("spool"));

    let missing = dir.path().join("nope.toml");
    let errors = Config::load(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(
        text.starts_with(&format!("{}:0: cannot read: ", missing.display())),
        "{text}"
    );
}

#[test]
fn syntax_error_is_reported_alone_with_its_line() {
    assert_one_error(
        "[server]\nhostname = \"x\"\nbind = \n",
        3,
        "TOML syntax error",
    );
    assert_one_error(
        "[server]\nhostname = \"a\"\nhostname = \"b\"\n",
        3,
        "TOML syntax error",
    );
}

#[test]
fn unknown_keys_name_the_valid_ones() {
    assert_one_error(
        &minimal_plus("[limits]\nmax_mesage_size = 10\n"),
        16,
        "limits.max_mesage_size: unknown key (did you mean max_message_size?); valid keys in [limits]: max_message_size, ",
    );
    assert_one_error(
        &minimal_plus("[logging]\nlevel = \"debug\"\n"),
        15,
        "logging: unknown key; valid top-level tables: server, listener, ",
    );
    assert_one_error(
        &minimal_plus("[route.cloud2]\nmx = true\nprot = 25\n"),
        17,
        "route.cloud2.prot: unknown key (did you mean port?)",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_one_error(
        &minimal_plus("[limits]\nmax_recipients = \"500\"\n"),
        16,
        "limits.max_recipients: expected a whole number, found the string \"500\"",
    );
    assert_one_error(
        &minimal_plus("[limits]\nmax_errors = -1\n"),
        16,
        "limits.max_errors: the number -1 is out of range; write a whole number from 1 to",
    );
    assert_one_error(
        &MINIMAL.replace("[[listener]]", "[listener]"),
        4,
        "listener: write [[listener]] (an array of tables, one per entry), not [listener]",
    );
}

#[test]
fn bad_sizes_and_durations() {
    assert_one_error(
        &minimal_plus("[limits]\nmax_message_size = \"35 Mb\"\n"),
        16,
        "limits.max_message_size: \"35 Mb\" is not a size; write bytes or a number with B, KB, MB, GB, KiB, MiB or GiB (e.g. \"35MiB\")",
    );
    assert_one_error(
        &minimal_plus("[limits]\nmax_message_size = 0\n"),
        16,
        "limits.max_message_size: must be more than 0",
    );
    assert_one_error(
        &minimal_plus("[limits]\ncommand_timeout = 30\n"),
        16,
        "limits.command_timeout: 30 is a bare number; durations need a unit: write \"30s\"",
    );
    assert_one_error(
        &minimal_plus("[limits]\ndata_timeout = \"10 minutes\"\n"),
        16,
        "limits.data_timeout: \"10 minutes\" is not a duration",
    );
    assert_one_error(
        &minimal_plus("[limits]\ndata_timeout = \"0s\"\n"),
        16,
        "limits.data_timeout: must be longer than zero",
    );
    assert_one_error(
        &minimal_plus("[queue]\nretry_schedule = []\n"),
        16,
        "queue.retry_schedule: is empty",
    );
    assert_one_error(
        &minimal_plus("[queue]\nretry_schedule = [\n  \"1m\",\n  \"5x\",\n]\n"),
        18,
        "queue.retry_schedule[1]: \"5x\" is not a duration",
    );
    assert_one_error(
        &minimal_plus("[queue]\ndelivery_concurrency = 0\n"),
        16,
        "queue.delivery_concurrency: the number 0 is out of range; write a whole number from 1 to",
    );
}

#[test]
fn unknown_enum_values_list_the_valid_ones() {
    let text = MINIMAL.replace("tls = \"none\"", "tls = \"startls\"");
    assert_one_error(
        &text,
        7,
        "listener[0].tls: unknown value \"startls\"; expected one of: none, starttls, implicit",
    );
    assert_one_error(
        &minimal_plus("[limits]\nbare_newline = \"fix\"\n"),
        16,
        "expected one of: normalize, reject",
    );
    let text = MINIMAL.replace("mx = true", "mx = true\ntls = \"strict\"");
    assert_one_error(
        &text,
        15,
        "route.internet.tls: unknown value \"strict\"; expected one of: none, opportunistic, required, verify",
    );
}

#[test]
fn undefined_routes_are_reported_where_they_are_named() {
    let text = minimal_plus(
        "[routing]\ncontact_route = \"clod\"\naccepted_route = \"onprem\"\ndefault_route = \"net\"\n[[routing.rule]]\ndomain = \"eu.corp.example\"\nroute = \"onprem-eu\"\n",
    );
    let errors = errors(&text);
    assert_eq!(
        errors,
        vec![
            format!("{FILE}:16: routing.contact_route: route \"clod\" is not defined; defined routes: cloud, internet, onprem (add [route.clod] or fix the name)"),
            format!("{FILE}:18: routing.default_route: route \"net\" is not defined; defined routes: cloud, internet, onprem (add [route.net] or fix the name)"),
            format!("{FILE}:21: routing.rule[0].route: route \"onprem-eu\" is not defined; defined routes: cloud, internet, onprem (add [route.onprem-eu] or fix the name)"),
        ]
    );
    let text = MINIMAL.replace("[route.onprem]", "[route.exchange]");
    assert_one_error(
        &minimal_plus("[routing]\ncontacts = \"contacts\"\n").replace("[route.onprem]", "[route.exchange]"),
        15,
        "routing.accepted_route: route \"onprem\" (the default; routing.accepted_route is not set) is not defined; defined routes: cloud, exchange, internet (add [route.onprem] or set routing.accepted_route)",
    );
    // Without a [routing] table the default names have no line of their own.
    assert_one_error(
        &text,
        0,
        "routing.accepted_route: route \"onprem\" (the default",
    );
}

#[test]
fn routes_need_exactly_one_kind_of_next_hop() {
    assert_one_error(
        &minimal_plus("[route.both]\nsmarthost = [\"a.example\"]\nmx = true\n"),
        17,
        "route.both.mx: a route has either smarthost or mx = true, not both",
    );
    assert_one_error(
        &minimal_plus("[route.neither]\ntls = \"verify\"\n"),
        15,
        "route.neither: no next hop; add smarthost = [\"host:port\"] or mx = true",
    );
    assert_one_error(
        &minimal_plus("[route.empty]\nsmarthost = []\nmx = false\n"),
        15,
        "route.empty: no next hop",
    );
    assert_one_error(
        &minimal_plus("[route.v6]\nsmarthost = [\"2001:db8::1:25\"]\n"),
        16,
        "route.v6.smarthost[0]: \"2001:db8::1:25\" is not a next hop (put IPv6 addresses in brackets); write host, host:port or [IPv6]:port",
    );
    assert_one_error(
        &minimal_plus("[route.\"on prem\"]\nmx = true\n"),
        15,
        "route.on prem: \"on prem\" is not a valid name",
    );
}

#[test]
fn listener_checks() {
    let second = "[[listener]]\nname = \"smtp\"\nbind = \"127.0.0.1:2525\"\ntls = \"none\"\n";
    assert_one_error(
        &minimal_plus(second),
        16,
        "listener[1].name: \"smtp\" is already the name of listener[0]; listener names must be unique",
    );
    let twice = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:2525\"\ntls = \"none\"\n[[listener]]\nname = \"b\"\nbind = \"127.0.0.1:2525\"\ntls = \"none\"\n";
    assert_one_error(
        &minimal_plus(twice),
        21,
        "listener[2].bind: 127.0.0.1:2525 is already used by listener[1] (line 17)",
    );
    // Port 0 binds never clash: each gets its own free port.
    let zero = "[[listener]]\nname = \"b\"\nbind = \"127.0.0.1:0\"\ntls = \"none\"\n";
    assert!(load(&minimal_plus(zero)).is_ok());
    assert_one_error(
        &MINIMAL.replace("127.0.0.1:0", "localhost:25"),
        6,
        "listener[0].bind: \"localhost:25\" is not an address to bind; write IP:port",
    );
    assert_one_error(
        &MINIMAL.replace("name = \"smtp\"\n", ""),
        4,
        "listener[0].name: required; add name = \"smtp\"",
    );
}

#[test]
fn metrics_and_listener_on_one_address() {
    let text = minimal_plus("[metrics]\nbind = \"127.0.0.1:2525\"\n")
        .replace("127.0.0.1:0", "127.0.0.1:2525");
    assert_one_error(
        &text,
        6,
        "listener[0].bind: 127.0.0.1:2525 is already used by metrics.bind (line 16)",
    );
}

#[test]
fn no_listener_and_no_hostname() {
    let text = "[route.onprem]\nmx = true\n[route.cloud]\nmx = true\n[route.internet]\nmx = true\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        errors[0],
        format!("{FILE}:0: server.hostname: required; add hostname = \"relay.corp.example\"")
    );
    assert!(errors[1].starts_with(&format!("{FILE}:0: listener: no [[listener]] defined")));
    assert_one_error(
        &MINIMAL.replace("hostname = \"relay.corp.example\"\n", ""),
        1,
        "server.hostname: required",
    );
    assert_one_error(
        &MINIMAL.replace("relay.corp.example", "relay_1.corp.example"),
        2,
        "server.hostname: \"relay_1.corp.example\" is not a domain name",
    );
}

#[test]
fn tls_listener_needs_tls_section() {
    assert_one_error(
        &MINIMAL.replace("tls = \"none\"", "tls = \"implicit\""),
        7,
        "listener[0].tls: listener \"smtp\" uses tls = \"implicit\" but there is no [tls] section; add [tls] with cert and key",
    );
    // The default is STARTTLS: reported at the listener's header.
    assert_one_error(
        &MINIMAL.replace("tls = \"none\"\n", ""),
        4,
        "listener[0].tls: listener \"smtp\" uses STARTTLS (the default) but there is no [tls] section",
    );
    assert_one_error(
        &minimal_plus("[tls]\ncert = \"\"\n"),
        16,
        "tls.cert: the path is empty",
    );
}

#[test]
fn require_tls_only_with_starttls() {
    assert_one_error(
        &MINIMAL.replace("tls = \"none\"", "tls = \"none\"\nrequire_tls = true"),
        8,
        "listener[0].require_tls: require_tls = true only goes with tls = \"starttls\"",
    );
    let ok = MINIMAL.replace("tls = \"none\"", "tls = \"starttls\"\nrequire_tls = true");
    assert!(load(&format!("{ok}[tls]\n")).unwrap().listeners[0].require_tls);
}

#[test]
fn relay_and_routing_values() {
    assert_one_error(
        &minimal_plus("[relay]\naccepted_domains = [\"corp.example\", \"@corp.example\"]\n"),
        16,
        "relay.accepted_domains[1]: \"@corp.example\" is not a domain name",
    );
    assert_one_error(
        &minimal_plus("[relay]\ntrusted_networks = [\"10.0.0.0/33\"]\n"),
        16,
        "relay.trusted_networks[0]: \"10.0.0.0/33\" is not a network",
    );
    assert_one_error(
        &minimal_plus("[relay]\ntrusted_networks = [\"192.168.1.0/16\"]\n"),
        16,
        "did you mean \"192.168.0.0/16\"?",
    );
    for bad in ["++", "@", " "] {
        assert_one_error(
            &minimal_plus(&format!("[routing]\nsubaddress_separator = \"{bad}\"\n")),
            16,
            "routing.subaddress_separator: ",
        );
    }
    assert_one_error(
        &minimal_plus("[routing]\ncontacts = \"\"\n"),
        16,
        "routing.contacts: the path is empty",
    );
    let rules = "[[routing.rule]]\ndomain = \"eu.corp.example\"\nroute = \"onprem\"\n[[routing.rule]]\ndomain = \"EU.corp.example\"\nroute = \"cloud\"\n";
    assert_one_error(
        &minimal_plus(rules),
        19,
        "routing.rule[1].domain: \"eu.corp.example\" already has a rule at line 16",
    );
    assert_one_error(
        &minimal_plus("[dns]\nnameservers = [\"ns1.example\"]\n"),
        16,
        "dns.nameservers[0]: \"ns1.example\" is not a name server",
    );
    assert_one_error(
        &minimal_plus("[doctor]\npublic_ip = \"192.0.2\"\n"),
        16,
        "doctor.public_ip: \"192.0.2\" is not an IP address",
    );
}

#[test]
fn all_errors_are_collected_in_line_order() {
    let text = r#"[server]
hostname = "relay.corp.example"
colour = "blue"
[[listener]]
name = "smtp"
bind = "127.0.0.1:25"
tls = "startls"
[limits]
max_message_size = "35 Mb"
command_timeout = 30
[routing]
contact_route = "clod"
[route.cloud]
[route.onprem]
smarthost = ["exchange.corp.example"]
mx = true
[route.internet]
mx = true
"#;
    let lines: Vec<usize> = load(text).unwrap_err().iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 7, 9, 10, 12, 13, 16]);
}

#[test]
fn empty_listener_array_is_no_listener() {
    let text = MINIMAL.replace(
        "[[listener]]\nname = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"none\"\n",
        "",
    );
    let text = format!("listener = []\n{text}");
    assert_one_error(&text, 0, "listener: no [[listener]] defined");
}

/// `from_str` is fed whatever is in the file: it must answer, never panic. Every
/// prefix of the shipped config, and every line of it replaced by junk, is cheap
/// coverage of the odd shapes a fuzzer would find first.
#[test]
fn never_panics_on_truncated_or_mangled_input() {
    let shipped = include_str!("../../../config/relay.toml");
    // Errors must point inside the text they were given.
    let check = |text: &str| {
        if let Err(errors) = load(text) {
            let last_line = text.split('\n').count();
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.line <= last_line, "{e} is past line {last_line}");
            }
        }
    };
    for (i, _) in shipped.char_indices() {
        check(&shipped[..i]);
    }
    let lines: Vec<&str> = shipped.lines().collect();
    let junk = [
        "",
        "=",
        "x = ",
        "[",
        "[[route]]",
        "route = 1",
        "listener = [1, \"a\"]",
        "[limits]\nmax_message_size = -1",
        "tls = {}",
        "bind = 99999999999999999999999",
        "port = 0x10000",
        "retry_schedule = [[]]",
        "\u{0}",
        "é = \"é\"",
    ];
    for n in 0..lines.len() {
        for j in junk {
            let mut mangled = lines.clone();
            mangled[n] = j;
            check(&mangled.join("\n"));
        }
    }
}

#[test]
fn tls_security_keys_and_their_defaults() {
    let config = load(MINIMAL).expect("minimal config loads");
    assert!(
        config.routes["internet"].mta_sts,
        "on by default for MX routes"
    );
    assert!(
        !config.routes["onprem"].mta_sts,
        "never for smarthost routes"
    );
    assert!(config.relay.trusted_tls_names.is_empty());
    assert!(!config.dns.dnssec);
    assert_eq!(config.dns.trust_anchor, None);
    let text = minimal_plus(
        "tls = \"dane\"\nmta_sts = false\nclient_cert = \"c.crt\"\nclient_key = \"c.key\"\n\
         [dns]\ndnssec = true\ntrust_anchor = \"anchor.key\"\n",
    );
    let config = load(&text).expect("dane with dnssec loads");
    let internet = &config.routes["internet"];
    assert_eq!(internet.tls, OutboundTls::Dane);
    assert!(!internet.mta_sts);
    let base = Path::new("etc/coexist");
    assert_eq!(
        internet.client_cert.as_deref(),
        Some(base.join("c.crt").as_path())
    );
    assert_eq!(
        internet.client_key.as_deref(),
        Some(base.join("c.key").as_path())
    );
    assert_eq!(config.dns.trust_anchor, Some(base.join("anchor.key")));
}
