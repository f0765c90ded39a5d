//! The contacts table: its text format (parse, no I/O) and the in-memory snapshot
//! the router looks recipients up in.
//!
//! Format (DESIGN.md, "The contacts table"), one contact per line:
//!
//! ```text
//! # address                  target                          [route]
//! user3@corp.example         user3@tenant.cloud.example
//! legal@corp.example         legal@tenant.cloud.example      cloud-eu
//! ```
//!
//! Fields are separated by ASCII white space; a field that starts with `#` starts a
//! comment to the end of the line; blank lines are ignored; a UTF-8 byte order mark
//! at the very start is skipped (editors on some systems add one).
//!
//! # Memory layout
//! The table is built for a million contacts in well under 200 MB: the text of
//! every address and target lives in one arena `String`; each contact is a 16-byte
//! entry of offsets into it; the index is a [`hashbrown::HashTable`] of `u32`
//! entry numbers keyed by the hash of the case-folded address. No per-contact heap
//! allocation.

use crate::address::{check_address, fold, same_address, MAX_ADDRESS_LEN};
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

/// `Entry::route` value for "no route column" (use `routing.contact_route`).
const NO_ROUTE: u16 = u16::MAX;

/// One error in a contacts table, displayed as `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// The table file.
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for TableError {}

/// One contact: offsets into the arena (address immediately followed by target).
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    address_len: u16,
    target_len: u16,
    route: u16,
    line: u32,
}

/// One contact as listed in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact<'a> {
    /// The address as written in the file.
    pub address: &'a str,
    /// The target as written in the file.
    pub target: &'a str,
    /// The route column, or `None` for `routing.contact_route`.
    pub route: Option<&'a str>,
    /// 1-based line in the file.
    pub line: usize,
}

/// Result of a contact lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMatch {
    /// Rewritten recipient (target, with the sub-address tag carried over).
    pub rewritten: String,
    /// Route name from the line, or `None` for `routing.contact_route`.
    pub route: Option<String>,
}

/// A parsed, validated contacts table (immutable; reload builds a new one).
pub struct ContactsTable {
    arena: String,
    entries: Vec<Entry>,
    index: HashTable<u32>,
    hasher: RandomState,
    routes: Vec<Box<str>>,
    /// Stands in for a table not loaded yet (see [`ContactsTable::placeholder`]).
    placeholder: bool,
}

impl Default for ContactsTable {
    fn default() -> Self {
        ContactsTable {
            arena: String::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            routes: Vec::new(),
            placeholder: false,
        }
    }
}

impl fmt::Debug for ContactsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactsTable")
            .field("contacts", &self.entries.len())
            .field("arena_bytes", &self.arena.len())
            .field("routes", &self.routes)
            .finish()
    }
}

impl ContactsTable {
    /// Parses a whole table. Every error is collected; the table is returned only
    /// when there are none. `routes` says whether a route name is configured.
    pub fn parse(
        text: &str,
        file: &Path,
        routes: &dyn Fn(&str) -> bool,
    ) -> Result<ContactsTable, Vec<TableError>> {
        Self::parse_text(text, file, routes, true)
    }

    /// Like [`parse`](Self::parse) for text whose every address its writer
    /// has checked already (the directory mirror's snapshot: `decide` checks
    /// each one): the syntax check, most of a parse's cost, is not repeated;
    /// fields, routes and duplicates still are.
    pub fn parse_checked(
        text: &str,
        file: &Path,
        routes: &dyn Fn(&str) -> bool,
    ) -> Result<ContactsTable, Vec<TableError>> {
        Self::parse_text(text, file, routes, false)
    }

    fn parse_text(
        text: &str,
        file: &Path,
        routes: &dyn Fn(&str) -> bool,
        check: bool,
    ) -> Result<ContactsTable, Vec<TableError>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut builder = Builder::new(
            file,
            routes,
            text.len(),
            count_lines(text.as_bytes()),
            check,
        );
        for (i, line) in text.split('\n').enumerate() {
            builder.line(i + 1, line);
        }
        builder.finish()
    }

    /// Like [`parse`](Self::parse), for raw file contents: a line that is not
    /// UTF-8 is an error naming that line (the others are still checked).
    pub fn parse_bytes(
        bytes: &[u8],
        file: &Path,
        routes: &dyn Fn(&str) -> bool,
    ) -> Result<ContactsTable, Vec<TableError>> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return Self::parse(text, file, routes);
        }
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let mut builder = Builder::new(file, routes, bytes.len(), count_lines(bytes), true);
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(line) {
                Ok(line) => builder.line(i + 1, line),
                Err(e) => builder.error(
                    i + 1,
                    format!(
                        "not valid UTF-8 (byte {} of the line); the table must be UTF-8",
                        e.valid_up_to() + 1
                    ),
                ),
            }
        }
        builder.finish()
    }

    /// An empty table that stands for "no snapshot yet": the directory has
    /// not answered and there is no cache. The router refuses accepted-domain
    /// recipients with it (`451 4.3.0`) rather than route them on-premises.
    pub fn placeholder() -> ContactsTable {
        ContactsTable {
            placeholder: true,
            ..ContactsTable::default()
        }
    }

    /// Whether this is the [`placeholder`](Self::placeholder).
    pub fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    /// Number of contacts.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no contacts.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The contacts in file order.
    pub fn iter(&self) -> impl Iterator<Item = Contact<'_>> + '_ {
        self.entries.iter().map(|e| self.contact(e))
    }

    /// The contact listed for exactly `address` (case-insensitive, no sub-address
    /// handling).
    pub fn get(&self, address: &str) -> Option<Contact<'_>> {
        self.find(address).map(|e| self.contact(e))
    }

    /// Case-insensitive lookup of a recipient.
    ///
    /// `separator` holds the sub-address delimiter characters (`""` = off). As
    /// Postfix's `recipient_delimiter`, each character is a delimiter and the local
    /// part is split at the first one: `bob+news@corp.example` is looked up as is,
    /// then as `bob@corp.example`, and on that match the tag (`+news`, as the client
    /// wrote it) is carried to the target: `bob+news@tenant.cloud.example`. The
    /// target is otherwise returned as written in the table.
    pub fn lookup(&self, address: &str, separator: &str) -> Option<ContactMatch> {
        self.lookup_contact(address, separator)?;
        if let Some(e) = self.find(address) {
            let c = self.contact(e);
            return Some(ContactMatch {
                rewritten: c.target.to_owned(),
                route: c.route.map(str::to_owned),
            });
        }
        if separator.is_empty() {
            return None;
        }
        let (local, domain) = address.rsplit_once('@')?;
        let cut = local.find(|c: char| separator.contains(c))?;
        if cut == 0 {
            // "+tag@domain": nothing left to look up (Postfix does not split either).
            return None;
        }
        let (base, tag) = local.split_at(cut);
        let c = self.contact(self.find(&format!("{base}@{domain}"))?);
        let (t_local, t_domain) = c.target.rsplit_once('@')?;
        Some(ContactMatch {
            rewritten: format!("{t_local}{tag}@{t_domain}"),
            route: c.route.map(str::to_owned),
        })
    }

    /// The contact [`lookup`](Self::lookup) would use for `address` (the
    /// exact address, else the one without its sub-address tag), as listed.
    pub fn lookup_contact(&self, address: &str, separator: &str) -> Option<Contact<'_>> {
        if let Some(e) = self.find(address) {
            return Some(self.contact(e));
        }
        if separator.is_empty() {
            return None;
        }
        let (local, domain) = address.rsplit_once('@')?;
        let cut = local.find(|c: char| separator.contains(c))?;
        if cut == 0 {
            return None;
        }
        self.find(&format!("{}@{domain}", &local[..cut]))
            .map(|e| self.contact(e))
    }

    fn contact(&self, e: &Entry) -> Contact<'_> {
        let start = e.start as usize;
        let mid = start + usize::from(e.address_len);
        let end = mid + usize::from(e.target_len);
        Contact {
            address: &self.arena[start..mid],
            target: &self.arena[mid..end],
            route: (e.route != NO_ROUTE).then(|| &*self.routes[usize::from(e.route)]),
            line: e.line as usize,
        }
    }

    fn address_of(&self, e: &Entry) -> &str {
        let start = e.start as usize;
        &self.arena[start..start + usize::from(e.address_len)]
    }

    fn find(&self, address: &str) -> Option<&Entry> {
        let hash = fold_hash(&self.hasher, address);
        self.index
            .find(hash, |&i| {
                same_address(self.address_of(&self.entries[i as usize]), address)
            })
            .map(|&i| &self.entries[i as usize])
    }
}

/// Hash of the case-folded address, fed as UTF-8 bytes in one `write`.
fn fold_hash(hasher: &RandomState, address: &str) -> u64 {
    let mut h = hasher.build_hasher();
    let mut buf = [0u8; 4 * MAX_ADDRESS_LEN];
    if address.is_ascii() && address.len() <= buf.len() {
        let out = &mut buf[..address.len()];
        out.copy_from_slice(address.as_bytes());
        out.make_ascii_lowercase();
        h.write(out);
    } else {
        let folded: String = fold(address).collect();
        h.write(folded.as_bytes());
    }
    h.finish()
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Accumulates contacts and errors while parsing.
struct Builder<'a> {
    file: &'a Path,
    known_route: &'a dyn Fn(&str) -> bool,
    table: ContactsTable,
    errors: Vec<TableError>,
    /// Whether each address's syntax is checked ([`ContactsTable::parse_checked`]).
    check: bool,
}

impl<'a> Builder<'a> {
    fn new(
        file: &'a Path,
        known_route: &'a dyn Fn(&str) -> bool,
        bytes: usize,
        lines: usize,
        check: bool,
    ) -> Self {
        let mut table = ContactsTable::default();
        // Upper bounds: the text minus separators, and one contact per line. Pages
        // never written are never resident; `finish` gives the slack back anyway.
        table.arena.reserve(bytes);
        table.entries.reserve(lines);
        table.index = HashTable::with_capacity(lines);
        Builder {
            file,
            known_route,
            table,
            errors: Vec::new(),
            check,
        }
    }

    fn error(&mut self, line: usize, message: String) {
        self.errors.push(TableError {
            file: self.file.to_path_buf(),
            line,
            message,
        });
    }

    fn line(&mut self, number: usize, line: &str) {
        let mut fields = line
            .split_ascii_whitespace()
            .take_while(|f| !f.starts_with('#'));
        let (Some(address), target, route, extra) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return; // blank or comment-only line
        };
        let Some(target) = target else {
            return self.error(
                number,
                format!(
                    "{address:?}: a contact needs an address and a target (address target [route])"
                ),
            );
        };
        if extra.is_some() {
            let n = 4 + fields.count();
            return self.error(
                number,
                format!("{n} fields; a contact is address target [route] (start a comment with #)"),
            );
        }
        let mut ok = true;
        if self.check {
            if let Err(e) = check_address(address) {
                self.error(number, format!("address {address:?}: {e}"));
                ok = false;
            }
            if let Err(e) = check_address(target) {
                self.error(number, format!("target {target:?}: {e}"));
                ok = false;
            }
        }
        let route = match route {
            None => Some(NO_ROUTE),
            Some(r) => {
                let id = self.route_id(r);
                if id.is_none() {
                    self.error(
                        number,
                        format!("unknown route {r:?}: it must name a [route.NAME] of relay.toml"),
                    );
                }
                id
            }
        };
        let (true, Some(route)) = (ok, route) else {
            return;
        };
        self.insert(number, address, target, route);
    }

    fn route_id(&mut self, name: &str) -> Option<u16> {
        if let Some(i) = self.table.routes.iter().position(|r| &**r == name) {
            return u16::try_from(i).ok();
        }
        if !(self.known_route)(name) {
            return None;
        }
        let id = u16::try_from(self.table.routes.len())
            .ok()
            .filter(|&i| i != NO_ROUTE)?;
        self.table.routes.push(name.into());
        Some(id)
    }

    fn insert(&mut self, number: usize, address: &str, target: &str, route: u16) {
        let table = &mut self.table;
        let hash = fold_hash(&table.hasher, address);
        let existing = table.index.find(hash, |&i| {
            let e = &table.entries[i as usize];
            let start = e.start as usize;
            same_address(
                &table.arena[start..start + usize::from(e.address_len)],
                address,
            )
        });
        if let Some(&i) = existing {
            let first = table.entries[i as usize].line;
            return self.error(
                number,
                format!("address {address:?} is already listed on line {first}"),
            );
        }
        let (Ok(start), Ok(entry), Ok(line)) = (
            u32::try_from(table.arena.len()),
            u32::try_from(table.entries.len()),
            u32::try_from(number),
        ) else {
            return self.error(number, "table too large (4 GiB of addresses)".into());
        };
        table.arena.push_str(address);
        table.arena.push_str(target);
        table.entries.push(Entry {
            start,
            // Both fit: check_address limits them to MAX_ADDRESS_LEN octets.
            address_len: address.len() as u16,
            target_len: target.len() as u16,
            route,
            line,
        });
        let ContactsTable {
            index,
            entries,
            arena,
            hasher,
            ..
        } = table;
        index.insert_unique(hash, entry, |&i| rehash(hasher, arena, entries, i));
    }

    fn finish(mut self) -> Result<ContactsTable, Vec<TableError>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        self.table.arena.shrink_to_fit();
        self.table.entries.shrink_to_fit();
        let ContactsTable {
            index,
            entries,
            arena,
            hasher,
            ..
        } = &mut self.table;
        index.shrink_to_fit(|&i| rehash(hasher, arena, entries, i));
        Ok(self.table)
    }
}

/// The index hash of entry `i` (for the hash table's resizes).
fn rehash(hasher: &RandomState, arena: &str, entries: &[Entry], i: u32) -> u64 {
    let e = &entries[i as usize];
    let start = e.start as usize;
    fold_hash(hasher, &arena[start..start + usize::from(e.address_len)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::AddressError;

    const FILE: &str = "contacts";

    fn routes(name: &str) -> bool {
        matches!(name, "cloud" | "cloud-eu")
    }

    fn parse(text: &str) -> Result<ContactsTable, Vec<TableError>> {
        ContactsTable::parse(text, Path::new(FILE), &routes)
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const EXAMPLE: &str = "\
# address                  target                          [route]
user3@corp.example         user3@tenant.cloud.example
legal@corp.example         legal@tenant.cloud.example      cloud-eu   # a comment

\t  Bob@Corp.Example\tBob.Smith@Tenant.Cloud.Example\r
";

    /// The mirror's parse skips only the address syntax check: the same
    /// table from the same text, and the other errors still found.
    #[test]
    fn parse_checked_differs_only_in_the_syntax_check() {
        let checked = ContactsTable::parse_checked(EXAMPLE, Path::new(FILE), &routes).unwrap();
        let full = parse(EXAMPLE).unwrap();
        assert_eq!(
            checked.iter().collect::<Vec<_>>(),
            full.iter().collect::<Vec<_>>()
        );
        let dup = "a@corp.example x@t.example\nb@corp.example y@t.example nowhere\nA@corp.example z@t.example\n";
        let errors = ContactsTable::parse_checked(dup, Path::new(FILE), &routes).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("unknown route"), "{errors:?}");
        assert!(errors[1].message.contains("already listed"), "{errors:?}");
        assert!(parse("not-an-address x@t.example\n").is_err());
        assert!(ContactsTable::parse_checked(
            "not-an-address x@t.example\n",
            Path::new(FILE),
            &routes
        )
        .is_ok());
    }

    #[test]
    fn parses_the_design_example() {
        let t = parse(EXAMPLE).unwrap();
        assert_eq!(t.len(), 3);
        let all: Vec<_> = t.iter().collect();
        assert_eq!(
            all[1],
            Contact {
                address: "legal@corp.example",
                target: "legal@tenant.cloud.example",
                route: Some("cloud-eu"),
                line: 3,
            }
        );
        assert_eq!(all[2].address, "Bob@Corp.Example");
        assert_eq!(all[2].line, 5);
        assert_eq!(all[0].route, None);
    }

    #[test]
    fn lookup_is_case_insensitive_and_keeps_target_case() {
        let t = parse(EXAMPLE).unwrap();
        let m = t.lookup("BOB@corp.EXAMPLE", "").unwrap();
        assert_eq!(m.rewritten, "Bob.Smith@Tenant.Cloud.Example");
        assert_eq!(m.route, None);
        let m = t.lookup("Legal@Corp.Example", "+").unwrap();
        assert_eq!(m.route.as_deref(), Some("cloud-eu"));
        assert_eq!(t.lookup("nobody@corp.example", "+"), None);
        assert_eq!(t.lookup("user3@corp.example.org", "+"), None);
    }

    #[test]
    fn lookup_carries_the_subaddress_tag() {
        let t = parse("bob@corp.example bob@tenant.example\nbob+x@corp.example x@tenant.example\n")
            .unwrap();
        assert_eq!(
            t.lookup("Bob+News@corp.example", "+").unwrap().rewritten,
            "bob+News@tenant.example"
        );
        // An exact entry wins over stripping the tag.
        assert_eq!(
            t.lookup("bob+x@corp.example", "+").unwrap().rewritten,
            "x@tenant.example"
        );
        // Separator off: no stripping.
        assert_eq!(t.lookup("bob+news@corp.example", ""), None);
        // Each separator character counts; the first one splits.
        assert_eq!(
            t.lookup("bob-a+b@corp.example", "+-").unwrap().rewritten,
            "bob-a+b@tenant.example"
        );
        // Empty tag is kept as written; empty base is not looked up.
        assert_eq!(
            t.lookup("bob+@corp.example", "+").unwrap().rewritten,
            "bob+@tenant.example"
        );
        assert_eq!(t.lookup("+bob@corp.example", "+"), None);
    }

    #[test]
    fn unicode_addresses_fold_case() {
        let t = parse("JÖRG@bücher.example jorg@tenant.example\n").unwrap();
        assert!(t.lookup("jörg@BÜCHER.example", "").is_some());
        assert!(t.get("jorg@bucher.example").is_none());
    }

    #[test]
    fn field_count_errors() {
        assert_eq!(
            errors("a@b.example\n"),
            ["contacts:1: \"a@b.example\": a contact needs an address and a target (address target [route])"]
        );
        assert_eq!(
            errors("\n\na@b.example c@d.example cloud extra more\n"),
            ["contacts:3: 5 fields; a contact is address target [route] (start a comment with #)"]
        );
        // A comment field ends the line, so this is fine.
        assert_eq!(
            parse("a@b.example c@d.example cloud #x y z").unwrap().len(),
            1
        );
    }

    #[test]
    fn address_errors_name_the_field() {
        let e = errors(
            "plain c@d.example\n\
             a@b.example c@@d.example\n\
             @b.example c@d.example\n\
             a@ c@d.example\n\
             a@b..example c@d.example\n\
             a@b.example. c@d.example\n\
             a@[10.0.0.1] c@d.example\n\
             a(b)@x.example c@d.example\n\
             a@x_y.example c@d.exa!mple\n",
        );
        assert_eq!(
            e,
            [
                "contacts:1: address \"plain\": no \"@\" (expected local@domain)",
                "contacts:2: target \"c@@d.example\": more than one \"@\" (an \"@\" in the local part must be quoted)",
                "contacts:3: address \"@b.example\": empty local part",
                "contacts:4: address \"a@\": empty domain",
                "contacts:5: address \"a@b..example\": empty label in domain (leading, trailing or doubled dot)",
                "contacts:6: address \"a@b.example.\": empty label in domain (leading, trailing or doubled dot)",
                "contacts:7: address \"a@[10.0.0.1]\": address literal domains are not supported; use a domain name",
                "contacts:8: address \"a(b)@x.example\": character '(' not allowed in an unquoted local part",
                "contacts:9: target \"c@d.exa!mple\": character '!' not allowed in a domain",
            ]
        );
    }

    #[test]
    fn quoted_local_parts() {
        assert_eq!(check_address("\"a@b\"@x.example"), Ok(()));
        assert_eq!(check_address("\"a\\\"@b\"@x.example"), Ok(()));
        assert_eq!(
            check_address("\"\"@x.example"),
            Err(AddressError::EmptyLocal)
        );
        assert_eq!(
            check_address("\"ab@x.example"),
            Err(AddressError::UnterminatedQuote)
        );
        assert_eq!(
            check_address("\"ab\"x@x.example"),
            Err(AddressError::AfterQuote)
        );
        assert_eq!(check_address("\"ab\"@x@y"), Err(AddressError::MultipleAt));
        let long = format!("{}@x.example", "a".repeat(250));
        assert_eq!(check_address(&long), Err(AddressError::TooLong(260)));
        // A quoted @ in the table matches exactly.
        let t = parse("\"a@b\"@x.example t@y.example").unwrap();
        assert!(t.lookup("\"A@B\"@X.example", "+").is_some());
    }

    #[test]
    fn unknown_route_and_duplicates_collect_all_errors() {
        let e = errors(
            "a@x.example t@y.example cloud\n\
             b@x.example t@y.example moon\n\
             # comment\n\
             A@X.EXAMPLE u@y.example\n\
             c@x.example t@y.example\n\
             a@x.example v@y.example\n",
        );
        assert_eq!(
            e,
            [
                "contacts:2: unknown route \"moon\": it must name a [route.NAME] of relay.toml",
                "contacts:4: address \"A@X.EXAMPLE\" is already listed on line 1",
                "contacts:6: address \"a@x.example\" is already listed on line 1",
            ]
        );
    }

    #[test]
    fn non_utf8_lines_are_reported_and_others_still_checked() {
        let bytes = b"\xef\xbb\xbfa@x.example t@y.example\nb@x.example t\xc3@y.example\nbad\n";
        let e: Vec<String> = ContactsTable::parse_bytes(bytes, Path::new(FILE), &routes)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("contacts:2: not valid UTF-8"), "{e:?}");
        assert!(e[1].starts_with("contacts:3: "), "{e:?}");
        // A BOM alone is fine.
        let t = ContactsTable::parse_bytes(
            b"\xef\xbb\xbfa@x.example t@y.example",
            Path::new(FILE),
            &routes,
        )
        .unwrap();
        assert!(t.get("a@x.example").is_some());
    }

    #[test]
    fn empty_table() {
        let t = parse("# nothing yet\n\n").unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup("a@b.example", "+"), None);
        assert!(ContactsTable::default().is_empty());
    }

    #[test]
    fn many_contacts_all_found() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("user{i}@corp.example user{i}@tenant.example\n"));
        }
        let t = parse(&text).unwrap();
        assert_eq!(t.len(), 5000);
        for i in (0..5000).step_by(7) {
            assert_eq!(
                t.lookup(&format!("USER{i}@corp.example"), "")
                    .unwrap()
                    .rewritten,
                format!("user{i}@tenant.example")
            );
        }
    }
}
