//! The four text forms written many at a time (`generate`'s output), without a loop per digit.
//!
//! Why by hand: the `uuid` crate writes a UUID's 32 digits with a table lookup per nibble,
//! in a function LLVM inlined in one release build and not in another of the same source. Out
//! of line it took about 7.5 ns a UUID, twice the rest of `generate`'s output thread, on the
//! thread that shares a core with the registry's helper (row 1a). The `hex` crate's
//! `encode_to_slice` is the same per-byte loop. Here the digits are made from the UUID's two
//! halves in a few shifts, masks and adds on 128-bit words (SWAR: every digit at once), and
//! the result is checked against the `uuid` crate's text for every form.

use uuid::Uuid;

use crate::validate::UuidFormat;

/// A byte of one in every byte lane.
const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;

/// The 16 nibbles of `x`, most significant first when the result is read big-endian, each as
/// a lowercase hex digit in a byte of its own.
#[inline]
fn digits(x: u64) -> u128 {
    // Nibble i of x (from the least significant) into byte i, halving the lanes each step.
    let mut n = u128::from(x);
    n = (n | (n << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    n = (n | (n << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    n = (n | (n << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    n = (n | (n << 4)) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
    // 0-9 to '0'-'9', 10-15 to 'a'-'f' ('a' is 39 past '0' + 10); no lane carries into the
    // next: every lane stays below 256.
    let over9 = ((n + 6 * ONES) >> 4) & ONES;
    n + 0x30 * ONES + over9 * 39
}

/// The 32 digits of `v`, most significant first.
#[inline]
fn hex(v: u128) -> [u8; 32] {
    let mut hex = [0u8; 32];
    hex[..16].copy_from_slice(&digits((v >> 64) as u64).to_be_bytes());
    hex[16..].copy_from_slice(&digits(v as u64).to_be_bytes());
    hex
}

// One writer per form, over an array of exactly its length: every copy has a length known at
// compile time, so each is a few moves. Over a slice of the form's length chosen at run time,
// LLVM merged them into one call to `memcpy` of variable length, 5.6% of `generate`'s CPU.

#[inline]
fn simple(v: u128, text: &mut [u8; 32]) {
    *text = hex(v);
}

#[inline]
fn hyphenated(v: u128, text: &mut [u8; 36]) {
    let hex = hex(v);
    text[..8].copy_from_slice(&hex[..8]);
    text[8] = b'-';
    text[9..13].copy_from_slice(&hex[8..12]);
    text[13] = b'-';
    text[14..18].copy_from_slice(&hex[12..16]);
    text[18] = b'-';
    text[19..23].copy_from_slice(&hex[16..20]);
    text[23] = b'-';
    text[24..].copy_from_slice(&hex[20..]);
}

#[inline]
fn urn(v: u128, text: &mut [u8; 45]) {
    let (prefix, rest) = text.split_at_mut(9);
    prefix.copy_from_slice(b"urn:uuid:");
    if let Ok(rest) = <&mut [u8; 36]>::try_from(rest) {
        hyphenated(v, rest);
    }
}

#[inline]
fn braced(v: u128, text: &mut [u8; 38]) {
    text[0] = b'{';
    text[37] = b'}';
    if let Ok(inner) = <&mut [u8; 36]>::try_from(&mut text[1..37]) {
        hyphenated(v, inner);
    }
}

/// Writes `uuid` in `form`, lowercase, over `slot`, which is exactly the form's length.
#[inline]
pub(crate) fn write(form: UuidFormat, uuid: &Uuid, slot: &mut [u8]) {
    let v = uuid.as_u128();
    match form {
        UuidFormat::Simple => fitted(v, slot, simple),
        UuidFormat::Hyphenated => fitted(v, slot, hyphenated),
        UuidFormat::Urn => fitted(v, slot, urn),
        UuidFormat::Braced => fitted(v, slot, braced),
    }
}

/// `one` over `slot` seen as the array of its form's length `L` (nothing when it is not).
#[inline]
fn fitted<const L: usize>(v: u128, slot: &mut [u8], one: impl Fn(u128, &mut [u8; L])) {
    if let Ok(text) = <&mut [u8; L]>::try_from(slot) {
        one(v, text);
    }
}

/// Writes each of `ids` in `form` followed by a newline over `text`, whose length is the
/// form's length plus one for each UUID. The form is matched once, not once a UUID.
pub(crate) fn write_lines(form: UuidFormat, ids: &[Uuid], text: &mut [u8]) {
    match form {
        UuidFormat::Simple => lines(ids, text, simple),
        UuidFormat::Hyphenated => lines(ids, text, hyphenated),
        UuidFormat::Urn => lines(ids, text, urn),
        UuidFormat::Braced => lines(ids, text, braced),
    }
}

/// Each UUID through `one` into a line of `L + 1` bytes, its last a newline.
#[inline]
fn lines<const L: usize>(ids: &[Uuid], text: &mut [u8], one: impl Fn(u128, &mut [u8; L])) {
    for (id, line) in ids.iter().zip(text.chunks_exact_mut(L + 1)) {
        let (uuid, newline) = line.split_at_mut(L);
        fitted(id.as_u128(), uuid, &one);
        newline.fill(b'\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every form, for the edge values and many random UUIDs, is the `uuid` crate's text.
    #[test]
    fn every_form_is_the_uuid_crates_text() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        let edges = [
            0,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            0x9a9a << 60,
        ];
        let ids = edges
            .into_iter()
            .chain((0..20_000).map(|_| rng.random::<u128>()))
            .map(Uuid::from_u128);
        for id in ids {
            for form in UuidFormat::ALL {
                let mut slot = vec![0u8; form.encoded_len()];
                write(form, &id, &mut slot);
                assert_eq!(String::from_utf8(slot).unwrap(), form.format(&id));
            }
        }
    }

    /// Many UUIDs as lines: each line is the `uuid` crate's text and a newline.
    #[test]
    fn lines_are_the_uuid_crates_text_one_a_line() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ids: Vec<Uuid> = (0..1_000).map(|_| Uuid::from_u128(rng.random())).collect();
        for form in UuidFormat::ALL {
            let mut text = b"stale".to_vec();
            form.encode_lines(&ids, &mut text);
            let want: String = ids.iter().map(|id| form.format(id) + "\n").collect();
            assert_eq!(String::from_utf8(text).unwrap(), want, "{}", form.name());
        }
    }
}
