//! `odm uptake`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm uptake`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm uptake`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm uptake is not built yet")
}
