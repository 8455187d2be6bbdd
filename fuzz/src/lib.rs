//! What the fuzz targets share. Each door into the server (segment decode and analysis, the
//! JSON receivers, MQE, OAL, the config loader) has a target, `tests/fuzz_<door>.rs` in the crate
//! it exercises, built on proptest because only the stable toolchain is at hand (libFuzzer
//! wants nightly). A target:
//!
//! 1. replays its [`Corpus`] — the committed seeds of `tests/fuzz-corpus/<door>/` and the real
//!    inputs the project ships (fixtures, `core.oal`, `application.yml`) — every run;
//! 2. runs random inputs ([`random_bytes`], [`token_soup`]) and [`mutations`] of the corpus: bit
//!    flips, truncation, splices of two seeds, repeated chunks, inserted tokens, deep nesting,
//!    long runs and huge numbers.
//!
//! The property is the same for every door: the input is taken or refused with an error, never
//! a panic, a stack overflow (which aborts the test binary) or a case slower than
//! [`TIME_LIMIT`]. The number of cases is `PROPTEST_CASES` when it is set, else each target's
//! modest default, so CI runs every target in a few seconds; run one longer by hand with, e.g.,
//! `PROPTEST_CASES=1000000 cargo nextest run -p oap-query --test fuzz_mqe`.
//!
//! A failure proptest finds is kept in `tests/fuzz_<door>.proptest-regressions` (commit it);
//! once the bug is fixed, the input also goes into the corpus directory, so that it is replayed
//! by name.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};

/// The longest one case may take: far above what any input of a few hundred KiB needs, so that
/// only a hang or a quadratic blow-up fails.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// No mutated input grows past this many bytes.
pub const MAX_INPUT: usize = 1 << 20;

/// The number of cases: `PROPTEST_CASES` when it is set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(default)
}

/// A proptest configuration of [`cases`]`(default)` cases.
pub fn config(default: u32) -> Config {
    Config { cases: cases(default), ..Config::default() }
}

/// Runs `test` on [`cases`]`(default)` values of `strategy`, as `proptest!` does — failures
/// persisted beside `source_file` (pass `file!()`), then shrunk and reported — but as a plain
/// function, so a target sets up what it needs (a store, a runtime) once for every case.
pub fn fuzz<S: Strategy>(
    source_file: &'static str,
    default: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config { source_file: Some(source_file), ..config(default) };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
}

/// One seed input, named by where it came from.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The file (and line) it was read from.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The seed inputs of a target.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    seeds: Vec<Seed>,
}

impl Corpus {
    /// An empty corpus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every file of `dir`, in name order; a `README.md` there describes the corpus and is no seed.
    pub fn dir(self, dir: impl AsRef<Path>) -> Self {
        self.dir_with(dir, |_, bytes| vec![bytes])
    }

    /// The seeds `each` makes of every file of `dir` (its path and bytes), in name order; a
    /// `README.md` there is no seed. So a corpus keeps seeds in a readable form (JSON, lines).
    pub fn dir_with(mut self, dir: impl AsRef<Path>, each: impl Fn(&Path, Vec<u8>) -> Vec<Vec<u8>>) -> Self {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("corpus {}: {error}", dir.display()));
        let mut paths: Vec<_> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|path| path.is_file() && !path.ends_with("README.md")) {
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("seed {}: {error}", path.display()));
            let seeds = each(&path, bytes);
            let many = seeds.len() > 1;
            for (number, bytes) in (1..).zip(seeds) {
                let name = if many { format!("{}#{number}", path.display()) } else { path.display().to_string() };
                self = self.seed(name, bytes);
            }
        }
        self
    }

    /// One file.
    pub fn file(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("seed {}: {error}", path.display()));
        self.seed(path.display().to_string(), bytes)
    }

    /// Each non-empty line of a file, transformed by `each` (which may drop a line).
    pub fn lines(mut self, path: impl AsRef<Path>, each: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Self {
        let path = path.as_ref();
        let text = std::fs::read(path).unwrap_or_else(|error| panic!("seed {}: {error}", path.display()));
        for (number, line) in text.split(|byte| *byte == b'\n').enumerate() {
            if let Some(bytes) = Some(line).filter(|line| !line.is_empty()).and_then(&each) {
                self = self.seed(format!("{}:{}", path.display(), number + 1), bytes);
            }
        }
        self
    }

    /// One seed made in code.
    pub fn seed(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.seeds.push(Seed { name: name.into(), bytes: bytes.into() });
        self
    }

    /// The seeds.
    pub fn seeds(&self) -> &[Seed] {
        &self.seeds
    }

    /// Runs `check` on every seed; a seed that panics or takes longer than [`TIME_LIMIT`]
    /// fails the test, after every other seed ran. Returns how many seeds ran.
    pub fn replay(&self, check: impl Fn(&[u8])) -> usize {
        assert!(!self.seeds.is_empty(), "the corpus has seeds");
        let mut failed = Vec::new();
        for seed in &self.seeds {
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&seed.bytes)));
            if outcome.is_err() {
                failed.push(format!("{} panicked", seed.name));
            } else if started.elapsed() > TIME_LIMIT {
                failed.push(format!("{} took {:?}", seed.name, started.elapsed()));
            }
        }
        assert!(failed.is_empty(), "seeds failed:\n{}", failed.join("\n"));
        self.seeds.len()
    }
}

/// Pieces of a door's language that mutations insert: tokens (keywords, operators, huge
/// numbers, escapes) and bracket pairs to nest.
#[derive(Debug, Clone, Copy)]
pub struct Dictionary {
    /// Tokens inserted whole.
    pub tokens: &'static [&'static str],
    /// Tokens that are not text (protobuf keys and varints), inserted whole too.
    pub binary: &'static [&'static [u8]],
    /// Opening and closing brackets, nested many times over.
    pub nests: &'static [(&'static str, &'static str)],
}

/// Numbers that break naive parsing: past every integer width, out of float range, negative zero.
pub const HOSTILE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e400",
    "0.000000000000000000000000000001",
    "4294967296",
];

/// An input, with where it came from; its `Debug` is short whatever its size.
#[derive(Clone)]
pub struct Input {
    /// The seed it was mutated from, or how it was made.
    pub origin: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Input {
    /// The bytes as text, invalid UTF-8 replaced (for doors that only ever see text).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 400;
        let shown = &self.bytes[..self.bytes.len().min(SHOWN)];
        write!(formatter, "{} ({} bytes): {:?}", self.origin, self.bytes.len(), String::from_utf8_lossy(shown))?;
        if self.bytes.len() > SHOWN { formatter.write_str("…") } else { Ok(()) }
    }
}

/// Runs one case: a failure when it takes longer than [`TIME_LIMIT`] (a panic fails it anyway).
pub fn within_time_limit(case: impl FnOnce()) -> Result<(), TestCaseError> {
    let started = Instant::now();
    case();
    let elapsed = started.elapsed();
    if elapsed > TIME_LIMIT { Err(TestCaseError::fail(format!("the case took {elapsed:?}"))) } else { Ok(()) }
}

/// Random bytes, up to 4 KiB.
pub fn random_bytes() -> impl Strategy<Value = Input> {
    proptest::collection::vec(any::<u8>(), 0..4096).prop_map(|bytes| Input { origin: "random bytes".to_owned(), bytes })
}

/// Tokens of the dictionary and random printable runs, one after the other: text that gets
/// past a lexer far more often than random bytes do.
pub fn token_soup(dictionary: &Dictionary) -> impl Strategy<Value = Input> + use<> {
    let tokens = dictionary.tokens;
    let piece = prop_oneof![
        4 => proptest::sample::select(tokens).prop_map(str::to_owned),
        1 => proptest::sample::select(HOSTILE_NUMBERS).prop_map(str::to_owned),
        1 => "[ -~]{0,8}",
        1 => Just(" ".to_owned()),
    ];
    proptest::collection::vec(piece, 0..64)
        .prop_map(|pieces| Input { origin: "token soup".to_owned(), bytes: pieces.concat().into_bytes() })
}

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flips one bit.
    Flip { at: Index, bit: u8 },
    /// Overwrites one byte.
    Set { at: Index, byte: u8 },
    /// Inserts random bytes.
    Insert { at: Index, bytes: Vec<u8> },
    /// Removes a run of bytes.
    Remove { at: Index, len: usize },
    /// Cuts the input short.
    Truncate { at: Index },
    /// Inserts a chunk of another seed.
    Splice { at: Index, seed: Index, from: Index, len: usize },
    /// Repeats a chunk of the input many times over.
    Repeat { at: Index, len: usize, times: usize },
    /// Inserts a token of the dictionary or a hostile number.
    Token { at: Index, token: Index, number: bool },
    /// Inserts brackets nested `depth` deep, closed or left open.
    Nest { at: Index, pair: Index, depth: usize, closed: bool },
    /// Inserts a long run of one byte.
    Long { at: Index, byte: u8, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        4 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        3 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        3 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), 1..256usize)
            .prop_map(|(at, seed, from, len)| Mutation::Splice { at, seed, from, len }),
        1 => (any::<Index>(), 1..32usize, 2..2000usize).prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        4 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(at, token, number)| Mutation::Token { at, token, number }),
        1 => (any::<Index>(), any::<Index>(), prop_oneof![3 => 1..200usize, 1 => 200..20_000usize], any::<bool>())
            .prop_map(|(at, pair, depth, closed)| Mutation::Nest { at, pair, depth, closed }),
        1 => (any::<Index>(), any::<u8>(), prop_oneof![1..1000usize, 1000..100_000usize])
            .prop_map(|(at, byte, len)| Mutation::Long { at, byte, len }),
    ]
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>, seeds: &[Seed], dictionary: &Dictionary) {
        let insert = |bytes: &mut Vec<u8>, at: &Index, piece: &[u8]| {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, piece.iter().copied());
        };
        match self {
            Mutation::Flip { at, bit } if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
            Mutation::Set { at, byte } if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            Mutation::Insert { at, bytes: piece } => insert(bytes, at, piece),
            Mutation::Remove { at, len } if !bytes.is_empty() => {
                let start = at.index(bytes.len());
                bytes.drain(start..(start + len).min(bytes.len()));
            }
            Mutation::Truncate { at } => bytes.truncate(at.index(bytes.len() + 1)),
            Mutation::Splice { at, seed, from, len } => {
                let other = &seeds[seed.index(seeds.len())].bytes;
                if !other.is_empty() {
                    let start = from.index(other.len());
                    insert(bytes, at, &other[start..(start + len).min(other.len())]);
                }
            }
            Mutation::Repeat { at, len, times } if !bytes.is_empty() => {
                let start = at.index(bytes.len());
                let chunk = bytes[start..(start + len).min(bytes.len())].to_vec();
                let repeated = chunk.repeat(*times);
                bytes.splice(start..start, repeated);
            }
            Mutation::Token { at, token, number } => {
                let (text, binary) = (dictionary.tokens, dictionary.binary);
                let pick = token.index(text.len() + binary.len());
                let piece = match () {
                    () if *number || text.len() + binary.len() == 0 => {
                        HOSTILE_NUMBERS[token.index(HOSTILE_NUMBERS.len())].as_bytes()
                    }
                    () if pick < text.len() => text[pick].as_bytes(),
                    () => binary[pick - text.len()],
                };
                insert(bytes, at, piece);
            }
            Mutation::Nest { at, pair, depth, closed } if !dictionary.nests.is_empty() => {
                let (open, close) = dictionary.nests[pair.index(dictionary.nests.len())];
                let mut nested = open.repeat(*depth);
                if *closed {
                    nested.push_str(&close.repeat(*depth));
                }
                insert(bytes, at, nested.as_bytes());
            }
            Mutation::Long { at, byte, len } => insert(bytes, at, &vec![*byte; *len]),
            _ => {}
        }
        bytes.truncate(MAX_INPUT);
    }
}

/// A seed of `corpus` changed by one to eight [`Mutation`]s, tokens and brackets taken from
/// `dictionary`.
pub fn mutations(corpus: &Corpus, dictionary: &Dictionary) -> impl Strategy<Value = Input> + use<> {
    assert!(!corpus.seeds.is_empty(), "mutations need seeds");
    let seeds: Arc<[Seed]> = corpus.seeds.clone().into();
    let dictionary = *dictionary;
    (any::<Index>(), proptest::collection::vec(mutation(), 1..8)).prop_map(move |(seed, mutations)| {
        let seed = &seeds[seed.index(seeds.len())];
        let mut bytes = seed.bytes.clone();
        for mutation in &mutations {
            mutation.apply(&mut bytes, &seeds, &dictionary);
        }
        Input { origin: format!("{} mutated", seed.name), bytes }
    })
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    const DICTIONARY: Dictionary = Dictionary { tokens: &["avg("], binary: &[b"\xff"], nests: &[("(", ")")] };

    #[test]
    fn mutations_change_the_seeds_and_stay_within_the_size_limit() {
        let corpus = Corpus::new().seed("a", b"service_cpm + 1".to_vec()).seed("b", b"".to_vec());
        let strategy = mutations(&corpus, &DICTIONARY);
        let mut runner = TestRunner::deterministic();
        let mut changed = 0;
        for _ in 0..500 {
            let input = strategy.new_tree(&mut runner).expect("a value").current();
            assert!(input.bytes.len() <= MAX_INPUT);
            changed += usize::from(input.bytes != b"service_cpm + 1" && !input.bytes.is_empty());
        }
        assert!(changed > 250, "{changed} of 500 changed");
    }

    #[test]
    fn the_debug_form_is_short_whatever_the_input() {
        let input = Input { origin: "long".to_owned(), bytes: vec![b'('; 100_000] };
        assert!(format!("{input:?}").len() < 500);
    }

    #[test]
    fn a_corpus_reads_a_directory_and_the_lines_of_a_file() {
        let dir = std::env::temp_dir().join(format!("oap-fuzz-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("README.md"), "not a seed").expect("write");
        std::fs::write(dir.join("one"), "1").expect("write");
        std::fs::write(dir.join("lines"), "a\n\nb\n").expect("write");
        let corpus = Corpus::new().dir(&dir).lines(dir.join("lines"), |line| Some(line.to_vec()));
        let names: Vec<_> = corpus.seeds().iter().map(|seed| seed.bytes.clone()).collect();
        assert_eq!(names, [b"a\n\nb\n".to_vec(), b"1".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(corpus.replay(|_| {}), 4);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
