//! No mail to anyone: before an event goes to a server that schedules
//! (RFC 6638), its ORGANIZER and ATTENDEE properties get
//! `SCHEDULE-AGENT=CLIENT` (§7.1), which tells the server that the client
//! takes care of scheduling, so it sends no invitation (organizer's copy) and
//! no reply (attendee's copy).
//!
//! The edit is made in the text, so every other byte stays as the source
//! stored it: the parameter is inserted right after the property name, on a
//! line of its own within the folded content line (RFC 5545 §3.1: unfolding
//! removes the CRLF and the space, giving `ATTENDEE;SCHEDULE-AGENT=CLIENT;...`).
//! A `SCHEDULE-AGENT` already there with another value is replaced (that
//! content line is then refolded). Only properties of VEVENT, VTODO and
//! VJOURNAL are touched: an ATTENDEE of a VALARM names who gets the alarm.

/// The marked text, or `None` when there was nothing to mark (or every
/// property already says `SCHEDULE-AGENT=CLIENT`).
pub fn mark_client_scheduling(data: &str) -> Option<String> {
    let lines = logical_lines(data);
    let mut out = String::with_capacity(data.len() + 64);
    let mut stack: Vec<String> = Vec::new();
    let mut changed = false;
    for line in &lines {
        let unfolded = unfold(line);
        let (name, params, _) = split(&unfolded);
        if name.eq_ignore_ascii_case("BEGIN") || name.eq_ignore_ascii_case("END") {
            let component = unfolded
                .split_once(':')
                .map(|(_, v)| v.trim().to_ascii_uppercase())
                .unwrap_or_default();
            if name.eq_ignore_ascii_case("BEGIN") {
                stack.push(component);
            } else {
                stack.pop();
            }
        }
        let scheduled = stack
            .last()
            .is_some_and(|c| matches!(c.as_str(), "VEVENT" | "VTODO" | "VJOURNAL"));
        let is_party =
            name.eq_ignore_ascii_case("ORGANIZER") || name.eq_ignore_ascii_case("ATTENDEE");
        if !(scheduled && is_party) {
            out.push_str(line);
            continue;
        }
        match agent(params) {
            Some(v) if v.eq_ignore_ascii_case("CLIENT") => out.push_str(line),
            Some(_) => {
                out.push_str(&refold(&replace_agent(&unfolded), eol(line)));
                changed = true;
            }
            None => {
                out.push_str(&insert_agent(line, name.len(), &unfolded));
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

const PARAM: &str = ";SCHEDULE-AGENT=CLIENT";

/// Content lines with their folds and line ends, in order; concatenated they
/// are `data` again.
fn logical_lines(data: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = data.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let next = bytes.get(i + 1);
            if !matches!(next, Some(b' ' | b'\t')) {
                lines.push(&data[start..=i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    if start < data.len() {
        lines.push(&data[start..]);
    }
    lines
}

/// The line end of a content line (`\r\n`, `\n`, or none at the end of data).
fn eol(line: &str) -> &'static str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

/// The content line without folds and without its line end.
fn unfold(line: &str) -> String {
    let body = &line[..line.len() - eol(line).len()];
    body.replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "")
}

/// (name, parameters with their leading `;`, value) of an unfolded line; the
/// value starts at the first `:` outside double quotes.
fn split(unfolded: &str) -> (&str, &str, &str) {
    let name_end = unfolded.find([';', ':']).unwrap_or(unfolded.len());
    let mut quoted = false;
    let mut colon = unfolded.len();
    for (i, c) in unfolded.char_indices().skip_while(|(i, _)| *i < name_end) {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                colon = i;
                break;
            }
            _ => {}
        }
    }
    let value = unfolded.get(colon + 1..).unwrap_or("");
    (&unfolded[..name_end], &unfolded[name_end..colon], value)
}

/// The parameters as (name, value) pairs; quoted values keep no quotes.
fn params(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut current = String::new();
    let mut parts = Vec::new();
    for c in params.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((&p, ""));
        out.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    out
}

/// The SCHEDULE-AGENT parameter's value, if present.
fn agent(raw: &str) -> Option<String> {
    params(raw)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("SCHEDULE-AGENT"))
        .map(|(_, v)| v)
}

/// The unfolded line with SCHEDULE-AGENT set to CLIENT.
fn replace_agent(unfolded: &str) -> String {
    let (name, raw, value) = split(unfolded);
    let mut line = name.to_string();
    let mut quoted = false;
    let mut current = String::new();
    let mut parts = Vec::new();
    for c in raw.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == ';' && !quoted {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        let key = p.split_once('=').map_or(p.as_str(), |(k, _)| k);
        line.push(';');
        if key.eq_ignore_ascii_case("SCHEDULE-AGENT") {
            line.push_str("SCHEDULE-AGENT=CLIENT");
        } else {
            line.push_str(&p);
        }
    }
    line.push(':');
    line.push_str(value);
    line
}

/// Inserts the parameter after the name: `NAME;SCHEDULE-AGENT=CLIENT` EOL
/// SPACE rest-of-line. When a fold splits the name itself, the line is
/// rebuilt and refolded instead.
fn insert_agent(line: &str, name_len: usize, unfolded: &str) -> String {
    let first_end = line.find(['\r', '\n']).unwrap_or(line.len());
    if name_len > first_end || !line.is_char_boundary(name_len) {
        let (name, rest) = unfolded.split_at(name_len.min(unfolded.len()));
        return refold(&format!("{name}{PARAM}{rest}"), eol(line));
    }
    let end = eol(line);
    let (name, rest) = line.split_at(name_len);
    if rest.is_empty() || rest.starts_with(['\r', '\n']) {
        return format!("{name}{PARAM}{rest}");
    }
    let fold = if end.is_empty() { "\r\n" } else { end };
    format!("{name}{PARAM}{fold} {rest}")
}

/// Folds an unfolded line at 75 octets (on character boundaries), RFC 5545 §3.1.
/// The line end is `end` (none for the last line of data without one); folds
/// use it too, or CRLF.
fn refold(unfolded: &str, end: &str) -> String {
    let fold = if end.is_empty() { "\r\n" } else { end };
    let mut out = String::with_capacity(unfolded.len() + 8);
    let mut width = 0;
    for c in unfolded.chars() {
        let n = c.len_utf8();
        // A lone CR right before an LF fold would read back as a CRLF fold and
        // be lost on unfolding; the line runs a little past 75 octets instead
        // (a SHOULD in RFC 5545 §3.1) and folds after the CR's neighbour.
        let cr_then_lf = fold == "\n" && out.ends_with('\r');
        if width + n > 75 && !cr_then_lf {
            out.push_str(fold);
            out.push(' ');
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfolded_lines(text: &str) -> Vec<String> {
        logical_lines(text).iter().map(|l| unfold(l)).collect()
    }

    #[test]
    fn marks_organizer_and_attendees_of_events_only() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nORGANIZER;CN=Alice:mailto:alice@corp.example\r\nATTENDEE;CN=\"Bob; Jr\";PARTSTAT=NEEDS-ACTION:mailto:bob@example.net\r\nBEGIN:VALARM\r\nACTION:EMAIL\r\nATTENDEE:mailto:alice@corp.example\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let marked = mark_client_scheduling(ics).expect("marked");
        let lines = unfolded_lines(&marked);
        assert!(
            lines.contains(
                &"ORGANIZER;SCHEDULE-AGENT=CLIENT;CN=Alice:mailto:alice@corp.example".into()
            ),
            "{lines:?}"
        );
        assert!(lines.contains(&"ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=\"Bob; Jr\";PARTSTAT=NEEDS-ACTION:mailto:bob@example.net".into()), "{lines:?}");
        assert!(
            lines.contains(&"ATTENDEE:mailto:alice@corp.example".into()),
            "the alarm's attendee: {lines:?}"
        );
        // Every other line is unchanged, byte for byte.
        let kept: Vec<_> = marked
            .split("\r\n")
            .filter(|l| !l.starts_with(' ') && !l.contains("SCHEDULE-AGENT"))
            .collect();
        for l in kept {
            assert!(ics.contains(l), "{l:?}");
        }
        assert!(marked.split("\r\n").all(|l| l.len() <= 75), "{marked}");
        // Marking again changes nothing.
        assert_eq!(mark_client_scheduling(&marked), None);
    }

    #[test]
    fn another_agent_is_replaced_and_folded_lines_survive() {
        let ics = "BEGIN:VEVENT\nATTENDEE;SCHEDULE-AGENT=SERVER;CN=A very long name that goes on and on and on and on:\n mailto:x@example.net\nATTEN\n DEE:mailto:y@example.net\nEND:VEVENT\n";
        let marked = mark_client_scheduling(ics).unwrap();
        let lines = unfolded_lines(&marked);
        assert_eq!(
            lines[1],
            "ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=A very long name that goes on and on and on and on:mailto:x@example.net"
        );
        assert_eq!(
            lines[2],
            "ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:y@example.net"
        );
        assert!(!marked.contains('\r'), "the source's line ends are kept");
    }

    /// The fuzz target's properties (fuzz/fuzz_targets/dav_item.rs) on
    /// inputs stitched from the fragments that matter: idempotent, and only
    /// the parameter added (when no SCHEDULE-AGENT was there before).
    #[test]
    fn marking_is_idempotent_and_adds_only_the_parameter_on_stitched_inputs() {
        const PARTS: &[&str] = &[
            "BEGIN:VEVENT",
            "END:VEVENT",
            "BEGIN:VALARM",
            "END:VALARM",
            "BEGIN:VTODO",
            "ATTENDEE",
            "organizer",
            "ATTEN",
            "DEE",
            ";",
            ":",
            "\"",
            "CN=a",
            "mailto:x@y",
            "\r\n",
            "\n",
            "\r\n ",
            "\n\t",
            " ",
            "=",
            "\u{e9}",
            "\r",
            "SUMMARY:s",
        ];
        let unfold = |s: &str| {
            s.replace("\r\n ", "")
                .replace("\r\n\t", "")
                .replace("\n ", "")
                .replace("\n\t", "")
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut text = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = 1 + (x % 24) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(PARTS[(x % PARTS.len() as u64) as usize]);
            }
            if let Some(marked) = mark_client_scheduling(&text) {
                assert_eq!(
                    mark_client_scheduling(&marked),
                    None,
                    "{text:?} -> {marked:?}"
                );
                let stripped = unfold(&marked).replace(PARAM, "");
                assert_eq!(stripped, unfold(&text), "{text:?} -> {marked:?}");
            }
        }
    }

    /// A bare CR where the refolding would put an LF fold right after it
    /// ("\r" + "\n " reads back as a CRLF fold): the CR must stay, on the
    /// insert path (name split by a fold) and the replace path.
    #[test]
    fn a_bare_cr_at_a_fold_point_is_kept() {
        // "ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=" is 34 octets, then 40 more: the
        // CR is the 75th octet and the next character must be folded.
        let name = "a".repeat(40);
        for ics in [
            format!("BEGIN:VEVENT\nATTEN\n DEE;CN={name}\rb:mailto:x@y\nEND:VEVENT\n"),
            format!("BEGIN:VEVENT\nATTENDEE;SCHEDULE-AGENT=SERVER;CN={name}\rb:x\nEND:VEVENT\n"),
            format!("BEGIN:VEVENT\nATTEN\n DEE;CN={name}\r\r\rb:x\nEND:VEVENT\n"),
        ] {
            let marked = mark_client_scheduling(&ics).expect("marked");
            let want = unfolded_lines(&ics)[1]
                .replace(";SCHEDULE-AGENT=SERVER", "")
                .replacen("ATTENDEE", "ATTENDEE;SCHEDULE-AGENT=CLIENT", 1);
            assert_eq!(unfolded_lines(&marked)[1], want, "{ics:?} -> {marked:?}");
            assert_eq!(
                marked.matches('\r').count(),
                ics.matches('\r').count(),
                "{marked:?}"
            );
            assert_eq!(mark_client_scheduling(&marked), None);
        }
    }

    #[test]
    fn nothing_to_mark_and_garbage() {
        assert_eq!(
            mark_client_scheduling("BEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\n"),
            None
        );
        assert_eq!(mark_client_scheduling(""), None);
        assert_eq!(
            mark_client_scheduling("ATTENDEE:x"),
            None,
            "outside a component"
        );
        // A lone CR before the end of data stays where it was.
        let marked = mark_client_scheduling("BEGIN:VEVENT\nATTEN\n DEE:x\r").unwrap();
        assert_eq!(marked, "BEGIN:VEVENT\nATTENDEE;SCHEDULE-AGENT=CLIENT:x\r");
        let _ = mark_client_scheduling("BEGIN:VEVENT\nATTENDEE;\"\n \u{e9}\u{e9}:\n");
    }
}
