//! `odm-monitor`: the theatre display.

fn main() {}
