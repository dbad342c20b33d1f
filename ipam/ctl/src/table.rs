//! Human output: columns aligned under their headings.

/// A table: a heading row, then rows of as many cells.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Space between two columns.
const GAP: usize = 2;

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        widths
    }

    fn line(cells: &[String], widths: &[usize]) -> String {
        let mut out = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            out.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count()) + GAP;
            out.extend(std::iter::repeat_n(' ', pad));
        }
        // The last column's padding is noise at the end of a line.
        let kept = out.trim_end().len();
        out.truncate(kept);
        out.push('\n');
        out
    }

    /// The table as text, one line a row, heading first.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = Self::line(&self.header, &widths);
        for row in &self.rows {
            out.push_str(&Self::line(row, &widths));
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
    }

    #[test]
    fn an_empty_table_is_its_heading() {
        assert_eq!(Table::new(&["A", "B"]).render(), "A  B\n");
    }
}
