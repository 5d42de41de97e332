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
    /// A message saying what was wrong and what is expected.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        const EXPECTED: &str =
            "expected a size such as `1 MiB`, `512KiB`, `10MB` or a number of bytes";
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        if number.is_empty() {
            return Err(format!("`{text}` is not a size; {EXPECTED}"));
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
                return Err(format!(
                    "unknown size unit `{other}` in `{text}`; {EXPECTED}"
                ));
            }
        };
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large; {EXPECTED}"))
    }
}

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
