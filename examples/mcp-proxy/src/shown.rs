//! What may be printed to a terminal as it is.

/// Whether `c` would change how text around it is shown, or hide in it: a
/// control character (a newline, a terminal escape), a line or paragraph
/// separator, or an invisible formatting character (U+202E and the other
/// bidirectional controls, which reorder what follows; zero-width spaces,
/// word joiners, the byte-order mark, tag characters). The zero-width
/// joiner and non-joiner stay allowed: emoji and several scripts need them.
/// What the commands print escapes these characters, so that a name read
/// from a server cannot rewrite the terminal.
pub fn is_unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}
