//! The drawing: rows in tree order, a header line, bars on a common time axis.

use std::collections::{HashMap, HashSet};

use crate::{Span, terminal_safe};

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours (a terminal); plain text otherwise.
    pub color: bool,
    /// Columns of the time axis.
    pub bar: usize,
    /// The longest `service: name` label before it is cut.
    pub label: usize,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            color: false,
            bar: 40,
            label: 48,
        }
    }
}

const COLORS: [&str; 5] = ["36", "35", "33", "32", "34"];
const RED: &str = "31";
const DIM: &str = "2";

/// The trace `id` as lines: a header, then one row per span, children under their parent in
/// start order. Spans whose parent is not in the trace start trees of their own.
///
/// Every text that came with the trace (the id, services, names, attributes) is printed through
/// [`terminal_safe`]: a span cannot write escape sequences to the terminal.
pub fn draw(id: &str, spans: &[Span], style: &Style) -> Vec<String> {
    let id = terminal_safe(id);
    let safe: Vec<Span> = spans
        .iter()
        .map(|s| Span {
            service: terminal_safe(&s.service).into_owned(),
            name: terminal_safe(&s.name).into_owned(),
            kind: terminal_safe(&s.kind).into_owned(),
            http: s
                .http
                .iter()
                .map(|(k, v)| (k.clone(), terminal_safe(v).into_owned()))
                .collect(),
            ..s.clone()
        })
        .collect();
    let spans = safe.as_slice();
    if spans.is_empty() {
        return vec![format!("trace {id}: no spans")];
    }
    let t0 = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let t1 = spans
        .iter()
        .map(|s| s.start_us + s.duration_us)
        .max()
        .unwrap_or(t0);
    let total = (t1 - t0).max(1);
    let services: Vec<&str> = {
        let mut seen = Vec::new();
        for s in ordered(spans) {
            if !seen.contains(&s.0.service.as_str()) {
                seen.push(s.0.service.as_str());
            }
        }
        seen
    };
    let paint = |code: &str, text: &str| {
        if style.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let rows = ordered(spans);
    let labels: Vec<String> = rows
        .iter()
        .map(|(s, depth)| {
            cut(
                &format!("{}{}: {}", "  ".repeat(*depth), s.service, s.name),
                style.label,
            )
        })
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut out = vec![format!(
        "trace {id} · {} spans · {} service{} · {}",
        spans.len(),
        services.len(),
        if services.len() == 1 { "" } else { "s" },
        duration(total)
    )];
    for ((span, _), label) in rows.iter().zip(&labels) {
        let offset =
            ((span.start_us - t0) as f64 / total as f64 * style.bar as f64).floor() as usize;
        let offset = offset.min(style.bar.saturating_sub(1));
        let length = ((span.duration_us as f64 / total as f64 * style.bar as f64).round() as usize)
            .clamp(1, style.bar - offset);
        let color = if span.error {
            RED
        } else {
            COLORS[services
                .iter()
                .position(|s| *s == span.service)
                .unwrap_or(0)
                % COLORS.len()]
        };
        let bar = format!(
            "{}{}{}",
            " ".repeat(offset),
            paint(color, &"█".repeat(length)),
            " ".repeat(style.bar - offset - length)
        );
        let mut notes: Vec<String> = Vec::new();
        if !span.kind.is_empty() {
            notes.push(paint(DIM, &span.kind));
        }
        if span.error {
            notes.push(paint(RED, "ERROR"));
        }
        notes.extend(span.http.iter().map(|(_, v)| v.clone()));
        let pad = width - label.chars().count();
        out.push(
            format!(
                "{label}{} │{bar}│ {:>9}  {}",
                " ".repeat(pad),
                duration(span.duration_us),
                notes.join(" ")
            )
            .trim_end()
            .to_owned(),
        );
    }
    out
}

/// The spans in tree order with their depth.
fn ordered(spans: &[Span]) -> Vec<(&Span, usize)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&Span>> = HashMap::new();
    for s in spans {
        let parent = s
            .parent
            .as_deref()
            .filter(|p| ids.contains(p) && *p != s.id);
        children.entry(parent).or_default().push(s);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (a.start_us, &a.name, &a.id).cmp(&(b.start_us, &b.name, &b.id)));
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(&Span, usize)> = children
        .get(&None)
        .into_iter()
        .flatten()
        .rev()
        .map(|s| (*s, 0))
        .collect();
    while let Some((span, depth)) = stack.pop() {
        if !seen.insert(span.id.as_str()) {
            continue; // a cycle or a repeated id: each span once
        }
        out.push((span, depth));
        for child in children
            .get(&Some(span.id.as_str()))
            .into_iter()
            .flatten()
            .rev()
        {
            stack.push((child, depth + 1));
        }
    }
    // Spans caught in a parent cycle have no root: show them at the top level.
    for s in spans {
        if !seen.contains(s.id.as_str()) {
            seen.insert(s.id.as_str());
            out.push((s, 0));
        }
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `850 µs`, `12.4 ms`, `1.23 s`.
fn duration(us: i64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: i64, dur: i64) -> Span {
        Span {
            id: id.into(),
            parent: parent.map(Into::into),
            service: "svc".into(),
            name: format!("op-{id}"),
            start_us: start,
            duration_us: dur,
            kind: String::new(),
            error: false,
            http: Vec::new(),
        }
    }

    #[test]
    fn rows_follow_parentage_and_bars_follow_time() {
        let spans = vec![
            span("c", Some("a"), 50, 50),
            span("a", None, 0, 100),
            span("b", Some("a"), 10, 20),
            span("d", Some("b"), 15, 5),
        ];
        let style = Style {
            bar: 10,
            ..Style::default()
        };
        let lines = draw("t1", &spans, &style);
        assert_eq!(lines[0], "trace t1 · 4 spans · 1 service · 100 µs");
        assert_eq!(lines[1], "svc: op-a     │██████████│    100 µs");
        assert_eq!(lines[2], "  svc: op-b   │ ██       │     20 µs");
        assert_eq!(lines[3], "    svc: op-d │ █        │      5 µs");
        assert_eq!(lines[4], "  svc: op-c   │     █████│     50 µs");
    }

    #[test]
    fn orphans_cycles_and_zero_durations_still_draw_every_span_once() {
        let spans = vec![
            span("x", Some("missing"), 0, 0),
            span("p", Some("q"), 5, 1),
            span("q", Some("p"), 6, 1),
        ];
        let lines = draw("t", &spans, &Style::default());
        assert_eq!(lines.len(), 4);
        assert!(draw("t", &[], &Style::default())[0].contains("no spans"));
    }

    #[test]
    fn colour_only_when_asked_and_errors_in_red() {
        let mut s = span("a", None, 0, 10);
        s.error = true;
        let plain = draw("t", std::slice::from_ref(&s), &Style::default()).join("\n");
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("ERROR"));
        let colored = draw(
            "t",
            &[s],
            &Style {
                color: true,
                ..Style::default()
            },
        )
        .join("\n");
        assert!(colored.contains("\x1b[31m"));
    }

    /// Names and attributes that carry escape sequences or newlines are shown, not obeyed.
    #[test]
    fn what_a_trace_carries_cannot_drive_the_terminal() {
        let mut s = span("a", None, 0, 10);
        s.service = "svc\x1b[2J".into();
        s.name = "GET /\x1b]52;c;ZXZpbA==\x07\nfake row".into();
        s.http = vec![("http.route".into(), "/x\r\x1b[1A".into())];
        let lines = draw("id\x1b[0m", &[s], &Style::default());
        let all = lines.join("\n");
        assert!(
            !all.contains('\x1b') && !all.contains('\x07') && !all.contains('\r'),
            "{all}"
        );
        assert_eq!(lines.len(), 2, "no row injected: {lines:?}");
        assert!(all.contains("svc\\x1b[2J"), "{all}");
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(850), "850 µs");
        assert_eq!(duration(12_400), "12.4 ms");
        assert_eq!(duration(1_234_000), "1.23 s");
    }
}
