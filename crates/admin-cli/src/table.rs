//! Human output: columns aligned under their headings.

/// Rows of cells under a heading, each column as wide as its widest cell.
pub struct Table {
    /// The heading first.
    rows: Vec<Vec<String>>,
}

/// Spaces between two columns.
const GAP: &str = "  ";

impl Table {
    pub fn new(heading: &[&str]) -> Table {
        Table {
            rows: vec![heading.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// One line a row, heading first; no trailing blanks (the last
    /// column's padding is noise at the end of a line).
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
            out.push_str(line.join(GAP).trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_lines_end_without_spaces() {
        let mut t = Table::new(&["NODE", "USED"]);
        t.row(vec!["node-long".into(), "3".into()]);
        t.row(vec!["a".into(), "12".into()]);
        assert_eq!(t.render(), "NODE       USED\nnode-long  3\na          12\n");
        let mut t = Table::new(&["NODE", "SUBNET"]);
        t.row(vec!["node-long".into(), "10.0.0.0/24".into()]);
        t.row(vec!["a".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "NODE       SUBNET\nnode-long  10.0.0.0/24\na          -\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["äöü".into(), "x".into()]);
        assert_eq!(t.render(), "A    B\näöü  x\n");
    }

    #[test]
    fn an_empty_table_is_its_heading() {
        assert_eq!(Table::new(&["A", "B"]).render(), "A  B\n");
    }
}
