//! A seeded mutator for the fuzz tests of `tests/fuzz.rs`: stacked byte-level mutations of
//! valid seed inputs (bit flips, interesting bytes and integers written over header fields,
//! inserted, deleted and duplicated runs, truncation, splicing of two seeds, dictionary
//! tokens) and token-level mutations of text formats (TOML, JSON: numbers, strings,
//! booleans and lines).
//!
//! Every case draws its randomness from `(campaign seed, parser, iteration)` alone, so a
//! failing input is rebuilt exactly from the three numbers a failure prints.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Integers that break length, count and offset checks, written over 2-, 4- and 8-byte
/// fields (truncated to the field's width).
pub const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    3,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    1_000_000_000_000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Replacements for number literals in text formats.
pub const TEXT_NUMBERS: [&str; 32] = [
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "255",
    "256",
    "65535",
    "4294967295",
    "4294967296",
    "1000000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e12",
    "1e308",
    "1e309",
    "-1e308",
    "5e-324",
    "0.5",
    "0.999999",
    "1.0",
    "-0.5",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "0x7fffffff",
    "1_000",
];

/// Replacements for the content of string literals in text formats.
const TEXT_STRINGS: [&str; 10] = [
    "",
    " ",
    "x",
    "../../../../etc/passwd",
    "/abs/path",
    "a/b",
    "\\u0000",
    "\u{e9}\u{1F600}",
    "relu,relu",
    "none",
];

/// A seeded mutator; see the module documentation.
pub struct Mutator {
    rng: ChaCha8Rng,
    dict: Vec<Vec<u8>>,
}

/// FNV-1a of `s`, to fold a parser name into a seed.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Mutator {
    /// The mutator of one case: the same `(seed, parser, iteration)` always gives the same
    /// mutations.
    pub fn for_case(seed: u64, parser: &str, iteration: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(parser).rotate_left(17));
        rng.set_stream(iteration);
        Self {
            rng,
            dict: Vec::new(),
        }
    }

    /// Adds format tokens (magic numbers, opcodes, keywords) that mutations may insert.
    pub fn add_dict(&mut self, tokens: &[&[u8]]) {
        self.dict.extend(tokens.iter().map(|t| t.to_vec()));
    }

    /// The underlying random generator, for format-specific mutations.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A uniform integer in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.gen_range(0..n)
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// One of the interesting integers, sometimes nudged by a small delta.
    pub fn interesting(&mut self) -> u64 {
        let v = INTERESTING[self.below(INTERESTING.len())];
        match self.below(4) {
            0 => v.wrapping_add(1 + self.below(4) as u64),
            1 => v.wrapping_sub(1 + self.below(4) as u64),
            _ => v,
        }
    }

    /// A position in `0..len`, inside `hot` three times out of four when given.
    fn pos(&mut self, len: usize, hot: &Option<Range<usize>>) -> usize {
        if let Some(h) = hot {
            let (a, b) = (h.start.min(len), h.end.min(len));
            if b > a && self.chance(0.75) {
                return a + self.below(b - a);
            }
        }
        self.below(len)
    }

    /// A mutated copy of one of `seeds`.
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let seed = &seeds[self.below(seeds.len())];
        self.mutate_from(seed, seeds, None)
    }

    /// A mutated copy of `seed` (splicing with `seeds`), positions drawn mostly from `hot`
    /// when given (a header, say): 1, 2, 4 or 8 stacked mutations.
    pub fn mutate_from(
        &mut self,
        seed: &[u8],
        seeds: &[Vec<u8>],
        hot: Option<Range<usize>>,
    ) -> Vec<u8> {
        let mut data = seed.to_vec();
        let ops = 1usize << self.below(4);
        for _ in 0..ops {
            self.mutate_once(&mut data, seeds, &hot);
        }
        data
    }

    /// Writes the low `width` bytes of `v` at `at`, little- or big-endian, growing `data`
    /// if needed.
    fn write_int(&mut self, data: &mut Vec<u8>, at: usize, width: usize, v: u64) {
        let bytes = if self.chance(0.5) {
            v.to_le_bytes()[..width].to_vec()
        } else {
            v.to_be_bytes()[8 - width..].to_vec()
        };
        if data.len() < at + width {
            data.resize(at + width, 0);
        }
        data[at..at + width].copy_from_slice(&bytes);
    }

    /// Applies one byte-level mutation to `data`.
    pub fn mutate_once(
        &mut self,
        data: &mut Vec<u8>,
        seeds: &[Vec<u8>],
        hot: &Option<Range<usize>>,
    ) {
        let len = data.len();
        match self.below(16) {
            // Bit flip.
            0 | 1 if len > 0 => {
                let p = self.pos(len, hot);
                data[p] ^= 1 << self.below(8);
            }
            // An interesting byte.
            2 if len > 0 => {
                let p = self.pos(len, hot);
                data[p] = [0u8, 0xff, 0x7f, 0x80, 1, self.rng.gen()][self.below(6)];
            }
            // Arithmetic on a byte.
            3 if len > 0 => {
                let p = self.pos(len, hot);
                let d = 1 + self.below(35) as u8;
                data[p] = if self.chance(0.5) {
                    data[p].wrapping_add(d)
                } else {
                    data[p].wrapping_sub(d)
                };
            }
            // An interesting 2-, 4- or 8-byte integer over a field (often aligned).
            4..=6 if len > 0 => {
                let width = [2, 4, 8][self.below(3)];
                let mut p = self.pos(len, hot);
                if self.chance(0.5) {
                    p -= p % width;
                }
                let v = self.interesting();
                self.write_int(data, p, width, v);
            }
            // Insert random bytes or a run of one byte.
            7 => {
                let p = self.below(len + 1);
                let run: Vec<u8> = if self.chance(0.5) {
                    (0..1 + self.below(32)).map(|_| self.rng.gen()).collect()
                } else {
                    let b = [0u8, 0xff, b' ', b'\n', self.rng.gen()][self.below(5)];
                    vec![b; 1 + self.below(256)]
                };
                data.splice(p..p, run);
            }
            // Delete a run.
            8 if len > 0 => {
                let p = self.pos(len, hot);
                let n = 1 + self.below((len - p).min(64));
                data.drain(p..p + n);
            }
            // Duplicate a run, sometimes many times over.
            9 if len > 0 => {
                let a = self.pos(len, hot);
                let n = 1 + self.below((len - a).min(256));
                let times = if self.chance(0.25) {
                    2 + self.below(15)
                } else {
                    1
                };
                let run: Vec<u8> = data[a..a + n].repeat(times);
                let at = self.below(len + 1);
                data.splice(at..at, run);
            }
            // Overwrite a run with bytes from elsewhere in the input.
            10 if len > 1 => {
                let a = self.below(len);
                let b = self.pos(len, hot);
                let n = 1 + self.below((len - a.max(b)).min(64));
                let run = data[a..a + n].to_vec();
                data[b..b + n].copy_from_slice(&run);
            }
            // Truncate.
            11 if len > 0 => {
                let p = if self.chance(0.5) {
                    self.pos(len, hot)
                } else {
                    self.below(len)
                };
                data.truncate(p);
            }
            // Splice: a prefix of this input and a suffix of another seed.
            12 if !seeds.is_empty() => {
                let other = &seeds[self.below(seeds.len())];
                let a = self.below(len + 1);
                let b = self.below(other.len() + 1);
                data.truncate(a);
                data.extend_from_slice(&other[b..]);
            }
            // A dictionary token, inserted or written over.
            13 if !self.dict.is_empty() => {
                let i = self.below(self.dict.len());
                let t = self.dict[i].clone();
                let p = self.pos(len + 1, hot).min(len);
                if self.chance(0.5) || p + t.len() > len {
                    data.splice(p..p, t);
                } else {
                    data[p..p + t.len()].copy_from_slice(&t);
                }
            }
            // An interesting number in ASCII decimal, written over or inserted.
            14 => {
                let t = TEXT_NUMBERS[self.below(TEXT_NUMBERS.len())]
                    .as_bytes()
                    .to_vec();
                let p = self.pos(len + 1, hot).min(len);
                if self.chance(0.5) || p + t.len() > len {
                    data.splice(p..p, t);
                } else {
                    data[p..p + t.len()].copy_from_slice(&t);
                }
            }
            // Append bytes (a torn or extended tail).
            _ => {
                let n = 1 + self.below(16);
                let extra: Vec<u8> = (0..n).map(|_| self.rng.gen()).collect();
                data.extend_from_slice(&extra);
            }
        }
    }

    /// With probability `text`, [`Self::mutate_text`] of the `seeds`, else [`Self::mutate`].
    pub fn mutate_text_or_bytes(&mut self, seeds: &[Vec<u8>], text: f64) -> Vec<u8> {
        if self.chance(text) {
            self.mutate_text(seeds)
        } else {
            self.mutate(seeds)
        }
    }

    /// A mutated copy of one of the text `seeds` (TOML, JSON): one to four token-level
    /// mutations (numbers, strings, booleans, lines), then sometimes byte-level ones.
    pub fn mutate_text(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let seed = &seeds[self.below(seeds.len())];
        let mut text = seed.clone();
        for _ in 0..1 + self.below(4) {
            self.mutate_text_once(&mut text, seeds);
        }
        if self.chance(0.3) {
            for _ in 0..1 + self.below(2) {
                self.mutate_once(&mut text, seeds, &None);
            }
        }
        text
    }

    /// One token-level mutation of `text`.
    fn mutate_text_once(&mut self, text: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let toks = tokens(text);
        match self.below(10) {
            // A number literal replaced.
            0..=2 => {
                let nums: Vec<&Range<usize>> = toks
                    .iter()
                    .filter(|t| t.kind == Kind::Number)
                    .map(|t| &t.span)
                    .collect();
                if let Some(&r) = nums.get(self.below(nums.len())) {
                    let r = r.clone();
                    let n = TEXT_NUMBERS[self.below(TEXT_NUMBERS.len())];
                    text.splice(r, n.bytes());
                }
            }
            // A string's content replaced: by a fixed oddity, or by another string of the
            // corpus (so enum names move between fields).
            3 | 4 => {
                let strs: Vec<Range<usize>> = toks
                    .iter()
                    .filter(|t| t.kind == Kind::Str)
                    .map(|t| t.span.clone())
                    .collect();
                if strs.is_empty() {
                    return;
                }
                let r = strs[self.below(strs.len())].clone();
                let inner = r.start + 1..r.end.saturating_sub(1).max(r.start + 1);
                let with: Vec<u8> = if self.chance(0.5) {
                    TEXT_STRINGS[self.below(TEXT_STRINGS.len())]
                        .as_bytes()
                        .to_vec()
                } else if self.chance(0.1) {
                    vec![b'a'; 1 + self.below(5000)]
                } else {
                    let other = &seeds[self.below(seeds.len())];
                    let os: Vec<Range<usize>> = tokens(other)
                        .into_iter()
                        .filter(|t| t.kind == Kind::Str)
                        .map(|t| t.span)
                        .collect();
                    match os.get(self.below(os.len())) {
                        Some(o) if o.len() >= 2 => other[o.start + 1..o.end - 1].to_vec(),
                        _ => Vec::new(),
                    }
                };
                text.splice(inner, with);
            }
            // A boolean flipped.
            5 => {
                let bools: Vec<Range<usize>> = toks
                    .iter()
                    .filter(|t| t.kind == Kind::Bool)
                    .map(|t| t.span.clone())
                    .collect();
                if let Some(r) = bools.get(self.below(bools.len())) {
                    let now = &text[r.clone()];
                    let flip: &[u8] = match now {
                        b"true" => b"false",
                        b"false" => b"true",
                        _ => b"null",
                    };
                    text.splice(r.clone(), flip.iter().copied());
                }
            }
            // Lines: deleted, duplicated, swapped, or taken from another seed.
            _ => {
                let mut lines: Vec<Vec<u8>> =
                    text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                let i = self.below(n);
                match self.below(4) {
                    0 if n > 1 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(self.below(n + 1), l);
                    }
                    2 => {
                        let j = self.below(n);
                        lines.swap(i, j);
                    }
                    _ => {
                        let other = &seeds[self.below(seeds.len())];
                        let ol: Vec<&[u8]> = other.split(|&b| b == b'\n').collect();
                        let l = ol[self.below(ol.len())].to_vec();
                        lines.insert(self.below(n + 1), l);
                    }
                }
                *text = lines.join(&b'\n');
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Number,
    Str,
    Bool,
}

struct Token {
    kind: Kind,
    span: Range<usize>,
}

/// Number, string and boolean literals of TOML / JSON text (a lexer good enough to aim
/// mutations; comments and keys are not told apart).
fn tokens(text: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            while j < text.len() && text[j] != c && text[j] != b'\n' {
                if text[j] == b'\\' && c == b'"' {
                    j += 1;
                }
                j += 1;
            }
            let end = (j + 1).min(text.len());
            out.push(Token {
                kind: Kind::Str,
                span: i..end,
            });
            i = end;
        } else if c.is_ascii_digit()
            || (c == b'-' && text.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let mut j = i + 1;
            while j < text.len()
                && (text[j].is_ascii_alphanumeric() || matches!(text[j], b'.' | b'_' | b'+' | b'-'))
            {
                j += 1;
            }
            out.push(Token {
                kind: Kind::Number,
                span: i..j,
            });
            i = j;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let mut j = i + 1;
            while j < text.len() && (text[j].is_ascii_alphanumeric() || text[j] == b'_') {
                j += 1;
            }
            if matches!(&text[i..j], b"true" | b"false" | b"null") {
                out.push(Token {
                    kind: Kind::Bool,
                    span: i..j,
                });
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// A hex dump of the first `max` bytes of `data` (16 a line, offsets in hex).
pub fn hex_dump(data: &[u8], max: usize) -> String {
    let mut s = String::new();
    for (i, chunk) in data[..data.len().min(max)].chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        s.push_str(&format!("{:08x}  {:<47}  {text}\n", i * 16, hex.join(" ")));
    }
    if data.len() > max {
        s.push_str(&format!("... ({} bytes in all)\n", data.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_reproducible_and_differ() {
        let seeds = vec![b"hello world, 12 and 3.5".to_vec(), vec![0u8; 64]];
        let a = Mutator::for_case(1, "p", 7).mutate(&seeds);
        let b = Mutator::for_case(1, "p", 7).mutate(&seeds);
        assert_eq!(a, b);
        let distinct: std::collections::HashSet<Vec<u8>> = (0..200)
            .map(|i| Mutator::for_case(1, "p", i).mutate(&seeds))
            .collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
    }

    #[test]
    fn text_tokens() {
        let t = tokens(b"a = 12\nb = \"x\\\"y\" # c\nc = [1.5e3, -2]\nd = true");
        let kinds: Vec<Kind> = t.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Number,
                Kind::Str,
                Kind::Number,
                Kind::Number,
                Kind::Bool
            ]
        );
    }
}
