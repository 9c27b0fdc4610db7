//! The per-layer report of a run: a fixed-width text table for the terminal, and a self-contained HTML page
//! (or an SVG chart alone) for people who would rather look at a picture.
//!
//! The report only formats what it is given: one [`LayerRow`] per engine layer or host operator, and a
//! [`RunSummary`] with the run's totals and context. Whoever ran the model fills them in (see
//! [`RunSummary::from_rows`] for totals computed from the rows).
//!
//! Layer names come from user model files, so every piece of text is escaped for HTML/XML (and stripped of
//! characters XML cannot carry), and control characters are replaced in the terminal table so that a
//! model cannot send escape sequences to the user's terminal.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// One layer (engine layer or host operator) of a run, as the report shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// Node name (fused layers: the first node's name); shown as the layer's label.
    pub name: String,
    /// The operator or fused operator chain, e.g. "Conv+Add+Relu", "MaxPool".
    pub op: String,
    /// Whether the layer ran on the engine (true) or on the host (false).
    pub engine: bool,
    /// Host layers: why the layer ran on the host; engine layers: a short shape, e.g. "M=3136 K=576 N=64".
    pub note: String,
    /// Multiply-accumulates the layer needs (0 for host operators without MACs).
    pub macs: u64,
    /// Modelled engine cycles (0 on the host).
    pub cycles: u64,
    /// MAC utilisation of the array, 0..=1 (engine layers; `None` where it does not apply).
    pub utilisation: Option<f64>,
    /// SQNR of the layer's output against the f32 reference, in dB (`None` when not measured).
    pub sqnr_db: Option<f64>,
    /// Largest |engine − f32| over the layer's output (`None` when not measured).
    pub max_abs_err: Option<f32>,
}

/// Totals and context printed above the table / in the page header.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// What ran, e.g. "ResNet-50 on coffee.png"; the page title and the table's first line.
    pub title: String,
    /// The engine configuration, e.g. "16x16-msfp16".
    pub config: String,
    /// The engine clock in MHz, used to turn modelled cycles into a latency.
    pub clock_mhz: f64,
    /// Modelled engine cycles of the whole run.
    pub total_cycles: u64,
    /// Multiply-accumulates of the whole run (engine and host layers).
    pub total_macs: u64,
    /// How many layers ran on the engine.
    pub engine_layers: usize,
    /// How many layers ran on the host.
    pub host_layers: usize,
    /// MACs the array performs per cycle at full utilisation (rows × columns), for the weighted utilisation.
    pub macs_per_cycle: u64,
}

impl RunSummary {
    /// A summary whose totals (cycles, MACs, engine and host layer counts) are computed from `rows`, so that
    /// the header always agrees with the table. Sums saturate rather than overflow.
    pub fn from_rows(
        title: impl Into<String>,
        config: impl Into<String>,
        clock_mhz: f64,
        macs_per_cycle: u64,
        rows: &[LayerRow],
    ) -> RunSummary {
        RunSummary {
            title: title.into(),
            config: config.into(),
            clock_mhz,
            total_cycles: rows.iter().fold(0u64, |a, r| a.saturating_add(r.cycles)),
            total_macs: rows.iter().fold(0u64, |a, r| a.saturating_add(r.macs)),
            engine_layers: rows.iter().filter(|r| r.engine).count(),
            host_layers: rows.iter().filter(|r| !r.engine).count(),
            macs_per_cycle,
        }
    }

    /// Modelled latency of `total_cycles` at `clock_mhz`, in milliseconds; `None` when the clock is not a
    /// positive finite frequency (a latency could not mean anything then).
    pub fn latency_ms(&self) -> Option<f64> {
        (self.clock_mhz.is_finite() && self.clock_mhz > 0.0).then(|| self.total_cycles as f64 / (self.clock_mhz * 1e3))
    }
}

/// MAC utilisation of the array over the engine layers, weighted by their cycles:
/// Σ macs / (Σ cycles × `macs_per_cycle`). Host layers are ignored. `None` when there is no engine cycle to
/// weigh or `macs_per_cycle` is 0.
pub fn weighted_utilisation(rows: &[LayerRow], macs_per_cycle: u64) -> Option<f64> {
    let (macs, cycles) = rows
        .iter()
        .filter(|r| r.engine)
        .fold((0u128, 0u128), |(m, c), r| (m + u128::from(r.macs), c + u128::from(r.cycles)));
    let capacity = cycles * u128::from(macs_per_cycle);
    (capacity > 0).then(|| macs as f64 / capacity as f64)
}

// ---------------------------------------------------------------------------------------------------------
// Number and text formatting shared by the table, the chart and the page.

/// `n` in human units with one decimal: 999, 1.0k, 115.6M, 4.1G, ….
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if n < 1000 {
        return n.to_string();
    }
    let mut div = 1000.0f64;
    for (i, unit) in UNITS.iter().enumerate() {
        let v = n as f64 / div;
        if v < 999.95 || i == UNITS.len() - 1 {
            return format!("{v:.1}{unit}");
        }
        div *= 1000.0;
    }
    unreachable!("the last unit always returns")
}

/// `n` with thousands separators: 1,234,567.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage with one decimal, or "-".
fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

/// An SQNR in dB with one decimal ("inf" for an exact output), or "-".
fn decibels(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_infinite() && v > 0.0 => "inf".into(),
        Some(v) => format!("{v:.1}"),
    }
}

/// An error magnitude in scientific notation, or "-".
fn error_magnitude(v: Option<f32>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2e}"))
}

/// "engine" or "host".
fn place(row: &LayerRow) -> &'static str {
    if row.engine {
        "engine"
    } else {
        "host"
    }
}

/// Text safe to print on a terminal: control characters (escape sequences, newlines, …) become '?'.
fn terminal_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// At most `max` characters of `s`; a longer text keeps its start and (the larger part) its end around a
/// '…', since layer names usually differ near their end ("/features.12/block/conv1/Conv").
fn truncate(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(count - tail));
    out
}

/// Text escaped for HTML/XML content and attribute values; characters XML 1.0 cannot carry become U+FFFD.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The totals sentence shared by the table's last line and the page header.
fn totals_line(summary: &RunSummary, rows: &[LayerRow]) -> String {
    let latency = summary.latency_ms().map_or_else(
        || format!("latency n/a (clock {} MHz)", summary.clock_mhz),
        |ms| format!("{ms:.3} ms at {} MHz", summary.clock_mhz),
    );
    let util = weighted_utilisation(rows, summary.macs_per_cycle)
        .map_or_else(|| "n/a".to_string(), |u| format!("{:.1}%", u * 100.0));
    format!(
        "total: {} cycles = {latency}; {} MACs; utilisation {util} over engine layers ({} MACs/cycle); \
         {} engine layers, {} host layers",
        grouped(summary.total_cycles),
        human(summary.total_macs),
        summary.macs_per_cycle,
        summary.engine_layers,
        summary.host_layers
    )
}

/// The first line of the table / the page's subtitle: configuration and clock.
fn context_line(summary: &RunSummary) -> String {
    format!("engine {} at {} MHz", summary.config, summary.clock_mhz)
}

// ---------------------------------------------------------------------------------------------------------
// The text table.

/// Longest layer name and operator the text table shows before cutting them with '…'.
const TABLE_NAME_MAX: usize = 40;
const TABLE_OP_MAX: usize = 24;

/// The report as a fixed-width text table for a terminal: a title line, one line per layer (columns #,
/// layer, op, where, MACs, cycles, util %, SQNR dB, max|err|, note) and a totals line (total cycles, modelled
/// latency at the clock, weighted utilisation over engine layers, engine vs host layer counts).
pub fn table(summary: &RunSummary, rows: &[LayerRow]) -> String {
    const HEAD: [&str; 10] = ["#", "layer", "op", "where", "MACs", "cycles", "util %", "SQNR dB", "max|err|", "note"];
    // Right-aligned (numeric) columns.
    const RIGHT: [bool; 10] = [true, false, false, false, true, true, true, true, true, false];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            [
                (i + 1).to_string(),
                truncate(&terminal_text(&r.name), TABLE_NAME_MAX),
                truncate(&terminal_text(&r.op), TABLE_OP_MAX),
                place(r).to_string(),
                human(r.macs),
                grouped(r.cycles),
                percent(r.utilisation),
                decibels(r.sqnr_db),
                error_magnitude(r.max_abs_err),
                terminal_text(&r.note),
            ]
        })
        .collect();
    let mut width: [usize; 10] = HEAD.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 10]| -> String {
        let mut out = String::new();
        for (k, c) in cols.iter().enumerate() {
            if k > 0 {
                out.push_str("  ");
            }
            let pad = width[k].saturating_sub(c.chars().count());
            if k == 9 {
                out.push_str(c); // the last column is not padded
            } else if RIGHT[k] {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", terminal_text(&summary.title));
    let _ = writeln!(out, "{}", terminal_text(&context_line(summary)));
    let header = line(HEAD);
    let _ = writeln!(out, "{header}");
    let rule_width = header.chars().count().max(width[..9].iter().sum::<usize>() + 2 * 9 + width[9].min(40));
    let _ = writeln!(out, "{}", "-".repeat(rule_width));
    if cells.is_empty() {
        let _ = writeln!(out, "(no layers)");
    }
    for row in &cells {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
    let _ = writeln!(out, "{}", "-".repeat(rule_width));
    let _ = writeln!(out, "{}", terminal_text(&totals_line(summary, rows)));
    out
}

// ---------------------------------------------------------------------------------------------------------
// The chart.

/// Colours of the chart (and the page's table).
const ENGINE_COLOUR: &str = "#2b6cb0";
const HOST_COLOUR: &str = "#a0aec0";
const HOST_BAND: &str = "#edf2f7";
const UTIL_COLOUR: &str = "#dd6b20";
const SQNR_COLOUR: &str = "#2f855a";

/// Chart geometry, in SVG user units (px).
const STEP: f64 = 16.0;
const LEFT: f64 = 100.0;
const RIGHT_MARGIN: f64 = 72.0;
const MIN_PLOT_WIDTH: f64 = 480.0;
const CYCLES_TOP: f64 = 78.0;
const CYCLES_HEIGHT: f64 = 260.0;
const SQNR_TOP: f64 = CYCLES_TOP + CYCLES_HEIGHT + 36.0;
const SQNR_HEIGHT: f64 = 120.0;
const LABEL_TOP: f64 = SQNR_TOP + SQNR_HEIGHT + 10.0;
const LABEL_MAX: usize = 26;
const LABEL_SPACE: f64 = 180.0;

/// "Nice" axis ticks covering `lo..=hi` (about five, at 1, 2 or 5 × 10^k), returned with the axis range
/// they span. A degenerate or non-finite range becomes 0..=1.
fn nice_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let count = ((end - start) / step).round() as usize;
    let ticks = (0..=count.min(50)).map(|k| start + k as f64 * step).collect();
    (start, end, ticks)
}

/// A tick label: human units for large values, otherwise a short decimal.
fn tick_label(v: f64) -> String {
    if v >= 1000.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
        human(v as u64)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The tooltip of one layer's column: everything the table says about it.
fn tooltip(i: usize, r: &LayerRow) -> String {
    let mut t = format!("#{} {} ({}) on the {}", i + 1, r.name, r.op, place(r));
    if r.engine {
        let _ = write!(
            t,
            ": {} cycles, {} MACs, utilisation {} %",
            grouped(r.cycles),
            human(r.macs),
            percent(r.utilisation)
        );
    } else if r.macs > 0 {
        let _ = write!(t, ": {} MACs", human(r.macs));
    }
    let _ = write!(t, "; SQNR {} dB; max|err| {}", decibels(r.sqnr_db), error_magnitude(r.max_abs_err));
    if !r.note.is_empty() {
        let _ = write!(t, "; {}", r.note);
    }
    t
}

/// The `<svg>` element of the chart (without an XML declaration, so that it can sit inside HTML).
fn svg_element(summary: &RunSummary, rows: &[LayerRow]) -> String {
    let n = rows.len();
    let plot_width = (n as f64 * STEP).max(MIN_PLOT_WIDTH);
    let width = LEFT + plot_width + RIGHT_MARGIN;
    let height = LABEL_TOP + LABEL_SPACE;
    let right = LEFT + plot_width;
    let col_x = |i: usize| LEFT + i as f64 * STEP;
    let centre = |i: usize| col_x(i) + STEP / 2.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, "<title>{}</title>", esc(&summary.title));
    let _ = write!(s, r##"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#ffffff"/>"##);
    // Header: title, context and totals.
    let _ = write!(s, r#"<text x="{LEFT:.0}" y="20" font-size="15" font-weight="bold">{}</text>"#, esc(&summary.title));
    let util =
        weighted_utilisation(rows, summary.macs_per_cycle).map_or("n/a".to_string(), |u| format!("{:.1}%", u * 100.0));
    let latency = summary.latency_ms().map_or("n/a".to_string(), |ms| format!("{ms:.3} ms"));
    let _ = write!(
        s,
        r#"<text x="{LEFT:.0}" y="38">{} · {} cycles · {latency} · utilisation {util} · {} engine / {} host layers</text>"#,
        esc(&context_line(summary)),
        grouped(summary.total_cycles),
        summary.engine_layers,
        summary.host_layers
    );
    // Legend.
    let ly = 56.0;
    let _ = write!(s, r#"<rect x="{LEFT:.0}" y="{:.0}" width="10" height="10" fill="{ENGINE_COLOUR}"/>"#, ly - 9.0);
    let _ = write!(s, r#"<text x="{:.0}" y="{ly:.0}">engine cycles</text>"#, LEFT + 14.0);
    let _ = write!(
        s,
        r#"<rect x="{:.0}" y="{:.0}" width="10" height="10" fill="{HOST_BAND}" stroke="{HOST_COLOUR}"/>"#,
        LEFT + 110.0,
        ly - 9.0
    );
    let _ = write!(s, r#"<text x="{:.0}" y="{ly:.0}">host layer</text>"#, LEFT + 124.0);
    let _ = write!(s, r#"<circle cx="{:.0}" cy="{:.0}" r="4" fill="{UTIL_COLOUR}"/>"#, LEFT + 205.0, ly - 4.0);
    let _ = write!(s, r#"<text x="{:.0}" y="{ly:.0}">MAC utilisation (right axis)</text>"#, LEFT + 214.0);
    let _ = write!(s, r#"<circle cx="{:.0}" cy="{:.0}" r="4" fill="{SQNR_COLOUR}"/>"#, LEFT + 385.0, ly - 4.0);
    let _ = write!(s, r#"<text x="{:.0}" y="{ly:.0}">SQNR vs f32 (lower panel)</text>"#, LEFT + 394.0);

    // Host bands first, so that everything else is drawn over them.
    for (i, _) in rows.iter().enumerate().filter(|(_, r)| !r.engine) {
        for (top, h) in [(CYCLES_TOP, CYCLES_HEIGHT), (SQNR_TOP, SQNR_HEIGHT)] {
            let _ = write!(
                s,
                r#"<rect class="host-band" x="{:.1}" y="{top:.1}" width="{STEP:.1}" height="{h:.1}" fill="{HOST_BAND}"/>"#,
                col_x(i)
            );
        }
    }

    // Upper panel: cycles (left axis) and utilisation (right axis).
    let max_cycles = rows.iter().map(|r| r.cycles).max().unwrap_or(0) as f64;
    let (_, cmax, cticks) = nice_ticks(0.0, max_cycles);
    let cy = |v: f64| CYCLES_TOP + CYCLES_HEIGHT * (1.0 - (v / cmax).clamp(0.0, 1.0));
    for t in &cticks {
        let y = cy(*t);
        let _ = write!(s, r##"<line x1="{LEFT:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e2e8f0"/>"##);
        let _ =
            write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, tick_label(*t));
    }
    for pct in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let y = CYCLES_TOP + CYCLES_HEIGHT * (1.0 - pct / 100.0);
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" fill="{UTIL_COLOUR}">{pct:.0}%</text>"#, right + 6.0, y + 4.0);
    }
    let mid = CYCLES_TOP + CYCLES_HEIGHT / 2.0;
    let _ = write!(
        s,
        r#"<text x="18" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 18 {mid:.1})">modelled cycles</text>"#
    );
    let rx = width - 14.0;
    let _ = write!(
        s,
        r#"<text x="{rx:.1}" y="{mid:.1}" text-anchor="middle" fill="{UTIL_COLOUR}" transform="rotate(90 {rx:.1} {mid:.1})">MAC utilisation</text>"#
    );
    for (i, r) in rows.iter().enumerate() {
        if r.cycles == 0 {
            continue;
        }
        let y = cy(r.cycles as f64);
        let fill = if r.engine { ENGINE_COLOUR } else { HOST_COLOUR };
        let _ = write!(
            s,
            r#"<rect class="bar" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
            col_x(i) + 2.0,
            STEP - 4.0,
            CYCLES_TOP + CYCLES_HEIGHT - y,
            esc(&tooltip(i, r))
        );
    }
    // Utilisation: a line through consecutive known values, and a dot for each.
    let uy = |u: f64| CYCLES_TOP + CYCLES_HEIGHT * (1.0 - u.clamp(0.0, 1.0));
    let util_points: Vec<Option<(f64, f64)>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| r.utilisation.filter(|u| u.is_finite()).map(|u| (centre(i), uy(u))))
        .collect();
    for run in util_points.split(Option::is_none).filter(|run| run.len() > 1) {
        let pts: Vec<String> = run.iter().flatten().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{UTIL_COLOUR}" stroke-width="1.5" stroke-opacity="0.7"/>"#,
            pts.join(" ")
        );
    }
    for (i, p) in util_points.iter().enumerate() {
        if let Some((x, y)) = p {
            let _ = write!(
                s,
                r#"<circle class="util" cx="{x:.1}" cy="{y:.1}" r="3" fill="{UTIL_COLOUR}"><title>{}</title></circle>"#,
                esc(&tooltip(i, &rows[i]))
            );
        }
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT:.1}" y="{CYCLES_TOP:.1}" width="{plot_width:.1}" height="{CYCLES_HEIGHT:.1}" fill="none" stroke="#4a5568"/>"##
    );

    // Lower panel: SQNR per layer (lollipops from 0 dB, or from the panel's floor when it is above 0).
    let finite: Vec<f64> = rows.iter().filter_map(|r| r.sqnr_db).filter(|v| v.is_finite()).collect();
    let (lo, hi) = if finite.is_empty() {
        (0.0, 60.0)
    } else {
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(lo + 1.0);
        (lo, hi)
    };
    let (slo, shi, sticks) = nice_ticks(lo, hi);
    let sy = |v: f64| SQNR_TOP + SQNR_HEIGHT * (1.0 - ((v - slo) / (shi - slo)).clamp(0.0, 1.0));
    for t in &sticks {
        let y = sy(*t);
        let _ = write!(s, r##"<line x1="{LEFT:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e2e8f0"/>"##);
        let _ =
            write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, tick_label(*t));
    }
    let smid = SQNR_TOP + SQNR_HEIGHT / 2.0;
    let _ = write!(
        s,
        r#"<text x="18" y="{smid:.1}" text-anchor="middle" transform="rotate(-90 18 {smid:.1})">SQNR (dB)</text>"#
    );
    let base = sy(0.0);
    for (i, r) in rows.iter().enumerate() {
        let Some(v) = r.sqnr_db else { continue };
        if v.is_nan() {
            continue;
        }
        let x = centre(i);
        let y = if v.is_infinite() {
            if v > 0.0 {
                sy(shi)
            } else {
                sy(slo)
            }
        } else {
            sy(v)
        };
        let fill = if r.engine { SQNR_COLOUR } else { HOST_COLOUR };
        let _ = write!(s, r#"<line x1="{x:.1}" y1="{base:.1}" x2="{x:.1}" y2="{y:.1}" stroke="{fill}"/>"#);
        let _ = write!(
            s,
            r#"<circle class="sqnr" cx="{x:.1}" cy="{y:.1}" r="3" fill="{fill}"><title>{}</title></circle>"#,
            esc(&tooltip(i, r))
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT:.1}" y="{SQNR_TOP:.1}" width="{plot_width:.1}" height="{SQNR_HEIGHT:.1}" fill="none" stroke="#4a5568"/>"##
    );

    // Layer labels under the lower panel, rotated, with the full text as a tooltip.
    if rows.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{mid:.1}" text-anchor="middle" fill="#718096">no layers</text>"##,
            LEFT + plot_width / 2.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let x = centre(i) + 3.0;
        let fill = if r.engine { "#1a202c" } else { "#718096" };
        let _ = write!(
            s,
            r#"<text class="label" font-size="10" x="{x:.1}" y="{LABEL_TOP:.1}" text-anchor="end" fill="{fill}" transform="rotate(-60 {x:.1} {LABEL_TOP:.1})"><title>{}</title>{} {}</text>"#,
            esc(&tooltip(i, r)),
            i + 1,
            esc(&truncate(&r.name, LABEL_MAX))
        );
    }
    s.push_str("</svg>");
    s
}

/// The chart alone as a standalone SVG document: one bar per layer for its modelled cycles (engine layers
/// coloured, host layers on a grey band), dots for MAC utilisation on a 0–100 % right axis, a lower panel
/// with each layer's SQNR in dB, and the layer names as rotated labels with `<title>` tooltips.
pub fn svg(summary: &RunSummary, rows: &[LayerRow]) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", svg_element(summary, rows))
}

// ---------------------------------------------------------------------------------------------------------
// The page.

/// The report as one self-contained HTML page (no script, no external asset): a header with the totals,
/// the [`svg`] chart inline, then the table of [`table`] as an HTML table. All text is escaped.
pub fn html(summary: &RunSummary, rows: &[LayerRow]) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    let _ = writeln!(s, "<title>{}</title>", esc(&summary.title));
    s.push_str(
        "<style>\n\
         body { font-family: sans-serif; margin: 1.5em; color: #1a202c; }\n\
         .chart { overflow-x: auto; border: 1px solid #e2e8f0; margin: 1em 0; }\n\
         table { border-collapse: collapse; font-size: 13px; }\n\
         th, td { padding: 3px 8px; border-bottom: 1px solid #e2e8f0; text-align: left; white-space: nowrap; }\n\
         th { background: #f7fafc; position: sticky; top: 0; }\n\
         td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }\n\
         tr.host td { color: #718096; background: #f7fafc; }\n\
         td.note { white-space: normal; }\n\
         tfoot td { font-weight: bold; border-top: 2px solid #4a5568; }\n\
         </style>\n</head>\n<body>\n",
    );
    let _ = writeln!(s, "<h1>{}</h1>", esc(&summary.title));
    let _ = writeln!(s, "<p>{}</p>", esc(&context_line(summary)));
    let _ = writeln!(s, "<p>{}</p>", esc(&totals_line(summary, rows)));
    let _ = writeln!(s, "<div class=\"chart\">{}</div>", svg_element(summary, rows));
    s.push_str("<table>\n<thead><tr>");
    for (h, num) in [
        ("#", true),
        ("layer", false),
        ("op", false),
        ("where", false),
        ("MACs", true),
        ("cycles", true),
        ("util %", true),
        ("SQNR dB", true),
        ("max|err|", true),
        ("note", false),
    ] {
        let class = if num { " class=\"num\"" } else { "" };
        let _ = write!(s, "<th{class}>{}</th>", esc(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\" title=\"{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"note\">{}</td></tr>",
            place(r),
            i + 1,
            esc(&r.name),
            esc(&r.op),
            place(r),
            grouped(r.macs),
            human(r.macs),
            grouped(r.cycles),
            percent(r.utilisation),
            decibels(r.sqnr_db),
            error_magnitude(r.max_abs_err),
            esc(&r.note)
        );
    }
    if rows.is_empty() {
        s.push_str("<tr><td colspan=\"10\">no layers</td></tr>\n");
    }
    s.push_str("</tbody>\n");
    let _ = writeln!(s, "<tfoot><tr><td colspan=\"10\">{}</td></tr></tfoot>", esc(&totals_line(summary, rows)));
    s.push_str("</table>\n</body>\n</html>\n");
    s
}

/// Writes the report to `path`: the chart alone for `.svg`, the whole page for `.html` or `.htm` (the
/// extension's case does not matter). Any other extension is an [`io::ErrorKind::InvalidInput`] error.
pub fn write(path: &Path, summary: &RunSummary, rows: &[LayerRow]) -> io::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let text = match ext.as_deref() {
        Some("svg") => svg(summary, rows),
        Some("html" | "htm") => html(summary, rows),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot write a report to {}: unknown extension (use .svg for the chart alone, or .html / .htm \
                     for the page with chart and table)",
                    path.display()
                ),
            ))
        }
    };
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::events::Event;

    fn row(name: &str, engine: bool, macs: u64, cycles: u64) -> LayerRow {
        LayerRow {
            name: name.into(),
            op: if engine { "Conv+Relu".into() } else { "MaxPool".into() },
            engine,
            note: if engine { "M=3136 K=576 N=64".into() } else { "pooling runs on the host".into() },
            macs,
            cycles,
            utilisation: engine.then(|| macs as f64 / (cycles as f64 * 256.0)),
            sqnr_db: Some(if engine { 38.5 } else { 120.0 }),
            max_abs_err: Some(if engine { 3.1e-3 } else { 0.0 }),
        }
    }

    /// Three layers: two on the engine (Σ macs 256e6 over 4e6 cycles of a 256-MAC array = 25 %), one host.
    fn rows() -> Vec<LayerRow> {
        vec![
            row("conv1", true, 64_000_000, 1_000_000),
            row("pool", false, 0, 0),
            row("conv2", true, 192_000_000, 3_000_000),
        ]
    }

    fn summary(rows: &[LayerRow]) -> RunSummary {
        RunSummary::from_rows("ResNet test", "16x16-msfp16", 200.0, 256, rows)
    }

    /// Parses `doc` as XML (quick-xml checks that end tags match), returns the element names in order, and
    /// checks that every numeric geometry attribute is a finite number.
    fn parse_xml(doc: &str) -> Vec<String> {
        let mut reader = quick_xml::Reader::from_str(doc);
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        loop {
            let event =
                reader.read_event().unwrap_or_else(|e| panic!("not well-formed at {}: {e}", reader.buffer_position()));
            let element = match &event {
                Event::Start(e) | Event::Empty(e) => Some(e.clone()),
                _ => None,
            };
            if let Some(e) = element {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                for a in e.attributes() {
                    let a = a.expect("well-formed attribute");
                    let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                    let value = String::from_utf8(a.value.to_vec()).unwrap();
                    if ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"].contains(&key.as_str()) {
                        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{name} {key}={value:?} is not a number"));
                        assert!(v.is_finite(), "{name} {key}={value}");
                    }
                    if key == "points" || key == "transform" || key == "viewBox" {
                        assert!(!value.contains("NaN") && !value.contains("inf"), "{name} {key}={value}");
                    }
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(name.clone());
                }
                names.push(name);
            }
            match event {
                Event::End(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "unbalanced </{name}>");
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        names
    }

    #[test]
    fn report_human_units_and_grouping() {
        assert_eq!(human(0), "0");
        assert_eq!(human(999), "999");
        assert_eq!(human(1_000), "1.0k");
        assert_eq!(human(115_605_504), "115.6M");
        assert_eq!(human(999_960), "1.0M");
        assert_eq!(human(4_100_000_000), "4.1G");
        assert_eq!(human(u64::MAX), "18.4E");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn report_weighted_utilisation_over_engine_layers() {
        let rows = rows();
        let u = weighted_utilisation(&rows, 256).unwrap();
        assert!((u - 0.25).abs() < 1e-12, "{u}");
        // Host layers do not count even if they carry MACs and cycles.
        let mut with_host = rows.clone();
        with_host.push(LayerRow { macs: 1_000_000_000, cycles: 7, ..row("gap", false, 0, 0) });
        assert_eq!(weighted_utilisation(&with_host, 256), Some(u));
        assert_eq!(weighted_utilisation(&rows, 0), None);
        assert_eq!(weighted_utilisation(&[], 256), None);
        assert_eq!(weighted_utilisation(&[row("pool", false, 0, 0)], 256), None);
        // No overflow with huge counts.
        let huge = [LayerRow { macs: u64::MAX, cycles: u64::MAX, ..row("big", true, 1, 1) }];
        let u = weighted_utilisation(&huge, u64::MAX).unwrap();
        assert!(u > 0.0 && u < 1e-18);
    }

    #[test]
    fn report_summary_totals_from_rows() {
        let rows = rows();
        let s = summary(&rows);
        assert_eq!(s.total_cycles, 4_000_000);
        assert_eq!(s.total_macs, 256_000_000);
        assert_eq!((s.engine_layers, s.host_layers), (2, 1));
        assert_eq!(s.latency_ms(), Some(20.0));
        assert_eq!(RunSummary { clock_mhz: 0.0, ..s.clone() }.latency_ms(), None);
        assert_eq!(RunSummary { clock_mhz: f64::NAN, ..s }.latency_ms(), None);
    }

    #[test]
    fn report_table_lines_and_totals() {
        let rows = rows();
        let t = table(&summary(&rows), &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ResNet test");
        assert_eq!(lines[1], "engine 16x16-msfp16 at 200 MHz");
        assert!(lines[2].starts_with("#  layer"), "{}", lines[2]);
        for h in ["MACs", "cycles", "util %", "SQNR dB", "max|err|", "note"] {
            assert!(lines[2].contains(h), "header lacks {h}: {}", lines[2]);
        }
        // Layer lines: columns line up (the "where" column starts at the same offset on every line).
        let layer_lines = &lines[4..7];
        let col = lines[2].find("where").unwrap();
        assert!(layer_lines[0][col..].starts_with("engine"), "{}", layer_lines[0]);
        assert!(layer_lines[1][col..].starts_with("host"), "{}", layer_lines[1]);
        assert!(layer_lines[0].contains("64.0M") && layer_lines[0].contains("1,000,000"));
        assert!(
            layer_lines[0].contains("25.0") && layer_lines[0].contains("38.5") && layer_lines[0].contains("3.10e-3")
        );
        assert!(layer_lines[0].ends_with("M=3136 K=576 N=64"));
        assert!(layer_lines[1].ends_with("pooling runs on the host"));
        let totals = lines.last().unwrap();
        assert!(totals.contains("total: 4,000,000 cycles = 20.000 ms at 200 MHz"), "{totals}");
        assert!(totals.contains("256.0M MACs"), "{totals}");
        assert!(totals.contains("utilisation 25.0% over engine layers (256 MACs/cycle)"), "{totals}");
        assert!(totals.contains("2 engine layers, 1 host layers"), "{totals}");
    }

    #[test]
    fn report_table_sanitises_terminal_text_and_missing_values() {
        let mut r = row("evil\x1b[2J\nname", true, 10, 0);
        r.utilisation = None;
        r.sqnr_db = None;
        r.max_abs_err = None;
        let rows = vec![r, LayerRow { sqnr_db: Some(f64::INFINITY), ..row("exact", false, 0, 0) }];
        let t = table(&summary(&rows), &rows);
        assert!(!t.contains('\x1b'));
        assert!(t.contains("evil?[2J?name"));
        let line = t.lines().find(|l| l.contains("evil")).unwrap();
        assert_eq!(line.split_whitespace().filter(|w| *w == "-").count(), 3, "{line}");
        assert!(t.lines().find(|l| l.contains("exact")).unwrap().contains("inf"));
        // A very long name is cut.
        let long = vec![row(&format!("/start/{}/the_end", "x".repeat(200)), true, 1, 1)];
        let t = table(&summary(&long), &long);
        let cut = t.lines().nth(4).unwrap().split_whitespace().nth(1).unwrap();
        assert_eq!(cut.chars().count(), TABLE_NAME_MAX, "{cut}");
        assert!(cut.starts_with("/start/") && cut.contains('…') && cut.ends_with("x/the_end"), "{cut}");
    }

    #[test]
    fn report_escapes_script_in_names() {
        let mut rows = rows();
        rows[0].name = "<script>alert('x')</script>&\"".into();
        rows[1].op = "Max<Pool>".into();
        rows[2].note = "</td><script>".into();
        rows[2].name = "nul\u{0}bell\u{7}".into();
        let s = summary(&rows);
        let page = html(&s, &rows);
        let chart = svg(&s, &rows);
        for doc in [&page, &chart] {
            assert!(!doc.contains("<script"), "unescaped script tag");
            assert!(!doc.contains('\u{0}') && !doc.contains('\u{7}'));
            assert!(doc.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
            parse_xml(doc);
        }
        assert!(page.contains("Max&lt;Pool&gt;") && page.contains("&lt;/td&gt;&lt;script&gt;"));
        assert!(!page.contains("<link") && !page.contains("src=") && !page.contains("href="), "no external assets");
    }

    #[test]
    fn report_svg_is_well_formed_with_one_bar_per_engine_layer() {
        let mut rows = rows();
        rows.push(LayerRow { utilisation: None, sqnr_db: None, max_abs_err: None, ..row("fc", true, 2048, 40) });
        rows.push(LayerRow { sqnr_db: Some(f64::NAN), ..row("nan", true, 5, 5) });
        rows.push(LayerRow { sqnr_db: Some(-3.0), utilisation: Some(1.7), ..row("bad", true, 5, 5) });
        rows.push(LayerRow { sqnr_db: Some(f64::INFINITY), ..row("exact", true, 5, 5) });
        let s = summary(&rows);
        let chart = svg(&s, &rows);
        assert!(chart.starts_with("<?xml"));
        let names = parse_xml(&chart);
        assert_eq!(names[0], "svg");
        assert_eq!(chart.matches(r#"class="bar""#).count(), 6, "one bar per layer with cycles");
        assert_eq!(chart.matches(r#"class="label""#).count(), rows.len());
        assert_eq!(chart.matches(r#"class="host-band""#).count(), 2, "the host layer is shaded in both panels");
        assert_eq!(chart.matches(r#"class="util""#).count(), 5, "a dot per known utilisation");
        assert_eq!(chart.matches(r#"class="sqnr""#).count(), 5, "a dot per known, non-NaN SQNR");
        assert!(chart.contains(&format!(r#"fill="{ENGINE_COLOUR}""#)));
        assert!(chart.contains("100%"), "right axis to 100 %");
        assert!(names.iter().filter(|n| *n == "title").count() > rows.len(), "tooltips");
        let page = html(&s, &rows);
        let names = parse_xml(&page);
        assert_eq!(page.matches("<tr class=").count(), rows.len());
        assert!(names.contains(&"svg".to_string()) && names.contains(&"table".to_string()));
        assert!(!page.contains("<?xml"), "no XML declaration inside the page");
    }

    #[test]
    fn report_empty_rows_do_not_panic() {
        let s = summary(&[]);
        let t = table(&s, &[]);
        assert!(t.contains("(no layers)") && t.contains("utilisation n/a"), "{t}");
        let chart = svg(&s, &[]);
        parse_xml(&chart);
        assert!(chart.contains("no layers"));
        let page = html(&s, &[]);
        parse_xml(&page);
        assert!(page.contains("no layers"));
        // A summary with a nonsense clock still renders.
        let odd = RunSummary { clock_mhz: -1.0, macs_per_cycle: 0, ..s };
        assert!(table(&odd, &[]).contains("latency n/a"));
        parse_xml(&svg(&odd, &[]));
    }

    #[test]
    fn report_write_chooses_format_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        let s = summary(&rows);
        let p = dir.path().join("run.svg");
        write(&p, &s, &rows).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), svg(&s, &rows));
        let p = dir.path().join("run.HTML");
        write(&p, &s, &rows).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().starts_with("<!DOCTYPE html>"));
        let p = dir.path().join("run.htm");
        write(&p, &s, &rows).unwrap();
        for bad in ["run.txt", "run"] {
            let e = write(&dir.path().join(bad), &s, &rows).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(bad) && e.to_string().contains(".svg"), "{e}");
            assert!(!dir.path().join(bad).exists());
        }
    }
}
