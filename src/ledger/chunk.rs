//! The output chunk codec: how a run of consecutive output lines is packed into one ledger row.
//!
//! Pure: bytes in, lines out. It knows nothing of SQLite, of where a chunk sits in a run (its
//! first line number, its row) or of when a chunk is sealed; `ledger::output` decides that.
//!
//! A chunk's *raw* form is, per line, in order:
//!
//! ```text
//! varint  zigzag(at_ms - previous at_ms)   the first line's previous is the chunk's base
//! varint  text length * 2 + (1 if stderr)
//! bytes   the text (UTF-8, without its newline)
//! ```
//!
//! Lines of one run come a few per millisecond at most, so a time costs one byte. A chunk is
//! stored either raw ([`Codec::Plain`], the small open tail of a live run) or zstd-compressed
//! ([`Codec::Zstd`], level [`LEVEL`]).

/// A chunk is sealed once its raw form reaches this size...
pub const CHUNK_BYTES: usize = 64 * 1024;
/// ...or holds this many lines.
pub const CHUNK_LINES: usize = 4096;
/// zstd's level: level 3 compresses log text ~5-10× at several hundred MB/s; higher levels
/// buy a few percent for several times the CPU.
pub const LEVEL: i32 = 3;

/// One output line inside a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLine {
    /// When it was read, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub stderr: bool,
    pub text: String,
}

impl ChunkLine {
    pub fn stream(&self) -> &'static str {
        if self.stderr { "stderr" } else { "stdout" }
    }

    /// The bytes this line adds to a chunk's raw form.
    pub fn raw_len(&self) -> usize {
        let len = self.text.len() as u64 * 2 + 1;
        varint_len(zigzag(0)) + varint_len(len) + self.text.len()
    }
}

/// How a chunk's payload is stored: the `codec` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Plain = 0,
    Zstd = 1,
}

impl Codec {
    pub fn from_column(value: i64) -> Result<Codec, ChunkError> {
        match value {
            0 => Ok(Codec::Plain),
            1 => Ok(Codec::Zstd),
            other => Err(ChunkError(format!("unknown codec {other}"))),
        }
    }
}

/// A chunk that cannot be read: the ledger was damaged or written by something else.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChunkError(pub String);

/// The raw form of `lines`, times relative to `base_ms`.
pub fn encode(base_ms: i64, lines: &[ChunkLine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(ChunkLine::raw_len).sum());
    let mut previous = base_ms;
    for line in lines {
        put_varint(&mut out, zigzag(line.at_ms.wrapping_sub(previous)));
        previous = line.at_ms;
        put_varint(
            &mut out,
            line.text.len() as u64 * 2 + u64::from(line.stderr),
        );
        out.extend_from_slice(line.text.as_bytes());
    }
    out
}

/// The lines of a raw chunk. Text that is not UTF-8 (never written by `jobs`, whose runner
/// replaces invalid sequences with U+FFFD) is read the same lossy way rather than refused.
///
/// # Errors
///
/// When the bytes end inside a line, or a length runs past them.
pub fn decode(base_ms: i64, raw: &[u8]) -> Result<Vec<ChunkLine>, ChunkError> {
    let mut lines = Vec::new();
    let mut rest = raw;
    let mut previous = base_ms;
    while !rest.is_empty() {
        let delta = unzigzag(take_varint(&mut rest)?);
        let at_ms = previous.wrapping_add(delta);
        previous = at_ms;
        let head = take_varint(&mut rest)?;
        let len = usize::try_from(head / 2)
            .ok()
            .filter(|&len| len <= rest.len())
            .ok_or_else(|| ChunkError(format!("line {} runs past the chunk", lines.len() + 1)))?;
        let (text, tail) = rest.split_at(len);
        rest = tail;
        let text = match String::from_utf8(text.to_vec()) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        lines.push(ChunkLine {
            at_ms,
            stderr: head & 1 == 1,
            text,
        });
    }
    Ok(lines)
}

/// The payload to store for a raw chunk under `codec`.
pub fn pack(codec: Codec, raw: Vec<u8>) -> Vec<u8> {
    match codec {
        Codec::Plain => raw,
        Codec::Zstd => zstd::bulk::compress(&raw, LEVEL).expect("compressing memory to memory"),
    }
}

/// A stored payload's raw form.
///
/// # Errors
///
/// When a zstd payload does not decompress.
pub fn unpack(codec: Codec, payload: Vec<u8>) -> Result<Vec<u8>, ChunkError> {
    match codec {
        Codec::Plain => Ok(payload),
        Codec::Zstd => zstd::stream::decode_all(payload.as_slice())
            .map_err(|e| ChunkError(format!("zstd: {e}"))),
    }
}

/// Splits `lines` into chunks within [`CHUNK_BYTES`] and [`CHUNK_LINES`], in order. A line
/// larger than a chunk is a chunk of its own.
pub fn split(lines: Vec<ChunkLine>) -> Vec<Vec<ChunkLine>> {
    let mut chunks = Vec::new();
    let mut current: Vec<ChunkLine> = Vec::new();
    let mut bytes = 0;
    for line in lines {
        let len = line.raw_len();
        if !current.is_empty() && (current.len() == CHUNK_LINES || bytes + len > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(line);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Whether a chunk of `lines` lines and `bytes` raw bytes is full: it is then sealed.
pub fn is_full(lines: usize, bytes: usize) -> bool {
    lines >= CHUNK_LINES || bytes >= CHUNK_BYTES
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, ChunkError> {
    let mut value = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Ok(value);
        }
    }
    Err(ChunkError("a number runs past the chunk".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_780_000_000_000;

    fn line(offset: i64, stderr: bool, text: &str) -> ChunkLine {
        ChunkLine {
            at_ms: BASE + offset,
            stderr,
            text: text.to_string(),
        }
    }

    /// Encodes, packs under both codecs, unpacks and decodes: the lines come back as given.
    fn check(lines: &[ChunkLine]) {
        for codec in [Codec::Plain, Codec::Zstd] {
            let raw = encode(BASE, lines);
            assert_eq!(
                raw.len(),
                lines.iter().map(|l| l.raw_len()).sum::<usize>() + extra(lines)
            );
            let back = decode(BASE, &unpack(codec, pack(codec, raw)).unwrap()).unwrap();
            assert_eq!(back, lines, "{codec:?}");
        }
    }

    /// `raw_len` counts a one-byte time; a larger step between lines costs more.
    fn extra(lines: &[ChunkLine]) -> usize {
        let mut previous = BASE;
        lines
            .iter()
            .map(|l| {
                let d = varint_len(zigzag(l.at_ms - previous)) - 1;
                previous = l.at_ms;
                d
            })
            .sum()
    }

    #[test]
    fn chunks_round_trip() {
        let long = "x".repeat(64 * 1024);
        let utf8 = "grüße, 日本語, 🦀";
        let replaced = String::from_utf8_lossy(b"bad \xff\xfe bytes").into_owned();
        let cases: Vec<(&str, Vec<ChunkLine>)> = vec![
            ("no lines", vec![]),
            ("one empty line", vec![line(0, false, "")]),
            (
                "empty lines",
                vec![line(0, false, ""), line(0, true, ""), line(1, false, "")],
            ),
            ("a long line", vec![line(0, false, &long)]),
            ("multi-byte text", vec![line(3, true, utf8)]),
            (
                "text the runner made valid",
                vec![line(0, false, &replaced)],
            ),
            (
                "streams mixed, times out of order",
                vec![
                    line(0, false, "out 1"),
                    line(0, true, "err 1"),
                    line(5, false, "out 2"),
                    line(2, true, "err 2: a clock step back"),
                    line(86_400_000, false, "a day later"),
                ],
            ),
            ("before the base", vec![line(-1000, false, "early")]),
        ];
        for (name, lines) in cases {
            eprintln!("case: {name}");
            check(&lines);
        }
    }

    #[test]
    fn invalid_utf8_in_a_chunk_is_read_lossily() {
        let mut raw = Vec::new();
        put_varint(&mut raw, zigzag(0));
        put_varint(&mut raw, 2 * 2);
        raw.extend_from_slice(b"\xffA");
        let lines = decode(BASE, &raw).unwrap();
        assert_eq!(lines[0].text, "\u{fffd}A");
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let raw = encode(BASE, &[line(0, false, "hello"), line(1, true, "world")]);
        for cut in 1..raw.len() {
            // Every prefix either decodes to whole lines or is refused.
            if let Ok(lines) = decode(BASE, &raw[..cut]) {
                assert!(lines.len() < 2, "cut at {cut}");
            }
        }
        assert!(decode(BASE, &[0x80]).is_err());
        assert!(decode(BASE, &[0, 200]).is_err());
        assert!(unpack(Codec::Zstd, b"not zstd".to_vec()).is_err());
        assert!(Codec::from_column(7).is_err());
    }

    #[test]
    fn splitting_respects_both_limits_and_keeps_order() {
        let many: Vec<ChunkLine> = (0..CHUNK_LINES + 10)
            .map(|i| line(0, false, &i.to_string()))
            .collect();
        let chunks = split(many.clone());
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [CHUNK_LINES, 10]
        );
        assert_eq!(chunks.concat(), many);

        let wide: Vec<ChunkLine> = (0..5)
            .map(|_| line(0, false, &"y".repeat(30_000)))
            .collect();
        let chunks = split(wide);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);

        let huge = vec![
            line(0, false, &"z".repeat(CHUNK_BYTES * 2)),
            line(0, false, "after"),
        ];
        assert_eq!(split(huge).iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        assert!(split(Vec::new()).is_empty());
    }

    #[test]
    fn log_text_compresses_and_random_text_does_not_grow_much() {
        let text: Vec<ChunkLine> = (0..1000)
            .map(|i| {
                line(
                    i / 10,
                    i % 7 == 0,
                    &format!(
                        "2026-01-01T00:00:{:02}Z INFO request id={i} path=/api/v1/items status=200",
                        i % 60
                    ),
                )
            })
            .collect();
        let raw = encode(BASE, &text);
        let packed = pack(Codec::Zstd, raw.clone());
        assert!(
            packed.len() * 4 < raw.len(),
            "{} of {}",
            packed.len(),
            raw.len()
        );

        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let random: Vec<ChunkLine> = (0..600)
            .map(|_| {
                let text: String = (0..76)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % 64) as usize] as char
                    })
                    .collect();
                line(0, false, &text)
            })
            .collect();
        let raw = encode(BASE, &random);
        let text_bytes: usize = random.iter().map(|l| l.text.len() + 1).sum();
        let packed = pack(Codec::Zstd, raw);
        assert!(
            packed.len() < text_bytes,
            "{} of {text_bytes}",
            packed.len()
        );
    }
}
