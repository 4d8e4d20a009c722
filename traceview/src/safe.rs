//! Text that came from elsewhere (a span name, a service name, an attribute, a server's
//! message), made safe to print on a terminal.

use std::borrow::Cow;

/// `text` with every character that a terminal would act on instead of showing written out
/// as an escape (`\x1b`, `\n`, `\u{202e}`): C0 and C1 control characters (escape sequences
/// that clear the screen, move the cursor, set the title or write the clipboard), DEL, and the
/// bidirectional overrides that make text read other than it is stored. Borrowed when there is
/// nothing to escape.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`terminal_safe`] for text of several lines (an error message of ours that quotes data):
/// line breaks and tabs stay, every other control character is written out.
pub fn terminal_safe_text(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| unsafe_char(c) && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(|line| {
                line.split('\t')
                    .map(|part| terminal_safe(part).into_owned())
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(
            terminal_safe("GET /items · 12 ms é"),
            Cow::Borrowed(_)
        ));
        assert_eq!(terminal_safe("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            terminal_safe("\x1b]52;c;ZXZpbA==\x07"),
            "\\x1b]52;c;ZXZpbA==\\x07",
            "OSC 52 (clipboard write)"
        );
        assert_eq!(
            terminal_safe("line\roverwritten\n"),
            "line\\roverwritten\\n"
        );
        assert_eq!(terminal_safe("\u{9b}31m"), "\\x9b31m", "C1 CSI");
        assert_eq!(terminal_safe("\x7f"), "\\x7f");
        assert_eq!(terminal_safe("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn text_keeps_its_lines() {
        assert_eq!(terminal_safe_text("a:\n  b\tc"), "a:\n  b\tc");
        assert_eq!(terminal_safe_text("a\x1b[2J\nb\r"), "a\\x1b[2J\nb\\r");
    }
}
