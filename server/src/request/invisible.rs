//! Characters that change how text is shown without being seen themselves:
//! Unicode general categories Cf (format), Zl (line separator) and Zp
//! (paragraph separator). In an id, U+202E RIGHT-TO-LEFT OVERRIDE or a zero
//! width space can make an audit record or a console show a different agent
//! or resource than the one that acted, so ids refuse them.
//!
//! The table is Unicode 16's Cf, Zl and Zp, written out rather than taken
//! from a crate: no crate already in the build exposes general categories,
//! and the list is short and changes rarely.

/// Inclusive ranges, sorted and disjoint.
const INVISIBLE: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero width space, joiners, LRM, RLM
    ('\u{2028}', '\u{202E}'),   // line and paragraph separators, embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // isolates, deprecated format characters
    ('\u{FEFF}', '\u{FEFF}'),   // zero width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// Whether `c` is a format, line separator or paragraph separator character
/// (general category Cf, Zl or Zp).
pub fn is_invisible(c: char) -> bool {
    // Everything below U+00AD is ASCII or Latin-1 and never in the table:
    // the common case costs one comparison.
    if c < '\u{00AD}' {
        return false;
    }
    INVISIBLE
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The first invisible character of `value`, if any.
pub fn first_invisible(value: &str) -> Option<char> {
    value.chars().find(|&c| is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1, "{pair:?}");
            assert!(pair[0].1 < pair[1].0, "{pair:?}");
        }
        let last = INVISIBLE[INVISIBLE.len() - 1];
        assert!(last.0 <= last.1);
    }

    #[test]
    fn every_range_is_in_at_its_ends_and_out_just_beyond() {
        for (low, high) in INVISIBLE {
            assert!(is_invisible(low), "{:04X}", u32::from(low));
            assert!(is_invisible(high), "{:04X}", u32::from(high));
            for outside in [u32::from(low) - 1, u32::from(high) + 1] {
                // U+2065 (unassigned) sits between two ranges; others are
                // visible characters or unassigned.
                if let Some(c) = char::from_u32(outside) {
                    assert!(!is_invisible(c), "{outside:04X}");
                }
            }
        }
    }

    #[test]
    fn the_characters_that_disguise_ids_are_caught() {
        for c in [
            '\u{202E}',
            '\u{202D}',
            '\u{200B}',
            '\u{200D}',
            '\u{2028}',
            '\u{2029}',
            '\u{FEFF}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            assert!(is_invisible(c), "{:04X}", u32::from(c));
        }
        for c in [
            'a',
            ' ',
            '-',
            'é',
            '\u{00A0}',
            '\u{2000}',
            '\u{2065}',
            '\u{3000}',
            '\u{FFFD}',
            '日',
            '🙂',
            '\u{10FFFF}',
        ] {
            assert!(!is_invisible(c), "{:04X}", u32::from(c));
        }
        assert_eq!(first_invisible("agent\u{202E}gpj.exe"), Some('\u{202E}'));
        assert_eq!(first_invisible("agent-7"), None);
    }

    proptest! {
        /// The table agrees with the Unicode tables of the regex engine
        /// proptest uses: every character of `\p{Cf}`, `\p{Zl}` or `\p{Zp}`
        /// is refused, every other character is not.
        #[test]
        fn agrees_with_the_unicode_categories(
            inside in "[\\p{Cf}\\p{Zl}\\p{Zp}]",
            outside in "[^\\p{Cf}\\p{Zl}\\p{Zp}]",
        ) {
            for c in inside.chars() {
                prop_assert!(is_invisible(c), "{:04X}", u32::from(c));
            }
            for c in outside.chars() {
                prop_assert!(!is_invisible(c), "{:04X}", u32::from(c));
            }
        }
    }
}
