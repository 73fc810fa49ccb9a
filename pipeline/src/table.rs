//! Tables for a terminal: one header per column, numbers right-aligned
//! (comfy-table), as every table-printing command shows them.

use comfy_table::{CellAlignment, ColumnConstraint, Table, TableComponent, presets};

/// `rows` under `headers`, columns separated by `|`, a rule under the
/// headers; a column whose cells are all numbers (or `a/b` counts, or
/// percentages) is right-aligned.
///
/// ```
/// let t = bellwether::table::render(&["vm", "score"], vec![vec!["vm-1".into(), "0.25".into()]]);
/// assert!(t.lines().next().unwrap().contains("vm") && t.contains("0.25"));
/// ```
pub fn render(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::ASCII_NO_BORDERS)
        .set_header(headers.iter().copied());
    // A rule under the headers only, not between rows.
    for c in [
        TableComponent::HorizontalLines,
        TableComponent::MiddleIntersections,
        TableComponent::LeftBorderIntersections,
        TableComponent::RightBorderIntersections,
    ] {
        table.remove_style(c);
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|c| {
            rows.iter().all(|r| {
                r.get(c).is_none_or(|cell| {
                    let s = cell.trim_end_matches('%');
                    s.is_empty()
                        || s == "-"
                        || s.split('/').all(|part| part.trim().parse::<f64>().is_ok())
                })
            })
        })
        .collect();
    for row in rows {
        table.add_row(row);
    }
    for (c, column) in table.column_iter_mut().enumerate() {
        // Ids are never wrapped: a table wider than the terminal scrolls.
        column.set_constraint(ColumnConstraint::ContentWidth);
        if c == 0 {
            // Flush left, as the terminal's other output.
            column.set_padding((0, 1));
        }
        if numeric.get(c).copied().unwrap_or(false) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}
