//! YAML read exactly as `kubectl` reads it, so that a file means one thing to the CLI and to
//! the API server.
//!
//! `kubectl apply -f` turns YAML into JSON with `sigs.k8s.io/yaml`, whose plain scalars follow
//! go-yaml v2's (YAML 1.1) rules, not YAML 1.2's: `010` is 8, `0x10` is 16, `1_000` is 1000,
//! `+1` is 1, `.5` is 0.5, `yes`/`on`/`y` are `true`, `no`/`off`/`n` are `false`, `~` is null.
//! [`documents`] parses with `granit-parser` (the parser under serde-saphyr) and resolves every
//! plain scalar with those rules ([`resolve_plain`]); quoted and block scalars are always text.
//! A plain scalar go-yaml would read as a timestamp (`2024-01-01`) becomes a different text in
//! kubectl's JSON: it is refused ("quote it") rather than read otherwise.
//!
//! Anchors and aliases work (an alias is a copy, and the number of copies is bounded against
//! alias bombs), as does the merge key `<<`; a key given twice, directly or through a merge, is
//! an error.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Tag};

/// A YAML value as written, before it becomes JSON: keeps what JSON cannot hold (NaN,
/// infinity, non-text keys) so that it can be reported at its path.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
    /// A plain scalar go-yaml reads as a timestamp (kubectl then sends a reformatted text).
    Timestamp(String),
    List(Vec<Raw>),
    Map(Vec<(Raw, Raw)>),
}

/// Why a YAML text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Values an alias may copy into one file, all aliases together (a file of a few KiB holds
/// hundreds; an alias bomb holds billions).
const MAX_NODES: usize = 100_000;

/// Every document of a YAML stream (empty documents included, as [`Raw::Null`]).
pub fn documents(text: &str) -> Result<Vec<Raw>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info(),
        })?;
        let at = (span.start.line(), span.start.col() + 1);
        builder.event(event).map_err(|message| YamlError {
            line: at.0,
            column: at.1,
            message,
        })?;
    }
    Ok(builder.documents)
}

/// A collection being read.
#[derive(Debug)]
enum Frame {
    List {
        items: Vec<Raw>,
        anchor: usize,
    },
    Map {
        entries: Vec<(Raw, Raw)>,
        /// Entries that came through a merge key (`<<`): explicit keys win over them.
        merged: Vec<(Raw, Raw)>,
        key: Option<Raw>,
        anchor: usize,
    },
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Raw>,
    documents: Vec<Raw>,
    nodes: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) -> Result<(), String> {
        match event {
            Event::DocumentStart(..) => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref())?;
                self.value(value, anchor)?;
            }
            Event::Alias(id) => {
                let value = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or("an alias to an unknown anchor")?;
                self.nodes += count(&value);
                if self.nodes > MAX_NODES {
                    return Err(format!(
                        "aliases expand to more than {MAX_NODES} values; write the values out"
                    ));
                }
                self.value(value, 0)?;
            }
            Event::SequenceStart(_, anchor, _) => self.stack.push(Frame::List {
                items: Vec::new(),
                anchor,
            }),
            Event::MappingStart(_, anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                merged: Vec::new(),
                key: None,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::List { items, anchor }) => (Raw::List(items), anchor),
                    Some(Frame::Map {
                        mut entries,
                        merged,
                        anchor,
                        ..
                    }) => {
                        for (k, v) in merged {
                            if entries.iter().all(|(e, _)| *e != k) {
                                entries.push((k, v));
                            }
                        }
                        (Raw::Map(entries), anchor)
                    }
                    None => return Err("a collection ends that never began".to_owned()),
                };
                self.value(value, anchor)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A complete value: into the collection being read, or a document of its own.
    fn value(&mut self, value: Raw, anchor: usize) -> Result<(), String> {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(value),
            Some(Frame::List { items, .. }) => items.push(value),
            Some(Frame::Map {
                entries,
                merged,
                key,
                ..
            }) => match key.take() {
                // Checked as the key is read, so that the line and column the caller prefixes
                // are the second key's.
                None if entries.iter().any(|(e, _)| *e == value) => {
                    return Err(format!(
                        "the key {} is given twice in one mapping",
                        key_text(&value)
                    ));
                }
                None => *key = Some(value),
                Some(Raw::Text(k)) if k == "<<" => merge(merged, entries, value)?,
                Some(k) => entries.push((k, value)),
            },
        }
        Ok(())
    }
}

/// A merge key's value: a mapping, or a list of mappings (the earlier ones win).
fn merge(merged: &mut Vec<(Raw, Raw)>, explicit: &[(Raw, Raw)], value: Raw) -> Result<(), String> {
    let maps = match value {
        Raw::Map(entries) => vec![entries],
        Raw::List(items) => items
            .into_iter()
            .map(|i| match i {
                Raw::Map(entries) => Ok(entries),
                _ => Err("a merge key (<<) takes mappings only".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("a merge key (<<) takes a mapping or a list of mappings".to_owned()),
    };
    for (k, v) in maps.into_iter().flatten() {
        if explicit.iter().any(|(e, _)| *e == k) {
            return Err(format!(
                "the key {} is given both directly and through the merge key (<<); \
                 give it once",
                key_text(&k)
            ));
        }
        if merged.iter().all(|(m, _)| *m != k) {
            merged.push((k, v));
        }
    }
    Ok(())
}

fn key_text(k: &Raw) -> String {
    match k {
        Raw::Text(s) | Raw::Timestamp(s) => format!("`{s}`"),
        other => format!("{other:?}"),
    }
}

fn count(value: &Raw) -> usize {
    match value {
        Raw::List(items) => 1 + items.iter().map(count).sum::<usize>(),
        Raw::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// A scalar event: plain scalars resolved as go-yaml v2 does, others text; an explicit core
/// tag (`!!str`, `!!int`, ...) decides, as it does for go-yaml.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Raw, String> {
    let core = tag
        .filter(|t| t.handle() == "tag:yaml.org,2002:")
        .map(Tag::suffix);
    match core {
        Some("str") | Some("binary") => return Ok(Raw::Text(text.to_owned())),
        Some(wanted @ ("int" | "float" | "bool" | "null" | "timestamp")) => {
            let resolved = resolve_plain(text);
            return match (wanted, resolved) {
                ("int", v @ Raw::Int(_)) | ("bool", v @ Raw::Bool(_)) | ("null", v @ Raw::Null) => {
                    Ok(v)
                }
                ("float", v @ Raw::Float(_)) => Ok(v),
                ("float", Raw::Int(i)) => Ok(Raw::Float(i as f64)),
                ("timestamp", v @ Raw::Timestamp(_)) => Ok(v),
                (wanted, _) => Err(format!("`{text}` is not a valid !!{wanted}")),
            };
        }
        _ => {}
    }
    // A local tag (`!foo`) makes go-yaml keep the text.
    if tag.is_some() || style != ScalarStyle::Plain {
        return Ok(Raw::Text(text.to_owned()));
    }
    Ok(resolve_plain(text))
}

/// A plain scalar as go-yaml v2 (`sigs.k8s.io/yaml/goyaml.v2`, `resolve.go`) reads it.
pub fn resolve_plain(s: &str) -> Raw {
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return Raw::Text(s.to_owned()),
    };
    if let Some(v) = named(s) {
        return v;
    }
    match hint {
        b'.' => {
            if let Some(f) = yaml_float(s) {
                return Raw::Float(f);
            }
        }
        b'D' | b'S' => {
            if is_timestamp(s) {
                return Raw::Timestamp(s.to_owned());
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Raw::Int(i);
            }
            if let Some(f) = yaml_float(&plain) {
                return Raw::Float(f);
            }
        }
        _ => {}
    }
    Raw::Text(s.to_owned())
}

/// go-yaml v2's table of named plain scalars (booleans, nulls, infinities, NaN).
fn named(s: &str) -> Option<Raw> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Raw::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Raw::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Raw::Null,
        ".nan" | ".NaN" | ".NAN" => Raw::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Raw::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Raw::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional sign (not for
/// the unsigned try), then `0x`/`0X` hex, `0b`/`0B` binary, `0o`/`0O` or a leading `0` octal,
/// else decimal; within 64 bits.
fn go_parse_int(s: &str) -> Option<i128> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match unsigned.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &unsigned[2..]),
        [b'0', b'b' | b'B', ..] => (2, &unsigned[2..]),
        [b'0', b'o' | b'O', ..] => (8, &unsigned[2..]),
        [b'0', _, ..] => (8, &unsigned[1..]),
        _ => (10, unsigned),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let signed = s.starts_with(['-', '+']);
    if negative {
        (magnitude <= 1u128 << 63).then(|| -(magnitude as i128))
    } else if signed {
        // ParseInt takes `+`; ParseUint does not: within i64.
        (magnitude <= i64::MAX as u128).then_some(magnitude as i128)
    } else {
        (magnitude <= u128::from(u64::MAX)).then_some(magnitude as i128)
    }
}

/// go-yaml's float: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, finite (Go's
/// `ParseFloat` reports an overflow to infinity as an error, and go-yaml then keeps the text).
fn yaml_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Whether go-yaml would read `s` as a timestamp: four digits and `-` first, then one of the
/// forms it accepts (`2006-1-2`, with an optional `T`/`t`/space time and zone).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let number = |p: &str, max_len: usize| {
        !p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_digit())
    };
    let date_ok =
        parts.len() == 3 && number(parts[0], 4) && number(parts[1], 2) && number(parts[2], 2);
    match time {
        None => date_ok,
        // A time part: be strict enough to stay a timestamp go-yaml would parse.
        Some(t) => {
            date_ok
                && t.split(':').count() == 3
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || b":.+-Zz ".contains(&b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Raw {
        let docs = documents(&format!("v: {text}\n")).unwrap();
        match &docs[0] {
            Raw::Map(entries) => entries[0].1.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The scalars the issue names, and go-yaml's corner cases, as kubectl reads them.
    #[test]
    fn plain_scalars_read_as_kubectl_reads_them() {
        let int = |i: i128| Raw::Int(i);
        let text = |s: &str| Raw::Text(s.to_owned());
        for (yaml, want) in [
            ("010", int(8)),
            ("0x10", int(16)),
            ("0X1f", int(31)),
            ("0o10", int(8)),
            ("0b101", int(5)),
            ("-0b101", int(-5)),
            ("1_000", int(1000)),
            ("1__0", int(10)),
            ("1_", int(1)),
            ("+1", int(1)),
            ("-010", int(-8)),
            ("0", int(0)),
            ("-0", int(0)),
            ("08", Raw::Float(8.0)),
            ("09.5", Raw::Float(9.5)),
            (".5", Raw::Float(0.5)),
            ("+.5", Raw::Float(0.5)),
            ("5.", Raw::Float(5.0)),
            ("1e3", Raw::Float(1000.0)),
            ("1_0.5", Raw::Float(10.5)),
            ("1e999", text("1e999")),
            ("18446744073709551615", int(u64::MAX as i128)),
            ("+18446744073709551615", Raw::Float(18446744073709551615.0)),
            ("99999999999999999999", Raw::Float(1e20)),
            ("yes", Raw::Bool(true)),
            ("On", Raw::Bool(true)),
            ("y", Raw::Bool(true)),
            ("NO", Raw::Bool(false)),
            ("off", Raw::Bool(false)),
            ("tRue", text("tRue")),
            ("oN", text("oN")),
            ("~", Raw::Null),
            ("Null", Raw::Null),
            ("nULL", text("nULL")),
            ("_1", text("_1")),
            ("0x", text("0x")),
            ("12:30", text("12:30")),
            ("1.2.3", text("1.2.3")),
            ("'010'", text("010")),
            ("\"yes\"", text("yes")),
            ("!!str 010", text("010")),
            ("!!float 3", Raw::Float(3.0)),
            ("2024-01-01", Raw::Timestamp("2024-01-01".into())),
            ("2024-1-2", Raw::Timestamp("2024-1-2".into())),
            (
                "2024-01-01T10:00:00Z",
                Raw::Timestamp("2024-01-01T10:00:00Z".into()),
            ),
            ("2024-01", text("2024-01")),
        ] {
            assert_eq!(one(yaml), want, "{yaml}");
        }
        assert!(matches!(one(".inf"), Raw::Float(f) if f.is_infinite()));
        assert!(matches!(one(".NaN"), Raw::Float(f) if f.is_nan()));
        assert_eq!(one("| \n  010\n"), text("010\n"));
    }

    #[test]
    fn anchors_merges_and_duplicates() {
        let docs = documents("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\n").unwrap();
        let Raw::Map(top) = &docs[0] else { panic!() };
        assert_eq!(
            top[1].1,
            Raw::Map(vec![
                (Raw::Text("b".into()), Raw::Int(3)),
                (Raw::Text("a".into()), Raw::Int(1))
            ])
        );
        let e = documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("`a` is given twice"), "{e}");
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        let e = documents(bomb).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e}");
        assert!(documents("a: [1\n").is_err());
    }
}
