//! `odm`: headless commands for engineers and auditors (`shared/spec/cli.md`).

fn main() {}
