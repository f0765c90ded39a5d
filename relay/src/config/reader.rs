//! Reading the parsed TOML document with its byte spans.
//!
//! Every getter records a problem as a [`ConfigError`] with the line and the dotted
//! key, then carries on, so one run of `coexist-relay check` shows every mistake in
//! the file rather than the first. Unknown keys are reported when a table is opened
//! (the equivalent of serde's `deny_unknown_fields`, but for all of them at once).

use super::units::{self, UnitError};
use super::ConfigError;
use std::fmt::Display;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A byte range in the source text.
pub type Span = Range<usize>;

/// Reads a configuration file; a file that cannot be read is one error at line 0.
/// Shared by every loader (relay.toml, migrator.toml).
pub fn read_file(path: &std::path::Path) -> Result<String, Vec<ConfigError>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read: {e}"),
        }]
    })
}

/// The errors found so far, and what is needed to turn spans into line numbers.
pub struct Diagnostics<'s> {
    file: PathBuf,
    src: &'s str,
    errors: Vec<ConfigError>,
}

impl<'s> Diagnostics<'s> {
    /// Collects errors about `src`, the text of `file`.
    pub fn new(file: &Path, src: &'s str) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            src,
            errors: Vec::new(),
        }
    }

    /// The 1-based line holding the first byte of `span`.
    pub fn line(&self, span: &Span) -> usize {
        let end = span.start.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Records `KEY: message` at the line of `span`, or at line 0 (the file as a
    /// whole) when there is no span because the key or its table is absent.
    pub fn error(&mut self, span: Option<&Span>, key: &str, message: impl Display) {
        let line = span.map_or(0, |span| self.line(span));
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: format!("{key}: {message}"),
        });
    }

    /// Records a TOML syntax error from the parser.
    pub fn syntax(&mut self, error: &toml::de::Error) {
        let line = error.span().map_or(0, |span| self.line(&span));
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: format!("TOML syntax error: {}", error.message().trim_end()),
        });
    }

    /// Whether nothing has been recorded yet.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in file order (stable, so errors on one line keep their order).
    pub fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| e.line);
        self.errors
    }
}

/// One table of the document (`[limits]`, one `[[listener]]`, `[route.cloud]`),
/// or the stand-in for a table the file does not have, whose keys all take their
/// defaults.
pub struct Section<'a, 'i> {
    table: Option<&'a DeTable<'i>>,
    /// Dotted path for messages: `limits`, `listener[1]`, `route.cloud`.
    path: String,
    /// Where the table starts (its header), if it is in the file.
    span: Option<Span>,
}

type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

impl<'a, 'i> Section<'a, 'i> {
    /// Opens `table` and reports each key not in `known`; `header` is how the table
    /// is written (`[limits]`, `[[listener]]`), for the message.
    pub fn open(
        d: &mut Diagnostics,
        table: &'a DeTable<'i>,
        span: Option<Span>,
        path: String,
        header: &str,
        known: &[&str],
    ) -> Self {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let full = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            let hint = match closest(name, known) {
                Some(near) => format!(" (did you mean {near}?)"),
                None => String::new(),
            };
            let place = if header.is_empty() {
                "valid top-level tables".to_string()
            } else {
                format!("valid keys in {header}")
            };
            d.error(
                Some(&key.span()),
                &full,
                format!("unknown key{hint}; {place}: {}", known.join(", ")),
            );
        }
        Section {
            table: Some(table),
            path,
            span,
        }
    }

    /// A table the file does not have.
    pub fn absent(path: String) -> Self {
        Section {
            table: None,
            path,
            span: None,
        }
    }

    /// Where the table starts, if it is in the file.
    pub fn span(&self) -> Option<&Span> {
        self.span.as_ref()
    }

    /// The dotted name of this table, for messages: `limits`, `listener[1]`.
    pub fn name(&self) -> &str {
        &self.path
    }

    /// Whether the table has `key` (of any type).
    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// The dotted name of `key` in this table, for messages.
    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn value(&self, key: &str) -> Option<Value<'a, 'i>> {
        self.table.and_then(|t| t.get(key))
    }

    fn wrong_type(&self, d: &mut Diagnostics, key: &str, value: Value, expected: &str) {
        d.error(
            Some(&value.span()),
            &self.key(key),
            format!("expected {expected}, found {}", describe(value.get_ref())),
        );
    }

    /// Reports a missing required key at this table's header.
    pub fn missing(&self, d: &mut Diagnostics, key: &str, example: &str) {
        let short = key.rsplit('.').next().unwrap_or(key);
        d.error(
            self.span(),
            &self.key(key),
            format!("required; add {short} = {example}"),
        );
    }

    /// A string.
    pub fn string(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<String>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Spanned::new(value.span(), s.to_string())),
            _ => {
                self.wrong_type(d, key, value, "a string");
                None
            }
        }
    }

    /// The value of `key` when it is a string; `None` (and no error) otherwise,
    /// for keys that take either one string or a list.
    pub fn string_quiet(&self, key: &str) -> Option<Spanned<String>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Spanned::new(value.span(), s.to_string())),
            _ => None,
        }
    }

    /// A string that must be present; `example` (TOML syntax) goes in the message.
    pub fn required_string(
        &self,
        d: &mut Diagnostics,
        key: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        if self.value(key).is_none() {
            self.missing(d, key, example);
            return None;
        }
        self.string(d, key)
    }

    /// `true` or `false`.
    pub fn bool(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<bool>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(value.span(), *b)),
            _ => {
                self.wrong_type(d, key, value, "true or false");
                None
            }
        }
    }

    /// A whole number within `range`.
    pub fn number<T: TryFrom<u64>>(
        &self,
        d: &mut Diagnostics,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Option<T> {
        let value = self.value(key)?;
        let in_range = match value.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| range.contains(n)),
            _ => {
                self.wrong_type(d, key, value, "a whole number");
                return None;
            }
        };
        match in_range.and_then(|n| T::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                d.error(
                    Some(&value.span()),
                    &self.key(key),
                    format!(
                        "{} is out of range; write a whole number from {} to {}",
                        describe(value.get_ref()),
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A size: a number of bytes, or a string with a unit.
    pub fn size(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<u64>> {
        let value = self.value(key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| UnitError::NotASize(i.to_string())),
            DeValue::String(s) => units::parse_size(s),
            _ => {
                self.wrong_type(
                    d,
                    key,
                    value,
                    "a size such as \"35MiB\" or a number of bytes",
                );
                return None;
            }
        };
        match parsed {
            Ok(n) => Some(Spanned::new(value.span(), n)),
            Err(e) => {
                d.error(Some(&value.span()), &self.key(key), e);
                None
            }
        }
    }

    /// A duration: a string with units.
    pub fn duration(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<Duration>> {
        let value = self.value(key)?;
        duration_value(d, &self.key(key), value)
    }

    /// A non-empty array of durations.
    pub fn durations(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<Vec<Duration>>> {
        let value = self.value(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                d,
                key,
                value,
                "an array of durations such as [\"1m\", \"5m\"]",
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match duration_value(d, &format!("{}[{i}]", self.key(key)), item) {
                Some(v) => out.push(v.into_inner()),
                None => ok = false,
            }
        }
        ok.then(|| Spanned::new(value.span(), out))
    }

    /// An array of strings, each with its span.
    pub fn strings(&self, d: &mut Diagnostics, key: &str) -> Option<Spanned<Vec<Spanned<String>>>> {
        let value = self.value(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(d, key, value, "an array of strings such as [\"a\", \"b\"]");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                other => {
                    d.error(
                        Some(&item.span()),
                        &format!("{}[{i}]", self.key(key)),
                        format!("expected a string, found {}", describe(other)),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| Spanned::new(value.span(), out))
    }

    /// A string that must be one of `choices`.
    pub fn choice<T: Copy>(
        &self,
        d: &mut Diagnostics,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let value = self.value(key)?;
        if !matches!(value.get_ref(), DeValue::String(_)) {
            // `compress = true`: the fix is the list, not just "a string".
            let expected = format!("a string (one of: {})", names.join(", "));
            self.wrong_type(d, key, value, &expected);
            return None;
        }
        let text = self.string(d, key)?;
        match choices.iter().find(|(name, _)| *name == text.get_ref()) {
            Some((_, v)) => Some(Spanned::new(text.span(), *v)),
            None => {
                d.error(
                    Some(&text.span()),
                    &self.key(key),
                    format!(
                        "unknown value \"{}\"; expected one of: {}",
                        text.get_ref(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// A non-empty path, resolved against `base` (the config file's folder).
    pub fn path(&self, d: &mut Diagnostics, key: &str, base: &Path) -> Option<Spanned<PathBuf>> {
        let text = self.string(d, key)?;
        if text.get_ref().is_empty() {
            d.error(
                Some(&text.span()),
                &self.key(key),
                "the path is empty; write a file or folder name (relative to this file's folder, or absolute)",
            );
            return None;
        }
        Some(Spanned::new(text.span(), base.join(text.get_ref())))
    }

    /// A path where `""` means "none" (the keys whose documented default is `""`).
    pub fn optional_path(
        &self,
        d: &mut Diagnostics,
        key: &str,
        base: &Path,
    ) -> Option<Spanned<PathBuf>> {
        let text = self.string(d, key)?;
        if text.get_ref().is_empty() {
            return None;
        }
        Some(Spanned::new(text.span(), base.join(text.get_ref())))
    }

    /// The sub-table `key` (`[routing]` inside the root, for example).
    pub fn table(&self, d: &mut Diagnostics, key: &str, known: &[&str]) -> Section<'a, 'i> {
        let full = self.key(key);
        let Some(value) = self.value(key) else {
            return Section::absent(full);
        };
        match value.get_ref() {
            DeValue::Table(t) => {
                let header = format!("[{full}]");
                Section::open(d, t, Some(value.span()), full, &header, known)
            }
            _ => {
                self.wrong_type(d, key, value, &format!("a table [{full}]"));
                Section::absent(full)
            }
        }
    }

    /// The array of tables `key` (`[[listener]]`); an empty list when absent.
    pub fn tables(&self, d: &mut Diagnostics, key: &str, known: &[&str]) -> Vec<Section<'a, 'i>> {
        let full = self.key(key);
        let Some(value) = self.value(key) else {
            return Vec::new();
        };
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                d.error(
                    Some(&value.span()),
                    &full,
                    format!("write [[{full}]] (an array of tables, one per entry), not [{full}]"),
                );
                return Vec::new();
            }
            _ => {
                self.wrong_type(d, key, value, &format!("[[{full}]] tables"));
                return Vec::new();
            }
        };
        let header = format!("[[{full}]]");
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{full}[{i}]");
            match item.get_ref() {
                DeValue::Table(t) => {
                    out.push(Section::open(d, t, Some(item.span()), path, &header, known))
                }
                other => d.error(
                    Some(&item.span()),
                    &path,
                    format!("expected a table, found {}", describe(other)),
                ),
            }
        }
        out
    }

    /// The tables under `key` whose names the user chooses (`[route.NAME]`), each
    /// with its name.
    pub fn named_tables(
        &self,
        d: &mut Diagnostics,
        key: &str,
        known: &[&str],
    ) -> Vec<(Spanned<String>, Section<'a, 'i>)> {
        let full = self.key(key);
        let Some(value) = self.value(key) else {
            return Vec::new();
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(d, key, value, &format!("[{full}.NAME] tables"));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(table.len());
        for (name, item) in table.iter() {
            let path = format!("{full}.{}", name.get_ref());
            match item.get_ref() {
                DeValue::Table(t) => {
                    let header = format!("[{path}]");
                    let section = Section::open(d, t, Some(item.span()), path, &header, known);
                    out.push((
                        Spanned::new(name.span(), name.get_ref().to_string()),
                        section,
                    ));
                }
                other => d.error(
                    Some(&item.span()),
                    &path,
                    format!("expected a table [{path}], found {}", describe(other)),
                ),
            }
        }
        out
    }
}

/// Reads a duration; a bare number is refused because its unit would be a guess.
fn duration_value(d: &mut Diagnostics, key: &str, value: Value) -> Option<Spanned<Duration>> {
    let parsed = match value.get_ref() {
        DeValue::String(s) => units::parse_duration(s),
        DeValue::Integer(i) => {
            d.error(
                Some(&value.span()),
                key,
                format!(
                    "{i} is a bare number; durations need a unit: write \"{i}s\" (units: ms, s, m, h, d)"
                ),
            );
            return None;
        }
        other => {
            d.error(
                Some(&value.span()),
                key,
                format!(
                    "expected a duration such as \"30s\", found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    match parsed {
        Ok(v) => Some(Spanned::new(value.span(), v)),
        Err(e) => {
            d.error(Some(&value.span()), key, e);
            None
        }
    }
}

/// How a value looks, for "expected X, found Y".
fn describe(value: &DeValue) -> String {
    match value {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(i) => format!("the number {i}"),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(t) => format!("the date {t}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// The known key nearest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(typo, k), *k))
        .filter(|(dist, k)| *dist <= 2.max(k.len() / 4))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

/// Levenshtein distance, for typo hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_are_one_based() {
        let d = Diagnostics::new(Path::new("x.toml"), "a\nb\n\nc");
        assert_eq!(d.line(&(0..1)), 1);
        assert_eq!(d.line(&(2..3)), 2);
        assert_eq!(d.line(&(5..6)), 4);
        assert_eq!(d.line(&(100..101)), 4);
    }

    #[test]
    fn typo_hints() {
        let known = ["max_message_size", "max_recipients", "bare_newline"];
        assert_eq!(closest("max_mesage_size", &known), Some("max_message_size"));
        assert_eq!(closest("bare_newlines", &known), Some("bare_newline"));
        assert_eq!(closest("colour", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
