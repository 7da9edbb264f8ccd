//! `odm`: headless commands for engineers and auditors (`shared/spec/cli.md`).
//!
//! Exit codes: 0 success, 1 runtime failure (one line on standard error
//! naming what failed and where), 2 usage error.

use clap::{Parser, Subcommand};

mod analysis_output;
mod calib_cert;
mod calib_pty;
mod calib_stream;
mod cmd_analyse;
mod cmd_calibrate;
mod cmd_info;
mod cmd_monitor;
mod cmd_record;
mod cmd_simulate;
mod cmd_uptake;
mod cmd_validate;
mod cmd_verify;

/// Oesophageal Doppler monitor: headless commands.
#[derive(Parser)]
#[command(name = "odm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a recording from the virtual probe (with its truth file), or stream it to a port.
    Simulate(cmd_simulate::Args),
    /// Record a live stream from a probe interface.
    Record(cmd_record::Args),
    /// Describe a recording: probe, duration and every receiver counter.
    Info(cmd_info::Args),
    /// Headless monitor: the virtual probe (or --port) analysed live, beats to standard output.
    Monitor(cmd_monitor::Args),
    /// Beat-by-beat analysis of a recording or stream (analysis-output.md).
    Analyse(cmd_analyse::Args),
    /// Measure accuracy against the simulator and write the validation report.
    Validate(cmd_validate::Args),
    /// Anonymised uptake records: export, verify, report.
    Uptake(cmd_uptake::Args),
    /// Calibrate a probe against phantom runs.
    Calibrate(cmd_calibrate::Args),
    /// End-to-end verification of the receive path with the virtual probe.
    Verify(cmd_verify::Args),
}

/// What `println!` and `eprintln!` panic with when the stream cannot be
/// written (a closed pipe, a full disk).
const PRINT_FAILURE: &str = "failed printing to std";

fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// `odm uptake …` never echoes a value it refuses (docs/uptake.md): an
/// identifier typed into the wrong box must not reach a terminal log. A
/// clap usage error there is told by its kind and the flag's name only.
fn uptake_usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // The declared argument a value was refused for; an unknown argument
    // or subcommand is itself what was typed, so it is not named.
    let (what, names_flag, hides_value) = match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => ("invalid value", true, true),
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues => {
            ("wrong number of values", true, true)
        }
        ErrorKind::UnknownArgument => ("unexpected argument", false, true),
        ErrorKind::InvalidSubcommand => ("unrecognised subcommand", false, true),
        ErrorKind::MissingRequiredArgument => ("required arguments were not given", true, false),
        ErrorKind::ArgumentConflict => ("arguments that cannot be used together", true, false),
        ErrorKind::MissingSubcommand => ("a subcommand is required", false, false),
        _ => ("usage error", false, true),
    };
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) if names_flag => format!(" for '{a}'"),
        Some(ContextValue::Strings(a)) if names_flag => format!(": '{}'", a.join("', '")),
        _ => String::new(),
    };
    let note = if hides_value {
        " (what was typed is not echoed: it may hold an identifier)"
    } else {
        ""
    };
    format!("{what}{flag}{note}; see 'odm uptake --help'")
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let shows_help = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            // `odm uptake …`, or `odm help uptake …`.
            let args: Vec<_> = std::env::args_os().skip(1).take(2).collect();
            let uptake = match args.as_slice() {
                [first, ..] if first == "uptake" => true,
                [first, second] => first == "help" && second == "uptake",
                _ => false,
            };
            if !shows_help && uptake {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "odm: error: {}", uptake_usage_error(&e));
                std::process::exit(2);
            }
            e.exit()
        }
    };
    // A command's output that cannot be written (`odm simulate | head -0`,
    // `2>/dev/full`) is a runtime failure, exit 1, not a panic (exit 101):
    // the print macros' panic is caught here and reported in one line.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !panic_message(info.payload()).is_some_and(|m| m.starts_with(PRINT_FAILURE)) {
            default_hook(info);
        }
    }));
    let result = match std::panic::catch_unwind(|| run(cli)) {
        Ok(result) => result,
        Err(payload) => match panic_message(payload.as_ref()) {
            Some(m) if m.starts_with(PRINT_FAILURE) => {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "odm: error: {m}");
                std::process::exit(1);
            }
            _ => std::panic::resume_unwind(payload),
        },
    };
    if let Err(e) = result {
        // One clear line: the chain of contexts, outermost first (if even
        // standard error cannot take it, the exit code still says it).
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "odm: error: {}", one_line(&e));
        let usage = e.chain().any(|c| c.is::<UsageError>());
        std::process::exit(if usage { 2 } else { 1 });
    }
}

/// The error and its causes, outermost first, joined by `: ` — a cause
/// whose text the line already ends with is not repeated (errors that name
/// their source in their own message, as `key file F: No such file…`, and
/// also give it as the cause).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => cmd_simulate::run(a),
        Command::Record(a) => cmd_record::run(a),
        Command::Info(a) => cmd_info::run(a),
        Command::Monitor(a) => cmd_monitor::run(a),
        Command::Analyse(a) => cmd_analyse::run(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Uptake(a) => cmd_uptake::run(a),
        Command::Calibrate(a) => cmd_calibrate::run(a),
        Command::Verify(a) => cmd_verify::run(a),
    }
}

/// Arguments the parser took but the command cannot run with (a value out
/// of its range, found after parsing): a usage error, exit 2 (cli.md).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug)]
    struct KeyFile(std::io::Error);
    impl std::fmt::Display for KeyFile {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "key file k: {}", self.0)
        }
    }
    impl std::error::Error for KeyFile {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_the_message_already_ends_with_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(KeyFile(io)).context("opening store s");
        assert_eq!(one_line(&e), "opening store s: key file k: no such file");
        // Causes that add something are all kept, as `{:#}` does.
        let e = anyhow::anyhow!("bad magic").context("reading r");
        assert_eq!(one_line(&e), format!("{e:#}"));
    }
}
