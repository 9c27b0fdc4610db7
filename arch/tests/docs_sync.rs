//! Keeps `docs/architecture.md` in step with the crate: the instruction-field tables must equal
//! [`arch::isa::layout`], the register map [`arch::regs::ALL`] and the error-code table [`ErrorCode::ALL`].
//!
//! The document's tables are parsed, not pattern-matched: each opcode's table follows a heading
//! `### NAME (opcode N)` and has the columns `| field | bits | description |`; the register map follows
//! `## Register map` with `| offset | name | access | description |`; the error codes follow `## Error codes`
//! with `| code | name | meaning |`. Failures list every difference with its line in the document.

use std::path::PathBuf;

use arch::isa::{self, Field, Opcode};
use arch::regs::{self, ErrorCode};

const DOC: &str = "docs/architecture.md";

fn doc_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One row of a markdown table: its 1-based line number in the document and its trimmed cells.
#[derive(Debug)]
struct Row {
    line: usize,
    cells: Vec<String>,
}

/// Splits a table line into trimmed cells; `\|` inside a cell is kept as a literal `|`.
fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// Removes surrounding backticks, so that `` `opcode` `` and `opcode` read the same.
fn plain(cell: &str) -> &str {
    cell.trim().trim_matches('`').trim()
}

/// The first table after the heading on (0-based) line `heading`, before the next heading: its header cells
/// and its body rows (separator line skipped).
fn table_after(lines: &[&str], heading: usize) -> Result<(Vec<String>, Vec<Row>), String> {
    let title = lines[heading].trim();
    let mut i = heading + 1;
    loop {
        match lines.get(i) {
            None => return Err(format!("{DOC}:{}: no table after heading {title:?}", heading + 1)),
            Some(l) if l.trim_start().starts_with('|') => break,
            Some(l) if l.trim_start().starts_with('#') => {
                return Err(format!(
                    "{DOC}:{}: no table after heading {title:?} before the next heading (line {})",
                    heading + 1,
                    i + 1
                ))
            }
            _ => i += 1,
        }
    }
    let header = split_row(lines[i]);
    let sep = lines.get(i + 1).map(|l| split_row(l)).unwrap_or_default();
    if sep.is_empty() || !sep.iter().all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':'))) {
        return Err(format!("{DOC}:{}: the table under {title:?} has no separator line `|---|...`", i + 2));
    }
    let rows = lines[i + 2..]
        .iter()
        .enumerate()
        .take_while(|(_, l)| l.trim_start().starts_with('|'))
        .map(|(k, l)| Row { line: i + 3 + k, cells: split_row(l) })
        .collect();
    Ok((header, rows))
}

fn expect_header(header: &[String], expected: &[&str], heading: &str) -> Result<(), String> {
    let got: Vec<&str> = header.iter().map(|c| plain(c)).collect();
    if got != expected {
        return Err(format!("the table under {heading:?} has columns {got:?}, expected {expected:?}"));
    }
    Ok(())
}

/// Parses a `bits` cell: `msb:lsb`, or a single bit number for 1-bit fields. Returns `(lsb, width)`.
fn parse_bits(cell: &str) -> Result<(u32, u32), String> {
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("bits {cell:?} is not `msb:lsb` or `bit`"));
    match plain(cell).split_once(':') {
        Some((msb, lsb)) => {
            let (msb, lsb) = (num(msb)?, num(lsb)?);
            if msb < lsb {
                return Err(format!("bits {cell:?}: msb {msb} is below lsb {lsb}"));
            }
            if msb == lsb {
                return Err(format!("bits {cell:?}: write a 1-bit field as the single number {lsb}"));
            }
            Ok((lsb, msb - lsb + 1))
        }
        None => Ok((num(plain(cell))?, 1)),
    }
}

/// How the document writes a field's bits.
fn bits_text(lsb: u32, width: u32) -> String {
    if width == 1 {
        lsb.to_string()
    } else {
        format!("{}:{}", lsb + width - 1, lsb)
    }
}

/// Parses `### NAME (opcode N)`; `None` for other lines.
fn opcode_heading(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim().strip_prefix("### ")?;
    let (name, rest) = rest.split_once(" (opcode ")?;
    let number = rest.strip_suffix(')')?;
    Some((name.trim(), number.trim()))
}

/// Compares the document's rows (with their line numbers) with the code's, keyed by name: reports names only
/// one side has, rows whose values differ, duplicates and a different order. `show` renders a row's values.
fn diff_rows<T: PartialEq>(
    what: &str,
    doc: &[(usize, T)],
    code: &[T],
    name_of: impl Fn(&T) -> String,
    show: impl Fn(&T) -> String,
    errors: &mut Vec<String>,
) {
    let code_names: Vec<String> = code.iter().map(&name_of).collect();
    let doc_names: Vec<String> = doc.iter().map(|(_, d)| name_of(d)).collect();
    for (line, d) in doc {
        let name = name_of(d);
        match code.iter().position(|c| name_of(c) == name) {
            None => errors
                .push(format!("{what}: {DOC}:{line} documents {name} ({}), which the code does not have", show(d))),
            Some(i) if code[i] != *d => errors.push(format!(
                "{what}: {DOC}:{line}: {name} is documented as {}, the code has {}",
                show(d),
                show(&code[i])
            )),
            Some(_) => {}
        }
        if doc_names.iter().filter(|n| **n == name).count() > 1 {
            errors.push(format!("{what}: {DOC}:{line}: {name} is listed more than once"));
        }
    }
    for (i, c) in code.iter().enumerate() {
        if !doc_names.contains(&code_names[i]) {
            let place = match i {
                0 => "first in the code".to_string(),
                _ => format!("after {} in the code", code_names[i - 1]),
            };
            errors.push(format!("{what}: the document does not list {} ({}; {place})", code_names[i], show(c)));
        }
    }
    let common_doc: Vec<&String> = doc_names.iter().filter(|n| code_names.contains(n)).collect();
    let common_code: Vec<&String> = code_names.iter().filter(|n| doc_names.contains(n)).collect();
    if let Some(k) = common_doc.iter().zip(&common_code).position(|(d, c)| d != c) {
        let line = doc.iter().find(|(_, d)| name_of(d) == *common_doc[k]).map_or(0, |(l, _)| *l);
        errors.push(format!(
            "{what}: {DOC}:{line}: out of order: the document has {} where the code has {}",
            common_doc[k], common_code[k]
        ));
    }
}

fn finish(errors: Vec<String>) {
    assert!(errors.is_empty(), "{DOC} is out of step with the code:\n  {}", errors.join("\n  "));
}

#[test]
fn instruction_field_tables_match_the_layout() {
    let text = doc_text();
    let lines: Vec<&str> = text.lines().collect();
    let mut errors = Vec::new();

    let headings: Vec<(usize, &str, &str)> =
        lines.iter().enumerate().filter_map(|(i, l)| opcode_heading(l).map(|(n, v)| (i, n, v))).collect();
    for (i, name, _) in &headings {
        if !Opcode::ALL.iter().any(|op| op.mnemonic() == *name) {
            errors.push(format!("{DOC}:{}: heading documents opcode {name:?}, which the code does not have", i + 1));
        }
    }

    for op in Opcode::ALL {
        let name = op.mnemonic();
        let found: Vec<&(usize, &str, &str)> = headings.iter().filter(|(_, n, _)| *n == name).collect();
        let &&(heading, _, number) = match found.as_slice() {
            [one] => one,
            [] => {
                errors.push(format!("no heading `### {name} (opcode {})` in {DOC}", op as u8));
                continue;
            }
            many => {
                let at: Vec<usize> = many.iter().map(|(i, _, _)| i + 1).collect();
                errors.push(format!("{name} has {} headings (lines {at:?}); expected one", many.len()));
                continue;
            }
        };
        match number.parse::<u8>() {
            Ok(n) if n == op as u8 => {}
            _ => errors.push(format!(
                "{DOC}:{}: {name} is documented as opcode {number:?}, the code says {}",
                heading + 1,
                op as u8
            )),
        }
        let (header, rows) = match table_after(&lines, heading) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Err(e) = expect_header(&header, &["field", "bits", "description"], lines[heading].trim()) {
            errors.push(format!("{DOC}:{}: {e}", heading + 1));
            continue;
        }
        let mut doc_fields = Vec::new();
        for row in &rows {
            if row.cells.len() < 3 {
                errors.push(format!("{DOC}:{}: {name} row has {} cells, expected 3", row.line, row.cells.len()));
                continue;
            }
            match parse_bits(&row.cells[1]) {
                Ok((lsb, width)) => {
                    doc_fields.push((row.line, (plain(&row.cells[0]).to_string(), lsb, width)));
                }
                Err(e) => errors.push(format!("{DOC}:{}: {name} field {:?}: {e}", row.line, row.cells[0])),
            }
        }
        let code_fields: Vec<(String, u32, u32)> =
            isa::layout(op).iter().map(|f| (f.name.to_string(), f.lsb, f.width)).collect();
        diff_rows(
            &format!("{name} fields"),
            &doc_fields,
            &code_fields,
            |(n, _, _)| n.clone(),
            |(_, lsb, width)| format!("bits {}", bits_text(*lsb, *width)),
            &mut errors,
        );
    }
    finish(errors);
}

#[test]
fn instruction_layouts_are_well_formed() {
    let mut errors = Vec::new();
    for op in Opcode::ALL {
        let name = op.mnemonic();
        let fields: Vec<Field> = isa::layout(op);
        if fields[..isa::header::ALL.len()] != isa::header::ALL {
            errors.push(format!("{name}: the layout does not start with the header fields"));
        }
        for f in &fields {
            if f.width == 0 || f.lsb + f.width > 256 {
                errors.push(format!("{name}.{}: lsb {} width {} does not fit 256 bits", f.name, f.lsb, f.width));
                continue;
            }
            if f.lsb / 64 != (f.lsb + f.width - 1) / 64 {
                errors.push(format!(
                    "{name}.{}: bits {} cross the 64-bit word boundary at bit {}",
                    f.name,
                    bits_text(f.lsb, f.width),
                    (f.lsb / 64 + 1) * 64
                ));
            }
        }
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                if a.lsb < b.lsb + b.width && b.lsb < a.lsb + a.width {
                    errors.push(format!(
                        "{name}: fields {} (bits {}) and {} (bits {}) overlap",
                        a.name,
                        bits_text(a.lsb, a.width),
                        b.name,
                        bits_text(b.lsb, b.width)
                    ));
                }
            }
            if a.name.is_empty() || fields[..i].iter().any(|p| p.name == a.name) {
                errors.push(format!("{name}: field name {:?} is empty or repeated", a.name));
            }
        }
        // The document lists fields in ascending lsb order and in layout order, so the two must agree.
        for w in fields.windows(2) {
            if w[0].lsb >= w[1].lsb {
                errors.push(format!(
                    "{name}: layout lists {} (lsb {}) before {} (lsb {}); fields must ascend by lsb",
                    w[0].name, w[0].lsb, w[1].name, w[1].lsb
                ));
            }
        }
    }
    finish(errors);
}

/// The body rows of the table under the heading line equal to `heading`.
fn table_under(text: &str, heading: &str, columns: &[&str], errors: &mut Vec<String>) -> Vec<Row> {
    let lines: Vec<&str> = text.lines().collect();
    let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim() == heading).collect();
    let at = match found.as_slice() {
        [one] => *one,
        [] => {
            errors.push(format!("no heading {heading:?} in {DOC}"));
            return Vec::new();
        }
        many => {
            errors.push(format!("{heading:?} appears {} times in {DOC}", many.len()));
            return Vec::new();
        }
    };
    match table_after(&lines, at) {
        Ok((header, rows)) => match expect_header(&header, columns, heading) {
            Ok(()) => rows,
            Err(e) => {
                errors.push(format!("{DOC}:{}: {e}", at + 1));
                Vec::new()
            }
        },
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    }
}

#[test]
fn register_map_matches_the_code() {
    let text = doc_text();
    let mut errors = Vec::new();
    let rows = table_under(&text, "## Register map", &["offset", "name", "access", "description"], &mut errors);
    let mut doc_regs = Vec::new();
    for row in &rows {
        if row.cells.len() < 4 {
            errors.push(format!("{DOC}:{}: register row has {} cells, expected 4", row.line, row.cells.len()));
            continue;
        }
        let offset_text = plain(&row.cells[0]);
        let offset = match offset_text.strip_prefix("0x").map(|h| u32::from_str_radix(h, 16)) {
            Some(Ok(v)) => v,
            _ => {
                errors.push(format!("{DOC}:{}: offset {offset_text:?} is not hexadecimal 0x...", row.line));
                continue;
            }
        };
        if offset_text != format!("0x{offset:03X}") {
            errors.push(format!("{DOC}:{}: write offset {offset_text:?} as 0x{offset:03X}", row.line));
        }
        doc_regs.push((row.line, (plain(&row.cells[1]).to_string(), offset, plain(&row.cells[2]).to_string())));
    }
    let code_regs: Vec<(String, u32, String)> =
        regs::ALL.iter().map(|r| (r.name.to_string(), r.offset, r.access.to_string())).collect();
    diff_rows(
        "register map",
        &doc_regs,
        &code_regs,
        |(n, _, _)| n.clone(),
        |(_, offset, access)| format!("offset 0x{offset:03X}, access {access}"),
        &mut errors,
    );
    finish(errors);
}

#[test]
fn error_codes_match_the_code() {
    let text = doc_text();
    let mut errors = Vec::new();
    let rows = table_under(&text, "## Error codes", &["code", "name", "meaning"], &mut errors);
    let mut doc_codes = Vec::new();
    for row in &rows {
        if row.cells.len() < 3 {
            errors.push(format!("{DOC}:{}: error-code row has {} cells, expected 3", row.line, row.cells.len()));
            continue;
        }
        match plain(&row.cells[0]).parse::<u32>() {
            Ok(code) => doc_codes.push((row.line, (code, plain(&row.cells[1]).to_string()))),
            Err(_) => errors.push(format!("{DOC}:{}: code {:?} is not a decimal number", row.line, row.cells[0])),
        }
    }
    let code_codes: Vec<(u32, String)> = ErrorCode::ALL.iter().map(|c| (*c as u32, format!("{c:?}"))).collect();
    diff_rows(
        "error codes",
        &doc_codes,
        &code_codes,
        |(_, n)| n.clone(),
        |(code, _)| format!("code {code}"),
        &mut errors,
    );
    finish(errors);
}

#[test]
fn the_parser_reads_what_it_should() {
    assert_eq!(parse_bits("3:0"), Ok((0, 4)));
    assert_eq!(parse_bits("`255:240`"), Ok((240, 16)));
    assert_eq!(parse_bits("12"), Ok((12, 1)));
    assert!(parse_bits("0:3").is_err());
    assert!(parse_bits("4:4").is_err());
    assert!(parse_bits("x").is_err());
    assert_eq!(opcode_heading("### LOAD (opcode 0)"), Some(("LOAD", "0")));
    assert_eq!(opcode_heading("### Stages and tokens"), None);
    assert_eq!(split_row("| 0x004 | VERSION_REG | RO | a \\| b |"), ["0x004", "VERSION_REG", "RO", "a | b"]);
}

/// The worked example of the cycle model: the program of the table under `### Worked examples`, run on the
/// golden model, must have exactly the table's dispatch, start and end cycles.
#[test]
fn worked_example_of_the_cycle_model_matches_the_golden_model() {
    use arch::golden::Engine;
    use arch::isa::{Buffer, Deps, Gemm, Instruction, Load, Op, Post, Store};
    use arch::EngineConfig;

    let text = doc_text();
    let mut errors = Vec::new();
    let rows = table_under(
        &text,
        "### Worked examples",
        &["#", "instruction", "cost", "dispatch", "start", "end"],
        &mut errors,
    );
    finish(errors);

    let push_next = Deps { push_next: true, ..Deps::NONE };
    let pop_prev = Deps { pop_prev: true, ..Deps::NONE };
    let load = |buffer, y_size, x_size, dram_addr, exp_addr| Load {
        buffer,
        sram_base: 0,
        y_size,
        x_size,
        x_stride: x_size,
        dram_addr,
        exp_addr,
        pad: [0; 4],
    };
    let program = [
        Instruction::new(Op::Load(load(Buffer::Wgt, 16, 2, 0, 512))),
        Instruction::new(Op::Load(load(Buffer::Act, 8, 2, 1024, 1280))).with_deps(push_next),
        Instruction::new(Op::Gemm(Gemm::dense(8, 16, 2, true))).with_deps(pop_prev),
        Instruction::new(Op::Post(Post {
            m_size: 8,
            n_blocks: 1,
            acc_m_stride: 16,
            out_m_stride: 1,
            ..Post::default()
        }))
        .with_deps(push_next),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Out,
            sram_base: 0,
            y_size: 8,
            x_size: 1,
            x_stride: 1,
            dram_addr: 2048,
            exp_addr: 2176,
        }))
        .with_deps(pop_prev),
        Instruction::new(Op::Finish),
    ];
    let mut mem = vec![0u8; 4096];
    let report = Engine::new(EngineConfig::tiny()).run(&program, &mut mem).expect("the example runs");
    assert_eq!(rows.len(), program.len(), "{DOC}: the worked example's table has one row per instruction");
    for (row, t) in rows.iter().zip(&report.timeline) {
        let cell = |i: usize| -> u64 {
            row.cells[i].parse().unwrap_or_else(|_| panic!("{DOC}:{}: {:?} is not a cycle", row.line, row.cells[i]))
        };
        assert_eq!(
            (cell(3), cell(4), cell(5)),
            (t.dispatch, t.start, t.end),
            "{DOC}:{}: dispatch/start/end of {:?} (golden model: left is the document)",
            row.line,
            row.cells[1]
        );
    }
}
