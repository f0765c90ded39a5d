//! Exchange's object model, read from directory entries (DESIGN.md "The
//! directory"): users carry `mail`, `proxyAddresses` and, once migrated, an
//! `altRecipient` naming their forwarding contact; the contact carries the
//! cloud address in `targetAddress` (`SMTP:user3@tenant.cloud.example`); an
//! Exchange Hybrid remote mailbox has `targetAddress` on the user itself.
//!
//! Pure functions over parsed entries, no I/O: the relay's mirror builds its
//! routing snapshot with [`routing`], the migrator reads its users with the
//! same [`DirEntry`].

use crate::address::{check_address, fold};
use std::collections::{BTreeMap, HashMap};

/// Attribute names, as in the AD schema (compared case-insensitively).
pub mod attr {
    /// Structural and auxiliary classes.
    pub const OBJECT_CLASS: &str = "objectClass";
    /// Primary SMTP address (RFC 1274 `mail`).
    pub const MAIL: &str = "mail";
    /// `SMTP:primary`, `smtp:alias`, other types.
    pub const PROXY_ADDRESSES: &str = "proxyAddresses";
    /// DN of the object mail is forwarded to.
    pub const ALT_RECIPIENT: &str = "altRecipient";
    /// `SMTP:address` mail is delivered to.
    pub const TARGET_ADDRESS: &str = "targetAddress";
    /// TRUE: keep a copy in the mailbox too.
    pub const DELIVER_AND_REDIRECT: &str = "deliverAndRedirect";
    /// Flags; 0x2 = disabled.
    pub const USER_ACCOUNT_CONTROL: &str = "userAccountControl";
    /// Display name.
    pub const DISPLAY_NAME: &str = "displayName";
    /// Hidden from the address book.
    pub const HIDE: &str = "msExchHideFromAddressLists";
    /// RDN of contacts.
    pub const CN: &str = "cn";
}

/// `userAccountControl` bit ACCOUNTDISABLE (MS-ADTS 2.2.16).
pub const ACCOUNT_DISABLED: u32 = 0x2;

/// The filter for user entries, with `[ldap] filter` ANDed in.
pub fn user_filter(extra: Option<&str>) -> String {
    match extra {
        Some(f) => format!("(&(objectClass=user){f})"),
        None => "(objectClass=user)".to_string(),
    }
}

/// One search that returns both users (with `[ldap] filter`) and contacts: the
/// mirror's whole world in one result (and one RFC 4533 stream).
pub fn mirror_filter(extra: Option<&str>) -> String {
    format!("(|{}(objectClass=contact))", user_filter(extra))
}

/// The attributes the relay's mirror reads.
pub fn mirror_attributes(route_attribute: Option<&str>) -> Vec<&str> {
    let mut a = vec![
        attr::OBJECT_CLASS,
        attr::MAIL,
        attr::PROXY_ADDRESSES,
        attr::ALT_RECIPIENT,
        attr::TARGET_ADDRESS,
        attr::DELIVER_AND_REDIRECT,
    ];
    a.extend(route_attribute);
    a
}

/// The attributes the migrator reads on users.
pub fn user_attributes() -> Vec<&'static str> {
    vec![
        attr::OBJECT_CLASS,
        attr::MAIL,
        attr::PROXY_ADDRESSES,
        attr::ALT_RECIPIENT,
        attr::TARGET_ADDRESS,
        attr::DELIVER_AND_REDIRECT,
        attr::USER_ACCOUNT_CONTROL,
        attr::DISPLAY_NAME,
    ]
}

/// What an entry is to coexist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `objectClass: user`.
    User,
    /// `objectClass: contact`.
    Contact,
}

/// The parts of a user or contact entry coexist uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The DN as the server spells it.
    pub dn: String,
    /// User or contact.
    pub kind: Kind,
    /// `mail`, as written.
    pub mail: Option<String>,
    /// `mail` and every `smtp:` proxy address (prefix removed), first
    /// spelling of each kept: a user's routing keys.
    pub addresses: Vec<String>,
    /// `altRecipient`.
    pub alt_recipient: Option<String>,
    /// `targetAddress`, as written (`SMTP:` prefix and all).
    pub target_address: Option<String>,
    /// `deliverAndRedirect`.
    pub deliver_and_redirect: Option<bool>,
    /// `userAccountControl`.
    pub account_control: Option<u32>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The value of `[ldap] route_attribute`.
    pub route: Option<String>,
}

fn first<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a String> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
}

fn all<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> &'a [String] {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// LDAP's Boolean syntax (RFC 4517 §3.3.3): `TRUE` / `FALSE`.
fn boolean(text: &str) -> Option<bool> {
    match text {
        t if t.eq_ignore_ascii_case("TRUE") => Some(true),
        t if t.eq_ignore_ascii_case("FALSE") => Some(false),
        _ => None,
    }
}

impl DirEntry {
    /// Reads an entry; `None` when it is neither a user nor a contact.
    pub fn parse(
        dn: &str,
        attrs: &HashMap<String, Vec<String>>,
        route_attribute: Option<&str>,
    ) -> Option<DirEntry> {
        let classes = all(attrs, attr::OBJECT_CLASS);
        let is = |c: &str| classes.iter().any(|v| v.eq_ignore_ascii_case(c));
        // AD contacts are also organizationalPerson/person, never `user`.
        let kind = if is("contact") {
            Kind::Contact
        } else if is("user") {
            Kind::User
        } else {
            return None;
        };
        let mail = first(attrs, attr::MAIL).cloned();
        let mut addresses: Vec<String> = Vec::new();
        let mut push = |a: &str| {
            let a = a.trim();
            if !a.is_empty() && !addresses.iter().any(|x| crate::address::same_address(x, a)) {
                addresses.push(a.to_string());
            }
        };
        if let Some(m) = &mail {
            push(m);
        }
        for proxy in all(attrs, attr::PROXY_ADDRESSES) {
            if let Some(a) = strip_smtp(proxy) {
                push(a);
            }
        }
        Some(DirEntry {
            dn: dn.to_string(),
            kind,
            mail,
            addresses,
            alt_recipient: first(attrs, attr::ALT_RECIPIENT).cloned(),
            target_address: first(attrs, attr::TARGET_ADDRESS).cloned(),
            deliver_and_redirect: first(attrs, attr::DELIVER_AND_REDIRECT).and_then(|v| boolean(v)),
            account_control: first(attrs, attr::USER_ACCOUNT_CONTROL)
                .and_then(|v| v.trim().parse().ok()),
            display_name: first(attrs, attr::DISPLAY_NAME).cloned(),
            route: route_attribute
                .and_then(|a| first(attrs, a))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
        })
    }

    /// Whether `userAccountControl` has the disabled bit.
    pub fn disabled(&self) -> bool {
        self.account_control
            .is_some_and(|f| f & ACCOUNT_DISABLED != 0)
    }
}

/// `smtp:addr` → `addr` (prefix case-insensitive); other address types → `None`.
pub fn strip_smtp(value: &str) -> Option<&str> {
    let (kind, rest) = value.split_once(':')?;
    kind.eq_ignore_ascii_case("smtp").then_some(rest.trim())
}

/// A `targetAddress` as an address: `SMTP:x@y` → `x@y`; a bare address is
/// taken as is; another type (`X400:`) is an error.
pub fn target_of(value: &str) -> Result<&str, String> {
    let value = value.trim();
    let address = match value.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => rest.trim(),
        Some((kind, _)) if !kind.contains('@') => {
            return Err(format!(
                "targetAddress \"{value}\" is not an SMTP address (type {kind}:)"
            ))
        }
        _ => value,
    };
    check_address(address).map_err(|e| format!("targetAddress \"{value}\": {e}"))?;
    Ok(address)
}

/// The form DNs are compared in: RDNs split at unescaped commas, white space
/// around `=` and `,` removed, case folded (AD and OpenLDAP both compare the
/// naming attributes here case-insensitively).
pub fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut escaped = false;
    // After an unescaped `,` `=` `+` (or at the start): spaces are not data.
    let mut at_boundary = true;
    let mut pending_space = false;
    for c in dn.trim().chars() {
        if escaped {
            out.extend(c.to_lowercase());
            escaped = false;
            continue;
        }
        match c {
            ',' | '=' | '+' => {
                out.push(c);
                at_boundary = true;
                pending_space = false;
            }
            ' ' if at_boundary => {}
            ' ' => pending_space = true,
            c => {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                at_boundary = false;
                escaped = c == '\\';
                out.extend(c.to_lowercase());
            }
        }
    }
    out
}

/// One routing key of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The user's address (`mail` or an `smtp:` proxy address).
    pub address: String,
    /// The cloud address (prefix stripped).
    pub target: String,
    /// The route name, `None` = `routing.contact_route`.
    pub route: Option<String>,
    /// The entry the target came from: the contact, or the Hybrid user.
    pub source_dn: String,
}

/// An entry left out of the snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The entry.
    pub dn: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.dn, self.message)
    }
}

/// The routing decision of DESIGN.md over a set of entries: every address of a
/// user whose `altRecipient` names a contact routes to that contact's
/// `targetAddress`; a user with its own `targetAddress` routes there. Entries
/// that cannot be used are returned as problems and left out; so is an address
/// two users claim. The result is sorted by address (a stable cache file).
pub fn routing<'a>(
    entries: impl IntoIterator<Item = &'a DirEntry>,
    known_route: &dyn Fn(&str) -> bool,
) -> (Vec<Routed>, Vec<Problem>) {
    let mut users = Vec::new();
    let mut contacts: HashMap<String, &DirEntry> = HashMap::new();
    for e in entries {
        match e.kind {
            Kind::User => users.push(e),
            Kind::Contact => {
                contacts.insert(dn_key(&e.dn), e);
            }
        }
    }
    let mut problems = Vec::new();
    // Who claims each address (folded), over every user: an alias shared with an
    // on-premises user must not be routed to the cloud on one user's word.
    let mut claims: HashMap<String, Vec<&str>> = HashMap::new();
    for u in &users {
        for a in &u.addresses {
            claims.entry(fold(a).collect()).or_default().push(&u.dn);
        }
    }
    let mut routed: BTreeMap<String, Routed> = BTreeMap::new();
    for u in &users {
        let decided = decide(
            *u,
            &|alt| contacts.get(&dn_key(alt)).copied(),
            &|key| claims.get(key).map_or(Vec::new(), Clone::clone),
            known_route,
        );
        routed.extend(decided.routed);
        problems.extend(decided.problems);
    }
    problems.sort();
    problems.dedup();
    (routed.into_values().collect(), problems)
}

/// What [`decide`] found for one user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Routing keys (folded address) and what they route to.
    pub routed: Vec<(String, Routed)>,
    /// Why something of this user was left out.
    pub problems: Vec<Problem>,
}

/// What the routing decision reads of an entry: a [`DirEntry`] as parsed, or
/// the relay mirror's slimmer copy of one ([`super::index`]).
pub trait Fields {
    /// User or contact.
    fn kind(&self) -> Kind;
    /// The DN as the server spells it.
    fn dn(&self) -> &str;
    /// The routing keys as written (`mail` and every `smtp:` proxy address).
    fn addresses(&self) -> impl Iterator<Item = &str>;
    /// `altRecipient`.
    fn alt_recipient(&self) -> Option<&str>;
    /// `targetAddress`, as written.
    fn target_address(&self) -> Option<&str>;
    /// The value of `[ldap] route_attribute`.
    fn route(&self) -> Option<&str>;
}

impl Fields for DirEntry {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn dn(&self) -> &str {
        &self.dn
    }
    fn addresses(&self) -> impl Iterator<Item = &str> {
        self.addresses.iter().map(String::as_str)
    }
    fn alt_recipient(&self) -> Option<&str> {
        self.alt_recipient.as_deref()
    }
    fn target_address(&self) -> Option<&str> {
        self.target_address.as_deref()
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
}

/// The routing decision for one user: `contact` finds an `altRecipient`'s
/// entry, `owners` lists the DNs of every user claiming a folded address. The
/// relay's mirror calls it for each user a change touches ([`super::index`]);
/// [`routing`] for every user.
pub fn decide<'a, E: Fields + 'a>(
    u: &E,
    contact: &dyn Fn(&str) -> Option<&'a E>,
    owners: &dyn Fn(&str) -> Vec<&'a str>,
    known_route: &dyn Fn(&str) -> bool,
) -> Decision {
    let mut out = Decision::default();
    if u.kind() != Kind::User {
        return out;
    }
    let problem = |dn: &str, message: String| Problem {
        dn: dn.to_string(),
        message,
    };
    let (target, route, source_dn) = match (u.alt_recipient(), u.target_address()) {
        (Some(alt), _) => match contact(alt) {
            Some(c) => match c.target_address().map(target_of) {
                Some(Ok(t)) => (t, c.route(), c.dn()),
                Some(Err(why)) => {
                    out.problems.push(problem(
                        c.dn(),
                        format!("{why} (forwarding contact of {})", u.dn()),
                    ));
                    return out;
                }
                None => {
                    out.problems.push(problem(
                        c.dn(),
                        format!("has no targetAddress (forwarding contact of {})", u.dn()),
                    ));
                    return out;
                }
            },
            None => {
                out.problems.push(problem(
                    u.dn(),
                    format!("altRecipient \"{alt}\" is not a contact under the search base"),
                ));
                return out;
            }
        },
        (None, Some(own)) => match target_of(own) {
            Ok(t) => (t, u.route(), u.dn()),
            Err(why) => {
                out.problems.push(problem(u.dn(), why));
                return out;
            }
        },
        (None, None) => return out,
    };
    if let Some(r) = &route {
        if !known_route(r) {
            out.problems.push(problem(
                source_dn,
                format!("route \"{r}\" is not a [route.NAME] of relay.toml"),
            ));
            return out;
        }
    }
    if u.addresses().next().is_none() {
        out.problems.push(problem(
            u.dn(),
            "is forwarded but has no mail and no smtp: proxy address".into(),
        ));
    }
    for a in u.addresses() {
        if let Err(e) = check_address(a) {
            out.problems
                .push(problem(u.dn(), format!("address \"{a}\": {e}")));
            continue;
        }
        let key: String = fold(a).collect();
        let claimed = owners(&key);
        if claimed.len() > 1 {
            let others: Vec<&str> = claimed.iter().copied().filter(|d| *d != u.dn()).collect();
            out.problems.push(problem(
                u.dn(),
                format!(
                    "address \"{a}\" is also claimed by {}; left out",
                    others.join(", ")
                ),
            ));
            continue;
        }
        out.routed.push((
            key,
            Routed {
                address: a.to_string(),
                target: target.to_string(),
                route: route.map(str::to_string),
                source_dn: source_dn.to_string(),
            },
        ));
    }
    out
}

/// The snapshot in the contacts-table format (DESIGN.md "The contacts table"),
/// each line commented with the entry it came from, so the cache explains
/// itself and `route` can name the DN offline.
pub fn render(routed: &[Routed]) -> String {
    let mut out = render_start(routed.len());
    for r in routed {
        render_line(
            &mut out,
            &r.address,
            &r.target,
            r.route.as_deref(),
            &r.source_dn,
        );
    }
    out
}

/// The cache file's head, with room for `lines` lines.
pub fn render_start(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 96 + 128);
    out.push_str("# Written by coexist-relay from the directory (routing.source = \"ldap\"):\n");
    out.push_str("# the last good snapshot, used when no directory server answers. Do not edit.\n");
    out
}

/// One line of the cache file.
/// (Pushed piece by piece: the mirror renders every line of the snapshot for
/// each change batch, and `format!` padding was most of that cost.)
pub fn render_line(out: &mut String, address: &str, target: &str, route: Option<&str>, dn: &str) {
    padded(out, address, 26);
    out.push(' ');
    padded(out, target, 31);
    out.push(' ');
    if let Some(route) = route {
        out.push_str(route);
        out.push(' ');
    }
    out.push_str("# ");
    out.push_str(dn);
    out.push('\n');
}

/// `s` left-aligned in `width` characters, as `{s:<width}` pads it.
fn padded(out: &mut String, s: &str, width: usize) {
    out.push_str(s);
    for _ in s.chars().count()..width {
        out.push(' ');
    }
}

/// The DN a cache line names (its `# DN` comment), for `route`.
pub fn dn_of_line(line: &str) -> Option<&str> {
    line.split_once(" # ")
        .map(|(_, dn)| dn.trim())
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-padded line is byte for byte what `format!` padding gives
    /// (character counts, not bytes; a longer field is not cut).
    #[test]
    fn render_line_pads_like_format() {
        let long = "a-very-long-address-that-is-wider@corp.example";
        for (address, target, route) in [
            ("a@corp.example", "a@t.example", None),
            ("jürgen@corp.example", "jürgen@t.example", Some("cloud")),
            (long, long, Some("r")),
        ] {
            let mut out = String::new();
            render_line(&mut out, address, target, route, "CN=x,OU=C");
            let want = match route {
                None => format!("{address:<26} {target:<31} # CN=x,OU=C\n"),
                Some(r) => format!("{address:<26} {target:<31} {r} # CN=x,OU=C\n"),
            };
            assert_eq!(out, want);
        }
    }

    fn entry(dn: &str, pairs: &[(&str, &str)]) -> DirEntry {
        let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            attrs.entry(k.to_string()).or_default().push(v.to_string());
        }
        DirEntry::parse(dn, &attrs, Some("extensionAttribute1")).unwrap()
    }

    fn user(dn: &str, mail: &str, more: &[(&str, &str)]) -> DirEntry {
        let mut pairs = vec![
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "user"),
            ("mail", mail),
        ];
        pairs.extend_from_slice(more);
        entry(dn, &pairs)
    }

    fn contact(dn: &str, target: &str) -> DirEntry {
        entry(dn, &[("objectClass", "contact"), ("targetAddress", target)])
    }

    #[test]
    fn dn_keys_ignore_case_and_spacing() {
        assert_eq!(
            dn_key("CN=Alice (cloud), OU=Cloud Contacts ,DC=corp,DC=Example"),
            "cn=alice (cloud),ou=cloud contacts,dc=corp,dc=example"
        );
        assert_eq!(dn_key("cn=a\\, b,dc=x"), "cn=a\\, b,dc=x");
    }

    #[test]
    fn targets_and_proxies() {
        assert_eq!(target_of("SMTP:a@t.example"), Ok("a@t.example"));
        assert_eq!(target_of("smtp:a@t.example"), Ok("a@t.example"));
        assert_eq!(target_of("a@t.example"), Ok("a@t.example"));
        assert!(target_of("X400:c=us;a=;p=x").is_err());
        assert!(target_of("SMTP:nope").is_err());
        let u = user(
            "cn=a",
            "Alice@corp.example",
            &[
                ("proxyAddresses", "SMTP:alice@corp.example"),
                ("proxyAddresses", "smtp:ally@corp.example"),
                ("proxyAddresses", "X500:/o=x"),
                ("proxyAddresses", "sMtP:a.l@corp.example"),
            ],
        );
        assert_eq!(
            u.addresses,
            [
                "Alice@corp.example",
                "ally@corp.example",
                "a.l@corp.example"
            ]
        );
    }

    #[test]
    fn routing_follows_alt_recipient_and_hybrid_target() {
        let entries = vec![
            user(
                "CN=Alice,OU=Users,DC=corp",
                "alice@corp.example",
                &[
                    ("proxyAddresses", "smtp:ally@corp.example"),
                    (
                        "altRecipient",
                        "cn=alice@corp.example (cloud), ou=Contacts,dc=corp",
                    ),
                ],
            ),
            contact(
                "CN=alice@corp.example (cloud),OU=Contacts,DC=corp",
                "SMTP:alice@tenant.example",
            ),
            user(
                "CN=Bob,OU=Users,DC=corp",
                "bob@corp.example",
                &[
                    ("targetAddress", "SMTP:bob@tenant.example"),
                    ("extensionAttribute1", "cloud-eu"),
                ],
            ),
            user("CN=Carol,OU=Users,DC=corp", "carol@corp.example", &[]),
        ];
        let (routed, problems) = routing(&entries, &|r| r == "cloud-eu");
        assert!(problems.is_empty(), "{problems:?}");
        let rows: Vec<(&str, &str, Option<&str>)> = routed
            .iter()
            .map(|r| (r.address.as_str(), r.target.as_str(), r.route.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("alice@corp.example", "alice@tenant.example", None),
                ("ally@corp.example", "alice@tenant.example", None),
                ("bob@corp.example", "bob@tenant.example", Some("cloud-eu")),
            ]
        );
        assert_eq!(
            routed[0].source_dn,
            "CN=alice@corp.example (cloud),OU=Contacts,DC=corp"
        );
        let text = render(&routed);
        let table =
            crate::route::table::ContactsTable::parse(&text, std::path::Path::new("cache"), &|r| {
                r == "cloud-eu"
            })
            .unwrap();
        assert_eq!(table.len(), 3);
        let line = text
            .lines()
            .nth(table.get("bob@corp.example").unwrap().line - 1)
            .unwrap();
        assert_eq!(dn_of_line(line), Some("CN=Bob,OU=Users,DC=corp"));
    }

    #[test]
    fn unusable_entries_are_left_out_with_their_dn() {
        let entries = vec![
            user(
                "CN=A,DC=x",
                "a@corp.example",
                &[("altRecipient", "CN=missing,DC=x")],
            ),
            user(
                "CN=B,DC=x",
                "b@corp.example",
                &[("altRecipient", "CN=b (cloud),DC=x")],
            ),
            entry("CN=b (cloud),DC=x", &[("objectClass", "contact")]),
            user(
                "CN=C,DC=x",
                "c@corp.example",
                &[
                    ("targetAddress", "SMTP:c@t.example"),
                    ("proxyAddresses", "smtp:shared@corp.example"),
                ],
            ),
            user(
                "CN=D,DC=x",
                "d@corp.example",
                &[("proxyAddresses", "smtp:shared@corp.example")],
            ),
            user(
                "CN=E,DC=x",
                "e@corp.example",
                &[
                    ("targetAddress", "SMTP:e@t.example"),
                    ("extensionAttribute1", "moon"),
                ],
            ),
            user(
                "CN=F,DC=x",
                "f@corp.example",
                &[("targetAddress", "SMTP:f@t.example")],
            ),
        ];
        let (routed, problems) = routing(&entries, &|_| false);
        let addresses: Vec<&str> = routed.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, ["c@corp.example", "f@corp.example"]);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(
            shown[0].starts_with("CN=A,DC=x: altRecipient \"CN=missing,DC=x\" is not a contact"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with(
                "CN=C,DC=x: address \"shared@corp.example\" is also claimed by CN=D,DC=x"
            ),
            "{shown:?}"
        );
        assert!(
            shown[2].starts_with("CN=E,DC=x: route \"moon\""),
            "{shown:?}"
        );
        assert!(
            shown[3].starts_with("CN=b (cloud),DC=x: has no targetAddress"),
            "{shown:?}"
        );
    }

    #[test]
    fn disabled_bit_and_filters() {
        assert!(user("cn=a", "a@x.example", &[("userAccountControl", "514")]).disabled());
        assert!(!user("cn=a", "a@x.example", &[("userAccountControl", "512")]).disabled());
        assert_eq!(
            mirror_filter(Some("(ou=x)")),
            "(|(&(objectClass=user)(ou=x))(objectClass=contact))"
        );
        assert!(ldap3::parse_filter(mirror_filter(None)).is_ok());
    }
}
