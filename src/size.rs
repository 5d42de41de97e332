//! Byte sizes (`1 MiB`, `512KiB`, `10MB`, `4096`) as they appear in job files.
//!
//! Binary units (`KiB`, `MiB`, `GiB`) are powers of 1024, decimal ones (`KB`, `MB`, `GB`) powers
//! of 1000, as in systemd and IEC 80000-13; a bare number is bytes. Printing chooses the largest
//! binary unit that divides the value exactly, so a size normalises to one form.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// # Errors
    ///
    /// A [`SizeError`] saying what was wrong and what is expected.
    pub fn parse(text: &str) -> Result<ByteSize, SizeError> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        if number.is_empty() {
            return Err(SizeError::NotASize(text.to_string()));
        }
        let multiplier: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(SizeError::Unit {
                    unit: other.to_string(),
                    text: text.to_string(),
                });
            }
        };
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| SizeError::TooLarge(text.to_string()))
    }
}

/// Why a text is not a [`ByteSize`]; each message ends with what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size; {EXPECTED}")]
    NotASize(String),
    #[error("unknown size unit `{unit}` in `{text}`; {EXPECTED}")]
    Unit { unit: String, text: String },
    #[error("`{0}` is too large; {EXPECTED}")]
    TooLarge(String),
}

const EXPECTED: &str = "expected a size such as `1 MiB`, `512KiB`, `10MB` or a number of bytes";

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (size, unit) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{} {unit}", n / size);
            }
        }
        write!(f, "{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_canonically() {
        for (input, bytes, printed) in [
            ("1 MiB", 1 << 20, "1 MiB"),
            ("512KiB", 512 << 10, "512 KiB"),
            ("10MB", 10_000_000, "10000000 B"),
            ("4096", 4096, "4 KiB"),
            ("2G", 2 << 30, "2 GiB"),
        ] {
            let size = ByteSize::parse(input).unwrap();
            assert_eq!(size.0, bytes, "{input}");
            assert_eq!(size.to_string(), printed, "{input}");
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        for input in ["", "MiB", "1 parsec", "99999999999999999999 GiB"] {
            assert!(ByteSize::parse(input).is_err(), "{input}");
        }
    }
}
