//! `odm calibrate`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm calibrate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm calibrate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm calibrate is not built yet")
}
