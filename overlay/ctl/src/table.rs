//! Human output: aligned columns, and durations as people read them.

/// Rows of cells under a heading, each column as wide as its widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(heading: &[&str]) -> Table {
        Table {
            rows: vec![heading.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// One line a row, columns two spaces apart, no trailing blanks.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in &self.rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// Seconds as the two largest units: `45s`, `3m12s`, `2h5m`, `4d2h`.
pub fn duration(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    for (i, (size, name)) in UNITS.iter().enumerate() {
        if secs >= *size || *size == 1 {
            let head = format!("{}{name}", secs / size);
            return match UNITS.get(i + 1) {
                Some((next, next_name)) => {
                    format!("{head}{}{next_name}", secs % size / next)
                }
                None => head,
            };
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&["NODE", "SUBNET"]);
        t.row(vec!["node-long".into(), "10.0.0.0/24".into()]);
        t.row(vec!["a".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "NODE       SUBNET\nnode-long  10.0.0.0/24\na          -\n"
        );
        assert_eq!(Table::new(&["A", "B"]).render(), "A  B\n");
    }

    #[test]
    fn durations() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m0s"),
            (192, "3m12s"),
            (3_600 * 2 + 300 + 7, "2h5m"),
            (86_400 * 4 + 3_600 * 2 + 59, "4d2h"),
        ] {
            assert_eq!(duration(secs), text, "{secs}");
        }
    }
}
