//! Parsing and validating UUID text with an exact reason for every rejection.
//!
//! The parser is written by hand rather than delegated to `uuid::Uuid::parse_str` because users
//! script against the reasons: `uuid` reports "invalid length" or "invalid group length" without
//! saying which group, how many digits it has, or which version or variant is wrong, and it
//! accepts the nil and max UUIDs. The `uuid` crate still owns the type and the formatting of one
//! UUID; many at a time (`generate`'s output) are written by `hexfmt`, whose module doc says why.
//!
//! Checks run in this order, so the first, most structural problem is the one reported:
//! empty input, braces, non-hex characters, group layout or length, strict form and case,
//! nil, max, version nibble, variant bits. Positions are 1-based and count characters.

use std::fmt;

use uuid::Uuid;

use crate::generate::UuidVersion;

/// The four text forms a UUID is accepted and written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UuidFormat {
    /// `0f8fad5b-d9cb-469f-a165-70867728950e` (8-4-4-4-12), the canonical form.
    #[default]
    Hyphenated,
    /// `0f8fad5bd9cb469fa16570867728950e` (32 hex digits).
    Simple,
    /// `urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e`.
    Urn,
    /// `{0f8fad5b-d9cb-469f-a165-70867728950e}`.
    Braced,
}

impl UuidFormat {
    /// Every form, for tests and help texts.
    pub const ALL: [UuidFormat; 4] = [
        UuidFormat::Hyphenated,
        UuidFormat::Simple,
        UuidFormat::Urn,
        UuidFormat::Braced,
    ];

    /// Writes `uuid` in this form, lowercase, into `buf` without allocating. One UUID goes
    /// through the `uuid` crate; many at a time through [`Self::encode_lines`], whose text is
    /// checked against this.
    #[inline]
    pub fn encode<'b>(self, uuid: &Uuid, buf: &'b mut [u8; 45]) -> &'b str {
        match self {
            UuidFormat::Hyphenated => uuid.hyphenated().encode_lower(buf),
            UuidFormat::Simple => uuid.simple().encode_lower(buf),
            UuidFormat::Urn => uuid.urn().encode_lower(buf),
            UuidFormat::Braced => uuid.braced().encode_lower(buf),
        }
    }

    /// How many bytes this form takes: callers that write many UUIDs lay them out in one
    /// buffer and [`Self::encode_into`] each slot, with no copy per UUID (or let
    /// [`Self::encode_lines`] do it).
    pub fn encoded_len(self) -> usize {
        match self {
            UuidFormat::Hyphenated => uuid::fmt::Hyphenated::LENGTH,
            UuidFormat::Simple => uuid::fmt::Simple::LENGTH,
            UuidFormat::Urn => uuid::fmt::Urn::LENGTH,
            UuidFormat::Braced => uuid::fmt::Braced::LENGTH,
        }
    }

    /// Writes `uuid` in this form, lowercase, over the first [`Self::encoded_len`] bytes of
    /// `slot`. Returns `None`, writing nothing, when `slot` is shorter than that.
    #[inline]
    pub fn encode_into(self, uuid: &Uuid, slot: &mut [u8]) -> Option<()> {
        let slot = slot.get_mut(..self.encoded_len())?;
        crate::hexfmt::write(self, uuid, slot);
        Some(())
    }

    /// `ids` in this form, lowercase, one a line, as the whole of `text`: the buffer is
    /// reused from call to call, so output of many batches allocates once.
    pub fn encode_lines(self, ids: &[Uuid], text: &mut Vec<u8>) {
        // No clear: every byte is written, so only a longer batch pays for filling.
        text.resize(ids.len() * (self.encoded_len() + 1), 0);
        crate::hexfmt::write_lines(self, ids, text);
    }

    /// `uuid` in this form, lowercase.
    pub fn format(self, uuid: &Uuid) -> String {
        self.encode(uuid, &mut Uuid::encode_buffer()).to_string()
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UuidFormat::Hyphenated => "hyphenated",
            UuidFormat::Simple => "simple",
            UuidFormat::Urn => "urn",
            UuidFormat::Braced => "braced",
        }
    }
}

impl std::str::FromStr for UuidFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UuidFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format {s:?}: use hyphenated, simple, urn or braced"))
    }
}

/// What to accept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept only the canonical form: lowercase hyphenated 8-4-4-4-12.
    pub strict: bool,
    /// Require this version; `None` accepts the RFC 9562 versions 1 to 8.
    pub version: Option<UuidVersion>,
}

/// Why a text is not an acceptable UUID. The `Display` text is the user-facing reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// Nothing to parse.
    Empty,
    /// No hyphens, only hex digits, but not 32 of them.
    Length {
        /// Characters in the input.
        length: usize,
    },
    /// A character that is neither a hex digit nor a hyphen where one may stand.
    NonHex {
        /// The character.
        character: char,
        /// Its 1-based position in the input, in characters.
        position: usize,
    },
    /// Not five hyphen-separated groups.
    GroupCount {
        /// How many groups there are.
        found: usize,
    },
    /// A group with the wrong number of digits.
    GroupLength {
        /// 1-based group number.
        group: usize,
        /// Digits it has.
        digits: usize,
        /// Digits it should have.
        expected: usize,
    },
    /// `{` at the start without `}` at the end.
    UnclosedBrace,
    /// `}` at the end without `{` at the start.
    UnopenedBrace,
    /// Strict mode and not lowercase hyphenated.
    NotCanonical {
        /// What is not canonical.
        reason: String,
    },
    /// All zeros.
    Nil,
    /// All ones.
    Max,
    /// The version nibble is not the one required (or not 1..=8).
    Version {
        /// The nibble found.
        found: u8,
        /// The version required, if any.
        expected: Option<UuidVersion>,
        /// 1-based position of the nibble.
        position: usize,
    },
    /// The variant digit is not 8, 9, a or b (RFC 9562 variant bits 10).
    Variant {
        /// The digit found.
        digit: char,
        /// 1-based position of the digit.
        position: usize,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::Empty => f.write_str("empty input: expected a UUID"),
            ValidationError::Length { length } => write!(
                f,
                "wrong length: {length} characters, expected 32 hex digits or the 36-character \
                 hyphenated form 8-4-4-4-12"
            ),
            ValidationError::NonHex {
                character,
                position,
            } => write!(f, "non-hex character {character:?} at position {position}"),
            ValidationError::GroupCount { found } => write!(
                f,
                "{found} hyphen-separated group{}, expected 5 (8-4-4-4-12)",
                if *found == 1 { "" } else { "s" }
            ),
            ValidationError::GroupLength {
                group,
                digits,
                expected,
            } => write!(
                f,
                "group {group} has {digits} hex digit{}, expected {expected}",
                if *digits == 1 { "" } else { "s" }
            ),
            ValidationError::UnclosedBrace => {
                f.write_str("opening brace '{' without a closing brace '}' at the end")
            }
            ValidationError::UnopenedBrace => {
                f.write_str("closing brace '}' without an opening brace '{' at the start")
            }
            ValidationError::NotCanonical { reason } => write!(
                f,
                "not canonical: {reason}; strict mode accepts only lowercase hyphenated 8-4-4-4-12"
            ),
            ValidationError::Nil => f.write_str("nil UUID (all zeros) is not a usable identifier"),
            ValidationError::Max => f.write_str("max UUID (all ones) is not a usable identifier"),
            ValidationError::Version {
                found,
                expected: Some(v),
                position,
            } => write!(
                f,
                "wrong version nibble {found:x} at position {position}, expected {v}"
            ),
            ValidationError::Version {
                found,
                expected: None,
                position,
            } => write!(
                f,
                "wrong version nibble {found:x} at position {position}, expected 1 to 8 (RFC 9562)"
            ),
            ValidationError::Variant { digit, position } => write!(
                f,
                "wrong variant: digit {digit:?} at position {position}, expected 8, 9, a or b \
                 (RFC 9562 variant bits 10)"
            ),
        }
    }
}

impl std::error::Error for ValidationError {}

/// Parses `input` in any accepted form and checks it against `opts`.
pub fn parse(input: &str, opts: &ParseOptions) -> Result<Uuid, ValidationError> {
    parse_with_format(input, opts).map(|(u, _)| u)
}

/// Like [`parse`], also saying which form the input was in.
pub fn parse_with_format(
    input: &str,
    opts: &ParseOptions,
) -> Result<(Uuid, UuidFormat), ValidationError> {
    if input.is_empty() {
        return Err(ValidationError::Empty);
    }
    let bytes = input.as_bytes();
    let (form, start, end) = if bytes.len() >= 9 && bytes[..9].eq_ignore_ascii_case(b"urn:uuid:") {
        (UuidFormat::Urn, 9, bytes.len())
    } else if bytes[0] == b'{' {
        if bytes.len() < 2 || bytes[bytes.len() - 1] != b'}' {
            return Err(ValidationError::UnclosedBrace);
        }
        (UuidFormat::Braced, 1, bytes.len() - 1)
    } else if bytes[bytes.len() - 1] == b'}' {
        return Err(ValidationError::UnopenedBrace);
    } else if bytes.contains(&b'-') {
        (UuidFormat::Hyphenated, 0, bytes.len())
    } else {
        (UuidFormat::Simple, 0, bytes.len())
    };
    let body = &bytes[start..end];

    // One pass decodes the digits and finds the first character that is neither hex nor '-'
    // (the most specific reason, reported with its position).
    let mut value: u128 = 0;
    for (i, &b) in body.iter().enumerate() {
        match HEX[usize::from(b)] {
            HYPHEN => {}
            INVALID => return Err(non_hex(input, start + i)),
            v => value = (value << 4) | u128::from(v),
        }
    }

    let hyphenated = form != UuidFormat::Simple;
    if hyphenated {
        let canonical_layout = body.len() == 36
            && body[8] == b'-'
            && body[13] == b'-'
            && body[18] == b'-'
            && body[23] == b'-'
            && body.iter().filter(|&&b| b == b'-').count() == 4;
        if !canonical_layout {
            return Err(group_error(body));
        }
    } else if body.len() != 32 {
        return Err(ValidationError::Length { length: body.len() });
    }

    if opts.strict {
        if form != UuidFormat::Hyphenated {
            return Err(ValidationError::NotCanonical {
                reason: format!("{} form", form.name()),
            });
        }
        if let Some(i) = body.iter().position(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::NotCanonical {
                reason: format!(
                    "uppercase hex digit {:?} at position {}",
                    char::from(body[i]),
                    start + i + 1
                ),
            });
        }
    }

    if value == 0 {
        return Err(ValidationError::Nil);
    }
    if value == u128::MAX {
        return Err(ValidationError::Max);
    }
    // Version: hex digit 13 (index 12); variant: hex digit 17 (index 16).
    let (version_at, variant_at) = if hyphenated { (14, 19) } else { (12, 16) };
    let found = ((value >> 76) & 0xf) as u8;
    let version_ok = match opts.version {
        Some(v) => found == v.number(),
        None => (1..=8).contains(&found),
    };
    if !version_ok {
        return Err(ValidationError::Version {
            found,
            expected: opts.version,
            position: start + version_at + 1,
        });
    }
    if (value >> 62) & 0b11 != 0b10 {
        return Err(ValidationError::Variant {
            digit: char::from(body[variant_at]),
            position: start + variant_at + 1,
        });
    }
    Ok((Uuid::from_u128(value), form))
}

const INVALID: u8 = 0xff;
const HYPHEN: u8 = 0xfe;

/// Digit values by byte: 0..=15 for hex digits in either case, [`HYPHEN`], else [`INVALID`].
const HEX: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t[b'-' as usize] = HYPHEN;
    t
};

/// The non-hex character at byte offset `at` of `input`, with its 1-based character position.
#[cold]
fn non_hex(input: &str, at: usize) -> ValidationError {
    // `at` is a char boundary: the prefix and everything before `at` in the body are ASCII.
    let character = input.get(at..).and_then(|s| s.chars().next());
    ValidationError::NonHex {
        character: character.unwrap_or('\u{fffd}'),
        position: input.get(..at).map_or(at, |s| s.chars().count()) + 1,
    }
}

/// Why a hex-and-hyphens body is not 8-4-4-4-12.
#[cold]
fn group_error(body: &[u8]) -> ValidationError {
    const LENGTHS: [usize; 5] = [8, 4, 4, 4, 12];
    let found = body.split(|&b| b == b'-').count();
    if found != 5 {
        return ValidationError::GroupCount { found };
    }
    body.split(|&b| b == b'-')
        .zip(LENGTHS)
        .enumerate()
        .find(|(_, (group, expected))| group.len() != *expected)
        .map(|(g, (group, expected))| ValidationError::GroupLength {
            group: g + 1,
            digits: group.len(),
            expected,
        })
        // Five groups of the right lengths is the canonical layout, checked before calling.
        .unwrap_or(ValidationError::GroupCount { found })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn err(input: &str) -> String {
        parse(input, &ParseOptions::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn encode_into_writes_each_form_as_encode_does_and_refuses_a_short_slot() {
        let id = Uuid::from_u128(0x0f8f_ad5b_d9cb_469f_a165_7086_7728_950e);
        for f in UuidFormat::ALL {
            let mut slot = vec![b'#'; f.encoded_len() + 1];
            assert_eq!(f.encode_into(&id, &mut slot), Some(()));
            let want = f.format(&id);
            assert_eq!(&slot[..want.len()], want.as_bytes(), "{}", f.name());
            assert_eq!(
                slot[want.len()],
                b'#',
                "{}: nothing past its length",
                f.name()
            );
            let mut short = vec![b'#'; f.encoded_len() - 1];
            assert_eq!(f.encode_into(&id, &mut short), None);
            assert!(short.iter().all(|&b| b == b'#'));
        }
    }

    #[test]
    fn tutorial_sample_is_rejected_for_its_14_digit_group_5() {
        assert_eq!(
            err("a1b2c3d4-e5f6-4789-a012-3456789abcdef0"),
            "group 5 has 14 hex digits, expected 12"
        );
        assert_eq!(
            err("a1b2c3d4-e5f6-4789-a012-3456789abcdef"),
            "group 5 has 13 hex digits, expected 12"
        );
    }

    #[test]
    fn exact_reasons() {
        assert_eq!(
            err("0f8fad5bd9cb469fa16570867728950"),
            "wrong length: 31 characters, expected 32 hex digits or the 36-character hyphenated form 8-4-4-4-12"
        );
        assert_eq!(
            err("0f8fad5b-d9cb-469f-a165-70867728950g"),
            "non-hex character 'g' at position 36"
        );
        assert_eq!(
            err("urn:uuid:0f8fad5b-d9cb-469f-a165-7086772895é"),
            "non-hex character 'é' at position 44"
        );
        assert_eq!(
            err("0f8fad5b-d9cb-969f-a165-70867728950e"),
            "wrong version nibble 9 at position 15, expected 1 to 8 (RFC 9562)"
        );
        assert_eq!(
            parse(
                "0f8fad5b-d9cb-769f-a165-70867728950e",
                &ParseOptions {
                    strict: false,
                    version: Some(UuidVersion::V4)
                }
            )
            .unwrap_err()
            .to_string(),
            "wrong version nibble 7 at position 15, expected 4"
        );
        assert_eq!(
            err("0f8fad5b-d9cb-469f-c165-70867728950e"),
            "wrong variant: digit 'c' at position 20, expected 8, 9, a or b (RFC 9562 variant bits 10)"
        );
        assert_eq!(
            err("00000000-0000-0000-0000-000000000000"),
            "nil UUID (all zeros) is not a usable identifier"
        );
        assert_eq!(
            err("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
            "max UUID (all ones) is not a usable identifier"
        );
        assert_eq!(
            err("0f8fad5b-d9cb-469f-a165"),
            "4 hyphen-separated groups, expected 5 (8-4-4-4-12)"
        );
        assert_eq!(
            err("{0f8fad5b-d9cb-469f-a165-70867728950e"),
            "opening brace '{' without a closing brace '}' at the end"
        );
        assert_eq!(err(""), "empty input: expected a UUID");
    }

    #[test]
    fn all_forms_any_case() {
        let u = parse(GOOD, &ParseOptions::default()).unwrap();
        for input in [
            GOOD.to_string(),
            GOOD.to_uppercase(),
            GOOD.replace('-', ""),
            format!("{{{GOOD}}}"),
            format!("URN:UUID:{}", GOOD.to_uppercase()),
        ] {
            assert_eq!(
                parse(&input, &ParseOptions::default()).unwrap(),
                u,
                "{input}"
            );
        }
    }

    #[test]
    fn strict_accepts_only_lowercase_hyphenated() {
        let strict = ParseOptions {
            strict: true,
            version: None,
        };
        assert!(parse(GOOD, &strict).is_ok());
        assert_eq!(
            parse(&GOOD.replace('-', ""), &strict)
                .unwrap_err()
                .to_string(),
            "not canonical: simple form; strict mode accepts only lowercase hyphenated 8-4-4-4-12"
        );
        assert_eq!(
            parse(&GOOD.replace('f', "F"), &strict).unwrap_err().to_string(),
            "not canonical: uppercase hex digit 'F' at position 2; strict mode accepts only lowercase hyphenated 8-4-4-4-12"
        );
    }
}
