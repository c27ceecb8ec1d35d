//! Plain-text tables for the report commands (`ccgate usage`, `ccgate health`).
//!
//! Columns have fixed widths, with one flexible column that takes what the terminal leaves, so a table fits an
//! 80–100 column terminal and stays aligned whatever the names: a cell too long for its column is cut with an
//! ellipsis (in the middle for names, whose ends, like a model's date, tell them apart). Colour only when stdout is
//! a terminal and `NO_COLOR` is not set; widths are counted before colour is added.

use std::io::IsTerminal;

/// The width used when stdout is not a terminal (a pipe, a file): what most terminals show without wrapping.
pub const DEFAULT_WIDTH: usize = 100;
const MIN_WIDTH: usize = 60;
const MAX_WIDTH: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Where a cell too long for its column is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    End,
    Middle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Bold,
    Good,
    Warn,
    Bad,
    Dim,
}

impl Tone {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Bold => Some("1"),
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("31"),
            Tone::Dim => Some("2"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub title: &'static str,
    pub width: usize,
    pub align: Align,
    pub cut: Cut,
    /// Takes the width the fixed columns leave (at least `width`).
    pub flex: bool,
}

impl Column {
    pub fn left(title: &'static str, width: usize) -> Column {
        Column {
            title,
            width,
            align: Align::Left,
            cut: Cut::End,
            flex: false,
        }
    }

    pub fn right(title: &'static str, width: usize) -> Column {
        Column {
            align: Align::Right,
            ..Column::left(title, width)
        }
    }

    /// A name column: left-aligned, flexible, cut in the middle.
    pub fn name(title: &'static str, min_width: usize) -> Column {
        Column {
            cut: Cut::Middle,
            flex: true,
            ..Column::left(title, min_width)
        }
    }
}

/// A row: cells with their tone, or a free line under the previous row (indented, cut to the table's width).
enum Line {
    Cells(Vec<(String, Tone)>),
    Note(String, Tone),
}

pub struct Table {
    columns: Vec<Column>,
    lines: Vec<Line>,
}

/// How a table is written out.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub width: usize,
    pub colour: bool,
}

impl Style {
    /// For stdout: its terminal's width and colour, or [`DEFAULT_WIDTH`] and no colour when it is not a terminal.
    pub fn stdout() -> Style {
        Style {
            width: terminal_width()
                .unwrap_or(DEFAULT_WIDTH)
                .clamp(MIN_WIDTH, MAX_WIDTH),
            colour: wants_colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
        }
    }

    #[cfg(test)]
    pub fn plain(width: usize) -> Style {
        Style {
            width,
            colour: false,
        }
    }

    pub fn paint(&self, text: &str, tone: Tone) -> String {
        match (self.colour, tone.sgr()) {
            (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }
}

/// Colour for a terminal only, and not when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn wants_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The terminal's columns: `COLUMNS` if set (a user's override, or a shell that exports it), else the terminal
/// stdout is attached to.
fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return Some(n);
    }
    #[cfg(target_os = "linux")]
    {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass, which lives for the call; on a
        // descriptor that is not a terminal it fails and writes nothing.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            return Some(usize::from(ws.ws_col));
        }
    }
    None
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            lines: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.lines.push(Line::Cells(
            cells.into_iter().map(|c| (c, Tone::Plain)).collect(),
        ));
    }

    pub fn row_toned(&mut self, cells: Vec<(String, Tone)>) {
        self.lines.push(Line::Cells(cells));
    }

    /// A line of free text under the last row, indented and cut to the table's width.
    pub fn note(&mut self, text: String, tone: Tone) {
        self.lines.push(Line::Note(text, tone));
    }

    /// Column widths for a total of at most `width` (the flexible column grows to fill it).
    fn widths(&self, width: usize) -> Vec<usize> {
        let fixed: usize = self.columns.iter().map(|c| c.width).sum::<usize>()
            + self.columns.len().saturating_sub(1);
        let spare = width.saturating_sub(fixed);
        self.columns
            .iter()
            .map(|c| if c.flex { c.width + spare } else { c.width })
            .collect()
    }

    pub fn render(&self, style: Style) -> String {
        let widths = self.widths(style.width);
        let total: usize = widths.iter().sum::<usize>() + widths.len().saturating_sub(1);
        let mut out = String::new();
        let header: Vec<(String, Tone)> = self
            .columns
            .iter()
            .map(|c| (c.title.to_string(), Tone::Bold))
            .collect();
        self.push_cells(&mut out, &header, &widths, style);
        for line in &self.lines {
            match line {
                Line::Cells(cells) => self.push_cells(&mut out, cells, &widths, style),
                Line::Note(text, tone) => {
                    let text = fit(&format!("    {text}"), total, Cut::End);
                    out.push_str(&style.paint(&text, *tone));
                    out.push('\n');
                }
            }
        }
        out
    }

    fn push_cells(
        &self,
        out: &mut String,
        cells: &[(String, Tone)],
        widths: &[usize],
        style: Style,
    ) {
        let mut line = String::new();
        let last = self.columns.len().saturating_sub(1);
        for (i, (col, width)) in self.columns.iter().zip(widths).enumerate() {
            let (text, tone) = cells
                .get(i)
                .map(|(t, tone)| (t.as_str(), *tone))
                .unwrap_or(("", Tone::Plain));
            let text = fit(text, *width, col.cut);
            let pad = width.saturating_sub(display_width(&text));
            let padded = match col.align {
                // No trailing spaces after the last column.
                Align::Left if i == last => text,
                Align::Left => format!("{text}{}", " ".repeat(pad)),
                Align::Right => format!("{}{text}", " ".repeat(pad)),
            };
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&style.paint(&padded, tone));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Columns a character takes on a terminal: 2 for East Asian wide and full-width characters (tenant names in
/// Chinese, Japanese or Korean), 0 for combining marks and controls, 1 otherwise. A coarse table of the main
/// ranges, enough to keep such names aligned without a Unicode-width dependency.
fn char_width(c: char) -> usize {
    let u = u32::from(c);
    if u < 0x20 || (0x7f..0xa0).contains(&u) || (0x300..0x370).contains(&u) || u == 0x200b {
        return 0;
    }
    let wide = (0x1100..=0x115f).contains(&u)
        || (0x2e80..=0x303e).contains(&u)
        || (0x3041..=0x33ff).contains(&u)
        || (0x3400..=0x4dbf).contains(&u)
        || (0x4e00..=0x9fff).contains(&u)
        || (0xa000..=0xa4cf).contains(&u)
        || (0xac00..=0xd7a3).contains(&u)
        || (0xf900..=0xfaff).contains(&u)
        || (0xfe30..=0xfe4f).contains(&u)
        || (0xff00..=0xff60).contains(&u)
        || (0xffe0..=0xffe6).contains(&u)
        || (0x1f300..=0x1f64f).contains(&u)
        || (0x1f900..=0x1f9ff).contains(&u)
        || (0x20000..=0x3fffd).contains(&u);
    if wide {
        2
    } else {
        1
    }
}

/// Columns `text` takes on a terminal.
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// The longest start of `chars` that fits in `width` columns.
fn take_width(chars: impl Iterator<Item = char>, width: usize) -> Vec<char> {
    let mut used = 0;
    let mut out = Vec::new();
    for c in chars {
        let w = char_width(c);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// `text` in at most `width` terminal columns, cut with an ellipsis where `cut` says.
pub fn fit(text: &str, width: usize, cut: Cut) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    match cut {
        Cut::End => {
            let mut out: String = take_width(text.chars(), keep).into_iter().collect();
            out.push('…');
            out
        }
        Cut::Middle => {
            let tail_w = keep / 2;
            let head: String = take_width(text.chars(), keep - tail_w)
                .into_iter()
                .collect();
            let mut tail = take_width(text.chars().rev(), tail_w);
            tail.reverse();
            let tail: String = tail.into_iter().collect();
            format!("{head}…{tail}")
        }
    }
}

/// An integer in at most `width` characters: exact when it fits, else with a k/M/B suffix.
pub fn count(n: i64, width: usize) -> String {
    let exact = n.to_string();
    if exact.len() <= width {
        return exact;
    }
    let f = n as f64;
    for (div, suffix) in [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")] {
        if f.abs() >= div {
            let v = f / div;
            let s = if v.abs() >= 100.0 {
                format!("{v:.0}{suffix}")
            } else {
                format!("{v:.1}{suffix}")
            };
            return s;
        }
    }
    exact
}

/// Dollars: four decimals below $10 (small sums stay visible), two above.
pub fn dollars(usd: f64) -> String {
    if usd.abs() < 10.0 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_to_their_column() {
        assert_eq!(
            fit("claude-sonnet-4-5-20250929", 26, Cut::Middle),
            "claude-sonnet-4-5-20250929"
        );
        let cut = fit(
            "claude-sonnet-4-5-20250929-very-long-variant",
            20,
            Cut::Middle,
        );
        assert_eq!(display_width(&cut), 20);
        assert!(
            cut.starts_with("claude-son") && cut.ends_with("variant"),
            "{cut}"
        );
        assert_eq!(
            fit("connection refused by peer", 12, Cut::End),
            "connection …"
        );
        // Wide characters take two columns each.
        assert_eq!(fit("日本語のテナント名", 7, Cut::End), "日本語…");
        assert_eq!(display_width(&fit("日本語のテナント名", 8, Cut::Middle)), 7);
        assert_eq!(display_width("租户-一"), 7);
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(wants_colour(true, None));
        assert!(wants_colour(true, Some(OsStr::new(""))));
        assert!(!wants_colour(true, Some(OsStr::new("1"))));
        assert!(!wants_colour(false, None));
    }

    #[test]
    fn counts_fit_their_width() {
        assert_eq!(count(1234567, 7), "1234567");
        assert_eq!(count(12345678, 7), "12.3M");
        assert_eq!(count(987654321012, 7), "988B");
        assert_eq!(dollars(0.12345), "$0.1235");
        assert_eq!(dollars(1234.5), "$1234.50");
    }

    #[test]
    fn rows_stay_aligned_within_the_width_and_colour_only_when_asked() {
        let mut t = Table::new(vec![
            Column::name("MODEL", 10),
            Column::right("REQUESTS", 8),
            Column::right("COST", 9),
        ]);
        t.row(vec!["short".into(), "1".into(), "$0.0001".into()]);
        t.row(vec![
            "家庭成员的密钥很长很长很长".into(),
            "2".into(),
            "$1.00".into(),
        ]);
        t.row_toned(vec![
            (
                "a-very-long-model-name-that-goes-on-and-on-and-on-forever".into(),
                Tone::Plain,
            ),
            ("123456".into(), Tone::Warn),
            ("$12.00".into(), Tone::Plain),
        ]);
        t.note("last error: ".to_string() + &"x".repeat(200), Tone::Bad);
        let plain = t.render(Style::plain(40));
        for line in plain.lines() {
            assert!(display_width(line) <= 40, "{line:?}");
        }
        let rows: Vec<&str> = plain.lines().take(4).collect();
        // Right-aligned columns end at the same place, wide characters included.
        assert!(rows.iter().all(|r| display_width(r) == 40), "{plain}");
        assert!(!plain.contains('\x1b'));
        let coloured = t.render(Style {
            width: 40,
            colour: true,
        });
        assert!(coloured.contains("\x1b[33m"));
    }
}
