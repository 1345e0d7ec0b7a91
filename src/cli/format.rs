//! How the CLI prints sizes and tables, the way docker prints them.

/// The unit steps of a size.
#[derive(Debug, Clone, Copy)]
pub(super) enum Units {
    /// Powers of 1000 (`docker images`: `1.9MB`).
    Decimal,
    /// Powers of 1024 (`docker stats`: `23.54GiB`).
    Binary,
}

/// A byte count with four significant digits (Go's `%.4g`, docker's `units` package): `512B`,
/// `2.138MB`, `1.5GiB`.
pub(super) fn size(bytes: u64, units: Units) -> String {
    let (step, names) = match units {
        Units::Decimal => (1000.0, ["B", "kB", "MB", "GB", "TB"]),
        Units::Binary => (1024.0, ["B", "KiB", "MiB", "GiB", "TiB"]),
    };
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= step && unit + 1 < names.len() {
        value /= step;
        unit += 1;
    }
    let digits_before_point = if value >= 100.0 {
        3
    } else if value >= 10.0 {
        2
    } else {
        1
    };
    let text = format!("{value:.*}", 4_usize.saturating_sub(digits_before_point));
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}{}", names[unit])
}

/// Left-aligned columns separated by three spaces; the last column is not padded.
pub(super) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| if c + 1 == N { cell.clone() } else { format!("{cell:<w$}", w = widths[c]) })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(size(512, Units::Decimal), "512B");
        assert_eq!(size(2_138_112, Units::Decimal), "2.138MB");
        assert_eq!(size(1_500_000_000, Units::Decimal), "1.5GB");
        assert_eq!(size(0, Units::Binary), "0B");
        assert_eq!(size(1023, Units::Binary), "1023B");
        assert_eq!(size(1024, Units::Binary), "1KiB");
        assert_eq!(size(1536 * 1024, Units::Binary), "1.5MiB");
        assert_eq!(size(25_276_805_120, Units::Binary), "23.54GiB");
        assert_eq!(size(736 * 1024, Units::Binary), "736KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024, Units::Binary), "3GiB");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[["A".to_owned(), "B".into()], ["long".into(), "x".into()]]);
        assert_eq!(t, "A      B\nlong   x\n");
    }
}
